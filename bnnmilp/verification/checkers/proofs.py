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
   every integer-feasible point (lemma 4). A branch may also be a general disjunction (version 3): the
   column field is a list of [column, coefficient] pairs pi with integer coefficients on integer columns,
   and the children are pi x <= k and pi x >= k + 1; pi x is an integer at every integer point, so again
   one child holds it. Such a branch leaves the box alone: its constraint joins the rows of its subtree.
6. **Empty leaves.** A leaf whose box has l_j > u_j for some j holds no point: nothing to prove.
7. **Weak duality (Neumaier & Shcherbina 2004).** For any rational multipliers y and r = c - A^T y,
   every x with L <= A x <= U in the leaf box satisfies
   c x + offset >= offset + sum_i y_i (L_i if y_i > 0 else U_i) + sum_j (r_j l_j if r_j > 0 else r_j u_j)
   (terms with y_i = 0 or r_j = 0 omitted), because y_i a_i x >= y_i L_i for y_i > 0, y_i a_i x >= y_i U_i
   for y_i < 0, and likewise r_j x_j over the box. If a needed side or bound is infinite the leaf
   proves nothing (it is rejected). A leaf's ``splits`` [[node, z], ...] are multipliers of the general
   disjunctions on its path (lemma 5) taken as rows: z > 0 on a ">=" branch, z < 0 on a "<=" one.
8. **Integral objective.** If the offset is an integer, every integer column has an integer cost and
   every continuous column cost 0, then c x + offset is an integer at every integer-feasible x. A leaf
   bound b > ceil(K) - 1 then gives c x + offset >= ceil(K) >= K. The checker verifies these
   conditions itself from the model; ``objective_integral`` in the proof only asks for this rule.
9. **Conclusion.** If every non-empty leaf has bound b >= K (or, under lemma 8, b > ceil(K) - 1),
   every feasible x lies in some leaf (lemma 5) and has c x + offset >= K (lemma 7).
10. **Derived bounds** (version 2, ``derived``). A step (node, j, sense, v, i) tightens node's box after
   its branch and the steps before it. Row i with sides L_i <= a_i x <= U_i and a_ij != 0 gives, over the
   box of the other columns, x_j <= (U_i - sum_{k != j} min(a_ik l_k, a_ik u_k)) / a_ij for a_ij > 0
   (the other cases alike, with L_i and the maxima), rounded down for an integer column. The step holds
   when v is no tighter than that bound; every point of the node's box that satisfies row i then lies in
   the tightened box. Children inherit the tightened box; a leaf's box is the root box tightened by the
   branches and steps of every node on its path. A probe step (node, j, "<=", v, [steps]) for an integer
   column and integer v holds if the box with x_j >= v + 1 added, tightened by its own steps (each checked
   as above), is empty: every integer point then has x_j <= v (">=" alike, with x_j <= v - 1).
11. **The hypothesis** (row -1, integral objective only). To prove K it suffices to show that no
   integer-feasible point has c x + offset <= T = ceil(K) - 1 (lemma 8). Row -1 is that inequality, used
   as a row by lemma 10; the leaves' bounds then show that no such point exists (a bound b > T
   contradicts c x + offset <= T, and an empty box holds no point), so lemma 9's conclusion stands.
12. **Reduced-cost fixing** (a step whose row is ``{"duals": k}``, integral objective only). For
   multipliers y = duals[k] of the right signs (lemma 7), every point of the box has
   c x + offset >= Y + r x with r = c - A^T y and Y = offset + sum_i y_i (L_i if y_i > 0 else U_i);
   under the hypothesis (lemma 11) r x <= T - Y, a row to which lemma 10 applies.
13. **Symmetry** (version 3, ``symmetry``). A generator lists permutations sigma of columns and pi of
   rows as [from, to] pairs (each a bijection of the listed indices; the others fixed). It is an
   automorphism if c, the column bounds and integrality of j equal those of sigma(j), the sides of row i
   equal those of pi(i), and row pi(i) is row i with each column j renamed sigma(j); then g x, with
   (g x)_sigma(j) = x_j, is integer-feasible with the objective of x (and meets the hypothesis if x does).
   In an orbit of such maps, the point that is lexicographically largest in the proof's column order
   (the columns not listed after it) has y >=lex g y for every generator g. If the first t columns
   m_1..m_t of the order that g moves, and their preimages sigma^-1(m_k), are binary on the root box, that
   gives sum_k 2^(t-k) (x_{m_k} - x_{sigma^-1(m_k)}) >= 0. The checker builds these rows itself and
   appends them (generator g is row n_rows + g); a claim proven with them holds for the model, since
   every objective value of the model is taken at a point that satisfies them.
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
        s, e = int(model.indptr[i]), int(model.indptr[i + 1])  # inline, not exact_row: the checker's hot loop
        for j, a in zip(model.indices[s:e].tolist(), model.data[s:e].tolist(), strict=True):
            r[j] = r.get(j, F(0)) - yi * F(a)
    return r


def exact_row(model: StandardModel, i: int) -> dict[int, Fraction]:
    """Row i's coefficients in rationals (repeated entries added), as lemma 10 and the VIPR writer read it."""
    s, e = int(model.indptr[i]), int(model.indptr[i + 1])
    a: dict[int, Fraction] = {}
    for j, v in zip(model.indices[s:e].tolist(), model.data[s:e].tolist(), strict=True):
        a[j] = a.get(j, F(0)) + F(v)
    return a


def exact_row_part(model: StandardModel, y: dict[int, Fraction]) -> Fraction | None:
    """Y = offset + sum_i y_i (L_i if y_i > 0 else U_i), or None where a multiplier uses an infinite side."""
    total = F(float(model.offset))
    for i, yi in y.items():
        if yi == 0:
            continue
        side = model.row_lower[i] if yi > 0 else model.row_upper[i]
        if not math.isfinite(side):
            return None
        total += yi * F(float(side))
    return total


def _exact_leaf_bound(model: StandardModel, y: dict[int, Fraction], lo: list, up: list,
                      splits: tuple = ()) -> Fraction | None:
    """Lemma 7: exact lower bound of c x + offset over the leaf box, or None when it is -infinity.
    ``splits``: (pi, side, z) of the path's general disjunctions used as rows, z of the side's sign."""
    total = exact_row_part(model, y)
    if total is None:
        return None
    r = exact_reduced_costs(model, y)
    for pi, side, z in splits:
        total += z * side
        for j, a in pi:
            r[j] = r.get(j, F(0)) - z * a
    for j, rj in r.items():
        if rj == 0:
            continue
        b = lo[j] if rj > 0 else up[j]
        if b is None:
            return None
        total += rj * b
    return total


def _permutation(pairs: Any, size: int, what: str) -> dict[int, int]:
    """Lemma 13: [from, to] pairs as a bijection of the listed indices (all below ``size``)."""
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise _MalformedError(f"{what}: expected a list of [from, to] pairs")
    perm: dict[int, int] = {}
    for a, b in pairs:
        for v in (a, b):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < size:
                raise _MalformedError(f"{what}: {v!r} is not an index below {size}")
        if a in perm:
            raise _MalformedError(f"{what}: {a} is mapped twice")
        perm[a] = b
    if set(perm.values()) != set(perm):
        raise _MalformedError(f"{what}: not a permutation of the listed indices")
    return perm


def _with_symmetry(model: StandardModel, sym: Any, rep: CheckReport) -> StandardModel | None:
    """Lemma 13: the model with the rows of the proof's automorphisms appended; None after rep.fail."""
    if not isinstance(sym, dict) or not isinstance(sym.get("order"), list) \
            or not isinstance(sym.get("generators"), list):
        rep.fail("symmetry: expected {'order': [columns], 'generators': [...]}")
        return None
    n, m = model.n_cols, model.n_rows
    order = sym["order"]
    if any(isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < n for j in order) \
            or len(set(order)) != len(order):
        rep.fail("symmetry: the order must list distinct columns of the model")
        return None
    row_of = np.repeat(np.arange(m), np.diff(model.indptr))

    def binary(j: int) -> bool:  # on the root box of lemma 4
        lo, up = float(model.col_lower[j]), float(model.col_upper[j])
        return bool(model.integrality[j]) and math.isfinite(lo) and math.isfinite(up) and math.ceil(lo) >= 0 \
            and math.floor(up) <= 1

    added: list[dict[int, Fraction]] = []
    for g, gen in enumerate(sym["generators"]):
        where = f"symmetry generator {g}"
        if not isinstance(gen, dict):
            rep.fail(f"{where}: expected an object")
            return None
        sigma = _permutation(gen.get("columns"), n, f"{where}: columns")
        pi = _permutation(gen.get("rows"), m, f"{where}: rows")
        t = gen.get("terms")
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 52:
            rep.fail(f"{where}: terms must be an integer from 1 to 52")
            return None
        for j, k in sigma.items():
            if not all(a[j] == a[k] for a in (model.c, model.col_lower, model.col_upper, model.integrality)):
                rep.fail(f"{where}: not an automorphism (column {j} and its image {k} differ in cost, bounds or "
                         "integrality)")
                return None
        moved_cols = np.fromiter(sigma, dtype=np.int64, count=len(sigma))
        touched = set(pi) | set(row_of[np.isin(model.indices, moved_cols)].tolist())
        for i in sorted(touched):
            k = pi.get(i, i)
            image = {sigma.get(j, j): v for j, v in exact_row(model, i).items() if v != 0}
            same_sides = model.row_lower[i] == model.row_lower[k] and model.row_upper[i] == model.row_upper[k]
            if not same_sides or image != {j: v for j, v in exact_row(model, k).items() if v != 0}:
                rep.fail(f"{where}: not an automorphism (row {i} with its columns renamed is not row {k})")
                return None
        lead = [j for j in order if sigma.get(j, j) != j][:t]
        if len(lead) < t:
            rep.fail(f"{where}: the order has {len(lead)} columns that it moves, fewer than its {t} terms")
            return None
        inverse = {b: a for a, b in sigma.items()}
        row: dict[int, Fraction] = {}
        for k, j in enumerate(lead):
            w = F(2) ** (t - 1 - k)
            for col, v in ((j, w), (inverse[j], -w)):
                if not binary(col):
                    rep.fail(f"{where}: column {col} of its row is not binary")
                    return None
                row[col] = row.get(col, F(0)) + v
        added.append({j: v for j, v in row.items() if v != 0})
    if not added:
        return model
    cols = [np.array(sorted(r), dtype=np.int64) for r in added]
    vals = [np.array([float(r[j]) for j in sorted(r)]) for r in added]  # sums of powers of 2: exact doubles
    counts = np.array([c.size for c in cols])
    return StandardModel(model.c, model.offset, model.col_lower, model.col_upper, model.integrality,
                         np.concatenate([model.indptr, model.indptr[-1] + np.cumsum(counts)]),
                         np.concatenate([model.indices, *cols]), np.concatenate([model.data, *vals]),
                         np.concatenate([model.row_lower, np.zeros(len(added))]),
                         np.concatenate([model.row_upper, np.full(len(added), np.inf)]),
                         objective_integral=model.objective_integral)


def _disjunction(model: StandardModel, pairs: list, where: str) -> tuple[tuple[int, Fraction], ...]:
    """Lemma 5: pi of a general disjunction, as sorted (column, coefficient) pairs: distinct integer columns,
    nonzero integer coefficients, so that pi x is an integer at every integer point."""
    pi: dict[int, Fraction] = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], bool) or not isinstance(pair[0], int):
            raise _MalformedError(f"{where}: a disjunction is a list of [column, coefficient] pairs")
        j, a = pair[0], rational(pair[1], f"{where}: coefficient")
        if not 0 <= j < model.n_cols or not model.integrality[j] or a == 0 or a.denominator != 1 or j in pi:
            raise _MalformedError(f"{where}: a disjunction needs distinct integer columns with nonzero integer "
                                  f"coefficients, got x{j} with {a}")
        pi[j] = a
    if not pi:
        raise _MalformedError(f"{where}: an empty disjunction")
    return tuple(sorted(pi.items()))


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
            if isinstance(col, list):  # a general disjunction: pi as [[column, coefficient], ...]
                col = _disjunction(model, col, f"node {nid}")
            if isinstance(col, bool) or not isinstance(col, (int, tuple)) or sense not in ("<=", ">="):
                rep.fail(f"node {nid}: expected a branch [column or [[column, coefficient], ...], '<=' or '>=', "
                         "value]")
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
        if c1 != c2 or (isinstance(c1, int) and not (0 <= c1 < model.n_cols and model.integrality[c1])):
            rep.fail(f"node {n}: children must branch on the same integer column (or the same disjunction)")
            continue
        pair = {s1: v1, s2: v2}
        if set(pair) != {"<=", ">="} or pair[">="] != pair["<="] + 1 or pair["<="].denominator != 1:
            rep.fail(f"node {n}: branches must be x <= k and x >= k + 1 for an integer k")
    return nodes, {n for n, ch in children.items() if not ch}


def check_proof(model: StandardModel, doc: dict[str, Any]) -> CheckReport:
    """Check a proof document against ``model`` by lemmas 1-13 of this module; never raises on bad input."""
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
    head = _header(model, doc, rep)
    if head is None:
        return
    model, claim, integral = head
    parsed = _tree(model, doc, rep)
    if parsed is None or not rep.ok:
        return
    nodes, leaves = parsed
    given = _leaf_records(doc, leaves, rep)
    if given is None:
        return
    target = F(math.ceil(claim)) - 1 if integral else claim  # lemma 8 / lemma 9
    steps = _steps(model, doc, nodes, integral, rep)
    if steps is None:
        return
    walk = _Walk(model, nodes, leaves, given, steps, _Rows(model, target if integral else None, doc.get("duals")),
                 integral, claim, target)
    walk.run()
    for _, msg in sorted(walk.errors, key=lambda e: e[0]):  # in node order, whatever the order of the search
        rep.fail(msg)
    rep.leaves = len(leaves)
    rep.weakest_leaf_bound = walk.weakest
    rep.claim = claim


def _header(model: StandardModel, doc: Any, rep: CheckReport) -> tuple[StandardModel, Fraction, bool] | None:
    """Lemmas 2 and 3: the proof is about this model, in a version this checker reads, of a minimisation; the
    claim (the larger of its float and exact forms) and whether the objective is integral, as the model allows;
    the model with the symmetry rows the proof adds."""
    if not isinstance(doc, dict):
        rep.fail("expected a JSON object")
        return None
    if doc.get("model_sha256") != model.fingerprint():  # lemma 2
        rep.fail("the proof refers to another model (sha256 differs)")
        return None
    if isinstance(doc.get("version"), bool) or doc.get("version") not in (1, 2, 3):
        rep.fail(f"unknown proof version {doc.get('version')!r} (this checker reads versions 1, 2 and 3)")
        return None
    if doc.get("sense", "min") != "min":
        rep.fail("only minimisation proofs are supported")
        return None
    if doc.get("claimed_bound") is None:
        rep.fail("no claimed bound")
        return None
    claims = [rational(doc["claimed_bound"], "claimed_bound")]  # lemma 3
    if doc.get("claimed_bound_exact") is not None:
        claims.append(rational(doc["claimed_bound_exact"], "claimed_bound_exact"))
    integral = doc.get("objective_integral") is True
    if integral and not _objective_is_integral(model):
        rep.fail("objective_integral claimed, but the objective is not integral on integer points")
        return None
    if "symmetry" in doc:
        model = _with_symmetry(model, doc["symmetry"], rep)
        if model is None:
            return None
    return model, max(claims), integral


def _leaf_records(doc: dict[str, Any], leaves: set[int], rep: CheckReport) -> dict[int, dict] | None:
    """The leaf records by node: one per leaf of the tree, no other."""
    given: dict[int, dict] = {}
    records = doc.get("leaves")
    if not isinstance(records, list) or not all(isinstance(lf, dict) for lf in records):
        rep.fail("leaves: expected a list of objects")
        return None
    for lf in records:
        node = lf.get("node")
        if isinstance(node, bool) or not isinstance(node, int) or node in given:
            rep.fail(f"leaf record for node {node!r}: not a node id, or given twice")
            return None
        given[node] = lf
    if set(given) != leaves:
        missing, extra = sorted(leaves - set(given)), sorted(set(given) - leaves)
        rep.fail(f"leaf records do not match the tree's leaves (missing {missing[:5]}, extra {extra[:5]})")
        return None
    return given


def _root_bound(v: float, integer: bool, upper: bool) -> Fraction | None:  # lemma 4
    if not math.isfinite(v):
        return None
    q = F(float(v))
    if integer:
        q = F(math.floor(q)) if upper else F(math.ceil(q))
    return q


class _Walk:
    """The tree depth first, with each node's box: branching and derived bounds tightened on the way down and
    undone on the way back (lemmas 5 and 10), every leaf's bound computed exactly (lemmas 6 to 9)."""

    def __init__(self, model: StandardModel, nodes: dict, leaves: set[int], given: dict[int, dict], steps: dict,
                 rows: _Rows, integral: bool, claim: Fraction, target: Fraction) -> None:
        self.model, self.nodes, self.leaves, self.given = model, nodes, leaves, given
        self.steps, self.rows = steps, rows
        self.integral, self.claim, self.target = integral, claim, target
        self.lo = [_root_bound(v, bool(i), False) for v, i in zip(model.col_lower, model.integrality, strict=True)]
        self.up = [_root_bound(v, bool(i), True) for v, i in zip(model.col_upper, model.integrality, strict=True)]
        self.children: dict[int, list[int]] = {n: [] for n in nodes}
        for n, (parent, *_rest) in nodes.items():
            if parent is not None:
                self.children[parent].append(n)
        self.active: dict[int, tuple] = {}  # the general disjunctions on the current path, by node
        self.weakest: Fraction | None = None
        self.errors: list[tuple[int, str]] = []

    def run(self) -> None:
        stack: list[tuple[int, list | None]] = [(0, None)]
        while stack:
            n, undo = stack.pop()
            if undo is not None:
                self.undo(n, undo)
                continue
            log, failed = self.enter(n)
            stack.append((n, log))
            if failed:  # the proof is rejected; the steps below would fail in turn
                continue
            if n not in self.leaves:
                stack.extend((ch, None) for ch in self.children[n])
                continue
            if any(a is not None and b is not None and a > b for a, b in zip(self.lo, self.up, strict=True)):
                continue  # lemma 6
            self.leaf(n)

    def tighten(self, log: list, col: int, sense: str, v: Fraction) -> None:
        lo, up = self.lo, self.up
        log.append((col, lo[col], up[col]))
        if sense == "<=":
            up[col] = v if up[col] is None else min(up[col], v)
        else:
            lo[col] = v if lo[col] is None else max(lo[col], v)

    def undo(self, n: int, log: list) -> None:
        for j, a, b in reversed(log):
            if j is None:  # a general disjunction leaves the path
                self.active.pop(n)
            else:
                self.lo[j], self.up[j] = a, b

    def enter(self, n: int) -> tuple[list, bool]:
        """Node n's branch and derived bounds on the box; (what to undo, whether a derivation failed)."""
        log: list[tuple] = []
        parent, col, sense, q = self.nodes[n]
        if isinstance(col, tuple):  # lemma 5: pi x <= q or pi x >= q, a row of this subtree
            self.active[n] = (col, sense, q)
            log.append((None, None, None))
        elif parent is not None:
            self.tighten(log, col, sense, q)
        for col, sense, v, i in self.steps.get(n, []):
            why = _probe(self.rows, self.model, col, sense, v, i, self.lo, self.up) if isinstance(i, list) else \
                _follows(self.rows, self.model, col, sense, v, i, self.lo, self.up)
            if why is not None:
                self.errors.append((n, f"node {n}: derived bound x{col} {sense} {_show(v)} {why}; "
                                       "its subtree is not checked"))
                return log, True
            self.tighten(log, col, sense, v)
        return log, False

    def leaf(self, n: int) -> None:
        """Leaf n's multipliers give, over its box, a bound that reaches the claim (lemmas 7 to 9)."""
        model, errors = self.model, self.errors
        ys = self.given[n].get("y", [])
        if not isinstance(ys, list) or not all(isinstance(p, list) and len(p) == 2 for p in ys):
            errors.append((n, f"leaf {n}: malformed multipliers"))
            return
        y: dict[int, Fraction] = {}
        for i, v in ys:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < model.n_rows or i in y:
                errors.append((n, f"leaf {n}: multiplier of an unknown or repeated row {i!r}"))
                return
            y[i] = rational(v, f"leaf {n}: multiplier of row {i}")
        splits = _leaf_splits(self.given[n].get("splits", []), self.active, n)
        if isinstance(splits, str):
            errors.append((n, splits))
            return
        b = _exact_leaf_bound(model, y, self.lo, self.up, splits)
        if b is None:
            errors.append((n, f"leaf {n}: the bound is -infinity (a multiplier uses an infinite side or box)"))
            return
        self.weakest = b if self.weakest is None or b < self.weakest else self.weakest
        if not (b > self.target if self.integral else b >= self.target):
            errors.append((n, f"leaf {n}: bound {_show(b)} does not reach the claimed {_show(self.claim)}"
                           + (" (an integral objective needs a bound above ceil(claim) - 1)" if self.integral
                              else "")))


def _leaf_splits(records: Any, active: dict[int, tuple], leaf: int) -> tuple | str:
    """Lemma 7's (pi, side, z) for a leaf's ``splits`` records, or why they are rejected."""
    if not isinstance(records, list):
        return f"leaf {leaf}: splits must be a list of [node, multiplier]"
    out, seen = [], set()
    for rec in records:
        if not isinstance(rec, list) or len(rec) != 2 or rec[0] not in active or rec[0] in seen:
            return f"leaf {leaf}: split multiplier {rec!r} does not name a general disjunction on its path (once)"
        seen.add(rec[0])
        pi, sense, side = active[rec[0]]
        z = rational(rec[1], f"leaf {leaf}: split multiplier")
        if z != 0 and (z > 0) != (sense == ">="):
            return f"leaf {leaf}: the multiplier of node {rec[0]}'s {sense} disjunction has the wrong sign"
        out.append((pi, side, z))
    return tuple(out)


def _steps(model: StandardModel, doc: dict[str, Any], nodes: dict, integral: bool, rep: CheckReport
           ) -> dict[int, list[tuple]] | None:
    """Lemma 10's records as {node: [(column, sense, value, row), ...]} in the proof's order, or None."""
    raw = doc.get("derived", [])
    if not isinstance(raw, list):
        rep.fail("derived: expected a list")
        return None
    n_duals = len(doc.get("duals", [])) if isinstance(doc.get("duals", []), list) else 0
    out: dict[int, list[tuple]] = {}

    def head(rec: list, where: str) -> tuple | None:
        """(column, sense, value) of a step, checked for form; None after rep.fail."""
        col, sense, v = rec
        if isinstance(col, bool) or not isinstance(col, int) or not 0 <= col < model.n_cols \
                or sense not in ("<=", ">="):
            rep.fail(f"{where}: derived bound {rec!r}: expected [column, '<=' or '>=', value, row]")
            return None
        return col, sense, rational(v, f"{where}: derived bound")

    def step(rec: Any, where: str) -> tuple | None:
        """(column, sense, value, row) of a step on a model row or the hypothesis; None after rep.fail."""
        if not isinstance(rec, list) or len(rec) != 4:
            rep.fail(f"{where}: malformed derived bound {rec!r}")
            return None
        i = rec[3]
        if isinstance(i, bool) or not isinstance(i, int) or not (-1 <= i < model.n_rows) or (i == -1 and not integral):
            rep.fail(f"{where}: derived bound {rec!r}: row {i!r} is not a row of the model"
                     + (" (row -1, the hypothesis, needs an integral objective)" if i == -1 else ""))
            return None
        got = head(rec[:3], where)
        return None if got is None else (*got, i)

    for rec in raw:
        if not isinstance(rec, list) or len(rec) != 5 or isinstance(rec[0], bool) or not isinstance(rec[0], int) \
                or rec[0] not in nodes:
            rep.fail(f"malformed derived bound {rec!r}: expected [node, column, sense, value, row or steps]")
            return None
        n, where, why = rec[0], f"node {rec[0]}", rec[4]
        if isinstance(why, dict):  # reduced-cost fixing (lemma 12): a row made of the multipliers duals[k]
            k = why.get("duals")
            if not integral or isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n_duals:
                rep.fail(f"{where}: reduced-cost fixing {rec!r}: expected {{'duals': k}} with k < {n_duals} and an "
                         "integral objective")
                return None
            got = head(rec[1:4], where)
            row: Any = ("duals", k)
        elif isinstance(why, list):  # a probe: its own steps empty the other side
            got = head(rec[1:4], where)
            row = [step(r, f"{where} (probe of x{rec[1]})") for r in why]
            if got is None or any(t is None for t in row):
                return None
            if not model.integrality[got[0]] or got[2].denominator != 1:
                rep.fail(f"{where}: a probe needs an integer column and an integer value, got x{got[0]} {got[1]} "
                         f"{got[2]}")
                return None
        else:
            got = step(rec[1:], where)
            row = None if got is None else got[3]
        if got is None:
            return None
        out.setdefault(n, []).append((*got[:3], row))
    return out


def _follows(rows: _Rows, model: StandardModel, col: int, sense: str, v: Fraction, i: int, lo: list, up: list
             ) -> str | None:
    """Lemma 10 for one step over the box (lo, up): None if it holds, else why not."""
    b = rows.implied(i, col, sense, bool(model.integrality[col]), lo, up)
    if b is None or (v < b if sense == "<=" else v > b):
        where = f"the multipliers duals[{i[1]}]" if isinstance(i, tuple) else f"row {i}"
        return f"does not follow from {where}" + ("" if b is None else f" (it gives {_show(b)})")
    return None


def _probe(rows: _Rows, model: StandardModel, col: int, sense: str, v: Fraction, inner: list, lo: list, up: list
           ) -> str | None:
    """Lemma 10's probe: the other side of x_col's integer value, tightened by ``inner``, is empty."""
    undo: list[tuple] = [(col, lo[col], up[col])]
    try:
        if sense == "<=":
            lo[col] = v + 1 if lo[col] is None else max(lo[col], v + 1)
        else:
            up[col] = v - 1 if up[col] is None else min(up[col], v - 1)
        for k, s2, v2, i2 in inner:
            why = _follows(rows, model, k, s2, v2, i2, lo, up)
            if why is not None:
                return f"(a probe): its step x{k} {s2} {_show(v2)} {why}"
            undo.append((k, lo[k], up[k]))
            if s2 == "<=":
                up[k] = v2 if up[k] is None else min(up[k], v2)
            else:
                lo[k] = v2 if lo[k] is None else max(lo[k], v2)
        if not any(lo[k] is not None and up[k] is not None and lo[k] > up[k] for k, *_ in undo):
            return "(a probe): the other side's box is not empty after its steps"
        return None
    finally:
        for k, a, b in reversed(undo):
            lo[k], up[k] = a, b


class _Rows:
    """The model's rows in rationals, read on demand; row -1: c x <= T - offset (lemma 11); ("duals", k):
    r x <= T - Y with r = c - A^T y and Y = offset + sum_i y_i (L_i if y_i > 0 else U_i) for y = duals[k]
    (lemma 12)."""

    def __init__(self, model: StandardModel, hypothesis: Fraction | None, duals: Any = None) -> None:
        self.model = model
        self.hypothesis = hypothesis
        self.duals = duals if isinstance(duals, list) else []
        self.cache: dict[Any, tuple[dict[int, Fraction], Fraction | None, Fraction | None] | None] = {}
        if hypothesis is not None:
            c = {int(j): F(float(model.c[j])) for j in np.flatnonzero(model.c)}
            self.cache[-1] = (c, None, hypothesis - F(float(model.offset)))

    def _dual_row(self, k: int) -> tuple[dict[int, Fraction], Fraction | None, Fraction | None] | None:
        """Lemma 12's row, or None where the multipliers are malformed or use an infinite side."""
        m, pairs = self.model, self.duals[k]
        if self.hypothesis is None or not isinstance(pairs, list):
            return None
        y: dict[int, Fraction] = {}
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], bool) \
                    or not isinstance(pair[0], int) or not 0 <= pair[0] < m.n_rows or pair[0] in y:
                return None
            y[pair[0]] = rational(pair[1], f"duals[{k}]")
        total = exact_row_part(m, y)
        return None if total is None else (exact_reduced_costs(m, y), None, self.hypothesis - total)

    def row(self, i: Any) -> tuple[dict[int, Fraction], Fraction | None, Fraction | None] | None:
        if isinstance(i, tuple):
            if i not in self.cache:
                self.cache[i] = self._dual_row(i[1])
            return self.cache[i]
        if i not in self.cache:
            m = self.model
            side = [F(float(x)) if math.isfinite(x) else None for x in (m.row_lower[i], m.row_upper[i])]
            self.cache[i] = (exact_row(m, i), side[0], side[1])
        return self.cache[i]

    def implied(self, i: int, j: int, sense: str, integer: bool, lo: list, up: list) -> Fraction | None:
        """Lemma 10: the bound on x_j that row i implies over the box of its other columns (None: none)."""
        got = self.row(i)
        if got is None:
            return None
        a, L, U = got
        aj = a.get(j, F(0))
        if aj == 0:
            return None
        use_upper = (sense == "<=") == (aj > 0)  # U with the others at their minimum, else L at the maximum
        side = U if use_upper else L
        if side is None:
            return None
        rest = F(0)
        for k, ak in a.items():
            if k == j or ak == 0:
                continue
            b = (lo[k] if ak > 0 else up[k]) if use_upper else (up[k] if ak > 0 else lo[k])
            if b is None:
                return None
            rest += ak * b
        v = (side - rest) / aj
        if integer:
            v = F(math.floor(v)) if sense == "<=" else F(math.ceil(v))
        return v


def _show(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator} (~{float(q):.12g})"
