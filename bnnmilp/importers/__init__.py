"""Networks trained elsewhere, converted exactly into bnnmilp networks."""
