"""A MILP of fixed structure solved for a batch of values of (b, c, A): optimal values, solutions and the
gradients of the optimal value, fast.

    z(b, c, A) = min { c x : L <= A x <= U, bounds, integrality }

**Which side b moves.** b_i replaces the lower side L_i where it is finite, else the upper side U_i; on an
equality row (L_i = U_i) both. Its gradient is that side's multiplier: the row's dual where that side binds
at the optimum, 0 where the other side of a ranged row binds (the other side's multiplier is not a
derivative with respect to b_i).

**Gradients, fast** (``exact=False``): dz/dc = x*, from the one solve; dz/db = y and dz/dA_ij = -y_i x*_j
with y the duals of the LP that fixes the integer variables at x* (one LP, on a HiGHS instance kept per
thread). Where z is differentiable these are its gradient (the optimal integer assignment stays optimal
nearby, and the LP is then z there); whether it is, is not checked (``kink`` is None).

**Solvers.** ``solver="highs"`` (the default) or ``"gurobi"`` (gurobipy, an optional extra) finds x*; the
duals of the fixed LP and the exact proofs are HiGHS's either way.

**Gradients, exact** (``exact=True``): the proof-tree method of :mod:`bnnmilp.analysis.diff`, whose probes
also say whether b is a kink of z (several pieces meet) or c is (several optimal solutions).

**Rows over integer variables only** have an activity that moves in steps, so z is piecewise constant in
their b_i (and A_i): their gradient is 0, and ``jump[i]`` says that z may jump at these values (the row
holds with equality at x* on the side b moves: moving that side inwards cuts x* off). A jump is not a
kink: the conservative-Jacobian theory assumes a locally Lipschitz z, which a jump is not.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from bnnmilp.errors import SolverError
from bnnmilp.milp.backends import highs
from bnnmilp.milp.model import StandardModel


def _run(h) -> None:
    """HiGHS's own run, in this thread (highspy's Python ``run`` shares one lock among all instances, so a
    batch on threads would wait for each other, and a solve stopped elsewhere leaves the lock to it)."""
    from highspy._core import _Highs

    _Highs.run(h)


@dataclass
class Solved:
    z: float
    x: np.ndarray
    y: np.ndarray | None  # dz/db (None when not asked for)
    kink: bool | None  # None: not checked (fast gradients)
    jump: np.ndarray  # per row: z may jump at this b_i


def moved_sides(model: StandardModel) -> tuple[np.ndarray, np.ndarray]:
    """(moves lower, moves upper) per row: b replaces L where finite, else U; both on equality rows."""
    lo, up = model.row_lower, model.row_upper
    use_lo = np.isfinite(lo)
    use_up = np.isfinite(up) & (~use_lo | (lo == up))
    return use_lo, use_up


def integer_rows(model: StandardModel, data: np.ndarray | None = None) -> np.ndarray:
    """Rows whose every non-zero is on an integer variable."""
    rows = np.repeat(np.arange(model.n_rows), np.diff(model.indptr))
    cont = ~model.integrality[model.indices]
    if data is not None:
        cont &= data != 0
    has_cont = np.bincount(rows, weights=cont.astype(float), minlength=model.n_rows) > 0
    return ~has_cont


class BatchMilp:
    """Solves the model for many values of b, c and A (each batched or constant), one solver instance per thread."""

    def __init__(self, model: StandardModel, time_limit: float | None = None, workers: int | None = None,
                 exact: bool = False, solver: str = "highs") -> None:
        if solver not in ("highs", "gurobi"):
            raise ValueError(f"solver: 'highs' or 'gurobi', not {solver!r}")
        if solver == "gurobi":
            from bnnmilp.milp.backends.gurobi import gurobipy

            gurobipy()  # the missing extra is said at once, not in a worker thread
        self.model = model
        self.solver = solver
        self.time_limit = time_limit
        self.workers = workers or min(4, os.cpu_count() or 1)
        self.exact = exact
        self.moves_lo, self.moves_up = moved_sides(model)
        self.steps = integer_rows(model, model.data)  # rows over integers only, for the model's own A
        self._local = threading.local()

    # ---- one instance ----------------------------------------------------------------------------------
    def instance(self, b: np.ndarray | None, c: np.ndarray | None, a: np.ndarray | None) -> StandardModel:
        m = self.model
        if b is not None:
            lo, up = m.row_lower.copy(), m.row_upper.copy()
            lo[self.moves_lo], up[self.moves_up] = b[self.moves_lo], b[self.moves_up]
            m = replace(m, row_lower=lo, row_upper=up)
        if c is not None:
            m = replace(m, c=np.asarray(c, np.float64))
        if a is not None:
            m = replace(m, data=np.asarray(a, np.float64))
        return m

    def _highs(self, m: StandardModel, key: str):
        """This thread's HiGHS instance for the MILP (key "milp") or the fixed LP ("lp"), given m's numbers."""
        store = self._local.__dict__
        h = store.get(key)
        if h is None or store.get(key + "_data") is not m.data:
            base = m if key == "milp" else replace(m, integrality=np.zeros(m.n_cols, bool))
            h = store[key] = highs.to_highs(base)
            h.setOptionValue("threads", 1)  # the process's HiGHS scheduler was set to one thread by solve()
            h.setOptionValue("mip_rel_gap", 0.0)  # optimal, not within HiGHS's default gaps and tolerances
            h.setOptionValue("mip_abs_gap", 0.0)
            for opt in ("primal_feasibility_tolerance", "dual_feasibility_tolerance", "mip_feasibility_tolerance"):
                h.setOptionValue(opt, 1e-9)
            if self.time_limit is not None:
                h.setOptionValue("time_limit", float(self.time_limit))
            store[key + "_data"] = m.data
        h.clearSolver()  # every instance from scratch: a batch's answers do not depend on its order or threads
        n, k = m.n_cols, m.n_rows
        h.changeColsCost(n, np.arange(n, dtype=np.int32), m.c)
        h.changeRowsBounds(k, np.arange(k, dtype=np.int32), highs._finite(m.row_lower), highs._finite(m.row_upper))
        return h

    def solve_one(self, b: np.ndarray | None, c: np.ndarray | None, a: np.ndarray | None,
                  duals: bool) -> Solved:
        if threading.current_thread() is threading.main_thread() and (self.solver == "highs" or duals or self.exact):
            highs._use_threads(highs.new_highs(), 1)  # HiGHS keeps one scheduler per process: one thread each
        m = self.instance(b, c, a)
        if self.exact and duals:
            return self._exact(m)
        x = self._solve_gurobi(m) if self.solver == "gurobi" else self._solve_highs(m)
        x[m.integrality] = np.round(x[m.integrality])  # integers as integers: z and dz/dc agree with each other
        z = float(m.c @ x + m.offset)
        y = self._duals(m, x) if duals else None
        return self._finish(m, z, x, y, None)

    def _solve_highs(self, m: StandardModel) -> np.ndarray:
        h = self._highs(m, "milp")
        n = m.n_cols
        h.changeColsBounds(n, np.arange(n, dtype=np.int32), highs._finite(m.col_lower), highs._finite(m.col_upper))
        _run(h)
        status = h.getModelStatus().name
        if status != "kOptimal":
            raise SolverError(f"HiGHS did not solve the MILP to optimality ({status})")
        return np.asarray(h.getSolution().col_value, np.float64)

    def _solve_gurobi(self, m: StandardModel) -> np.ndarray:
        """On this thread's gurobipy model, built again only when A changes; only the numbers that differ from
        the batch's model are set (the instance's arrays are the model's own where not given)."""
        from bnnmilp.milp.backends.gurobi import to_gurobi

        store = self._local.__dict__
        if store.get("grb") is None or store["grb_last"].data is not m.data:
            store["grb"], store["grb_last"] = to_gurobi(m, self.time_limit), m
        x = store["grb"].solve(m, store["grb_last"])
        store["grb_last"] = m
        return x

    def _duals(self, m: StandardModel, x: np.ndarray) -> np.ndarray:
        """The row duals of the LP with every integer variable fixed at its value in x."""
        h = self._highs(m, "lp")
        lo, up = highs._finite(m.col_lower).copy(), highs._finite(m.col_upper).copy()
        fixed = np.round(x[m.integrality])
        lo[m.integrality], up[m.integrality] = fixed, fixed
        h.changeColsBounds(m.n_cols, np.arange(m.n_cols, dtype=np.int32), lo, up)
        _run(h)
        if h.getModelStatus().name != "kOptimal":
            raise SolverError("the LP with the integer variables fixed at the optimum has no optimum")
        return np.asarray(h.getSolution().row_dual, np.float64)

    def _exact(self, m: StandardModel) -> Solved:
        from bnnmilp.analysis.diff import value_and_grad

        vg = value_and_grad(m, self.time_limit)
        return self._finish(m, vg.value, vg.x, vg.y, vg.kink)

    def _finish(self, m: StandardModel, z: float, x: np.ndarray, y: np.ndarray | None, kink: bool | None) -> Solved:
        act = m.row_activity(x)
        tol = 1e-6 * (1.0 + np.abs(act))
        at_lo, at_up = np.abs(act - m.row_lower) <= tol, np.abs(act - m.row_upper) <= tol
        binding = np.where(self.moves_lo, at_lo, False) | np.where(self.moves_up, at_up, False)
        steps = self.steps if m.data is self.model.data else integer_rows(m, m.data)
        jump = steps & binding
        if y is not None:
            y = np.where(binding & ~steps, y, 0.0)  # the moved side's multiplier; 0 where z moves in steps
        return Solved(z, x, y, kink, jump)

    # ---- a batch ---------------------------------------------------------------------------------------
    def solve(self, B: np.ndarray | None = None, C: np.ndarray | None = None, A: np.ndarray | None = None,
              duals: bool = False) -> list[Solved]:
        """Solve each instance of the batch: B (batch, rows), C (batch, cols), A (batch, nnz), or 1-d for one
        value shared by all (None: the model's own)."""
        sizes = {v.shape[0] for v in (B, C, A) if v is not None and v.ndim == 2}
        if len(sizes) > 1:
            raise ValueError(f"batch sizes differ: {sorted(sizes)}")
        batch = sizes.pop() if sizes else 1

        def pick(v: np.ndarray | None, i: int) -> np.ndarray | None:
            return None if v is None else (v[i] if v.ndim == 2 else v)

        def one(i: int) -> Solved:
            return self.solve_one(pick(B, i), pick(C, i), pick(A, i), duals)

        if batch == 1 or self.workers == 1:
            return [one(i) for i in range(batch)]
        highs._use_threads(highs.new_highs(), 1)  # before the threads start: HiGHS has one scheduler per process
        with ThreadPoolExecutor(min(self.workers, batch)) as ex:
            return list(ex.map(one, range(batch)))
