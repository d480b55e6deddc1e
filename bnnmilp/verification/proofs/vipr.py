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
from bnnmilp.verification.checkers.proofs import exact_reduced_costs, exact_row


def q(v: Fraction | float | int) -> str:
    return fraction_str(Fraction(v))


def _sparse(coefs: dict[int, Fraction]) -> str:
    items = [(j, v) for j, v in sorted(coefs.items()) if v != 0]
    return " ".join([str(len(items))] + [f"{j} {q(v)}" for j, v in items])


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_.[]()" else "_" for ch in name) or "x"


def vipr_text(model: StandardModel, doc: dict[str, Any]) -> str:
    """The proof ``doc`` of a bound on ``model`` as a VIPR certificate: variables, constraints (column bounds
    first, then rows), the claim, and one derivation per step, leaf and disjunction of the tree."""
    if "symmetry" in doc:  # certify --format vipr proves without them
        from bnnmilp.errors import ModelFileError

        raise ModelFileError(None, "symmetry", "VIPR has no rule for symmetry rows: prove with certify(..., "
                                               "vipr=True) to export to VIPR")
    return _Vipr(model, doc).text()


class _Vipr:
    """The certificate as it is written: the constraints' indices per column bound and row side, the tree read
    from the proof, and the derivations so far (each derivation's index is m + its position)."""

    def __init__(self, model: StandardModel, doc: dict[str, Any]) -> None:
        self.model, self.doc = model, doc
        self.c = {j: Fraction(float(model.c[j])) for j in np.flatnonzero(model.c)}
        self.obj_coefs = _sparse(self.c)
        self.cons: list[str] = []
        self.lb_idx: dict[int, int] = {}
        self.ub_idx: dict[int, int] = {}
        self.row_g: dict[int, int] = {}
        self.row_l: dict[int, int] = {}
        self.n_bounds = self._constraints()
        self.m = len(self.cons)
        # VIPR's objective has no constant term: its bounds are on c x = objective - offset
        exact = doc.get("claimed_bound_exact")
        self.claimed = Fraction(exact if exact is not None else float(doc["claimed_bound"])) \
            - Fraction(float(model.offset))
        self._read_tree()
        self.integral = bool(doc.get("objective_integral"))
        self.ders: list[str] = []
        self.rows = _RowsOf(model, self.c, doc.get("duals"))
        self.hyp: int | None = None
        self.t_hyp = Fraction(0)
        self.split_asm: dict[int, int] = {}  # node of a general disjunction -> the index of its assumption

    # ---- the model ---------------------------------------------------------------------------------------
    def con(self, name: str, sense: str, rhs: float, coefs: str) -> int:
        """Append a constraint; returns its index."""
        self.cons.append(f"{name} {sense} {q(Fraction(float(rhs)))} {coefs}")
        return len(self.cons) - 1

    def _constraints(self) -> int:
        """Column bounds (integer columns' rounded inwards), then each row's finite sides; returns the number of
        bounds."""
        model = self.model
        for j in range(model.n_cols):
            lo, up = model.col_lower[j], model.col_upper[j]
            if model.integrality[j]:
                lo = math.ceil(lo - 1e-9) if math.isfinite(lo) else lo
                up = math.floor(up + 1e-9) if math.isfinite(up) else up
            for side, bound, sense, idx in (("lb", lo, "G", self.lb_idx), ("ub", up, "L", self.ub_idx)):
                if math.isfinite(bound):
                    idx[j] = self.con(f"{side}{j}", sense, bound, f"1 {j} 1")
        n_bounds = len(self.cons)
        for i in range(model.n_rows):
            s, e = int(model.indptr[i]), int(model.indptr[i + 1])
            coefs = _sparse({int(j): Fraction(float(a))
                             for j, a in zip(model.indices[s:e], model.data[s:e], strict=True)})
            L, U = model.row_lower[i], model.row_upper[i]
            if math.isfinite(L) and math.isfinite(U) and L == U:
                self.row_g[i] = self.row_l[i] = self.con(f"r{i}", "E", L, coefs)
                continue
            for suffix, bound, sense, idx in (("g", L, "G", self.row_g), ("l", U, "L", self.row_l)):
                if math.isfinite(bound):
                    idx[i] = self.con(f"r{i}{suffix}", sense, bound, coefs)
        return n_bounds

    def _read_tree(self) -> None:
        """Nodes, children, leaves and each node's recorded propagation steps, from the proof document."""
        doc = self.doc
        self.nodes = {row[0]: row for row in doc["nodes"]}
        self.children: dict[int, list[int]] = {k: [] for k in self.nodes}
        for k, row in self.nodes.items():
            if row[1] is not None:
                self.children[row[1]].append(k)
        self.leaves = {lf["node"]: lf for lf in doc["leaves"]}
        self.steps: dict[int, list] = {}
        for n_, col, sense, v, i in doc.get("derived", []):
            row = ("duals", i["duals"]) if isinstance(i, dict) else i if not isinstance(i, list) else \
                [(c2, s2, Fraction(v2), i2) for c2, s2, v2, i2 in i]
            self.steps.setdefault(n_, []).append((col, sense, Fraction(v), row))

    # ---- the derivations ---------------------------------------------------------------------------------
    def idx(self) -> int:
        return self.m + len(self.ders)

    def derivation(self, name: str, sense: str, rhs: Fraction, coefs: str, reason: str) -> int:
        """Append a derivation; returns its index."""
        self.ders.append(f"{name} {sense} {q(rhs)} {coefs} {{ {reason} }} -1")
        return self.idx() - 1

    def assume_hypothesis(self) -> None:
        """Lemma 11: where a step uses the hypothesis c x <= T, assume it now and split on it at the end."""

        def uses(i: int | list | tuple) -> bool:
            return isinstance(i, tuple) or (i == -1 if not isinstance(i, list) else any(t[3] == -1 for t in i))

        if not any(uses(i) for st in self.steps.values() for *_, i in st):
            return
        offset = Fraction(float(self.model.offset))
        self.t_hyp = Fraction(math.ceil(self.claimed + offset)) - 1 - offset
        self.hyp = self.derivation("hyp", "L", self.t_hyp, self.obj_coefs, "asm")
        self.rows.hypothesis = {self.hyp: Fraction(1)}

    def leaf(self, k: int, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> int:
        """A leaf's bound c x >= claim from its multipliers (lemma 6 for an empty box)."""
        y = {int(i): Fraction(v) for i, v in self.leaves[k]["y"]}  # doubles, or exact "p/q" strings
        empty = [j for j in lo_src if j in up_src and lo_src[j][1] > up_src[j][1]]
        if empty:
            terms = self._empty_box(k, empty[0], lo_src, up_src)
            y = {}
        else:
            terms = {}
        for i, yi in y.items():
            ci = self.row_g[i] if yi > 0 else self.row_l[i]
            terms[ci] = terms.get(ci, Fraction(0)) + yi
        r = exact_reduced_costs(self.model, y) if not empty else {}
        for node, zs in ([] if empty else self.leaves[k].get("splits", [])):  # a general disjunction's assumption
            z = Fraction(zs)
            terms[self.split_asm[node]] = terms.get(self.split_asm[node], Fraction(0)) + z
            for j, a in self.nodes[node][2]:
                r[j] = r.get(j, Fraction(0)) - z * Fraction(a)
        for j, rj in r.items():
            if rj == 0:
                continue
            ci = lo_src[j][0] if rj > 0 else up_src[j][0]
            terms[ci] = terms.get(ci, Fraction(0)) + rj
        reason = "rnd" if self.integral else "lin"
        return self.derivation(f"leaf{k}", "G", self.claimed, self.obj_coefs, f"{reason} {_terms(terms)}")

    def _empty_box(self, k: int, j: int, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> dict[int, Fraction]:
        """Lemma 6: M (x_j >= l_j) - M (x_j <= u_j) gives 0 >= M (l_j - u_j), with c x over the box."""
        terms: dict[int, Fraction] = {}
        base = Fraction(0)
        for jj, cj in self.c.items():
            src = lo_src.get(jj) if cj > 0 else up_src.get(jj)
            if src is None:
                raise ValueError(f"VIPR: leaf {k} is empty but objective column {jj} is unbounded")
            terms[src[0]] = terms.get(src[0], Fraction(0)) + cj
            base += cj * src[1]
        big = max(Fraction(0), self.claimed - base) / (lo_src[j][1] - up_src[j][1])
        terms[lo_src[j][0]] = terms.get(lo_src[j][0], Fraction(0)) + big
        terms[up_src[j][0]] = terms.get(up_src[j][0], Fraction(0)) - big
        return terms

    def derive(self, k: int, t: int | str, step: tuple, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> None:
        """Lemma 10 as a VIPR derivation: (1 / a_j) row i plus (-a_k / a_j) times x_k's bound, rounded for
        an integer column."""
        j, sense, v, i = step
        a, lcon, ucon = self.rows.row(i, self.row_g, self.row_l)
        aj = a[j]
        use_upper = (sense == "<=") == (aj > 0)
        terms = {ci: w / aj for ci, w in (ucon if use_upper else lcon).items()}
        for kk, ak in a.items():
            if kk == j or ak == 0:
                continue
            src = (lo_src if ak > 0 else up_src) if use_upper else (up_src if ak > 0 else lo_src)
            terms[src[kk][0]] = terms.get(src[kk][0], Fraction(0)) - ak / aj
        reason = "rnd" if self.model.integrality[j] else "lin"
        got = self.derivation(f"d{k}_{t}", _sense(sense), v, f"1 {j} 1", f"{reason} {_terms(terms, keep_zero=True)}")
        (up_src if sense == "<=" else lo_src)[j] = (got, v)

    def probe(self, k: int, t: int, step: tuple, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> None:
        """A probe: assume the other side of x_j's value, derive its steps, make x_j's bound from the
        crossing bounds they leave, and ``uns`` the two sides."""
        j, sense, v, inner = step
        w = v + 1 if sense == "<=" else v - 1
        other = self.derivation(f"p{k}_{t}o", "G" if sense == "<=" else "L", w, f"1 {j} 1", "asm")
        lo2, up2 = dict(lo_src), dict(up_src)
        (lo2 if sense == "<=" else up2)[j] = (other, w)
        for u, st in enumerate(inner):
            self.derive(k, f"{t}_{u}", st, lo2, up2)
        cross = next(c for c in [j, *(st[0] for st in inner)] if c in lo2 and c in up2 and lo2[c][1] > up2[c][1])
        base = (up2 if sense == "<=" else lo2)[j]  # x_j <= u (or >= l) plus M (crossing) reaches v
        big = abs(base[1] - v) / (lo2[cross][1] - up2[cross][1])
        sign = 1 if sense == "<=" else -1  # a <= derivation adds M (x_c <= u_c) - M (x_c >= l_c); >= the reverse
        terms: dict[int, Fraction] = {base[0]: Fraction(1)}
        terms[up2[cross][0]] = terms.get(up2[cross][0], Fraction(0)) + sign * big
        terms[lo2[cross][0]] = terms.get(lo2[cross][0], Fraction(0)) - sign * big
        got = self.derivation(f"p{k}_{t}c", _sense(sense), v, f"1 {j} 1", f"lin {_terms(terms)}")
        same = self.derivation(f"p{k}_{t}s", _sense(sense), v, f"1 {j} 1", "asm")
        done = self.derivation(f"p{k}_{t}", _sense(sense), v, f"1 {j} 1", f"uns {got} {other} {same} {same}")
        (up_src if sense == "<=" else lo_src)[j] = (done, v)

    def visit(self, k: int, lo_src: dict[int, tuple], up_src: dict[int, tuple]) -> int:
        """Node k's steps, then its leaf or its two subtrees joined by ``uns``; returns the derivation of c x >=
        claim under node k's assumptions."""
        lo_src, up_src = dict(lo_src), dict(up_src)
        for t, step in enumerate(self.steps.get(k, [])):
            (self.probe if isinstance(step[3], list) else self.derive)(k, t, step, lo_src, up_src)
        if not self.children[k]:
            return self.leaf(k, lo_src, up_src)
        got = []
        for ch in sorted(self.children[k], key=lambda x: self.nodes[x][3] != "<="):
            _, _, col, sense, val = self.nodes[ch]
            pi = f"1 {col} 1" if not isinstance(col, list) else _sparse({j: Fraction(v) for j, v in col})
            a = self.derivation(f"asm{ch}", _sense(sense), Fraction(float(val)), pi, "asm")
            lo2, up2 = dict(lo_src), dict(up_src)
            if isinstance(col, list):  # a general disjunction: its assumption is a row of the subtree's leaves
                self.split_asm[ch] = a
            else:
                (up2 if sense == "<=" else lo2)[col] = (a, Fraction(float(val)))
            got.append((self.visit(ch, lo2, up2), a))
        (d1, a1), (d2, a2) = got
        return self.derivation(f"uns{k}", "G", self.claimed, self.obj_coefs, f"uns {d1} {a1} {d2} {a2}")

    def text(self) -> str:
        model = self.model
        ints = np.flatnonzero(model.integrality).tolist()
        out = ["VER 1.0", f"VAR {model.n_cols}", *[_safe(s) for s in model.col_names()],
               f"INT {len(ints)}", " ".join(map(str, ints)), "OBJ min", self.obj_coefs,
               f"CON {self.m} {self.n_bounds}", *self.cons, f"RTP range {q(self.claimed)} inf", "SOL 0"]
        self.assume_hypothesis()
        lo_v, up_v = model.col_lower.copy(), model.col_upper.copy()
        ints_mask = model.integrality
        lo_v[ints_mask], up_v[ints_mask] = np.ceil(lo_v[ints_mask] - 1e-9), np.floor(up_v[ints_mask] + 1e-9)
        root = self.visit(0, _bounds_of(self.lb_idx, lo_v), _bounds_of(self.ub_idx, up_v))
        if self.hyp is not None:  # the split c x <= T | c x >= T + 1 (integral objective): the second side proves
            second = self.derivation("hyp2", "G", self.t_hyp + 1, self.obj_coefs, "asm")
            self.derivation("final", "G", self.claimed, self.obj_coefs, f"uns {root} {self.hyp} {second} {second}")
        return "\n".join([*out, f"DER {len(self.ders)}", *self.ders]) + "\n"


def _sense(sense: str) -> str:
    return "L" if sense == "<=" else "G"


def _terms(terms: dict[int, Fraction], keep_zero: bool = False) -> str:
    """A derivation's reason body: the count, then (constraint, multiplier) pairs by constraint."""
    kept = terms if keep_zero else {ci: v for ci, v in terms.items() if v != 0}
    return " ".join([str(len(kept))] + [f"{ci} {q(v)}" for ci, v in sorted(kept.items())])


def _bounds_of(idx_map: dict[int, int], values: np.ndarray) -> dict[int, tuple]:
    return {j: (ci, Fraction(float(values[j]))) for j, ci in idx_map.items()}


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
