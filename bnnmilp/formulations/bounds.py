"""Bounds on pre-activations minus thresholds: the big-M values of the training MILP.

Interval propagation (``tight``, the default): with weights in a box [W_lo, W_hi] (the domain [-1, 1],
unused inputs fixed at 0, a trust region), layer 1 gives per sample
    sum_j min(x_ij W_lo_kj, x_ij W_hi_kj) <= a^{i,1}_k <= sum_j max(x_ij W_lo_kj, x_ij W_hi_kj)
(|a| <= ||x^i||_1 for the full box) and layers l >= 2, whose inputs are bits,
    sum_j min(0, W_lo_kj) <= a^{i,l}_k <= sum_j max(0, W_hi_kj)          (|a| <= d_(l-1)).
A learnable threshold in [-1, 1] widens the range of a - lambda by 1 on each side; a zero threshold
does not. ``paper`` uses the paper's uniform M_1 = n r + 1 and M_l = d_(l-1) + 1 (Theorem 1), never
smaller than ``tight``.

LP-based propagation (``lp``, opt-in): min and max of every a - lambda over the LP relaxation of the
model built with the interval bounds, one LP pair per sample and neuron (hot-started simplex), then the
model is rebuilt with the tighter of the two. Over the full weight box the interval bounds are already
the exact projections of the MILP's feasible set (W = sign(x), every earlier bit 1 and lambda = -1
attain them), so LP bounds can only gain where other rows couple the weights (a trust region does not:
it is a box, handled by the intervals). The option exists to show this, and for formulations to come.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from bnnmilp.spec import NetworkSpec

if TYPE_CHECKING:
    from bnnmilp.formulations.theorem1 import TrainingModel

WeightBox = list[tuple[np.ndarray, np.ndarray]]  # per layer (W_lo, W_hi), shape (d_l, d_(l-1))


def full_box(net: NetworkSpec) -> WeightBox:
    return [(np.full((net.layers[l], net.layers[l - 1]), -1.0), np.full((net.layers[l], net.layers[l - 1]), 1.0))
            for l in range(1, net.depth + 1)]


def preactivation_bounds(net: NetworkSpec, X: np.ndarray, mode: str,
                         box: WeightBox | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lo, hi) arrays of shape (m, d_l) bounding a^l - lambda^l for every sample and neuron."""
    m = X.shape[0]
    box = full_box(net) if box is None else box
    widen = 0.0 if net.thresholds == "zero" else 1.0
    out = []
    for l in range(1, net.depth + 1):
        d_prev, d = net.layers[l - 1], net.layers[l]
        if mode == "paper":
            big = float(net.n_inputs) * float(np.max(np.abs(X))) + 1.0 if l == 1 else float(d_prev) + 1.0
            out.append((np.full((m, d), -big), np.full((m, d), big)))
            continue
        wlo, whi = box[l - 1]
        if l == 1:  # x fixed: each term x_ij w_kj is extreme at an end of [W_lo, W_hi]
            p, q = X[:, None, :] * wlo[None, :, :], X[:, None, :] * whi[None, :, :]
            lo, hi = np.minimum(p, q).sum(axis=2), np.maximum(p, q).sum(axis=2)
        else:  # bits: a term is 0 or w
            lo = np.broadcast_to(np.minimum(wlo, 0.0).sum(axis=1), (m, d))
            hi = np.broadcast_to(np.maximum(whi, 0.0).sum(axis=1), (m, d))
        out.append((lo - widen, hi + widen))
    return out


def lp_bounds(tm: TrainingModel, bounds: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tighten ``bounds`` by min/max of every a - lambda over the LP relaxation of ``tm``'s model.

    a - lambda of (sample i, neuron k, layer l) is row ``on{l}``[i, k] without its u and mu terms. One
    HiGHS instance, objectives changed in place (the simplex restarts from the last basis).
    """
    import highspy

    from bnnmilp.milp.backends.highs import to_highs

    model = tm.model
    h = to_highs(replace(model, integrality=np.zeros_like(model.integrality), c=np.zeros(model.n_cols), offset=0.0))
    h.setOptionValue("presolve", "off")
    out = []
    for l, (lo, hi) in enumerate(bounds, start=1):
        step = tm.step_rows(l)
        if step is None:  # an argmax output layer has no step rows: keep its intervals
            out.append((lo, hi))
            continue
        skip = np.concatenate([tm.bits(l).ravel(), tm.margins(l)])  # type: ignore[union-attr]
        rows = step.reshape(lo.shape)
        new_lo, new_hi = lo.copy(), hi.copy()
        for (i, k), r in np.ndenumerate(rows):
            sl = slice(model.indptr[r], model.indptr[r + 1])
            cols, vals = model.indices[sl], model.data[sl]
            keep = ~np.isin(cols, skip)
            cols, vals = cols[keep].astype(np.int32), vals[keep]
            h.changeColsCost(len(cols), cols, vals)
            for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
                h.changeObjectiveSense(sense)
                h.run()
                if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                    v = h.getInfo().objective_function_value
                    if sense == highspy.ObjSense.kMinimize:
                        new_lo[i, k] = max(lo[i, k], v - 1e-6 * (1 + abs(v)))  # slack against LP round-off
                    else:
                        new_hi[i, k] = min(hi[i, k], v + 1e-6 * (1 + abs(v)))
            h.changeColsCost(len(cols), cols, np.zeros(len(cols)))
        out.append((new_lo, new_hi))
    return out
