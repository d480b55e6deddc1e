"""ONNX BNNs (Larq, PyTorch, bnnmilp's own export) as bnnmilp networks, exactly.

The graph is evaluated symbolically, one batch of size 1. Every tensor T is held exactly as

    T = sqrt(r) (a (A v + c) + b2) + b1        (element-wise; a, b1, b2, c, r rationals)

where v is the bit vector of the last step layer (or the model input x), A a sparse matrix of doubles
(checked exact: products by Dekker's error-free test, sums by a dyadic magnitude bound), and sqrt(r) the
one irrational batch norm may bring (r = 1 otherwise). Linear ops (MatMul, Gemm, Conv) multiply A; element-
wise ops (Add, Sub, Mul, Div, Neg, BatchNormalization) change a, b1, b2, c, r; shape ops (Reshape, Flatten,
Transpose, Squeeze, Unsqueeze) permute elements. A step op (Sign, Greater, GreaterOrEqual, Less,
LessOrEqual) ends a layer: per element, with z = A_k v,

    T_k >= 0   <=>   z >= t_k  (a_k > 0)   or   -z >= -t_k  (a_k < 0),   t_k = -c_k - (b2_k + b1_k / sqrt(r_k)) / a_k

a threshold in Q(sqrt r). It becomes a double lambda without changing any decision: kept when t is a double;
on a lattice (bits, or integer inputs with ``integer_inputs``) the smallest lattice point >= t; on real
inputs the smallest double >= t (decisions differ only for z in [t, lambda), reported). Strict steps
(z > t) are complements of -z >= -t. ONNX's Sign(0) = 0: where z = t is reachable, Sign gives two units
p = [z >= t], q = [z > t] and the value p + q - 1 (exact); where it is not, one unit and 2 p - 1.
Larq's Sign(Sign(x) + c) is then exact: a later step on a tensor that depends on one or two bits of the
last layer is evaluated on its possible values. MaxPool on bits is an OR unit; the output is an argmax layer
(logits, Softmax or ArgMax; a common positive scale is divided out) or the last step layer's bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from bnnmilp.errors import ModelFileError
from bnnmilp.io.importers.exact import (
    ceil_on_lattice,
    double_at_least,
    fraction_bits,
    products_exact,
    rational_sqrt,
    small_integers,
    sums_exact,
    surd_nonneg,
)
from bnnmilp.limits import too_many
from bnnmilp.network import Network
from bnnmilp.network.sparse import Csr, compact

INPUT_COST = 100  # an input element is tracked as a sparse row and six exact rationals: ~100 elements' memory

F0, F1 = Fraction(0), Fraction(1)
STEPS = {"Sign", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"}
IDENTITY = {"Identity", "Dropout", "Cast", "Softmax", "LogSoftmax"}
INDEXING = {"Gather", "Slice", "Expand"}  # ops that pick (or repeat) elements: a permutation of rows


def _fr(values: np.ndarray) -> np.ndarray:
    """Exact rationals of an array of doubles (an object array of Fractions)."""
    flat = np.asarray(values, np.float64).ravel()
    out = np.empty(flat.size, dtype=object)
    cache: dict[float, Fraction] = {}
    for i, v in enumerate(flat.tolist()):
        f = cache.get(v)
        if f is None:
            f = cache[v] = Fraction(v)
        out[i] = f
    return out


def _full(n: int, v: Fraction) -> np.ndarray:
    out = np.empty(n, dtype=object)
    out[:] = [v] * n
    return out


@dataclass
class Sym:
    """A tensor, exactly: sqrt(r) (a (A v + c) + b2) + b1 element-wise, v the bits of layer ``base``."""

    base: int
    shape: tuple[int, ...]
    A: Csr
    c: np.ndarray
    a: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    r: np.ndarray
    kind: str = "real"  # real | step (values of step units) | scores (after Softmax)
    pointwise: bool = False  # obtained from a step's output by element-wise and shape ops only

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

    def take(self, idx: np.ndarray, shape: tuple[int, ...]) -> Sym:
        return replace(self, shape=shape, A=self.A.take_rows(idx), c=self.c[idx], a=self.a[idx], b1=self.b1[idx],
                       b2=self.b2[idx], r=self.r[idx])

    def rational(self) -> bool:
        return all(v == 1 for v in self.r)


@dataclass
class Pooled:
    """A MaxPool of a real-valued tensor, kept open until a step: for a step of an increasing element-wise map g,
    step(g(max_i z_i)) = max_i step(g(z_i)), so the step is taken before the pool, which then pools bits."""

    x: Sym  # the tensor before the pool (element-wise ops after the pool are applied to it)
    out_idx: np.ndarray  # per window entry, the pooled element
    in_idx: np.ndarray  # per window entry, the element of x
    shape: tuple[int, ...]  # the pooled tensor's shape
    a0: np.ndarray  # x's scale when pooled: the map since then is increasing where a / a0 > 0


@dataclass
class Layer:
    rows: list[Csr] = field(default_factory=list)
    lam: list[float] = field(default_factory=list)


@dataclass
class OnnxReport:
    layers: list[int]
    output: str
    input_shape: list[int]
    notes: list[str] = field(default_factory=list)
    rounded: int = 0  # thresholds rounded on real inputs (decisions differ only inside [t, lambda))
    two_unit_signs: int = 0  # Sign units where Sign(0) = 0 is reachable


class _Importer:
    def __init__(self, path: str, integer_inputs: bool, input_shape: tuple[int, ...] | None = None) -> None:
        self.path = path
        self.integer_inputs = integer_inputs
        self.input_shape = input_shape  # the shape a query declares (else: the model's, with batch size 1)
        self.layers: list[tuple[Csr, np.ndarray]] = []  # finished step layers
        self.strict_units: dict[int, list[int]] = {}  # layer -> units [z > t] added for Sign(0) = 0 (maybe unused)
        self.width0 = 0
        self.report: OnnxReport | None = None

    def fail(self, node, msg: str) -> ModelFileError:
        where = f"node {node.name or '?'} ({node.op_type})" if node is not None else None
        return ModelFileError(self.path, where, msg)

    # ---- symbolic tensors --------------------------------------------------------------------------
    def affine(self, sym: Sym, node) -> tuple[Csr, np.ndarray]:
        """(A', c') with T = A' v + c', for a tensor without a surd; A' exact in doubles."""
        if not sym.rational():
            raise self.fail(node, "a linear op on a batch-normalised tensor before any step: fold the batch norm "
                                  "into the weights or put it before a Sign")
        a = sym.a
        if all(x == 1 for x in a):
            scale = np.ones(sym.n)
        else:
            scale = np.array([float(x) for x in a])
            if any(Fraction(s) != x for s, x in zip(scale.tolist(), a, strict=True)):
                raise self.fail(node, "a scale that is not a double before a linear op")
        rows = sym.A.row_of
        if not products_exact(sym.A.data, scale[rows]):
            raise self.fail(node, "weights times scale are not exact in doubles")
        A = sym.A.with_data(sym.A.data * scale[rows])
        return A, sym.a * sym.c + sym.b2 + sym.b1

    def linear(self, sym: Sym, M: Csr, const: np.ndarray, shape: tuple[int, ...], node) -> Sym:
        """M T + const, exactly (M acts on T's flattened elements)."""
        A, c = self.affine(sym, node)
        one = np.diff(A.indptr) == 1
        if one.all() and (A.nnz < 2 or np.all(np.diff(A.indices) > 0) or np.unique(A.indices).size == A.nnz):
            # each element one unit, in order (a step's bits): M A is M with its columns renamed and scaled, done
            # in M's own arrays (a 64-filter convolution of bits has 35 million entries)
            scale = A.data[0] if A.nnz and np.all(A.data == A.data[0]) else None
            av = A.data[M.indices] if scale is None else np.array([scale])
            if not products_exact(M.data, av):
                raise self.fail(node, "products of weights are not exact in doubles")
            shift = self.matvec(M, c, node) + _fr(const)  # M c, before M becomes M A
            if scale is None:
                M.data[:] = M.data * av
            elif scale != 1.0:
                M.data[:] *= scale
            increasing = A.nnz < 2 or bool(np.all(np.diff(A.indices) > 0))
            np.take(A.indices, M.indices, out=M.indices, mode="clip")
            newA = Csr((M.shape[0], A.shape[1]), M.indptr, M.indices, M.data)
            newA = newA if increasing else _sorted_rows(newA)
            return Sym(sym.base, shape, newA, shift, _full(M.shape[0], F1),
                       _full(M.shape[0], F0), _full(M.shape[0], F0), _full(M.shape[0], F1), pointwise=False)
        # (M A): expand M's entries by the rows of A they hit
        counts = np.diff(A.indptr)[M.indices]
        k = np.repeat(M.row_of, counts)
        pos = np.repeat(A.indptr[M.indices] - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) \
            + np.arange(int(counts.sum()))
        mv, av = np.repeat(M.data, counts), A.data[pos]
        if not products_exact(mv, av):
            raise self.fail(node, "products of weights are not exact in doubles")
        prod, cols = mv * av, A.indices[pos]
        key = k * A.shape[1] + cols
        uniq, inv = np.unique(key, return_inverse=True)
        if not sums_exact(prod, inv):
            raise self.fail(node, "sums of weights are not exact in doubles")
        vals = np.bincount(inv, weights=prod, minlength=uniq.size)
        newA = Csr.from_coo(uniq // A.shape[1], uniq % A.shape[1], vals, (M.shape[0], A.shape[1]))
        return Sym(sym.base, shape, newA, self.matvec(M, c, node) + _fr(const), _full(M.shape[0], F1),
                   _full(M.shape[0], F0), _full(M.shape[0], F0), _full(M.shape[0], F1), pointwise=False)

    def matvec(self, M: Csr, c: np.ndarray, node) -> np.ndarray:
        """M c exactly (c rationals): grouped by the distinct values of c, each group a row sum of doubles."""
        out = _full(M.shape[0], F0)
        keys: dict[Fraction, int] = {}
        code = np.array([keys.setdefault(v, len(keys)) for v in c.tolist()], dtype=np.int64)
        if len(keys) == 1:  # one value for every element (a step's output): v times the row sums, no copies
            v = next(iter(keys))
            if v == 0:
                return out
            longest = int(np.diff(M.indptr).max(initial=0))
            if small_integers(M.data, np.array([float(longest)])):  # every row sum an exact integer
                return v * _fr(_row_sums(M.data, M.indptr))
        cv = code[M.indices]
        rows_all = M.row_of
        for v, u in keys.items():
            if v == 0:
                continue
            mask = cv == u
            terms, rows = M.data[mask], rows_all[mask]
            if sums_exact(terms, rows):
                out = out + v * _fr(np.bincount(rows, weights=terms, minlength=M.shape[0]))
            else:
                exact = _full(M.shape[0], F0)
                for t, rw in zip(terms.tolist(), rows.tolist(), strict=True):
                    exact[rw] += Fraction(t)
                out = out + v * exact
        return out

    def const_sym(self, base: int, value: np.ndarray) -> Sym:
        n = int(value.size)
        return Sym(base, tuple(value.shape), Csr((n, self.base_width(base)), np.zeros(n + 1, np.int64),
                                                 np.zeros(0, np.int64), np.zeros(0)),
                   _fr(value), _full(n, F1), _full(n, F0), _full(n, F0), _full(n, F1))

    def base_width(self, base: int) -> int:
        return self.width0 if base == 0 else self.layers[base - 1][0].shape[0]

    # ---- steps ---------------------------------------------------------------------------------------
    def threshold(self, sym: Sym, k: int, node) -> tuple[int, Fraction, Fraction, Fraction] | None:
        """(s, p, q, r): T_k >= 0 iff s z >= p + q sqrt(r) with z = A_k v, s = +-1; None if T_k is constant."""
        a, c, b1, b2, r = sym.a[k], sym.c[k], sym.b1[k], sym.b2[k], sym.r[k]
        if a == 0:
            return None
        # sqrt(r) (a z + a c + b2) + b1 >= 0  <=>  a z >= -(a c + b2) - b1 / sqrt(r) = P + Q sqrt(r)
        P, Q = -(a * c + b2), (-b1 / r if r != 1 else F0)
        if r == 1:
            P -= b1
        s = 1 if a > 0 else -1
        return s, s * P / a, s * Q / a, r  # s z >= s (P + Q sqrt r) / a ... divided by |a| keeps the side

    def lattice(self, base: int) -> bool:
        return base > 0 or self.integer_inputs

    def row_stats(self, A: Csr, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of A: the bits k of its lattice 2^-k Z (on a lattice base) and the range [lo, hi] of A_k v over
        bits (-inf, inf on real inputs)."""
        n = A.shape[0]
        if base == 0:
            return np.zeros(n, np.int64), np.full(n, -np.inf), np.full(n, np.inf)
        bits = np.zeros(n, np.int64)
        nonempty = np.diff(A.indptr) > 0
        starts = np.minimum(A.indptr[:-1], max(A.nnz - 1, 0))
        if A.nnz and not small_integers(A.data, np.ones(1)):  # integers lie on Z: bits 0
            fb = np.maximum(fraction_bits(A.data), 0)
            bits = np.where(nonempty, np.maximum.reduceat(fb, starts), 0)
        total = _row_sums(A.data, A.indptr)
        size = _row_sums(A.data, A.indptr, np.abs)
        return bits, (total - size) / 2, (total + size) / 2

    def place(self, base: int, p: Fraction, q: Fraction, r: Fraction, bits: int, lo: float,
              hi: float) -> tuple[float, bool, bool]:
        """(lambda, tie, rounded): [z >= lambda] equals [z >= p + q sqrt(r)] on the base's domain, z on the lattice
        2^-bits Z within [lo, hi] (on real inputs: except inside [t, lambda), then rounded is True); tie: whether
        z = t may be reachable."""
        exact = q == 0 and Fraction(float(p)) == p
        if self.lattice(base):
            g = Fraction(1, 2**bits)
            lam = ceil_on_lattice(p, q, r, g)
            tie = q == 0 and (p / g).denominator == 1 and lo <= p <= hi
            if exact:
                return float(p), tie, False
            if float(lam) != lam:
                raise ModelFileError(self.path, None, f"threshold {lam} is not a double")
            return float(lam), tie, False
        if exact:
            return float(p), True, False
        dyadic = q == 0 and p.denominator & (p.denominator - 1) == 0
        return double_at_least(p, q, r), dyadic, True

    def units(self, sym: Sym, node, op: str) -> tuple[list, list, list, list, np.ndarray]:
        """Per element of ``sym``: its units as (row of sym.A or -1 for a constant unit, sign, lambda), the output
        columns they give, and constants where no unit is needed. Thresholds and their placement are computed
        once per distinct (scale, offsets, lattice, range): a channel of a convolution shares them."""
        src, sign, lam, out_cols = [], [], [], []
        consts = np.empty(sym.n, dtype=object)
        bits, lo, hi = self.row_stats(sym.A, sym.base)
        th_memo: dict = {}
        place_memo: dict = {}

        def placed(p: Fraction, q: Fraction, r: Fraction, *rest) -> tuple[float, bool, bool]:
            key = (p.numerator, p.denominator, q.numerator, q.denominator, r.numerator, r.denominator, *rest)
            if key not in place_memo:
                place_memo[key] = self.place(sym.base, p, q, r, *rest)
            return place_memo[key]

        ge_needed = op in ("GreaterOrEqual", "Sign")
        for k in range(sym.n):
            # by value, as integer pairs (hashing a Fraction is slow): a channel's elements share their numbers
            key = tuple(v for f in (sym.a[k], sym.c[k], sym.b1[k], sym.b2[k], sym.r[k])
                        for v in (f.numerator, f.denominator))
            th = th_memo[key] if key in th_memo else th_memo.setdefault(key, self.threshold(sym, k, node))
            if th is None:  # a = 0: the constant sqrt(r) b2 + b1
                b1, b2, r = sym.b1[k], sym.b2[k], sym.r[k]
                nonneg, zero = surd_nonneg(b1, b2, r), surd_nonneg(b1, b2, r) and surd_nonneg(-b1, -b2, r)
                if op == "Sign" and zero:  # Sign(0) = 0: a constant, no unit
                    consts[k] = F0
                    out_cols.append([])
                    continue
                on = nonneg if op in ("Sign", "GreaterOrEqual") else nonneg and not zero
                src.append(-1), sign.append(1.0), lam.append(0.0 if on else 1.0)
                out_cols.append([(len(src) - 1, 1.0)])
                continue
            s, p, q, r = th
            z_lo, z_hi = (lo[k], hi[k]) if s > 0 else (-hi[k], -lo[k])
            lam_ge, tie, rounded = placed(p, q, r, int(bits[k]), z_lo, z_hi)
            self.report.rounded += rounded
            cols = []
            if ge_needed:
                src.append(k), sign.append(float(s)), lam.append(lam_ge)
                cols.append((len(src) - 1, 1.0))
            if op == "Greater" or (op == "Sign" and tie):  # [z > t] = 1 - [-z >= -t]
                lam_gt, _, rounded = placed(-p, -q, r, int(bits[k]), -z_hi, -z_lo)
                self.report.rounded += rounded
                src.append(k), sign.append(-float(s)), lam.append(lam_gt)
                cols.append((len(src) - 1, -1.0))
                if op == "Sign":
                    self.strict_units.setdefault(len(self.layers), []).append(len(src) - 1)
            out_cols.append(cols)
        return src, sign, lam, out_cols, consts

    def step(self, sym: Sym, node, op: str) -> Sym:
        """A new layer of step units from the elements of ``sym``; returns the op's output tensor."""
        top = len(self.layers)
        if sym.base != top:
            raise self.fail(node, f"a step on a tensor of layer {sym.base} after layer {top}: skip connections "
                                  "are not supported")
        # a tensor that depends on at most two bits of the last layer is a function of those bits (Larq's
        # Sign(Sign(x) + c)): decided on its possible values without a new layer
        folded = self.fold(sym, op) if top > 0 else None
        if folded is not None:
            return folded
        src, sign, lam, out_cols, consts = self.units(sym, node, op)
        if not src:
            return self.const_sym(top, np.array([float(x) for x in consts]).reshape(sym.shape))
        src_a, sign_a = np.array(src, np.int64), np.array(sign)
        if src_a.size == sym.n and np.array_equal(src_a, np.arange(sym.n)) and np.all(sign_a == 1):
            self.layers.append((sym.A, np.array(lam)))  # the rows as they are: no copy of a large layer
            return self.output_of(op, out_cols, consts, len(src), sym.shape, top + 1, node)
        real = src_a >= 0
        A = sym.A.take_rows(np.where(real, src_a, 0))
        keep = np.repeat(real, np.diff(A.indptr))  # a constant unit's row is empty
        counts = np.diff(A.indptr) * real
        W = Csr(A.shape, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), A.indices[keep],
                (A.data * np.repeat(sign_a, np.diff(A.indptr)))[keep])
        self.layers.append((W, np.array(lam)))
        return self.output_of(op, out_cols, consts, len(src), sym.shape, top + 1, node)

    @staticmethod
    def value(op: str, pos: bool, zero: bool) -> Fraction:
        """The op's output for a decided element: Sign gives -1, 0, 1; comparisons 0 or 1."""
        if op == "Sign":
            return F0 if zero else (F1 if pos else -F1)
        return F1 if pos else F0

    def output_of(self, op: str, out_cols, consts, width: int, shape, base: int, node) -> Sym:
        """The op's value as an affine function of the new units: Sign: p + q - 1 (or 2p - 1); >=: p; >: 1 - w'."""
        r_, c_, v_ = [], [], []
        cst = _full(len(out_cols), F0)
        for k, cols in enumerate(out_cols):
            if consts[k] is not None:
                cst[k] = consts[k]
                continue
            if cols and cols[0][1] > 0 and op not in ("Sign", "GreaterOrEqual") and len(cols) == 1:
                r_.append(k), c_.append(cols[0][0]), v_.append(1.0)  # a constant unit of a strict step
                continue
            if op == "Sign":
                if len(cols) == 1:  # 2 p - 1
                    r_.append(k), c_.append(cols[0][0]), v_.append(2.0)
                    cst[k] = -F1
                else:  # p + q - 1 with q = 1 - w: p - w
                    (cp, _), (cw, _) = cols
                    r_ += [k, k]
                    c_ += [cp, cw]
                    v_ += [1.0, -1.0]
            elif op in ("GreaterOrEqual", "LessOrEqual"):
                r_.append(k), c_.append(cols[0][0]), v_.append(1.0)
            else:  # strict: 1 - w
                r_.append(k), c_.append(cols[0][0]), v_.append(-1.0)
                cst[k] = F1
        n = len(out_cols)
        A = Csr.from_coo(np.array(r_, np.int64), np.array(c_, np.int64), np.array(v_), (n, width))
        return Sym(base, shape, A, cst, _full(n, F1), _full(n, F0), _full(n, F0), _full(n, F1), kind="step",
                   pointwise=True)

    def fold(self, sym: Sym, op: str) -> Sym | None:
        """A step of a tensor obtained from a step's output by element-wise ops only, each element depending on
        at most two units of the last layer: evaluated on the values those units can take (a two-unit Sign's
        p >= q excludes one), as an affine function of them; None where that function is not affine."""
        counts = np.diff(sym.A.indptr)
        if not sym.pointwise or counts.max(initial=0) > 2 or not sym.rational():
            return None
        W, _ = self.layers[-1]
        out_r, out_c, out_v, cst = [], [], [], _full(sym.n, F0)
        memo: dict = {}  # by value: a channel's elements share their numbers
        for k in range(sym.n):
            cols, vals = sym.A.row(k)
            key = (tuple(vals.tolist()), len(cols) == 2 and self.pair(cols),
                   *((f.numerator, f.denominator) for f in (sym.a[k], sym.c[k], sym.b1[k], sym.b2[k])))
            if key not in memo:
                memo[key] = self._fold_element(key[1], [Fraction(float(v)) for v in vals], sym.a[k], sym.c[k],
                                               sym.b1[k] + sym.b2[k], op)
            if memo[key] is None:
                return None
            const, coef_p, coef_w = memo[key]
            cst[k] = const
            for col, dv in zip(cols.tolist(), (coef_p, coef_w), strict=False):
                if dv:
                    out_r.append(k), out_c.append(int(col)), out_v.append(float(dv))
        A = Csr.from_coo(np.array(out_r, np.int64), np.array(out_c, np.int64), np.array(out_v),
                         (sym.n, W.shape[0]))
        return Sym(sym.base, sym.shape, A, cst, _full(sym.n, F1), _full(sym.n, F0), _full(sym.n, F0),
                   _full(sym.n, F1), kind="step", pointwise=True)

    def _fold_element(self, pair: bool, fv: list[Fraction], a: Fraction, c: Fraction, b: Fraction, op: str
                      ) -> tuple[Fraction, Fraction, Fraction] | None:
        """One element of ``fold``: op(a (fv . bits + c) + b) as const + coef_p p + coef_w w over the bits' possible
        values, or None where it is not affine in them."""
        n = len(fv)
        combos = [(1, 1), (1, 0), (0, 1)] if pair else [tuple((i >> j) & 1 for j in range(n)) for i in range(2 ** n)]

        def val(bits: tuple[int, ...]) -> Fraction:
            t = a * (sum((v * x for v, x in zip(fv, bits, strict=True)), F0) + c) + b
            return self.value(op, t > 0 if op == "Greater" else t >= 0, t == 0)

        vals_at = {bits: val(bits) for bits in combos}
        if pair:  # (p, w) != (0, 0): value = v(0, 1) + (v(1, 1) - v(0, 1)) p + (v(1, 1) - v(1, 0)) w
            v01, v11, v10 = vals_at[(0, 1)], vals_at[(1, 1)], vals_at[(1, 0)]
            coef_p, coef_w = v11 - v01, v11 - v10
            const = v01 - coef_w
            return None if v10 != const + coef_p else (const, coef_p, coef_w)
        const = vals_at[(0,) * n]
        coefs = [vals_at[tuple(int(i == j) for i in range(n))] - const for j in range(n)]
        if any(vals_at[x] != const + sum((c_ * b_ for c_, b_ in zip(coefs, x, strict=True)), F0) for x in combos):
            return None
        coef_p, coef_w = [*coefs, F0, F0][:2]
        return const, coef_p, coef_w

    def pair(self, cols: np.ndarray) -> bool:
        """Whether two units are a two-unit Sign's p = [z >= t] and w = [-z >= -t]."""
        W, _ = self.layers[-1]
        (ca, va), (cb, vb) = W.row(int(cols[0])), W.row(int(cols[1]))
        return int(cols[1]) == int(cols[0]) + 1 and np.array_equal(ca, cb) and np.array_equal(va, -vb)

    # ---- graph ---------------------------------------------------------------------------------------
    def run(self, model) -> tuple[Network, OnnxReport]:
        out, argmax = self.evaluate(model)
        if not isinstance(out, Sym):
            raise ModelFileError(self.path, "graph.output", "the output does not depend on the input")
        return self.finish(out, argmax), self.report

    def evaluate(self, model) -> tuple[Sym | np.ndarray, bool]:
        """The graph's output tensor, exactly (a constant array where it does not depend on the input), and
        whether an ArgMax ends the graph."""
        import onnx

        g = model.graph
        env: dict[str, object] = self.initializers(g)
        inputs = [i for i in g.input if i.name not in env]
        if len(inputs) != 1:
            raise ModelFileError(self.path, "graph.input", f"expected one input, got {len(inputs)}")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
                for d in inputs[0].type.tensor_type.shape.dim]
        shape = tuple([1, *dims[1:]]) if len(dims) >= 2 else (1, dims[0] if dims else 1)
        if self.input_shape is not None:
            fixed = [d.dim_value if d.HasField("dim_value") else 0 for d in inputs[0].type.tensor_type.shape.dim]
            if len(fixed) != len(self.input_shape) or any(f and f != s for f, s in zip(fixed, self.input_shape,
                                                                                       strict=True)):
                raise ModelFileError(self.path, "graph.input", f"the model's input has shape {dims}; the query "
                                                               f"declares {list(self.input_shape)}")
            shape = tuple(self.input_shape)
        msg = too_many(math.prod(shape), f"input {inputs[0].name!r} of shape {shape}", INPUT_COST)
        if msg:
            raise ModelFileError(self.path, "graph.input", msg)
        self.width0 = int(np.prod(shape))
        self.report = OnnxReport(layers=[self.width0], output="bits", input_shape=list(shape[1:]))
        n = self.width0
        env[inputs[0].name] = Sym(0, shape, Csr.from_coo(np.arange(n), np.arange(n), np.ones(n), (n, n)),
                                  _full(n, F0), _full(n, F1), _full(n, F0), _full(n, F0), _full(n, F1))
        argmax = False
        for node in g.node:
            ins = [env.get(x) if x else None for x in node.input]
            if any(x is None and name for x, name in zip(ins, node.input, strict=True)):
                raise self.fail(node, "an input that no earlier node produces")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "ArgMax":
                if not isinstance(ins[0], Sym) or int(attrs.get("axis", 0)) not in (1, -1):
                    raise self.fail(node, "expected ArgMax over the class axis of the network's scores")
                argmax = True
                env[node.output[0]] = ins[0]
                continue
            if node.op_type == "Shape" and isinstance(ins[0], Sym):
                outs = [np.array(ins[0].shape, np.int64)]
            elif all(not isinstance(x, (Sym, Pooled)) for x in ins):
                outs = self.constant(node, ins, attrs)
            elif node.op_type == "Split":
                outs = self.split(node, ins, attrs)
            else:
                outs = [self.symbolic(node, ins, attrs)]
            for name, val in zip(node.output, outs, strict=False):
                env[name] = val
        return env.get(g.output[0].name), argmax

    def initializers(self, g) -> dict[str, object]:
        """The graph's constant tensors, each checked before it is expanded: a declared size within the element
        limit, and data that fill it (a tensor may declare dims [100000, 100000] and carry nothing)."""
        from onnx import numpy_helper

        env: dict[str, object] = {}
        total = 0
        for t in g.initializer:
            count = math.prod(int(d) for d in t.dims)
            total += count
            msg = too_many(count, f"dims {list(t.dims)}") or \
                too_many(total, "the initializers together")
            if msg:
                raise ModelFileError(self.path, f"initializer {t.name!r}", msg)
            try:
                arr = numpy_helper.to_array(t)
            except (ValueError, TypeError, OSError) as exc:  # data missing or of another size; external data
                raise ModelFileError(self.path, f"initializer {t.name!r}", f"data that do not fill dims "
                                     f"{list(t.dims)} ({exc.__class__.__name__})") from None
            env[t.name] = arr.astype(np.float64) if t.data_type in (1, 10, 11) else arr
        return env

    def constant(self, node, ins: list, attrs: dict) -> list[np.ndarray]:
        """Nodes on constants only (weights quantised in the graph, shape arithmetic), in numpy."""
        op = node.op_type
        if op == "Constant":
            from onnx import numpy_helper

            if "value" in attrs:
                return [numpy_helper.to_array(attrs["value"]).astype(np.float64)
                        if attrs["value"].data_type in (1, 10, 11) else numpy_helper.to_array(attrs["value"])]
            for k in ("value_float", "value_int"):
                if k in attrs:
                    return [np.array(attrs[k])]
            for k in ("value_floats", "value_ints"):
                if k in attrs:
                    return [np.array(list(attrs[k]))]
        if op == "ConstantOfShape":
            from onnx import numpy_helper

            fill = numpy_helper.to_array(attrs["value"]).ravel()[0] if "value" in attrs else 0.0
            return [np.full([int(v) for v in np.asarray(ins[0]).ravel()], fill)]
        x = ins[0]
        if op == "Expand":
            return [x * np.ones([int(v) for v in np.asarray(ins[1]).ravel()])]
        if op == "Slice":
            return [x[self.slices(node, x.shape, ins, attrs)]]
        binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                  "Greater": np.greater, "GreaterOrEqual": np.greater_equal, "Less": np.less,
                  "LessOrEqual": np.less_equal}
        if op in binary:
            return [binary[op](x, ins[1])]
        if op == "Sign":
            return [np.sign(x)]
        if op == "Neg":
            return [-x]
        if op in IDENTITY:
            return [x.astype(np.float64) if op == "Cast" and attrs.get("to") in (1, 10, 11) else x]
        if op == "Transpose":
            return [np.transpose(x, attrs.get("perm"))]
        if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            return [np.reshape(x, self.new_shape(node, x.shape, ins, attrs))]
        if op == "Shape":
            return [np.array(x.shape, np.int64)]
        if op == "Gather":
            return [np.take(x, np.asarray(ins[1]).astype(np.int64), axis=int(attrs.get("axis", 0)))]
        if op == "Concat":
            return [np.concatenate([np.atleast_1d(v) for v in ins], axis=int(attrs.get("axis", 0)))]
        if op == "MatMul":
            return [x @ ins[1]]
        raise self.fail(node, "not supported on constants")

    def new_shape(self, node, shape: tuple[int, ...], ins: list, attrs: dict) -> tuple[int, ...]:
        op = node.op_type
        if op == "Flatten":
            ax = int(attrs.get("axis", 1)) % (len(shape) or 1)
            return (int(np.prod(shape[:ax])), int(np.prod(shape[ax:])))
        if op == "Reshape":
            if isinstance(ins[1], Sym):
                raise self.fail(node, "expected a constant shape")
            target = [int(v) for v in np.asarray(ins[1]).ravel()]
            target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
            if target.count(-1) == 1:
                target[target.index(-1)] = int(np.prod(shape)) // int(np.prod([v for v in target if v != -1]))
            return tuple(target)
        axes = attrs.get("axes")
        if axes is None and len(ins) > 1 and ins[1] is not None:
            axes = [int(v) for v in np.asarray(ins[1]).ravel()]
        if op == "Squeeze":
            axes = [a % len(shape) for a in (axes or [i for i, d in enumerate(shape) if d == 1])]
            return tuple(d for i, d in enumerate(shape) if i not in axes)
        out = list(shape)
        for a in sorted(a % (len(shape) + len(axes)) for a in axes):
            out.insert(a, 1)
        return tuple(out)

    def symbolic(self, node, ins: list, attrs: dict) -> Sym | Pooled:
        op = node.op_type
        if any(isinstance(v, Pooled) for v in ins):
            return self.on_pooled(node, ins, attrs)
        x = ins[0] if isinstance(ins[0], Sym) else None
        if op in IDENTITY:
            if x is None:
                raise self.fail(node, "expected the network's tensor as the first input")
            if op == "Cast" and attrs.get("to") not in (1, 10, 11, 16):
                raise self.fail(node, "a cast to a type that is not floating point (it would round)")
            return replace(x, kind="scores") if op in ("Softmax", "LogSoftmax") else x
        if op in INDEXING:
            return self.indexing(node, op, x, ins, attrs)
        if op in ("ReduceSum", "ReduceMean"):
            return self.reduce(node, op, x, ins, attrs)
        if op == "Concat":
            return self.concat(node, ins, int(attrs.get("axis", 0)))
        if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            shape = self.new_shape(node, x.shape, ins, attrs)
            if int(np.prod(shape)) != x.n:
                raise self.fail(node, f"cannot reshape {x.shape} to {shape}")
            return replace(x, shape=shape)
        if op == "Transpose":
            perm = attrs.get("perm") or list(range(len(x.shape)))[::-1]
            idx = np.transpose(np.arange(x.n).reshape(x.shape), perm)
            return x.take(idx.ravel(), tuple(idx.shape))
        if op in ("Add", "Sub", "Mul", "Div"):
            return self.elementwise(node, op, ins)
        if op == "Neg":
            return self.scale(x, np.full(x.n, -1.0))
        if op == "BatchNormalization":
            return self.batchnorm(node, x, ins[1:5], float(attrs.get("epsilon", 1e-5)))
        if op in ("MatMul", "Gemm"):
            return self.matmul(node, op, ins, attrs)
        if op == "Conv":
            return self.conv(node, ins, attrs)
        if op == "MaxPool":
            return self.maxpool(node, x, attrs)
        if op in STEPS:
            x, op = self.step_input(node, op, x, ins)
            return self.step(x, node, op)
        raise self.fail(node, "not supported (see 'bnnmilp import --help' for the supported ops)")

    def step_input(self, node, op: str, x: Sym | None, ins: list) -> tuple[Sym, str]:
        """A step op as Sign, GreaterOrEqual or Greater of one tensor: T >= C is T - C >= 0, T < C is -(T - C) > 0."""
        if op != "Sign":
            if isinstance(ins[1], Sym) or x is None:
                raise self.fail(node, "expected a comparison of the network's tensor with a constant")
            x = self.elementwise(node, "Sub", [x, ins[1]])
        if op in ("Less", "LessOrEqual"):
            x, op = self.scale(x, np.full(x.n, -1.0)), {"Less": "Greater", "LessOrEqual": "GreaterOrEqual"}[op]
        return x, op

    def on_pooled(self, node, ins: list, attrs: dict) -> Sym | Pooled:
        """Ops after a MaxPool of real values: element-wise ops with per-channel constants and batch norms go to
        the tensor before the pool; a step is taken there, where the map since the pool is increasing (every
        scale positive), and the pool then pools its bits. Anything else is refused."""
        op = node.op_type
        p = next(v for v in ins if isinstance(v, Pooled))
        if op not in STEPS and op not in ("Add", "Sub", "Mul", "Div", "Neg", "BatchNormalization", "Identity",
                                          "Dropout"):
            raise self.fail(node, "after a MaxPool of real values only element-wise ops, batch norms and a step are "
                                  "supported (the pool is moved after the step, which is exact for increasing maps)")
        if isinstance(ins[0], Pooled) and op == "BatchNormalization":
            lifted = [p.x, *ins[1:]]
        else:
            lifted = [p.x if isinstance(v, Pooled) else self.per_channel(node, v, p) for v in ins]
        if op not in STEPS:
            out = self.symbolic(node, lifted, attrs)
            return replace(p, x=out)
        x, op2 = self.step_input(node, op, lifted[0] if isinstance(lifted[0], Sym) else None, lifted)
        ratio = [a * a0 for a, a0 in zip(x.a[p.in_idx], p.a0[p.in_idx], strict=True)]
        if not all(r > 0 for r in ratio):
            raise self.fail(node, "a step after a MaxPool of real values through a decreasing map (a negative "
                                  "batch-norm scale): the pool cannot be moved after the step")
        bits = self.step(x, node, op2)
        return self.pool_values(node, bits, p.out_idx, p.in_idx, p.shape)

    def per_channel(self, node, v, p: Pooled):
        """A constant on the pooled tensor as one on the tensor before the pool: it must not vary within a channel."""
        if v is None:
            return None
        arr = np.broadcast_to(np.asarray(v, np.float64), p.shape)
        if len(p.shape) != 4 or np.any(arr != arr[:, :, :1, :1]):
            raise self.fail(node, "a constant that varies within a channel after a MaxPool of real values")
        return np.ascontiguousarray(arr[:, :, :1, :1])

    def broadcast(self, node, sym: Sym, v: np.ndarray) -> np.ndarray:
        try:
            return np.broadcast_to(np.asarray(v, np.float64), sym.shape).ravel()
        except ValueError:
            raise self.fail(node, f"cannot broadcast a constant of shape {np.shape(v)} to {sym.shape}") from None

    def scale(self, sym: Sym, m: np.ndarray) -> Sym:
        f = _fr(m)
        return replace(sym, a=sym.a * f, b1=sym.b1 * f, b2=sym.b2 * f, kind="real")

    def elementwise(self, node, op: str, ins: list) -> Sym:
        x, y = ins
        if isinstance(x, Sym) and isinstance(y, Sym):
            raise self.fail(node, "an operation on two network tensors (a residual connection or a product) is "
                                  "not supported")
        if isinstance(y, Sym):  # constant op tensor
            if op == "Sub":
                return self.elementwise(node, "Add", [self.scale(y, np.full(y.n, -1.0)), x])
            if op == "Div":
                raise self.fail(node, "division by the network's tensor")
            x, y = y, x
        full = np.broadcast_shapes(x.shape, np.shape(y)) if np.ndim(y) else x.shape
        if tuple(full) != tuple(x.shape):  # the constant repeats the tensor's elements
            x = x.take(np.broadcast_to(np.arange(x.n).reshape(x.shape), full).ravel(), tuple(full))
        v = self.broadcast(node, x, y)
        if op in ("Add", "Sub"):
            return replace(x, b1=x.b1 + _fr(v if op == "Add" else -v), kind="real")
        if op == "Mul":
            return self.scale(x, v)
        if np.any(v == 0):
            raise self.fail(node, "division by zero")
        f = np.array([1 / q for q in _fr(v)], dtype=object)
        return replace(x, a=x.a * f, b1=x.b1 * f, b2=x.b2 * f, kind="real")

    def batchnorm(self, node, x: Sym, params: list, eps: float) -> Sym:
        """gamma (T - mean) / sqrt(var + eps) + beta per channel (axis 1), with the square root kept exact."""
        if any(isinstance(p, Sym) for p in params):
            raise self.fail(node, "expected constant batch-norm parameters")
        if not x.rational():
            raise self.fail(node, "two batch norms without a step in between")
        chan = x.shape[1] if len(x.shape) > 1 else 1
        ch = np.indices(x.shape)[1].ravel() if len(x.shape) > 1 else np.zeros(x.n, np.int64)
        gamma, beta, mean, var = (_fr(np.asarray(p, np.float64).reshape(chan)) for p in params)
        e = Fraction(eps)
        a, b1, b2, r = x.a.copy(), x.b1.copy(), x.b2.copy(), x.r.copy()
        per_channel = []
        for j in range(chan):
            R = var[j] + e
            if R <= 0:
                raise self.fail(node, "variance + epsilon is not positive")
            root = rational_sqrt(R)  # gamma / sqrt(R), or (gamma / R) sqrt(R) where sqrt(R) is irrational
            per_channel.append((gamma[j] / root, F1) if root is not None else (gamma[j] / R, R))
        memo: dict = {}  # elements of a channel share their numbers (by identity): computed once, shared
        for k in range(x.n):
            j = int(ch[k])
            key = (j, id(a[k]), id(b1[k]), id(b2[k]))
            if key not in memo:
                sc, rr = per_channel[j]
                inner = b2[k] + b1[k] - mean[j]  # T - mean = a (z + c) + inner
                memo[key] = (a[k] * sc, inner * sc, beta[j], rr)
            a[k], b2[k], b1[k], r[k] = memo[key]
        return replace(x, a=a, b1=b1, b2=b2, r=r, kind="real")

    def slices(self, node, shape: tuple[int, ...], ins: list, attrs: dict) -> tuple[slice, ...]:
        """Slice's starts, ends, axes and steps (inputs from opset 10, attributes before) as Python slices."""
        def arg(i: int, name: str):
            if len(ins) > i and ins[i] is not None:
                if isinstance(ins[i], Sym):
                    raise self.fail(node, f"expected constant {name}")
                return [int(v) for v in np.asarray(ins[i]).ravel()]
            return attrs.get(name)

        starts, ends = arg(1, "starts"), arg(2, "ends")
        axes = arg(3, "axes") or list(range(len(starts)))
        steps = arg(4, "steps") or [1] * len(starts)
        out = [slice(None)] * len(shape)
        for a, b, e, st in zip(axes, starts, ends, steps, strict=True):
            out[a % len(shape)] = slice(b, e, st)
        return tuple(out)

    def indexing(self, node, op: str, x: Sym, ins: list, attrs: dict) -> Sym:
        """Gather, Slice and Expand pick elements: the same rows, taken by index."""
        if x is None or any(isinstance(v, Sym) for v in ins[1:]):
            raise self.fail(node, "expected constant indices, sizes or shapes")
        idx = np.arange(x.n).reshape(x.shape)
        if op == "Gather":
            idx = np.take(idx, np.asarray(ins[1]).astype(np.int64), axis=int(attrs.get("axis", 0)))
        elif op == "Slice":
            idx = idx[self.slices(node, x.shape, ins, attrs)]
        else:
            idx = idx * np.ones([int(v) for v in np.asarray(ins[1]).ravel()], np.int64)
        return x.take(np.asarray(idx).ravel(), tuple(np.shape(idx)))

    def split(self, node, ins: list, attrs: dict) -> list[Sym]:
        x = ins[0]
        axis = int(attrs.get("axis", 0)) % len(x.shape)
        sizes = [int(v) for v in np.asarray(ins[1]).ravel()] if len(ins) > 1 and ins[1] is not None \
            else attrs.get("split") or [x.shape[axis] // len(node.output)] * len(node.output)
        idx = np.arange(x.n).reshape(x.shape)
        parts = np.split(idx, np.cumsum(sizes)[:-1], axis=axis)
        return [x.take(p.ravel(), tuple(p.shape)) for p in parts]

    def reduce(self, node, op: str, x: Sym, ins: list, attrs: dict) -> Sym:
        """ReduceSum and ReduceMean over constant axes: a linear map (the mean's 1/n kept as a rational)."""
        axes = attrs.get("axes")
        if axes is None and len(ins) > 1 and ins[1] is not None:
            axes = [int(v) for v in np.asarray(ins[1]).ravel()]
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(len(x.shape)))
        axes = sorted(a % len(x.shape) for a in axes)
        keep = bool(attrs.get("keepdims", 1))
        idx = np.arange(x.n).reshape(x.shape)
        moved = np.moveaxis(idx, axes, list(range(len(x.shape) - len(axes), len(x.shape))))
        groups = moved.reshape(-1, int(np.prod([x.shape[a] for a in axes])))
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else \
            tuple(d for i, d in enumerate(x.shape) if i not in axes)
        M = Csr.from_coo(np.repeat(np.arange(groups.shape[0]), groups.shape[1]), groups.ravel(),
                         np.ones(groups.size), (groups.shape[0], x.n))
        out = self.linear(x, M, np.zeros(groups.shape[0]), shape, node)
        if op == "ReduceMean":
            f = _full(out.n, Fraction(1, groups.shape[1]))
            out = replace(out, a=out.a * f, b1=out.b1 * f, b2=out.b2 * f)
        return out

    def concat(self, node, ins: list, axis: int) -> Sym:
        """Tensors (and constants) of one layer side by side: their rows stacked, then put in order."""
        syms = [v for v in ins if isinstance(v, Sym)]
        base = syms[0].base
        if any(v.base != base for v in syms):
            raise self.fail(node, "a concatenation of tensors of different layers")
        parts = [v if isinstance(v, Sym) else self.const_sym(base, np.asarray(v, np.float64)) for v in ins]
        ndim = len(parts[0].shape)
        axis %= ndim
        offsets = np.cumsum([0] + [p.n for p in parts[:-1]])
        idx = np.concatenate([np.arange(p.n).reshape(p.shape) + o for p, o in zip(parts, offsets, strict=True)],
                             axis=axis)
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        whole = Sym(base, (int(sum(p.n for p in parts)),), _stack_rows([p.A for p in parts]), cat("c"), cat("a"),
                    cat("b1"), cat("b2"), cat("r"))
        return whole.take(idx.ravel(), tuple(idx.shape))

    def matmul(self, node, op: str, ins: list, attrs: dict) -> Sym:
        x, w = ins[0], ins[1]
        if not isinstance(x, Sym) or isinstance(w, Sym):
            raise self.fail(node, "expected the network's tensor times constant weights")
        w = np.asarray(w, np.float64)
        if op == "Gemm":
            if attrs.get("transA", 0):
                raise self.fail(node, "transA is not supported")
            w = w.T if attrs.get("transB", 0) else w
            w = w * float(attrs.get("alpha", 1.0))
        if not x.shape or w.ndim != 2 or w.shape[0] != x.shape[-1] or (op == "Gemm" and len(x.shape) != 2):
            raise self.fail(node, f"expected a (..., n) tensor times an (n, m) matrix, got {x.shape} and {w.shape}")
        rows, (n, m) = int(np.prod(x.shape[:-1])), w.shape
        shape = (*x.shape[:-1], m)
        bias = np.zeros(shape)
        if op == "Gemm" and len(ins) > 2 and ins[2] is not None:
            bias = np.broadcast_to(np.asarray(ins[2], np.float64) * float(attrs.get("beta", 1.0)), shape)
        # each of the leading rows times w: block-diagonal, one block w^T per row
        i, j = np.nonzero(w)
        r = np.repeat(np.arange(rows), i.size)
        M = Csr.from_coo(r * m + np.tile(j, rows), r * n + np.tile(i, rows), np.tile(w[i, j], rows), (rows * m, x.n))
        return self.linear(x, M, np.ravel(bias), shape, node)

    def conv(self, node, ins: list, attrs: dict) -> Sym:
        """A 2-d convolution (NCHW, zero padding, strides, dilations, groups) as a sparse matrix."""
        x, K = ins[0], ins[1]
        if not isinstance(x, Sym) or isinstance(K, Sym) or len(x.shape) not in (3, 4):
            raise self.fail(node, "expected an NCHW (or NCW) tensor convolved with constant weights")
        K = np.asarray(K, np.float64)
        one_d = len(x.shape) == 3
        if one_d:  # NCW as NC1W
            x, K = replace(x, shape=(x.shape[0], x.shape[1], 1, x.shape[2])), K[:, :, None, :]
            attrs = {**attrs, **{k: [1 if k != "pads" else 0, *attrs[k]] for k in ("strides", "dilations")
                                 if k in attrs}}
            if "pads" in attrs:
                attrs["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
            if "kernel_shape" in attrs:
                attrs["kernel_shape"] = [1, *attrs["kernel_shape"]]
        _, C, H, Wd = x.shape
        O, Cg, kh, kw = K.shape
        groups = int(attrs.get("group", 1))
        sh, sw = attrs.get("strides", [1, 1])
        dh, dw = attrs.get("dilations", [1, 1])
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = _same_pads((H, Wd), (kh, kw), (sh, sw), (dh, dw), auto == "SAME_UPPER")
        elif auto not in ("NOTSET", "VALID"):
            raise self.fail(node, f"auto_pad {auto} is not supported")
        if Cg * groups != C:
            raise self.fail(node, f"weights for {Cg * groups} channels on a tensor with {C}")
        Ho = (H + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
        Wo = (Wd + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
        M = _conv_matrix(K, (C, H, Wd), (Ho, Wo), groups, (sh, sw), (dh, dw), pads, x.n)
        bias = np.zeros(O) if len(ins) < 3 or ins[2] is None else np.asarray(ins[2], np.float64)
        return self.linear(x, M, np.repeat(bias, Ho * Wo), (1, O, Wo) if one_d else (1, O, Ho, Wo), node)

    def maxpool(self, node, x: Sym, attrs: dict) -> Sym | Pooled:
        """Max over each window: of bits, one OR unit per output element; of Sign's three values -1, 0, 1, an OR
        of the [z >= t] units and an AND of the [z <= t] units; of real values, kept open until a step."""
        if len(x.shape) != 4:
            raise self.fail(node, "expected an NCHW tensor")
        _, C, H, Wd = x.shape
        kh, kw = attrs["kernel_shape"]
        sh, sw = attrs.get("strides", [1, 1])
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("dilations", [1, 1]) != [1, 1] or attrs.get("ceil_mode", 0):
            raise self.fail(node, "dilations and ceil_mode are not supported")
        Ho = (H + pads[0] + pads[2] - kh) // sh + 1
        Wo = (Wd + pads[1] + pads[3] - kw) // sw + 1
        c, yo, xo, i, j = np.meshgrid(np.arange(C), np.arange(Ho), np.arange(Wo), np.arange(kh), np.arange(kw),
                                      indexing="ij")
        yi, xi = yo * sh - pads[0] + i, xo * sw - pads[1] + j
        ok = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < Wd)
        out_idx = ((c * Ho + yo) * Wo + xo)[ok]
        in_idx = ((c * H + yi) * Wd + xi)[ok]
        shape = (1, C, Ho, Wo)
        if x.kind != "step" and not x.pointwise:
            return Pooled(x, out_idx, in_idx, shape, x.a.copy())
        return self.pool_values(node, x, out_idx, in_idx, shape)

    def pool_values(self, node, x: Sym, out_idx: np.ndarray, in_idx: np.ndarray, shape: tuple[int, ...]) -> Sym:
        """The window maxima of a step's output, as a new layer of OR (and AND) units."""
        if x.base != len(self.layers):
            raise self.fail(node, "MaxPool on bits of an earlier layer")
        n = int(np.prod(shape))
        lo_hi = self.binary_values(x)
        if lo_hi is not None:
            (lo, hi), bit_col, bit_neg = lo_hi
            # sum over the window of b_e >= 1, with b_e = u (or 1 - u for a negated element)
            neg = bit_neg[in_idx]
            W = Csr.from_coo(out_idx, bit_col[in_idx], np.where(neg, -1.0, 1.0), (n, x.A.shape[1]))
            lam = 1.0 - np.bincount(out_idx, weights=neg.astype(float), minlength=n)
            self.layers.append((W, lam))
            A = Csr.from_coo(np.arange(n), np.arange(n), np.full(n, float(hi - lo)), (n, n))
            return Sym(x.base + 1, shape, A, _full(n, lo), _full(n, F1), _full(n, F0), _full(n, F0), _full(n, F1),
                       kind="step", pointwise=True)
        three = self.ternary_values(x)
        if three is None:
            raise self.fail(node, "MaxPool on a tensor that is neither bits nor Sign's -1, 0, 1 of one layer")
        (v01, v11, v10), p_col, w_col, w_neg = three
        # max_i v(p_i, w_i) = v01 + (v11 - v01) OR_i p_i + (v10 - v11) (1 - AND_i w_i)   (p_i >= 1 - w_i)
        size = np.bincount(out_idx, minlength=n).astype(float)
        neg = w_neg[in_idx]  # w = 1 - p: the AND row reads -p and its threshold drops by one
        W = _stack_rows([Csr.from_coo(out_idx, p_col[in_idx], np.ones(in_idx.size), (n, x.A.shape[1])),
                         Csr.from_coo(out_idx, w_col[in_idx], np.where(neg, -1.0, 1.0), (n, x.A.shape[1]))])
        and_lam = size - np.bincount(out_idx, weights=neg.astype(float), minlength=n)
        self.layers.append((W, np.concatenate([np.ones(n), and_lam])))
        coefs = (v11 - v01, -(v10 - v11))
        if any(Fraction(float(v)) != v for v in coefs):
            raise self.fail(node, "MaxPool of values whose differences are not doubles")
        A = Csr.from_coo(np.concatenate([np.arange(n), np.arange(n)]), np.arange(2 * n),
                         np.concatenate([np.full(n, float(coefs[0])), np.full(n, float(coefs[1]))]), (n, 2 * n))
        return Sym(x.base + 1, shape, A, _full(n, v01 + v10 - v11), _full(n, F1), _full(n, F0), _full(n, F0),
                   _full(n, F1), kind="step")

    def ternary_values(self, x: Sym):
        """((v01, v11, v10), p columns, w columns, w negated) when every element is the same increasing function of
        a Sign's units: p = [z >= t] and w = [z <= t] where the tie z = t is reachable, v01 (z < t) <= v11 (z = t)
        <= v10 (z > t); where it is not, p alone, with w = 1 - p."""
        if x.base == 0 or not x.rational() or np.any(np.diff(x.A.indptr) > 2):
            return None
        low_high, ties, p_col, w_col, w_neg = set(), set(), [], [], []
        for k in range(x.n):
            cols, vals = x.A.row(k)
            fv = [Fraction(float(v)) for v in vals]

            def val(bits: tuple[int, ...], k=k, fv=fv) -> Fraction:
                return x.a[k] * (sum((f * b for f, b in zip(fv, bits, strict=True)), F0) + x.c[k]) + x.b2[k] \
                    + x.b1[k]

            if cols.size == 2 and self.pair(cols):
                low_high.add((val((0, 1)), val((1, 0))))
                ties.add(val((1, 1)))
                p_col.append(int(cols[0])), w_col.append(int(cols[1])), w_neg.append(False)
            elif cols.size == 1 and val((1,)) > val((0,)):
                low_high.add((val((0,)), val((1,))))
                p_col.append(int(cols[0])), w_col.append(int(cols[0])), w_neg.append(True)
            else:
                return None
        if len(low_high) != 1 or len(ties) > 1:
            return None
        lo, hi = low_high.pop()
        tie = ties.pop() if ties else lo
        if not lo <= tie <= hi:
            return None
        return (lo, tie, hi), np.array(p_col, np.int64), np.array(w_col, np.int64), np.array(w_neg)

    def binary_values(self, x: Sym):
        """((lo, hi), column, negated) when every element is lo + (hi - lo) b with b a unit or its complement."""
        if x.base == 0 or not x.rational() or np.any(np.diff(x.A.indptr) != 1):
            return None
        vals = x.A.data
        seen: dict = {}
        neg = np.empty(x.n, bool)
        for k in range(x.n):
            key = (*((f.numerator, f.denominator) for f in (x.a[k], x.c[k], x.b2[k], x.b1[k])), float(vals[k]))
            if key not in seen:  # by value as integers (hashing a Fraction is slow)
                v0 = x.a[k] * x.c[k] + x.b2[k] + x.b1[k]
                v1 = v0 + x.a[k] * Fraction(key[4])
                seen[key] = (min(v0, v1), max(v0, v1), v1 < v0)
            neg[k] = seen[key][2]
        if len({v[:2] for v in seen.values()}) != 1:
            return None
        lo, hi, _ = next(iter(seen.values()))
        return (lo, hi), x.A.indices, neg

    # ---- output ----------------------------------------------------------------------------------------
    def finish(self, out: Sym, argmax: bool) -> Network:
        rep = self.report
        if out.kind == "step" and not argmax:
            return self.bits_output(out)
        # argmax of T_k = a_k (z_k + c_k) + b_k: a common positive a is divided out
        if not out.rational():
            raise ModelFileError(self.path, "graph.output", "the scores are batch-normalised (an irrational "
                                                            "scale): argmax cannot be kept exact")
        a = set(out.a.tolist())
        if len(a) != 1 or not a.pop() > 0:
            raise ModelFileError(self.path, "graph.output", "the scores have different or negative scales per "
                                                            "class: argmax cannot be kept exact")
        if out.base != len(self.layers):
            raise ModelFileError(self.path, "graph.output", "the scores use bits of an earlier layer")
        a0 = out.a[0]
        lam_exact = [-(c + (b1 + b2) / a0) for c, b1, b2 in zip(out.c, out.b1, out.b2, strict=True)]
        lam = np.array([float(v) for v in lam_exact])
        if any(Fraction(v) != e for v, e in zip(lam.tolist(), lam_exact, strict=True)):
            raise ModelFileError(self.path, "graph.output", "output thresholds are not exact in doubles")
        self.layers.append((out.A, lam))
        rep.output = "argmax"
        return self.network()

    def bits_output(self, out: Sym) -> Network:
        """Output bits: the last layer itself when the output is its units in order, else one more layer."""
        W, _ = self.layers[-1]
        A = out.A
        same = (A.shape[0] == W.shape[0] and A.nnz == A.shape[0] and np.array_equal(A.indices, np.arange(A.nnz))
                and np.all(A.data > 0))
        if not same:
            # a selection layer: output k is [value_k >= midpoint] of its one unit
            if np.any(np.diff(A.indptr) > 1):
                raise ModelFileError(self.path, "graph.output", "output elements that are not single bits")
            rows, lam = [], []
            for k in range(A.shape[0]):
                cols, vals = A.row(k)
                lo = out.a[k] * out.c[k] + out.b2[k] + out.b1[k]
                if cols.size == 0:
                    rows.append(Csr((1, W.shape[0]), np.zeros(2, np.int64), np.zeros(0, np.int64), np.zeros(0)))
                    lam.append(0.0 if lo > 0 else 1.0)
                    continue
                hi = lo + out.a[k] * Fraction(float(vals[0]))
                up = hi > lo
                rows.append(Csr((1, W.shape[0]), np.array([0, 1]), cols.copy(), np.array([1.0 if up else -1.0])))
                lam.append(1.0 if up else 0.0)
            self.layers.append((_stack(rows, W.shape[0]), np.array(lam)))
            self.report.notes.append("output bits u_k = 1 where the model's output is the larger of its two values")
        return self.network()

    def drop_unused_strict_units(self) -> None:
        """A Sign's second unit [z > t] that nothing reads (Larq's Sign(Sign(x) + c) needs only [z >= t]) is
        removed, with its column in the next layer."""
        kept = 0
        for l, units in self.strict_units.items():
            W, lam = self.layers[l]
            if l + 1 >= len(self.layers):
                kept += len(units)
                continue
            nxt, nlam = self.layers[l + 1]
            used = np.zeros(W.shape[0], bool)
            used[nxt.indices] = True
            drop = np.array([u for u in units if not used[u]], np.int64)
            kept += len(units) - drop.size
            if drop.size:
                keep = np.setdiff1d(np.arange(W.shape[0]), drop)
                self.layers[l] = (W.take_rows(keep), np.asarray(lam)[keep])
                self.layers[l + 1] = (_drop_columns(nxt, drop), nlam)
        self.report.two_unit_signs = kept

    def network(self) -> Network:
        self.drop_unused_strict_units()
        net = Network([compact(W) for W, _ in self.layers], [np.asarray(lam, np.float64) for _, lam in self.layers])
        self.report.layers = net.layers
        return net


def _sorted_rows(M: Csr) -> Csr:
    """The same matrix with the columns of each row in increasing order."""
    key = M.row_of * np.int64(M.shape[1]) + M.indices
    order = np.argsort(key, kind="stable")
    del key
    return Csr(M.shape, M.indptr, M.indices[order], M.data[order])


def _row_sums(values: np.ndarray, indptr: np.ndarray, f=None, block: int = 1 << 22) -> np.ndarray:
    """Per CSR row, the sum of its values (of f(values), taken a block of rows at a time: no full-size
    temporaries), 0 for an empty row."""
    n = indptr.size - 1
    out = np.zeros(n)
    r0 = 0
    while r0 < n:
        r1 = int(np.searchsorted(indptr, indptr[r0] + block, side="right")) - 1
        r1 = min(max(r1, r0 + 1), n)
        lo, hi = int(indptr[r0]), int(indptr[r1])
        if hi > lo:
            part = values[lo:hi] if f is None else f(values[lo:hi])
            starts = np.minimum(indptr[r0:r1] - lo, hi - lo - 1)
            out[r0:r1] = np.where(np.diff(indptr[r0:r1 + 1]) > 0, np.add.reduceat(part, starts), 0.0)
        r0 = r1
    return out


def _conv_matrix(K: np.ndarray, in_shape: tuple[int, int, int], out_shape: tuple[int, int], groups: int,
                 stride: tuple[int, int], dilation: tuple[int, int], pads: list[int], width: int) -> Csr:
    """A convolution as a sparse matrix, built row by row in order: the entries of output (o, y, x) come out of
    the index arithmetic sorted by input channel, then row, then column, so no sort is needed. int32 indices
    while they are built: a 64-filter 5x5 layer has 16 million entries."""
    _, H, Wd = in_shape
    Ho, Wo = out_shape
    O, Cg, kh, kw = K.shape
    per = O // groups
    yi = (np.arange(Ho, dtype=np.int32)[:, None] * stride[0] - pads[0]
          + np.arange(kh, dtype=np.int32)[None, :] * dilation[0])  # (Ho, kh)
    xi = (np.arange(Wo, dtype=np.int32)[:, None] * stride[1] - pads[1]
          + np.arange(kw, dtype=np.int32)[None, :] * dilation[1])  # (Wo, kw)
    # one output position's entries, as (Ho, Wo, Cg, kh, kw) offsets within a group of input channels
    ok = ((yi >= 0) & (yi < H))[:, None, None, :, None] & ((xi >= 0) & (xi < Wd))[None, :, None, None, :]
    ok = np.broadcast_to(ok, (Ho, Wo, Cg, kh, kw))
    pos = ((np.arange(Cg, dtype=np.int64)[None, None, :, None, None] * H + yi[:, None, None, :, None]) * Wd
           + xi[None, :, None, None, :])
    pos = np.broadcast_to(pos, ok.shape)[ok]  # per (o's group), entries of all Ho*Wo rows, in row order
    tap = np.broadcast_to(np.arange(Cg * kh * kw).reshape(1, 1, Cg, kh, kw), ok.shape)[ok]
    per_row = ok.reshape(Ho * Wo, -1).sum(axis=1)
    flatK = K.reshape(O, -1)
    cols_a = np.empty(O * pos.size, np.int64)
    data_a = np.empty(O * pos.size, np.float64)
    for o in range(O):
        cols_a[o * pos.size:(o + 1) * pos.size] = pos + (o // per) * Cg * H * Wd
        data_a[o * pos.size:(o + 1) * pos.size] = flatK[o][tap]
    counts = np.tile(per_row, O)
    keep = data_a != 0
    if not keep.all():
        counts = np.bincount(np.repeat(np.arange(O * Ho * Wo), counts)[keep], minlength=O * Ho * Wo)
        cols_a, data_a = cols_a[keep], data_a[keep]
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Csr((O * Ho * Wo, width), indptr, cols_a, data_a)


def _same_pads(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
               upper: bool) -> list[int]:
    """ONNX's SAME_UPPER / SAME_LOWER padding: output size ceil(in / stride), the odd pixel at the end (upper)."""
    begin, end = [], []
    for n, k, st, d in zip(size, kernel, stride, dilation, strict=True):
        total = max((-(-n // st) - 1) * st + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if upper else big)
        end.append(big if upper else small)
    return [*begin, *end]


def _stack_rows(parts: list[Csr]) -> Csr:
    """Matrices of one width, one under the other."""
    counts = np.concatenate([np.diff(p.indptr) for p in parts])
    return Csr((int(sum(p.shape[0] for p in parts)), parts[0].shape[1]),
               np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
               np.concatenate([p.indices for p in parts]).astype(np.int64), np.concatenate([p.data for p in parts]))


def _drop_columns(W: Csr, drop: np.ndarray) -> Csr:
    keep = np.ones(W.shape[1], bool)
    keep[drop] = False
    new_col = np.cumsum(keep) - 1
    if np.any(~keep[W.indices]):
        raise AssertionError("dropping a used column")
    return Csr((W.shape[0], int(keep.sum())), W.indptr, new_col[W.indices], W.data)


def _stack(rows: list[Csr], width: int) -> Csr:
    counts = np.array([r.nnz for r in rows], np.int64)
    return Csr((len(rows), width), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
               np.concatenate([r.indices for r in rows]).astype(np.int64) if rows else np.zeros(0, np.int64),
               np.concatenate([r.data for r in rows]) if rows else np.zeros(0))


@dataclass
class AffineOutput:
    """The model's output exactly (flattened in C order): Y_k = sqrt(r_k) (a_k M_k v + c_k) + b_k, v the bits of
    the last step layer of ``hidden`` (or the model input when ``hidden`` is None); r_k = 1 and b_k = 0 except
    after a batch norm whose sqrt(var + eps) is irrational. What a query on the raw outputs needs."""

    hidden: Network | None
    M: Csr  # exact in doubles
    a: np.ndarray  # rationals (Fractions): each row's scale
    c: np.ndarray  # rationals
    root: np.ndarray  # rationals r_k
    outer: np.ndarray  # rationals b_k
    shape: tuple[int, ...]
    report: OnnxReport

    def exact(self, v: list[Fraction]) -> list:
        """Y at the basis values v: a Fraction per element, or {r: c} for sqrt(r) (M_k v + c_k) + b_k."""
        out: list = []
        dots = self._integer_dots(v)
        for k in range(self.M.shape[0]):
            if dots is not None:
                dot = Fraction(int(dots[k]))
            else:
                cols, vals = self.M.row(k)
                dot = sum((Fraction(float(w)) * v[j] for j, w in zip(cols.tolist(), vals.tolist(), strict=True)),
                          Fraction(0))
            p = self.c[k] + self.a[k] * dot
            out.append(p if self.root[k] == 1 else {Fraction(1): self.outer[k], self.root[k]: p})
        return out

    def _integer_dots(self, v: list[Fraction]) -> np.ndarray | None:
        """M v in integers when M and v are integers small enough for exact sums in doubles (bits times +-1
        weights), else None."""
        if any(f.denominator != 1 for f in v):
            return None
        vi = np.array([int(f) for f in v], dtype=np.float64)
        if not small_integers(self.M.data, vi) or self.M.nnz * float(np.abs(self.M.data).max(initial=0)) \
                * float(np.abs(vi).max(initial=0)) >= 2.0**53:
            return None
        return self.M.matmul_t(vi[None, :])[0]

    def float_map(self) -> tuple[Csr, np.ndarray]:
        """(M', c') with Y ~ M' v + c' in doubles (for searches and the MILP; never for a verdict)."""
        s = np.sqrt(np.array([float(r) for r in self.root]))
        c = s * np.array([float(v) for v in self.c]) + np.array([float(v) for v in self.outer])
        scale = s * np.array([float(v) for v in self.a])
        return self.M.with_data(self.M.data * scale[self.M.row_of]), c


def _affine_output(imp: _Importer, out: Sym | np.ndarray) -> AffineOutput:
    """Y_k = sqrt(r_k) (a_k (A_k v + c_k) + b2_k) + b1_k."""
    if not isinstance(out, Sym):
        out = imp.const_sym(len(imp.layers), np.asarray(out, np.float64))
    if out.kind == "scores":
        raise ModelFileError(imp.path, "graph.output", "a Softmax output: its values are not linear in the bits "
                                                       "(a query on the logits or the class can be answered)")
    if out.base != len(imp.layers):
        raise ModelFileError(imp.path, "graph.output", "the output uses bits of an earlier layer")
    rational = np.array([r == 1 for r in out.r])
    c = out.a * out.c + out.b2 + np.where(rational, out.b1, _full(out.n, F0))
    outer = np.where(rational, _full(out.n, F0), out.b1)
    hidden = imp.network() if imp.layers else None
    return AffineOutput(hidden, out.A, out.a.copy(), c, out.r.copy(), outer, tuple(out.shape), imp.report)


def _read_onnx(path: str | Path):
    try:
        import onnx
    except ImportError:
        raise ModelFileError(str(path), None, "reading ONNX needs the onnx package: pip install onnx") from None
    p = Path(path)
    try:
        model = onnx.load(str(p))
    except FileNotFoundError:
        raise ModelFileError(str(p), None, "file not found") from None
    except Exception:  # protobuf raises its own DecodeError
        raise ModelFileError(str(p), None, "not an ONNX model") from None
    return model


def load_onnx(path: str | Path, integer_inputs: bool = False) -> tuple[Network, OnnxReport]:
    """An ONNX BNN as a bnnmilp network (see the module docstring); ``integer_inputs``: thresholds of the first
    layer may be moved to the integer lattice (valid only for integer inputs)."""
    imp = _Importer(str(path), integer_inputs)
    net = imp.run(_read_onnx(path))[0]
    return net, imp.report


def load_onnx_affine(path: str | Path, integer_inputs: bool = False,
                     input_shape: tuple[int, ...] | None = None) -> AffineOutput:
    """An ONNX model whose output is an affine function of its last step layer's bits (or of its input, for a
    network with no step): the hidden step layers as a Network and the output map, both exact. ``input_shape``:
    the input's shape as a query declares it (batch dimension included)."""
    imp = _Importer(str(path), integer_inputs, input_shape)
    out, _ = imp.evaluate(_read_onnx(path))
    return _affine_output(imp, out)
