"""Bound propagation (proofs/propagate.py) against enumeration, and its steps in proofs.

The oracle is every integer point of small pure-integer MILPs: a propagated box must keep every point that
satisfies the rows (and, with a limit T, c x + offset <= T), and an empty box must hold none.
"""

from __future__ import annotations

import copy
import itertools
import math
import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import proof_doc
from bnnmilp.verification.proofs.propagate import OBJECTIVE_ROW, Propagator
from tests.verification.checkers.test_checker_soundness import _bnn, milps


def _points(model, lower, upper, limit):
    A = np.zeros((model.n_rows, model.n_cols))
    for i in range(model.n_rows):
        for p in range(model.indptr[i], model.indptr[i + 1]):
            A[i, model.indices[p]] += model.data[p]
    ranges = [range(math.ceil(lower[j]), math.floor(upper[j]) + 1) for j in range(model.n_cols)]
    for x in itertools.product(*ranges):
        act = A @ np.array(x, float)
        if np.all(act >= model.row_lower) and np.all(act <= model.row_upper) and \
                (limit is None or model.c @ np.array(x, float) + model.offset <= limit):
            yield np.array(x, float)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=milps(), limit=st.one_of(st.none(), st.integers(-8, 8)))
def test_propagation_keeps_every_feasible_point(model, limit):
    if not np.all(model.integrality):
        return  # the enumeration needs integer columns only
    lo = np.ceil(model.col_lower)
    up = np.floor(model.col_upper)
    plo, pup, steps, empty = Propagator(model).run(lo, up, limit)
    pts = list(_points(model, lo, up, limit))
    if empty:
        assert pts == []  # an empty box is a proof that no point satisfies the rows and the limit
        return
    assert np.all(plo >= lo) and np.all(pup <= up)
    for x in pts:
        assert np.all(x >= plo) and np.all(x <= pup), (x, plo, pup)
    assert all(s.row != OBJECTIVE_ROW for s in steps) if limit is None else True
    # each recorded step is the tightening it claims, in order
    blo, bup = lo.copy(), up.copy()
    for s in steps:
        if s.sense == "<=":
            assert s.value < bup[s.column]
            bup[s.column] = s.value
        else:
            assert s.value > blo[s.column]
            blo[s.column] = s.value
    assert np.array_equal(blo, plo) and np.array_equal(bup, pup)


def test_a_two_row_chain_is_propagated_and_empties():
    """x + y >= 3 and y <= 0 over x, y in {0, 1, 2}: one pass gives y <= 0 (row 1), then from the pass's
    starting box x >= 1 and y >= 1 (row 0), and y's box empties. Uppers are applied before lowers."""
    from bnnmilp.milp.model import INF, ModelBuilder

    b = ModelBuilder("chain")
    x = b.add_vars("x", (2,), 0.0, 2.0, True)
    b.add_rows("r", (2,), np.array([[x[0], x[1]], [x[1], x[1]]]), np.array([[1.0, 1.0], [1.0, 0.0]]),
               np.array([3.0, -INF]), np.array([INF, 0.0]))
    b.set_objective(x, np.array([1.0, 1.0]))
    model = b.build()
    _, _, steps, empty = Propagator(model).run(model.col_lower, model.col_upper, None)
    assert empty
    assert [(s.column, s.sense, s.value, s.row) for s in steps] == [(1, "<=", 0.0, 1), (0, ">=", 1.0, 0),
                                                                    (1, ">=", 1.0, 0)]


def test_bnn_proofs_carry_steps_that_the_checker_redoes():
    model, doc, opt = _bnn(3)  # the ternary 2-2-1, optimum 1
    assert doc["version"] == 2 and len(doc["derived"]) > 0
    assert any(r[4] == -1 for r in doc["derived"])  # the hypothesis c x + offset <= 0 was used
    assert check_proof(model, doc).ok
    # the same instance without propagation: a larger tree, the same claim
    plain = branch_and_bound(model, cutoff=float(opt), propagate=False)
    with_steps = branch_and_bound(model, cutoff=float(opt))
    assert plain.claimed_exact == with_steps.claimed_exact == opt
    assert len(with_steps.nodes) < len(plain.nodes)
    assert "derived" not in proof_doc(model, plain) and proof_doc(model, plain)["version"] == 1


def test_a_tightened_step_is_rejected_with_its_node_and_row():
    model, doc, _ = _bnn(3)
    d = copy.deepcopy(doc)
    k = next(i for i, r in enumerate(d["derived"]) if model.integrality[r[1]])
    node, col, sense, value, row = d["derived"][k]
    d["derived"][k][3] = value - 1 if sense == "<=" else value + 1
    rep = check_proof(model, d)
    assert not rep.ok
    assert re.fullmatch(rf"node {node}: derived bound x{col} {re.escape(sense)} -?\d+ does not follow from row "
                        rf"{row} \(it gives -?\d+\); its subtree is not checked", rep.errors[0]), rep.errors


def test_the_hypothesis_row_needs_an_integral_objective():
    model, doc, _ = _bnn(3)
    d = copy.deepcopy(doc)
    d["objective_integral"] = False
    d["claimed_bound"] = 1.0
    rep = check_proof(model, d)
    k = next(i for i, r in enumerate(d["derived"]) if r[4] == -1)
    node, *rest = d["derived"][k]
    assert not rep.ok and rep.errors == [f"node {node}: derived bound {rest!r}: row -1 is not a row of the model "
                                         "(row -1, the hypothesis, needs an integral objective)"]


def _probe_record(doc):
    return next(i for i, r in enumerate(doc["derived"]) if isinstance(r[4], list) and r[4])


def test_probes_are_recorded_and_checked():
    """Probing settles the ternary 2-2-1 at the root; a probe whose own steps are cut short, moved to a
    continuous column or given a fractional value is rejected, naming the node."""
    model, doc, _ = _bnn(3)
    k = _probe_record(doc)
    node, col, sense, value, inner = doc["derived"][k]
    assert model.integrality[col] and float(value).is_integer() and all(len(s) == 4 for s in inner)
    short = copy.deepcopy(doc)
    short["derived"][k][4] = inner[:-1]  # the last step is what emptied the other side
    rep = check_proof(model, short)
    assert not rep.ok and rep.errors == [f"node {node}: derived bound x{col} {sense} {int(value)} (a probe): the other "
                                         "side's box is not empty after its steps; its subtree is not checked"]
    frac = copy.deepcopy(doc)
    frac["derived"][k][3] = value + 0.5
    rep = check_proof(model, frac)
    assert not rep.ok and rep.errors[0].startswith(f"node {node}: a probe needs an integer column and an integer value")
    cont = int(np.flatnonzero(~model.integrality)[0])
    moved = copy.deepcopy(doc)
    moved["derived"][k][1] = cont
    rep = check_proof(model, moved)
    assert not rep.ok and rep.errors[0].startswith(f"node {node}: a probe needs an integer column")


def test_a_probe_with_a_wrong_inner_step_names_it():
    model, doc, _ = _bnn(3)
    k = _probe_record(doc)
    d = copy.deepcopy(doc)
    node, col, sense, value, inner = d["derived"][k]
    c2, s2, v2, r2 = inner[0]
    inner[0][2] = v2 - 1 if s2 == "<=" else v2 + 1  # tighter than its row gives
    rep = check_proof(model, d)
    assert not rep.ok and len(rep.errors) == 1
    assert rep.errors[0].startswith(f"node {node}: derived bound x{col} {sense} {int(value)} (a probe): its step "
                                    f"x{c2} {s2} ")
    assert f"does not follow from row {r2}" in rep.errors[0]


def test_a_fractional_cutoff_keeps_the_hypothesis_below_the_checkers():
    """An integral objective cut off at a fractional value (here the optimum plus 1/2): the engine
    propagates under c x + offset <= ceil(cutoff) - 1, never below the checker's ceil(claim) - 1."""
    model, _, opt = _bnn(3)
    tree = branch_and_bound(model, cutoff=float(opt) + 0.5)
    doc = proof_doc(model, tree)
    assert any(r[4] == -1 for r in doc.get("derived", []))
    rep = check_proof(model, doc)
    assert rep.ok, rep.errors
    assert rep.claim == opt  # the claim is capped by the incumbent, and the optimum is what the leaves prove


def test_reduced_cost_fixings_carry_their_multipliers_and_are_checked():
    """The continuous 2-1 instance fixes columns by reduced costs: each such step names the node LP's
    multipliers, which the checker turns into the row r x <= T - Y (lemma 12); scaling a multiplier or
    tightening the step is rejected, and so is a reference to multipliers that are not there."""
    from tests.verification.proofs.test_proofs import BNN, bnn_proof

    tm, _, _, _, doc = bnn_proof(*BNN[3])
    model = tm.model
    fixings = [i for i, r in enumerate(doc["derived"]) if isinstance(r[4], dict)]
    assert fixings and len(doc["duals"]) >= 1 and check_proof(model, doc).ok
    k = fixings[0]
    node, col, sense, value, ref = doc["derived"][k]
    assert model.integrality[col] and sense in ("<=", ">=")
    tighter = copy.deepcopy(doc)
    tighter["derived"][k][3] = value - 1 if sense == "<=" else value + 1
    rep = check_proof(model, tighter)
    assert not rep.ok and rep.errors[0].startswith(f"node {node}: derived bound x{col} {sense} ")
    assert f"does not follow from the multipliers duals[{ref['duals']}]" in rep.errors[0]
    missing = copy.deepcopy(doc)
    missing["derived"][k][4] = {"duals": len(doc["duals"])}
    rep = check_proof(model, missing)
    assert not rep.ok and "reduced-cost fixing" in rep.errors[0]
    flipped = copy.deepcopy(doc)  # every multiplier of the vector negated: the row's sides swap, the step fails
    flipped["duals"][ref["duals"]] = [[i, -v] for i, v in doc["duals"][ref["duals"]]]
    assert not check_proof(model, flipped).ok
