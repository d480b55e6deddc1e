"""Decomposition lower bounds: never above the brute-force optimum, each group's claim its own brute-force
optimum, the adaptation never lowering the bound, and composite proofs that were tampered with rejected."""

from __future__ import annotations

import copy
from fractions import Fraction

import numpy as np
import pytest

from bnnmilp.data import Dataset
from bnnmilp.verification.proofs.composite import check_composite
from bnnmilp.verification.proofs.decomposition import conflict_groups, decomposition_bound, in_process
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum

EPS = 0.0625


def optimum(layers, weights, thresholds, ds: Dataset, samples=None) -> int:
    idx = np.arange(ds.n_samples) if samples is None else np.asarray(samples)
    T = ds.targets(layers[-1])[idx]
    return brute_force_optimum(layers, weights, thresholds, "hamming", ds.features[idx].tolist(), T.tolist(), EPS)


def pairs() -> Dataset:
    """Three pairs of identical inputs with opposite labels: every network errs once per pair (optimum 3)."""
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    return Dataset(X, np.array([0, 1, 0, 1, 0, 1]), "pairs")


def test_conflict_groups_take_one_sample_per_class_in_turn():
    assert conflict_groups(np.array([0, 0, 1, 1, 2, 2, 0]), 3) == [[0, 2, 4], [1, 3, 5], [6]]
    assert conflict_groups(np.array([1, 0, 1, 0]), 2) == [[1, 0], [3, 2]]


def test_conflicting_pairs_prove_the_whole_optimum():
    ds = pairs()
    layers = [2, 2, 1]
    res = decomposition_bound(make_spec(layers, "binary"), ds, 2, time_limit=60)
    assert [g.samples for g in res.groups] == [[0, 1], [2, 3], [4, 5]]
    assert [g.claim for g in res.groups] == [1, 1, 1]
    assert res.bound == 3 == optimum(layers, "binary", "learned", ds)
    rep = check_composite(make_spec(layers, "binary"), ds, res.proof)
    assert rep.ok and rep.claim == 3


def test_group_proofs_use_the_hidden_unit_swaps_and_still_prove_the_optimum():
    ds, spec = pairs(), make_spec([2, 2, 1], "binary")
    with_rows = decomposition_bound(spec, ds, 2, time_limit=60, run=in_process(spec, ds))
    without = decomposition_bound(spec, ds, 2, time_limit=60, run=in_process(spec, ds, symmetry=False))
    assert [g.claim for g in with_rows.groups] == [g.claim for g in without.groups] == [1, 1, 1]
    assert all("symmetry" in g.proof for g in with_rows.groups)  # each group's proof uses its swap row
    assert not any("symmetry" in g.proof for g in without.groups)
    assert sum(g.nodes for g in with_rows.groups) < sum(g.nodes for g in without.groups)
    assert check_composite(spec, ds, with_rows.proof).claim == 3 == optimum([2, 2, 1], "binary", "learned", ds)


@pytest.mark.parametrize(("seed", "layers", "weights", "thresholds", "size"),
                         [(600, [2, 2, 1], "binary", "learned", 3), (601, [2, 2, 1], "ternary", "zero", 2),
                          (602, [2, 1, 3], "ternary", "learned", 4), (603, [2, 2, 1], "binary", "learned", 4)])
def test_the_bound_never_exceeds_the_optimum_and_each_group_proves_its_own(seed, layers, weights, thresholds, size):
    ds = grid_instance(seed, layers, 8)
    spec = make_spec(layers, weights, thresholds)
    res = decomposition_bound(spec, ds, size, time_limit=120)
    assert sorted(i for g in res.groups for i in g.samples) == list(range(8))
    for g in res.groups:
        assert g.claim == optimum(layers, weights, thresholds, ds, g.samples) == g.optimum
    assert res.bound == sum(g.claim for g in res.groups) <= optimum(layers, weights, thresholds, ds)
    rep = check_composite(spec, ds, res.proof)
    assert rep.ok and rep.claim == res.bound


def xor() -> Dataset:
    """XOR with one hidden unit: each pair the conflict groups form is separable (loss 0), the four points are
    not (loss 1)."""
    X = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    return Dataset(X, np.array([0, 1, 0, 1]), "xor")


def test_auto_merges_groups_whose_optimum_is_zero_and_keeps_a_merge_only_when_it_proves_more():
    ds = xor()
    layers = [2, 1, 1]
    spec = make_spec(layers, "ternary")
    fixed = decomposition_bound(spec, ds, 2, time_limit=60)
    assert [g.samples for g in fixed.groups] == [[0, 1], [2, 3]]
    assert fixed.bound == 0 and fixed.rounds == 0 and optimum(layers, "ternary", "learned", ds, [0, 1]) == 0
    auto = decomposition_bound(spec, ds, "auto", time_limit=120)
    assert [h["bound"] for h in auto.history] == [0.0, 1.0] and auto.rounds == 1
    assert [g.samples for g in auto.groups] == [[0, 1, 2, 3]]
    assert auto.bound == 1 == optimum(layers, "ternary", "learned", ds)
    assert check_composite(spec, ds, auto.proof).ok


def test_a_merge_that_proves_nothing_more_is_not_kept():
    """Two separable pairs of the same XOR corner (a merged group that still fits): the groups stay as they were
    and the search ends after one round."""
    X = np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, -0.5], [1.0, -0.5]])
    ds = Dataset(X, np.array([0, 1, 0, 1]), "stripes")
    auto = decomposition_bound(make_spec([2, 1, 1], "ternary"), ds, "auto", time_limit=120)
    assert auto.bound == 0 and auto.rounds == 1 and [g.samples for g in auto.groups] == [[0, 1], [2, 3]]


@pytest.fixture(scope="module")
def proven():
    ds = pairs()
    spec = make_spec([2, 2, 1], "binary")
    return spec, ds, decomposition_bound(spec, ds, 2, time_limit=60).proof


def rejected(spec, ds, doc) -> str:
    rep = check_composite(spec, ds, doc)
    assert not rep.ok and rep.claim is None
    return rep.errors[0]


def test_a_raised_claim_is_rejected(proven):
    spec, ds, doc = proven
    bad = copy.deepcopy(doc)
    bad["claimed_bound_exact"] = "4"
    assert rejected(spec, ds, bad) == "claimed_bound_exact 4 exceeds the sum of the proven group bounds 3"
    bad["claimed_bound_exact"], bad["claimed_bound"] = "3", 3.5
    assert rejected(spec, ds, bad) == "claimed_bound exceeds claimed_bound_exact"
    lower = copy.deepcopy(doc)
    lower["claimed_bound_exact"], lower["claimed_bound"] = "5/2", 2.5  # a weaker claim still holds
    assert check_composite(spec, ds, lower).claim == Fraction(5, 2)


def test_a_group_whose_multipliers_were_changed_is_rejected(proven):
    spec, ds, doc = proven
    bad = copy.deepcopy(doc)
    for leaf in bad["groups"][1]["proof"]["leaves"]:
        leaf["y"] = []  # no multipliers: every leaf bound falls to 0, below the group's claim 1
    assert rejected(spec, ds, bad).startswith("groups[1]: ")


def test_a_sample_left_out_or_counted_twice_is_rejected(proven):
    spec, ds, doc = proven
    out = copy.deepcopy(doc)
    out["groups"][2]["samples"] = [4]
    assert rejected(spec, ds, out) == "sample 5 is in no group (1 left out): the groups must partition the data"
    twice = copy.deepcopy(doc)
    twice["groups"][0]["samples"] = [0, 1, 2]
    assert rejected(spec, ds, twice) == "sample 2 is counted twice (groups 0 and 1)"
    outside = copy.deepcopy(doc)
    outside["groups"][0]["samples"] = [0, 6]
    assert rejected(spec, ds, outside) == "groups[0].samples: 6 is not a sample index (0..5)"


def test_a_proof_about_other_data_or_another_spec_is_rejected(proven):
    spec, ds, doc = proven
    other = Dataset(ds.features, np.array([0, 1, 0, 1, 1, 1]), "other")
    assert rejected(spec, other, doc) == "data_sha256: the proof is about other data than DATA"
    wider = make_spec([2, 3, 1], "binary")
    assert rejected(wider, ds, doc) == "groups[0]: the proof refers to another model (sha256 differs)"
    assert rejected(spec, ds, {"format": "bnnmilp-proof"}) == "not a bnnmilp-composite-proof version 1 document"
    assert rejected(spec, ds, {**doc, "groups": []}) == "groups: expected a non-empty list"


def test_ctrl_c_while_growing_keeps_the_finished_rounds_best():
    """Ctrl-C during the second round: the result is the first round's partition, proven and checked, and
    says it was interrupted."""
    from bnnmilp.verification.proofs.decomposition import in_process

    ds = xor()
    spec = make_spec([2, 1, 1], "ternary")
    proven = in_process(spec, ds)
    calls = []

    def interrupted_second(groups, limit):
        calls.append(groups)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return proven(groups, limit)

    res = decomposition_bound(spec, ds, "auto", time_limit=60, run=interrupted_second)
    assert res.interrupted and res.rounds == 0 and [g.samples for g in res.groups] == [[0, 1], [2, 3]]
    assert res.bound == 0 and check_composite(spec, ds, res.proof).ok and res.proof["engine"]["interrupted"]
