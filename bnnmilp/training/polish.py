"""Margin polishing: make the written weights reproduce the MILP's activation pattern exactly.

A MILP solution sits on the boundary of its rows (margin 0, to solver
tolerance), so a float forward pass may flip bits. Polishing fixes the
activation pattern u found by the MILP and solves the LP over the weights
and thresholds (discrete weights stay fixed)

    max t   s.t.  a^{i,l}_k - lambda_l >= t              where u^{i,l}_k = 1
                  a^{i,l}_k - lambda_l <= -epsilon - t   where u^{i,l}_k = 0
                  a^{i,1} = W^1 x^i,  a^{i,l} = W^l u^{i,l-1}  (u fixed: linear in W)

(``min``). ``sum`` and ``neuron`` then keep every slack >= t*/2 and maximise,
in a second LP, the sum of the per-row slacks t_r or the sum over neurons of
each neuron's own smallest slack,

    max sum_{l,k} t_{lk}  s.t.  the rows above with t_{lk} in place of t,  t_{lk} >= t*/2

(``neuron``: every hidden and output unit gets its own max-min margin, as a
max-margin hyperplane per neuron; the global ``min`` only cares about the
worst unit and leaves the others at a vertex of the box, far from what the
start network learned). ``polish_radius`` r keeps the weights within r of the
solver's (|W - W0| <= r elementwise), so that polishing refines the network
instead of replacing it. The pattern, hence every output bit and the loss, is
unchanged, and every bit holds with slack >= t*/2 (far above solver tolerances
when t* > 0; some patterns force t* = 0, e.g. two samples whose
pre-activations differ by exactly epsilon under fixed discrete weights).

Threshold snapping then makes the result exact whatever the LP's rounding:
with the weights fixed, the thresholds that realise the pattern form an
exact interval [max_{u=0} a + epsilon, min_{u=1} a] (rational arithmetic),
and each threshold is set to a double inside it, at its middle where possible.
The caller checks the result with the exact forward pass anyway.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from bnnmilp.formulations.theorem1 import add_thresholds, network_at, pattern_rows
from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.milp.model import INF, ModelBuilder
from bnnmilp.network import Network, exact_preactivation
from bnnmilp.spec import Spec

_POSITIVE = 1e-7  # a margin the LP reports above this is treated as positive


def _margin_lp(spec: Spec, X: np.ndarray, pattern: list[np.ndarray], fixed: Network | None,
               slack: str = "one", floor: float = 0.0, box: tuple[Network, float] | None = None,
               near: Network | None = None) -> tuple[ModelBuilder, dict, np.ndarray]:
    """The polishing LP. ``slack``: one t for all rows (``one``), one per row (``row``) or per neuron
    (``neuron``), each >= ``floor``; ``box``: weights within radius of a network; ``near``: t fixed at
    ``floor`` and the L1 distance to ``near`` minimised instead."""
    net = spec.network
    b = ModelBuilder("bnnmilp_polish")
    W, lam = {}, {}
    for l in range(1, net.depth + 1):
        d, dp = net.layers[l], net.layers[l - 1]
        if fixed is not None:
            W[l] = b.add_vars(f"w{l}", (d, dp), fixed.weights[l - 1], fixed.weights[l - 1])
        elif box is not None:
            w0, r = box[0].weights[l - 1], box[1]
            W[l] = b.add_vars(f"w{l}", (d, dp), np.clip(w0 - r, -1.0, 1.0), np.clip(w0 + r, -1.0, 1.0))
        else:
            W[l] = b.add_vars(f"w{l}", (d, dp), -1.0, 1.0)
        lam[l] = add_thresholds(b, net.thresholds, l, d)
    t = b.add_vars("t", (), floor, floor if near is not None else INF) if slack == "one" else None
    slacks = [] if t is None else [np.atleast_1d(t)]
    slacks += pattern_rows(b, spec, X, pattern, W, lam, slack=slack if t is None else np.asarray(t), floor=floor)
    if near is not None:  # min sum |W - W0|: p >= W - W0, p >= W0 - W
        ps = []
        for l in range(1, net.depth + 1):
            w0 = near.weights[l - 1]
            p = b.add_vars(f"p{l}", w0.shape, 0.0, INF)
            b.add_rows(f"pa{l}", w0.shape, np.stack([p, W[l]], -1), np.array([1.0, -1.0]), -w0, INF)
            b.add_rows(f"pb{l}", w0.shape, np.stack([p, W[l]], -1), np.array([1.0, 1.0]), w0, INF)
            ps.append(p.ravel())
        allp = np.concatenate(ps)
        b.set_objective(allp, np.ones(allp.shape))
    else:
        allt = np.concatenate(slacks)
        b.set_objective(allt, -np.ones(allt.shape))
    return b, W, lam


def pattern_of(spec: Spec, net: Network, X: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """The activation pattern polishing keeps: every step layer's bits and, for an argmax output layer, the
    class each sample wins by the epsilon margin (one-hot; zero rows for the others)."""
    bits = net.forward(X)
    if spec.network.output != "argmax":
        return bits
    ok = net.score_margins(X, labels, bits) >= spec.training.epsilon
    return [*bits[:-1], (np.eye(spec.network.n_outputs, dtype=np.int8)[labels] * ok[:, None]).astype(np.int8)]


def polish(spec: Spec, X: np.ndarray, pattern: list[np.ndarray], start: Network,
           objective: str = "min", radius: float | None = None, time_limit: float | None = None) -> Network | None:
    """Weights realising ``pattern`` with maximal margin, or None if no positive margin was found.

    ``start`` provides the weights that stay fixed for discrete weight domains and, with ``radius``,
    the centre of the box the continuous weights stay in (the whole box [-1, 1] if the smallest margin
    cannot be made positive inside it). The caller checks the result in exact arithmetic
    (:meth:`Network.min_slack`).
    """
    fixed = start if spec.network.weights != "continuous" else None
    box = (start, radius) if radius is not None and fixed is None else None
    opts = SolveOptions(time_limit=time_limit)

    def solve(slack: str, floor: float, where: tuple[Network, float] | None):
        b, W, lam = _margin_lp(spec, X, pattern, fixed, slack, floor, where)
        sol = highs.solve(b.build(), opts)
        ok = sol.status == "optimal" and sol.x is not None and sol.objective is not None
        return (sol, W, lam) if ok else None

    first = solve("one", 0.0, box)
    if box is not None and (first is None or -first[0].objective <= _POSITIVE):
        box, first = None, solve("one", 0.0, None)
    if first is None:
        return None
    sol, W, lam = first
    net = network_at(sol.x, spec, W, lam)
    if objective in ("sum", "neuron") and -sol.objective > _POSITIVE:
        second = solve("row" if objective == "sum" else "neuron", -sol.objective / 2, box)
        if second is not None:
            net = network_at(second[0].x, spec, second[1], second[2])
    return snap_thresholds(spec, X, pattern, net)


def nearest_feasible(spec: Spec, X: np.ndarray, pattern: list[np.ndarray], net: Network,
                     tmin: float = 1e-5, time_limit: float | None = None) -> Network | None:
    """The weights nearest to ``net`` (L1) realising ``pattern`` with the epsilon margin and slack ``tmin``.

    For heuristic networks (STE) that miss the margin somewhere: unlike max-min polishing, this keeps
    what the heuristic learned, which is what generalises. Discrete weights stay fixed. None also when the LP
    is not solved within ``time_limit``.
    """
    fixed = net if spec.network.weights != "continuous" else None
    b, W, lam = _margin_lp(spec, X, pattern, fixed, "one", tmin, near=net)
    sol = highs.solve(b.build(), SolveOptions(time_limit=time_limit))
    if sol.status != "optimal" or sol.x is None:
        return None
    return snap_thresholds(spec, X, pattern, network_at(sol.x, spec, W, lam))


def _double_in(lo: Fraction, hi: Fraction, strict_lo: bool) -> float | None:
    """A double q with lo <= q <= hi (lo < q if strict_lo), as central as possible; None if there is none."""
    mid = (lo + hi) / 2
    for q in (float(mid), float(lo), float(hi), math.nextafter(float(lo), math.inf),
              math.nextafter(float(hi), -math.inf)):
        f = Fraction(q)
        if (lo < f if strict_lo else lo <= f) and f <= hi:
            return q
    return None


def snap_thresholds(spec: Spec, X: np.ndarray, pattern: list[np.ndarray], net: Network) -> Network:
    """Move each learnable threshold to a double that realises ``pattern`` exactly for the fixed weights.

    Prefers the epsilon-margin interval [max_{u=0} a + eps, min_{u=1} a] within [-1, 1]; falls back to
    the plain-rule interval (max_{u=0} a, min_{u=1} a]; leaves a threshold alone if neither is non-empty.
    """
    mode = spec.network.thresholds
    if mode == "zero":
        return net
    eps = Fraction(spec.training.epsilon)
    thresholds = [t.copy() for t in net.thresholds]
    steps = spec.network.depth - (spec.network.output == "argmax")  # an argmax layer has no step to snap
    for l in range(steps):
        inp = X if l == 0 else pattern[l - 1].astype(np.float64)
        u = pattern[l]
        groups = [np.arange(u.shape[1])] if mode == "learned" else [np.array([k]) for k in range(u.shape[1])]
        for g in groups:
            ones, zeros = u[:, g] == 1, u[:, g] == 0
            top0 = exact_preactivation(net.weights[l][g], inp, zeros, "max")
            low1 = exact_preactivation(net.weights[l][g], inp, ones, "min")
            lo = max(top0 + eps, Fraction(-1)) if top0 is not None else Fraction(-1)
            hi = min(low1, Fraction(1)) if low1 is not None else Fraction(1)
            q = _double_in(lo, hi, strict_lo=False) if lo <= hi else None
            if q is None and top0 is not None:
                lo = max(top0, Fraction(-1))
                q = _double_in(lo, hi, strict_lo=True) if lo < hi else None
            if q is not None:
                thresholds[l][g] = q
    return Network([w.copy() for w in net.weights], thresholds)
