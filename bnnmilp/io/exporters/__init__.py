"""bnnmilp networks in formats other tools run."""
