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
from pathlib import Path

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
    diff = _combine(lhs, rhs, -1)
    flip = _combine(rhs, lhs, -1)
    if kind == "LessEqual":
        return [_make(diff, "<=")]
    if kind == "LessThan":
        return [_make(diff, "<")]
    if kind == "GreaterEqual":
        return [_make(flip, "<=")]
    if kind == "GreaterThan":
        return [_make(flip, "<")]
    if kind == "Equal":
        return [_make(diff, "==")]
    if kind == "NotEqual":
        return [_make(diff, "<"), _make(flip, "<")]
    raise _UnsupportedError(f"unsupported comparison {kind}")


Affine = tuple[dict[tuple[str, int], Fraction], Fraction]


def _make(e: Affine, sense: str) -> Linear:
    coefs = tuple(sorted((k, v) for k, v in e[0].items() if v != 0))
    return Linear(coefs, e[1], sense)


def _combine(a: Affine, b: Affine, sb: int) -> Affine:
    coefs = dict(a[0])
    for k, v in b[0].items():
        coefs[k] = coefs.get(k, Fraction(0)) + sb * v
    return coefs, a[1] + sb * b[1]


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
        idx = list(node.indices)
        if len(idx) != len(decl.shape) or any(not 0 <= i < s for i, s in zip(idx, decl.shape, strict=True)):
            raise _UnsupportedError(f"{node.name}{idx} is outside the declared shape {list(decl.shape)}")
        flat = 0
        for i, s in zip(idx, decl.shape, strict=True):
            flat = flat * s + i
        return {(letter, flat): Fraction(1)}, Fraction(0)
    if kind in ("Float", "Int", "IntExpr", "Literal"):
        return {}, _number(node)
    if kind == "Negate":
        return _scale(_linear(node.expr, roles), Fraction(-1))
    if kind == "Plus":
        acc: Affine = ({}, Fraction(0))
        for arg in node.args:
            acc = _combine(acc, _linear(arg, roles), 1)
        return acc
    if kind == "Minus":
        acc = _linear(node.head, roles)
        for arg in node.rest:
            acc = _combine(acc, _linear(arg, roles), -1)
        return acc
    if kind == "Multiply":
        acc = ({}, Fraction(1))
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
