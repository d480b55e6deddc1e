"""Gradients through a MILP's optimal value: elements of its conservative Jacobian (Bolte et al. 2021).

For z(b, c, A) = min{c x : L <= A x <= U, bounds, integrality} with an optimal x* and a branch-and-bound
tree proving it (``certificates.bnb``, leaves closed only at the optimum), the dual function
F(beta) = min_t [y_t . beta + (bound terms of leaf t)] satisfies F <= z everywhere and F = z at b, with
active leaves t* (bound = z). Then, where z is differentiable,

    dz/db_i   = y_t*,i          (b_i: the side of row i that the multiplier uses)
    dz/dc_j   = x*_j
    dz/dA_ij  = -y_t*,i x*_j

At a kink (several active leaves with different multipliers, or several optimal solutions) these are
elements of a conservative field, not "the" derivative: ``kink`` is set and every active candidate is
returned. The argmin x*(b) is piecewise constant, so its own derivative is zero almost everywhere; only
the optimal value is differentiated here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bnnmilp.errors import SolverError
from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.milp.backends.base import require_optimal
from bnnmilp.milp.model import StandardModel
from bnnmilp.verification.proofs.bnb import Tree, branch_and_bound


@dataclass
class ValueAndGrad:
    value: float
    x: np.ndarray  # an optimal solution: dz/dc
    y: np.ndarray  # the chosen active leaf's row multipliers: dz/db
    kink_rhs: bool  # z is not differentiable in b here (or it could not be confirmed)
    candidates: list[np.ndarray] = field(default_factory=list)  # candidate multipliers (dz/db)
    tree: Tree | None = None
    x_candidates: list[np.ndarray] = field(default_factory=list)  # optimal solutions found (dz/dc)
    kink_obj: bool = False  # several optimal solutions: z is not differentiable in c here

    @property
    def kink(self) -> bool:
        return self.kink_rhs or self.kink_obj

    def kink_for(self, wrt: str) -> bool:
        """rhs: kink_rhs; obj: kink_obj; matrix (uses y and x): either."""
        return {"rhs": self.kink_rhs, "obj": self.kink_obj}.get(wrt, self.kink)

    @property
    def grad_rhs(self) -> np.ndarray:
        return self.y

    @property
    def grad_obj(self) -> np.ndarray:
        return self.x

    def grad_matrix(self, model: StandardModel) -> np.ndarray:
        """dz/dA for every stored nonzero of A (aligned with model.data): -y_i x*_j."""
        rows = np.repeat(np.arange(model.n_rows), np.diff(model.indptr))
        return -self.y[rows] * self.x[model.indices]


def _box_model(model: StandardModel, lower: np.ndarray, upper: np.ndarray) -> StandardModel:
    return replace(model, col_lower=lower, col_upper=upper)


def _leaf_duals(model: StandardModel, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    lp = _box_model(replace(model, integrality=np.zeros(model.n_cols, dtype=bool)), lower, upper)
    h = highs.to_highs(lp)
    h.setOptionValue("presolve", "off")
    h.run()
    if h.getModelStatus().name != "kOptimal":
        return None
    return np.asarray(h.getSolution().row_dual, dtype=np.float64)


def _shift(model: StandardModel, d: np.ndarray) -> StandardModel:
    return replace(model, row_lower=model.row_lower + d, row_upper=model.row_upper + d)


def value_and_grad(model: StandardModel, time_limit: float | None = None, priority: np.ndarray | None = None,
                   tol: float = 1e-7, seed: int = 0) -> ValueAndGrad:
    """Solve the MILP, prove it with a recorded tree, and return z with its gradients (see module doc).

    Parameters
    ----------
    model : StandardModel
    time_limit : float, optional
    priority : ndarray, optional
        Branching priorities (lower first).
    tol : float
        Tolerance of the kink probe.
    seed : int
        Seed of the probe's random direction.

    Returns
    -------
    ValueAndGrad
        ``value`` (z), its gradients with respect to c and the right-hand sides (an element of the
        conservative Jacobian; at a kink, which piece), and whether b is a kink.

    Candidates are exact multipliers: those of the leaf holding x*, of every other leaf that attains z
    (confirmed by a MILP solve on its box), and the LP duals of the leaves holding the optima just beside
    b (the adjacent pieces at a kink).
    A probe of z along a random direction d of the right-hand sides, z(b + h d) and z(b - h d), tells
    whether b is a kink (the two one-sided slopes differ) and, where it is not, which candidate is the
    gradient (the one with y.d equal to the directional derivative). At a kink the leaf of x* is
    returned and ``kink`` is set. The same probe along a random direction of c detects several optimal
    solutions (a kink with respect to the objective), which also sets ``kink``.
    """
    sol = require_optimal(highs.solve_or_stop(model, SolveOptions(time_limit=time_limit, tight=True)), "the MILP",
                          "; try a longer --time-limit")
    z = float(sol.objective)
    tree = branch_and_bound(model, cutoff=z, time_limit=time_limit, priority=priority, tight=True)
    if tree.status != "optimal":
        raise SolverError(f"the proof tree was not completed ({tree.status}"
                          + (f": {tree.failure}" if tree.failure else "") + "); try a longer --time-limit")
    x = np.asarray(tree.incumbent_x if tree.incumbent_x is not None else sol.x)
    nodes = {n.id: n for n in tree.nodes}
    scale = tol * (1 + abs(z))

    def holds(n, pt) -> bool:
        return bool(np.all(pt >= n.lower - 1e-6) and np.all(pt <= n.upper + 1e-6))

    home = next((lf for lf in tree.leaves if holds(nodes[lf.node], x)), None)
    if home is None:
        home = min(tree.leaves, key=lambda lf: lf.bound)
    cands = [home.y]

    def add(y: np.ndarray | None) -> None:
        if y is not None and not any(np.allclose(y, c, atol=1e-7, rtol=1e-6) for c in cands):
            cands.append(y)

    for lf in tree.leaves:
        if lf is home or lf.bound > z + scale or any(np.allclose(lf.y, c, atol=1e-9) for c in cands):
            continue
        n = nodes[lf.node]
        other = highs.solve_or_stop(_box_model(model, n.lower, n.upper),
                                    SolveOptions(time_limit=time_limit, tight=True))
        if other.status == "optimal" and other.objective is not None and other.objective <= z + scale:
            add(lf.y)
    d = np.random.default_rng(seed).standard_normal(model.n_rows)
    d /= np.linalg.norm(d)
    n = nodes[home.node]
    h = 1e-5
    add(_leaf_duals(_shift(model, h * d), n.lower, n.upper))
    add(_leaf_duals(_shift(model, -h * d), n.lower, n.upper))
    zp = highs.solve_or_stop(_shift(model, h * d), SolveOptions(time_limit=time_limit, tight=True))
    zm = highs.solve_or_stop(_shift(model, -h * d), SolveOptions(time_limit=time_limit, tight=True))
    # the pieces on either side: the leaves holding the optima at b +- h d, with their LP duals there
    for side, sgn in ((zp, 1.0), (zm, -1.0)):
        if side.x is not None:
            lf = next((lf for lf in tree.leaves if holds(nodes[lf.node], side.x)), None)
            if lf is not None:
                add(_leaf_duals(_shift(model, sgn * h * d), nodes[lf.node].lower, nodes[lf.node].upper))
    y, kink = home.y, True
    if zp.status == zm.status == "optimal":
        right, left = (zp.objective - z) / h, (z - zm.objective) / h
        if abs(right - left) <= 1e-3 * (1 + abs(right)):
            slope = (right + left) / 2
            best = min(cands, key=lambda c: abs(float(c @ d) - slope))
            if abs(float(best @ d) - slope) <= 1e-3 * (1 + abs(slope)):
                y, kink = best, False
    # the objective: x* is the gradient where the optimal solution is unique; probe along a random e
    e = np.random.default_rng(seed + 1).standard_normal(model.n_cols)
    e /= np.linalg.norm(e)
    cp = highs.solve_or_stop(replace(model, c=model.c + h * e), SolveOptions(time_limit=time_limit, tight=True))
    cm = highs.solve_or_stop(replace(model, c=model.c - h * e), SolveOptions(time_limit=time_limit, tight=True))
    x_cands = [x] + [s.x for s in (cp, cm) if s.x is not None and not np.allclose(s.x, x, atol=1e-7)]
    kink_obj = True
    if cp.status == cm.status == "optimal":
        right, left = (cp.objective - z) / h, (z - cm.objective) / h
        if abs(right - left) <= 1e-3 * (1 + abs(right)) and abs(float(x @ e) - (right + left) / 2) <= 1e-3:
            kink_obj = False
    return ValueAndGrad(z, x, y, kink, cands, tree, x_cands, kink_obj)


class MilpLayer:
    """The optimal value of a MILP as a layer, one instance at a time with exact gradients and kink flags: a
    thin front to :class:`bnnmilp.analysis.layer.BatchMilp` (``exact=True``), which also says which side of a
    row b moves and flags jumps. For batches and PyTorch: :mod:`bnnmilp.torch`.

    ``forward(b=None, c=None)`` solves; ``backward(g)`` returns {"b": g dz/db, "c": g dz/dc, "A": g dz/dA
    (aligned with model.data), "kink": ..., "jump": per row} for the last forward.
    """

    def __init__(self, model: StandardModel, time_limit: float | None = None) -> None:
        from bnnmilp.analysis.layer import BatchMilp

        self.model = model
        self.solver = BatchMilp(model, time_limit, workers=1, exact=True)
        self._last = None

    def forward(self, b: np.ndarray | None = None, c: np.ndarray | None = None) -> float:
        b = None if b is None else np.asarray(b, np.float64)
        self._last = self.solver.solve_one(b, c, None, True)
        return self._last.z

    def backward(self, g: float = 1.0) -> dict[str, np.ndarray | bool]:
        if self._last is None:
            raise RuntimeError("backward() before forward()")
        s = self._last
        rows = np.repeat(np.arange(self.model.n_rows), np.diff(self.model.indptr))
        return {"b": g * s.y, "c": g * s.x, "A": -g * s.y[rows] * s.x[self.model.indices], "kink": s.kink,
                "jump": s.jump}


def torch_function():
    """A torch.autograd.Function computing z(b, c) of a :class:`MilpLayer` (torch imported lazily); the batched
    layer is :class:`bnnmilp.torch.MilpLayer`.

    Usage: ``MilpValue = torch_function(); z = MilpValue.apply(layer, b_tensor, c_tensor)``.
    """
    import torch

    class MilpValue(torch.autograd.Function):
        @staticmethod
        def forward(ctx, layer: MilpLayer, b, c):  # type: ignore[override]
            z = layer.forward(b.detach().cpu().numpy(), c.detach().cpu().numpy())
            g = layer.backward(1.0)
            ctx.save_for_backward(torch.as_tensor(g["b"], dtype=b.dtype), torch.as_tensor(g["c"], dtype=c.dtype))
            return torch.as_tensor(z, dtype=b.dtype)

        @staticmethod
        def backward(ctx, grad_out):  # type: ignore[override]
            gb, gc = ctx.saved_tensors
            return None, grad_out * gb, grad_out * gc

    return MilpValue
