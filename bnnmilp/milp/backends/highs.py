"""The embedded backend: numpy arrays -> highspy, no modelling layer in between.

Ctrl-C during a solve stops HiGHS (its interrupt callbacks) and keeps its
incumbent; progress comes from the MIP-interrupt callback, whose handler only
copies four numbers (it fires thousands of times a second).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import highspy
import numpy as np
from highspy._core import _Highs as _CoreHighs

from bnnmilp.milp.backends.base import Progress, ProgressFn, Solution, SolveOptions
from bnnmilp.milp.model import StandardModel

_STATUS = {
    "kOptimal": "optimal",
    "kTimeLimit": "time_limit",
    "kSolutionLimit": "node_limit",  # mip_max_nodes (bnnmilp sets no other solution limit)
    "kInterrupt": "interrupted",
    "kInfeasible": "infeasible",
    "kUnbounded": "unbounded",
    "kUnboundedOrInfeasible": "infeasible_or_unbounded",
}


_banner_shown = False


def new_highs() -> highspy.Highs:
    """A silent Highs instance. The first one prints a banner on stdout even with output off:
    keep it off file descriptor 1 so that ``--json`` output stays clean."""
    global _banner_shown
    if not _banner_shown:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_shown = True
    else:
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    # HiGHS has one thread scheduler per process, sized by the first solve: every instance asks for the count
    # in use (one, unless a solve asked for more through _use_threads), so none meets a scheduler of another size
    global _threads_in_use
    _threads_in_use = _threads_in_use or 1
    h.setOptionValue("threads", _threads_in_use)
    return h


def version() -> str:
    h = new_highs()
    return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"


def _finite(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -highspy.kHighsInf, highspy.kHighsInf).astype(np.float64)


def to_highs(model: StandardModel, names: bool = False) -> highspy.Highs:
    """A silent Highs instance holding the model (row-wise matrix passed in one call)."""
    h = new_highs()
    lp = highspy.HighsLp()
    lp.num_col_ = model.n_cols
    lp.num_row_ = model.n_rows
    lp.col_cost_ = model.c
    lp.offset_ = model.offset
    lp.col_lower_ = _finite(model.col_lower)
    lp.col_upper_ = _finite(model.col_upper)
    lp.row_lower_ = _finite(model.row_lower)
    lp.row_upper_ = _finite(model.row_upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = model.indptr.astype(np.int32)
    lp.a_matrix_.index_ = model.indices.astype(np.int32)
    lp.a_matrix_.value_ = model.data
    lp.a_matrix_.num_col_ = model.n_cols
    lp.a_matrix_.num_row_ = model.n_rows
    if model.integrality.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                           for i in model.integrality]
    if names:
        lp.col_names_ = model.col_names()
        lp.row_names_ = model.row_names()
    h.passModel(lp)
    return h


_threads_in_use: int | None = None


def _use_threads(h: highspy.Highs, threads: int) -> None:
    """HiGHS keeps one thread scheduler per process: reset it when a solve asks for another count."""
    global _threads_in_use
    if _threads_in_use is not None and _threads_in_use != threads:
        highspy.Highs.resetGlobalScheduler(True)
    h.setOptionValue("threads", threads)
    _threads_in_use = threads


def write(model: StandardModel, path: str | Path) -> None:
    """Write MPS or LP (by extension) with HiGHS' own writer.

    HiGHS does not report failed writes (a full disk leaves a truncated file and status ok): a write that
    leaves the file system without a free block is taken as failed, and the file is removed."""
    import errno

    h = to_highs(model, names=True)
    status = h.writeModel(str(path))
    vfs = os.statvfs(Path(path).parent)
    full = vfs.f_bavail * vfs.f_frsize < max(vfs.f_frsize, 1)
    if status != highspy.HighsStatus.kOk or full:
        Path(path).unlink(missing_ok=True)
        raise OSError(errno.ENOSPC if full else errno.EIO,
                      "No space left on device" if full else "HiGHS could not write the model", str(path))


CHECKPOINT_EVERY = 2.0  # seconds between two incumbents handed to ``on_incumbent``


STALL_GRACE = 1.0  # seconds (at least; 10% of the time limit) past the limit before cancelling, then abandoning
_ABANDONED: list = []  # (Highs, thread) of solves that ignored their time limit and cancelSolve: kept alive
MIN_FIRST = 1.0  # seconds the presolve-on attempt gets at least (``presolve_share``)
# seconds per nonzero (at least MIN_FIRST) that presolve may take in a ``presolve_share`` attempt before it counts
# as looping: no interrupt callback has been called yet (they start after presolve), so presolve still runs
PRESOLVE_STALL = 1e-5


def solve(model: StandardModel, options: SolveOptions, start: np.ndarray | None = None,
          progress: ProgressFn | None = None, h: highspy.Highs | None = None,
          on_incumbent: Callable[[np.ndarray], None] | None = None) -> Solution:
    """Solve ``model``; with ``h``, re-solve an instance already holding it (possibly with changed bounds).

    ``on_incumbent(x)`` gets the newest improving solution at most every CHECKPOINT_EVERY seconds, called
    from this thread (the solver's callback only keeps a copy), so that a caller can checkpoint it.

    A solve that runs STALL_GRACE past its time limit is cancelled; one that ignores that too (HiGHS's
    presolve can loop on small models with general integers, ERGO-Code/HiGHS#2226) is abandoned: its thread
    is left running, the Solution says ``info["abandoned"]`` and carries no point from the solver (``h`` must
    not be used again). With ``options.presolve_share`` a presolve-on attempt gets that share of the time
    limit and, where it ends with neither a point nor a proof, presolve off gets the rest."""
    t0 = time.perf_counter()
    sol = _solve_shared(model, options, start, progress, h, on_incumbent)
    if sol.status != "infeasible_or_unbounded":
        return sol
    if h is not None:  # the caller's instance may hold other bounds than ``model``: its old reading
        sol.status = "infeasible"
        return sol
    return _settle(model, options, sol, t0)


def solve_or_stop(model: StandardModel, options: SolveOptions, start: np.ndarray | None = None,
                  progress: ProgressFn | None = None, h: highspy.Highs | None = None) -> Solution:
    """:func:`solve` for callers that cannot use a point found before Ctrl-C or a signal (proofs, queries,
    value functions): the interrupt the solver took is raised again, so the command ends instead of going on
    to its next solve. Training keeps such points and calls :func:`solve`."""
    sol = solve(model, options, start, progress, h)
    if sol.info.get("interrupted_by_user"):
        raise KeyboardInterrupt
    return sol


def _settle(model: StandardModel, options: SolveOptions, sol: Solution, t0: float) -> Solution:
    """HiGHS's "infeasible or unbounded" (its presolve does not say which), settled by a second solve of the
    rows alone (objective 0) in the time left: a feasible point means unbounded, none means infeasible."""
    left = None if options.time_limit is None else max(0.01, float(options.time_limit) - (time.perf_counter() - t0))
    rows_only = replace(model, c=np.zeros_like(model.c), offset=0.0)
    feas = _solve(rows_only, replace(options, time_limit=left, presolve=False, presolve_share=None), None, None,
                  None, None)
    sol.status = {"optimal": "unbounded", "infeasible": "infeasible"}.get(feas.status, sol.status)
    sol.x, sol.objective, sol.runtime_s = None, None, time.perf_counter() - t0
    return sol


def _solve_shared(model: StandardModel, options: SolveOptions, start: np.ndarray | None,
                  progress: ProgressFn | None, h: highspy.Highs | None,
                  on_incumbent: Callable[[np.ndarray], None] | None) -> Solution:
    """``options.presolve_share`` of the time limit with presolve, the rest without (see :func:`solve`)."""
    share = options.presolve_share
    if share is None or not options.presolve or options.time_limit is None:
        return _solve(model, options, start, progress, h, on_incumbent)
    t0 = time.perf_counter()
    limit = float(options.time_limit)
    first = _solve(model, replace(options, time_limit=min(limit, max(MIN_FIRST, share * limit)), presolve_share=None),
                   start, progress, h, on_incumbent, max(MIN_FIRST, PRESOLVE_STALL * model.nnz))
    abandoned = bool(first.info.get("abandoned"))
    if first.x is not None or first.status not in ("time_limit", "node_limit", "error"):
        return first
    if abandoned and h is not None:
        return first  # the caller's instance is lost with its changes: the caller rebuilds
    rest = max(0.01, limit - (time.perf_counter() - t0))
    second = _solve(model, replace(options, time_limit=rest, presolve=False, presolve_share=None), start, progress,
                    None if abandoned else h, on_incumbent)
    second.info["presolve_on"] = first.status + (" (abandoned)" if abandoned else "")
    second.runtime_s = time.perf_counter() - t0
    return second


def _solve(model: StandardModel, options: SolveOptions, start: np.ndarray | None, progress: ProgressFn | None,
           h: highspy.Highs | None, on_incumbent: Callable[[np.ndarray], None] | None,
           stall: float | None = None) -> Solution:
    """One HiGHS run with the watchdog; ``stall``: seconds after which a run that has not yet called any
    interrupt callback (still in presolve) is stopped as if at its time limit."""
    h = to_highs(model) if h is None else h
    _set_options(h, model, options, start)
    watch = _Watch(progress if model.integrality.any() else None, on_incumbent if model.integrality.any() else None)
    t0 = time.perf_counter()
    abandoned = watch.run(h, options.time_limit, stall)
    if abandoned is not None:
        return abandoned
    return _solution(h, model, watch.interrupted, watch.root, time.perf_counter() - t0)


def _set_options(h: highspy.Highs, model: StandardModel, options: SolveOptions, start: np.ndarray | None) -> None:
    h.setOptionValue("time_limit", float(options.time_limit) if options.time_limit is not None else highspy.kHighsInf)
    h.setOptionValue("mip_rel_gap", float(options.mip_gap))
    h.setOptionValue("mip_max_nodes", int(options.node_limit) if options.node_limit is not None else 2**31 - 1)
    _use_threads(h, int(options.threads))
    h.setOptionValue("presolve", "on" if options.presolve else "off")
    if options.tight:
        for opt in ("primal_feasibility_tolerance", "dual_feasibility_tolerance", "mip_feasibility_tolerance"):
            h.setOptionValue(opt, 1e-9)
    if options.mip_gap == 0.0 and model.objective_integral:
        # an integral objective is optimal once the gap is below 1: exact, and saves the last nodes
        h.setOptionValue("mip_abs_gap", 1.0 - 1e-6)
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(map(float, start))
        sol.value_valid = True
        h.setSolution(sol)


class _Watch:
    """HiGHS's core run in a thread of our own, watched: progress snapshots, incumbents handed over at most
    every CHECKPOINT_EVERY seconds, and a stop through the interrupt callbacks at the time limit plus a grace,
    on a stall in presolve, or on Ctrl-C. (highspy's startSolve/wait share one lock among all instances, so a
    solve that never returns would block every later one.)"""

    def __init__(self, progress: ProgressFn | None, on_incumbent: Callable[[np.ndarray], None] | None) -> None:
        self.progress, self.on_incumbent = progress, on_incumbent
        self.snap = Progress()
        self.root = float("-inf")  # the dual bound while the root node is processed (no branching yet)
        self.newest: list[np.ndarray] = []
        self.handed = -np.inf
        self.stop, self.called = threading.Event(), threading.Event()
        self.interrupted = False
        self.stopper = self.on_stop  # one bound method, added and removed (highspy compares callbacks)

    def on_interrupt(self, e: object) -> None:
        out, snap = e.data_out, self.snap  # type: ignore[attr-defined]
        snap.incumbent, snap.bound, snap.gap = out.mip_primal_bound, out.mip_dual_bound, out.mip_gap
        snap.nodes, snap.elapsed = out.mip_node_count, out.running_time
        if snap.nodes == 0:
            self.root = max(self.root, snap.bound)

    def on_improving(self, e: object) -> None:
        self.newest[:] = [np.array(e.data_out.mip_solution, dtype=np.float64)]  # type: ignore[attr-defined]

    def on_stop(self, e: object) -> None:
        self.called.set()
        if self.stop.is_set():
            e.interrupt()  # type: ignore[attr-defined]

    def hand_over(self) -> None:
        if self.newest and time.perf_counter() - self.handed >= CHECKPOINT_EVERY:
            x_new = self.newest.pop()
            self.handed = time.perf_counter()
            self.on_incumbent(x_new)  # type: ignore[misc]

    def run(self, h: highspy.Highs, limit: float | None, stall: float | None) -> Solution | None:
        """Run to the end (None), or give up on a run that ignores its stop: the last incumbent, labelled."""
        if self.progress is not None:  # a Python callback slows the solve: only on request
            h.cbMipInterrupt += self.on_interrupt
        if self.on_incumbent is not None:
            h.cbMipImprovingSolution += self.on_improving
        h.cbSimplexInterrupt += self.stopper
        h.cbIpmInterrupt += self.stopper
        h.cbMipInterrupt += self.stopper
        t0 = time.perf_counter()
        thread = threading.Thread(target=_CoreHighs.run, args=(h,), daemon=True)
        thread.start()
        grace = None if limit is None else max(STALL_GRACE, 0.1 * float(limit))
        cancelled_at: float | None = None
        wait = STALL_GRACE
        while thread.is_alive():
            try:
                thread.join(0.1)
                if not thread.is_alive():
                    break
                elapsed = time.perf_counter() - t0
                if self.progress is not None:
                    self.snap.elapsed = elapsed
                    self.progress(self.snap)
                if self.on_incumbent is not None:
                    self.hand_over()
                over = grace is not None and elapsed > float(limit) + grace  # type: ignore[arg-type]
                stalled = stall is not None and elapsed > stall and not self.called.is_set()
                if cancelled_at is None and (over or stalled):
                    cancelled_at, wait = elapsed, (grace if over else STALL_GRACE)
                    self.stop.set()
                elif cancelled_at is not None and elapsed > cancelled_at + wait:
                    _ABANDONED.append((h, thread))
                    x_last = self.newest[-1] if self.newest else None
                    return Solution("time_limit", x_last, None, None, None, 0, elapsed, "highs", "",
                                    {"abandoned": True, "interrupted_by_user": self.interrupted})
            except KeyboardInterrupt:
                self.interrupted = True
                self.stop.set()
        h.cbSimplexInterrupt -= self.stopper
        h.cbIpmInterrupt -= self.stopper
        h.cbMipInterrupt -= self.stopper
        return None


def _solution(h: highspy.Highs, model: StandardModel, interrupted: bool, root: float, runtime: float) -> Solution:
    """What the run left: status, point, objective, bound, gap and nodes as HiGHS reports them."""
    status = _STATUS.get(h.getModelStatus().name, "error")
    if interrupted and status != "optimal":
        status = "interrupted"
    info = h.getInfo()
    has_point = info.primal_solution_status == 2
    x = np.array(h.getSolution().col_value, dtype=np.float64) if has_point else None
    is_mip = bool(model.integrality.any())
    obj = float(info.objective_function_value) if has_point else None
    if is_mip:
        bound = float(info.mip_dual_bound)
        gap = float(info.mip_gap)
        nodes = int(info.mip_node_count)
    else:
        bound, gap, nodes = (obj if status == "optimal" else None), (0.0 if status == "optimal" else None), 0
    if bound is not None and not np.isfinite(bound):
        bound = None
    if gap is not None and not np.isfinite(gap):
        gap = None
    ver = f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
    extra: dict = {"interrupted_by_user": interrupted}
    if is_mip:  # solved at the root (no branching): the final bound is the root's; else seen with progress only
        rb = bound if nodes <= 1 and bound is not None else root
        extra["root_bound"] = float(rb) if rb is not None and np.isfinite(rb) else None
    return Solution(status, x, obj, bound, gap, nodes, runtime, "highs", ver, extra)


def _check_finite(path: str, lp: highspy.HighsLp, value: np.ndarray) -> None:
    """Objective and matrix coefficients must be finite (a reader turns 1e400 into infinity), and no bound may
    exclude every value (a lower bound of +inf)."""
    from bnnmilp.errors import ModelFileError

    cost = np.asarray(lp.col_cost_, dtype=np.float64)
    for what, arr in (("objective coefficient", cost), ("constraint coefficient", value)):
        bad = np.flatnonzero(~np.isfinite(arr) | (np.abs(arr) >= highspy.kHighsInf))
        if bad.size:
            raise ModelFileError(path, None, f"{what} {arr[bad[0]]} is not a finite number (at most 1e20 in size)")
    for what, lower, upper in (("column", lp.col_lower_, lp.col_upper_), ("row", lp.row_lower_, lp.row_upper_)):
        lo, up = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        bad = np.flatnonzero(np.isnan(lo) | np.isnan(up) | (lo >= highspy.kHighsInf) | (up <= -highspy.kHighsInf))
        if bad.size:
            raise ModelFileError(path, f"{what} {bad[0]}", f"bounds [{lo[bad[0]]}, {up[bad[0]]}] admit no value")


def read(path: str | Path) -> StandardModel:
    """Read an MPS or LP file (HiGHS' reader) into the standard-form arrays; maximisation is negated."""
    from bnnmilp.errors import ModelFileError
    from bnnmilp.io.yamlio import is_stdio, read_input
    from bnnmilp.milp.model import Block

    h = new_highs()
    if is_stdio(path):  # standard input: MPS if it has a ROWS section, else LP (HiGHS reads by extension)
        import re
        import tempfile

        raw = read_input(path, ModelFileError)
        fmt = "mps" if re.search(rb"^ROWS\s*$", raw, re.M) else "lp"
        with tempfile.TemporaryDirectory(prefix="bnnmilp_") as d:
            tmp = Path(d) / f"stdin.{fmt}"
            tmp.write_bytes(raw)
            ok = h.readModel(str(tmp)) == highspy.HighsStatus.kOk
    else:
        if not Path(path).exists():
            raise ModelFileError(str(path), None, "file not found")
        ok = h.readModel(str(path)) == highspy.HighsStatus.kOk
    if not ok:
        raise ModelFileError(str(path), None, "not a model file HiGHS can read (MPS or LP)")
    lp = h.getLp()
    n, m = lp.num_col_, lp.num_row_
    if n == 0:
        raise ModelFileError(str(path), None, "a model with no variables (an empty or truncated MPS/LP file)")
    a = lp.a_matrix_
    start, index = np.asarray(a.start_, dtype=np.int64), np.asarray(a.index_, dtype=np.int64)
    value = np.asarray(a.value_, dtype=np.float64)
    _check_finite(str(path), lp, value)
    if a.format_ == highspy.MatrixFormat.kColwise:  # transpose to rows
        cols = np.repeat(np.arange(n), np.diff(start))
        order = np.lexsort((cols, index))
        counts = np.bincount(index, minlength=m)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        indices, data = cols[order], value[order]
    else:
        indptr, indices, data = start, index, value
    sign = -1.0 if lp.sense_ == highspy.ObjSense.kMaximize else 1.0
    inf = highspy.kHighsInf

    def unbound(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return np.where(v >= inf, np.inf, np.where(v <= -inf, -np.inf, v))

    integ = np.zeros(n, dtype=bool)
    if len(lp.integrality_):
        integ = np.array([t == highspy.HighsVarType.kInteger for t in lp.integrality_], dtype=bool)
    col_names = list(lp.col_names_) if len(lp.col_names_) == n else [f"c{j}" for j in range(n)]
    row_names = list(lp.row_names_) if len(lp.row_names_) == m else [f"r{i}" for i in range(m)]
    model = StandardModel(
        c=sign * np.asarray(lp.col_cost_, dtype=np.float64), offset=sign * float(lp.offset_),
        col_lower=unbound(lp.col_lower_), col_upper=unbound(lp.col_upper_), integrality=integ,
        indptr=np.asarray(indptr, dtype=np.int64), indices=np.asarray(indices, dtype=np.int64),
        data=np.asarray(data, dtype=np.float64), row_lower=unbound(lp.row_lower_), row_upper=unbound(lp.row_upper_),
        col_blocks={"cols": Block("cols", 0, (n,))}, row_blocks={"rows": Block("rows", 0, (m,))},
        name=Path(path).stem, names=(col_names, row_names),
    )
    model.objective_integral = model.objective_integral_by_structure()
    return model
