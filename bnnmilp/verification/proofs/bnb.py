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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction

import highspy
import numpy as np

from bnnmilp.milp.backends.highs import to_highs
from bnnmilp.milp.model import StandardModel
from bnnmilp.verification.proofs.propagate import Propagator, Step, reduced_cost_steps
from bnnmilp.verification.proofs.symmetry import Symmetry


@dataclass
class Node:
    id: int
    parent: int | None
    branch: tuple[int | Split, str, float] | None  # (column or disjunction pi, "<=" | ">=", value)
    lower: np.ndarray
    upper: np.ndarray
    estimate: float  # the parent's LP bound
    frac: float = 0.0  # the fractional part of the branched column in the parent's LP solution
    steps: list[Step] = field(default_factory=list)  # bounds derived at this node (propagate.py), in order
    limit: float | None = None  # the propagation hypothesis the box was last propagated under


def _children(node: Node, j: int, v: float) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The boxes of the two children of branching column j at value v: x_j <= floor(v), x_j >= ceil(v)."""
    lo_d, up_d = node.lower.copy(), node.upper.copy()
    up_d[j] = math.floor(v)
    lo_u, up_u = node.lower.copy(), node.upper.copy()
    lo_u[j] = math.ceil(v)
    return (lo_d, up_d), (lo_u, up_u)


@dataclass(frozen=True)
class Split:
    """pi of a general disjunction pi x <= k | pi x >= k + 1 (integer coefficients on integer columns)."""

    cols: tuple[int, ...]
    coefs: tuple[int, ...]


@dataclass
class Leaf:
    node: int
    kind: str  # "bound" | "infeasible" | "integral" | "empty" (propagation emptied the box: no multipliers)
    y: np.ndarray  # row multipliers (dense; written sparse)
    bound: float  # floating-point value of the leaf bound (the checker recomputes it exactly)
    exact: dict[int, Fraction] | None = None  # exact multipliers, where reduced costs had to vanish exactly
    split: tuple[Split, float, float] | None = None  # (pi, side, z): its disjunction's row, with multiplier z


@dataclass
class Tree:
    nodes: list[Node] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    incumbent: float | None = None
    incumbent_x: np.ndarray | None = None
    claimed_bound: float | None = None  # a double no larger than claimed_exact
    claimed_exact: Fraction | None = None  # the smallest exact leaf bound (rounded up for an integral objective)
    failure: str | None = None  # why no claim could be made, when status is "failed"
    status: str = "optimal"  # optimal | node_limit | time_limit | failed
    runtime_s: float = 0.0
    symmetry: Symmetry | None = None  # its rows follow the model's: the leaves' multipliers may use them

    @property
    def nodes_per_s(self) -> float:
        return len(self.nodes) / self.runtime_s if self.runtime_s > 0 else float("inf")


def reduced_costs(model: StandardModel, y: np.ndarray) -> np.ndarray:
    """r = c - A^T y in floating point."""
    r = model.c.copy()
    np.subtract.at(r, model.indices, np.repeat(y, np.diff(model.indptr)) * model.data)
    return r


def leaf_bound(model: StandardModel, y: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               split: tuple[Split, float, float] | None = None) -> float:
    """The Neumaier-Shcherbina bound in floating point (the engine's estimate; the checker is exact); ``split``
    (pi, side, z) adds a disjunction's row with multiplier z."""
    r = reduced_costs(model, y)
    rows = np.where(y > 0, model.row_lower, model.row_upper)
    with np.errstate(invalid="ignore"):
        row_part = np.sum(np.where(y != 0, y * rows, 0.0))
        if split is not None:
            pi, side, z = split
            row_part += z * side
            r[list(pi.cols)] -= z * np.asarray(pi.coefs, dtype=np.float64)
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


def _scale_farkas(y: np.ndarray, target: float, certify: LeafCertifier) -> tuple[np.ndarray, float] | None:
    """Multipliers lambda * y whose bound (with the real objective) reaches ``target``, if doubling finds one."""
    lam = 1.0
    for _ in range(60):
        ys, bound = certify(lam * y)
        if bound >= target:
            return ys, bound
        lam *= 2.0
    return None


def round_down(q: Fraction) -> float:
    """The largest double not above q."""
    f = float(q)
    return math.nextafter(f, -math.inf) if Fraction(f) > q else f


class ExactModel:
    """The model's numbers as rationals, for the engine's own exact work: multipliers whose reduced costs
    vanish exactly on columns with an infinite bound (free columns), and the exact leaf bounds its claim
    rests on. (The checker recomputes everything with code of its own.)"""

    def __init__(self, model: StandardModel) -> None:
        self.model = model
        self.c = np.array([Fraction(v) for v in model.c.tolist()], dtype=object)
        self.data = np.array([Fraction(v) for v in model.data.tolist()], dtype=object)
        rows = np.repeat(np.arange(model.n_rows), np.diff(model.indptr))
        order = np.argsort(model.indices, kind="stable")
        self.col_rows, self.col_pos = rows[order], order
        self.col_ptr = np.concatenate([[0], np.cumsum(np.bincount(model.indices, minlength=model.n_cols))])

    def column(self, j: int) -> list[tuple[int, Fraction]]:
        s, e = int(self.col_ptr[j]), int(self.col_ptr[j + 1])
        return [(int(i), self.data[p]) for i, p in zip(self.col_rows[s:e], self.col_pos[s:e], strict=True)]

    def reduced(self, y: dict[int, Fraction], j: int) -> Fraction:
        return self.c[j] - sum((y[i] * a for i, a in self.column(j) if i in y), Fraction(0))

    def bound(self, y: dict[int, Fraction], lower: np.ndarray, upper: np.ndarray,
              split: tuple[Split, float, float] | None = None) -> Fraction | None:
        """The exact Neumaier-Shcherbina bound over the box, or None when it is -infinity."""
        m = self.model
        r = self.c.copy()
        total = Fraction(float(m.offset))
        if split is not None:
            pi, side, z = split
            total += Fraction(z) * Fraction(side)
            for j, a in zip(pi.cols, pi.coefs, strict=True):
                r[j] -= Fraction(z) * a
        for i, yi in y.items():
            if yi == 0:
                continue
            side = m.row_lower[i] if yi > 0 else m.row_upper[i]
            if not math.isfinite(side):
                return None
            total += yi * Fraction(float(side))
            s, e = int(m.indptr[i]), int(m.indptr[i + 1])
            np.subtract.at(r, m.indices[s:e], yi * self.data[s:e])
        for j in np.flatnonzero(r != 0).tolist():
            side = lower[j] if r[j] > 0 else upper[j]
            if not math.isfinite(side):
                return None
            total += r[j] * Fraction(float(side))
        return total

    def zero_open_costs(self, y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> dict[int, Fraction] | None:
        """Rational multipliers near y whose reduced cost is exactly 0 (or of the harmless sign) on every
        column with an infinite bound, so that the leaf bound is finite; None if none is found."""
        m = self.model
        yq = {int(i): Fraction(float(y[i])) for i in np.flatnonzero(y)}
        open_cols = np.flatnonzero(np.isinf(lower) | np.isinf(upper)).tolist()
        pinned: dict[int, None] = {}
        for _ in range(6):
            bad = []
            for j in open_cols:
                rj = self.reduced(yq, j)
                if (rj > 0 and np.isinf(lower[j])) or (rj < 0 and np.isinf(upper[j])) or (j in pinned and rj != 0):
                    bad.append(j)
            if not bad:
                ok = all(v == 0 or math.isfinite(m.row_lower[i] if v > 0 else m.row_upper[i]) for i, v in yq.items())
                return yq if ok else None
            pinned.update(dict.fromkeys(bad))
            if len(pinned) > 200:
                return None
            delta = self._solve(list(pinned), yq)
            if delta is None:
                return None
            for i, d in delta.items():
                yq[i] = yq.get(i, Fraction(0)) + d
        return None

    def _solve(self, cols: list[int], yq: dict[int, Fraction]) -> dict[int, Fraction] | None:
        """delta with sum_i A_ij delta_i = r_j for j in cols (exact Gauss-Jordan; free rows stay 0).

        Pivots prefer rows with both sides finite (their multiplier may change sign), then large multipliers."""
        m = self.model

        def pref(i: int) -> tuple:
            return (not (math.isfinite(m.row_lower[i]) and math.isfinite(m.row_upper[i])), -abs(yq.get(i, 0)), i)

        pivots: list[tuple[int, dict[int, Fraction], Fraction]] = []  # (row, equation, rhs), pivot coef 1
        for j in cols:
            eq = {i: a for i, a in self.column(j) if a != 0}
            rhs = self.reduced(yq, j)
            for p, peq, prhs in pivots:
                f = eq.get(p)
                if f:
                    for i, a in peq.items():
                        v = eq.get(i, Fraction(0)) - f * a
                        if v:
                            eq[i] = v
                        else:
                            eq.pop(i, None)
                    rhs -= f * prhs
            if not eq:
                if rhs != 0:
                    return None
                continue
            p = min(eq, key=pref)
            f = eq[p]
            eq = {i: a / f for i, a in eq.items()}
            rhs /= f
            for k, (q, qeq, qrhs) in enumerate(pivots):  # eliminate p from the earlier pivots
                g = qeq.get(p)
                if g:
                    new = {i: qeq.get(i, Fraction(0)) - g * eq.get(i, Fraction(0)) for i in set(qeq) | set(eq)}
                    pivots[k] = (q, {i: a for i, a in new.items() if a}, qrhs - g * rhs)
            pivots.append((p, eq, rhs))
        return {p: rhs for p, _, rhs in pivots if rhs}


LeafCertifier = Callable[[np.ndarray], tuple[np.ndarray, float]]


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


RELIABLE = 2  # strong-branching observations per side before a column's pseudo-costs are trusted
STRONG_CANDIDATES = 8  # unreliable candidates strong-branched per node (the most fractional first)
STRONG_ITERATIONS = 200  # simplex iterations per strong-branching LP
PROBING = True  # every node probes its free integer columns (propagate.Propagator.probe)
PROBE_ALL_EVERY = 8  # every column is probed at the root and every 8th node; others by success rate
INFERENCE_WEIGHT = 1.0  # branching score: normalised pseudo-cost product + this x normalised inference product
INFERENCE_EMPTY = 100  # an emptied child counts as this many deduced bounds
RC_FIXING = True  # reduced-cost fixing after each node LP, justified by the LP's multipliers (propagate.py)
SB_PROPAGATE = True  # strong-branching children are propagated first (an empty child scores as infeasible)
SPLIT_MAX_INTS = 64  # the root tries general disjunctions only on models with at most this many integer columns
SPLIT_CANDIDATES = 256  # disjunctions e_a +- e_b tried at the root (two LPs each)


def branch_and_bound(model: StandardModel, cutoff: float | None = None, time_limit: float | None = None,
                     node_limit: int | None = None, priority: np.ndarray | None = None,
                     tight: bool = False, branching: str = "reliability", propagate: bool = True,
                     symmetry: Symmetry | None = None, splits: bool = True, dive: bool = False) -> Tree:
    """Solve (or, with ``cutoff``, prove a lower bound of) the MILP, recording the tree and leaf multipliers.

    ``cutoff``: an objective value known to be attainable (e.g. from a MIP solve); leaves whose bound
    reaches it (exceeds cutoff - 1 for an integral objective) are closed. Without it the engine searches.
    ``priority``: per column, lower values are branched on first (most fractional among equals), with
    ``branching="fractional"``; reliability branching measures instead (a layer order forced on it cost
    15x the nodes on the digits).
    ``tight``: close leaves only once their bound reaches the cutoff itself, even for an integral
    objective, so that the dual function equals the value at b (what gradients need).
    ``branching``: "reliability" (pseudo-costs, initialised by strong branching on a few candidates until
    each has RELIABLE observations per side; the product of the two gains scores a column) or "fractional"
    (the most fractional column). Branching only decides which disjunction to record: either way every
    leaf carries its own multipliers, so the proof's validity does not depend on it.
    ``propagate``: tighten every node's box by bound propagation (for an integral objective also under
    the hypothesis c x + offset <= incumbent - 1), recording each step for the checker (propagate.py).
    Off with ``tight`` and for dual functions, whose leaves must stay valid when a right-hand side moves.
    ``symmetry``: automorphisms of the model (``symmetry.automorphisms``); their lexicographic rows are
    appended to the model and the proof records them (the checker's lemma 13). Not with ``tight``: the
    rows hold for this model's right-hand sides only, not along a dual function's.
    ``dive``: while no incumbent is known (no ``cutoff``), plunge depth first, the child on the side of
    the LP value's rounding first, until an integral leaf gives one; then best bound. Measured without a
    cutoff (benchmarks/certificates.py): 1.3-3.8x fewer nodes on the 2-2-1 instances, 2.3x more on the
    digits group of five (its first dive ends at loss 8, where best bound meets the optimum 2 first), so
    off by default. With a cutoff (``certify``) it changes nothing: the search never lacks an incumbent.
    ``splits``: at the root of a small model, try general disjunctions (``closing_split``); the proof then
    has version 3. Off with ``tight``, and for dual functions (whose pieces are y.b plus the box part).
    """
    if symmetry is not None and tight:
        raise ValueError("symmetry rows hold for this model's right-hand sides only: not with tight=True")
    search = _Search(model, cutoff, tight, priority, branching, propagate, symmetry, splits, dive)
    while search.heap or search.plunge:
        if time_limit is not None and time.perf_counter() - search.t0 > time_limit:
            search.tree.status = "time_limit"
            break
        if node_limit is not None and len(search.tree.nodes) >= node_limit:
            search.tree.status = "node_limit"
            break
        nid = search.plunge.pop() if search.plunge else heapq.heappop(search.heap)[1]
        search.visit(search.tree.nodes[nid], None if time_limit is None else search.t0 + time_limit)
        if search.tree.status == "failed":
            break
    return search.finish(cutoff)


class _Search:
    """One run of the engine: the model's LP relaxation in HiGHS, the tree, the incumbent, and what branching
    has learnt (pseudo-costs per side and column, and the bounds propagation deduced after each branch)."""

    def __init__(self, model: StandardModel, cutoff: float | None, tight: bool, priority: np.ndarray | None,
                 branching: str, propagate: bool, symmetry: Symmetry | None, splits: bool, dive: bool) -> None:
        self.t0 = time.perf_counter()
        if symmetry is not None:
            model = symmetry.augment(model)
        self.model, self.symmetry, self.priority, self.branching = model, symmetry, priority, branching
        self.splits, self.dive = splits and not tight, dive
        self.integral = model.objective_integral and not tight
        self.relaxed = replace(model, integrality=np.zeros(model.n_cols, dtype=bool))
        self.h = _simplex(self.relaxed)
        self.elastic: _Elastic | None = None
        self.exact: ExactModel | None = None
        self.ints = model.integrality
        self.cols = np.arange(model.n_cols, dtype=np.int32)
        self.tree = Tree(symmetry=symmetry)
        self.incumbent = cutoff if cutoff is not None else math.inf
        self.propagator = Propagator(model, continuous=self.integral) if propagate and not tight else None
        self.inf_sum = np.zeros((2, model.n_cols))  # per side and column: bounds deduced after branching
        self.inf_cnt = np.zeros((2, model.n_cols))
        self.pc_sum = np.zeros((2, model.n_cols))  # per side (down, up) and column: bound gain per unit of change
        self.pc_cnt = np.zeros((2, model.n_cols))
        lo0, up0 = model.col_lower.copy(), model.col_upper.copy()
        lo0[self.ints], up0[self.ints] = np.ceil(lo0[self.ints] - 1e-9), np.floor(up0[self.ints] + 1e-9)
        self.tree.nodes.append(Node(0, None, None, lo0, up0, -math.inf))
        self.heap: list[tuple[float, int]] = [(-math.inf, 0)]
        self.plunge: list[int] = []  # the dive's nodes, last first, while there is no incumbent

    # ---- closing leaves ----------------------------------------------------------------------------------
    def closes(self, bound: float) -> bool:
        if not math.isfinite(self.incumbent):
            return False
        if self.integral:
            return bound > self.incumbent - 1 + 1e-6
        return bound >= self.incumbent - 1e-9 * (1 + abs(self.incumbent))

    def limit(self) -> float | None:
        """The propagation hypothesis: c x + offset <= ceil(incumbent) - 1 (integral objective only). The
        claim never exceeds the incumbent, so the checker's ceil(claim) - 1 is at most this."""
        return float(math.ceil(self.incumbent) - 1) if self.integral and math.isfinite(self.incumbent) else None

    def certify(self, y: np.ndarray, node: Node) -> tuple[np.ndarray, float, dict[int, Fraction] | None]:
        """(multipliers, float bound, exact multipliers or None). With an infinite bound in the box, the
        reduced costs of those columns must vanish exactly, or the bound is -inf: the multipliers are then
        made exact rationals."""
        model = self.model
        y = _clean(model, y)
        if np.all(np.isfinite(node.lower)) and np.all(np.isfinite(node.upper)):
            return y, leaf_bound(model, y, node.lower, node.upper), None
        self.exact = self.exact or ExactModel(model)
        yq = self.exact.zero_open_costs(y, node.lower, node.upper)
        b = self.exact.bound(yq, node.lower, node.upper) if yq is not None else None
        if b is None:
            return y, -math.inf, None
        return np.array([float(yq.get(i, 0)) for i in range(model.n_rows)]), round_down(b), yq

    def farkas_leaf(self, node: Node, y: np.ndarray | None, target: float) -> Leaf | None:
        """An infeasible leaf: Farkas multipliers scaled until their bound reaches ``target``."""
        if y is None:
            return None
        keep: list = [None]

        def bound_of(ys: np.ndarray) -> tuple[np.ndarray, float]:
            ys, b, keep[0] = self.certify(ys, node)
            return ys, b

        got = _scale_farkas(y, target, bound_of)
        return None if got is None else Leaf(node.id, "infeasible", got[0], got[1], keep[0])

    def empty_leaf(self, nid: int) -> Leaf:
        """A node whose box holds no point (under the hypothesis): closed without multipliers."""
        return Leaf(nid, "empty", np.zeros(self.model.n_rows), math.inf)

    # ---- one node ----------------------------------------------------------------------------------------
    def visit(self, node: Node, deadline: float | None) -> None:
        """Settle a node: a leaf (empty, infeasible, closed by its bound, integral), the root closed by a general
        disjunction, or two children; a failure sets the tree's status."""
        leaves = self.tree.leaves
        if np.any(node.lower > node.upper):  # a branch past a bound its parent fixed after its LP: no point
            leaves.append(self.empty_leaf(node.id))
            return
        if self.propagator is not None and not self.tighten(node, deadline):
            leaves.append(self.empty_leaf(node.id))
            return
        target = (self.incumbent if math.isfinite(self.incumbent) else 0.0) + 1.0
        leaf = self.farkas_leaf(node, _infeasible_row(self.model, node.lower, node.upper), target)
        if leaf is not None:
            leaves.append(leaf)
            return
        solved = self.solve(node, target)
        if solved is None:
            return
        x, y, bound, yq = solved
        if self.closes(bound):
            leaves.append(Leaf(node.id, "bound", y, bound, yq))
            return
        self.learn(node, bound)
        if not self.fix_by_reduced_costs(node, y, bound, yq):
            leaves.append(self.empty_leaf(node.id))
            return
        j, frac = self.column(x, bound, node)
        if frac <= 1e-6:  # integral LP solution: a new incumbent, and this leaf is closed by its own bound
            self.found(x)
            leaves.append(Leaf(node.id, "integral", y, bound, yq))
            return
        if node.id == 0 and self.splits and self.split_root(x, node, bound):
            return
        self.branch(node, j, x[j], bound)

    def tighten(self, node: Node, deadline: float | None) -> bool:
        """Propagate (and probe) the node's box, recording the steps; False when the box is empty."""
        prop, limit = self.propagator, self.limit()
        fresh = node.branch is None or node.limit != limit  # else only the branched column moved
        node.limit = limit
        node.lower, node.upper, node.steps, empty = prop.run(node.lower, node.upper, node.limit,
                                                             None if fresh else [node.branch[0]])
        if node.branch is not None:
            self.infer(0 if node.branch[1] == "<=" else 1, node.branch[0], len(node.steps), empty)
        if not empty and PROBING:
            cand = np.flatnonzero(self.ints & (node.lower < node.upper))
            node.lower, node.upper, probed, empty = prop.probe(node.lower, node.upper, limit, cand,
                                                               everything=node.id % PROBE_ALL_EVERY == 0,
                                                               deadline=deadline)
            node.steps += probed
        return not empty

    def solve(self, node: Node, target: float) -> tuple[np.ndarray, np.ndarray, float, dict | None] | None:
        """The node's LP: (x, multipliers, bound, exact multipliers), or None once an infeasible leaf is recorded
        or the run has failed."""
        h, model = self.h, self.model
        h.changeColsBounds(model.n_cols, self.cols, node.lower, node.upper)
        h.run()
        st = h.getModelStatus()
        if st == highspy.HighsModelStatus.kInfeasible:
            self.elastic = self.elastic or _Elastic(model)
            leaf = self.farkas_leaf(node, self.elastic.farkas(node.lower, node.upper), target)
            if leaf is None:
                self.fail(f"node {node.id}: LP infeasible but no Farkas multipliers found")
            else:
                self.tree.leaves.append(leaf)
            return None
        if st != highspy.HighsModelStatus.kOptimal:
            self.fail(f"node {node.id}: LP status {st.name}")
            return None
        sol = h.getSolution()
        return np.asarray(sol.col_value), *self.certify(np.asarray(sol.row_dual, dtype=np.float64), node)

    def fail(self, why: str) -> None:
        self.tree.status, self.tree.failure = "failed", why

    def fix_by_reduced_costs(self, node: Node, y: np.ndarray, bound: float, yq: dict | None) -> bool:
        """Fix columns whose reduced cost would push the bound past the hypothesis, then propagate; False when
        the box is empty."""
        limit = self.limit()
        if self.propagator is None or not RC_FIXING or yq is not None or limit is None:
            return True
        fixing = reduced_cost_steps(self.ints, reduced_costs(self.model, y), y, bound, limit, node.lower, node.upper)
        for st in fixing:
            (node.upper if st.sense == "<=" else node.lower)[st.column] = st.value
        node.steps += fixing
        empty = bool(np.any(node.lower > node.upper))
        if fixing and not empty:
            node.lower, node.upper, more, empty = self.propagator.run(node.lower, node.upper, limit,
                                                                      [st.column for st in fixing])
            node.steps += more
        return not empty

    def found(self, x: np.ndarray) -> None:
        """An integral LP solution: the incumbent when better; the dive, if any, is over."""
        value = float(self.model.c @ x + self.model.offset)
        if self.integral:
            value = float(round(value))
        if value < self.incumbent:
            self.incumbent = value
            self.tree.incumbent, self.tree.incumbent_x = value, x.copy()
            for k in self.plunge:  # best bound from here on
                heapq.heappush(self.heap, (self.tree.nodes[k].estimate, k))
            self.plunge.clear()

    # ---- branching ---------------------------------------------------------------------------------------
    def column(self, x: np.ndarray, bound: float, node: Node) -> tuple[int, float]:
        """The column to branch on and its fractionality (0 when the LP solution is integral)."""
        frac = np.abs(x - np.round(x))
        frac[~self.ints] = 0.0
        if self.priority is not None and self.branching != "reliability" and np.any(frac > 1e-6):
            p = np.where(frac > 1e-6, self.priority, np.inf)
            frac = np.where(p == p.min(), frac, 0.0)
        j = int(np.argmax(frac))
        if frac[j] > 1e-6 and self.branching == "reliability":
            j = self.choose(x, frac, bound, node)
        return j, float(frac[j])

    def branch(self, node: Node, j: int, v: float, bound: float) -> None:
        """Two children x_j <= floor(v) and x_j >= ceil(v), queued by bound (or dived into, the side v rounds to
        first, while there is no incumbent)."""
        diving = self.dive and not math.isfinite(self.incumbent)
        for sense in (("<=", ">=") if not diving or v - math.floor(v) >= 0.5 else (">=", "<=")):
            lo, up = node.lower.copy(), node.upper.copy()
            if sense == "<=":
                up[j] = math.floor(v)
                val = up[j]
            else:
                lo[j] = math.ceil(v)
                val = lo[j]
            child = Node(len(self.tree.nodes), node.id, (j, sense, float(val)), lo, up, bound,
                         frac=float(v - math.floor(v)), limit=node.limit)
            self.tree.nodes.append(child)
            if diving:  # the second pushed (the side v rounds to) is dived into first
                self.plunge.append(child.id)
            else:
                heapq.heappush(self.heap, (bound, child.id))

    def learn(self, node: Node, bound: float) -> None:
        """A child's bound updates the pseudo-cost of the branch that made it."""
        if node.branch is None or not math.isfinite(node.estimate):
            return
        bj, bsense, _ = node.branch
        side = 0 if bsense == "<=" else 1
        f = node.frac if side == 0 else 1.0 - node.frac
        if f > 1e-9:
            self.pc_sum[side, bj] += max(0.0, bound - node.estimate) / f
            self.pc_cnt[side, bj] += 1

    def infer(self, side: int, j: int, found: int, empty: bool) -> None:
        self.inf_sum[side, j] += found + (INFERENCE_EMPTY if empty else 0)
        self.inf_cnt[side, j] += 1

    def lp_value(self, lo: np.ndarray, up: np.ndarray) -> float:
        """A strong-branching child's LP value (inf if infeasible), within STRONG_ITERATIONS."""
        h = self.h
        h.changeColsBounds(self.model.n_cols, self.cols, lo, up)
        h.run()
        st = h.getModelStatus()
        if st == highspy.HighsModelStatus.kInfeasible:
            return math.inf
        info = h.getInfo()
        return float(info.objective_function_value) if st in (
            highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kIterationLimit) else math.nan

    def strong_branch(self, x: np.ndarray, frac: np.ndarray, bound: float, node: Node, unreliable: np.ndarray) -> None:
        """Measure both children of the most fractional unreliable candidates: pseudo-costs and inferences."""
        h = self.h
        h.setOptionValue("simplex_iteration_limit", STRONG_ITERATIONS)
        for j in unreliable[np.argsort(-frac[unreliable], kind="stable")][:STRONG_CANDIDATES]:
            f = x[j] - math.floor(x[j])
            for side, (lo, up) in enumerate(_children(node, j, x[j])):
                empty, box = False, (lo, up)
                if self.propagator is not None and SB_PROPAGATE:
                    *box, found, empty = self.propagator.run(lo, up, self.limit(), [int(j)])
                    self.infer(side, int(j), len(found), empty)
                z = math.inf if empty else self.lp_value(*box)
                if math.isnan(z):
                    continue
                gain = (1e6 if math.isinf(z) else max(0.0, z - bound)) / (f if side == 0 else 1.0 - f)
                self.pc_sum[side, j] += gain
                self.pc_cnt[side, j] += 1
        h.setOptionValue("simplex_iteration_limit", 2**31 - 1)
        h.changeColsBounds(self.model.n_cols, self.cols, node.lower, node.upper)

    def choose(self, x: np.ndarray, frac: np.ndarray, bound: float, node: Node) -> int:
        """Reliability branching: strong-branch the most fractional unreliable candidates, then take the
        column whose pseudo-cost gains (down x up) are largest."""
        pc_sum, pc_cnt = self.pc_sum, self.pc_cnt
        cand = np.flatnonzero(frac > 1e-6)
        unreliable = cand[np.minimum(pc_cnt[0, cand], pc_cnt[1, cand]) < RELIABLE]
        if unreliable.size:
            self.strong_branch(x, frac, bound, node, unreliable)
        f = x[cand] - np.floor(x[cand])
        score = np.maximum(_mean_gain(pc_sum, pc_cnt, cand, 0) * f, 1e-6) \
            * np.maximum(_mean_gain(pc_sum, pc_cnt, cand, 1) * (1 - f), 1e-6)
        if self.propagator is not None and INFERENCE_WEIGHT > 0:  # where LP gains are flat (a big-M bound of 0),
            iscore = np.maximum(_mean_gain(self.inf_sum, self.inf_cnt, cand, 0), 1e-3) \
                * np.maximum(_mean_gain(self.inf_sum, self.inf_cnt, cand, 1), 1e-3)  # what propagation deduces
            score = score / max(float(score.mean()), 1e-12) + INFERENCE_WEIGHT * iscore / max(float(iscore.mean()),
                                                                                                1e-12)
        return int(cand[np.argmax(score)])

    def split_root(self, x: np.ndarray, node: Node, bound: float) -> bool:
        """Settle the root by a general disjunction whose two sides the LP closes (``closing_split``): two leaves."""
        got = closing_split(self, x, node)
        if got is None:
            return False
        pi, sides = got
        for sense, side, ys, z, b in sides:
            child = Node(len(self.tree.nodes), node.id, (pi, sense, side), node.lower.copy(), node.upper.copy(),
                         bound)
            self.tree.nodes.append(child)
            self.tree.leaves.append(Leaf(child.id, "bound", ys, b, None, (pi, side, z)))
        return True

    # ---- the end -----------------------------------------------------------------------------------------
    def finish(self, cutoff: float | None) -> Tree:
        """Scale early infeasible leaves past the incumbent, state the claim, drop unused symmetry rows."""
        tree, model = self.tree, self.model
        if tree.incumbent is None and cutoff is not None:
            tree.incumbent = cutoff
        if tree.status == "optimal" and math.isfinite(self.incumbent):  # infeasible leaves closed before the
            for k, lf in enumerate(tree.leaves):                           # incumbent was known: past it
                if lf.kind == "infeasible" and lf.bound < self.incumbent + 1:
                    tree.leaves[k] = self.farkas_leaf(tree.nodes[lf.node], lf.y, self.incumbent + 1) or lf
        if tree.status == "optimal" and tree.leaves:
            _claim(tree, model, self.integral, self.exact or ExactModel(model),
                   hypothesis=self.propagator is not None and self.integral and any(n.steps for n in tree.nodes))
        if self.symmetry is not None:
            _drop_unused_symmetry(tree, model.n_rows - len(self.symmetry.terms))
        tree.runtime_s = time.perf_counter() - self.t0
        return tree


def _simplex(relaxed: StandardModel) -> highspy.Highs:
    """The LP relaxation in HiGHS: dual simplex without presolve, so that every solve warm-starts."""
    h = to_highs(relaxed)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("solver", "simplex")
    return h


def _mean_gain(total: np.ndarray, count: np.ndarray, cand: np.ndarray, side: int) -> np.ndarray:
    """Per candidate, its mean observed gain on one side; the mean over observed columns where it has none."""
    seen = count[side] > 0
    mean = total[side][seen].mean() if np.any(seen) else 1.0
    return np.where(count[side, cand] > 0, total[side, cand] / np.maximum(count[side, cand], 1), mean)


def closing_split(search: _Search, x: np.ndarray, node: Node
                  ) -> tuple[Split, list[tuple[str, float, np.ndarray, float, float]]] | None:
    """A general disjunction pi x <= k | pi x >= k + 1 with pi = e_a +- e_b (a fractional at the root LP's
    x, b any other integer column) whose two sides the LP closes, each a leaf: (pi, [(sense, side,
    multipliers, z, bound)] * 2). Branching on such disjunctions (Karamanov & Cornuejols 2011) settles
    what no variable can: on Guzelsoy & Ralphs's example x1 - x2 <= 0 | x1 - x2 >= 1 closes the root,
    where every variable disjunction leaves a side open (a tree of 5 nodes at least). Small models with
    a finite box only (the leaf bounds are then plain sums)."""
    model = search.model
    int_cols = np.flatnonzero(search.ints)
    if int_cols.size > SPLIT_MAX_INTS or not (np.all(np.isfinite(node.lower)) and np.all(np.isfinite(node.upper))):
        return None
    hs = _simplex(search.relaxed)  # its own LP: a failed search leaves the engine's LP and its basis as they were
    hs.changeColsBounds(model.n_cols, search.cols, node.lower, node.upper)
    tried = 0
    for a in (int(j) for j in int_cols if abs(x[j] - round(x[j])) > 1e-6):
        for b in (int(j) for j in int_cols if j != a):
            for sgn in (1, -1):
                v = x[a] + sgn * x[b]
                if abs(v - round(v)) <= 1e-6:
                    continue
                tried += 1
                if tried > SPLIT_CANDIDATES:
                    return None
                order = sorted([(a, 1), (b, sgn)])
                pi = Split(tuple(o[0] for o in order), tuple(o[1] for o in order))
                sides = _split_sides(search, hs, pi, v, node)
                if len(sides) == 2:
                    return pi, sides
    return None


def _split_sides(search: _Search, hs: highspy.Highs, pi: Split, v: float, node: Node) -> list:
    """The sides pi x <= floor(v) and pi x >= ceil(v) that the LP closes, in order, up to the first that it
    does not close."""
    model = search.model
    sides = []
    for sense, side in (("<=", float(math.floor(v))), (">=", float(math.ceil(v)))):
        hs.addRow(-math.inf if sense == "<=" else side, side if sense == "<=" else math.inf, 2,
                  np.array(pi.cols, dtype=np.int32), np.array(pi.coefs, dtype=np.float64))
        hs.run()
        ok = hs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        duals = np.asarray(hs.getSolution().row_dual, dtype=np.float64) if ok else None
        hs.deleteRows(1, np.array([model.n_rows], dtype=np.int32))
        if duals is None:
            break
        y = _clean(model, duals[:model.n_rows])
        z = min(float(duals[-1]), 0.0) if sense == "<=" else max(float(duals[-1]), 0.0)
        bound = leaf_bound(model, y, node.lower, node.upper, (pi, side, z))
        if not search.closes(bound):
            break
        sides.append((sense, side, y, z, bound))
    return sides


def _drop_unused_symmetry(tree: Tree, n_rows: int) -> None:
    """Where no multiplier and no step uses a symmetry row (row n_rows or later), the proof holds for the model
    alone: drop the record (a loss-0 proof stays one leaf of a few bytes, checked without lemma 13)."""
    def uses(y: np.ndarray | None) -> bool:
        return y is not None and bool(np.any(y[n_rows:] != 0))

    def step_uses(st: Step) -> bool:
        return st.row >= n_rows or uses(st.duals) or any(map(step_uses, st.proof or []))

    if any(uses(lf.y) or (lf.exact is not None and any(i >= n_rows for i in lf.exact)) for lf in tree.leaves) \
            or any(step_uses(st) for node in tree.nodes for st in node.steps):
        return
    tree.symmetry = None
    for lf in tree.leaves:
        lf.y = lf.y[:n_rows]
    cut: dict[int, np.ndarray] = {}  # one vector per node LP, shared by its fixings (the proof writes it once)
    for node in tree.nodes:
        for st in node.steps:
            if st.duals is not None:
                st.duals = cut.setdefault(id(st.duals), st.duals[:n_rows])


def _claim(tree: Tree, model: StandardModel, integral: bool, exact: ExactModel, hypothesis: bool) -> None:
    """The claim is the smallest exact leaf bound (rounded up for an integral objective: lemma 8 of the
    checker), computed exactly for every leaf whose float bound comes near the smallest."""
    finite = [lf.bound for lf in tree.leaves if lf.kind != "empty"]
    if finite:
        fmin = min(finite)
        if not math.isfinite(fmin):
            tree.status = "failed"
            tree.failure = ("a leaf's bound is -infinity (a column with an infinite bound keeps a nonzero reduced "
                            "cost that no exact correction removes)")
            return
        near = fmin + 1e-6 * (1 + abs(fmin))
        bounds = []
        for lf in tree.leaves:
            if lf.bound > near or lf.kind == "empty":
                continue
            node = tree.nodes[lf.node]
            yq = lf.exact if lf.exact is not None else {int(i): Fraction(float(lf.y[i])) for i in np.flatnonzero(lf.y)}
            b = exact.bound(yq, node.lower, node.upper, lf.split)
            if b is None:
                tree.status, tree.failure = "failed", f"leaf {lf.node}: the exact bound is -infinity"
                return
            bounds.append(b)
        q = Fraction(math.ceil(min(bounds))) if integral else min(bounds)
    elif tree.incumbent is not None:  # every leaf emptied (under c x + offset <= ceil(incumbent) - 1): the incumbent
        q = Fraction(tree.incumbent)
    else:
        tree.status, tree.failure = "failed", "every leaf is empty but there is no incumbent to claim"
        return
    if hypothesis and tree.incumbent is not None:  # steps assumed c x + offset <= ceil(incumbent) - 1
        q = min(q, Fraction(tree.incumbent))
    tree.claimed_exact = q
    tree.claimed_bound = round_down(tree.claimed_exact)
