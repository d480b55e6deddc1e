"""Training: the pipeline (spec + data -> network, every claim exact), its methods, objectives, polishing, ensembles."""
