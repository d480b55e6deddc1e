"""Backends: turn the one standard-form model into a solver's model and run it.

``highs`` feeds highspy directly from the arrays (the fast path); ``pyomo``
builds a Pyomo model from the same arrays, for MPS/LP files and for every
other solver Pyomo reaches.
"""

from bnnmilp.milp.backends.base import Progress, Solution, SolveOptions

__all__ = ["Progress", "Solution", "SolveOptions"]
