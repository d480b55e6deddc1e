"""Interval bounds on pre-activations minus thresholds: the big-M values of the training MILP.

For layer 1, a = W x^i with |W| <= 1 gives |a| <= ||x^i||_1 (per sample);
for l >= 2 the inputs are bits, so |a| <= d_(l-1). A learned threshold in
[-1, 1] widens the range of a - lambda by 1 on each side; a zero threshold
does not. ``paper`` uses the paper's uniform M_1 = n r + 1 and
M_l = d_(l-1) + 1 (Theorem 1); ``tight`` (default) uses the per-sample
interval bounds, which are never larger.
"""

from __future__ import annotations

import numpy as np

from bnnmilp.spec import NetworkSpec


def preactivation_bounds(net: NetworkSpec, X: np.ndarray, mode: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(lo, hi) arrays of shape (m, d_l) bounding a^l - lambda^l for every sample and neuron."""
    m = X.shape[0]
    out = []
    for l in range(1, net.depth + 1):
        d_prev, d = net.layers[l - 1], net.layers[l]
        if mode == "paper":
            big = float(net.n_inputs) * float(np.max(np.abs(X))) + 1.0 if l == 1 else float(d_prev) + 1.0
            hi = np.full((m, d), big)
        else:
            base = np.abs(X).sum(axis=1) if l == 1 else np.full(m, float(d_prev))
            if net.thresholds != "zero":
                base = base + 1.0
            hi = np.repeat(base[:, None], d, axis=1)
        out.append((-hi, hi))
    return out
