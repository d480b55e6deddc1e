"""A branch-and-bound engine over HiGHS LP relaxations that records a checkable tree.

For min{c x : L <= A x <= U, l <= x <= g, x_j integer (j in I)} the engine branches on fractional
integer variables (x_j <= floor(v) | x_j >= ceil(v)), solves each node's LP with warm-started dual
simplex, and records, per leaf t, the LP row duals y_t. Any multipliers of the right signs give the
bound of Neumaier & Shcherbina (2004),

    c x + offset >= offset + sum_i y_i (L_i if y_i > 0 else U_i) + sum_j min(r_j l_j, r_j g_j),
    r = c - A^T y,

over the leaf's box, which the checker recomputes in exact rational arithmetic. Leaves whose LP is
infeasible get multipliers from an elastic LP (rows relaxed by penalised slacks): scaled up, they make
the same bound exceed any claim. With a cutoff (e.g. the incumbent of a HiGHS MIP solve) the engine only
has to prove, not search: a leaf closes once its bound reaches the claim (for an integral objective,
once it exceeds claim - 1). The minimum over leaves is F(b) of the branch-and-bound dual function
(Wolsey 1981; Guzelsoy & Ralphs 2007).
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field, replace

import highspy
import numpy as np

from bnnmilp.backends.highs import to_highs
from bnnmilp.model import StandardModel


@dataclass
class Node:
    id: int
    parent: int | None
    branch: tuple[int, str, float] | None  # (column, "<=" | ">=", value)
    lower: np.ndarray
    upper: np.ndarray
    estimate: float


@dataclass
class Leaf:
    node: int
    kind: str  # "bound" | "infeasible" | "integral"
    y: np.ndarray  # row multipliers (dense; written sparse)
    bound: float  # floating-point value of the leaf bound (the checker recomputes it exactly)


@dataclass
class Tree:
    nodes: list[Node] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    incumbent: float | None = None
    incumbent_x: np.ndarray | None = None
    claimed_bound: float | None = None
    status: str = "optimal"  # optimal | node_limit | time_limit
    runtime_s: float = 0.0

    @property
    def nodes_per_s(self) -> float:
        return len(self.nodes) / self.runtime_s if self.runtime_s > 0 else float("inf")


def leaf_bound(model: StandardModel, y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """The Neumaier-Shcherbina bound in floating point (the engine's estimate; the checker is exact)."""
    r = model.c.copy()
    np.subtract.at(r, model.indices, np.repeat(y, np.diff(model.indptr)) * model.data)
    rows = np.where(y > 0, model.row_lower, model.row_upper)
    with np.errstate(invalid="ignore"):
        row_part = np.sum(np.where(y != 0, y * rows, 0.0))
        box = np.where(r > 0, r * lower, np.where(r < 0, r * upper, 0.0))
    return float(model.offset + row_part + np.sum(box))


def _clean(model: StandardModel, y: np.ndarray) -> np.ndarray:
    """Zero the multipliers whose row side is infinite (they would make the bound -inf)."""
    y = np.where(np.abs(y) < 1e-12, 0.0, y)
    y = np.where((y > 0) & ~np.isfinite(model.row_lower), 0.0, y)
    return np.where((y < 0) & ~np.isfinite(model.row_upper), 0.0, y)


class _Elastic:
    """min sum(s+ + s-) s.t. L <= A x + s+ - s- <= U, box: duals prove an LP infeasible (a Farkas certificate)."""

    def __init__(self, model: StandardModel) -> None:
        n, m = model.n_cols, model.n_rows
        counts = np.diff(model.indptr)
        rows = np.repeat(np.arange(m), counts)
        # append two slack columns per row: +s and -s
        idx = np.concatenate([model.indices, n + np.arange(m), n + m + np.arange(m)])
        val = np.concatenate([model.data, np.ones(m), -np.ones(m)])
        rr = np.concatenate([rows, np.arange(m), np.arange(m)])
        order = np.argsort(rr, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rr, minlength=m))])
        self.n = n
        self.model = replace(model, c=np.concatenate([np.zeros(n), np.ones(2 * m)]), offset=0.0,
                             col_lower=np.concatenate([model.col_lower, np.zeros(2 * m)]),
                             col_upper=np.concatenate([model.col_upper, np.full(2 * m, np.inf)]),
                             integrality=np.zeros(n + 2 * m, dtype=bool), indptr=indptr, indices=idx[order],
                             data=val[order], names=None)
        self.h = to_highs(self.model)

    def farkas(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
        k = np.arange(self.n, dtype=np.int32)
        self.h.changeColsBounds(self.n, k, lower, upper)
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        if self.h.getInfo().objective_function_value <= 1e-9:
            return None
        return np.asarray(self.h.getSolution().row_dual, dtype=np.float64)


def _scale_farkas(model: StandardModel, y: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  target: float) -> np.ndarray | None:
    """Multipliers lambda * y whose bound (with the real objective) reaches ``target``, if doubling finds one."""
    lam = 1.0
    for _ in range(60):
        ys = _clean(model, lam * y)
        if leaf_bound(model, ys, lower, upper) >= target:
            return ys
        lam *= 2.0
    return None


def _infeasible_row(model: StandardModel, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    """A row that the box alone makes infeasible (activity bounds), as Farkas multipliers +-e_i."""
    rows = np.repeat(np.arange(model.n_rows), np.diff(model.indptr))
    a = model.data
    lo, up = lower[model.indices], upper[model.indices]
    with np.errstate(invalid="ignore"):
        mn = np.where(a > 0, a * lo, a * up)
        mx = np.where(a > 0, a * up, a * lo)
    min_act = np.zeros(model.n_rows)
    max_act = np.zeros(model.n_rows)
    np.add.at(min_act, rows, mn)
    np.add.at(max_act, rows, mx)
    scale = 1e-7 * (1 + np.abs(model.row_lower.clip(-1e30, 1e30)) + np.abs(model.row_upper.clip(-1e30, 1e30)))
    too_low = np.flatnonzero(max_act < model.row_lower - scale)
    too_high = np.flatnonzero(min_act > model.row_upper + scale)
    if too_low.size == 0 and too_high.size == 0:
        return None
    y = np.zeros(model.n_rows)
    if too_low.size:
        y[too_low[0]] = 1.0
    else:
        y[too_high[0]] = -1.0
    return y


def branch_and_bound(model: StandardModel, cutoff: float | None = None, time_limit: float | None = None,
                     node_limit: int | None = None, priority: np.ndarray | None = None,
                     tight: bool = False) -> Tree:
    """Solve (or, with ``cutoff``, prove a lower bound of) the MILP, recording the tree and leaf multipliers.

    ``cutoff``: an objective value known to be attainable (e.g. from a MIP solve); leaves whose bound
    reaches it (exceeds cutoff - 1 for an integral objective) are closed. Without it the engine searches.
    ``priority``: per column, lower values are branched on first (most fractional among equals).
    ``tight``: close leaves only once their bound reaches the cutoff itself, even for an integral
    objective, so that the dual function equals the value at b (what gradients need).
    """
    t0 = time.perf_counter()
    integral = model.objective_integral and not tight
    relaxed = replace(model, integrality=np.zeros(model.n_cols, dtype=bool))
    h = to_highs(relaxed)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("solver", "simplex")
    elastic: _Elastic | None = None
    lo0 = model.col_lower.copy()
    up0 = model.col_upper.copy()
    ints = model.integrality
    lo0[ints], up0[ints] = np.ceil(lo0[ints] - 1e-9), np.floor(up0[ints] + 1e-9)
    tree = Tree()
    incumbent = cutoff if cutoff is not None else math.inf

    def closes(bound: float) -> bool:
        if not math.isfinite(incumbent):
            return False
        if integral:
            return bound > incumbent - 1 + 1e-6
        return bound >= incumbent - 1e-9 * (1 + abs(incumbent))

    root = Node(0, None, None, lo0, up0, -math.inf)
    tree.nodes.append(root)
    heap: list[tuple[float, int]] = [(-math.inf, 0)]
    cols = np.arange(model.n_cols, dtype=np.int32)
    while heap:
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            tree.status = "time_limit"
            break
        if node_limit is not None and len(tree.nodes) >= node_limit:
            tree.status = "node_limit"
            break
        _, nid = heapq.heappop(heap)
        node = tree.nodes[nid]
        target = (incumbent if math.isfinite(incumbent) else 0.0) + 1.0
        ray = _infeasible_row(model, node.lower, node.upper)
        if ray is not None:
            ys = _scale_farkas(model, ray, node.lower, node.upper, target)
            if ys is not None:
                tree.leaves.append(Leaf(nid, "infeasible", ys, leaf_bound(model, ys, node.lower, node.upper)))
                continue
        h.changeColsBounds(model.n_cols, cols, node.lower, node.upper)
        h.run()
        st = h.getModelStatus()
        if st == highspy.HighsModelStatus.kInfeasible:
            if elastic is None:
                elastic = _Elastic(model)
            y = elastic.farkas(node.lower, node.upper)
            ys = _scale_farkas(model, y, node.lower, node.upper, target) if y is not None else None
            if ys is None:
                raise RuntimeError(f"node {nid}: LP infeasible but no Farkas multipliers found")
            tree.leaves.append(Leaf(nid, "infeasible", ys, leaf_bound(model, ys, node.lower, node.upper)))
            continue
        if st != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"node {nid}: LP status {st.name}")
        sol = h.getSolution()
        x = np.asarray(sol.col_value)
        y = _clean(model, np.asarray(sol.row_dual, dtype=np.float64))
        bound = leaf_bound(model, y, node.lower, node.upper)
        if closes(bound):
            tree.leaves.append(Leaf(nid, "bound", y, bound))
            continue
        frac = np.abs(x - np.round(x))
        frac[~ints] = 0.0
        if priority is not None and np.any(frac > 1e-6):
            p = np.where(frac > 1e-6, priority, np.inf)
            frac = np.where(p == p.min(), frac, 0.0)
        j = int(np.argmax(frac))
        if frac[j] <= 1e-6:  # integral LP solution: a new incumbent, and this leaf is closed by its own bound
            value = float(model.c @ x + model.offset)
            if integral:
                value = float(round(value))
            if value < incumbent:
                incumbent = value
                tree.incumbent, tree.incumbent_x = value, x.copy()
            tree.leaves.append(Leaf(nid, "integral", y, bound))
            continue
        v = x[j]
        for sense in ("<=", ">="):
            lo, up = node.lower.copy(), node.upper.copy()
            if sense == "<=":
                up[j] = math.floor(v)
                val = up[j]
            else:
                lo[j] = math.ceil(v)
                val = lo[j]
            child = Node(len(tree.nodes), nid, (j, sense, float(val)), lo, up, bound)
            tree.nodes.append(child)
            heapq.heappush(heap, (bound, child.id))
    if tree.incumbent is None and cutoff is not None:
        tree.incumbent = cutoff
    bounds = [lf.bound for lf in tree.leaves]
    if tree.status == "optimal" and bounds:
        b = min(bounds)
        if integral:
            tree.claimed_bound = float(min(math.ceil(b - 1e-6), tree.incumbent)) if tree.incumbent is not None \
                else float(math.ceil(b - 1e-6))
        else:
            tree.claimed_bound = b - 1e-9 * (1 + abs(b))
    tree.runtime_s = time.perf_counter() - t0
    return tree
