"""Running a backend: choose it by solver name, pass limits, a start and a progress callback."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bnnmilp.milp.backends import highs
from bnnmilp.milp.backends.base import ProgressFn, Solution, SolveOptions
from bnnmilp.milp.model import StandardModel
from bnnmilp.spec import SolverSpec

IncumbentFn = Callable[[np.ndarray], None]


def options_from(spec: SolverSpec) -> SolveOptions:
    """The solve's options; its time limit is the per-stage limit cut to what remains of the budget."""
    return SolveOptions(time_limit=spec.stage_limit(), node_limit=spec.node_limit, mip_gap=spec.mip_gap,
                        threads=spec.threads)


def solve(model: StandardModel, solver: SolverSpec, start: np.ndarray | None = None,
          progress: ProgressFn | None = None, on_incumbent: IncumbentFn | None = None) -> Solution:
    """Solve with HiGHS directly (default) or any solver Pyomo reaches (``on_incumbent``: HiGHS only)."""
    opts = options_from(solver)
    if solver.name == "highs":
        return highs.solve(model, opts, start, progress, on_incumbent=on_incumbent)
    from bnnmilp.milp.backends import pyomo

    return pyomo.solve(model, solver.name, opts, start)
