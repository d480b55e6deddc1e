"""Margin polishing: make the written weights reproduce the MILP's activation pattern exactly.

A MILP solution sits on the boundary of its rows (margin 0, to solver
tolerance), so a float forward pass may flip bits. Polishing fixes the
activation pattern u found by the MILP and solves the LP over the weights
and thresholds (discrete weights stay fixed)

    max t   s.t.  a^{i,l}_k - lambda_l >= t              where u^{i,l}_k = 1
                  a^{i,l}_k - lambda_l <= -epsilon - t   where u^{i,l}_k = 0
                  a^{i,1} = W^1 x^i,  a^{i,l} = W^l u^{i,l-1}  (u fixed: linear in W)

(``min``), or additionally maximises the sum of per-row slacks t_r >= t*/2
(``sum``). The pattern, hence every output bit and the loss, is unchanged,
and every bit holds with slack t* (far above solver tolerances when t* > 0;
some patterns force t* = 0, e.g. two samples whose pre-activations differ by
exactly epsilon under fixed discrete weights).

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

from bnnmilp.backends import SolveOptions, highs
from bnnmilp.formulations.theorem1 import add_thresholds, threshold_terms
from bnnmilp.model import INF, ModelBuilder
from bnnmilp.network import Network, exact_preactivation
from bnnmilp.spec import Spec


def _margin_lp(spec: Spec, X: np.ndarray, pattern: list[np.ndarray], fixed: Network | None,
               floor: float | None, near: Network | None = None, tmin: float = 0.0
               ) -> tuple[ModelBuilder, dict, np.ndarray]:
    net = spec.network
    eps = spec.training.epsilon
    b = ModelBuilder("bnnmilp_polish")
    W, lam = {}, {}
    for l in range(1, net.depth + 1):
        d, dp = net.layers[l], net.layers[l - 1]
        if fixed is not None:
            W[l] = b.add_vars(f"w{l}", (d, dp), fixed.weights[l - 1], fixed.weights[l - 1])
        else:
            W[l] = b.add_vars(f"w{l}", (d, dp), -1.0, 1.0)
        lam[l] = add_thresholds(b, net.thresholds, l, d)
    m = X.shape[0]
    t = b.add_vars("t", (), tmin, tmin if near is not None else INF)
    slacks = []
    for l in range(1, net.depth + 1):
        d, dp = net.layers[l], net.layers[l - 1]
        inp = X if l == 1 else pattern[l - 2].astype(np.float64)
        u = pattern[l - 1].astype(np.float64)
        a_cols = np.broadcast_to(W[l][None, :, :], (m, d, dp))
        a_coef = np.broadcast_to(inp[:, None, :], (m, d, dp))
        lam_cols, lam_coef = threshold_terms(lam[l], m, d)
        sign = np.where(u == 1, -1.0, 1.0)  # t enters as -t on bit-1 rows, +t on bit-0 rows
        if floor is None:
            t_cols, t_coef = np.broadcast_to(np.asarray(t), (m, d, 1)), sign[:, :, None]
        else:
            tr = b.add_vars(f"t{l}", (m, d), floor, INF)
            slacks.append(tr.ravel())
            t_cols, t_coef = tr[:, :, None], sign[:, :, None]
        cols = np.concatenate([a_cols, lam_cols, t_cols], axis=2)
        coefs = np.concatenate([a_coef, lam_coef, t_coef], axis=2)
        b.add_rows(f"g{l}", (m, d), cols, coefs, np.where(u == 1, 0.0, -INF), np.where(u == 1, INF, -eps))
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
    elif floor is None:
        b.set_objective(t, -1.0)
    else:
        allt = np.concatenate(slacks)
        b.set_objective(allt, -np.ones(allt.shape))
    return b, W, lam


def _network(x: np.ndarray, spec: Spec, W: dict, lam: dict) -> Network:
    ws, ts = [], []
    for l in range(1, spec.network.depth + 1):
        ws.append(np.clip(x[W[l]], -1.0, 1.0) + 0.0)
        ts.append(np.clip(x[lam[l]], -1.0, 1.0) + 0.0 if lam[l] is not None else np.zeros(spec.network.layers[l]))
    return Network(ws, ts)


def polish(spec: Spec, X: np.ndarray, pattern: list[np.ndarray], start: Network,
           objective: str = "min", time_limit: float | None = None) -> Network | None:
    """Weights realising ``pattern`` with maximal margin, or None if no positive margin was found.

    ``start`` provides the weights that stay fixed for discrete weight domains.
    The caller checks the result in exact arithmetic (:meth:`Network.min_slack`).
    """
    fixed = start if spec.network.weights != "continuous" else None
    opts = SolveOptions(time_limit=time_limit)
    b, W, lam = _margin_lp(spec, X, pattern, fixed, None)
    sol = highs.solve(b.build(), opts)
    if sol.status != "optimal" or sol.x is None or sol.objective is None:
        return None
    net = _network(sol.x, spec, W, lam)
    if objective == "sum" and -sol.objective > 1e-7:
        b2, W2, lam2 = _margin_lp(spec, X, pattern, fixed, -sol.objective / 2)
        sol2 = highs.solve(b2.build(), opts)
        if sol2.status == "optimal" and sol2.x is not None:
            net = _network(sol2.x, spec, W2, lam2)
    return snap_thresholds(spec, X, pattern, net)


def nearest_feasible(spec: Spec, X: np.ndarray, pattern: list[np.ndarray], net: Network,
                     tmin: float = 1e-5) -> Network | None:
    """The weights nearest to ``net`` (L1) realising ``pattern`` with the epsilon margin and slack ``tmin``.

    For heuristic networks (STE) that miss the margin somewhere: unlike max-min polishing, this keeps
    what the heuristic learned, which is what generalises. Discrete weights stay fixed.
    """
    fixed = net if spec.network.weights != "continuous" else None
    b, W, lam = _margin_lp(spec, X, pattern, fixed, None, near=net, tmin=tmin)
    sol = highs.solve(b.build(), SolveOptions())
    if sol.status != "optimal" or sol.x is None:
        return None
    return snap_thresholds(spec, X, pattern, _network(sol.x, spec, W, lam))


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
    for l in range(spec.network.depth):
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
