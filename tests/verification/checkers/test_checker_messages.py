"""Every way a proof can be malformed is rejected with one exact message (and never an exception).

The proof is the engine's own for Guzelsoy-Ralphs at b = 1/2: nodes 0..4 (0 splits x1 <= 0 | x1 >= 1, node
2 splits x2 <= 0 | x2 >= 1), leaves 1, 3, 4, one equality row.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import proof_doc


@pytest.fixture(scope="module")
def proof(gr):
    doc = proof_doc(gr, branch_and_bound(gr, propagate=False, splits=False))  # variable disjunctions only
    assert [n[:4] for n in doc["nodes"]] == [[0, None, None, None], [1, 0, 0, "<="], [2, 0, 0, ">="],
                                            [3, 2, 3, "<="], [4, 2, 3, ">="]]
    assert [lf["node"] for lf in doc["leaves"]] == [1, 3, 4]
    return doc


def _set(path, value):
    def edit(d):
        cur = d
        for k in path[:-1]:
            cur = cur[k]
        cur[path[-1]] = value
    return edit


def _node(i, row):
    return _set(["nodes", i], row)


SAME = "node %d: children must branch on the same integer column (or the same disjunction)"
BRANCH = "node 1: expected a branch [column or [[column, coefficient], ...], '<=' or '>=', value]"
EDITS = [
    ("not a mapping", lambda d: d.clear() or d.update({"x": 1}), "the proof refers to another model (sha256 differs)"),
    ("version 99", _set(["version"], 99), "unknown proof version 99 (this checker reads versions 1, 2 and 3)"),
    ("version true", _set(["version"], True), "unknown proof version True (this checker reads versions 1, 2 and 3)"),
    ("sense", _set(["sense"], "max"), "only minimisation proofs are supported"),
    ("no claim", _set(["claimed_bound"], None), "no claimed bound"),
    ("bool claim", _set(["claimed_bound"], True), "claimed_bound: expected a number, got True"),
    ("nan claim", _set(["claimed_bound"], float("nan")), "claimed_bound: expected a finite number, got nan"),
    ("inf claim", _set(["claimed_bound"], float("-inf")), "claimed_bound: expected a finite number, got -inf"),
    ("list claim", _set(["claimed_bound"], [1]),
     "claimed_bound: expected a finite number or a rational 'p/q', got [1]"),
    ("zero denominator", _set(["claimed_bound_exact"], "1/0"),
     "claimed_bound_exact: expected a finite number or a rational 'p/q', got '1/0'"),
    ("decimal string", _set(["claimed_bound_exact"], "0.5"),
     "claimed_bound_exact: expected a finite number or a rational 'p/q', got '0.5'"),
    ("integral flag", _set(["objective_integral"], True),
     "objective_integral claimed, but the objective is not integral on integer points"),
    ("nodes not a list", _set(["nodes"], {"0": None}), "nodes: expected a list"),
    ("short node", _node(1, [1, 0, 0, "<="]), "malformed node [1, 0, 0, '<=']"),
    ("node not a list", _node(1, "x"), "malformed node 'x'"),
    ("string id", _node(1, ["1", 0, 0, "<=", 0.0]), "node id '1' is not an integer or appears twice"),
    ("bool id", _node(1, [True, 0, 0, "<=", 0.0]), "node id True is not an integer or appears twice"),
    ("repeated id", _node(1, [2, 0, 0, "<=", 0.0]), "node id 2 is not an integer or appears twice"),
    ("string parent", _node(1, [1, "0", 0, "<=", 0.0]), "node 1: parent '0' is not a node id"),
    ("bool parent", _node(1, [1, False, 0, "<=", 0.0]), "node 1: parent False is not a node id"),
    ("string column", _node(1, [1, 0, "0", "<=", 0.0]), BRANCH),
    ("bool column", _node(1, [1, 0, True, "<=", 0.0]), BRANCH),
    ("sense", _node(1, [1, 0, 0, "<", 0.0]), BRANCH),
    ("nan branch", _node(1, [1, 0, 0, "<=", float("nan")]), "node 1: branch value: expected a finite number, got nan"),
    ("two roots", _node(1, [1, None, 0, "<=", 0.0]), "the tree must have exactly one root, node 0, without a branch"),
    ("root branches", _node(0, [0, None, 0, "<=", 0.0]),
     "the tree must have exactly one root, node 0, without a branch"),
    ("root has a column", _node(0, [0, None, 0, None, None]),
     "the tree must have exactly one root, node 0, without a branch"),
    ("other root", lambda d: d["nodes"].__setitem__(0, [7, None, None, None, None]),
     "the tree must have exactly one root, node 0, without a branch"),
    ("unknown parent", _node(3, [3, 9, 3, "<=", 0.0]), "node 3: unknown parent 9"),
    ("cycle", lambda d: (_node(3, [3, 4, 3, "<=", 0.0])(d), _node(4, [4, 3, 3, ">=", 1.0])(d)),
     "2 node(s) are not reachable from the root (a cycle or a detached part)"),
    ("three children", lambda d: d["nodes"].append([5, 0, 0, ">=", 2.0]), "node 0 has 3 children; a disjunction "
     "needs exactly 2"),
    ("one child", lambda d: d["nodes"].__setitem__(4, [4, 3, 3, ">=", 1.0]),
     ["node 2 has 1 children; a disjunction needs exactly 2", "node 3 has 1 children; a disjunction needs exactly 2"]),
    ("other columns", _node(4, [4, 2, 0, ">=", 1.0]), SAME % 2),
    ("continuous column", lambda d: (_node(3, [3, 2, 1, "<=", 0.0])(d), _node(4, [4, 2, 1, ">=", 1.0])(d)),
     SAME % 2),
    ("column out of range", lambda d: (_node(3, [3, 2, 9, "<=", 0.0])(d), _node(4, [4, 2, 9, ">=", 1.0])(d)),
     SAME % 2),
    ("negative column", lambda d: (_node(3, [3, 2, -1, "<=", 0.0])(d), _node(4, [4, 2, -1, ">=", 1.0])(d)),
     SAME % 2),
    ("column one past the end", lambda d: (_node(3, [3, 2, 4, "<=", 0.0])(d), _node(4, [4, 2, 4, ">=", 1.0])(d)),
     SAME % 2),
    ("two bad disjunctions", lambda d: (_node(1, [1, 0, 1, "<=", 0.0])(d), _node(3, [3, 2, 0, "<=", 0.0])(d)),
     [SAME % 0,
      SAME % 2]),
    ("gap", _node(4, [4, 2, 3, ">=", 2.0]), "node 2: branches must be x <= k and x >= k + 1 for an integer k"),
    ("same sense", _node(4, [4, 2, 3, "<=", 1.0]), "node 2: branches must be x <= k and x >= k + 1 for an integer k"),
    ("fraction", lambda d: (_node(3, [3, 2, 3, "<=", 0.5])(d), _node(4, [4, 2, 3, ">=", 1.5])(d)),
     "node 2: branches must be x <= k and x >= k + 1 for an integer k"),
    ("leaves not a list", _set(["leaves"], {"1": {}}), "leaves: expected a list of objects"),
    ("leaf not an object", _set(["leaves", 0], [1]), "leaves: expected a list of objects"),
    ("leaf node string", _set(["leaves", 0, "node"], "1"), "leaf record for node '1': not a node id, or given twice"),
    ("leaf given twice", _set(["leaves", 1, "node"], 1), "leaf record for node 1: not a node id, or given twice"),
    ("leaf of an inner node", _set(["leaves", 0, "node"], 2),
     "leaf records do not match the tree's leaves (missing [1], extra [2])"),
    ("leaf missing", lambda d: d["leaves"].pop(),
     "leaf records do not match the tree's leaves (missing [4], extra [])"),
    ("multipliers not a list", _set(["leaves", 0, "y"], {"0": 2.0}), "leaf 1: malformed multipliers"),
    ("multiplier pair", _set(["leaves", 0, "y"], [[0, 2.0, 1]]), "leaf 1: malformed multipliers"),
    ("unknown row", _set(["leaves", 0, "y"], [[5, 2.0]]), "leaf 1: multiplier of an unknown or repeated row 5"),
    ("negative row", _set(["leaves", 0, "y"], [[-1, 2.0]]), "leaf 1: multiplier of an unknown or repeated row -1"),
    ("row one past the end", _set(["leaves", 0, "y"], [[1, 2.0]]),
     "leaf 1: multiplier of an unknown or repeated row 1"),
    ("two leaves, unknown rows", lambda d: (_set(["leaves", 0, "y"], [[1, 2.0]])(d), _set(["leaves", 2, "y"],
                                                                                            [[7, 1.0]])(d)),
     ["leaf 1: multiplier of an unknown or repeated row 1", "leaf 4: multiplier of an unknown or repeated row 7"]),
    ("two leaves, malformed", lambda d: (_set(["leaves", 0, "y"], 3)(d), _set(["leaves", 1, "y"], [1])(d)),
     ["leaf 1: malformed multipliers", "leaf 3: malformed multipliers"]),
    ("bool row", _set(["leaves", 0, "y"], [[False, 2.0]]), "leaf 1: multiplier of an unknown or repeated row False"),
    ("repeated row", _set(["leaves", 0, "y"], [[0, 1.0], [0, 1.0]]),
     "leaf 1: multiplier of an unknown or repeated row 0"),
    ("infinite multiplier", _set(["leaves", 0, "y"], [[0, float("inf")]]),
     "leaf 1: multiplier of row 0: expected a finite number, got inf"),
    ("weaker multiplier", _set(["leaves", 0, "y"], [[0, 1.0]]),
     "leaf 1: bound 1/2 (~0.5) does not reach the claimed 1"),
]


@pytest.mark.parametrize(("label", "edit", "message"), EDITS, ids=[e[0] for e in EDITS])
def test_malformed_proofs_are_rejected_with_one_message(gr, proof, label, edit, message):
    d = copy.deepcopy(proof)
    edit(d)
    rep = check_proof(gr, d)
    assert rep.ok is False and rep.claim is None
    assert rep.errors == (message if isinstance(message, list) else [message])


def test_a_proof_that_is_no_mapping(gr):
    rep = check_proof(gr, ["not", "a", "proof"])  # type: ignore[arg-type]
    assert rep.ok is False and rep.errors == ["expected a JSON object"]


def test_an_infinite_side_gives_no_bound(gr, proof):
    """Lemma 7: a multiplier whose row side is infinite proves nothing."""
    model = replace(gr, row_lower=np.array([-np.inf]))  # the row becomes <= 1/2 only
    d = copy.deepcopy(proof)
    d["model_sha256"] = model.fingerprint()
    rep = check_proof(model, d)
    assert rep.ok is False
    assert "leaf 1: the bound is -infinity (a multiplier uses an infinite side or box)" in rep.errors
    free = replace(gr, col_upper=np.array([30.0, np.inf, 30.0, 30.0]))  # x3 unbounded above
    d["model_sha256"] = free.fingerprint()
    d["leaves"][0]["y"] = [[0, 3.0]]  # r_x3 = 2 - 3 < 0 needs the (infinite) upper bound
    assert "leaf 1: the bound is -infinity (a multiplier uses an infinite side or box)" in check_proof(free, d).errors


@pytest.mark.parametrize(("change", "integral"), [
    ({"offset": 0.5}, False),
    ({"offset": float("inf")}, False),
    ({"c": [1.0, 0.0, 0.0, 2.0]}, True),
    ({"c": [1.0, 0.5, 0.0, 2.0]}, False),
    ({"c": [1.5, 0.0, 0.0, 2.0]}, False),
    ({"c": [np.nan, 0.0, 0.0, 2.0]}, False),
    ({"offset": 0.5, "c": [1.0, 0.0, 0.0, 2.0]}, False),
    ({"c": [np.inf, 0.0, 0.0, 2.0]}, False),
    ({"offset": -3.0, "c": [1.0, 0, 0, 0]}, True),
])
def test_objective_integrality_is_read_off_the_model(gr, change, integral):
    from bnnmilp.verification.checkers.proofs import _objective_is_integral

    kw = {k: (np.array(v, dtype=float) if k == "c" else v) for k, v in change.items()}
    assert _objective_is_integral(replace(gr, **kw)) is integral


def test_zero_multipliers_are_harmless():
    """A zero multiplier (of any row, listed anywhere) neither helps nor hurts a leaf."""
    from tests.verification.proofs.test_proofs import random_milp

    model = random_milp(1)
    doc = proof_doc(model, branch_and_bound(model, propagate=False))
    assert check_proof(model, doc).ok
    d = copy.deepcopy(doc)
    for lf in d["leaves"]:
        used = {i for i, _ in lf["y"]}
        spare = [i for i in range(model.n_rows) if i not in used]
        lf["y"] = [[i, 0.0] for i in spare] + lf["y"]
    assert any(len(lf["y"]) > len(o["y"]) for lf, o in zip(d["leaves"], doc["leaves"], strict=True))
    assert check_proof(model, d).ok


def test_checks_go_on_after_an_infinite_bound(gr, proof):
    """Every leaf is checked and reported, also after one whose bound is -infinity."""
    model = replace(gr, row_lower=np.array([-np.inf]))
    d = copy.deepcopy(proof)
    d["model_sha256"] = model.fingerprint()
    rep = check_proof(model, d)
    assert [e for e in rep.errors if "-infinity" in e] == [
        f"leaf {n}: the bound is -infinity (a multiplier uses an infinite side or box)" for n in (1, 4)]


def test_defaults_and_integer_numbers_are_accepted(gr, proof):
    d = copy.deepcopy(proof)
    del d["sense"]  # min is the default
    d["claimed_bound"] = 1  # a JSON integer
    d["claimed_bound_exact"] = "1"
    rep = check_proof(gr, d)
    assert rep.ok is True and rep.claim == 1 and rep.errors == []


def test_long_lists_of_leaf_ids_are_cut_at_five():
    from tests.verification.proofs.test_proofs import BNN, bnn_proof

    tm, _, _, _, doc = bnn_proof(*BNN[0])
    leaves = sorted(lf["node"] for lf in doc["leaves"])
    d = copy.deepcopy(doc)
    d["leaves"] = [{"node": -k, "y": []} for k in range(1, 8)]
    rep = check_proof(tm.model, d)
    assert rep.errors == [f"leaf records do not match the tree's leaves (missing {leaves[:5]}, "
                          f"extra {[-7, -6, -5, -4, -3]})"]


def test_the_weakest_leaf_is_reported():
    from bnnmilp.verification.proofs.bnb import ExactModel
    from tests.verification.proofs.test_proofs import random_milp

    model = random_milp(1)
    tree = branch_and_bound(model, propagate=False)  # lemma 7 messages on a tree without derived bounds
    rep = check_proof(model, proof_doc(model, tree))
    ex = ExactModel(model)
    bounds = [ex.bound({int(i): Fraction(float(lf.y[i])) for i in np.flatnonzero(lf.y)},
                       tree.nodes[lf.node].lower, tree.nodes[lf.node].upper) for lf in tree.leaves]
    assert len(set(bounds)) > 1  # leaves prove different bounds: the smallest is reported
    assert rep.ok is True and rep.weakest_leaf_bound == min(bounds)


def _box_model(lo: float, up: float, cost: float):
    """min cost * x over one integer column lo <= x <= up (no rows): the box alone is the proof."""
    from bnnmilp.milp.model import ModelBuilder

    b = ModelBuilder("box")
    x = b.add_vars("x", (1,), lo, up, True)
    b.set_objective(x, np.array([cost]))
    model = b.build()
    model.objective_integral = model.objective_integral_by_structure()
    return model


@pytest.mark.parametrize(("lo", "up", "cost", "claim"), [
    (0.5, 3.7, 1.0, 1), (0.5, 3.7, -1.0, -3), (-2.5, np.inf, 1.0, -2), (-np.inf, 2.5, -1.0, -2),
    (0.5, 3.7, 1.5, Fraction(3, 2)), (0.5, 3.7, -1.5, Fraction(-9, 2)),  # not integral: rounding is needed
    (-2.5, np.inf, 1.5, -3), (-np.inf, 2.5, -1.5, -3)])
def test_integer_bounds_are_rounded_inward(lo, up, cost, claim):
    """Lemma 4: min x over 0.5 <= x <= 3.7 is 1, max is 3; infinite bounds on the other side are fine."""
    model = _box_model(lo, up, cost)
    tree = branch_and_bound(model, propagate=False)  # lemma 7 messages on a tree without derived bounds
    assert tree.claimed_exact == claim
    doc = proof_doc(model, tree)
    assert check_proof(model, doc).ok is True
    d = copy.deepcopy(doc)
    for lf in d["leaves"]:
        del lf["y"]  # no multipliers at all: the box is the proof
    rep = check_proof(model, d)
    assert rep.ok is True and rep.claim == claim


def test_an_empty_leaf_needs_no_multipliers_and_does_not_end_the_check():
    """Lemma 6: x <= -1 is empty for x in [0, 3]; the other leaf must still prove the claim."""
    model = _box_model(0.0, 3.0, 1.0)
    doc = {"format": "bnnmilp-proof", "version": 1, "model_sha256": model.fingerprint(), "sense": "min",
           "objective_integral": True, "claimed_bound": 0,
           "nodes": [[0, None, None, None, None], [1, 0, 0, "<=", -1.0], [2, 0, 0, ">=", 0.0]],
           "leaves": [{"node": 1, "kind": "empty"}, {"node": 2, "kind": "bound", "y": []}]}
    rep = check_proof(model, doc)
    assert rep.ok is True and rep.claim == 0
    doc["claimed_bound"] = 1  # false: x = 0 is feasible
    rep = check_proof(model, doc)
    assert rep.ok is False and rep.errors == ["leaf 2: bound 0 does not reach the claimed 1 (an integral objective "
                                              "needs a bound above ceil(claim) - 1)"]


@pytest.mark.parametrize(("lower", "cost", "row", "claim"), [(0.0, 1.0, (2.5, np.inf), 3),
                                                              (-np.inf, -1.0, (-np.inf, 2.5), -2)])
def test_branches_on_an_unbounded_integer_column(lower, cost, row, claim):
    """min x over integers x >= 2.5 (x >= 0, no upper bound); max x over integers x <= 2.5 (a free column):
    branching on columns with infinite bounds."""
    from bnnmilp.milp.model import INF, ModelBuilder

    b = ModelBuilder("unbounded")
    x = b.add_vars("x", (1,), lower, INF, True)
    b.add_rows("r", (1,), x[None, :], np.array([[1.0]]), *row)
    b.set_objective(x, np.array([cost]))
    model = b.build()
    model.objective_integral = model.objective_integral_by_structure()
    tree = branch_and_bound(model, propagate=False)  # lemma 7 messages on a tree without derived bounds
    assert tree.claimed_exact == claim
    doc = proof_doc(model, tree)
    assert len(doc["nodes"]) == 3 and check_proof(model, doc).ok is True
