"""The value function z(b) of a MILP along one row's right-hand side, and the dual function of one tree.

z(beta) = min{c x : row i's side = beta, other rows, bounds, integrality} is computed by re-solving.
The branch-and-bound dual function of a tree built at b0 is F(beta) = min over leaves t of
F_t(beta), where F_t is the leaf's Neumaier-Shcherbina bound with row i's side replaced by beta: affine
in beta with slope y_t,i (Wolsey 1981; Guzelsoy & Ralphs 2007). F <= z everywhere (each piece is a
weak-duality bound on its leaf's box, and the leaves cover every integer point) and F(b0) = z(b0) when
the tree proves optimality at b0; its slope at b0 is the active leaf's multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.milp.model import StandardModel
from bnnmilp.verification.proofs.bnb import Tree, branch_and_bound, leaf_bound


def with_rhs(model: StandardModel, row: int, beta: float) -> StandardModel:
    """The model with row ``row``'s finite side(s) set to beta (both for an equality row)."""
    lo, up = model.row_lower.copy(), model.row_upper.copy()
    eq = lo[row] == up[row]
    if eq or np.isfinite(lo[row]):
        lo[row] = beta
    if eq or (np.isfinite(up[row]) and not np.isfinite(model.row_lower[row])):
        up[row] = beta
    return replace(model, row_lower=lo, row_upper=up)


def value_function(model: StandardModel, row: int, betas: np.ndarray, time_limit: float | None = None
                   ) -> list[float | None]:
    """The value function z(beta) = min {c x : A x <= b, b_row = beta} along one right-hand side.

    Parameters
    ----------
    model : StandardModel
    row : int
        The row whose right-hand side moves.
    betas : array_like
        The values of that right-hand side.
    time_limit : float, optional
        Seconds per solve.

    Returns
    -------
    list of float or None
        z at each beta, as HiGHS reports it (None where infeasible or not solved to optimality).
    """
    out: list[float | None] = []
    for b in betas:
        sol = highs.solve_or_stop(with_rhs(model, row, float(b)), SolveOptions(time_limit=time_limit, tight=True))
        out.append(sol.objective if sol.status == "optimal" else None)
    return out


@dataclass
class DualFunction:
    pieces: list[tuple[float, float]]  # (intercept, slope) per leaf
    b0: float
    tree: Tree

    def __call__(self, beta: float) -> float:
        return min(a + s * beta for a, s in self.pieces)

    def active(self, beta: float, tol: float = 1e-9) -> list[int]:
        """Indices of the pieces attaining the minimum at beta (several: a kink)."""
        vals = [a + s * beta for a, s in self.pieces]
        m = min(vals)
        return [i for i, v in enumerate(vals) if v <= m + tol * (1 + abs(m))]

    def slope(self, beta: float) -> float:
        return self.pieces[self.active(beta)[0]][1]


def dual_function(model: StandardModel, row: int, b0: float, time_limit: float | None = None) -> DualFunction:
    """The dual function of a recorded branch-and-bound tree at b0, along one right-hand side.

    ``model``, ``row`` and ``time_limit`` as in :func:`value_function`; ``b0``: where the tree is built (cut
    off by HiGHS's optimum there).

    Returns
    -------
    DualFunction
        A piecewise-linear lower bound of the value function, exact at b0 (the subadditive dual's
        bound from the tree's leaf multipliers).
    """
    at = with_rhs(model, row, b0)
    sol = highs.solve_or_stop(at, SolveOptions(time_limit=time_limit, tight=True))
    cutoff = sol.objective if sol.status == "optimal" else None
    tree = branch_and_bound(at, cutoff=cutoff, time_limit=time_limit, propagate=False,  # leaves valid for all b,
                            splits=False)  # each an affine piece y.b + box part
    nodes = {n.id: n for n in tree.nodes}
    pieces = []
    for lf in tree.leaves:
        n = nodes[lf.node]
        y = lf.y.copy()
        # F_t(beta) = F_t(b0) + y_row * (beta - b0): only row ``row``'s side moves with beta
        f0 = leaf_bound(at, y, n.lower, n.upper)
        pieces.append((f0 - y[row] * b0, float(y[row])))
    return DualFunction(pieces, b0, tree)
