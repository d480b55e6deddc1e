"""Sakai's Chainer BNNs (``input_bn``, ``blocks/i/{lin,bn}``, ``output_lin``) as bnnmilp networks, exactly.

The Chainer network on an integer image x in 0..255 (Sakai, msakai/bnn-verification):

    z0 = sign(BN_in(x / 255)),  z_l = sign(BN_l(W_l z_(l-1) + b_l)),  logits = W_out z_4 + b_out,

with sign(v) = +1 iff v >= 0, BN(v) = gamma (v - mean) / sqrt(var + 2e-5) + beta, W in {-1, +1}. With bits
u = (z + 1) / 2 and s = W_l u (an integer), W_l z + b = 2 s - sum(W_l) + b, so every sign layer is a step
layer on the integer s with an integer threshold: the smallest s with BN(2 s - sum W + b) >= 0 (rows
negated where gamma < 0, constant where gamma = 0). The thresholds are decided in exact arithmetic on the
float32 parameters (2e-5 as the decimal it is): gamma (A) >= -beta sqrt(c) is compared through squares of
rationals, so no rounding decides a bit. The input layer becomes one threshold per pixel on the integer x
(a diagonal +-1 layer). The output layer is an argmax layer: logits = 2 (W_out u - lambda) with
lambda = (sum W_out - b_out) / 2, exact in doubles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from bnnmilp.errors import ModelFileError
from bnnmilp.io.npz import read_npz
from bnnmilp.network import Network

BN_EPS = Fraction(2, 100000)  # Chainer's batch-norm eps, 2e-5


@dataclass
class ImportReport:
    layers: list[int]
    negated_rows: int = 0
    constant_rows: int = 0
    notes: list[str] = field(default_factory=list)
    float32_disagreements: list[tuple[int, int, int]] = field(default_factory=list)


def _fires(a: Fraction, gamma: Fraction, beta: Fraction, c: Fraction) -> bool:
    """Exactly: gamma * a / sqrt(c) + beta >= 0, i.e. gamma * a >= -beta * sqrt(c) (c > 0)."""
    lhs, k = gamma * a, -beta  # lhs >= k sqrt(c)
    if k <= 0:
        return lhs >= 0 or lhs * lhs <= k * k * c
    return lhs >= 0 and lhs * lhs >= k * k * c


def _threshold(lo: int, hi: int, value, gamma: Fraction, beta: Fraction, c: Fraction, mean: Fraction) -> int:
    """The smallest integer s in [lo, hi] whose value(s) fires (hi + 1 if none), for a ``value`` along which
    firing is monotone increasing; a binary search with exact comparisons finds it."""
    if not _fires(value(hi) - mean, gamma, beta, c):
        return hi + 1
    a, b = lo, hi
    while a < b:
        m = (a + b) // 2
        if _fires(value(m) - mean, gamma, beta, c):
            b = m
        else:
            a = m + 1
    return a


def _step_rows(W: np.ndarray, value_of, lo: np.ndarray, hi: np.ndarray, bn: dict[str, np.ndarray],
               rep: ImportReport) -> tuple[np.ndarray, np.ndarray]:
    """Rows (weights, integer thresholds) of one sign(BN(.)) layer on the integer s = W u in [lo, hi]."""
    W_out = np.array(W, dtype=np.float64)
    lam = np.zeros(W.shape[0])
    for k in range(W.shape[0]):
        gamma, beta = Fraction(float(bn["gamma"][k])), Fraction(float(bn["beta"][k]))
        mean, c = Fraction(float(bn["avg_mean"][k])), Fraction(float(bn["avg_var"][k])) + BN_EPS
        lo_k, hi_k = int(lo[k]), int(hi[k])
        if gamma == 0:  # constant bit: beta >= 0
            W_out[k] = 0.0
            lam[k] = 0.0 if beta >= 0 else 1.0
            rep.constant_rows += 1
            continue
        if gamma > 0:
            lam[k] = _threshold(lo_k, hi_k, lambda s, k=k: value_of(k, s), gamma, beta, c, mean)
        else:  # fires for s <= t: negate the row; t' = -s is increasing, so the same search finds -t
            lam[k] = _threshold(-hi_k, -lo_k, lambda t, k=k: value_of(k, -t), gamma, beta, c, mean)
            W_out[k] = -W_out[k]
            rep.negated_rows += 1
    return W_out, lam


def load_chainer_npz(path: str | Path) -> tuple[Network, ImportReport]:
    """Sakai's 784-200-100-100-100-10 layout (any widths) as a bnnmilp network with an argmax output."""
    p = Path(path)
    arr = read_npz(p, ModelFileError, "a Chainer .npz file")
    blocks = sorted({int(k.split("/")[1]) for k in arr if k.startswith("blocks/")})
    need = ["input_bn/gamma", "input_bn/beta", "input_bn/avg_mean", "input_bn/avg_var", "output_lin/W",
            "output_lin/b"] + [f"blocks/{i}/{part}" for i in blocks for part in
                               ("lin/W", "lin/b", "bn/gamma", "bn/beta", "bn/avg_mean", "bn/avg_var")]
    for k in need:
        if k not in arr:
            raise ModelFileError(str(p), k, "missing array (expected Sakai's input_bn, blocks/i/{lin,bn}, "
                                            "output_lin layout)")
    for k in [f"blocks/{i}/lin/W" for i in blocks] + ["output_lin/W"]:
        if not np.all(np.isin(arr[k], (-1.0, 1.0))):
            raise ModelFileError(str(p), k, "expected weights in {-1, +1} (a binarised network)")
    n = arr["input_bn/gamma"].shape[0]
    rep = ImportReport(layers=[n])
    bn = {q: arr[f"input_bn/{q}"] for q in ("gamma", "beta", "avg_mean", "avg_var")}
    # input layer: x integer in 0..255, the BN input is x / 255
    W0, lam0 = _step_rows(np.eye(n), lambda k, s: Fraction(s, 255), np.zeros(n), np.full(n, 255), bn, rep)
    ws, ts = [W0], [lam0]
    rep.layers.append(n)
    for i in blocks:
        W = arr[f"blocks/{i}/lin/W"].astype(np.float64)
        b = arr[f"blocks/{i}/lin/b"]
        sw = W.sum(axis=1)
        bnq = {q: arr[f"blocks/{i}/bn/{q}"] for q in ("gamma", "beta", "avg_mean", "avg_var")}
        lo, hi = -np.sum(W < 0, axis=1), np.sum(W > 0, axis=1)  # s = W u over u in {0, 1}^n

        def value(k: int, s: int, sw=sw, b=b) -> Fraction:
            return 2 * s - Fraction(float(sw[k])) + Fraction(float(b[k]))

        Wl, laml = _step_rows(W, value, lo, hi, bnq, rep)
        ws.append(Wl)
        ts.append(laml)
        rep.layers.append(W.shape[0])
    Wo, bo = arr["output_lin/W"].astype(np.float64), arr["output_lin/b"].astype(np.float64)
    lam_out = (Wo.sum(axis=1) - bo) / 2  # an integer minus a float32, halved: exact in doubles; checked
    if any(Fraction(float(v)) != (Fraction(float(s)) - Fraction(float(bb))) / 2
           for v, s, bb in zip(lam_out, Wo.sum(axis=1), bo, strict=True)):
        raise ModelFileError(str(p), "output_lin/b", "output thresholds not exact in doubles")
    ws.append(Wo)
    ts.append(lam_out)
    rep.layers.append(Wo.shape[0])
    net = Network(ws, ts)
    rep.float32_disagreements = float32_disagreements(arr, net, blocks)
    if rep.float32_disagreements:
        rep.notes.append(f"{len(rep.float32_disagreements)} (layer, unit, value) where Chainer's float32 batch norm "
                         f"decides the other way than exact arithmetic, e.g. {rep.float32_disagreements[:3]}")
    return net, rep


def float32_disagreements(arr: dict[str, np.ndarray], net: Network, blocks: list[int]) -> list[tuple[int, int, int]]:
    """Every (layer, unit, value) on which Chainer's float32 forward pass and the exact threshold disagree, over
    the whole finite domain of each unit: pixels 0..255 for the input layer, every reachable sum s = W u of a
    hidden layer (Chainer computes W z + b = 2 s - sum W + b, an integer plus b, in float32)."""
    f = np.float32

    def bn(v: np.ndarray, p: str, k: np.ndarray) -> np.ndarray:
        g, b, m, var = (arr[f"{p}/{q}"][k][:, None] for q in ("gamma", "beta", "avg_mean", "avg_var"))
        return g * (v - m) / np.sqrt(var + f(2e-5)) + b

    out: list[tuple[int, int, int]] = []
    n = arr["input_bn/gamma"].shape[0]
    x = np.arange(256)
    fl = bn(np.broadcast_to(x.astype(f) / f(255), (n, 256)), "input_bn", np.arange(n)) >= 0
    W0, lam0 = net.weights[0], net.thresholds[0]
    w0 = np.diag(W0) if isinstance(W0, np.ndarray) else W0.toarray().diagonal()
    ex = w0[:, None] * x[None, :] >= lam0[:, None]
    out += [(1, int(k), int(x[v])) for k, v in np.argwhere(fl != ex)]
    for l, i in enumerate(blocks, start=2):
        W = arr[f"blocks/{i}/lin/W"].astype(np.float64)
        sw, b = W.sum(axis=1), arr[f"blocks/{i}/lin/b"]
        lo, hi = int(-np.sum(W < 0, axis=1).max()), int(np.sum(W > 0, axis=1).max())
        s_range = np.arange(-max(-lo, hi), max(-lo, hi) + 1)
        k = np.arange(W.shape[0])
        pre = (2 * s_range[None, :] - sw[:, None]).astype(f) + b[:, None]
        fl = bn(pre, f"blocks/{i}/bn", k) >= 0
        Wl, lam = net.weights[l - 1], net.thresholds[l - 1]
        sign = np.where(np.all(Wl == 0, axis=1), 0.0, np.where(np.all(Wl * W >= 0, axis=1), 1.0, -1.0))
        ex = sign[:, None] * s_range[None, :] >= lam[:, None]
        reach_lo, reach_hi = -np.sum(W < 0, axis=1), np.sum(W > 0, axis=1)
        ok = (s_range[None, :] >= reach_lo[:, None]) & (s_range[None, :] <= reach_hi[:, None])
        out += [(l, int(u), int(s_range[v])) for u, v in np.argwhere((fl != ex) & ok)]
    return out


def float32_scores(path: str | Path, X: np.ndarray) -> np.ndarray:
    """The Chainer network's own forward pass in float32 (batch norm as Chainer computes it): the semantics the
    model was trained and published with, for comparing counterexamples with the exact network."""
    d, f = np.load(Path(path)), np.float32

    def bn(v: np.ndarray, p: str) -> np.ndarray:
        return d[f"{p}/gamma"] * (v - d[f"{p}/avg_mean"]) / np.sqrt(d[f"{p}/avg_var"] + f(2e-5)) + d[f"{p}/beta"]

    z = np.where(bn(np.asarray(X).astype(f) / f(255), "input_bn") >= 0, f(1), f(-1))
    blocks = sorted({int(k.split("/")[1]) for k in d.files if k.startswith("blocks/")})
    for i in blocks:
        z = np.where(bn(z @ d[f"blocks/{i}/lin/W"].T + d[f"blocks/{i}/lin/b"], f"blocks/{i}/bn") >= 0, f(1), f(-1))
    return z @ d["output_lin/W"].T + d["output_lin/b"]
