"""A query of linear constraints on a network's input x and output y = M v + c as one MILP.

v is the last step layer's bits (the step layers as in ``formulations.robustness``), or x itself for a
network with no step layer. Every constraint is a row ``a.x + b.v + const (<= | < | ==) 0``, divided by its
largest coefficient. Constraints that must hold get a common slack t in [-1, 1]:

    a.x + b.v + const + t <= 0

and an assertion with several disjuncts gets one selector z_d per disjunct (sum_d z_d >= 1), its rows relaxed
by big-M from interval arithmetic over the box where z_d = 0. The objective maximises w <= t (and w <= s, the
slack that keeps layer 1's bit-0 rows strictly below their thresholds on real inputs). The optimum w* says:

- w* < 0: every point of the box violates some constraint (of every disjunct) by at least -w* (unsat);
- w* > 0: the point satisfies every constraint strictly (a candidate, replayed exactly before it counts);
- w* = 0: a boundary case, settled by the exact replay of the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bnnmilp.formulations.registry import register
from bnnmilp.formulations.robustness import add_network, ibp_bounds
from bnnmilp.milp.model import INF, ModelBuilder, StandardModel
from bnnmilp.network import Network


@dataclass(frozen=True)
class Row:
    """a.x + b.v + const (sense) 0 over input columns ``x_idx`` and output-basis columns ``v_idx``."""

    x_idx: np.ndarray
    x_coef: np.ndarray
    v_idx: np.ndarray
    v_coef: np.ndarray
    const: float
    sense: str  # <= | < | ==

    def scale(self) -> float:
        return float(max(np.abs(self.x_coef).max(initial=0.0), np.abs(self.v_coef).max(initial=0.0)))


@dataclass
class LinearQuery:
    hidden: Network | None  # step layers (thresholds on their lattice), or None: v = x
    deltas: tuple[float, ...]
    lo: np.ndarray  # the input box (an outer approximation of the query's bounds in doubles)
    hi: np.ndarray
    integer: bool
    hard: list[Row] = field(default_factory=list)
    clauses: list[list[list[Row]]] = field(default_factory=list)  # assertions with several disjuncts


def _upper(row: Row, v_lo: np.ndarray, v_hi: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """An upper bound of a.x + b.v + const over the box (interval arithmetic, widened a little)."""
    ux = np.maximum(row.x_coef * lo[row.x_idx], row.x_coef * hi[row.x_idx]).sum()
    uv = np.maximum(row.v_coef * v_lo[row.v_idx], row.v_coef * v_hi[row.v_idx]).sum()
    total = float(ux + uv + row.const)
    return total + 1e-9 * (abs(total) + 1.0)


@register("linear_query")
class LinearQueryFormulation:
    """See the module docstring."""

    def build(self, q: LinearQuery) -> StandardModel:
        b = ModelBuilder("bnnmilp_vnnlib")
        xp = b.add_vars("x", (q.lo.size,), q.lo, q.hi, q.integer)
        t = b.add_vars("t", (), -1.0, 1.0)
        w = b.add_vars("w", (), -1.0, 1.0)
        b.add_rows("w_t", (), np.array([w, t]), np.array([1.0, -1.0]), -INF, 0.0)
        if q.hidden is not None:
            strict = not q.integer and not q.deltas[0]
            s = b.add_vars("s", (), 0.0, 1.0) if strict else None
            U = add_network(b, q.hidden, xp, q.lo, q.hi, q.deltas, slack=s, only_free=True)
            if s is not None:
                b.add_rows("w_s", (), np.array([w, s]), np.array([1.0, -1.0]), -INF, 0.0)
            g_lo, g_hi = ibp_bounds(q.hidden, q.lo, q.hi)[-1]
            vp, v_lo, v_hi = U[-1], (g_lo >= 0).astype(np.float64), (g_hi >= 0).astype(np.float64)
        else:
            vp, v_lo, v_hi = xp, q.lo, q.hi
        for k, row in enumerate(q.hard):
            self.add(b, f"hard{k}", row, xp, vp, t, None, 0.0, 0.0)
        for k, clause in enumerate(q.clauses):
            z = b.add_vars(f"z{k}", (len(clause),), 0.0, 1.0, True)
            b.add_rows(f"some{k}", (), z[None, :], np.ones((1, len(clause))), 1.0, INF)
            for d, conj in enumerate(clause):
                for j, row in enumerate(conj):
                    up = max(_upper(row, v_lo, v_hi, q.lo, q.hi) / (row.scale() or 1.0) + 1.0, 0.0)
                    neg = Row(row.x_idx, -row.x_coef, row.v_idx, -row.v_coef, -row.const, row.sense)
                    down = max(_upper(neg, v_lo, v_hi, q.lo, q.hi) / (row.scale() or 1.0) + 1.0, 0.0)
                    self.add(b, f"c{k}_{d}_{j}", row, xp, vp, t, int(z[d]), up, down)
        b.set_objective(np.array([w]), -np.ones(1))
        return b.build(objective_integral=False)

    @staticmethod
    def add(b: ModelBuilder, name: str, row: Row, xp: np.ndarray, vp: np.ndarray, t: np.ndarray, z: int | None,
            big_up: float, big_down: float) -> None:
        """row / scale (+ t) <= big (1 - z); equalities without t, both sides."""
        sc = row.scale() or 1.0
        cols, inverse = np.unique(np.concatenate([xp[row.x_idx], vp[row.v_idx]]).astype(np.int64),
                                  return_inverse=True)  # x and v are the same columns without a step layer
        coefs = np.bincount(inverse, weights=np.concatenate([row.x_coef, row.v_coef]), minlength=cols.size) / sc
        const = row.const / sc
        sides = [(1.0, big_up)] if row.sense != "==" else [(1.0, big_up), (-1.0, big_down)]
        for i, (sign, big) in enumerate(sides):
            c, k = np.concatenate([cols, [int(t)]]), np.concatenate([sign * coefs, [1.0]])
            if row.sense == "==":
                c, k = cols, sign * coefs
            if z is not None:
                c, k = np.concatenate([c, [z]]), np.concatenate([k, [big]])
            b.add_rows(f"{name}_{i}", (), c[None, :], k[None, :], -INF, -sign * const + (big if z is not None else 0.0))
