"""Independent oracles for the tests. Nothing here imports bnnmilp's model, solver or forward pass.

``brute_force_optimum`` enumerates every network with discrete weights and
every threshold that can matter, in exact rational arithmetic, for the
epsilon-margin training problem: every pre-activation a satisfies
a >= lambda (bit 1) or a <= lambda - epsilon (bit 0); thresholds in [-1, 1].
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

DOMAINS = {"binary": (-1, 1), "ternary": (-1, 0, 1)}


def _threshold_options(column: list, eps, one) -> dict[tuple[int, ...], object]:
    """Distinct bit columns reachable by a feasible lambda in [-1, 1], with one lambda each.

    Given a feasible lambda, lowering it to max(-1, a_below + eps) (a_below: the largest a < lambda)
    keeps the bits and feasibility, so {-1} and {a + eps} are the only candidates needed.
    """
    out: dict[tuple[int, ...], object] = {}
    for lam in [-one] + [a + eps for a in column]:
        if not -one <= lam <= one:
            continue
        if any(lam - eps < a < lam for a in column):
            continue
        bits = tuple(1 if a >= lam else 0 for a in column)
        out.setdefault(bits, lam)
    return out


def _layer_outputs(inputs: tuple[tuple, ...], W: tuple[tuple[int, ...], ...], mode: str, eps, one, scale):
    """All feasible bit matrices (m x d) of one layer for fixed weights.

    Everything is scaled by a common integer so that the arithmetic is exact on Python integers:
    pre-activations are ``scale * sum(x * w)``, the margin ``eps`` and the threshold bound ``one``.
    """
    m, d = len(inputs), len(W)
    cols = [[scale * sum(x * w for x, w in zip(inputs[i], W[k])) for i in range(m)] for k in range(d)]
    if mode == "zero":
        if any(-eps < a < 0 for c in cols for a in c):
            return []
        return [tuple(tuple(1 if cols[k][i] >= 0 else 0 for k in range(d)) for i in range(m))]
    if mode == "learned":
        flat = [a for c in cols for a in c]
        res = []
        for lam in [-one] + [a + eps for a in flat]:
            if not -one <= lam <= one or any(lam - eps < a < lam for a in flat):
                continue
            res.append(tuple(tuple(1 if cols[k][i] >= lam else 0 for k in range(d)) for i in range(m)))
        return list(set(res))
    per = [list(_threshold_options(c, eps, one)) for c in cols]
    return list({tuple(tuple(combo[k][i] for k in range(d)) for i in range(m)) for combo in itertools.product(*per)})


def loss_of(out: tuple[tuple[int, ...], ...], targets: list[list[int]], loss: str) -> int:
    if loss == "hamming":
        return sum(int(b != t) for row, trow in zip(out, targets) for b, t in zip(row, trow))
    return sum(int(list(row) != list(trow)) for row, trow in zip(out, targets))


def brute_force_optimum(layers: list[int], weights: str, thresholds: str, loss: str, X: list[list[float]],
                        targets: list[list[int]], eps: float) -> int | None:
    """The optimal training loss over all networks (None: no network meets the epsilon margin)."""
    res = brute_force_lexicographic(layers, weights, thresholds, loss, X, targets, eps)
    return None if res is None else res[0]


def brute_force_lexicographic(layers: list[int], weights: str, thresholds: str, loss: str, X: list[list[float]],
                              targets: list[list[int]], eps: float) -> tuple[int, int] | None:
    """(optimal loss, fewest nonzero weights among the networks attaining it), or None if infeasible."""
    fx = [[Fraction(v) for v in row] for row in X]
    D = math.lcm(Fraction(eps).denominator, *(v.denominator for row in fx for v in row))
    e = int(Fraction(eps) * D)
    # reachable bit matrices of the current layer -> fewest nonzero weights needed to reach them
    reach = {tuple(tuple(int(v * D) for v in row) for row in fx): 0}  # layer 1 inputs carry the scale D
    for l in range(1, len(layers)):
        scale = 1 if l == 1 else D
        shape = (layers[l], layers[l - 1])
        nxt: dict = {}
        for flat in itertools.product(DOMAINS[weights], repeat=shape[0] * shape[1]):
            W = tuple(tuple(flat[k * shape[1]:(k + 1) * shape[1]]) for k in range(shape[0]))
            nnz = sum(1 for w in flat if w != 0)
            for inp, cost in reach.items():
                for out in _layer_outputs(inp, W, thresholds, e, D, scale):
                    if out not in nxt or cost + nnz < nxt[out]:
                        nxt[out] = cost + nnz
        reach = nxt
    if not reach:
        return None
    best = min(loss_of(out, targets, loss) for out in reach)
    return best, min(c for out, c in reach.items() if loss_of(out, targets, loss) == best)


def brute_force_argmax(layers: list[int], weights: str, thresholds: str, X: list[list[float]], labels: list[int],
                       eps: float) -> int | None:
    """Fewest misclassified samples of a network with an argmax output layer (scores a^L_k - lambda_k; a sample
    counts as correct when its class's score beats every other by epsilon), by enumeration.

    Output thresholds matter only through differences lambda_y - lambda_k; for a fixed set of correct samples
    they solve a system of difference constraints with integer right-hand sides (everything is scaled by D),
    which has an integer solution whenever it has one: integer thresholds in [-D, D] suffice, and since only
    differences matter, the smallest can be taken as -D.
    """
    fx = [[Fraction(v) for v in row] for row in X]
    D = math.lcm(Fraction(eps).denominator, *(v.denominator for row in fx for v in row))
    e = int(Fraction(eps) * D)
    reach = {tuple(tuple(int(v * D) for v in row) for row in fx)}
    for l in range(1, len(layers) - 1):
        scale = 1 if l == 1 else D
        shape = (layers[l], layers[l - 1])
        nxt: set = set()
        for flat in itertools.product(DOMAINS[weights], repeat=shape[0] * shape[1]):
            W = tuple(tuple(flat[k * shape[1]:(k + 1) * shape[1]]) for k in range(shape[0]))
            for inp in reach:
                nxt.update(_layer_outputs(inp, W, thresholds, e, D, scale))
        reach = nxt
    if not reach:
        return None
    L = len(layers) - 1
    scale = 1 if L == 1 else D
    d, p = layers[-1], layers[-2]
    # shifting every threshold by the same amount changes nothing: the smallest may be taken as -D
    lams = [lam for lam in itertools.product(range(-D, D + 1), repeat=d) if min(lam) == -D] \
        if thresholds == "per_neuron" else [(0,) * d]
    scores = {tuple(tuple(scale * sum(x * flat[k * p + j] for j, x in enumerate(row)) for k in range(d)) for row in inp)
              for inp in reach for flat in itertools.product(DOMAINS[weights], repeat=d * p)}
    lam = np.array(lams, dtype=np.int64)  # (thresholds, d)
    y = np.array(labels)
    best = None
    for a in scores:  # exact integers; numpy only vectorises the count over the thresholds
        s = np.array(a, dtype=np.int64)[None, :, :] - lam[:, None, :]  # (thresholds, m, d)
        margin = s[:, np.arange(len(y)), y][:, :, None] - s  # s_y - s_k
        margin[:, np.arange(len(y)), y] = e  # the class itself is no rival
        wrong = int((margin < e).any(axis=2).sum(axis=1).min())
        best = wrong if best is None else min(best, wrong)
    return best


def forward_exact(weights: list, thresholds: list, x: list) -> list[list[int]]:
    """Bits of every layer for one input, in exact arithmetic, with the plain rule a >= lambda."""
    inp = [Fraction(v) for v in x]
    out = []
    for W, t in zip(weights, thresholds):
        bits = [1 if sum((Fraction(w) * v for w, v in zip(row, inp)), Fraction(0)) >= Fraction(lam) else 0
                for row, lam in zip(W, t)]
        out.append(bits)
        inp = [Fraction(b) for b in bits]
    return out


def _dot(row: list, inp: list) -> Fraction:
    return sum((Fraction(w) * v for w, v in zip(row, inp)), Fraction(0))


def slacks_exact(weights: list, thresholds: list, X: list, eps: float, depth: int | None = None) -> list:
    """Every step row's slack, exactly: (slack, (layer 1-based, sample, neuron)); a - lambda for bit 1,
    lambda - eps - a for bit 0."""
    out = []
    for i, x in enumerate(X):
        inp = [Fraction(v) for v in x]
        for l, (W, t) in enumerate(list(zip(weights, thresholds))[:depth]):
            bits = []
            for k, (row, t_k) in enumerate(zip(W, t)):
                a, lam = _dot(row, inp), Fraction(t_k)
                bit = 1 if a >= lam else 0
                out.append((a - lam if bit else lam - Fraction(eps) - a, (l + 1, i, k)))
                bits.append(bit)
            inp = [Fraction(b) for b in bits]
    return out


def scores_exact(weights: list, thresholds: list, x: list) -> list[Fraction]:
    """Output scores a^L_k - lambda^L_k of one input, exactly (hidden layers are step layers)."""
    inp = [Fraction(v) for v in x]
    for W, t in zip(weights[:-1], thresholds[:-1]):
        inp = [Fraction(1 if _dot(row, inp) >= Fraction(lam) else 0) for row, lam in zip(W, t)]
    return [_dot(row, inp) - Fraction(lam) for row, lam in zip(weights[-1], thresholds[-1])]
