"""Proofs from the branch-and-bound engine pass the exact checker; tampered proofs do not."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bnnmilp import formulations
from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.milp.model import INF, ModelBuilder
from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import proof_doc
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum

BNN = [([2, 2, 1], "binary", "learned", "hamming", 5, 400), ([2, 2, 1], "ternary", "zero", "hamming", 5, 402),
       ([2, 2, 1], "binary", "learned", "hamming", 5, 403), ([2, 1], "continuous", "learned", "hamming", 8, 400)]


def bnn_proof(layers, weights, thresholds, loss, m, seed):
    data = grid_instance(seed, layers, m)
    spec = make_spec(layers, weights, thresholds, loss)
    tm = formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1]))
    sol = highs.solve(tm.model, SolveOptions())
    tree = branch_and_bound(tm.model, cutoff=round(sol.objective), priority=tm.branching_priority())
    return tm, data, sol, tree, proof_doc(tm.model, tree)


@pytest.mark.parametrize("inst", BNN)
def test_bnn_proofs_check_and_match_the_optimum(inst):
    tm, data, sol, tree, doc = bnn_proof(*inst)
    layers, weights, thresholds, loss = inst[:4]
    assert tree.status == "optimal"
    if weights != "continuous":
        opt = brute_force_optimum(layers, weights, thresholds, loss, data.features.tolist(),
                                  data.targets(layers[-1]).tolist(), 0.0625)
        assert tree.claimed_bound == opt == round(sol.objective)
    assert tree.claimed_bound == round(sol.objective) > 0
    rep = check_proof(tm.model, doc)
    assert rep.ok, rep.errors
    assert rep.leaves == len(doc["leaves"]) == len(doc["nodes"]) - (len(doc["nodes"]) - 1) // 2  # a binary tree
    # loss 0 is not attainable: the root LP (bound 0) cannot settle it alone; branching or derived bounds do
    assert rep.leaves > 1 or doc.get("derived")


def random_milp(seed: int):
    """A small bounded MILP: min c x, A x >= b, 0 <= x <= 4, some columns integer (always feasible at x = 4)."""
    rng = np.random.default_rng(seed)
    n, m = 6, 4
    A = rng.integers(-3, 4, size=(m, n)).astype(float)
    b = ModelBuilder("random")
    xi = b.add_vars("xi", (3,), 0.0, 4.0, True)
    xc = b.add_vars("xc", (3,), 0.0, 4.0, False)
    x = np.concatenate([xi, xc])
    rhs = A @ np.full(n, 4.0) - rng.integers(1, 8, size=m)
    b.add_rows("r", (m,), np.broadcast_to(x, (m, n)), A, rhs / 2, INF)
    c = rng.integers(1, 6, size=n).astype(float) / 2
    b.set_objective(x, c)
    return b.build()


@pytest.mark.parametrize("dive", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_random_milps_search_and_prove(seed, dive):
    model = random_milp(seed)
    ref = highs.solve(model, SolveOptions(tight=True))
    assert ref.status == "optimal"
    tree = branch_and_bound(model, dive=dive)  # no cutoff: the engine searches as well
    assert abs(tree.incumbent - ref.objective) < 1e-6
    assert tree.claimed_bound <= ref.objective + 1e-6 and ref.objective - tree.claimed_bound < 1e-6
    rep = check_proof(model, proof_doc(model, tree))
    assert rep.ok, rep.errors


def test_tampered_proofs_are_rejected():
    tm, _, _, _, doc = bnn_proof(*BNN[0])
    model = tm.model
    assert check_proof(model, doc).ok

    def rejected(edit) -> bool:
        d = copy.deepcopy(doc)
        edit(d)
        return not check_proof(model, d).ok

    def raise_bound(d):
        d["claimed_bound"] += 1

    def drop_leaf(d):
        d["leaves"].pop()

    def drop_subtree(d):  # remove a leaf node and its record: its sibling is left alone
        node = d["leaves"][-1]["node"]
        d["nodes"] = [n for n in d["nodes"] if n[0] != node]
        d["leaves"].pop()

    def shift_branch(d):  # x <= k | x >= k + 2 leaves k + 1 uncovered
        n = next(n for n in d["nodes"] if n[3] == ">=")
        n[4] += 1

    def zero_multipliers(d):
        for lf in d["leaves"]:
            if lf["y"]:
                lf["y"] = [[i, 0.0] for i, _ in lf["y"]]

    def other_model(d):
        d["model_sha256"] = "0" * 64

    def branch_continuous(d):
        cont = int(np.flatnonzero(~model.integrality)[0])
        for n in d["nodes"]:
            if n[0] in (1, 2):
                n[2] = cont

    for edit in (raise_bound, drop_leaf, drop_subtree, shift_branch, zero_multipliers, other_model,
                 branch_continuous):
        assert rejected(edit), edit.__name__


def test_integral_claim_requires_an_integral_objective():
    model = random_milp(3)
    tree = branch_and_bound(model)
    doc = proof_doc(model, tree)
    doc["objective_integral"] = True
    doc["claimed_bound"] = float(np.ceil(tree.claimed_bound))
    rep = check_proof(model, doc)
    assert not rep.ok and "integral" in rep.errors[0]


def test_a_dive_finds_an_incumbent_first_and_the_proof_still_matches_brute_force():
    tm, data, *_ = bnn_proof(*BNN[0])
    best = branch_and_bound(tm.model, priority=tm.branching_priority())
    dived = branch_and_bound(tm.model, priority=tm.branching_priority(), dive=True)
    opt = brute_force_optimum(*BNN[0][:4], data.features.tolist(), data.targets(1).tolist(), 0.0625)
    assert best.claimed_bound == dived.claimed_bound == dived.incumbent == opt == 1
    first = min(lf.node for lf in dived.leaves if lf.kind == "integral")  # the dive reaches a leaf early
    assert first < min(lf.node for lf in best.leaves if lf.kind == "integral")
    assert check_proof(tm.model, proof_doc(tm.model, dived)).ok
