"""Answering a VNN-LIB query on an ONNX model: sat (with a point replayed exactly and in onnxruntime), unsat,
unknown or timed-out.

Stages, sharing one deadline:

1. the model imported exactly (``load_onnx_affine``: step layers, and the output as an affine map of the last
   layer's bits or of the input), kept by the file's hash in the process and on disk (``io/importers/cache.py``);
2. a falsifier: the box's centre, corners and random points, screened in floating point and replayed exactly;
3. one MILP for the whole query (``formulations.linear_query``: all disjuncts in one model, one selector
   each), maximising the smallest slack: its point is replayed exactly; its proven optimum below zero is unsat.

What is proven and what is reported: a ``sat`` point satisfies every assertion in exact rational arithmetic
on the imported network (which equals the ONNX graph's real-valued semantics except inside [t, lambda) of a
threshold rounded up to a double, counted in ``rounded``) and, where onnxruntime is installed, in the model's
own floating point within ``ORT_TOLERANCE``. An ``unsat`` rests on HiGHS's proof in floating point (with its
tolerances) that no point satisfies the constraints with a slack above -``UNSAT_MARGIN``: reported, not
re-proven.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from bnnmilp.errors import ModelFileError, QueryError
from bnnmilp.formulations.linear_query import LinearQuery, Row
from bnnmilp.formulations.registry import get
from bnnmilp.formulations.robustness import on_lattice
from bnnmilp.io.importers.onnx import AffineOutput, load_onnx_affine
from bnnmilp.io.vnnlib import Linear, Query
from bnnmilp.milp.backends import highs
from bnnmilp.milp.backends.base import SolveOptions
from bnnmilp.verification.robustness.patterns import no_pattern_meets

UNSAT_MARGIN = 1e-6  # normalised slack below which the solver's optimum counts as unsat
ORT_TOLERANCE = 1e-4  # onnxruntime's float32 outputs may miss a constraint by this much (relative)
SAMPLES = 256
SEARCH_SHARE = 0.25  # of the time limit for attacks and sampling before the MILP
SEARCH_ROUNDS = 3  # rounds of them, at most, where the MILP is the likelier way to an answer (not LARGE)
LARGE_SEARCH_SHARE = 0.8  # where the MILP has more than LARGE step units (a 48x48 or 64x64 conv BNN), which
LARGE = 50_000  # HiGHS does not settle within a minute: the search is the likelier way to an answer
FEW_FREE = 4_000  # step units the box leaves free (interval arithmetic), below which the MILP over them takes
# seconds (30x30 conv BNNs at eps <= 1: 2,000-3,500 free units, 2-4 s): one round of search, then the MILP
ATTACK_NNZ = 10_000_000  # weights beyond which a gradient step costs more than a round of sampling finds
_CACHE: dict[tuple, AffineOutput] = {}


@dataclass
class Answer:
    result: str  # sat | unsat | unknown | timed-out
    method: str = ""
    time_s: float = 0.0
    x: np.ndarray | None = None  # the satisfying input (flattened), when sat
    y: list | None = None  # its exact outputs (Fractions, or {r: c} sums of surds)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"result": self.result, "method": self.method, "time_s": round(self.time_s, 4),
                "x": None if self.x is None else self.x.tolist(),
                "y": None if self.y is None else [exact_float(v) for v in self.y], "notes": self.notes}


def exact_float(v) -> float:
    """The double nearest an exact output (a Fraction, or a sum {r: c} of c sqrt(r))."""
    if isinstance(v, dict):
        return float(sum(float(c) * float(r) ** 0.5 for r, c in v.items()))
    return float(v)


def model_for(path: str | Path, integer: bool, shape: tuple[int, ...] | None) -> AffineOutput:
    """The imported model, once per file content (the VNN-COMP harness asks many queries of one model)."""
    from bnnmilp.io.importers.cache import cached

    try:
        key = (hashlib.sha256(Path(path).read_bytes()).hexdigest(), integer, shape)
    except FileNotFoundError:
        raise ModelFileError(str(path), None, "file not found") from None
    if key not in _CACHE:  # in this process, else on disk (io/importers/cache.py), else imported
        _CACHE[key] = cached(key[0], ("onnx_affine", integer, shape),
                             lambda: load_onnx_affine(path, integer_inputs=integer, input_shape=shape))
    return _CACHE[key]


# ---- the query in numbers ----------------------------------------------------------------------------------
@dataclass
class Problem:
    query: Query
    model: AffineOutput
    lo: np.ndarray  # the box as doubles inside the query's bounds (candidates are drawn from it)
    hi: np.ndarray
    outer_lo: np.ndarray  # the box as doubles around the query's bounds (the MILP's relaxation)
    outer_hi: np.ndarray
    M: object  # the output map in doubles (Csr): Y ~ M v + c
    c: np.ndarray

    @property
    def dtype(self):
        return np.float32 if self.query.input.dtype in ("float32", "float16", "bfloat16") else np.float64


def problem(query: Query, model: AffineOutput) -> Problem:
    n = query.input.size
    width = model.hidden.layers[0] if model.hidden is not None else model.M.shape[1]
    if width != n:
        raise QueryError(query.path, f"input {query.input.name}", f"{n} elements declared; the model takes "
                                                                  f"{model.report.layers[0]}")
    if model.M.shape[0] != query.output.size:
        raise QueryError(query.path, f"output {query.output.name}", f"{query.output.size} elements declared; the "
                                                                    f"model gives {model.M.shape[0]}")
    in_lo, in_hi = query.box.limits(n, inner=True)
    out_lo, out_hi = query.box.limits(n, inner=False)
    finite = np.isfinite(out_lo) & np.isfinite(out_hi)
    if not finite.all():
        i = int(np.argmin(finite))
        raise QueryError(query.path, f"input {query.input.name}", f"element {i} has no finite lower and upper "
                                                                  "bound (bnnmilp needs a bounded input box)")
    M, c = model.float_map()
    return Problem(query, model, in_lo, in_hi, out_lo, out_hi, M, c)


def to_dtype(p: Problem, x: np.ndarray) -> np.ndarray:
    """The point in the input's element type (float32 for float32 inputs), moved into the box if rounding left it."""
    x = np.clip(np.asarray(x, np.float64), p.lo, p.hi)
    if p.dtype is np.float64:
        return x
    x32 = x.astype(np.float32)
    low, high = x32.astype(np.float64) < p.lo, x32.astype(np.float64) > p.hi
    x32[low] = np.nextafter(x32[low], np.float32(np.inf))
    x32[high] = np.nextafter(x32[high], np.float32(-np.inf))
    return x32.astype(np.float64)


# ---- exact replay ------------------------------------------------------------------------------------------
def outputs_exact(model: AffineOutput, x: np.ndarray) -> list:
    """Y exactly, from the exact bits of the last step layer (or x itself)."""
    if model.hidden is None:
        return model.exact([Fraction(float(e)) for e in x])
    return model.exact([Fraction(int(b)) for b in model.hidden.forward(x[None, :])[-1][0]])


def replay(p: Problem, x: np.ndarray) -> list | None:
    """The exact outputs at x when x satisfies the whole query exactly, else None."""
    y = outputs_exact(p.model, x)
    return y if p.query.holds_at(np.asarray(x, np.float64), y) else None


def outputs_float(p: Problem, X: np.ndarray) -> np.ndarray:
    """Y in floating point (bits decided in doubles without the exact fallback): only steers searches."""
    from bnnmilp.network.sparse import matmul_t

    V = X
    if p.model.hidden is not None:
        for W, lam in zip(p.model.hidden.weights, p.model.hidden.thresholds, strict=True):
            V = (matmul_t(V, W) - lam >= 0).astype(np.float64)
    return p.M.matmul_t(V) + p.c


def _value(lin: Linear, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    v = np.full(X.shape[0], float(lin.const))
    for (k, i), a in lin.coefs:
        v += float(a) * (X[:, i] if k == "x" else Y[:, i])
    return v


def screen(p: Problem, X: np.ndarray, Y: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Rows of X whose outputs Y satisfy the query in floating point (within tol): worth an exact replay."""
    ok = p.query.box.holds(X)
    for a in p.query.others:
        some = np.zeros(X.shape[0], bool)
        for conj in a:
            every = np.ones(X.shape[0], bool)
            for lin in conj:
                v = _value(lin, X, Y)
                every &= np.abs(v) <= tol if lin.sense == "==" else v <= tol
            some |= every
        ok &= some
    return ok


# ---- onnxruntime ---------------------------------------------------------------------------------------------
def ort_check(p: Problem, model_path: str | Path, x: np.ndarray) -> str | None:
    """None when onnxruntime's outputs at x satisfy the query within ORT_TOLERANCE (or onnxruntime is not
    installed: then a note says so); else what failed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "skipped: onnxruntime is not installed"
    sess = ort.InferenceSession(str(model_path))
    inp = sess.get_inputs()[0]
    dtype = np.float64 if "double" in inp.type else np.float32
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    if int(np.prod(shape)) != x.size:
        shape = list(p.query.input.shape)
    y = np.asarray(sess.run(None, {inp.name: x.reshape(shape).astype(dtype)})[0], np.float64).ravel()
    if y.size != p.query.output.size:
        return f"onnxruntime gives {y.size} outputs, the query declares {p.query.output.size}"
    scale = 1.0 + float(np.abs(y).max(initial=0.0))
    if not screen(p, x[None, :], y[None, :], ORT_TOLERANCE * scale)[0]:
        return "onnxruntime's outputs at the point do not satisfy the query"
    return None


# ---- the search --------------------------------------------------------------------------------------------
def falsify(p: Problem, rng: np.random.Generator, deadline: float | None, rounds: int | None = 1
            ) -> np.ndarray | None:
    """Centre, corners and random points of the box, screened in floating point, replayed exactly: ``rounds``
    rounds of SAMPLES points (None: until the deadline; a box's corners are the likeliest points to change
    a step network's bits, so half are corners)."""
    n = p.lo.size
    k = 0
    while rounds is None or k < rounds:
        half = SAMPLES // 2
        pts = np.vstack([(p.lo + p.hi) / 2, p.lo, p.hi, np.where(rng.random((half, n)) < 0.5, p.lo, p.hi),
                         p.lo + rng.random((half, n)) * (p.hi - p.lo)])
        for chunk in _growing(pts):
            if deadline is not None and time.perf_counter() > deadline:
                return None
            X = np.vstack([to_dtype(p, x) for x in chunk])
            for i in np.nonzero(screen(p, X, outputs_float(p, X)))[0]:
                if replay(p, X[i]) is not None:
                    return X[i]
        k += 1
        if deadline is None and rounds is None:
            return None
    return None


def _growing(pts: np.ndarray, first: int = 4, most: int = 64) -> list[np.ndarray]:
    """The rows in chunks of first, 2 first, ... up to ``most``: where many points satisfy the query (a wide
    box) the first few find one without the cost of a full batch through a large network."""
    out, start, size = [], 0, first
    while start < pts.shape[0]:
        out.append(pts[start:start + size])
        start, size = start + size, min(2 * size, most)
    return out


# ---- an attack through the network with straight-through gradients ------------------------------------------
@dataclass
class Score:
    """The query's slack in floating point: min over assertions of max over disjuncts of min over constraints of
    -value / scale (>= 0 where every assertion holds), with the active constraint's coefficients per point."""

    parts: list  # per assertion (not a bound of the box): per disjunct, per constraint (y dense, x dense, c, eq)

    @classmethod
    def of(cls, p: Problem) -> Score:
        parts = []
        m, n = p.query.output.size, p.query.input.size
        for a in p.query.others:  # the box's bounds are kept by clipping to it
            disj = []
            for conj in a:
                cons = []
                for lin in conj:
                    gy, gx = np.zeros(m), np.zeros(n)
                    for (k, i), coef in lin.coefs:
                        (gy if k == "y" else gx)[i] += float(coef)
                    sc = max(np.abs(gy).max(initial=0), np.abs(gx).max(initial=0)) or 1.0
                    cons.append((gy / sc, gx / sc, float(lin.const) / sc, lin.sense == "=="))
                disj.append(cons)
            parts.append(disj)
        return cls(parts)

    def __call__(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(slack per point, d slack / d Y, d slack / d X) at the active constraint."""
        B = X.shape[0]
        total = np.full(B, np.inf)
        gy_t, gx_t = np.zeros_like(Y), np.zeros_like(X)
        for disj in self.parts:
            best = np.full(B, -np.inf)
            gy_b, gx_b = np.zeros_like(Y), np.zeros_like(X)
            for cons in disj:
                worst = np.full(B, np.inf)
                gy_w, gx_w = np.zeros_like(Y), np.zeros_like(X)
                for gy, gx, c, eq in cons:
                    v = Y @ gy + X @ gx + c
                    slack, sign = (-np.abs(v), -np.sign(v)) if eq else (-v, -np.ones(B))
                    pick = slack < worst
                    worst = np.where(pick, slack, worst)
                    gy_w[pick], gx_w[pick] = sign[pick, None] * gy, sign[pick, None] * gx
                pick = worst > best
                best = np.where(pick, worst, best)
                gy_b[pick], gx_b[pick] = gy_w[pick], gx_w[pick]
            pick = best < total
            total = np.where(pick, best, total)
            gy_t[pick], gx_t[pick] = gy_b[pick], gx_b[pick]
        return total, gy_t, gx_t


def _back(G: np.ndarray, W) -> np.ndarray:
    """G @ W for a dense or sparse layer, from the rows G touches."""
    from bnnmilp.network.sparse import is_sparse

    if not is_sparse(W):
        return G @ W
    out = np.zeros((G.shape[0], W.shape[1]))
    for b in range(G.shape[0]):
        rows = np.nonzero(G[b])[0]
        if rows.size:
            sub = W.take_rows(rows)
            out[b] = np.bincount(sub.indices, weights=sub.data * np.repeat(G[b, rows], np.diff(sub.indptr)),
                                 minlength=W.shape[1])
    return out


def ste_attack(p: Problem, score: Score, rng: np.random.Generator, deadline: float | None, starts: int = 8,
               steps: int = 12) -> np.ndarray | None:
    """Signed steps along straight-through gradients of the query's slack (each step function's derivative
    taken as 1 within the middle half of its pre-activations' spread), from the box's centre and random
    corners; every point whose slack is not negative in floating point is replayed exactly."""
    from bnnmilp.network.sparse import matmul_t

    net = p.model.hidden
    if net is None or not score.parts:
        return None
    n = p.lo.size
    X = np.vstack([(p.lo + p.hi) / 2, np.where(rng.random((starts - 1, n)) < 0.5, p.lo, p.hi)])
    alpha = (p.hi - p.lo) / 2
    for _ in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            return None
        X = np.vstack([to_dtype(p, x) for x in X])
        acts, inp = [], X
        for W, lam in zip(net.weights, net.thresholds, strict=True):
            a = matmul_t(inp, W) - lam
            acts.append(a)
            inp = (a >= 0).astype(np.float64)
        slack, gy, gx = score(X, p.M.matmul_t(inp) + p.c)
        for i in np.argsort(-slack):
            if slack[i] < -1e-9:
                break
            if replay(p, X[i]) is not None:
                return X[i]
        G = _back(gy, p.M)  # d slack / d bits of the last layer
        for (W, _), a in zip(reversed(list(zip(net.weights, net.thresholds, strict=True))), reversed(acts),
                             strict=True):
            width = np.median(np.abs(a), axis=1, keepdims=True) + 1e-12
            G = _back(G * (np.abs(a) <= width), W)
        X = np.clip(X + alpha * np.sign(G + gx), p.lo, p.hi)
        alpha = alpha * 0.6
    return None


def _row(p: Problem, lin: Linear) -> Row:
    """A constraint over x and y as a row over x and the output basis v (y = M v + c), in doubles (each
    coefficient summed in the order of the constraint's terms)."""
    x_idx, x_val, v_idx, v_val = [], [], [], []
    const = float(lin.const)
    for (k, i), a in lin.coefs:
        if k == "x":
            x_idx.append(np.array([i], np.int64))
            x_val.append(np.array([float(a)]))
            continue
        cols, vals = p.M.row(i)
        v_idx.append(cols)
        v_val.append(float(a) * vals)
        const += float(a) * p.c[i]
    return Row(*_summed(x_idx, x_val), *_summed(v_idx, v_val), const, lin.sense)


def _summed(idx: list[np.ndarray], val: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct indices, the sum of their values) of the concatenated pieces."""
    if not idx:
        return np.zeros(0, np.int64), np.zeros(0)
    cols, inverse = np.unique(np.concatenate(idx), return_inverse=True)
    return cols.astype(np.int64), np.bincount(inverse, weights=np.concatenate(val), minlength=cols.size)


def on_bit_lattice(p: Problem, lin: Linear, row: Row) -> Row:
    """A constraint on outputs only, over bits, as the exact non-strict row on the lattice its values lie on:
    with rational coefficients b on bits (dyadic, denominators 2^k), b.v lies in 2^-k Z, so b.v + c < 0 iff
    b.v <= 2^-k (ceil(-c 2^k) - 1), and b.v + c <= 0 iff b.v <= 2^-k floor(-c 2^k). The MILP's optimum then
    decides a strict constraint that can only just fail (slack exactly 0) instead of leaving it open."""
    m = p.model
    if m.hidden is None or lin.sense == "==" or "x" in lin.kinds() or row.v_idx.size == 0:
        return row
    if any(m.root[i] != 1 for (_, i), _ in lin.coefs):
        return row
    exact = dyadic_combination(m.M, [i for (_, i), _ in lin.coefs], [a * m.a[i] for (_, i), a in lin.coefs])
    if exact is None:
        return row
    idx, num, shift = exact  # coefficient j: num_j / 2^shift, exactly
    const = lin.const + sum((a * m.c[i] for (_, i), a in lin.coefs), Fraction(0))
    nz = num[num != 0]
    if nz.size == 0:
        return row
    low = int(_trailing_zeros(nz).min())
    den = 1 << max(shift - low, 0)  # the largest reduced denominator
    if den > 2**20 or np.any(np.abs(nz) >> _trailing_zeros(nz) >= 2**53):
        return row
    g = Fraction(1, den)
    top = (math.ceil(-const / g) - 1) if lin.sense == "<" else math.floor(-const / g)
    vals = np.ldexp(num.astype(np.float64), -shift)
    if not np.array_equal(np.ldexp(vals, shift), num.astype(np.float64)) or Fraction(float(top * g)) != top * g:
        return row  # a coefficient below the doubles' range
    return Row(np.zeros(0, np.int64), np.zeros(0), idx, vals, -float(top * g), "<=")


def _trailing_zeros(a: np.ndarray) -> np.ndarray:
    """The exponent of 2 in each non-zero int64."""
    low = a & -a
    return np.round(np.log2(np.abs(low).astype(np.float64))).astype(np.int64)


def dyadic_combination(M, rows: list[int], factors: list[Fraction]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """sum_r factors[r] M[rows[r]] exactly, as (columns, integer numerators, shift): entry j is
    num_j / 2^shift. None where a factor is not dyadic or the integers would not fit in 62 bits."""
    if any(f.denominator & (f.denominator - 1) for f in factors):
        return None
    pieces = [M.row(i) for i in rows]
    vals = np.concatenate([v for _, v in pieces]) if pieces else np.zeros(0)
    if vals.size == 0 or not np.all(np.isfinite(vals)):
        return None
    nzv = vals[vals != 0]
    if nzv.size == 0:
        return None
    mant, ex = np.frexp(nzv)
    ints = np.ldexp(mant, 53).astype(np.int64)  # |value| = ints 2^(ex - 53), exactly
    e = int((ex - 53 + _trailing_zeros(ints)).min())  # every value is an integer times 2^e
    K = max(f.denominator.bit_length() - 1 for f in factors)
    scaled = [int(f.numerator) << (K - (f.denominator.bit_length() - 1)) for f in factors]
    q = [np.ldexp(v, -e) for _, v in pieces]  # integers, exactly (a power-of-two scaling)
    bound = sum(abs(s) * float(np.abs(qi).max(initial=0.0)) for s, qi in zip(scaled, q, strict=True))
    if bound >= 2.0**62 or any(abs(s) >= 2**62 for s in scaled):
        return None
    cols, inverse = np.unique(np.concatenate([c for c, _ in pieces]), return_inverse=True)
    num = np.zeros(cols.size, np.int64)
    np.add.at(num, inverse, np.concatenate([s * qi.astype(np.int64) for s, qi in zip(scaled, q, strict=True)]))
    return cols.astype(np.int64), num, K - e


def linear_query(p: Problem) -> LinearQuery:
    integer = p.query.input.integer
    hidden, deltas = on_lattice(p.model.hidden, integer) if p.model.hidden is not None else (None, ())
    lo, hi = (np.ceil(p.outer_lo), np.floor(p.outer_hi)) if integer else (p.outer_lo, p.outer_hi)
    q = LinearQuery(hidden, deltas, lo, hi, integer)
    for a in p.query.others:  # the box is the bounds lo, hi
        if len(a) == 1:
            q.hard.extend(on_bit_lattice(p, lin, _row(p, lin)) for lin in a[0])
        else:
            q.clauses.append([[on_bit_lattice(p, lin, _row(p, lin)) for lin in conj] for conj in a])
    return q


def search(p: Problem, rng: np.random.Generator, end: float | None, rounds: int | None = None
           ) -> tuple[np.ndarray | None, str, str]:
    """Attacks from fresh random corners and rounds of sampling, in turn, until one finds a point, ``end`` or
    ``rounds`` rounds (once each without a deadline); on networks of over ATTACK_NNZ weights sampling alone."""
    net = p.model.hidden
    cheap = net is not None and sum(int(np.count_nonzero(W)) if isinstance(W, np.ndarray) else W.nnz
                                    for W in net.weights) <= ATTACK_NNZ
    score = Score.of(p)  # once per query: the attacks from fresh corners share it
    for _ in itertools.count() if rounds is None else range(rounds):
        x = ste_attack(p, score, rng, end) if cheap else None
        if x is not None:
            return x, "attack", "a point found along straight-through gradients, replayed exactly"
        x = falsify(p, rng, end)
        if x is not None:
            return x, "sampling", "a sampled point, replayed exactly"
        if end is None or time.perf_counter() > end:
            return None, "", ""
    return None, "", ""


def by_milp(p: Problem, deadline: float | None) -> tuple[str, np.ndarray | None, str]:
    """(result, point, note) from the one MILP of the query."""
    model = get("linear_query").build(linear_query(p))
    sol = highs.solve_or_stop(model, SolveOptions(time_limit=_left(deadline)))
    if sol.status == "infeasible":
        return "unsat", None, "the MILP is infeasible (HiGHS)"
    if sol.x is None:
        return ("timed-out" if sol.status == "time_limit" else "unknown"), None, f"MILP status {sol.status}"
    w = -float(sol.objective)
    if sol.status == "optimal" and w < -UNSAT_MARGIN:
        return "unsat", None, f"the largest slack is {w:.3g} < 0 (HiGHS, optimal)"
    x = to_dtype(p, sol.x[model.cols("x")])
    if replay(p, x) is not None:
        return "sat", x, f"MILP point (slack {w:.3g}), replayed exactly"
    if p.model.hidden is not None and w > UNSAT_MARGIN:
        x = centred(p, sol.x[model.cols("x")], np.round(sol.x[model.cols("u1")]), deadline)
        if x is not None and replay(p, x) is not None:
            return "sat", x, f"MILP point (slack {w:.3g}) moved off the first layer's thresholds, replayed exactly"
    if sol.status != "optimal":
        return "timed-out", None, f"MILP stopped ({sol.status}) with a point that does not replay"
    if "s" in model.col_blocks and w <= UNSAT_MARGIN:
        return strictly_below(p, model, deadline)
    return "unknown", None, f"the MILP's point (slack {w:.3g}) does not satisfy the query exactly"


def centred(p: Problem, x0: np.ndarray, bits: np.ndarray, deadline: float | None) -> np.ndarray | None:
    """A point with the MILP's first-layer bits as far from their thresholds as the box allows (an LP): the
    solver's point may sit within its tolerance on the wrong side of a threshold, and rounding to float32 moves
    it further; deeper layers and the output depend on these bits only."""
    from bnnmilp.formulations.robustness import ibp_bounds
    from bnnmilp.milp.model import INF, ModelBuilder
    from bnnmilp.network.sparse import Csr, is_sparse

    net = p.model.hidden
    W, lam = net.weights[0], net.thresholds[0]
    g_lo, g_hi = ibp_bounds(net, p.lo, p.hi)[0]
    free = np.nonzero((g_lo < 0) & (g_hi >= 0))[0]  # units the box does not fix
    b = ModelBuilder("centre")
    xp = b.add_vars("x", (p.lo.size,), p.lo, p.hi)
    mu = b.add_vars("mu", (), 0.0, INF)
    if free.size:
        pc, pv = (W.take_rows(free) if is_sparse(W) else Csr.from_dense(W[free])).padded()
        sign = np.where(bits[free] > 0.5, 1.0, -1.0)
        norm = np.maximum(np.abs(pv).sum(axis=1), 1e-300)
        cols = np.concatenate([xp[pc], np.full((free.size, 1), int(mu))], axis=1)
        coefs = np.concatenate([sign[:, None] * pv / norm[:, None], -np.ones((free.size, 1))], axis=1)
        b.add_rows("margin", (free.size,), cols, coefs, sign * lam[free] / norm, INF)
    b.set_objective(np.array([mu]), -np.ones(1))
    model = b.build()
    sol = highs.solve_or_stop(model, SolveOptions(time_limit=_left(deadline)))
    if sol.x is None or sol.status not in ("optimal", "time_limit"):
        return None
    return to_dtype(p, sol.x[model.cols("x")])


def strictly_below(p: Problem, model, deadline: float | None) -> tuple[str, np.ndarray | None, str]:
    """The largest slack is 0 only where some first-layer unit sits on its threshold with bit 0, which the step
    rule (z >= t gives 1) does not allow. Ask instead for the largest such slack s with every constraint met
    (t >= 0): a point that meets the query has s > 0, so s* = 0 means there is none."""
    t, s = int(model.cols("t")), int(model.cols("s"))
    lower = model.col_lower.copy()
    lower[t] = 0.0
    c = np.zeros(model.n_cols)
    c[s] = -1.0
    second = replace(model.with_objective(c, 0.0, False), col_lower=lower)
    sol = highs.solve_or_stop(second, SolveOptions(time_limit=_left(deadline)))
    if sol.status == "infeasible" or (sol.status == "optimal" and -float(sol.objective) <= UNSAT_MARGIN):
        return "unsat", None, "every point meeting the constraints puts a first-layer unit on its threshold on the " \
                              "wrong side (HiGHS, optimal)"
    if sol.x is None:
        return ("timed-out" if sol.status == "time_limit" else "unknown"), None, f"MILP status {sol.status}"
    x = to_dtype(p, sol.x[second.cols("x")])
    if replay(p, x) is not None:
        return "sat", x, "MILP point strictly off every threshold, replayed exactly"
    return "unknown", None, "the MILP's points do not satisfy the query exactly"


def free_units(p: Problem) -> int:
    """Step units whose bit the box does not fix (interval arithmetic): the binaries of the MILP's rows."""
    from bnnmilp.formulations.robustness import ibp_bounds

    if p.model.hidden is None:
        return 0
    return sum(int(np.count_nonzero((lo < 0) & (hi >= 0))) for lo, hi in ibp_bounds(p.model.hidden, p.lo, p.hi))


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.perf_counter(), 0.01)


def verify_query(query: Query, model_path: str | Path, time_limit: float | None = None,
                 seed: int = 0) -> Answer:
    """Answer the query on the ONNX model; see the module docstring."""
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    # a 1.0 query indexes the flattened input: the model keeps its own shape (batch size 1)
    model = model_for(model_path, query.input.integer, None if query.version == "1.0" else query.input.shape)
    p = problem(query, model)
    notes = []
    if model.report.rounded:
        notes.append(f"{model.report.rounded} thresholds rounded up to doubles (decisions differ only inside "
                     "[t, lambda))")
    rng = np.random.default_rng(seed)
    units = 0 if model.hidden is None else sum(model.hidden.layers[1:])
    share = LARGE_SEARCH_SHARE if units > LARGE else SEARCH_SHARE
    search_end = None if deadline is None else t0 + share * (deadline - t0)
    k = no_pattern_meets(model, p.outer_lo, p.outer_hi, query.others, search_end)
    if k is not None:
        notes.append(f"none of the {2**k} sign patterns of the {k} first-layer units the box leaves free gives "
                     "outputs meeting the query (deeper layers and outputs exact)")
        return Answer("unsat", "patterns", time.perf_counter() - t0, notes=notes)
    rounds = None if units > LARGE else 1 if free_units(p) <= FEW_FREE else SEARCH_ROUNDS
    x, method, note = search(p, rng, search_end, rounds)
    result = "sat" if x is not None else ""
    if x is None:
        result, x, note = by_milp(p, deadline)
        method = "milp"
    notes.append(note)
    ans = Answer(result, method, notes=notes)
    if result == "sat":
        failed = ort_check(p, model_path, x)
        if failed is not None and not failed.startswith("skipped") and model.hidden is not None:
            # exact but not in float32: a first-layer unit sits within float32 rounding of its threshold; the
            # same bits as far from every threshold as the box allows
            bits = model.hidden.forward(x[None, :])[0][0].astype(np.float64)
            moved = centred(p, x, bits, deadline)
            if moved is not None and replay(p, moved) is not None and ort_check(p, model_path, moved) is None:
                x, failed = moved, None
                notes.append("moved off the first layer's thresholds for float32")
        if failed is not None and not failed.startswith("skipped"):
            ans = Answer("unknown", method, notes=[*notes, failed])
        else:
            ans.x, ans.y = x, outputs_exact(model, x)
            ans.notes.append(failed or "onnxruntime agrees")
    ans.time_s = time.perf_counter() - t0
    return ans


def answer_within(query: Query, model_path: str | Path, timeout: float | None) -> Answer:
    """verify_query held to ``timeout`` seconds of wall clock, the import included: the search gets 90% of it,
    and a stage still running at the end is stopped (``timed-out``)."""
    from bnnmilp.errors import TimeLimitError
    from bnnmilp.limits import wall_clock

    t0 = time.perf_counter()
    try:
        with wall_clock(timeout, "answering the query"):
            return verify_query(query, model_path, None if timeout is None else 0.9 * timeout)
    except TimeLimitError:
        return Answer("timed-out", "none", time.perf_counter() - t0, notes=[f"the {timeout:g} s ran out"])


def assignment_block(query: Query, ans: Answer) -> str:
    """The satisfying assignment in the VNN-LIB 2.0 section 5.3.1 format: per declared variable a header
    (name, declared type, [dims]) and its values in row-major order, one per line."""
    lines = []
    for decl, values in ((query.input, [float(v) for v in ans.x]), (query.output, [exact_float(v) for v in ans.y])):
        lines.append(f"{decl.name} {decl.dtype} [{','.join(str(d) for d in decl.shape)}]")
        lines.extend(_number_text(v, decl.dtype) for v in values)
    return "".join(f"{line}\n" for line in lines)


def _number_text(v: float, dtype: str) -> str:
    """The shortest text that reads back as the same value of the declared type."""
    if dtype.startswith(("int", "uint")):
        return str(int(v))
    if dtype in ("float32", "float16"):
        return str(np.float32(v)) if dtype == "float32" else str(np.float16(v))
    return repr(float(v))
