"""The BNN itself: weights, thresholds, the exact forward pass, predictions and losses.

Semantics (used everywhere outside the MILP): a^l = W^l u^(l-1) with u^0 = x,
u^l_k = 1 if a^l_k >= lambda^l_k else 0, for every layer including the output.

Exactness: weights, thresholds and data are IEEE doubles, i.e. dyadic
rationals. A bit is decided in floating point only where a rigorous bound on
the rounding error of the dot product (Higham's gamma_n) proves the sign of
a - lambda; every other bit (ties, near-ties) is recomputed in exact rational
arithmetic with :class:`fractions.Fraction`. No tolerance can hide a wrong bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bnnmilp.errors import WeightsError
from bnnmilp.network.sparse import Csr, dense, elementwise, entries, matmul_t, row

_U = 2.0**-53  # unit roundoff of binary64


def dot_error_bound(inp: np.ndarray, W: np.ndarray | Csr, values: np.ndarray) -> np.ndarray:
    """Rigorous bound on |fl(inp W^T - lambda) - (inp W^T - lambda)| (Higham's gamma_n, doubled for safety),
    plus the rounding of comparing or subtracting ``values`` (|result| and |lambda|) and an underflow floor."""
    n = W.shape[1] + 2
    gamma = n * _U / (1 - n * _U)
    return 2.0 * gamma * matmul_t(np.abs(inp), elementwise(W, np.abs)) + 4 * _U * np.abs(values) + 2.0**-1000


_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitting constant for doubles


def product_error(a: np.ndarray, b: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
    """e with a b = p + e exactly, where p = fl(a b) (Dekker's error-free product). Exact where no part
    overflows or underflows: 2^-500 < |a|, |b| < 2^500 and |a b| > 2^-900 suffice."""

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = _SPLIT * x
        hi = c - (c - x)
        return hi, x - hi

    p = a * b if p is None else p
    ah, al = split(a)
    bh, bl = split(b)
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


@dataclass
class Network:
    """A BNN: weights and thresholds per layer, with an exact forward pass (u = [W u_prev >= lambda]).

    Attributes
    ----------
    weights : list of ndarray or Csr
        W^l of shape (d_l, d_(l-1)); dense, or CSR for large fixed layers.
    thresholds : list of ndarray
        lambda^l of shape (d_l,).
    """

    weights: list[np.ndarray | Csr]  # W^l, shape (d_l, d_{l-1}); dense, or sparse (CSR) for large fixed layers
    thresholds: list[np.ndarray]  # lambda^l, shape (d_l,)

    @property
    def layers(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    def sha256(self) -> str:
        """Fingerprint of the exact numbers (shapes, weights, thresholds; a sparse layer's non-zeros): binds a run
        folder's certificate to the weights it was written with."""
        import hashlib

        h = hashlib.sha256()
        for W, lam in zip(self.weights, self.thresholds, strict=True):
            parts = (W.indptr, W.indices, W.data) if isinstance(W, Csr) else (W,)
            h.update(np.asarray(W.shape, dtype="<i8").tobytes())
            for part in (*parts, lam):
                h.update(np.ascontiguousarray(part, dtype="<f8").tobytes())
        return h.hexdigest()

    # ---- exact forward pass -------------------------------------------------
    def _layer(self, l: int, inp: np.ndarray, bits_in: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bits of layer l (0-based) for inputs ``inp``, exact; also d = a - lambda in floating point and
        the rigorous bound err on its rounding error (bits with |d| <= err are decided in rationals).
        ``bits_in``: the caller knows ``inp`` holds only 0 and 1 (a previous layer's bits)."""
        W, lam = self.weights[l], self.thresholds[l]
        a = matmul_t(inp, W)
        if self._integral(l, inp, bits_in):  # integers below 2^53 throughout: every float operation is exact
            err = np.zeros_like(a)
        else:
            err = dot_error_bound(inp, W, np.abs(a) + np.abs(lam))
        d = a - lam
        bits = (d >= 0).astype(np.int8)
        unsure = np.abs(d) <= err
        if unsure.any() and err.any():  # err = 0: d is exact, a tie d = 0 is bit 1
            ii, kk = np.nonzero(unsure)
            first, inverse = distinct_pairs(inp, ii, kk)
            decided = np.array([_exact_row(inp[ii[j]], W, kk[j]) >= Fraction(float(lam[kk[j]])) for j in first],
                               dtype=np.int8)
            bits[ii, kk] = decided[inverse]
        return bits, d, err

    def _integral(self, l: int, inp: np.ndarray, bits_in: bool = False) -> bool:
        """Whether layer l's weights and thresholds are integers and, on the integer inputs ``inp``, every
        partial sum of W_k . inp - lambda_k stays below 2^53 in magnitude (so doubles compute it exactly).
        ``bits_in``: ``inp`` is known to hold only 0 and 1, so it is not scanned."""
        cache = self.__dict__.setdefault("_integral_rows", {})
        if l not in cache:
            W, lam = self.weights[l], self.thresholds[l]
            v = entries(W)
            ok = bool(np.all(v == np.round(v)) and np.all(lam == np.round(lam)))
            absrow = matmul_t(np.ones((1, W.shape[1])), elementwise(W, np.abs))[0]
            cache[l] = (ok, float(absrow.max(initial=0.0)), float(np.abs(lam).max(initial=0.0)))
        ok, absrow, abslam = cache[l]
        if not ok or inp.size == 0:
            return ok
        if bits_in:
            return absrow + abslam < 2.0**52
        top = float(np.abs(inp).max())
        return absrow * top + abslam < 2.0**52 and bool(np.all(inp == np.round(inp)))

    def forward(self, X: np.ndarray, depth: int | None = None) -> list[np.ndarray]:
        """Exact bits of every layer (of the first ``depth``): a list of int8 arrays of shape (m, d_l)."""
        out = []
        inp = np.asarray(X, dtype=np.float64)
        for l in range(len(self.weights) if depth is None else depth):
            bits, _, _ = self._layer(l, inp, bits_in=l > 0)
            out.append(bits)
            inp = bits.astype(np.float64)
        return out

    def predict_bits(self, X: np.ndarray) -> np.ndarray:
        return self.forward(X)[-1]

    def argmax_predictions(self, X: np.ndarray, bits: list[np.ndarray] | None = None) -> np.ndarray:
        """Class with the largest output score a^L_k - lambda^L_k, decided exactly; ties give -1 (wrong)."""
        W, lam = self.weights[-1], self.thresholds[-1]
        if W.shape[0] == 1:
            return (self.forward(X) if bits is None else bits)[-1][:, 0].astype(np.int64)
        inp = self._score_input(X, bits)
        score = matmul_t(inp, W) - lam
        err = dot_error_bound(inp, W, np.abs(score) + np.abs(lam))
        pred = np.argmax(score, axis=1).astype(np.int64)
        top = score[np.arange(len(pred)), pred]
        close = (score + err >= (top - err[np.arange(len(pred)), pred])[:, None]).sum(axis=1) > 1
        for i in np.flatnonzero(close):
            cand = np.flatnonzero(score[i] + err[i] >= top[i] - err[i, pred[i]])
            exact = {int(k): _exact_row(inp[i], W, k) - Fraction(float(lam[k])) for k in cand}
            best = max(exact.values())
            winners = [k for k, v in exact.items() if v == best]
            pred[i] = winners[0] if len(winners) == 1 else -1
        return pred

    def min_slack(self, X: np.ndarray, eps: float, depth: int | None = None) -> tuple[Fraction, tuple[int, int, int]]:
        """Exact smallest slack over all neurons (of the first ``depth`` layers) and samples, and where it is
        (layer, sample, neuron).

        Slack of a bit-1 pre-activation is a - lambda (>= 0 by definition); of a
        bit-0 one it is lambda - eps - a, which is >= 0 iff the network meets
        the epsilon margin of the training problem there.
        """
        best: tuple[Fraction, tuple[int, int, int]] | None = None
        inp = np.asarray(X, dtype=np.float64)
        for l in range(len(self.weights) if depth is None else depth):
            bits, d, err = self._layer(l, inp, bits_in=l > 0)
            slack = np.where(bits == 1, d, -d - eps)
            e = err + 4 * _U * abs(eps)
            # the exact minimum lies in [min(slack - e), min(slack + e)]: only those entries can attain it
            ii, kk = np.nonzero(slack - e <= np.min(slack + e))
            for j in distinct_pairs(inp, ii, kk)[0]:  # the same input row and neuron: the same slack
                i, k = ii[j], kk[j]
                a = _exact_row(inp[i], self.weights[l], k)
                lam = Fraction(float(self.thresholds[l][k]))
                s = a - lam if bits[i, k] == 1 else lam - Fraction(eps) - a
                if best is None or s < best[0]:
                    best = (s, (l + 1, int(i), int(k)))
            inp = bits.astype(np.float64)
        assert best is not None
        return best

    def _score_input(self, X: np.ndarray, bits: list[np.ndarray] | None) -> np.ndarray:
        """What the score layer reads: X itself for one layer, else the last hidden layer's bits (from ``bits``,
        or an exact forward pass through the hidden layers only)."""
        if len(self.weights) == 1:
            return np.asarray(X, dtype=np.float64)
        return (self.forward(X, len(self.weights) - 1) if bits is None else bits)[len(self.weights) - 2].astype(
            np.float64)

    def score_margins(self, X: np.ndarray, labels: np.ndarray, bits: list[np.ndarray] | None = None,
                      rival: int | None = None) -> np.ndarray:
        """s_y - max_{k != y} s_k of every sample under an argmax output layer, or s_y - s_rival (floating point:
        for choosing which samples a MILP point or polishing treats as correct and for steering searches;
        exact claims use ``argmax_slack``)."""
        s = matmul_t(self._score_input(X, bits), self.weights[-1]) - self.thresholds[-1]
        rows = np.arange(len(labels))
        sy = s[rows, labels].copy()
        if rival is not None:
            return sy - s[:, rival]
        s[rows, labels] = -np.inf
        return sy - s.max(axis=1)

    def argmax_slack(self, X: np.ndarray, labels: np.ndarray, eps: float,
                     bits: list[np.ndarray] | None = None) -> tuple[Fraction, tuple[int, int, int]] | None:
        """Exact smallest s_y - max_{k != y} s_k - eps over the correctly classified samples (argmax output),
        and where (layer L, sample, rival class); None when no sample is classified correctly."""
        bits = self.forward(X) if bits is None else bits
        pred = self.argmax_predictions(X, bits)
        ok = np.flatnonzero(pred == labels)
        if ok.size == 0:
            return None
        inp = self._score_input(X, bits)
        W, lam = self.weights[-1], self.thresholds[-1]
        score = matmul_t(inp[ok], W) - lam
        err = dot_error_bound(inp[ok], W, np.abs(score) + np.abs(lam)).max(axis=1) * 2 + 4 * _U * abs(eps)
        y = labels[ok]
        rows = np.arange(ok.size)
        gap = score[rows, y][:, None] - score - eps
        gap[rows, y] = np.inf
        floor = float(np.min(gap + err[:, None]))
        best: tuple[Fraction, tuple[int, int, int]] | None = None
        for r, k in np.argwhere(gap - err[:, None] <= floor):
            i = int(ok[r])
            sy = _exact_row(inp[i], W, int(y[r])) - Fraction(float(lam[y[r]]))
            sk = _exact_row(inp[i], W, int(k)) - Fraction(float(lam[k]))
            v = sy - sk - Fraction(eps)
            if best is None or v < best[0]:
                best = (v, (len(self.weights), i, int(k)))
        return best

    # ---- conversion -----------------------------------------------------------
    def to_layers_doc(self, sparse: bool = False) -> list[dict]:
        """Layers as {weights, thresholds}: nested lists (for YAML), or arrays and CSR layers with ``sparse``."""
        if sparse:
            return [{"weights": w, "thresholds": t} for w, t in zip(self.weights, self.thresholds, strict=True)]
        return [{"weights": dense(w).tolist(), "thresholds": t.tolist()}
                for w, t in zip(self.weights, self.thresholds, strict=True)]

    @classmethod
    def from_layers_doc(cls, layers: object, path: str | None, expect: list[int] | None = None) -> Network:
        if not isinstance(layers, list) or not layers:
            raise WeightsError(path, "layers", "expected a non-empty list of layers")
        ws, ts = [], []
        prev = None
        for l, layer in enumerate(layers):
            key = f"layers[{l}]"
            if not isinstance(layer, dict) or set(layer) != {"weights", "thresholds"}:
                raise WeightsError(path, key, "expected a mapping with exactly the keys weights and thresholds")
            W, t = layer["weights"], _numbers(layer["thresholds"])
            W = W if isinstance(W, Csr) else _numbers(W)
            if W is None or t is None:
                raise WeightsError(path, key, "expected numbers in weights and thresholds")
            if not isinstance(W, Csr) and (W.ndim != 2 or W.size == 0):
                raise WeightsError(path, f"{key}.weights", "expected a non-empty matrix (d_l rows of d_(l-1) numbers)")
            if prev is not None and W.shape[1] != prev:
                raise WeightsError(path, f"{key}.weights", f"expected rows of {prev} numbers, got {W.shape[1]}")
            if t.shape != (W.shape[0],):
                raise WeightsError(path, f"{key}.thresholds", f"expected {W.shape[0]} numbers, got shape {t.shape}")
            if not (np.isfinite(entries(W)).all() and np.isfinite(t).all()):
                raise WeightsError(path, key, "expected finite numbers")
            ws.append(W)
            ts.append(t)
            prev = W.shape[0]
        net = cls(ws, ts)
        if expect is not None and net.layers != list(expect):
            raise WeightsError(path, "layers", f"expected layer widths {list(expect)}, got {net.layers}")
        return net


def _numbers(value: object) -> np.ndarray | None:
    """The doubles of a (nested) list of YAML numbers; None if any entry is not a number (bools, strings)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":  # from an NPZ file: doubles already
        return value.astype(np.float64)
    try:
        arr = np.asarray(value, dtype=object)
    except ValueError:
        return None
    if not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in arr.ravel().tolist()):
        return None
    return arr.astype(np.float64)


def exact_preactivation(W: np.ndarray, inp: np.ndarray, mask: np.ndarray, which: str) -> Fraction | None:
    """Exact max (or min) of a_{ik} = W_k . inp_i over the entries where ``mask`` (m x rows of W) is true.

    Floating point with Higham's error bound narrows the candidates; only those are summed exactly.
    """
    if not mask.any():
        return None
    a = inp @ W.T
    err = dot_error_bound(inp, W, a)
    sign = 1.0 if which == "max" else -1.0
    s = np.where(mask, sign * a, -np.inf)
    best_low = np.max(np.where(mask, s - err, -np.inf))
    ii, kk = np.nonzero(mask & (s + err >= best_low))
    vals = [_exact_dot(inp[ii[j]], W[kk[j]]) for j in distinct_pairs(inp, ii, kk)[0]]
    return max(vals) if which == "max" else min(vals)


def distinct_pairs(inp: np.ndarray, ii: np.ndarray, kk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices j of the distinct (input row inp[ii[j]], neuron kk[j]) pairs, each pair's first, in order, and
    for every pair the position of its first among them: data sets repeat rows (200,000 samples on a grid of
    289 points), and each distinct pair needs its exact sum once. Rows are told apart by their bytes, each
    distinct row index once (sorting wide rows themselves costs minutes)."""
    if len(ii) <= 1:
        return np.arange(len(ii)), np.zeros(len(ii), dtype=np.int64)
    rows, row_of = np.unique(ii, return_inverse=True)
    ids: dict[bytes, int] = {}
    content = np.array([ids.setdefault(inp[r].tobytes(), len(ids)) for r in rows], dtype=np.int64)
    _, first, inverse = np.unique(content[row_of.ravel()] * (int(kk.max()) + 1) + kk, return_index=True,
                                  return_inverse=True)
    order = np.argsort(first)  # in the order the pairs come: the first of equal minima stays the first found
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse.ravel()]


def _exact_row(x: np.ndarray, W: np.ndarray | Csr, k: int) -> Fraction:
    """W_k . x exactly, from the non-zeros of row k."""
    cols, vals = row(W, k)
    return _exact_dot(x[cols], vals)


def _exact_dot(x: np.ndarray, w: np.ndarray) -> Fraction:
    return sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(x, w, strict=True) if a and b), Fraction(0))


def hamming_loss(bits: np.ndarray, targets: np.ndarray) -> int:
    """Number of output bits that differ from the target (the paper's loss)."""
    return int(np.sum(bits != targets))


def error_count(bits: np.ndarray, targets: np.ndarray) -> int:
    """Number of samples whose output bits are not exactly the target."""
    return int(np.sum(np.any(bits != targets, axis=1)))


def loss_value(loss: str, bits: np.ndarray, targets: np.ndarray) -> int:
    return hamming_loss(bits, targets) if loss == "hamming" else error_count(bits, targets)


def predictions(net: Network, X: np.ndarray, output: str, bits: list[np.ndarray] | None = None) -> np.ndarray:
    """The class of every sample under the network's output rule (-1: no class / a tie)."""
    bits = net.forward(X) if bits is None else bits
    return net.argmax_predictions(X, bits) if output == "argmax" else exact_match_predictions(bits[-1])


def training_loss(net: Network, X: np.ndarray, labels: np.ndarray, Y: np.ndarray, loss: str, output: str,
                  bits: list[np.ndarray] | None = None) -> int:
    """The training loss of the exact forward pass: misclassified samples for argmax outputs, else ``loss``
    over the output bits against the target bits Y."""
    bits = net.forward(X) if bits is None else bits
    if output == "argmax":
        return int(np.sum(net.argmax_predictions(X, bits) != labels))
    return loss_value(loss, bits[-1], Y)


def training_slack(net: Network, X: np.ndarray, labels: np.ndarray, eps: float, output: str
                   ) -> tuple[Fraction, tuple[int, int, int]]:
    """Exact smallest slack of the training problem's rows: every step bit's (``min_slack``) and, for argmax
    outputs, the score margin of every correctly classified sample (misclassified ones are the loss)."""
    if output == "bits":
        return net.min_slack(X, eps)
    L = len(net.weights)
    parts = [net.min_slack(X, eps, L - 1)] if L > 1 else []
    top = net.argmax_slack(X, labels, eps)
    parts += [top] if top is not None else []
    return min(parts, key=lambda p: p[0]) if parts else (Fraction(0), (L, -1, -1))


def exact_match_predictions(bits: np.ndarray) -> np.ndarray:
    """Predicted class per sample: c when the output bits are exactly e_c (or the bit, for one output), else -1."""
    if bits.shape[1] == 1:
        return bits[:, 0].astype(np.int64)
    ones = bits.sum(axis=1)
    pred = np.argmax(bits, axis=1).astype(np.int64)
    pred[ones != 1] = -1
    return pred
