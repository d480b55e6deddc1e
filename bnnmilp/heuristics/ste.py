"""Straight-through-estimator (STE) training of the same step network, vectorised in numpy.

Forward: the exact architecture (weights quantised to the domain, step activations).
Backward: the step's derivative is replaced by a triangle of half-width s_l around the threshold,
d u / d a = max(0, 1 - |a - lambda| / s_l) / s_l, with s_l the typical size of a layer's
pre-activations (so the surrogate is scale-free); discrete weights pass their gradient to latent real
weights (Courbariaux et al. 2016). Loss: a hinge on the output scores, relu(1 - (2 y - 1) (a - lambda) / s_L)
(bit outputs), or the multiclass hinge sum_{k != y} relu(1 - (s_y - s_k) / s_L) of the scores s = a - lambda
(argmax outputs).
Full-batch Adam, seeded restarts; the network with the lowest exact training loss wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnnmilp.network import Network, loss_value, training_loss
from bnnmilp.spec import Spec


@dataclass(frozen=True)
class SteOptions:
    epochs: int = 2000
    restarts: int = 8
    lr: float = 0.05
    seed: int = 0


def _quantise(w: np.ndarray, domain: str) -> np.ndarray:
    if domain == "binary":
        return np.where(w >= 0, 1.0, -1.0)
    if domain == "ternary":
        return np.where(w > 0.5, 1.0, np.where(w < -0.5, -1.0, 0.0))
    return w


def _one_run(spec: Spec, X: np.ndarray, Y: np.ndarray, opts: SteOptions, rng: np.random.Generator) -> Network:
    net = spec.network
    L = net.depth
    scale_in = max(float(np.mean(np.abs(X))), 1e-12)
    scales = [max(np.sqrt(net.layers[0]) * scale_in, 1e-6)] + [np.sqrt(d) for d in net.layers[1:-1]]
    Ws = [rng.uniform(-1, 1, size=(net.layers[l + 1], net.layers[l])) for l in range(L)]
    if net.thresholds == "zero":
        lams = [np.zeros(net.layers[l + 1]) for l in range(L)]
    else:
        lams = [np.zeros(1 if net.thresholds == "learned" else net.layers[l + 1]) for l in range(L)]
    params = Ws + lams
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    b1, b2 = 0.9, 0.999
    sign = 2.0 * Y - 1.0
    argmax = net.output == "argmax"
    labels, rows = Y.argmax(axis=1), np.arange(Y.shape[0])
    # one-hot targets have one positive among dL bits: weight positives so that all-zero outputs do not win
    weight = np.where(Y == 1, max(net.layers[-1] - 1, 1), 1.0)
    best, best_loss = None, None
    for epoch in range(1, opts.epochs + 1):
        Wq = [_quantise(w, net.weights) for w in Ws]
        inputs, pre = [X], []
        for l in range(L):
            a = inputs[-1] @ Wq[l].T - lams[l]
            pre.append(a)
            inputs.append((a >= 0).astype(np.float64))
        if argmax:
            out_loss = int(np.sum(np.argmax(pre[-1], axis=1) != labels))
        else:
            out_loss = loss_value(spec.training.loss, inputs[-1].astype(np.int8), Y.astype(np.int8))
        if best_loss is None or out_loss <= best_loss:  # ties: later epochs have larger hinge margins
            best_loss, best = out_loss, ([w.copy() for w in Wq], [np.broadcast_to(t, (net.layers[l + 1],)).copy()
                                                                   for l, t in enumerate(lams)])
        # backward
        z = pre[-1] / scales[-1]
        if argmax:  # multiclass hinge sum_k relu(1 - (z_y - z_k))
            active = (1.0 - (z[rows, labels][:, None] - z) > 0) & (Y == 0)
            g = active.astype(np.float64)
            g[rows, labels] = -active.sum(axis=1)
            g /= scales[-1]
        else:
            g = -sign * weight * (sign * z < 1.0) / scales[-1]  # d hinge / d a
        grads_w, grads_l = [None] * L, [None] * L
        for l in range(L - 1, -1, -1):
            grads_w[l] = g.T @ inputs[l]
            gl = -g.sum(axis=0)
            grads_l[l] = np.array([gl.sum()]) if lams[l].shape[0] == 1 else gl
            if l > 0:
                gu = g @ Wq[l]
                s = scales[l - 1]
                g = gu * np.maximum(0.0, 1.0 - np.abs(pre[l - 1]) / s) / s
        grads = grads_w + grads_l
        for i, (p, gr) in enumerate(zip(params, grads, strict=True)):
            if net.thresholds == "zero" and i >= L:
                continue
            m1[i] = b1 * m1[i] + (1 - b1) * gr
            m2[i] = b2 * m2[i] + (1 - b2) * gr * gr
            step = opts.lr * (m1[i] / (1 - b1**epoch)) / (np.sqrt(m2[i] / (1 - b2**epoch)) + 1e-8)
            np.subtract(p, step, out=p)  # in place: p is one of Ws or lams
            np.clip(p, -1.0, 1.0, out=p)
    assert best is not None
    return Network(*best)


def ste_train(spec: Spec, X: np.ndarray, Y: np.ndarray, opts: SteOptions | None = None) -> list[Network]:
    """Networks from ``opts.restarts`` seeded STE runs, best training loss (float forward) first."""
    opts = opts or SteOptions()
    rng = np.random.default_rng(opts.seed)
    nets = [_one_run(spec, X, Y, opts, rng) for _ in range(opts.restarts)]
    labels = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0]
    return sorted(nets, key=lambda n: training_loss(n, X, labels, Y.astype(np.int8), spec.training.loss,
                                                    spec.network.output))
