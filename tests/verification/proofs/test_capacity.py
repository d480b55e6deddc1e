"""Capacity proofs: the dynamic program against every assignment of targets to codes, the bound against the
brute-force optimum over all networks, closed forms on the digits, and tampered claims rejected."""

from __future__ import annotations

import copy
import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.data import Dataset, load_data
from bnnmilp.network.capacity import block_costs, min_partition
from bnnmilp.spec import parse_spec
from bnnmilp.verification.proofs.capacity import capacity_proof, check_capacity
from bnnmilp.verification.proofs.composite import check_composite
from bnnmilp.verification.proofs.decomposition import decomposition_bound
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_argmax, brute_force_optimum

EPS = 0.0625


def every_assignment(targets: np.ndarray, counts: np.ndarray, K: int, kind: str) -> int:
    """The least loss over every map of the T targets to K codes (each code's output chosen per sample count,
    as independent of the dynamic program as it gets: per sample, per bit)."""
    best = None
    for codes in itertools.product(range(K), repeat=len(counts)):
        total = 0
        for c in range(K):
            members = [t for t in range(len(counts)) if codes[t] == c]
            if not members:
                continue
            if kind == "hamming":  # every output vector o, each sample's Hamming distance
                total += min(sum(int(counts[t]) * int(np.sum(np.array(o) != targets[t])) for t in members)
                             for o in itertools.product((0, 1), repeat=targets.shape[1]))
            else:  # every target as the one output that is right; any other output is right for none
                total += sum(int(counts[t]) for t in members) - max(int(counts[t]) for t in members)
        best = total if best is None else min(best, total)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["hamming", "error"])
def test_the_dynamic_program_is_the_least_cost_over_every_assignment(seed, kind):
    rng = np.random.default_rng([seed, kind == "error"])
    T, K, d = int(rng.integers(3, 7)), int(rng.integers(1, 4)), 4
    targets = rng.integers(0, 2, size=(T, d))
    counts = rng.integers(1, 5, size=T)
    value, blocks = min_partition(block_costs(targets, counts, kind), T, K)
    assert value == every_assignment(targets, counts, K, kind)
    assert sorted(t for b in blocks for t in b) == list(range(T)) and len(blocks) <= K
    cost = block_costs(targets, counts, kind)
    assert sum(cost[sum(1 << t for t in b)] for b in blocks) == value  # the witness attains it


def three_classes(seed: int) -> Dataset:
    """Two samples per class for three classes on a grid: one hidden bit cannot give three outputs."""
    ds = grid_instance(seed, [2, 1, 3], 6)
    return Dataset(ds.features, np.array([0, 0, 1, 1, 2, 2]), f"three-{seed}")


@pytest.mark.parametrize(("seed", "weights", "thresholds"),
                         [(700, "ternary", "learned"), (701, "binary", "learned"), (702, "ternary", "zero")])
def test_the_bound_never_exceeds_the_brute_force_optimum(seed, weights, thresholds):
    ds = three_classes(seed)
    spec = make_spec([2, 1, 3], weights, thresholds)
    doc = capacity_proof(spec, ds, list(range(6)))
    # two classes share one of the 2 codes: their 4 samples disagree on 2 bits, 2 samples each way
    assert doc["claimed_bound_exact"] == "4" and (doc["codes"], doc["cost"]) == (2, "hamming")
    opt = brute_force_optimum([2, 1, 3], weights, thresholds, "hamming", ds.features.tolist(),
                              ds.targets(3).tolist(), EPS)
    assert opt is not None and opt >= 4
    argmax = parse_spec({"network": {"layers": [2, 1, 3], "weights": weights, "thresholds": thresholds,
                                     "output": "argmax"}, "training": {"epsilon": EPS}})
    doc = capacity_proof(argmax, ds, list(range(6)))
    assert (doc["claimed_bound_exact"], doc["cost"]) == ("2", "error")  # one of the two shared classes loses
    assert brute_force_argmax([2, 1, 3], weights, thresholds, ds.features.tolist(), ds.labels.tolist(), EPS) >= 2


def test_two_hidden_bits_on_the_digits_cost_one_per_sample_of_seven_classes(repo_root):
    """Four codes for ten classes: three classes get their own, the other seven share the all-zero output
    (each sample one wrong bit); with an argmax output, 12 of those 14 samples are misclassified."""
    ds = load_data(repo_root / "samples/digits_k2.yaml")
    spec = make_spec([64, 2, 10])
    doc = capacity_proof(spec, ds, list(range(20)))
    assert doc["claimed_bound_exact"] == "14" and sorted(map(len, doc["blocks"])) == [1, 1, 1, 7]
    assert check_capacity(spec, ds, list(range(20)), doc).claim == 14
    argmax = parse_spec({"network": {"layers": [64, 2, 10], "weights": "continuous", "output": "argmax"}})
    assert capacity_proof(argmax, ds, list(range(20)))["claimed_bound_exact"] == "12"
    assert capacity_proof(make_spec([64, 4, 10]), ds, list(range(20))) is None  # 16 codes: bound 0
    assert capacity_proof(make_spec([64, 10]), ds, list(range(20))) is None  # no hidden layer


def test_a_raised_or_malformed_claim_is_rejected(repo_root):
    ds = load_data(repo_root / "samples/digits_k2.yaml")
    spec = make_spec([64, 2, 10])
    doc = capacity_proof(spec, ds, list(range(20)))
    bad = {**doc, "claimed_bound_exact": "15", "claimed_bound": 15.0}
    assert check_capacity(spec, ds, list(range(20)), bad).errors == [
        "claimed_bound_exact 15 exceeds the capacity bound 14 of 4 codes (layer 1)"]
    assert check_capacity(make_spec([64, 3, 10]), ds, list(range(20)), doc).errors == [
        "claimed_bound_exact 14 exceeds the capacity bound 6 of 8 codes (layer 1)"]
    assert check_capacity(spec, ds, list(range(20)), {**doc, "claimed_bound_exact": None}).errors == [
        "claimed_bound_exact: expected a finite number or a rational 'p/q', got None"]
    assert check_capacity(spec, ds, list(range(20)), {k: v for k, v in doc.items() if k != "claimed_bound"}
                          ).errors == ["malformed capacity proof (KeyError: 'claimed_bound')"]


def test_decomposition_takes_the_capacity_bound_where_it_is_larger_and_the_composite_checks(repo_root):
    ds = load_data(repo_root / "samples/digits_k2.yaml")
    spec = make_spec([64, 2, 10])
    res = decomposition_bound(spec, ds, 10, time_limit=5, group_time_limit=1)
    assert res.by == "capacity" and res.bound == 14 and [g.samples for g in res.groups] == [list(range(20))]
    assert check_composite(spec, ds, res.proof).claim == 14
    tampered = copy.deepcopy(res.proof)
    tampered["groups"][0]["samples"] = list(range(19))
    assert check_composite(spec, ds, tampered).errors == [
        "sample 19 is in no group (1 left out): the groups must partition the data"]


def test_bound_cli_writes_the_capacity_proof_and_verify_checks_it(tmp_path, repo_root):
    spec = tmp_path / "narrow.yaml"
    spec.write_text("network: {layers: [64, 2, 10], weights: continuous}\n")
    data = repo_root / "samples/digits_k2.yaml"
    r = CliRunner().invoke(main, ["bound", str(spec), str(data), "-o", str(tmp_path / "b.json"), "--groups", "10",
                                  "--time-limit", "5", "--group-time-limit", "1", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["bound"], out["by"], len(out["groups"])) == ("14", "capacity", 1)
    assert (out["groups"][0]["kind"], out["groups"][0]["highs_status"]) == ("capacity", None)  # no HiGHS run
    r = CliRunner().invoke(main, ["verify", str(spec), str(data), "--certificate", str(tmp_path / "b.json")])
    assert r.exit_code == 0
    assert "below 14 (1 group partitions the data; 1 by the capacity bound, checked exactly" in r.output
