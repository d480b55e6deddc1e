"""Reachable-bit reasoning: robustness by exhaustive enumeration of the first-layer bits a perturbation can flip.

Applies when every first-layer unit reads one input feature (a threshold input layer: Sakai's networks, ONNX
models with batch norm and sign on the raw input) and the inputs are integers. Unit k on feature j has
bit(x'_j) = [w_k x'_j >= lambda_k]. Moving feature j to an integer value v in its box gives the feature's
units a pattern; each pattern has a cost, the smallest |v - x_j| that produces it. A perturbation in the
ball is then exactly a choice of one pattern per feature with

    L-infinity: every chosen cost <= eps;    L1: the sum of the chosen costs <= eps,

and the rest of the network sees only those bits. Enumerating every such choice (cheapest first, in numpy
batches, stopping at the first one whose output differs) is exhaustive: no adversarial choice means robust, a
proof that needs no solver. The later layers are evaluated by the exact forward pass, and a counterexample
(each changed feature at its cheapest value) is replayed through the whole network like any other.

Both norms go through ``_TailPlan`` where it applies (one pattern per feature; L1: integer costs and sums):
every choice is a prefix and a tail (L1: the last pair; L-infinity: a subset of the last few flips), its free
second-layer bits a key of 64-bit words assembled from precomputed words, and only keys not seen recently
reach the later layers.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bnnmilp.network import Network, product_error
from bnnmilp.network.sparse import Csr, dense

BATCH = 4096


@dataclass
class Flip:
    feature: int
    value: float  # the cheapest x'_j giving this pattern
    cost: float
    units: np.ndarray  # first-layer units of the feature
    bits: np.ndarray  # their bits at ``value``


@dataclass
class Reach:
    base_bits: np.ndarray  # first-layer bits at x
    flips: list[Flip]  # every alternative pattern within the budget, cheapest first
    combinations: int  # how many choices the enumeration has to consider (at most)
    max_features: int = 0  # how many features one choice can change at most (L1: the budget over the cheapest)

    @property
    def feature_of(self) -> np.ndarray:
        """The feature of each flip."""
        return np.array([f.feature for f in self.flips], dtype=np.int64)

    @property
    def cost_of(self) -> np.ndarray:
        """The cost of each flip."""
        return np.array([f.cost for f in self.flips], dtype=np.float64)


def threshold_layer(net: Network) -> list[tuple[int, float]] | None:
    """(feature, weight) of every first-layer unit when each reads exactly one feature, else None."""
    W = net.weights[0]
    if isinstance(W, Csr):  # the stored entries of each row, as ``row`` gives them
        counts, cols, vals = np.diff(W.indptr), W.indices, W.data
        if np.any(counts > 1):
            return None
        feature = np.full(W.shape[0], -1, dtype=np.int64)
        weight = np.zeros(W.shape[0])
        has = counts == 1
        feature[has], weight[has] = cols[W.indptr[:-1][has]], vals[W.indptr[:-1][has]]
    else:
        nz = W != 0
        if np.any(nz.sum(axis=1) > 1):
            return None
        has = nz.any(axis=1)
        feature = np.where(has, np.argmax(nz, axis=1), -1)
        weight = np.where(has, W[np.arange(W.shape[0]), np.maximum(feature, 0)], 0.0)
    return [(int(j), float(w)) for j, w in zip(feature.tolist(), weight.tolist(), strict=True)]


def reachable(net: Network, x: np.ndarray, eps: float, norm: str, lo: np.ndarray, hi: np.ndarray,
              units: list[tuple[int, float]]) -> Reach:
    """The first-layer patterns the ball {||x' - x|| <= eps, lo <= x' <= hi, x' integer} can reach.

    Feature j's candidate values are max(lo_j, x_j - r), ... up to min(hi_j, x_j + r) with r = floor(eps); the
    bits at each are decided exactly (``_at_least``). Features that one unit reads (every pixel of Sakai's
    networks) are done together as one matrix of values; features read by several units one by one."""
    lam = net.thresholds[0]
    w = np.array([u[1] for u in units])
    feature = np.array([u[0] for u in units], dtype=np.int64)
    base = Network(net.weights[:1], net.thresholds[:1]).forward(x[None, :])[0][0]  # the first layer's bits
    r = math.floor(eps)
    flips: list[Flip] = []
    read = feature[feature >= 0]
    counts = np.bincount(read, minlength=x.size) if read.size else np.zeros(x.size, dtype=np.int64)
    single = np.flatnonzero((feature >= 0) & (counts[np.maximum(feature, 0)] == 1))
    if single.size and single.size * (2 * r + 1) <= 2**24:
        j = feature[single]
        vlo, vhi = np.maximum(lo[j], x[j] - r), np.minimum(hi[j], x[j] + r)
        values = vlo[:, None] + np.arange(2 * r + 1)[None, :]
        valid = values <= vhi[:, None]
        bits = _at_least(w[single][:, None], values, lam[single][:, None])
        cost = np.abs(values - x[j][:, None])
        key = np.where(valid & (bits != base[single][:, None]), cost, np.inf)
        pick = np.argmin(key, axis=1)  # the cheapest value that flips the unit; ties: the lower value
        for i in np.flatnonzero(np.isfinite(key[np.arange(j.size), pick])):
            k, v = int(single[i]), int(pick[i])
            flips.append(Flip(int(j[i]), float(values[i, v]), float(cost[i, v]), np.array([k]),
                              np.array([bits[i, v]], dtype=np.int8)))
        rest = np.setdiff1d(np.flatnonzero(feature >= 0), single)
    else:
        rest = np.flatnonzero(feature >= 0)
    by_feature: dict[int, list[int]] = {}
    for k in rest:
        by_feature.setdefault(int(feature[k]), []).append(int(k))
    for j, ks in by_feature.items():
        ks_a = np.array(ks)
        vlo, vhi = max(lo[j], x[j] - r), min(hi[j], x[j] + r)
        if vlo > vhi:
            continue
        values = np.arange(vlo, vhi + 1.0)
        bits = _at_least(w[ks_a][None, :], values[:, None], lam[ks_a][None, :])
        cost = np.abs(values - x[j])
        seen: dict[bytes, int] = {base[ks_a].tobytes(): -1}
        for i in np.argsort(cost, kind="stable"):
            key = bits[i].tobytes()
            if key not in seen:
                seen[key] = int(i)
                flips.append(Flip(j, float(values[i]), float(cost[i]), ks_a, bits[i]))
    flips.sort(key=lambda f: (f.cost, f.feature))
    per_feature = {f.feature for f in flips}
    most = len(per_feature)
    if norm == "inf":
        total = math.prod(1 + n for n in Counter(f.feature for f in flips).values())
    else:
        total = _count_l1(flips, eps)
        if flips and flips[0].cost > 0:
            most = min(most, math.floor(eps / flips[0].cost))
    return Reach(base, flips, total, most)


def _at_least(w: np.ndarray, v: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """[w v >= lambda] exactly (int8), broadcast: the double product decides unless it lies so close to lambda
    that its rounding (at most |w v| 2^-53, plus underflow) could change the comparison. Those are decided by
    the product's exact rounding error (``product_error``: w v = p + e exactly; there p - lambda is exact, by
    Sterbenz's lemma, so w v >= lambda iff p - lambda >= -e); the few outside its safe range in rationals."""
    p = w * v
    d = p - lam  # correctly rounded: the sign of p - lambda
    bits = (d >= 0).astype(np.int8)
    unsure = np.abs(d) <= np.abs(p) * 2.0**-51 + 2.0**-1000
    unsure &= (p != 0) | ((w != 0) & (v != 0))  # w or v zero: d is exact (a product that underflows to 0 is not)
    if unsure.any():
        W, V, L = np.broadcast_arrays(w, v, lam)
        idx = np.nonzero(unsure)
        Wu, Vu, Lu, pu, du = W[idx], V[idx], L[idx], p[idx], d[idx]
        # Dekker's product is exact without overflow or underflow in its parts; Sterbenz needs p, lambda
        # within a factor 2 of each other (same sign)
        aw, av = np.abs(Wu), np.abs(Vu)
        safe = (aw < 2.0**500) & (av < 2.0**500) & (aw > 2.0**-500) & (av > 2.0**-500) & (np.abs(pu) > 2.0**-900) & (
            np.where(pu > 0, (pu / 2 <= Lu) & (Lu <= 2 * pu), (2 * pu <= Lu) & (Lu <= pu / 2)))
        out = bits[idx]
        out[safe] = du[safe] >= -product_error(Wu[safe], Vu[safe], pu[safe])
        for k in np.flatnonzero(~safe):
            out[k] = Fraction(float(Wu[k])) * Fraction(float(Vu[k])) >= Fraction(float(Lu[k]))
        bits[idx] = out
    return bits


def _count_l1(flips: list[Flip], eps: float) -> int:
    """How many choices (at most one flip per feature) cost at most eps in total: a knapsack count."""
    scale = [int(f.cost) for f in flips]
    budget = math.floor(eps)
    ways = np.zeros(budget + 1, dtype=object)
    ways[0] = 1
    groups: dict[int, list[int]] = {}
    for f, c in zip(flips, scale, strict=True):
        groups.setdefault(f.feature, []).append(c)
    for costs in groups.values():
        new = ways.copy()
        for c in costs:
            if c <= budget:
                new[c:] = new[c:] + ways[:budget + 1 - c]
        ways = new
    return int(sum(ways))


def choices(reach: Reach, eps: float, norm: str) -> Iterator[tuple[int, ...]]:
    """Every admissible choice of flips (indices into reach.flips, at most one per feature), by number of flips
    and, for L1, only within the budget (a depth-first walk over flips sorted by cost: nothing over budget is
    generated)."""
    flips = reach.flips
    n_features = len({f.feature for f in flips})
    if norm == "inf":
        for size in range(n_features + 1):
            for combo in itertools.combinations(range(len(flips)), size):
                if len({flips[i].feature for i in combo}) == size:
                    yield combo
        return
    cost = [f.cost for f in flips]  # sorted ascending

    def walk(start: int, left: int, budget: float, chosen: list[int], used: set[int]) -> Iterator[tuple[int, ...]]:
        if left == 0:
            yield tuple(chosen)
            return
        for i in range(start, len(flips)):
            if cost[i] * left > budget:  # the remaining picks cost at least cost[i] each
                return
            if flips[i].feature in used:
                continue
            chosen.append(i)
            used.add(flips[i].feature)
            yield from walk(i + 1, left - 1, budget - cost[i], chosen, used)
            chosen.pop()
            used.discard(flips[i].feature)

    for size in range(min(n_features, math.floor(eps)) + 1):
        yield from walk(0, size, eps, [], set())


def choice_blocks(reach: Reach, eps: float, norm: str) -> Iterator[np.ndarray]:
    """The same choices as ``choices``, as integer matrices (one row a choice, increasing flip indices, every
    row of a block the same size), generated depth first in numpy: a block of prefixes is extended by every
    later flip of another feature that the budget allows. Memory stays bounded by depth x block."""
    flips = reach.flips
    n = len(flips)
    feat = np.array([f.feature for f in flips], dtype=np.int64)
    cost = np.array([f.cost for f in flips])
    budget = float(eps) if norm == "1" else math.inf
    depth = len(set(feat.tolist()))
    if norm == "1" and n:
        depth = min(depth, math.floor(budget / max(cost.min(), 1e-300)))
    chunk = max(1, 2**22 // max(n, 1))
    index = np.arange(n)

    def extend(P: np.ndarray, spent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        last = P[:, -1] if P.shape[1] else np.full(P.shape[0], -1)
        ok = (index[None, :] > last[:, None]) & (spent[:, None] + cost[None, :] <= budget)
        for c in range(P.shape[1]):
            ok &= feat[P[:, c]][:, None] != feat[None, :]
        r, j = np.nonzero(ok)
        return np.concatenate([P[r], j[:, None]], axis=1), spent[r] + cost[j]

    def walk(P: np.ndarray, spent: np.ndarray) -> Iterator[np.ndarray]:
        yield P
        if P.shape[1] >= depth:
            return
        Q, sq = extend(P, spent)
        for a in range(0, Q.shape[0], chunk):
            yield from walk(Q[a:a + chunk], sq[a:a + chunk])

    yield from walk(np.zeros((1, 0), dtype=np.int64), np.zeros(1))


def _incremental(net: Network, reach: Reach):
    """(D, a_base, lambda, later layers) to evaluate the second layer from the flips alone, a = a_base + sum of the
    chosen flips' rows D_i = W2[:, units_i] (bits_i - base_i); None unless that arithmetic is exact (integer
    weights and thresholds, sums below 2^52) and later layers remain for the output rule."""
    if len(net.weights) < 3 or not reach.flips:
        return None
    rest = Network(net.weights[1:], net.thresholds[1:])
    if not rest._integral(0, reach.base_bits[None, :].astype(np.float64)):
        return None
    W2 = dense(net.weights[1])
    base = reach.base_bits.astype(np.float64)
    D = np.zeros((len(reach.flips) + 1, W2.shape[0]))  # the last row: no flip (padding)
    if all(f.units.size == 1 for f in reach.flips):  # one unit per flip (Sakai's networks): one product
        unit = np.array([int(f.units[0]) for f in reach.flips])
        change = np.array([float(f.bits[0]) for f in reach.flips]) - base[unit]
        D[:-1] = (W2[:, unit] * change[None, :]).T
    else:
        for i, f in enumerate(reach.flips):
            D[i] = W2[:, f.units] @ (f.bits.astype(np.float64) - base[f.units])
    if np.abs(D).sum(axis=0).max() + np.abs(W2 @ base).max() >= 2.0**52:
        return None
    return D, W2 @ base, net.thresholds[1], Network(net.weights[2:], net.thresholds[2:])


F32 = 2.0**24  # integers below this are exact in float32 (sums of them too, while they stay below)


class Evaluator:
    """Evaluates batches of choices: F is an int matrix of flip indices (one row per choice, -1 for none), and
    ``bits(F)`` gives the bits the rest of the network reads, with ``rest`` that network. Where the second layer
    is evaluated incrementally and exactly (``_incremental``) that is the second layer's bits and the network
    after it; otherwise the first layer's bits and the network after the first layer. ``first_hit`` runs the
    rest layer by layer on distinct bit vectors only (choices collapse quickly: on Sakai's networks 65,536
    choices have about 5,000 distinct third-layer patterns), in float32 where every sum is an integer below
    2^24 (exact), else by the exact forward pass."""

    def __init__(self, net: Network, reach: Reach) -> None:
        self.reach = reach
        self.fast = _incremental(net, reach)
        if self.fast is not None:
            self.fast = _only_free(*self.fast, reach)
            self.rest: Network | None = self.fast[3]
            D, a0, lam, _ = self.fast
            if np.abs(D).sum(axis=0).max(initial=0.0) + np.abs(a0).max(initial=0.0) + \
                    np.abs(lam).max(initial=0.0) < F32:
                self.fast = (D.astype(np.float32), a0.astype(np.float32), lam.astype(np.float32), self.rest)
        else:
            self.rest = Network(net.weights[1:], net.thresholds[1:]) if len(net.weights) > 1 else None
        self.f32 = []
        for W, lam in zip(self.rest.weights if self.rest else [], self.rest.thresholds if self.rest else [],
                          strict=True):
            Wd = dense(W)
            exact = bool(np.all(Wd == np.round(Wd)) and np.all(lam == np.round(lam))) and \
                np.abs(Wd).sum(axis=1).max(initial=0.0) + np.abs(lam).max(initial=0.0) < F32
            self.f32.append((Wd.T.astype(np.float32), lam.astype(np.float32)) if exact else None)

    def pre(self, F: np.ndarray) -> np.ndarray:
        """The free second-layer pre-activations of the choices F (needs ``fast``): a_0 plus the chosen rows of
        D, integers, exact in D's type."""
        D, a0, _, _ = self.fast  # D's last row is zero: index -1 adds nothing
        if F.shape[1] > 8:  # wide choices: one product with the choices' flip indicators (integers: exact)
            M = np.zeros((F.shape[0], D.shape[0]), dtype=D.dtype)
            M[np.arange(F.shape[0])[:, None], F] = 1
            return a0 + M @ D
        a = np.broadcast_to(a0, (F.shape[0], a0.size)).copy()
        for c in range(F.shape[1]):
            a += D[F[:, c]]
        return a

    def bits(self, F: np.ndarray) -> np.ndarray:
        if self.fast is not None:
            return (self.pre(F) >= self.fast[2]).astype(np.int8)
        U = np.repeat(self.reach.base_bits[None, :], F.shape[0], axis=0)
        for flip in np.unique(F[F >= 0]):  # a loop over flips, not over choices
            f = self.reach.flips[int(flip)]
            rows = np.flatnonzero(np.equal(F, flip).any(axis=1))
            U[np.ix_(rows, f.units)] = f.bits
        return U

    def first_hit(self, F: np.ndarray, adversarial) -> int:
        """The first row of F (in the order of distinct patterns) that ``adversarial`` accepts, or -1."""
        return self.first_hit_bits(self.bits(F), adversarial)

    def first_hit_bits(self, U: np.ndarray, adversarial, distinct: bool = False, seen: _Seen | None = None) -> int:
        """The first row of U (bits the rest of the network reads) that ``adversarial`` accepts, or -1;
        ``distinct``: the rows of U are known to differ (not sorted out again). ``seen`` (``seen_cache``, one
        per search and predicate): the patterns of the rest's first layer already evaluated in this search,
        skipped (they were not adversarial, or the search would have stopped), the new ones added."""
        if seen is None:
            rows, V, last = self.to_last(U, dedup=True, distinct=distinct)
        else:
            U1 = self._layer(0, U)
            keep = seen.fresh(_pack(U1).T)
            rows, V, last = self.to_last(U1[keep], dedup=True, start=1)
            rows = keep[rows]
        hit = np.flatnonzero(adversarial(last, V))
        return int(rows[hit[0]]) if hit.size else -1

    def seen_cache(self, slot_bits: int) -> _Seen | None:
        """A cache for ``first_hit_bits`` of the patterns the rest's first layer outputs, or None where the rest
        is a single layer (its output is the score itself)."""
        if self.rest is None or len(self.rest.weights) < 2:
            return None
        width = dense(self.rest.weights[0]).shape[0]
        return _Seen(-(-width // 64), width, max(1, slot_bits))

    def smoothed(self, A: np.ndarray, score) -> np.ndarray:
        """``score`` on a smoothed forward pass from the free second-layer pre-activations A (rows; needs
        ``fast``): each step [a >= lambda] becomes the logistic function of (a - lambda + 1/2) / t, with t one
        integer step in the second layer and sqrt(fan-in)/4 after it, so that a choice which brings units near
        their thresholds ranks ahead of one that does not, before any bit flips. Floating point: it only
        steers the beam search (``beam``), whose choices are judged exactly; float32 (tanh in float64 took
        half of the search's time)."""
        _, _, lam, rest = self.fast
        H = _logistic(A.astype(np.float32) - lam.astype(np.float32) + np.float32(0.5))
        for W, t in zip(rest.weights[:-1], rest.thresholds[:-1], strict=True):
            Wd = dense(W).astype(np.float32)
            H = _logistic((H @ Wd.T - t.astype(np.float32) + np.float32(0.5)) *
                          np.float32(4.0 / math.sqrt(max(1, Wd.shape[1]))))
        return np.asarray(score(Network(rest.weights[-1:], rest.thresholds[-1:]), H), dtype=np.float64)

    def judged(self, U: np.ndarray, adversarial, score) -> tuple[np.ndarray, np.ndarray]:
        """(adversarial?, score) of every row of U, the later layers run once for both."""
        _, V, last = self.to_last(U)
        return np.asarray(adversarial(last, V), dtype=bool), np.asarray(score(last, V), dtype=np.float64)

    def to_last(self, U: np.ndarray, dedup: bool = False, distinct: bool = False, start: int = 0
                ) -> tuple[np.ndarray, np.ndarray, Network | None]:
        """(rows, V, last): the bits V that the rest's last layer ``last`` reads for rows ``rows`` of U (all of
        them, or with ``dedup`` one per distinct pattern at each layer); so a test of the output, ``f(last,
        V)``, equals ``f(rest, U[rows])``. Layers run in float32 where that is exact. ``start``: U is the input of
        the rest's layer ``start`` (the layers before it already run). Without a rest (U is the output itself): U
        and None."""
        rows = np.arange(U.shape[0])
        if self.rest is None:
            return rows, U, None
        L = len(self.rest.weights)
        for l in range(start, L):
            if dedup and (l > start or not distinct):
                U, keep = _distinct(U)
                rows = rows[keep]
            if l == L - 1:
                break
            U = self._layer(l, U)
        return rows, U, Network(self.rest.weights[-1:], self.rest.thresholds[-1:])

    def _layer(self, l: int, U: np.ndarray) -> np.ndarray:
        """The bits of the rest's layer l from its input bits U: in float32 where that is exact."""
        if self.f32[l] is not None:
            Wt, lam = self.f32[l]
            return (U.astype(np.float32) @ Wt >= lam).astype(np.int8)
        return Network(self.rest.weights[l:l + 1], self.rest.thresholds[l:l + 1]).forward(U)[0]

    def as_input(self, x: np.ndarray, combo) -> np.ndarray:
        xp = x.copy()
        for i in combo:
            if i >= 0:
                xp[self.reach.flips[int(i)].feature] = self.reach.flips[int(i)].value
        return xp


def moves(D: np.ndarray, reach: Reach) -> tuple[np.ndarray, np.ndarray]:
    """Per second-layer unit, the most any admissible choice can lower and raise its pre-activation: each
    changed feature moves it by one of its patterns' rows of D, and at most ``reach.max_features`` features
    change (for L1, the budget over the cheapest flip), so the k largest moves add up. Integers: exact."""
    feature = reach.feature_of
    feats = np.unique(feature)
    if not feats.size:
        return np.zeros(D.shape[1]), np.zeros(D.shape[1])
    if feats.size == feature.size:  # one pattern per feature: its row is the feature's only move
        rows = D[:len(feature)]
        up, down = np.maximum(0.0, rows), np.minimum(0.0, rows)
    else:
        alts = {j: np.flatnonzero(feature == j) for j in feats.tolist()}
        up = np.array([np.maximum(0.0, D[alts[j]].max(axis=0)) for j in feats.tolist()])
        down = np.array([np.minimum(0.0, D[alts[j]].min(axis=0)) for j in feats.tolist()])
    k = reach.max_features
    if k < len(feats):  # at most k features change: the k largest moves per unit
        up = -np.partition(-up, k - 1, axis=0)[:k] if k else np.zeros((0, D.shape[1]))
        down = np.partition(down, k - 1, axis=0)[:k] if k else np.zeros((0, D.shape[1]))
    return down.sum(axis=0), up.sum(axis=0)


def _only_free(D: np.ndarray, a0: np.ndarray, lam: np.ndarray, later: Network, reach: Reach) -> tuple:
    """Drop the second-layer units no admissible choice can flip (their pre-activation stays on one side of the
    threshold even when every feature, or for L1 the most any k of them can, moves it its furthest way) and
    fold their constant bits into the next layer's thresholds: the same outputs from fewer columns. Only where
    that next layer is integral, so the folded thresholds are exact."""
    if not later.weights:
        return D, a0, lam, later
    W3, lam3 = dense(later.weights[0]), later.thresholds[0]
    if not (np.all(np.round(W3) == W3) and np.all(lam3 == np.round(lam3))) or \
            np.abs(W3).sum(axis=1).max() + np.abs(lam3).max() >= 2.0**52:
        return D, a0, lam, later
    down, up = moves(D, reach)
    always = a0 + down >= lam
    never = a0 + up < lam
    free = ~(always | never)
    shift = W3[:, always].sum(axis=1)  # the fixed units' contribution: integers, exact
    first = W3[:, free]
    rest = Network([first, *later.weights[1:]], [lam3 - shift, *later.thresholds[1:]])
    D2 = np.vstack([D[:-1][:, free], np.zeros((1, int(free.sum())))])
    return D2, a0[free], lam[free], rest


def reduced(net: Network, reach: Reach) -> tuple[np.ndarray, np.ndarray, np.ndarray, Network] | None:
    """(D, a_0, lambda, rest): the free second-layer units as functions of the flips (a = a_0 + D^T f, one row of
    D per flip) and the rest of the network with the fixed units folded in; None where the second layer is not
    evaluated exactly from the flips (``_incremental``)."""
    fast = _incremental(net, reach)
    if fast is None:
        return None
    D, a0, lam, rest = _only_free(*fast, reach)
    return D[:-1], a0, lam, rest


def _distinct(U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 0/1 matrix and where each first occurs (in row order). Rows are packed into 64-bit
    words; wider rows are keyed by a multiplicative hash of their words, and the grouping is then checked
    word for word (a collision falls back to sorting the rows themselves), so no distinct row is ever lost."""
    if U.shape[0] <= 1:
        return U, np.arange(U.shape[0])
    P = np.packbits(U.view(np.uint8), axis=1)
    if P.shape[1] % 8:  # whole words (np.pad costs more than this)
        Q = np.zeros((P.shape[0], -(-P.shape[1] // 8) * 8), dtype=np.uint8)
        Q[:, :P.shape[1]] = P
        P = Q
    words = np.ascontiguousarray(P).view(np.uint64)
    if words.shape[1] == 1:
        _, first = np.unique(words[:, 0], return_index=True)
    else:
        key = (words * _MIX[:words.shape[1]]).sum(axis=1, dtype=np.uint64)  # wraps modulo 2^64
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        if not np.array_equal(words[first][inverse.ravel()], words):
            _, first = np.unique(words.view(np.dtype((np.void, words.shape[1] * 8))).ravel(), return_index=True)
    first.sort()
    return U[first], first


_MIX = np.random.default_rng(20240229).integers(1, 2**63, size=512, dtype=np.uint64) | np.uint64(1)


class SearchTimeoutError(TimeoutError):
    """The enumeration reached its deadline: nothing is proven."""

    def __init__(self, done: int) -> None:
        super().__init__(f"deadline after {done} choices")
        self.done = done


class Enumeration:
    """The exhaustive search of one query, prepared once: its evaluator and its tail plan. ``speedup``
    tells the caller what the search will cost (to choose an engine) without building anything twice."""

    def __init__(self, net: Network, reach: Reach, eps: float, norm: str) -> None:
        self.net, self.reach, self.eps, self.norm = net, reach, eps, norm
        self._ev: Evaluator | None = None
        self._plan: _TailPlan | bool | None = False  # False: not made yet
        self.done = 0  # choices checked by the last search that finished (of its part)

    @property
    def ev(self) -> Evaluator:
        if self._ev is None:
            self._ev = Evaluator(self.net, self.reach)
        return self._ev

    @property
    def plan(self) -> _TailPlan | None:
        if self._plan is False:
            r = self.reach
            tails = len(r.flips) >= 2 and (self.norm == "inf" or r.max_features >= 2) and \
                r.combinations >= PLAN_MIN  # else no evaluator either; few choices: the blocks start sooner
            self._plan = _TailPlan.make(self.ev, r, self.eps, self.norm) if tails else None
        return self._plan

    @property
    def speedup(self) -> float:
        """How much faster than the block enumeration the search will be on this query."""
        return 1.0 if self.plan is None else TAIL_SPEEDUP if self.plan.words == 1 else WIDE_SPEEDUP

    def search(self, x: np.ndarray, adversarial, deadline: float | None = None,
               part: tuple[int, int] = (0, 1)) -> np.ndarray | None:
        """See :func:`search`. ``part`` (i, n): only the i-th of n shares of the choices (every n-th row of the
        blocks, or of the tail plan's prefixes; with L1 tails, the prefixes whose last flip is i modulo n), so
        that n processes share one enumeration; the n parts together are the whole enumeration. ``done`` then
        holds the choices this part checked."""
        if self.plan is not None:
            xp, self.done = self.plan.search(self.ev, x, adversarial, deadline, part)
            return xp
        done, seen = 0, 0
        for block in choice_blocks(self.reach, self.eps, self.norm):
            F, seen = _share(block, seen, part)
            if not F.shape[0]:
                continue
            hit = self.ev.first_hit(F, adversarial)
            if hit >= 0:
                return self.ev.as_input(x, F[hit])
            done += F.shape[0]
            if deadline is not None and time.perf_counter() > deadline:
                raise SearchTimeoutError(done)
        self.done = done
        return None


def _share(rows: np.ndarray, seen: int, part: tuple[int, int], by: np.ndarray | None = None
           ) -> tuple[np.ndarray, int]:
    """Part i of n of a block of rows, counting rows across blocks (``seen`` before this one): the rows whose
    running index is i modulo n, or with ``by`` (an integer key per row) those whose key is; and ``seen`` after
    the block."""
    i, n = part
    if n == 1:
        return rows, seen + rows.shape[0]
    return (rows[by % n == i] if by is not None else rows[(i - seen) % n::n]), seen + rows.shape[0]


def search(net: Network, x: np.ndarray, reach: Reach, eps: float, norm: str, adversarial,
           deadline: float | None = None) -> np.ndarray | None:
    """The first choice whose bits make ``adversarial(rest, bits)`` true, as an input x'; None when no admissible
    choice does (exhaustive). ``adversarial`` gets a suffix of the network and a batch of its input bit vectors
    (``Evaluator.first_hit``) and returns a boolean per row. Raises SearchTimeoutError at ``deadline``
    (time.perf_counter())."""
    return Enumeration(net, reach, eps, norm).search(x, adversarial, deadline)


PLAN_MIN = 1 << 16  # choices from which the tail plan pays for its making (up to 25 ms: Sakai's L-inf queries)
PAIR_BLOCK = 1 << 22  # word operations per numpy block of the tail enumeration (its arrays stay in cache)
CACHE_BITS = 24  # at most 2^24 words of its direct-mapped cache of second-layer patterns already evaluated
MAX_WORDS = 4  # free second-layer units up to 256: keys of up to four 64-bit words
PAIR_LEVELS = 8  # distinct pair sums the L1 plan accepts
TAIL_FLIPS = 10  # L-infinity: the last flips whose subsets are the tails (2^10 per prefix)
TAIL_LEVELS = 24  # distinct tail sums the L-infinity plan accepts (fewer tail flips where there are more)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ONES = np.iinfo(np.uint64).max


@dataclass
class _TailPlan:
    """The enumeration as prefixes times tails, on packed keys of the free second-layer bits.

    L1: every choice of two or more flips is, in increasing flip order, a prefix (all but the last two) and a
    tail, the last two (single flips and no flip are done first). L-infinity (every subset of the flips): a
    prefix is any subset of the first n - k flips, a tail any subset of the last k. For a prefix with
    second-layer sum p, unit j's bit under tail q is [P_qj >= v_j] with v_j = need_j - p_j and P_q the tail's
    sum. With L_0 < ... < L_r the distinct values of the tail sums, that bit is [P_qj >= L_t] for the t with
    L_(t-1) < v_j <= L_t (always 1 for v_j <= L_0, always 0 above L_r): so the key of (prefix, q) is
    S_0 OR (OR_(t>=1) M_qt AND S_t), M_qt the packed bits [P_q >= L_t] of tail q and S_t the units of the
    prefix in class t. A choice then costs a few word operations per 64 units instead of a pass over the
    units; each distinct key (a direct-mapped cache skips the ones seen recently, compared word for word) is
    evaluated once by the exact forward pass (``Evaluator.first_hit_bits``). Integers throughout: exhaustive
    and exact."""

    D: np.ndarray  # int64, flips x free units: each flip's change of the free units' pre-activations
    need: np.ndarray  # int64: unit j is on when the chosen flips' sum reaches need_j
    cost: np.ndarray  # int64 (L-infinity: zeros)
    budget: int  # L-infinity: 0
    norm: str
    head: int  # the prefixes are made of flips 0 .. head - 1
    tails: np.ndarray  # tails x width: their flips, -1 for none (L1: the pairs, sorted by first flip)
    first: np.ndarray  # each tail's first flip: a prefix takes the tails that start after its last flip
    tc: np.ndarray  # the tails' costs
    levels: np.ndarray  # the distinct values of the tail sums
    M: np.ndarray  # uint64, (levels - 1) x words x tails: packed [tail sum >= L_t], t >= 1
    words: int
    choices: int  # how many choices there are (reach.combinations): the cache is no larger than that

    @staticmethod
    def make(ev: Evaluator, reach: Reach, eps: float, norm: str) -> _TailPlan | None:
        """None where the plan does not apply: several patterns of one feature, fractional L1 costs or sums, no
        free unit or more than 64 x MAX_WORDS (L1: 64), fewer than two flips (L1: in the budget), too many
        levels."""
        if ev.fast is None or len(reach.flips) < 2 or (norm == "1" and reach.max_features < 2):
            return None
        feature, cost = reach.feature_of, reach.cost_of
        if np.unique(feature).size != feature.size or (norm == "1" and np.any(cost != np.round(cost))):
            return None
        Df, a0, lam, _ = ev.fast
        D, need = np.rint(Df[:-1]).astype(np.int64), np.rint(lam - a0).astype(np.int64)
        n, F = D.shape
        # L1 keeps to one word: with wide keys most keys are new there, and the block enumeration gets through
        # them faster (Sakai's back 10 at budget 19: 0.28 against 0.18 million choices per second)
        widest = 64 if norm == "1" else 64 * MAX_WORDS
        if not 1 <= F <= widest or np.any(Df[:-1] != D) or np.any(need != lam - a0):
            return None
        Dz = np.vstack([D, np.zeros((1, F), dtype=np.int64)])  # row -1: no flip
        if norm == "1":
            c, budget = cost.astype(np.int64), math.floor(eps)
            pi, pj = np.triu_indices(n, 1)
            ok = c[pi] + c[pj] <= budget
            if not ok.any():
                return None
            tails, head, most = np.stack([pi[ok], pj[ok]], axis=1), n, PAIR_LEVELS
            first, tc = tails[:, 0], c[tails].sum(axis=1)
            P = Dz[tails].sum(axis=1)
        else:
            c, budget, most = np.zeros(n, dtype=np.int64), 0, TAIL_LEVELS
            for k in range(min(n, TAIL_FLIPS), 0, -1):  # the most tail flips whose sums have few levels
                member = ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(bool)
                tails = np.where(member, n - k + np.arange(k), -1)
                P = Dz[tails].sum(axis=1)
                if np.unique(P).size <= most:
                    break
            head, first, tc = n - k, np.full(len(tails), n), np.zeros(len(tails), dtype=np.int64)
        levels = np.unique(P)
        if levels.size > most:
            return None
        words = -(-F // 64)
        M = np.stack([_pack(t <= P, words).T for t in levels[1:]]) if levels.size > 1 else \
            np.zeros((0, words, len(tails)), dtype=np.uint64)
        return _TailPlan(D, need, c, budget, norm, head, tails, first, tc, levels, M, words, reach.combinations)

    def search(self, ev: Evaluator, x: np.ndarray, adversarial, deadline: float | None,
               part: tuple[int, int] = (0, 1)) -> tuple[np.ndarray | None, int]:
        """(x' or None, choices checked); ``part``: as in ``Enumeration.search`` (the choices without a tail go
        to part 0)."""
        n, F = self.D.shape
        W = self.words
        # the cache: at most 128 MiB (Sakai's mnist network: 2^22 slots make the search 1.3x slower, 2^26 1.3x)
        bits_w = max(1, min(CACHE_BITS, max(10, self.choices.bit_length())) - (W - 1).bit_length())
        cache = _Seen(W, F, bits_w)
        later = ev.seen_cache(bits_w - 2)  # the third layer's patterns already evaluated
        done = 0
        budget = math.inf
        if self.norm == "1":  # no flip and single flips first: their patterns directly; then the prefixes are
            # the choices within the budget less the cheapest tail
            if part[0] == 0:
                alone = np.flatnonzero(self.cost <= self.budget)
                U = (np.vstack([np.zeros((1, F), dtype=np.int64), self.D[alone]]) >= self.need).astype(np.int8)
                hit = ev.first_hit_bits(U, adversarial)
                if hit >= 0:
                    return ev.as_input(x, [] if hit == 0 else [int(alone[hit - 1])]), done + U.shape[0]
                done = U.shape[0]
            budget = self.budget - int(self.tc.min())
        # flip j standing for feature j: the prefixes are choices among the head flips
        heads = Reach(np.zeros(0), [Flip(j, 0.0, float(c), np.zeros(0), np.zeros(0))
                                    for j, c in enumerate(self.cost[:self.head])], 0)
        starts = np.searchsorted(self.first, np.arange(-1, n), side="right")  # tails after flip m: [m + 1] on
        T = self.levels.size
        seen = 0
        for block in choice_blocks(heads, budget, self.norm):
            by_last = (block[:, -1] if block.shape[1] else np.zeros(block.shape[0], np.int64)) \
                if self.norm == "1" else None  # L1: parts by the last flip, so the runs below stay whole
            Pref, seen = _share(block, seen, part, by_last)
            if not Pref.shape[0]:
                continue
            last = Pref[:, -1] if Pref.shape[1] and self.norm == "1" else np.full(Pref.shape[0], -1)
            spent = self.cost[Pref].sum(axis=1)
            v = self.need - self.D[Pref].sum(axis=1)
            cls = np.searchsorted(self.levels, v, side="left")  # L_(t-1) < v <= L_t; t = T: always off
            S = np.stack([_pack(cls == t, W).T for t in range(T)])  # T x words x rows: the long axis last
            order = np.lexsort((spent, last))
            bounds = np.flatnonzero(np.diff(last[order]) | np.diff(spent[order])) + 1
            for run in np.split(order, bounds):
                m, b = int(last[run[0]]), self.budget - int(spent[run[0]])
                lo = int(starts[m + 1])
                q = np.arange(lo, len(self.tails))
                q = q[self.tc[q] <= b] if np.any(self.tc[lo:] > b) else q
                if not q.size:
                    continue
                Mq = self.M[:, :, q]
                step = max(1, PAIR_BLOCK // (q.size * W * max(1, T - 1)))
                for a in range(0, run.size, step):
                    rows = run[a:a + step]
                    Sr = S[:, :, rows, None]
                    keys = np.empty((W, rows.size, q.size), dtype=np.uint64)  # words x rows x tails
                    keys[...] = Sr[0]
                    piece = np.empty_like(keys)
                    for t in range(1, T):
                        if Sr[t].any():  # some unit of these prefixes in class t
                            np.bitwise_and(Mq[t - 1][:, None, :], Sr[t], out=piece)
                            keys |= piece
                    flat = keys.reshape(W, -1)
                    new = cache.fresh(flat)
                    done += flat.shape[1]
                    if new.size:
                        if W == 1:  # distinct already: the evaluator need not sort them again
                            new = new[np.unique(flat[0, new], return_index=True)[1]]
                        hit = ev.first_hit_bits(_unpack(flat[:, new].T, F), adversarial, distinct=W == 1, seen=later)
                        if hit >= 0:
                            r, k = divmod(int(new[hit]), q.size)
                            tail = [int(i) for i in self.tails[q[k]] if i >= 0]
                            return ev.as_input(x, [*Pref[rows[r]].tolist(), *tail]), done
                    if deadline is not None and time.perf_counter() > deadline:
                        raise SearchTimeoutError(done)
        return None, done


# How much faster than the block enumeration the tail enumeration gets through choices: with keys of one word
# (Sakai's mnist network, L1: about 30x) and of several (L-infinity only; Sakai's back-image network, 93 free
# second-layer units: about 9x, where evaluating the later layers takes a larger share)
TAIL_SPEEDUP = 20.0
WIDE_SPEEDUP = 5.0


def _pack(B: np.ndarray, words: int | None = None) -> np.ndarray:
    """Rows of a 0/1 matrix (at most 64 x words columns; words: as few as hold them) as rows x words uint64,
    column j as bit j % 64 of word j // 64: the keys of the tail plan and of ``_Seen``."""
    words = words or -(-B.shape[1] // 64)
    P = np.packbits(B, axis=1, bitorder="little")
    Q = np.zeros((B.shape[0], 8 * words), dtype=np.uint8)
    Q[:, :P.shape[1]] = P
    return Q.view("<u8")


def _unpack(P: np.ndarray, width: int) -> np.ndarray:
    """The inverse of ``_pack``: rows x words uint64 back to rows x width bits (int8)."""
    B = np.ascontiguousarray(P.astype("<u8", copy=False)).view(np.uint8)
    return np.unpackbits(B, axis=1, count=width, bitorder="little").view(np.int8)


class _Seen:
    """A direct-mapped cache of packed bit rows (words x rows of uint64) already handed to the evaluator, so
    that a search evaluates a recurring pattern once. One slot per hash value; a row that lands on an occupied
    slot evicts the one before, which is evaluated again if it recurs: a row is skipped only when it equals
    the row its slot holds, word for word. Empty slots hold all ones in a word that no row fills (rows of
    exactly 64 x words bits get a word more, always zero), so an empty slot never matches."""

    def __init__(self, words: int, width: int, slot_bits: int) -> None:
        self.words, self.pad = words, width % 64 == 0
        self.table = np.full((words + self.pad, 1 << slot_bits), _ONES, dtype=np.uint64)
        self.mix, self.shift = _MIX[:words], np.uint64(64 - slot_bits)

    def fresh(self, flat: np.ndarray) -> np.ndarray:
        """The columns of ``flat`` (words x rows) the cache does not hold, by index; it holds them afterwards."""
        W = self.words
        h = flat[0] if W == 1 else (flat * self.mix[:, None]).sum(axis=0, dtype=np.uint64)
        slot = (h * _GOLDEN) >> self.shift
        differ = self.table[0, slot] != flat[0]
        for w in range(1, W):
            differ |= self.table[w, slot] != flat[w]
        if self.pad:
            differ |= self.table[W, slot] != 0
        new = np.flatnonzero(differ)
        self.table[:W, slot[new]] = flat[:, new]
        if self.pad:
            self.table[W, slot[new]] = 0
        return new


def random_choices(reach: Reach, eps: float, norm: str, p: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random admissible choices as a flip-index matrix: each feature flips with probability p to one of its
    patterns (uniformly); for L1, the flips are then kept in a random order while the budget lasts."""
    _, group = np.unique(reach.feature_of, return_inverse=True)  # the features with a flip, in order
    count = np.bincount(group)
    order = np.argsort(group, kind="stable")  # each feature's flips, in flip order
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    table = np.repeat(order[start][:, None], count.max(), axis=1)  # feature x alternative -> flip; short rows
    table[group[order], np.arange(order.size) - start[group[order]]] = order  # padded with their first flip
    pick = (rng.random((n, count.size)) * count).astype(np.int64)
    F = np.where(rng.random((n, count.size)) < p, table[np.arange(count.size), pick], -1)
    if norm == "1":
        cost = np.append(reach.cost_of, 0.0)
        order = np.argsort(rng.random(F.shape), axis=1)
        Fo = np.take_along_axis(F, order, axis=1)
        keep = np.cumsum(cost[Fo], axis=1) <= eps
        F = np.where(keep, Fo, -1)
    return F


def attack(net: Network, x: np.ndarray, reach: Reach, eps: float, norm: str, adversarial, score=None,
           rounds: int = 12, seed: int = 0) -> np.ndarray | None:
    """A quick search for an adversarial choice where enumeration is too large: with ``score`` (lower is closer
    to adversarial) a greedy descent adding the flip that lowers it most, then random choices
    (``random_choices``). Finds counterexamples only; proves nothing."""
    rng = np.random.default_rng(seed)
    flips = reach.flips
    if not flips:
        return None
    ev, feature, cost = Evaluator(net, reach), reach.feature_of, reach.cost_of

    def greedy() -> np.ndarray | None:
        """Add the flip that lowers ``score`` most, while it does and the budget allows."""
        combo: list[int] = []
        current = float(ev.judged(ev.bits(np.full((1, 1), -1)), adversarial, score)[1][0])
        spent = 0.0
        while True:
            ok = ~np.isin(feature, feature[combo]) if combo else np.ones(len(flips), bool)
            if norm == "1":
                ok &= spent + cost <= eps
            cand = np.flatnonzero(ok)
            if not cand.size:
                return None
            F = np.concatenate([np.repeat(np.array(combo, dtype=np.int64)[None, :], cand.size, axis=0),
                                cand[:, None]], axis=1)
            adv, sc = ev.judged(ev.bits(F), adversarial, score)
            hit = np.flatnonzero(adv)
            if hit.size:
                return ev.as_input(x, F[int(hit[0])])
            best = int(np.argmin(sc))
            if sc[best] >= current:
                return None
            combo.append(int(cand[best]))
            current, spent = float(sc[best]), spent + float(cost[cand[best]])

    if score is not None:
        found = greedy()
        if found is not None:
            return found
    for r in range(rounds):  # small batches first: where counterexamples are common, one is found at once
        F = random_choices(reach, eps, norm, (0.75, 0.5, 0.25, 0.1)[r % 4], min(BATCH, 256 << r), rng)
        hit = ev.first_hit(F, adversarial)
        if hit >= 0:
            return ev.as_input(x, F[hit])
    return None


def _logistic(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # 1 / (1 + e^-z) without overflow


def beam(net: Network, x: np.ndarray, reach: Reach, eps: float, norm: str, adversarial, score, width: int = 256,
         deadline: float | None = None, smooth: bool = False, polished: bool = False) -> np.ndarray | None:
    """The cheapest adversarial choice a beam search finds within the budget, as an input x', or None: choices
    grow one flip at a time, the ``width`` with the lowest ``score`` (ties: the cheaper) go on, and once an
    adversarial choice of cost c is found only cheaper ones are sought. ``smooth``: rank by the score of a
    smoothed forward pass (``Evaluator.smoothed``) where the second layer is evaluated from the flips; the
    two rankings find different counterexamples (on Sakai's networks each finds some the other misses).
    ``polished``: then cheapen the choice by local search (``polish``). Finds upper bounds on the smallest
    perturbation (counterexamples, replayed like any other); proves nothing. Stops at ``deadline``."""

    if not reach.flips:
        return None
    ev, feat, cost = Evaluator(net, reach), reach.feature_of, reach.cost_of
    key = np.random.default_rng(7).integers(1, 2**63, size=len(reach.flips), dtype=np.uint64)  # a set's key: the sum
    integral = bool(np.all(cost == np.round(cost)))
    P, spent, hashed = np.zeros((1, 0), dtype=np.int64), np.zeros(1), np.zeros(1, dtype=np.uint64)
    A = None if ev.fast is None else ev.fast[1][None, :]  # the free second-layer pre-activations of each row
    best, limit = None, float(eps)
    while P.shape[0] and (deadline is None or time.perf_counter() < deadline):
        grown = np.maximum(spent[:, None], cost[None, :]) if norm == "inf" else spent[:, None] + cost[None, :]
        ok = grown <= limit
        for c in range(P.shape[1]):
            ok &= feat[P[:, c]][:, None] != feat[None, :]
        r, j = np.nonzero(ok)
        if not r.size:
            break
        _, first = np.unique(hashed[r] + key[j], return_index=True)  # one row per set (a collision drops one)
        r, j = r[first], j[first]
        Q, sq = np.concatenate([P[r], j[:, None]], axis=1), grown[r, j]
        if A is not None:
            D, _, lam, _ = ev.fast
            AQ = A[r] + D[j]
            U = (lam <= AQ).astype(np.int8)
        else:
            U = ev.bits(Q)
        first, back = _patterns(U)  # rows share patterns: each is evaluated once
        adv, sc = (a[back] for a in ev.judged(U[first], adversarial, score))
        if adv.any():
            i = np.flatnonzero(adv)[np.argmin(sq[adv])]
            best = Q[i]
            limit = float(sq[i]) - 1.0 if integral else float(np.nextafter(sq[i], -np.inf))
        keep = np.flatnonzero(~adv & (sq <= limit))
        if smooth and A is not None:
            sc = ev.smoothed(AQ[keep], score)
            order = keep[np.lexsort((sq[keep], sc))[:width]]
        else:
            order = keep[np.lexsort((sq[keep], sc[keep]))[:width]]
        P, spent, hashed = Q[order], sq[order], hashed[r[order]] + key[j[order]]
        if A is not None:
            A = AQ[order]
    if best is not None and polished:
        best = polish(ev, best, norm, adversarial, score, deadline)
    return None if best is None else ev.as_input(x, best)


POLISH_ROWS = 32_768  # candidates judged per batch by ``polish``


def polish(ev: Evaluator, combo: np.ndarray, norm: str, adversarial, score,
           deadline: float | None = None) -> np.ndarray:
    """A cheaper adversarial choice near ``combo`` (adversarial itself), by local search: drop one flip, swap
    one for a cheaper one, or two for one; of the moves that stay adversarial (each judged exactly) the
    cheapest is taken (ties: the lowest rank, the smoothed score where there is one, else ``score``). Where no
    move is cheaper, a swap at the same cost that stays adversarial and lowers the rank is taken (the rank
    falls strictly, so this ends). Stops where neither exists, or at the deadline. On Sakai's mnist network,
    image 21 at L1, it took a beam search's choice of cost 17 to one of cost 7."""
    reach = ev.reach
    feat, cost = reach.feature_of, np.append(reach.cost_of, 0.0)  # index -1 (no flip) costs nothing
    n = len(reach.flips)

    def size(F: np.ndarray) -> np.ndarray:
        return cost[F].sum(axis=1) if norm == "1" else cost[F].max(axis=1, initial=0.0)

    def judge(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(adversarial?, rank): the pre-activations computed once, and no exact score where it is not the rank."""
        if ev.fast is None:
            return ev.judged(ev.bits(F), adversarial, score)
        A = ev.pre(F)
        _, V, last = ev.to_last((ev.fast[2] <= A).astype(np.int8))
        return np.asarray(adversarial(last, V), dtype=bool), ev.smoothed(A, score)

    def moves(S: np.ndarray, swaps_only: bool) -> Iterator[np.ndarray]:
        """Choices one move from S (blocks of rows; -1 for a dropped flip), one feature per flip."""
        m = S.size
        clash = feat[:, None] == feat[S][None, :]  # flip k uses the feature of S's i-th flip
        total = clash.sum(axis=1)
        i, k = np.nonzero((total[None, :] - clash.T == 0) & (np.arange(n)[None, :] != S[:, None]))
        one = np.repeat(S[None, :], i.size, axis=0)
        one[np.arange(i.size), i] = k  # position i swapped for flip k
        yield one
        if swaps_only:
            return
        drop = np.repeat(S[None, :], m, axis=0)
        drop[np.arange(m), np.arange(m)] = -1
        yield drop
        for a, b in itertools.combinations(range(m), 2):  # positions a, b replaced by one flip k
            k = np.flatnonzero(total - clash[:, a] - clash[:, b] == 0)
            two = np.repeat(S[None, :], k.size, axis=0)
            two[:, a], two[:, b] = k, -1
            yield two

    def best_move(S: np.ndarray, now: float, rank: float) -> np.ndarray | None:
        """The cheapest adversarial move below cost ``now`` (ties: lowest rank) or, if there is none, the
        adversarial same-cost swap of lowest rank below ``rank``; None if neither."""
        for plateau in (False, True):
            best, key, held, rows = None, (now, rank) if plateau else (now, math.inf), [], 0
            blocks = moves(S, plateau)
            for block in itertools.chain(blocks, [None]):
                if block is not None:
                    c = size(block)
                    held.append(block[c <= now] if plateau else block[c < now])
                    rows += held[-1].shape[0]
                    if rows < POLISH_ROWS:
                        continue
                if not rows:
                    break
                F, held, rows = np.concatenate(held), [], 0
                adv, rk = judge(F)
                hits = np.flatnonzero(adv)
                if hits.size:
                    sz = size(F[hits])
                    h = int(np.lexsort((rk[hits], sz))[0])
                    if (float(sz[h]), float(rk[hits[h]])) < key:
                        best, key = F[hits[h]], (float(sz[h]), float(rk[hits[h]]))
                if deadline is not None and time.perf_counter() >= deadline:
                    return best
            if best is not None:
                return best
        return None

    S = np.asarray(combo, dtype=np.int64)
    S = S[S >= 0]
    while S.size and (deadline is None or time.perf_counter() < deadline):
        nxt = best_move(S, float(size(S[None, :])[0]), float(judge(S[None, :])[1][0]))
        if nxt is None:
            break
        S = nxt[nxt >= 0]
    return S


def _patterns(U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, back): the row where each distinct row of the 0/1 matrix U first occurs, and for every row the
    index of its pattern among those (U[first][back] == U)."""
    if U.shape[1] == 0:
        return np.zeros(min(1, U.shape[0]), dtype=np.int64), np.zeros(U.shape[0], dtype=np.int64)
    packed = np.ascontiguousarray(np.packbits(U.view(np.uint8), axis=1))
    _, first, back = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_index=True,
                               return_inverse=True)
    return first, back.ravel()


@dataclass
class BnB:
    answer: str  # robust | not_robust | unknown (node limit)
    counterexample: np.ndarray | None
    nodes: int
    leaves: int


def branch_and_bound(net: Network, x: np.ndarray, reach: Reach, eps: float, norm: str, adversarial, safe,
                     node_limit: int = 200_000, deadline: float | None = None) -> BnB | None:
    """Exhaustive search over the choices with pruning: features are decided one by one (no flip, or one of
    their patterns within the budget); at each node the second layer's pre-activations are bounded by the
    chosen flips plus, per undecided feature, the least and most any of its patterns adds. Where those bounds
    fix every second-layer bit, the subtree has one outcome, evaluated exactly; where ``safe(later, lo, hi)``
    (rigorous interval arithmetic on the later layers) proves the output unchanged for every bit vector in
    [lo, hi], the subtree is pruned. Sums are of integers (``_incremental``), so every bound is exact; a
    completed search is a proof. None where the incremental arithmetic does not apply; ``unknown`` at the node
    limit or the deadline (time.perf_counter())."""
    fast = _incremental(net, reach)
    if fast is None:
        return None
    D, a0, lam, later = fast
    flips = reach.flips
    feats = sorted({f.feature for f in flips}, key=lambda j: -max(np.abs(D[i]).sum() for i, f in enumerate(flips)
                                                                       if f.feature == j))
    alts = {j: [i for i, f in enumerate(flips) if f.feature == j] for j in feats}
    lo_add = np.array([np.minimum(0.0, D[alts[j]].min(axis=0)) for j in feats]) if feats else np.zeros((0, a0.size))
    hi_add = np.array([np.maximum(0.0, D[alts[j]].max(axis=0)) for j in feats]) if feats else np.zeros((0, a0.size))
    # suffix sums: what the features from depth d on can still add
    lo_rest = np.vstack([np.cumsum(lo_add[::-1], axis=0)[::-1], np.zeros((1, a0.size))])
    hi_rest = np.vstack([np.cumsum(hi_add[::-1], axis=0)[::-1], np.zeros((1, a0.size))])
    min_cost = min((f.cost for f in flips), default=math.inf)
    stats = {"nodes": 0, "leaves": 0}

    def as_input(chosen: list[int]) -> np.ndarray:
        xp = x.copy()
        for i in chosen:
            xp[flips[i].feature] = flips[i].value
        return xp

    def visit(depth: int, a: np.ndarray, budget: float, chosen: list[int]) -> np.ndarray | bool | None:
        stats["nodes"] += 1
        if stats["nodes"] > node_limit or (deadline is not None and stats["nodes"] % 64 == 0
                                           and time.perf_counter() > deadline):
            return False
        rest_lo, rest_hi = lo_rest[depth], hi_rest[depth]
        if norm == "1":  # at most k more flips: per unit, the k most negative (positive) additions
            k = math.floor(budget / min_cost) if min_cost > 0 else len(feats)
            left = len(feats) - depth
            if k == 0:
                rest_lo, rest_hi = 0.0, 0.0
            elif k < left:
                rest_lo = np.partition(lo_add[depth:], k - 1, axis=0)[:k].sum(axis=0)
                rest_hi = -np.partition(-hi_add[depth:], k - 1, axis=0)[:k].sum(axis=0)
        b_lo = (a + rest_lo >= lam).astype(np.int8)
        b_hi = (a + rest_hi >= lam).astype(np.int8)
        if np.array_equal(b_lo, b_hi) or depth == len(feats):  # one outcome for the whole subtree
            stats["leaves"] += 1
            return as_input(chosen) if adversarial(later, b_lo[None, :])[0] else None
        if safe(later, b_lo.astype(np.float64), b_hi.astype(np.float64)):
            return None
        j = feats[depth]
        found = visit(depth + 1, a, budget, chosen)
        if found is not None:
            return found
        for i in alts[j]:
            if norm == "1" and flips[i].cost > budget:
                continue
            found = visit(depth + 1, a + D[i], budget - (flips[i].cost if norm == "1" else 0.0), [*chosen, i])
            if found is not None:
                return found
        return None

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * len(feats) + 100))
    try:
        out = visit(0, a0.copy(), float(eps), [])
    finally:
        sys.setrecursionlimit(limit)
    if out is False:
        return BnB("unknown", None, stats["nodes"], stats["leaves"])
    if out is None:
        return BnB("robust", None, stats["nodes"], stats["leaves"])
    return BnB("not_robust", out, stats["nodes"], stats["leaves"])
