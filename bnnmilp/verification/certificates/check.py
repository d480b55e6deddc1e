"""The independent proof checker: exact rational arithmetic, no code shared with the engine.

A proof claims that no point of the model has objective below ``claimed_bound``. The checker accepts
it only through the following lemmas, each applied in exact rational arithmetic.

1. **Numbers are exact.** Every number of the proof is read as the rational it denotes: a JSON integer,
   a finite JSON float (the double it denotes), or a string ``"p/q"`` / ``"p"``. NaN, infinities,
   booleans and anything else are rejected. Model numbers are the doubles of the model's arrays.
2. **Identity.** The proof is about this model: its ``model_sha256`` equals the model's fingerprint.
3. **The claim.** The claim K is the largest of ``claimed_bound`` and ``claimed_bound_exact`` (both
   must be valid numbers): proving K proves every smaller claim.
4. **Root box.** Every integer-feasible point x satisfies l <= x <= u with l, u the column bounds, and
   for an integer column l_j rounded up and u_j rounded down (no integer lies outside).
5. **Covering.** The nodes form one tree rooted at node 0 (no other root, no cycle, every node reachable
   from 0). If every internal node has exactly two children that branch on the same integer column as
   x_j <= k and x_j >= k + 1 for an integer k, every integer point of a node's box lies in one
   child's box; by induction on the tree, the leaves' boxes (root box tightened along the path) cover
   every integer-feasible point (lemma 4).
6. **Empty leaves.** A leaf whose box has l_j > u_j for some j holds no point: nothing to prove.
7. **Weak duality (Neumaier & Shcherbina 2004).** For any rational multipliers y and r = c - A^T y,
   every x with L <= A x <= U in the leaf box satisfies
   c x + offset >= offset + sum_i y_i (L_i if y_i > 0 else U_i) + sum_j (r_j l_j if r_j > 0 else r_j u_j)
   (terms with y_i = 0 or r_j = 0 omitted), because y_i a_i x >= y_i L_i for y_i > 0, y_i a_i x >= y_i U_i
   for y_i < 0, and likewise r_j x_j over the box. If a needed side or bound is infinite the leaf
   proves nothing (it is rejected).
8. **Integral objective.** If the offset is an integer, every integer column has an integer cost and
   every continuous column cost 0, then c x + offset is an integer at every integer-feasible x. A leaf
   bound b > ceil(K) - 1 then gives c x + offset >= ceil(K) >= K. The checker verifies these
   conditions itself from the model; ``objective_integral`` in the proof only asks for this rule.
9. **Conclusion.** If every non-empty leaf has bound b >= K (or, under lemma 8, b > ceil(K) - 1),
   every feasible x lies in some leaf (lemma 5) and has c x + offset >= K (lemma 7).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from bnnmilp.milp.model import StandardModel

F = Fraction
_RATIONAL = re.compile(r"^\s*[+-]?\d+(/\d+)?\s*$")


class _MalformedError(Exception):
    """A number or record of the proof that is not what the format says."""


def rational(v: Any, what: str) -> Fraction:
    """Lemma 1: the exact rational a proof number denotes, or _MalformedError."""
    if isinstance(v, bool):
        raise _MalformedError(f"{what}: expected a number, got {v!r}")
    if isinstance(v, int):
        return F(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _MalformedError(f"{what}: expected a finite number, got {v!r}")
        return F(v)
    if isinstance(v, str) and _RATIONAL.match(v):
        try:
            return F(v)
        except ZeroDivisionError:
            pass
    raise _MalformedError(f"{what}: expected a finite number or a rational 'p/q', got {v!r}")


@dataclass
class CheckReport:
    ok: bool
    errors: list[str] = field(default_factory=list)
    leaves: int = 0
    weakest_leaf_bound: Fraction | None = None
    claim: Fraction | None = None

    def fail(self, msg: str) -> None:
        self.ok = False
        self.errors.append(msg)


def _objective_is_integral(model: StandardModel) -> bool:
    """Lemma 8's conditions, read off the model's numbers."""
    c = model.c
    if not (math.isfinite(model.offset) and float(model.offset).is_integer()):
        return False
    if np.any(c[~model.integrality] != 0):
        return False
    ci = c[model.integrality]
    return bool(np.all(np.isfinite(ci)) and np.all(ci == np.round(ci)))


def exact_reduced_costs(model: StandardModel, y: dict[int, Fraction]) -> dict[int, Fraction]:
    """r = c - A^T y in rationals, for the columns with a cost or in a row with a multiplier (the VIPR writer
    derives its leaf steps from the same r)."""
    r: dict[int, Fraction] = {j: F(float(model.c[j])) for j in np.flatnonzero(model.c)}
    for i, yi in y.items():
        if yi == 0:
            continue
        s, e = int(model.indptr[i]), int(model.indptr[i + 1])
        for j, a in zip(model.indices[s:e].tolist(), model.data[s:e].tolist(), strict=True):
            r[j] = r.get(j, F(0)) - yi * F(a)
    return r


def _exact_leaf_bound(model: StandardModel, y: dict[int, Fraction], lo: list, up: list) -> Fraction | None:
    """Lemma 7: exact lower bound of c x + offset over the leaf box, or None when it is -infinity."""
    total = F(float(model.offset))
    for i, yi in y.items():
        if yi == 0:
            continue
        side = model.row_lower[i] if yi > 0 else model.row_upper[i]
        if not math.isfinite(side):
            return None
        total += yi * F(float(side))
    for j, rj in exact_reduced_costs(model, y).items():
        if rj == 0:
            continue
        b = lo[j] if rj > 0 else up[j]
        if b is None:
            return None
        total += rj * b
    return total


def _tree(model: StandardModel, doc: dict[str, Any], rep: CheckReport):
    """Lemma 5: the nodes as {id: (parent, column, sense, value)} and the set of leaves, or None."""
    nodes: dict[int, tuple] = {}
    rows = doc.get("nodes")
    if not isinstance(rows, list):
        rep.fail("nodes: expected a list")
        return None
    for row in rows:
        if not isinstance(row, list) or len(row) != 5:
            rep.fail(f"malformed node {row!r}")
            return None
        nid, parent, col, sense, val = row
        if isinstance(nid, bool) or not isinstance(nid, int) or nid in nodes:
            rep.fail(f"node id {nid!r} is not an integer or appears twice")
            return None
        if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int)):
            rep.fail(f"node {nid}: parent {parent!r} is not a node id")
            return None
        if parent is not None:
            if isinstance(col, bool) or not isinstance(col, int) or sense not in ("<=", ">="):
                rep.fail(f"node {nid}: expected a branch [column, '<=' or '>=', value]")
                return None
            val = rational(val, f"node {nid}: branch value")
        nodes[nid] = (parent, col, sense, val)
    roots = [n for n, v in nodes.items() if v[0] is None]
    if roots != [0] or nodes[0][1] is not None:
        rep.fail("the tree must have exactly one root, node 0, without a branch")
        return None
    children: dict[int, list[int]] = {n: [] for n in nodes}
    for n, (parent, *_rest) in nodes.items():
        if parent is not None:
            if parent not in nodes:
                rep.fail(f"node {n}: unknown parent {parent}")
                return None
            children[parent].append(n)
    seen, stack = {0}, [0]
    while stack:
        for ch in children[stack.pop()]:
            if ch not in seen:
                seen.add(ch)
                stack.append(ch)
    if len(seen) != len(nodes):
        rep.fail(f"{len(nodes) - len(seen)} node(s) are not reachable from the root (a cycle or a detached part)")
        return None
    for n, ch in children.items():
        if not ch:
            continue
        if len(ch) != 2:
            rep.fail(f"node {n} has {len(ch)} children; a disjunction needs exactly 2")
            continue
        (_, c1, s1, v1), (_, c2, s2, v2) = nodes[ch[0]], nodes[ch[1]]
        if c1 != c2 or not 0 <= c1 < model.n_cols or not model.integrality[c1]:
            rep.fail(f"node {n}: children must branch on the same integer column")
            continue
        pair = {s1: v1, s2: v2}
        if set(pair) != {"<=", ">="} or pair[">="] != pair["<="] + 1 or pair["<="].denominator != 1:
            rep.fail(f"node {n}: branches must be x <= k and x >= k + 1 for an integer k")
    return nodes, {n for n, ch in children.items() if not ch}


def check_proof(model: StandardModel, doc: dict[str, Any]) -> CheckReport:
    """Check a proof document against ``model`` by lemmas 1-9 of this module; never raises on bad input."""
    rep = CheckReport(ok=True)
    try:
        _check(model, doc, rep)
    except _MalformedError as exc:
        rep.fail(str(exc))
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, IndexError) as exc:
        rep.fail(f"malformed proof ({exc.__class__.__name__}: {exc})")
    if not rep.ok:
        rep.claim = None
    return rep


def _check(model: StandardModel, doc: dict[str, Any], rep: CheckReport) -> None:
    if not isinstance(doc, dict):
        rep.fail("expected a JSON object")
        return
    if doc.get("model_sha256") != model.fingerprint():  # lemma 2
        rep.fail("the proof refers to another model (sha256 differs)")
        return
    if doc.get("sense", "min") != "min":
        rep.fail("only minimisation proofs are supported")
        return
    if doc.get("claimed_bound") is None:
        rep.fail("no claimed bound")
        return
    claims = [rational(doc["claimed_bound"], "claimed_bound")]  # lemma 3
    if doc.get("claimed_bound_exact") is not None:
        claims.append(rational(doc["claimed_bound_exact"], "claimed_bound_exact"))
    claim = max(claims)
    integral = doc.get("objective_integral") is True
    if integral and not _objective_is_integral(model):
        rep.fail("objective_integral claimed, but the objective is not integral on integer points")
        return
    parsed = _tree(model, doc, rep)
    if parsed is None or not rep.ok:
        return
    nodes, leaves = parsed
    given: dict[int, dict] = {}
    records = doc.get("leaves")
    if not isinstance(records, list) or not all(isinstance(lf, dict) for lf in records):
        rep.fail("leaves: expected a list of objects")
        return
    for lf in records:
        node = lf.get("node")
        if isinstance(node, bool) or not isinstance(node, int) or node in given:
            rep.fail(f"leaf record for node {node!r}: not a node id, or given twice")
            return
        given[node] = lf
    if set(given) != leaves:
        missing, extra = sorted(leaves - set(given)), sorted(set(given) - leaves)
        rep.fail(f"leaf records do not match the tree's leaves (missing {missing[:5]}, extra {extra[:5]})")
        return

    def root_bound(v: float, integer: bool, upper: bool) -> Fraction | None:  # lemma 4
        if not math.isfinite(v):
            return None
        q = F(float(v))
        if integer:
            q = F(math.floor(q)) if upper else F(math.ceil(q))
        return q

    lo0 = [root_bound(v, bool(i), False) for v, i in zip(model.col_lower, model.integrality, strict=True)]
    up0 = [root_bound(v, bool(i), True) for v, i in zip(model.col_upper, model.integrality, strict=True)]
    target = F(math.ceil(claim)) - 1 if integral else claim  # lemma 8 / lemma 9
    weakest = None
    for n in sorted(leaves):
        lo, up = list(lo0), list(up0)
        k = n
        while nodes[k][0] is not None:
            _, col, sense, q = nodes[k]
            if sense == "<=":
                up[col] = q if up[col] is None else min(up[col], q)
            else:
                lo[col] = q if lo[col] is None else max(lo[col], q)
            k = nodes[k][0]
        if any(a is not None and b is not None and a > b for a, b in zip(lo, up, strict=True)):
            continue  # lemma 6
        ys = given[n].get("y", [])
        if not isinstance(ys, list) or not all(isinstance(p, list) and len(p) == 2 for p in ys):
            rep.fail(f"leaf {n}: malformed multipliers")
            continue
        y: dict[int, Fraction] = {}
        for i, v in ys:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < model.n_rows or i in y:
                rep.fail(f"leaf {n}: multiplier of an unknown or repeated row {i!r}")
                break
            y[i] = rational(v, f"leaf {n}: multiplier of row {i}")
        else:
            b = _exact_leaf_bound(model, y, lo, up)
            if b is None:
                rep.fail(f"leaf {n}: the bound is -infinity (a multiplier uses an infinite side or box)")
                continue
            weakest = b if weakest is None or b < weakest else weakest
            if not (b > target if integral else b >= target):
                rep.fail(f"leaf {n}: bound {_show(b)} does not reach the claimed {_show(claim)}"
                         + (" (an integral objective needs a bound above ceil(claim) - 1)" if integral else ""))
    rep.leaves = len(leaves)
    rep.weakest_leaf_bound = weakest
    rep.claim = claim


def _show(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator} (~{float(q):.12g})"
