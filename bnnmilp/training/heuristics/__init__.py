"""Heuristics that produce networks fast: baselines on their own, and starts for the MILP."""

from bnnmilp.training.heuristics.codes import codes_network
from bnnmilp.training.heuristics.ste import ste_train

__all__ = ["codes_network", "ste_train"]
