"""Export a proof as a VIPR certificate (Cheung, Gleixner & Steffy, "Verifying integer programming
results", IPCO 2017), checkable by their independent checker ``viprchk``.

Sections: VER 1.0; VAR (names); INT (integer columns); OBJ min (sparse); CON (bounds first, then rows:
a ranged row becomes two constraints); RTP range lb inf; SOL 0; DER: per branch an assumption ``asm``,
per derived bound (proof version 2) x_j <= v or >= v by ``lin`` (``rnd`` for an integer column) from its
row and the other columns' current bounds (a probe: the other side assumed, its steps derived, the
bound from the crossing bounds they leave, and ``uns``; a reduced-cost fixing: the hypothesis minus
y_i times each row's side, r x <= T - Y, as its row), per leaf the objective cut c x >= lb derived by ``lin`` (or
``rnd`` for an integral objective) from its multipliers (row duals, reduced costs on the leaf's bounds,
assumptions or derived bounds; an empty leaf from its crossing bounds), and per internal node ``uns`` of
its two children's cuts, up to c x >= lb. Where steps use the hypothesis c x <= T (row -1), it is an
assumption at the start, and a last ``uns`` with c x >= T + 1 (a split: the objective is integral)
removes it. Numbers are exact rationals p/q. VIPR has
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
from bnnmilp.verification.certificates.check import exact_reduced_costs, exact_row


def q(v: Fraction | float | int) -> str:
    return fraction_str(Fraction(v))


def _sparse(coefs: dict[int, Fraction]) -> str:
    items = [(j, v) for j, v in sorted(coefs.items()) if v != 0]
    return " ".join([str(len(items))] + [f"{j} {q(v)}" for j, v in items])


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_.[]()" else "_" for ch in name) or "x"


def vipr_text(model: StandardModel, doc: dict[str, Any]) -> str:
    if "symmetry" in doc:  # certify --format vipr proves without them
        from bnnmilp.errors import ModelFileError

        raise ModelFileError(None, "symmetry", "VIPR has no rule for symmetry rows: prove with certify(..., "
                                               "vipr=True) to export to VIPR")
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
    steps: dict[int, list] = {}
    for n_, col, sense, v, i in doc.get("derived", []):
        row = ("duals", i["duals"]) if isinstance(i, dict) else i if not isinstance(i, list) else \
            [(c2, s2, Fraction(v2), i2) for c2, s2, v2, i2 in i]
        steps.setdefault(n_, []).append((col, sense, Fraction(v), row))
    integral = bool(doc.get("objective_integral"))
    ders: list[str] = []
    obj_coefs = _sparse(c)
    rows = _RowsOf(model, c, doc.get("duals"))

    def idx() -> int:
        return m + len(ders)

    hyp = None
    split_asm: dict[int, int] = {}  # node of a general disjunction -> the index of its assumption

    def uses_hypothesis(i: int | list | tuple) -> bool:
        return isinstance(i, tuple) or (i == -1 if not isinstance(i, list) else any(t[3] == -1 for t in i))

    if any(uses_hypothesis(i) for st in steps.values() for *_, i in st):  # lemma 11: assume c x <= T, split at the end
        t_hyp = Fraction(math.ceil(claimed + Fraction(float(model.offset)))) - 1 - Fraction(float(model.offset))
        ders.append(f"hyp L {q(t_hyp)} {obj_coefs} {{ asm }} -1")
        hyp = idx() - 1
        rows.hypothesis = {hyp: Fraction(1)}

    def leaf(k: int, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> int:
        y = {int(i): Fraction(v) for i, v in leaves[k]["y"]}  # doubles, or exact "p/q" strings
        terms: dict[int, Fraction] = {}
        empty = [j for j in lo_src if j in up_src and lo_src[j][1] > up_src[j][1]]
        if empty:  # lemma 6: M (x_j >= l_j) - M (x_j <= u_j) gives 0 >= M (l_j - u_j), with c x over the box
            j = empty[0]
            y = {}
            base = Fraction(0)
            for jj, cj in c.items():
                src = lo_src.get(jj) if cj > 0 else up_src.get(jj)
                if src is None:
                    raise ValueError(f"VIPR: leaf {k} is empty but objective column {jj} is unbounded")
                terms[src[0]] = terms.get(src[0], Fraction(0)) + cj
                base += cj * src[1]
            big = max(Fraction(0), claimed - base) / (lo_src[j][1] - up_src[j][1])
            terms[lo_src[j][0]] = terms.get(lo_src[j][0], Fraction(0)) + big
            terms[up_src[j][0]] = terms.get(up_src[j][0], Fraction(0)) - big
        for i, yi in y.items():
            ci = row_g[i] if yi > 0 else row_l[i]
            terms[ci] = terms.get(ci, Fraction(0)) + yi
        r = exact_reduced_costs(model, y) if not empty else {}
        for node, zs in ([] if empty else leaves[k].get("splits", [])):  # a general disjunction's assumption
            z = Fraction(zs)
            terms[split_asm[node]] = terms.get(split_asm[node], Fraction(0)) + z
            for j, a in nodes[node][2]:
                r[j] = r.get(j, Fraction(0)) - z * Fraction(a)
        for j, rj in r.items():
            if rj == 0:
                continue
            ci = lo_src[j][0] if rj > 0 else up_src[j][0]
            terms[ci] = terms.get(ci, Fraction(0)) + rj
        reason = "rnd" if integral else "lin"
        terms = {ci: v for ci, v in terms.items() if v != 0}
        body = " ".join([str(len(terms))] + [f"{ci} {q(v)}" for ci, v in sorted(terms.items())])
        ders.append(f"leaf{k} G {q(claimed)} {obj_coefs} {{ {reason} {body} }} -1")
        return idx() - 1

    def derive(k: int, t: int | str, step: tuple, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> None:
        """Lemma 10 as a VIPR derivation: (1 / a_j) row i plus (-a_k / a_j) times x_k's bound, rounded for
        an integer column."""
        j, sense, v, i = step
        a, lcon, ucon = rows.row(i, row_g, row_l)
        aj = a[j]
        use_upper = (sense == "<=") == (aj > 0)
        terms = {ci: w / aj for ci, w in (ucon if use_upper else lcon).items()}
        for kk, ak in a.items():
            if kk == j or ak == 0:
                continue
            src = (lo_src if ak > 0 else up_src) if use_upper else (up_src if ak > 0 else lo_src)
            terms[src[kk][0]] = terms.get(src[kk][0], Fraction(0)) - ak / aj
        body = " ".join([str(len(terms))] + [f"{ci} {q(w)}" for ci, w in sorted(terms.items())])
        reason = "rnd" if model.integrality[j] else "lin"
        ders.append(f"d{k}_{t} {'L' if sense == '<=' else 'G'} {q(v)} 1 {j} 1 {{ {reason} {body} }} -1")
        (up_src if sense == "<=" else lo_src)[j] = (idx() - 1, v)

    def probe(k: int, t: int, step: tuple, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> None:
        """A probe: assume the other side of x_j's value, derive its steps, make x_j's bound from the
        crossing bounds they leave, and ``uns`` the two sides."""
        j, sense, v, inner = step
        other = idx()
        ders.append(f"p{k}_{t}o {'G' if sense == '<=' else 'L'} {q(v + 1 if sense == '<=' else v - 1)} 1 {j} 1 "
                    f"{{ asm }} -1")
        lo2, up2 = dict(lo_src), dict(up_src)
        (lo2 if sense == "<=" else up2)[j] = (other, v + 1 if sense == "<=" else v - 1)
        for u, st in enumerate(inner):
            derive(k, f"{t}_{u}", st, lo2, up2)
        cross = next(c for c in [j, *(st[0] for st in inner)] if c in lo2 and c in up2 and lo2[c][1] > up2[c][1])
        base = (up2 if sense == "<=" else lo2)[j]  # x_j <= u (or >= l) plus M (crossing) reaches v
        big = abs(base[1] - v) / (lo2[cross][1] - up2[cross][1])
        sign = 1 if sense == "<=" else -1  # a <= derivation adds M (x_c <= u_c) - M (x_c >= l_c); >= the reverse
        terms: dict[int, Fraction] = {base[0]: Fraction(1)}
        terms[up2[cross][0]] = terms.get(up2[cross][0], Fraction(0)) + sign * big
        terms[lo2[cross][0]] = terms.get(lo2[cross][0], Fraction(0)) - sign * big
        terms = {ci: w for ci, w in terms.items() if w != 0}
        body = " ".join([str(len(terms))] + [f"{ci} {q(w)}" for ci, w in sorted(terms.items())])
        ders.append(f"p{k}_{t}c {'L' if sense == '<=' else 'G'} {q(v)} 1 {j} 1 {{ lin {body} }} -1")
        got = idx() - 1
        ders.append(f"p{k}_{t}s {'L' if sense == '<=' else 'G'} {q(v)} 1 {j} 1 {{ asm }} -1")
        same = idx() - 1
        ders.append(f"p{k}_{t} {'L' if sense == '<=' else 'G'} {q(v)} 1 {j} 1 {{ uns {got} {other} {same} {same} }} -1")
        (up_src if sense == "<=" else lo_src)[j] = (idx() - 1, v)

    def visit(k: int, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> int:
        lo_src, up_src = dict(lo_src), dict(up_src)
        for t, step in enumerate(steps.get(k, [])):
            (probe if isinstance(step[3], list) else derive)(k, t, step, lo_src, up_src)  # rows and duals
        if not children[k]:
            return leaf(k, lo_src, up_src)
        got = []
        for ch in sorted(children[k], key=lambda x: nodes[x][3] != "<="):
            _, _, col, sense, val = nodes[ch]
            a = idx()
            pi = f"1 {col} 1" if not isinstance(col, list) else _sparse({j: Fraction(v) for j, v in col})
            ders.append(f"asm{ch} {'L' if sense == '<=' else 'G'} {q(Fraction(float(val)))} {pi} {{ asm }} -1")
            lo2, up2 = dict(lo_src), dict(up_src)
            if isinstance(col, list):  # a general disjunction: its assumption is a row of the subtree's leaves
                split_asm[ch] = a
            else:
                (up2 if sense == "<=" else lo2)[col] = (a, Fraction(float(val)))
            got.append((visit(ch, lo2, up2), a))
        (d1, a1), (d2, a2) = got
        ders.append(f"uns{k} G {q(claimed)} {obj_coefs} {{ uns {d1} {a1} {d2} {a2} }} -1")
        return idx() - 1

    def bounds_of(idx_map: dict[int, int], values: np.ndarray) -> dict[int, tuple]:
        return {j: (ci, Fraction(float(values[j]))) for j, ci in idx_map.items()}

    lo_v, up_v = model.col_lower.copy(), model.col_upper.copy()
    ints_mask = model.integrality
    lo_v[ints_mask], up_v[ints_mask] = np.ceil(lo_v[ints_mask] - 1e-9), np.floor(up_v[ints_mask] + 1e-9)
    root = visit(0, bounds_of(lb_idx, lo_v), bounds_of(ub_idx, up_v))
    if hyp is not None:  # the split c x <= T | c x >= T + 1 (an integral objective): the second side is its own proof
        ders.append(f"hyp2 G {q(t_hyp + 1)} {obj_coefs} {{ asm }} -1")
        ders.append(f"final G {q(claimed)} {obj_coefs} {{ uns {root} {hyp} {idx() - 1} {idx() - 1} }} -1")
    out += [f"DER {len(ders)}", *ders]
    return "\n".join(out) + "\n"


class _RowsOf:
    """Row i's coefficients and, per side, the constraints (with weights) that give it: a model row is its
    own >= or <= constraint; row -1 the hypothesis; ("duals", k) the hypothesis minus sum_i y_i times row i's
    constraint (lemma 12 of the checker: r x <= T - Y)."""

    def __init__(self, model: StandardModel, c: dict[int, Fraction], duals: list | None = None) -> None:
        self.model, self.c = model, c
        self.duals = duals or []
        self.hypothesis: dict[int, Fraction] = {}  # the constraint index of c x <= T, once assumed

    def row(self, i: int | tuple, row_g: dict[int, int], row_l: dict[int, int]) -> tuple:
        if isinstance(i, tuple):  # r = c - A^T y: the hypothesis with weight 1, row i's side with -y_i
            y = {int(r): Fraction(v) for r, v in self.duals[i[1]]}
            upper = dict(self.hypothesis)
            for r, yi in y.items():
                if yi != 0:
                    ci = row_g[r] if yi > 0 else row_l[r]
                    upper[ci] = upper.get(ci, Fraction(0)) - yi
            return exact_reduced_costs(self.model, y), {}, upper
        if i == -1:
            return self.c, {}, dict(self.hypothesis)
        return exact_row(self.model, i), ({row_g[i]: Fraction(1)} if i in row_g else {}), \
            ({row_l[i]: Fraction(1)} if i in row_l else {})


def write_vipr(path: str | Path, model: StandardModel, doc: dict[str, Any]) -> Path:
    return write_text_atomic(path, vipr_text(model, doc))
