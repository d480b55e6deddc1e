"""Formulations of BNN problems as standard-form MILPs, registered under string names.

``get(name)`` resolves a name (as written in YAML), a class or an instance,
in the manner of Larq's quantizers and gurobi-machinelearning's registry.
"""

from bnnmilp.formulations import linear_query, robustness, theorem1  # noqa: F401  (they register themselves)
from bnnmilp.formulations.registry import available, get, register

__all__ = ["available", "get", "register"]
