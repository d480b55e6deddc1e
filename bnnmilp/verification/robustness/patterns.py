"""Every sign pattern of a network's first-layer units that a box leaves free, for a query on the outputs.

Interval arithmetic over the box fixes most first-layer units (a conv BNN at a small radius: all but a few);
the box reaches some of the 2^k patterns of the k free ones. Taking all 2^k, every deeper layer and the
output follow exactly (integer weights on bits: the sums are exact in doubles), so when no pattern gives
outputs that meet the query, the query is unsat, proven without a solver. Deeper layers are evaluated by
difference from the fixed units' values: only the units the free ones reach are recomputed.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np

from bnnmilp.formulations.robustness import ibp_bounds, integer_sums
from bnnmilp.io.importers.onnx import AffineOutput
from bnnmilp.io.vnnlib import Conjunction
from bnnmilp.network import Network
from bnnmilp.network.sparse import Csr, is_sparse, matvec

MAX_FREE = 16  # free first-layer units up to which all their patterns are tried (65,536)
CHUNK = 4096  # patterns evaluated at once


def no_pattern_meets(model: AffineOutput, lo: np.ndarray, hi: np.ndarray,
                     assertions: list[list[Conjunction]], deadline: float | None = None) -> int | None:
    """k when none of the 2^k patterns of the first layer's k free units (over the box [lo, hi], an outer
    box of the query's) gives outputs meeting every assertion (constraints on outputs only), exactly; None
    where that is not shown (a pattern meets them, too many free units, a layer that is not integral, or
    ``deadline``, a ``time.perf_counter()`` value, passed before every pattern was tried)."""
    net = model.hidden
    if net is None or any(k == "x" for a in assertions for conj in a for lin in conj for (k, _), _ in lin.coefs):
        return None
    if any(r != 1 for r in model.root):
        return None
    g_lo, g_hi = ibp_bounds(Network(net.weights[:1], net.thresholds[:1]), lo, hi)[0]
    free = np.flatnonzero((g_lo < 0) & (g_hi >= 0))
    if free.size > MAX_FREE or not all(_integral(W) for W in [*net.weights[1:], model.M]):
        return None
    plan = _plan(model.M, list(zip(net.weights[1:], net.thresholds[1:], strict=True)),
                 (g_lo >= 0).astype(np.float64), free)
    for start in range(0, 1 << free.size, CHUNK):
        if deadline is not None and time.perf_counter() > deadline:
            return None
        codes = np.arange(start, min(start + CHUNK, 1 << free.size))
        V = ((codes[:, None] >> np.arange(free.size)) & 1).astype(np.float64)
        if _meets(model, assertions, np.unique(_output_dots(plan, V), axis=0)).any():
            return None
    return int(free.size)


def _plan(M, layers: list, base: np.ndarray, cols: np.ndarray) -> list:
    """Per layer (and the output map), what a pattern of the units ``cols`` changes: (their values at the
    fixed pattern, the rows they reach, those rows' sums at the fixed pattern, their weights on ``cols``,
    their thresholds); the output's entry has thresholds None."""
    out = []
    for W, lam in [*layers, (M, None)]:
        a = matvec(W, base)
        rows, D = _block(W, cols)
        if lam is None:  # every output, reached or not
            rows, D = np.arange(W.shape[0]), _scatter_rows(D, rows, W.shape[0])
        out.append((base[cols], a[rows], D, None if lam is None else lam[rows]))
        if lam is not None:
            base, cols = (a >= lam).astype(np.float64), rows
    return out


def _output_dots(plan: list, V: np.ndarray) -> np.ndarray:
    """M v for every row of V (the values of the first free units), exactly: sums of integers below 2^52."""
    for fixed, a, D, lam in plan:
        values = a + (V - fixed) @ D.T
        V = values if lam is None else (values >= lam).astype(np.float64)
    return V


def _meets(model: AffineOutput, assertions: list[list[Conjunction]], dots: np.ndarray) -> np.ndarray:
    """Per row of ``dots`` (M v, integers), whether the outputs y_k = c_k + a_k dot_k meet every assertion,
    exactly: each constraint times the common denominator of its terms is an integer combination of dots."""
    ok = np.ones(dots.shape[0], bool)
    for a in assertions:
        some = np.zeros(dots.shape[0], bool)
        for conj in a:
            every = np.ones(dots.shape[0], bool)
            for lin in conj:
                every &= _holds(model, lin, dots)
            some |= every
        ok &= some
    return ok


def _holds(model: AffineOutput, lin, dots: np.ndarray) -> np.ndarray:
    idx = [i for (_, i), _ in lin.coefs]
    slope = [coef * model.a[i] for (_, i), coef in lin.coefs]
    offset = lin.const + sum((coef * model.c[i] for (_, i), coef in lin.coefs), Fraction(0))
    den = math.lcm(offset.denominator, *(f.denominator for f in slope))
    w = [int(f * den) for f in slope]
    top = float(np.abs(dots).max(initial=0.0))
    if sum(abs(v) for v in w) * top + abs(offset * den) >= 2**62:  # too large for int64: one row at a time
        ints = [sum((wi * int(d[i]) for wi, i in zip(w, idx, strict=True)), int(offset * den)) for d in dots]
        values = np.array([(v > 0) - (v < 0) for v in ints], np.int64)
    else:
        values = dots[:, idx].astype(np.int64) @ np.array(w, np.int64) + int(offset * den)
    return values <= 0 if lin.sense == "<=" else values < 0 if lin.sense == "<" else values == 0


def _integral(W: np.ndarray | Csr) -> bool:
    """Integer weights whose sums over bits stay exact in doubles."""
    return integer_sums(W, np.zeros(1), np.ones(1))


def _scatter_rows(D: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    full = np.zeros((n, D.shape[1]))
    full[rows] = D
    return full


def _block(W: np.ndarray | Csr, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a non-zero in ``cols``, W[rows][:, cols] dense)."""
    if not is_sparse(W):
        sub = W[:, cols]
        rows = np.flatnonzero(np.any(sub != 0, axis=1))
        return rows, sub[rows]
    pos = np.full(W.shape[1], -1)
    pos[cols] = np.arange(cols.size)
    rows = W.rows_touching(cols)
    sub = W.take_rows(rows)
    keep = pos[sub.indices] >= 0
    D = np.zeros((rows.size, cols.size))
    D[sub.row_of[keep], pos[sub.indices[keep]]] = sub.data[keep]
    return rows, D
