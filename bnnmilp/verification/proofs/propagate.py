"""Bound propagation at a branch-and-bound node, recorded so that the exact checker can redo every step.

Each row L_i <= a_i x <= U_i bounds every one of its columns over the current box [l, u]:

    a_ij x_j <= U_i - sum_{k != j} min(a_ik l_k, a_ik u_k)      (and the same with L_i and the maxima)

so x_j <= (U_i - minrest_ij) / a_ij for a_ij > 0 (a lower bound for a_ij < 0), rounded down (up) for an
integer column. For an integral objective the hypothesis H: c x + offset <= T is a row too (row -1): to
prove the claim K it suffices to show that no point satisfies H with T = ceil(K) - 1; the engine uses
T = incumbent - 1 and never claims more than its incumbent, so its steps hold under the checker's T.
A node's derived bounds are a list of steps (column, sense, value, row), applied in order; the checker
recomputes each step's bound in rationals over the box as tightened by the steps before it and accepts
the step when the recorded value is no tighter. A box that empties holds no point under H: the node
is closed without an LP (Achterberg 2007, ch. 7).

Probing: for an integer column, x_j <= l_j (and likewise x_j >= u_j) is tried and propagated; if that
box empties, x_j >= l_j + 1 holds, recorded as a step whose justification is the list of steps that
emptied the other side (the checker redoes them).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from bnnmilp.milp.model import StandardModel

OBJECTIVE_ROW = -1  # the row index of the hypothesis c x + offset <= T in a recorded step
ROUNDS = 8  # passes over all rows per node
INT_TOL = 1e-6  # an integer column's bound v is rounded as floor(v + INT_TOL): never tighter than exact
CONT_MARGIN = 1e-9  # a continuous column's bound is moved outward by this much (times 1 + |bound|)
CONT_MIN_GAIN = 1e-3  # a continuous bound is recorded only if it moves by this much (times 1 + |bound|)


@dataclass
class Step:
    column: int
    sense: str  # "<=" | ">="
    value: float
    row: int  # a model row, or OBJECTIVE_ROW; PROBE where ``proof`` justifies the step
    proof: list[Step] | None = None  # a probe: the other side of the integer column, propagated to an empty box
    duals: np.ndarray | None = None  # reduced-cost fixing: the node LP's multipliers y (row DUALS)


PROBE_RATE = 0.02  # below this share of probes that fixed it, a column is probed only at full probing
PROBE = -2  # the row field of a probe step (written as its list of steps)
DUALS = -3  # the row field of a reduced-cost fixing (written as {"duals": index into the proof's "duals"})


class Propagator:
    """The model's rows (plus the objective hypothesis) as flat arrays, built once per engine run."""

    def __init__(self, model: StandardModel, continuous: bool = True) -> None:
        """``continuous``: also tighten continuous columns (moved outward by CONT_MARGIN, which costs a
        claim that is not rounded up a little: off for a non-integral objective)."""
        counts = np.diff(model.indptr)
        rows = np.repeat(np.arange(model.n_rows, dtype=np.int64), counts)
        obj = np.flatnonzero(model.c)
        self.m = model.n_rows
        self.row = np.concatenate([rows, np.full(obj.size, self.m, dtype=np.int64)])
        self.col = np.concatenate([model.indices.astype(np.int64), obj])
        self.a = np.concatenate([model.data, model.c[obj]])
        self.lower_side = np.concatenate([model.row_lower, [-math.inf]])
        self.upper_side = np.concatenate([model.row_upper, [math.inf]])
        self.offset = float(model.offset)
        self.ints = model.integrality
        self.continuous = continuous
        keep = self.a != 0
        self.row, self.col, self.a = self.row[keep], self.col[keep], self.a[keep]
        self.tried = np.zeros(model.n_cols, dtype=np.int64)  # per column, probes run and probes that fixed it
        self.succeeded = np.zeros(model.n_cols, dtype=np.int64)
        self.by_col = np.argsort(self.col, kind="stable")  # the entries of column k: by_col[col_ptr[k]:col_ptr[k+1]]
        self.col_ptr = np.searchsorted(self.col[self.by_col], np.arange(model.n_cols + 1))

    def _rows_of(self, cols: list[int]) -> np.ndarray:
        """A mask over the rows (and the hypothesis) that hold one of ``cols``."""
        mask = np.zeros(self.m + 1, dtype=bool)
        for k in cols:
            mask[self.row[self.by_col[self.col_ptr[k]:self.col_ptr[k + 1]]]] = True
        return mask

    def run(self, lower: np.ndarray, upper: np.ndarray, objective_limit: float | None,
            changed: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, list[Step], bool]:
        """(lower, upper, steps, empty): the box tightened to a fixpoint (at most ROUNDS passes); with
        ``objective_limit`` T, under c x + offset <= T. ``changed``: the columns whose bounds moved since the
        box was last propagated (only their rows are read first); None: every row."""
        lo, up = np.array(lower, dtype=np.float64), np.array(upper, dtype=np.float64)
        U = self.upper_side.copy()
        if objective_limit is not None and math.isfinite(objective_limit):
            U[self.m] = objective_limit - self.offset
        L = self.lower_side
        steps: list[Step] = []
        n_rows = self.m + 1
        active = None if changed is None else self._rows_of(changed)
        for _ in range(ROUNDS):
            if active is None:
                r, j, a = self.row, self.col, self.a
            else:
                sel = active[self.row]
                r, j, a = self.row[sel], self.col[sel], self.a[sel]
            moved: list[int] = []
            with np.errstate(invalid="ignore"):
                mn = np.where(a > 0, a * lo[j], a * up[j])
                mx = np.where(a > 0, a * up[j], a * lo[j])
            res_min = _residual(mn, r, n_rows, -math.inf)
            res_max = _residual(mx, r, n_rows, math.inf)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                from_u = np.where(np.isfinite(U[r]) & np.isfinite(res_min), (U[r] - res_min) / a, np.nan)
                from_l = np.where(np.isfinite(L[r]) & np.isfinite(res_max), (L[r] - res_max) / a, np.nan)
            # a > 0: U gives an upper bound, L a lower one; a < 0: the other way round
            new_up = np.where(a > 0, from_u, from_l)
            new_lo = np.where(a > 0, from_l, from_u)
            integer = self.ints[j]
            for sense, cand in (("<=", new_up), (">=", new_lo)):
                slack = CONT_MARGIN * (1.0 + np.abs(cand))  # outward, against the float error of the sums
                old = up[j] if sense == "<=" else lo[j]
                with np.errstate(invalid="ignore"):
                    if sense == "<=":
                        cv = np.where(integer, np.floor(cand + INT_TOL), cand + slack)
                        gain = old - cv
                    else:
                        cv = np.where(integer, np.ceil(cand - INT_TOL), cand - slack)
                        gain = cv - old
                    need = np.where(integer, 0.5, CONT_MIN_GAIN * (1.0 + np.abs(np.where(np.isfinite(old), old, 0.0))))
                    better = np.where(np.isfinite(old), gain > need, np.isfinite(cv)) & (integer | self.continuous)
                if not better.any():  # most passes: nothing moves
                    continue
                cj, cv, cr = j[better], cv[better], r[better]
                order = np.lexsort((cv if sense == "<=" else -cv, cj))  # per column, the tightest first
                cj, cv, cr = cj[order], cv[order], cr[order]
                first = np.ones(cj.size, dtype=bool)
                first[1:] = cj[1:] != cj[:-1]
                better = first
                for col, val, row in zip(cj[better].tolist(), cv[better].tolist(), cr[better].tolist(), strict=True):
                    steps.append(Step(col, sense, val, OBJECTIVE_ROW if row == self.m else row))
                    if sense == "<=":
                        up[col] = val
                    else:
                        lo[col] = val
                    moved.append(col)
                    if lo[col] > up[col]:
                        return lo, up, steps, True
            if not moved:
                break
            active = self._rows_of(moved)
        return lo, up, steps, False

    def probe(self, lower: np.ndarray, upper: np.ndarray, objective_limit: float | None, columns: np.ndarray,
              everything: bool = True, deadline: float | None = None
              ) -> tuple[np.ndarray, np.ndarray, list[Step], bool]:
        """(lower, upper, steps, empty): the free integer columns of ``columns`` probed at both ends of their
        box; each side that empties fixes the other, and the box is propagated again after each fixing.
        Without ``everything``, only columns whose probes have fixed something at least PROBE_RATE of the
        time (counted with one success and one failure to start) are probed. Probing stops at ``deadline``
        (time.perf_counter())."""
        lo, up = lower.copy(), upper.copy()
        steps: list[Step] = []
        for j in columns.tolist():
            if deadline is not None and time.perf_counter() > deadline:
                break
            if not everything and (self.succeeded[j] + 1) < PROBE_RATE * (self.tried[j] + 2):
                continue
            if not (math.isfinite(lo[j]) and math.isfinite(up[j])):  # a probe fixes x_j at an end of its box
                continue
            for sense in (">=", "<="):  # the step's sense: x_j >= l_j + 1 if x_j <= l_j empties
                if lo[j] >= up[j]:
                    break
                lo2, up2 = lo.copy(), up.copy()
                if sense == ">=":
                    up2[j] = lo[j]
                else:
                    lo2[j] = up[j]
                _, _, why, empty = self.run(lo2, up2, objective_limit, [j])
                self.tried[j] += 1
                if not empty:
                    continue
                self.succeeded[j] += 1
                value = lo[j] + 1 if sense == ">=" else up[j] - 1
                steps.append(Step(j, sense, float(value), PROBE, why))
                if sense == ">=":
                    lo[j] = value
                else:
                    up[j] = value
                lo, up, more, empty = self.run(lo, up, objective_limit, [j])
                steps += more
                if empty:
                    return lo, up, steps, True
        return lo, up, steps, False


def reduced_cost_steps(integrality: np.ndarray, r: np.ndarray, y: np.ndarray, bound: float, limit: float,
                       lower: np.ndarray, upper: np.ndarray) -> list[Step]:
    """Reduced-cost fixing as steps: with multipliers y, every point of the box has c x + offset >= b + sum_j
    r_j (x_j - l_j) for r_j > 0 (b the node's bound, r = c - A^T y); under c x + offset <= T that gives
    x_j <= l_j + (T - b) / r_j (and x_j >= u_j + (T - b) / r_j for r_j < 0). Integer columns only."""
    gap = max(0.0, limit - bound)
    steps: list[Step] = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pos = integrality & (r > 1e-9) & np.isfinite(lower)
        new_up = np.floor(lower + gap / np.where(pos, r, 1.0) + INT_TOL)
        for j in np.flatnonzero(pos & (new_up < upper)).tolist():
            steps.append(Step(j, "<=", float(new_up[j]), DUALS, duals=y))
        neg = integrality & (r < -1e-9) & np.isfinite(upper)
        new_lo = np.ceil(upper + gap / np.where(neg, r, -1.0) - INT_TOL)
        for j in np.flatnonzero(neg & (new_lo > lower)).tolist():
            steps.append(Step(j, ">=", float(new_lo[j]), DUALS, duals=y))
    return steps


def _residual(contrib: np.ndarray, row: np.ndarray, n_rows: int, infinite: float) -> np.ndarray:
    """Per entry, the row's sum of the other entries' contributions (``infinite`` where one of them is)."""
    inf = ~np.isfinite(contrib)
    n_inf = np.bincount(row, weights=inf.astype(np.float64), minlength=n_rows)
    total = np.bincount(row, weights=np.where(inf, 0.0, contrib), minlength=n_rows)
    others_inf = n_inf[row] - inf
    return np.where(others_inf > 0, infinite, total[row] - np.where(inf, 0.0, contrib))
