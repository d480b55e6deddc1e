"""Symmetry rows in proofs: hidden-unit swaps are automorphisms, proofs with them match brute force, and the
checker (lemma 13) rejects symmetries that are not automorphisms of the model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bnnmilp import formulations
from bnnmilp.errors import ModelFileError
from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.milp.model import INF, ModelBuilder, StandardModel
from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import FORMAT, proof_doc
from bnnmilp.verification.proofs.symmetry import automorphisms
from bnnmilp.verification.proofs.vipr import vipr_text
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum


def training(layers, weights="binary", thresholds="learned", loss="hamming", m=5, seed=400):
    data = grid_instance(seed, layers, m)
    spec = make_spec(layers, weights, thresholds, loss)
    return formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1])), data


def dense(model: StandardModel) -> np.ndarray:
    A = np.zeros((model.n_rows, model.n_cols))
    np.add.at(A, (np.repeat(np.arange(model.n_rows), np.diff(model.indptr)), model.indices), model.data)
    return A


@pytest.mark.parametrize(("layers", "thresholds", "swaps"), [([2, 3, 1], "learned", 2), ([2, 3, 1], "per_neuron", 2),
                                                             ([2, 2, 2, 1], "learned", 2)])
def test_every_swap_of_two_hidden_units_is_an_automorphism(layers, thresholds, swaps):
    tm, _ = training(layers, thresholds=thresholds, m=3)
    sym = automorphisms(tm.model, *tm.unit_swaps())
    assert sym is not None and len(sym.columns) == swaps
    A = dense(tm.model)
    for sigma, pi in zip(sym.columns, sym.rows, strict=True):  # A[pi(i), sigma(j)] = A[i, j], by dense matrices
        assert np.array_equal(A[np.ix_(pi, sigma)], A)
        for a in (tm.model.c, tm.model.col_lower, tm.model.col_upper, tm.model.integrality):
            assert np.array_equal(a[sigma], a)
        assert np.array_equal(tm.model.row_lower[pi], tm.model.row_lower)
        assert np.array_equal(tm.model.row_upper[pi], tm.model.row_upper)
        assert not np.array_equal(sigma, np.arange(tm.model.n_cols))
    # one row per swap over the activations of every sample of the first unit of the pair (3 samples)
    assert sym.terms == [6] * swaps  # the pair's 2 x 3 activations come first in the order


def test_a_permutation_that_is_not_an_automorphism_is_not_used():
    tm, _ = training([2, 2, 1])
    swaps, order = tm.unit_swaps()
    u = tm.bits(1)
    only_bits = np.arange(tm.model.n_cols)  # swap the activations but not the weights: not a symmetry
    only_bits[u[:, 0]], only_bits[u[:, 1]] = u[:, 1], u[:, 0]
    assert automorphisms(tm.model, [only_bits], order) is None
    assert automorphisms(tm.model, swaps, order) is not None


@pytest.mark.parametrize("inst", [([2, 2, 1], "binary", "learned", "hamming", 5, 400),
                                  ([2, 2, 1], "binary", "per_neuron", "error", 6, 9),
                                  ([2, 3, 1], "ternary", "zero", "hamming", 6, 3)])
def test_proofs_with_symmetry_rows_check_and_match_brute_force(inst):
    layers, weights, thresholds, loss, m, seed = inst
    tm, data = training(layers, weights, thresholds, loss, m, seed)
    opt = brute_force_optimum(layers, weights, thresholds, loss, data.features.tolist(),
                              data.targets(layers[-1]).tolist(), 0.0625)
    sol = highs.solve(tm.model, SolveOptions())
    assert round(sol.objective) == opt > 0  # loss 0 needs no branching, and its proof no symmetry rows
    sym = automorphisms(tm.model, *tm.unit_swaps())
    assert sym is not None and len(sym.columns) == layers[1] - 1
    tree = branch_and_bound(tm.model, cutoff=opt, priority=tm.branching_priority(), symmetry=sym)
    doc = proof_doc(tm.model, tree)
    assert doc["version"] == 3 and len(doc["symmetry"]["generators"]) == layers[1] - 1
    rep = check_proof(tm.model, doc)
    assert rep.ok, rep.errors
    assert rep.claim == opt
    with pytest.raises(ModelFileError, match="symmetry"):  # VIPR has no rule for it
        vipr_text(tm.model, doc)


def pair_model(c0: float, c1: float) -> StandardModel:
    """min c0 x0 + c1 x1 s.t. x0 + x1 >= 1, x binary: optimum min(c0, c1)."""
    b = ModelBuilder("pair")
    x = b.add_vars("x", (2,), 0.0, 1.0, True)
    b.add_rows("r", (1,), x[None, :], np.ones((1, 2)), 1.0, INF)
    b.set_objective(x, np.array([c0, c1]))
    return b.build(objective_integral=True)


def root_proof(model: StandardModel, y: list, claim: int, symmetry: dict) -> dict:
    return {"format": FORMAT, "version": 3, "model_sha256": model.fingerprint(), "sense": "min",
            "objective_integral": True, "claimed_bound": float(claim), "claimed_bound_exact": str(claim),
            "nodes": [[0, None, None, None, None]], "leaves": [{"node": 0, "kind": "bound", "y": y}],
            "symmetry": symmetry}


SWAP = {"order": [1, 0], "generators": [{"columns": [[0, 1], [1, 0]], "rows": [], "terms": 1}]}


def test_a_symmetry_that_is_not_an_automorphism_cannot_prove_a_false_claim():
    # min x0 + 2 x1, x0 + x1 >= 1: optimum 1. The "swap" row x1 - x0 >= 0 would force x1 = 1 and objective 2:
    # 3/2 (x0 + x1 >= 1) + 1/2 (x1 - x0 >= 0) gives c x >= 3/2 with zero reduced costs, so 2 (integral).
    model = pair_model(1.0, 2.0)
    doc = root_proof(model, [[0, 1.5], [1, 0.5]], 2, SWAP)
    rep = check_proof(model, doc)
    assert not rep.ok and "not an automorphism (column 0 and its image 1 differ" in rep.errors[0]


def test_a_genuine_symmetry_row_is_accepted_and_used_only_for_true_claims():
    model = pair_model(1.0, 1.0)  # symmetric: the row x1 - x0 >= 0 (order [1, 0]) keeps the optimum 1
    ok = check_proof(model, root_proof(model, [[0, 1.0]], 1, SWAP))
    assert ok.ok and ok.claim == 1, ok.errors
    with_row = check_proof(model, root_proof(model, [[0, 1.0], [1, 0.5]], 1, SWAP))  # the row's multiplier
    assert with_row.ok, with_row.errors
    too_much = check_proof(model, root_proof(model, [[0, 1.5], [1, 0.5]], 2, SWAP))  # bound 3/2 with r = (1/2, 0)
    assert not too_much.ok and "does not reach the claimed 2" in too_much.errors[0]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s["generators"][0].update(columns=[[0, 1], [1, 1]]), "not a permutation"),
    (lambda s: s["generators"][0].update(columns=[[0, 1], [1, 0], [0, 0]]), "mapped twice"),
    (lambda s: s["generators"][0].update(rows=[[0, 5]]), "not an index below 1"),
    (lambda s: s["generators"][0].update(terms=3), "fewer than its 3 terms"),
    (lambda s: s["generators"][0].update(terms=0), "terms must be an integer"),
    (lambda s: s.update(order=[1, 1]), "distinct columns"),
    (lambda s: s.update(generators=[{"columns": [], "rows": [], "terms": 1}]), "fewer than its 1 terms"),
])
def test_malformed_symmetry_records_are_rejected(edit, message):
    model = pair_model(1.0, 1.0)
    sym = copy.deepcopy(SWAP)
    edit(sym)
    rep = check_proof(model, root_proof(model, [[0, 1.0]], 1, sym))
    assert not rep.ok and message in rep.errors[0]


def test_the_row_needs_binary_columns():
    b = ModelBuilder("pair")
    x = b.add_vars("x", (2,), 0.0, 2.0, True)  # integer in [0, 2]: 2^k weights do not order such columns
    b.add_rows("r", (1,), x[None, :], np.ones((1, 2)), 1.0, INF)
    b.set_objective(x, np.array([1.0, 1.0]))
    model = b.build(objective_integral=True)
    rep = check_proof(model, root_proof(model, [[0, 1.0]], 1, SWAP))
    assert not rep.ok and "column 1 of its row is not binary" in rep.errors[0]


def test_a_row_permutation_that_does_not_map_the_model_is_rejected():
    tm, _ = training([2, 2, 1])
    sym = automorphisms(tm.model, *tm.unit_swaps())
    tree = branch_and_bound(tm.model, cutoff=1, priority=tm.branching_priority(), symmetry=sym)
    doc = proof_doc(tm.model, tree)
    assert check_proof(tm.model, doc).ok
    bad = copy.deepcopy(doc)
    rows = bad["symmetry"]["generators"][0]["rows"]
    rows[0][1], rows[1][1] = rows[1][1], rows[0][1]  # still a permutation, no longer the model's
    rep = check_proof(tm.model, bad)
    assert not rep.ok and "not an automorphism (row" in rep.errors[0]


def test_a_proof_that_does_not_use_the_symmetry_rows_does_not_carry_them():
    tm, _ = training([2, 3, 1], "continuous", m=2, seed=3)  # two samples, three free units: loss 0
    sym = automorphisms(tm.model, *tm.unit_swaps())
    assert sym is not None and len(sym.columns) == 2
    tree = branch_and_bound(tm.model, cutoff=0, priority=tm.branching_priority(), symmetry=sym)
    doc = proof_doc(tm.model, tree)
    assert tree.claimed_exact == 0 and "symmetry" not in doc and doc["version"] in (1, 2)
    assert all(i < tm.model.n_rows for lf in doc["leaves"] for i, _ in lf["y"])
    assert check_proof(tm.model, doc).ok
