"""Icarte et al.'s (2019) hybrid decomposition: fix the hidden activations, then one small problem per unit.

Given a start network (by default the STE heuristic's) and its hidden activation pattern
H^l = u^{i,l} (l < L) on the training data:

1. Each hidden unit k of layer l gets its own max-margin problem over its weights (in their domain:
   a MILP for binary/ternary weights, an LP for continuous ones) and, for per-neuron thresholds, its
   threshold; a threshold shared by a layer stays at the start's value (it couples the units):

       max mu  s.t.  H^{l-1}_i w - lambda >= mu              where H^l_ik = 1
                     H^{l-1}_i w - lambda <= -epsilon - mu   where H^l_ik = 0,    mu >= 0

   (H^0 = X). The unit computes the same bits on the training data, with the largest smallest margin.
   The hidden units share one time limit (``solver.time_limit``); continuous weights stay within
   ``training.polish_radius`` of the start's when it is set (unbounded max-margin units forget what
   the start learned).
2. The output layer is the paper's MILP (Theorem 1) of a one-layer network whose data are the fixed
   hidden bits H^{L-1}: small (no products), solved with the configured objectives and started from
   the start's output layer, so its loss is never worse than the start's.

Every subproblem is solved to optimality where the solver can, but the result has no bound on the
training problem: the hidden pattern was fixed by the heuristic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bnnmilp import formulations
from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.milp.backends.base import ProgressFn
from bnnmilp.milp.model import INF, ModelBuilder
from bnnmilp.network import Network
from bnnmilp.spec import Spec
from bnnmilp.training.objectives import StageResult, solve_stages


@dataclass
class Decomposition:
    network: Network
    stages: list[StageResult]  # the output layer's stages
    units_improved: int  # hidden units whose smallest margin grew
    units: int


def unit_margin(spec: Spec, inputs: np.ndarray, target: np.ndarray, w0: np.ndarray, lam0: float,
                free_threshold: bool, time_limit: float | None = None) -> tuple[np.ndarray, float, float] | None:
    """Max-margin weights (and threshold) of one unit computing ``target`` on ``inputs``; None if none found.

    Returns (w, lambda, mu). ``w0, lam0`` are the start's, handed to the solver as a start; continuous
    weights stay within ``training.polish_radius`` of ``w0`` when it is set.
    """
    m, p = inputs.shape
    domain, eps = spec.network.weights, spec.training.epsilon
    r = spec.training.polish_radius if domain == "continuous" else None
    b = ModelBuilder("bnnmilp_unit")
    lo, hi = (-1.0, 1.0) if r is None else (np.clip(w0 - r, -1.0, 1.0), np.clip(w0 + r, -1.0, 1.0))
    w = b.add_vars("w", (p,), lo, hi, integer=domain != "continuous")
    lam = b.add_vars("lam", (), -1.0, 1.0) if free_threshold else None
    mu = b.add_vars("mu", (), 0.0, INF)
    z = None
    if domain == "binary":  # w = 2 z - 1, z binary
        z = b.add_vars("z", (p,), 0.0, 1.0, integer=True)
        b.add_rows("bin", (p,), np.stack([w, z], -1), np.array([1.0, -2.0]), -1.0, -1.0)
    on = target == 1
    lam_cols = np.full((m, 1), lam if lam is not None else 0, np.int64)
    lam_coef = np.full((m, 1), -1.0 if lam is not None else 0.0)
    shift = 0.0 if lam is not None else lam0
    cols = np.concatenate([np.broadcast_to(w, (m, p)), lam_cols, np.full((m, 1), mu, np.int64)], axis=1)
    coefs = np.concatenate([inputs, lam_coef, np.where(on, -1.0, 1.0)[:, None]], axis=1)
    b.add_rows("step", (m,), cols, coefs, np.where(on, shift, -INF), np.where(on, INF, shift - eps))
    b.set_objective(np.atleast_1d(mu), np.array([-1.0]))
    model = b.build()
    x0 = np.zeros(model.n_cols)
    x0[w] = w0
    if lam is not None:
        x0[lam] = lam0
    if z is not None:
        x0[z] = (w0 + 1) / 2
    sol = highs.solve(model, SolveOptions(time_limit=time_limit), start=x0)
    if sol.x is None or sol.status not in ("optimal", "time_limit"):
        return None
    wv = np.clip(sol.x[w], -1.0, 1.0)
    if domain != "continuous":
        wv = np.round(wv)
    return wv + 0.0, float(np.clip(sol.x[lam], -1.0, 1.0)) if lam is not None else lam0, float(sol.x[mu])


def decompose(spec: Spec, X: np.ndarray, Y: np.ndarray, start: Network,
              progress: ProgressFn | None = None) -> Decomposition:
    """Keep ``start``'s hidden pattern; re-solve each hidden unit for margin and the output layer exactly."""
    net = spec.network
    bits = start.forward(X)
    ws, ts = [w.copy() for w in start.weights], [t.copy() for t in start.thresholds]
    free = net.thresholds == "per_neuron"
    improved = units = 0
    n_hidden = sum(net.layers[1:-1])
    total = spec.solver.stage_limit()
    tl = total / max(n_hidden, 1) if total is not None else None  # the units share one time limit
    for l in range(net.depth - 1):
        inp = X if l == 0 else bits[l - 1].astype(np.float64)
        a = inp @ ws[l].T - ts[l]
        before = np.where(bits[l] == 1, a, -a - spec.training.epsilon).min(axis=0)
        for k in range(net.layers[l + 1]):
            units += 1
            got = unit_margin(spec, inp, bits[l][:, k], ws[l][k], float(ts[l][k]), free, tl)
            if got is None:
                continue
            w, lam, _ = got
            a_new = inp @ w - lam
            ok = np.array_equal((a_new >= 0).astype(np.int8), bits[l][:, k])
            new = np.where(bits[l][:, k] == 1, a_new, -a_new - spec.training.epsilon).min()
            if ok and new > before[k]:  # keep the start's unit unless the new one computes the same bits better
                ws[l][k], ts[l][k] = w, lam
                improved += 1
    # the output layer: Theorem 1 for a one-layer network on the fixed hidden bits
    H = bits[-2].astype(np.float64) if net.depth > 1 else X
    sub = replace(spec, network=replace(net, layers=(net.layers[-2], net.layers[-1])),
                  training=replace(spec.training, symmetry="none", epsilon_auto=False))
    tm = formulations.get("theorem1").build(sub, H, Y)
    last = Network([ws[-1]], [ts[-1]])
    x0 = tm.solution_from(last)
    stages = solve_stages(tm, sub.solver, start=x0, progress=progress, warm=True)
    with_point = [st for st in stages if st.solution.x is not None]
    if with_point:
        out = tm.network_from(with_point[-1].solution.x)
        ws[-1], ts[-1] = out.weights[0], out.thresholds[0]
    return Decomposition(Network(ws, ts), stages, improved, units)
