"""What a backend takes (options, a start) and returns (a solution with its status and bound)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

STATUSES = {  # every status a solve or a training run reports, and what it means
    "optimal": "solved to optimality (a search: reached loss 0, which no network can beat)",
    "time_limit": "stopped at its time limit or budget: the best point so far",
    "node_limit": "stopped at its branch-and-bound node limit: the best point so far",
    "interrupted": "stopped by Ctrl-C, SIGTERM or SIGHUP: the best point so far",
    "infeasible": "no point satisfies the rows",
    "unbounded": "the objective has no lower bound",
    "infeasible_or_unbounded": "no finite optimum; which of the two was not settled within the time limit",
    "error": "the solver failed",
    "heuristic": "no solve: the STE heuristic alone (training.method: ste)",
    "stalled": "a local search stopped where its neighbourhoods found nothing better",
}
FAILED = ("unbounded", "infeasible_or_unbounded", "error")  # statuses that leave no usable result


@dataclass(frozen=True)
class SolveOptions:
    time_limit: float | None = None
    node_limit: int | None = None  # branch-and-bound nodes: a limit that does not depend on the machine
    mip_gap: float = 0.0
    threads: int = 1
    presolve: bool = True
    # with a time limit: presolve on for this share of it, then, if that ends with neither a point nor a proof,
    # presolve off for the rest (HiGHS's presolve can loop past its time limit on small integer models)
    presolve_share: float | None = None
    tight: bool = False  # feasibility tolerances 1e-9 instead of HiGHS' defaults (value functions)


@dataclass
class Progress:
    """A snapshot of a running MIP solve, as reported by the solver's callbacks."""

    incumbent: float = float("inf")
    bound: float = float("-inf")
    gap: float = float("inf")
    nodes: int = 0
    elapsed: float = 0.0
    stage: str = ""  # which stage of a staged solve (loss, margin, ...), when the caller says


@dataclass
class Solution:
    status: str  # a key of STATUSES
    x: np.ndarray | None  # best point found (None if none)
    objective: float | None  # solver's objective of x (floating point, as reported)
    bound: float | None  # solver's best proven bound (as reported)
    gap: float | None
    nodes: int
    runtime_s: float
    solver: str
    solver_version: str
    info: dict = field(default_factory=dict)

    @property
    def has_point(self) -> bool:
        return self.x is not None


ProgressFn = Callable[[Progress], None]


def require_optimal(sol: Solution, what: str, hint: str = "") -> Solution:
    """``sol`` if optimal with a point, else the error its status means: no finite optimum (infeasible,
    unbounded: exit 1) or no result within the limits (exit 3, with ``hint``)."""
    from bnnmilp.errors import InfeasibleError, SolverError, UnboundedError

    if sol.status == "optimal" and sol.objective is not None:
        return sol
    if sol.info.get("interrupted_by_user"):  # Ctrl-C or a signal that the solver took: the command ends with it
        raise KeyboardInterrupt
    if sol.status == "infeasible":
        raise InfeasibleError(f"{what} is infeasible: no point satisfies its rows and bounds")
    if sol.status == "unbounded":
        raise UnboundedError(f"{what} is unbounded: its objective has no lower bound")
    if sol.status == "infeasible_or_unbounded":
        raise UnboundedError(f"{what} has no finite optimum (infeasible or unbounded; not settled in time)")
    raise SolverError(f"HiGHS did not solve {what} to optimality ({sol.status}){hint}")
