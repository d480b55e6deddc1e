"""Export a proof as a VIPR certificate (Cheung, Gleixner & Steffy, "Verifying integer programming
results", IPCO 2017), checkable by their independent checker ``viprchk``.

Sections: VER 1.0; VAR (names); INT (integer columns); OBJ min (sparse); CON (bounds first, then rows:
a ranged row becomes two constraints); RTP range lb inf; SOL 0; DER: per branch an assumption ``asm``,
per leaf the objective cut c x >= lb derived by ``lin`` (or ``rnd`` for an integral objective) from its
multipliers (row duals, reduced costs on the leaf's bounds or assumptions), and per internal node ``uns``
of its two children's cuts, up to an assumption-free c x >= lb. Numbers are exact rationals p/q. VIPR has
no objective constant, so its bound is the claimed bound minus the model's objective offset.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bnnmilp.io.yamlio import fraction_str, write_text_atomic
from bnnmilp.milp.model import StandardModel
from bnnmilp.verification.certificates.check import exact_reduced_costs


def q(v: Fraction | float | int) -> str:
    return fraction_str(Fraction(v))


def _sparse(coefs: dict[int, Fraction]) -> str:
    items = [(j, v) for j, v in sorted(coefs.items()) if v != 0]
    return " ".join([str(len(items))] + [f"{j} {q(v)}" for j, v in items])


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_.[]()" else "_" for ch in name) or "x"


def vipr_text(model: StandardModel, doc: dict[str, Any]) -> str:
    n = model.n_cols
    names = [_safe(s) for s in model.col_names()]
    out = ["VER 1.0", f"VAR {n}", *names]
    ints = np.flatnonzero(model.integrality).tolist()
    out += [f"INT {len(ints)}", " ".join(map(str, ints))]
    c = {j: Fraction(float(model.c[j])) for j in np.flatnonzero(model.c)}
    out += ["OBJ min", _sparse(c)]
    # constraints: bounds first (index per column side), then rows
    cons: list[str] = []

    def con(name: str, sense: str, rhs: float, coefs: str) -> int:
        """Append a constraint; returns its index."""
        cons.append(f"{name} {sense} {q(Fraction(float(rhs)))} {coefs}")
        return len(cons) - 1

    lb_idx: dict[int, int] = {}
    ub_idx: dict[int, int] = {}
    for j in range(n):
        lo, up = model.col_lower[j], model.col_upper[j]
        if model.integrality[j]:
            lo = math.ceil(lo - 1e-9) if math.isfinite(lo) else lo
            up = math.floor(up + 1e-9) if math.isfinite(up) else up
        for side, bound, sense, idx in (("lb", lo, "G", lb_idx), ("ub", up, "L", ub_idx)):
            if math.isfinite(bound):
                idx[j] = con(f"{side}{j}", sense, bound, f"1 {j} 1")
    n_bounds = len(cons)
    row_g: dict[int, int] = {}
    row_l: dict[int, int] = {}
    for i in range(model.n_rows):
        s, e = int(model.indptr[i]), int(model.indptr[i + 1])
        coefs = _sparse({int(j): Fraction(float(a)) for j, a in zip(model.indices[s:e], model.data[s:e], strict=True)})
        L, U = model.row_lower[i], model.row_upper[i]
        if math.isfinite(L) and math.isfinite(U) and L == U:
            row_g[i] = row_l[i] = con(f"r{i}", "E", L, coefs)
            continue
        for suffix, bound, sense, idx in (("g", L, "G", row_g), ("l", U, "L", row_l)):
            if math.isfinite(bound):
                idx[i] = con(f"r{i}{suffix}", sense, bound, coefs)
    m = len(cons)
    out += [f"CON {m} {n_bounds}", *cons]
    # VIPR's objective has no constant term: its bounds are on c x = objective - offset
    exact = doc.get("claimed_bound_exact")
    claimed = Fraction(exact if exact is not None else float(doc["claimed_bound"])) - Fraction(float(model.offset))
    out += [f"RTP range {q(claimed)} inf", "SOL 0"]
    # the tree
    nodes = {row[0]: row for row in doc["nodes"]}
    children: dict[int, list[int]] = {k: [] for k in nodes}
    for k, row in nodes.items():
        if row[1] is not None:
            children[row[1]].append(k)
    leaves = {lf["node"]: lf for lf in doc["leaves"]}
    integral = bool(doc.get("objective_integral"))
    ders: list[str] = []
    obj_coefs = _sparse(c)

    def idx() -> int:
        return m + len(ders)

    def leaf(k: int, lo_src: dict[int, int], up_src: dict[int, int]) -> int:
        y = {int(i): Fraction(v) for i, v in leaves[k]["y"]}  # doubles, or exact "p/q" strings
        terms: dict[int, Fraction] = {}
        for i, yi in y.items():
            ci = row_g[i] if yi > 0 else row_l[i]
            terms[ci] = terms.get(ci, Fraction(0)) + yi
        for j, rj in exact_reduced_costs(model, y).items():
            if rj == 0:
                continue
            ci = lo_src[j] if rj > 0 else up_src[j]
            terms[ci] = terms.get(ci, Fraction(0)) + rj
        reason = "rnd" if integral else "lin"
        body = " ".join([str(len(terms))] + [f"{ci} {q(v)}" for ci, v in sorted(terms.items())])
        ders.append(f"leaf{k} G {q(claimed)} {obj_coefs} {{ {reason} {body} }} -1")
        return idx() - 1

    def visit(k: int, lo_src: dict[int, int], up_src: dict[int, int]) -> int:
        if not children[k]:
            return leaf(k, lo_src, up_src)
        got = []
        for ch in sorted(children[k], key=lambda x: nodes[x][3] != "<="):
            _, _, col, sense, val = nodes[ch]
            a = idx()
            ders.append(f"asm{ch} {'L' if sense == '<=' else 'G'} {q(Fraction(float(val)))} 1 {col} 1 {{ asm }} -1")
            lo2, up2 = dict(lo_src), dict(up_src)
            (up2 if sense == "<=" else lo2)[col] = a
            got.append((visit(ch, lo2, up2), a))
        (d1, a1), (d2, a2) = got
        ders.append(f"uns{k} G {q(claimed)} {obj_coefs} {{ uns {d1} {a1} {d2} {a2} }} -1")
        return idx() - 1

    visit(0, dict(lb_idx), dict(ub_idx))
    out += [f"DER {len(ders)}", *ders]
    return "\n".join(out) + "\n"


def write_vipr(path: str | Path, model: StandardModel, doc: dict[str, Any]) -> Path:
    return write_text_atomic(path, vipr_text(model, doc))
