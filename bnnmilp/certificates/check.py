"""The independent proof checker: exact rational arithmetic, no code shared with the engine.

Checks that (1) the proof refers to this exact model (sha256), (2) the tree is a binary tree whose
every internal node splits one integer column into x_j <= k | x_j >= k + 1, so its leaves cover every
integer point of the root box, (3) every leaf's Neumaier-Shcherbina bound, recomputed in rationals from
the model and the leaf's multipliers over the leaf's box, reaches the claimed bound (for an integral
objective: exceeds claimed - 1, which the checker itself verifies to be valid), or the leaf's box is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from bnnmilp.model import StandardModel

F = Fraction


@dataclass
class CheckReport:
    ok: bool
    errors: list[str] = field(default_factory=list)
    leaves: int = 0
    weakest_leaf_bound: Fraction | None = None

    def fail(self, msg: str) -> None:
        self.ok = False
        self.errors.append(msg)


def _objective_is_integral(model: StandardModel) -> bool:
    c = model.c
    if not float(model.offset).is_integer():
        return False
    if np.any(c[~model.integrality] != 0):
        return False
    return bool(np.all(c[model.integrality] == np.round(c[model.integrality])))


def _exact_leaf_bound(model: StandardModel, y: dict[int, Fraction], lo: list, up: list) -> Fraction | None:
    """Exact lower bound of c x + offset over the leaf box, or None when it is -infinity."""
    r: dict[int, Fraction] = {j: F(float(model.c[j])) for j in np.flatnonzero(model.c)}
    total = F(float(model.offset))
    for i, yi in y.items():
        side = model.row_lower[i] if yi > 0 else model.row_upper[i]
        if not math.isfinite(side):
            return None
        total += yi * F(float(side))
        s, e = int(model.indptr[i]), int(model.indptr[i + 1])
        for j, a in zip(model.indices[s:e].tolist(), model.data[s:e].tolist(), strict=True):
            r[j] = r.get(j, F(0)) - yi * F(a)
    for j, rj in r.items():
        if rj == 0:
            continue
        b = lo[j] if rj > 0 else up[j]
        if b is None:
            return None
        total += rj * b
    return total


def check_proof(model: StandardModel, doc: dict[str, Any]) -> CheckReport:
    rep = CheckReport(ok=True)
    if doc.get("model_sha256") != model.fingerprint():
        rep.fail("the proof refers to another model (sha256 differs)")
        return rep
    if doc.get("sense", "min") != "min":
        rep.fail("only minimisation proofs are supported")
        return rep
    claimed = doc.get("claimed_bound")
    if claimed is None:
        rep.fail("no claimed bound")
        return rep
    claimed_q = F(float(claimed))
    integral = bool(doc.get("objective_integral"))
    if integral and not _objective_is_integral(model):
        rep.fail("objective_integral claimed, but the objective is not integral on integer points")
        return rep
    # tree structure
    nodes: dict[int, tuple] = {}
    for row in doc["nodes"]:
        if not isinstance(row, list) or len(row) != 5:
            rep.fail(f"malformed node {row!r}")
            return rep
        nid, parent, col, sense, val = row
        if nid in nodes:
            rep.fail(f"node {nid} appears twice")
            return rep
        nodes[nid] = (parent, col, sense, val)
    roots = [n for n, v in nodes.items() if v[0] is None]
    if roots != [0] or nodes[0][1] is not None:
        rep.fail("the tree must have exactly one root, node 0, without a branch")
        return rep
    children: dict[int, list[int]] = {n: [] for n in nodes}
    for n, (parent, *_rest) in nodes.items():
        if parent is not None:
            if parent not in nodes:
                rep.fail(f"node {n}: unknown parent {parent}")
                return rep
            children[parent].append(n)
    for n, ch in children.items():
        if not ch:
            continue
        if len(ch) != 2:
            rep.fail(f"node {n} has {len(ch)} children; a disjunction needs exactly 2")
            continue
        (_, c1, s1, v1), (_, c2, s2, v2) = nodes[ch[0]], nodes[ch[1]]
        if c1 != c2 or not isinstance(c1, int) or not 0 <= c1 < model.n_cols or not model.integrality[c1]:
            rep.fail(f"node {n}: children must branch on the same integer column")
            continue
        pair = {s1: v1, s2: v2}
        if set(pair) != {"<=", ">="} or F(float(pair[">="])) != F(float(pair["<="])) + 1 \
                or F(float(pair["<="])).denominator != 1:
            rep.fail(f"node {n}: branches must be x <= k and x >= k + 1 for an integer k")
    leaves = {n for n, ch in children.items() if not ch}
    given = {}
    for lf in doc["leaves"]:
        given.setdefault(lf.get("node"), lf)
    if set(given) != leaves or len(doc["leaves"]) != len(leaves):
        missing, extra = sorted(leaves - set(given)), sorted(set(given) - leaves)
        rep.fail(f"leaf records do not match the tree's leaves (missing {missing[:5]}, extra {extra[:5]})")
    if not rep.ok:
        return rep
    # leaf bounds
    def root_bound(v: float, integer: bool, upper: bool) -> Fraction | None:
        if not math.isfinite(v):
            return None
        q = F(float(v))
        if integer:
            q = F(math.floor(q)) if upper else F(math.ceil(q))
        return q

    lo0 = [root_bound(v, bool(i), False) for v, i in zip(model.col_lower, model.integrality, strict=True)]
    up0 = [root_bound(v, bool(i), True) for v, i in zip(model.col_upper, model.integrality, strict=True)]
    weakest = None
    for n in sorted(leaves):
        lo, up = list(lo0), list(up0)
        k = n
        while nodes[k][0] is not None:
            _, col, sense, val = nodes[k]
            q = F(float(val))
            if sense == "<=":
                up[col] = q if up[col] is None else min(up[col], q)
            else:
                lo[col] = q if lo[col] is None else max(lo[col], q)
            k = nodes[k][0]
        if any(a is not None and b is not None and a > b for a, b in zip(lo, up, strict=True)):
            continue  # an empty box holds no point
        try:
            y = {int(i): F(float(v)) for i, v in given[n].get("y", [])}
        except (TypeError, ValueError):
            rep.fail(f"leaf {n}: malformed multipliers")
            continue
        if any(not 0 <= i < model.n_rows for i in y):
            rep.fail(f"leaf {n}: multiplier of an unknown row")
            continue
        b = _exact_leaf_bound(model, y, lo, up)
        if b is None:
            rep.fail(f"leaf {n}: the bound is -infinity (a multiplier uses an infinite side or box)")
            continue
        weakest = b if weakest is None or b < weakest else weakest
        good = b > claimed_q - 1 if integral else b >= claimed_q
        if not good:
            rep.fail(f"leaf {n}: bound {float(b):.9g} does not reach the claimed {float(claimed_q):.9g}")
    rep.leaves = len(leaves)
    rep.weakest_leaf_bound = weakest
    return rep
