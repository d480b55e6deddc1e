"""VNN-LIB queries (2.0, and 1.0 as VNN-COMP 2021-2025 wrote them) as exact linear constraints.

Parsing is the reference parser's (the ``vnnlib`` package); this module turns its syntax tree into what the
solver needs: the declared input and output (one network, one input, one output), and the assertions, each
a disjunction of conjunctions of linear constraints ``sum_v a_v v + c  (<= | < | ==)  0`` whose coefficients
are the exact rationals of the decimals written in the file (0.1 is 1/10, not the double nearest to it).
Variables are positions of the flattened input (``"x"``) or output (``"y"``), in C order.

VNN-LIB 1.0 files (``(declare-const X_0 Real)``, no network declaration) are rewritten into 2.0 before
parsing: X_i and Y_j index the flattened input and output, and the network takes the name the caller gives.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cached_property
from pathlib import Path

import numpy as np

from bnnmilp.errors import QueryError
from bnnmilp.io.importers.exact import surd_sign

SENSES = ("<=", "<", "==")


class _UnsupportedError(ValueError):
    """Raised inside an assertion; reported with the file and the assertion's number."""


@dataclass(frozen=True)
class Declared:
    """A declared input or output tensor."""

    name: str
    dtype: str  # the declared element type, as written (float32, real, int8, ...)
    shape: tuple[int, ...]
    onnx_name: str | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def integer(self) -> bool:
        return self.dtype.startswith(("int", "uint"))


@dataclass(frozen=True)
class Linear:
    """sum of coefs[(kind, index)] * variable + const, compared with 0 by ``sense``; kind is "x" or "y"."""

    coefs: tuple[tuple[tuple[str, int], Fraction], ...]
    const: Fraction
    sense: str  # <= | < | ==

    def kinds(self) -> set[str]:
        return {k for (k, _), _ in self.coefs}

    def holds(self, x: list[Fraction], y: list) -> bool:
        """Exactly, at rational inputs and outputs that are rationals or sums {r: c} of c sqrt(r) (a batch norm
        at the output); a sign that cannot be decided counts as not holding."""
        vals = [x[i] if k == "x" else y[i] for (k, i), _ in self.coefs]
        if not any(isinstance(v, dict) for v in vals):  # rationals only: the sign of one sum
            total = self.const + sum(a * v for (_, a), v in zip(self.coefs, vals, strict=True))
            sign = (total > 0) - (total < 0)
        else:
            terms: dict[Fraction, Fraction] = {Fraction(1): self.const}
            for (_, a), v in zip(self.coefs, vals, strict=True):
                for r, c in (v.items() if isinstance(v, dict) else ((Fraction(1), v),)):
                    terms[r] = terms.get(r, Fraction(0)) + a * c
            sign = surd_sign(terms)
            if sign is None:
                return False
        return sign <= 0 if self.sense == "<=" else sign < 0 if self.sense == "<" else sign == 0


Conjunction = tuple[Linear, ...]


@dataclass(frozen=True)
class Box:
    """The constraints that bound one input element each (those of assertions with one disjunct), as doubles
    that decide them exactly at any double x: x <= b iff x <= down, x < b iff x < up, x >= b iff x >= up,
    x > b iff x > down, where down <= b <= up are the doubles next to b (equal when b is a double)."""

    index: np.ndarray  # the input element of each bound
    upper: np.ndarray  # bool: x_i <= b (or <); else x_i >= b (or >)
    strict: np.ndarray  # bool
    down: np.ndarray
    up: np.ndarray

    @classmethod
    def of(cls, bounds: list[tuple[int, bool, bool, Fraction]]) -> Box:
        """From (element, upper, strict, b) per bound."""
        down, up = np.empty(len(bounds)), np.empty(len(bounds))
        for k, (_, _, _, b) in enumerate(bounds):
            down[k], up[k] = _neighbours(b)
        cols = list(zip(*bounds, strict=True))[:3] if bounds else ([], [], [])
        return cls(np.array(cols[0], np.int64), np.array(cols[1], bool), np.array(cols[2], bool), down, up)

    def holds(self, X: np.ndarray) -> np.ndarray:
        """Per row of X (doubles), whether it meets every bound, exactly."""
        v = np.asarray(X, np.float64)[..., self.index]
        upper = np.where(self.strict, v < self.up, v <= self.down)
        lower = np.where(self.strict, v > self.down, v >= self.up)
        return np.all(np.where(self.upper, upper, lower), axis=-1)

    def limits(self, n: int, inner: bool) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) per element: inner, the doubles meeting the bounds; else the doubles around them (a box
        of doubles that contains every real point meeting them). -inf / inf where an element has no bound."""
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        low, high = ~self.upper, self.upper
        if inner:
            lo_b = np.where(self.strict, np.nextafter(self.down, np.inf), self.up)
            hi_b = np.where(self.strict, np.nextafter(self.up, -np.inf), self.down)
        else:
            lo_b, hi_b = self.down, self.up
        np.maximum.at(lo, self.index[low], lo_b[low])
        np.minimum.at(hi, self.index[high], hi_b[high])
        return lo, hi


def _neighbours(b: Fraction) -> tuple[float, float]:
    """(largest double <= b, smallest double >= b)."""
    try:
        d = float(b)
    except OverflowError:
        d = math.copysign(math.inf, b.numerator)
    if math.isinf(d):
        big = math.copysign(float(np.finfo(np.float64).max), d)
        return (big, d) if d > 0 else (d, big)
    n, q = d.as_integer_ratio()
    cmp = n * b.denominator - b.numerator * q
    if cmp == 0:
        return d, d
    return (d, math.nextafter(d, math.inf)) if cmp < 0 else (math.nextafter(d, -math.inf), d)


class _Exact:
    """The rationals of a vector of doubles, made as they are read (a constraint reads few of them)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __getitem__(self, i: int) -> Fraction:
        return Fraction(float(self.x[i]))


@dataclass
class Query:
    """One network's query: its input and output and the assertions (each a disjunction of conjunctions)."""

    path: str
    version: str
    network: str
    input: Declared
    output: Declared
    assertions: list[list[Conjunction]] = field(default_factory=list)

    def holds(self, x: list[Fraction], y: list) -> bool:
        return all(any(all(c.holds(x, y) for c in conj) for conj in a) for a in self.assertions)

    @cached_property
    def _split(self) -> tuple[Box, list[list[Conjunction]]]:
        bounds: list[tuple[int, bool, bool, Fraction]] = []
        others: list[list[Conjunction]] = []
        for a in self.assertions:
            if len(a) != 1:
                others.append(a)
                continue
            rest = []
            for lin in a[0]:
                if len(lin.coefs) != 1 or lin.coefs[0][0][0] != "x":
                    rest.append(lin)
                    continue
                (_, i), coef = lin.coefs[0]
                up = coef.numerator > 0  # coef x_i + const (sense) 0: x_i <= b when coef > 0
                b = -lin.const if coef == 1 else lin.const if coef == -1 else -lin.const / coef
                if lin.sense == "==":
                    bounds += [(i, True, False, b), (i, False, False, b)]
                else:
                    bounds.append((i, up, lin.sense == "<", b))
            if rest:
                others.append([tuple(rest)])
        return Box.of(bounds), others

    @property
    def box(self) -> Box:
        """The bounds on single input elements (from assertions with one disjunct)."""
        return self._split[0]

    @property
    def others(self) -> list[list[Conjunction]]:
        """The assertions less the box's constraints: together with the box, the same query."""
        return self._split[1]

    def holds_at(self, x: np.ndarray, y: list) -> bool:
        """``holds`` at a vector of doubles: the box in doubles (exactly), the rest in rationals."""
        if not self.box.holds(x):
            return False
        ex = _Exact(x)
        return all(any(all(c.holds(ex, y) for c in conj) for conj in a) for a in self.others)

    def satisfied_disjuncts(self, x: list[Fraction], y: list) -> list[int]:
        """Per assertion, the first disjunct that holds (-1 where none does)."""
        return [next((d for d, conj in enumerate(a) if all(c.holds(x, y) for c in conj)), -1)
                for a in self.assertions]


def read_query(path: str | Path, network: str | None = None) -> Query:
    """Parse a VNN-LIB file; ``network`` names the model for a 1.0 file (which declares none)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise QueryError(str(p), None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(str(p), None, f"cannot read ({exc.__class__.__name__})") from None
    return parse_query(text, str(p), network)


def parse_query(text: str, path: str = "<query>", network: str | None = None) -> Query:
    import vnnlib

    version = "2.0"
    if not re.search(r"\(\s*vnnlib-version", text) and re.search(r"\(\s*declare-const", text):
        text, version = from_version_1(text, path, network or "N"), "1.0"
    try:
        tree = vnnlib.parse_query_string(text)
    except vnnlib.VNNLibException as exc:
        raise QueryError(path, None, _parser_message(str(exc))) from None
    return _query(tree, path, version)


def _parser_message(text: str) -> str:
    """The parser's first error as one line (it reports type errors as JSON)."""
    import json

    try:
        err = json.loads(text)["errors"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return text.strip().splitlines()[0] if text.strip() else "not a VNN-LIB query"
    return f"line {err.get('line', '?')}: {err.get('message', 'error')} ({err.get('hint', '')})"


_V1_CONST = re.compile(r"\(\s*declare-const\s+([XY])_(\d+)\s+(\w+)\s*\)")
_V1_VAR = re.compile(r"\b([XY])_(\d+)\b")
_NUMBER = re.compile(r"(?<![\w.\[])[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+\b")


def from_version_1(text: str, path: str, network: str) -> str:
    """A VNN-LIB 1.0 file as 2.0 text: one network with input X [n] and output Y [m], declared ``real``."""
    sizes = {"X": 0, "Y": 0}
    for kind, idx, _ in _V1_CONST.findall(text):
        sizes[kind] = max(sizes[kind], int(idx) + 1)
    if not sizes["X"] or not sizes["Y"]:
        raise QueryError(path, None, "expected declare-const X_i and Y_j (VNN-LIB 1.0) or a declare-network "
                                     "(VNN-LIB 2.0)")
    body = _V1_CONST.sub("", text)
    body = _V1_VAR.sub(lambda m: f"{m.group(1)}[{m.group(2)}]", body)
    body = _NUMBER.sub(lambda m: _plain(m.group(0)), body)  # 1e-05 is not in 2.0's grammar
    head = (f"(vnnlib-version <2.0>)\n(declare-network {network}\n  (declare-input X real [{sizes['X']}])\n"
            f"  (declare-output Y real [{sizes['Y']}])\n)\n")
    return head + body


def _plain(number: str) -> str:
    try:
        s = format(Decimal(number), "f")
    except InvalidOperation:
        return number
    return s if "." in s else s + ".0"


def _query(tree, path: str, version: str) -> Query:
    nets = list(tree.networks)
    if len(nets) != 1:
        raise QueryError(path, None, f"{len(nets)} networks declared; bnnmilp answers queries on one network")
    net = nets[0]
    if list(net.hidden):
        raise QueryError(path, f"network {net.name}", "hidden-node declarations are not supported")
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise QueryError(path, f"network {net.name}", "expected one input and one output declaration")
    inp, out = (Declared(d.name, _dtype(d.dtype), tuple(int(s) for s in d.shape), d.onnx_name)
                for d in (net.inputs[0], net.outputs[0]))
    q = Query(path, version, net.name, inp, out)
    roles = {inp.name: ("x", inp), out.name: ("y", out)}
    for k, a in enumerate(tree.assertions, start=1):
        try:
            q.assertions.append(_dnf(a.expr, roles))
        except _UnsupportedError as exc:
            raise QueryError(path, f"assertion {k}", str(exc)) from None
    return q


def _dtype(d) -> str:
    name = str(d).split(".")[-1].lower()
    return {"f16": "float16", "f32": "float32", "f64": "float64", "bf16": "bfloat16", "i8": "int8", "i16": "int16",
            "i32": "int32", "i64": "int64", "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64",
            "real": "real", "bool": "bool"}.get(name, name)


def _dnf(expr, roles: dict) -> list[Conjunction]:
    out: list[Conjunction] = []
    for conj in expr.to_dnf():
        parts: list[list[Linear]] = [[]]
        for comp in conj:
            alts = _comparison(comp, roles)
            parts = [[*p, a] for p in parts for a in alts]  # != splits into < or >
        out.extend(tuple(p) for p in parts)
    return out


def _comparison(comp, roles: dict) -> list[Linear]:
    """The comparison as lhs - rhs (sense) 0 (or rhs - lhs for >, >=); != as two alternatives."""
    kind = type(comp).__name__
    lhs, rhs = _linear(comp.lhs, roles), _linear(comp.rhs, roles)
    if kind in ("LessEqual", "LessThan", "Equal"):
        return [_make(_combine(lhs, rhs, -1), {"LessEqual": "<=", "LessThan": "<", "Equal": "=="}[kind])]
    if kind in ("GreaterEqual", "GreaterThan"):
        return [_make(_combine(rhs, lhs, -1), "<=" if kind == "GreaterEqual" else "<")]
    if kind == "NotEqual":
        return [_make(_combine(lhs, rhs, -1), "<"), _make(_combine(rhs, lhs, -1), "<")]
    raise _UnsupportedError(f"unsupported comparison {kind}")


Affine = tuple[dict[tuple[str, int], Fraction], Fraction]


_ZERO, _ONE, _MINUS_ONE = Fraction(0), Fraction(1), Fraction(-1)


def _make(e: Affine, sense: str) -> Linear:
    coefs = tuple(sorted((k, v) for k, v in e[0].items() if v))
    return Linear(coefs, e[1], sense)


def _combine(a: Affine, b: Affine, sb: int) -> Affine:
    """a + sb b (sb = 1 or -1)."""
    coefs = dict(a[0])
    for k, v in b[0].items():
        w = v if sb == 1 else -v
        coefs[k] = coefs[k] + w if k in coefs else w
    if not b[1]:
        return coefs, a[1]
    return coefs, a[1] + b[1] if sb == 1 else a[1] - b[1]


def _scale(a: Affine, s: Fraction) -> Affine:
    return {k: v * s for k, v in a[0].items()}, a[1] * s


def _linear(node, roles: dict) -> Affine:
    """An arithmetic expression as (coefficients, constant), exactly; products must have one variable factor."""
    kind = type(node).__name__
    if kind == "Var":
        role = roles.get(node.name)
        if role is None:
            raise _UnsupportedError(f"variable {node.name} is not the network's declared input or output")
        letter, decl = role
        idx = node.indices
        if len(idx) != len(decl.shape):
            raise _UnsupportedError(f"{node.name}{list(idx)} is outside the declared shape {list(decl.shape)}")
        flat = 0
        for i, s in zip(idx, decl.shape, strict=True):
            if not 0 <= i < s:
                raise _UnsupportedError(f"{node.name}{list(idx)} is outside the declared shape {list(decl.shape)}")
            flat = flat * s + i
        return {(letter, flat): _ONE}, _ZERO
    if kind in ("Float", "Int", "IntExpr", "Literal"):
        return {}, _number(node)
    if kind == "Negate":
        return _scale(_linear(node.expr, roles), _MINUS_ONE)
    if kind == "Plus":
        acc: Affine = ({}, _ZERO)
        for arg in node.args:
            acc = _combine(acc, _linear(arg, roles), 1)
        return acc
    if kind == "Minus":
        acc = _linear(node.head, roles)
        for arg in node.rest:
            acc = _combine(acc, _linear(arg, roles), -1)
        return acc
    if kind == "Multiply":
        acc = ({}, _ONE)
        for arg in node.args:
            f = _linear(arg, roles)
            if acc[0] and f[0]:
                raise _UnsupportedError("a product of two variables (only linear constraints are supported)")
            acc = _scale(f, acc[1]) if f[0] else _scale(acc, f[1])
        return acc
    raise _UnsupportedError(f"unsupported expression {kind}")


def _number(node) -> Fraction:
    text = getattr(node, "lexeme", None) or str(node).strip()
    try:
        return Fraction(Decimal(text))
    except (InvalidOperation, ValueError):
        return Fraction(float(node.value))
