"""Issue 18's reference STE, written independently of bnnmilp (plain numpy, one run at a time): the baseline
that bnnmilp's training is measured against.

Straight-through training of the step network (weights in [-1, 1], one learned threshold per layer in
[-1, 1], bits u = [W u_prev >= lambda]) on inputs scaled to [0, 1] (a power of two, folded into the first
layer's weights at the end); the step's derivative replaced by the hard-tanh window 1{|a - lambda| <= 1};
loss on the +-1 targets of the output pre-activations, hinge or squared, positives weighted by (outputs - 1);
Adam, full batch, 500 epochs, weights initialised N(0, 1/fan-in) clipped; every run keeps its epoch with the
lowest training Hamming loss; learning rates {0.003, 0.01, 0.03} x {hinge, squared} x 2 seeds (12 runs);
the run with the lowest training loss wins.
"""

from __future__ import annotations

import itertools

import numpy as np

LRS, LOSSES, EPOCHS = (0.003, 0.01, 0.03), ("hinge", "squared"), 500


def one_run(layers: list[int], X: np.ndarray, Y: np.ndarray, lr: float, loss: str, seed: int):
    rng = np.random.default_rng(seed)
    L = len(layers) - 1
    Ws = [np.clip(rng.normal(0, 1 / np.sqrt(layers[l]), size=(layers[l + 1], layers[l])), -1, 1) for l in range(L)]
    lams = [np.zeros(1) for _ in range(L)]
    params = Ws + lams
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    T = 2 * Y - 1.0
    weight = np.where(Y == 1, Y.shape[1] - 1, 1.0)
    best = (None, None, None)
    for epoch in range(1, EPOCHS + 1):
        acts, pre = [X], []
        for l in range(L):
            a = acts[-1] @ Ws[l].T - lams[l]
            pre.append(a)
            acts.append((a >= 0).astype(np.float64))
        err = int(np.sum(acts[-1] != Y))
        if best[0] is None or err <= best[0]:
            best = (err, [w.copy() for w in Ws], [float(t[0]) for t in lams])
        z = pre[-1]
        g = weight * ((-T * (T * z < 1)) if loss == "hinge" else 2 * (z - T)) / X.shape[0]
        grads = [None] * (2 * L)
        for l in range(L - 1, -1, -1):
            grads[l] = g.T @ acts[l]
            grads[L + l] = np.array([-g.sum()])
            if l > 0:
                g = (g @ Ws[l]) * (np.abs(pre[l - 1]) <= 1)
        for i, gr in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * gr
            v[i] = 0.999 * v[i] + 0.001 * gr * gr
            params[i] -= lr * (m[i] / (1 - 0.9**epoch)) / (np.sqrt(v[i] / (1 - 0.999**epoch)) + 1e-8)
            np.clip(params[i], -1, 1, out=params[i])
    return best


def train(layers: list[int], X: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[list[np.ndarray], list[float]]:
    """(weights on the raw inputs, one threshold per layer) of the best of the 12 runs (seeds 2 seed, 2 seed + 1)."""
    scale = 2.0 ** -np.ceil(np.log2(max(float(np.abs(X).max()), 1e-300)))
    Y = np.eye(layers[-1])[y]
    runs = [one_run(layers, X * scale, Y, lr, loss, s) for lr, loss, s in
            itertools.product(LRS, LOSSES, (2 * seed, 2 * seed + 1))]
    _, Ws, lams = min(runs, key=lambda r: r[0])
    return [Ws[0] * scale, *Ws[1:]], lams
