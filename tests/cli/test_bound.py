"""`bnnmilp bound` and `verify --certificate` on its composite proof, end to end."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bnnmilp.cli import main

XOR_SPEC = "network: {layers: [2, 1, 1], weights: ternary, thresholds: learned}\n" \
           "training: {loss: hamming, epsilon: 0.0625}\n"
XOR_DATA = "features: [[-1, -1], [1, -1], [1, 1], [-1, 1]]\nlabels: [0, 1, 0, 1]\n"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def xor(tmp_path):
    (tmp_path / "xor.yaml").write_text(XOR_SPEC)
    (tmp_path / "xd.yaml").write_text(XOR_DATA)
    return tmp_path / "xor.yaml", tmp_path / "xd.yaml"


def test_bound_proves_xor_and_verify_checks_the_proof(xor, tmp_path):
    spec, data = xor
    r = run("bound", spec, data, "-o", tmp_path / "p.json", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["bound"], out["proven"], out["rounds"]) == ("1", True, 1)
    assert "run" not in out  # a spec: no network to set against the bound
    assert [g["samples"] for g in out["groups"]] == [[0, 1, 2, 3]] and out["groups"][0]["claim"] == "1"
    assert (out["groups"][0]["kind"], out["groups"][0]["highs_status"]) == ("milp", "optimal")
    r = run("verify", spec, data, "--certificate", tmp_path / "p.json", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["claim_proven"] == "1"
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["claimed_bound_exact"], doc["claimed_bound"] = "2", 2.0
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    r = run("verify", spec, data, "--certificate", tmp_path / "bad.json", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["errors"] == ["claimed_bound_exact 2 exceeds the sum of the proven group bounds 1"]


def test_bound_on_two_workers_writes_the_same_partition_as_in_process(xor, tmp_path):
    spec, data = xor
    a = run("bound", spec, data, "-o", tmp_path / "a.json", "--groups", "2", "--json")
    b = run("bound", spec, data, "-o", tmp_path / "b.json", "--groups", "2", "--workers", "2", "--json")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ga, gb = (json.loads((tmp_path / f).read_text())["groups"] for f in ("a.json", "b.json"))
    assert [g["samples"] for g in ga] == [g["samples"] for g in gb] == [[0, 1], [2, 3]]
    assert json.loads(b.stdout)["bound"] == "0"  # fixed groups: not merged


def test_bad_invocations_are_one_line_and_write_nothing(xor, tmp_path):
    spec, data = xor
    for args, words in [(("--groups", "0"), "expected 'auto' or a group size"),
                        (("--groups", "many"), "expected 'auto' or a group size"),
                        (("--time-limit", "nan"), "--time-limit")]:
        r = run("bound", spec, data, "-o", tmp_path / "p.json", *args)
        assert r.exit_code == 2 and words in r.output and len(r.output.strip().splitlines()) == 1, r.output
    (tmp_path / "wide.yaml").write_text(XOR_SPEC.replace("[2, 1, 1]", "[3, 1, 1]"))
    r = run("bound", tmp_path / "wide.yaml", data, "-o", tmp_path / "p.json")
    assert r.exit_code == 2 and "expected rows of 3 numbers" in r.output
    assert not (tmp_path / "p.json").exists()
    r = run("verify", tmp_path / "nope.mps", "--certificate", tmp_path / "p.json")
    assert r.exit_code == 2


def test_a_composite_proof_needs_a_spec_and_data(xor, tmp_path, repo_root):
    spec, data = xor
    assert run("bound", spec, data, "-o", tmp_path / "p.json").exit_code == 0
    r = run("verify", repo_root / "samples/guzelsoy_ralphs.lp", "--certificate", tmp_path / "p.json")
    assert r.exit_code == 2 and "a composite proof is about a training problem" in r.output


def test_group_proofs_export_to_vipr_and_their_derivations_hold(xor, tmp_path):
    """--vipr DIR: one VIPR file per group, whose derivations the tests' own VIPR reader re-checks in rationals
    and whose final bound is the group's claim (minus the model's objective offset, which VIPR lacks)."""
    from fractions import Fraction

    from bnnmilp.data import load_data
    from bnnmilp.spec import load_spec
    from bnnmilp.verification.proofs.composite import group_model
    from tests.verification.proofs.test_vipr import check_derivations, parse_vipr

    spec, data = xor
    r = run("bound", spec, data, "-o", tmp_path / "p.json", "--vipr", tmp_path / "vipr", "--groups", "4")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "p.json").read_text())
    assert sorted(p.name for p in (tmp_path / "vipr").iterdir()) == ["group_0.vipr"]
    v = parse_vipr((tmp_path / "vipr/group_0.vipr").read_text())
    check_derivations(v)
    model = group_model(load_spec(spec), load_data(data), doc["groups"][0]["samples"])
    assert v["lb"] == Fraction(doc["groups"][0]["claimed_bound_exact"]) - Fraction(float(model.offset))


def test_a_run_folder_names_its_spec(xor, tmp_path):
    spec, data = xor
    assert run("train", spec, data, "-o", tmp_path / "run", "--method", "milp").exit_code == 0
    r = run("bound", tmp_path / "run", data, "-o", tmp_path / "p.json", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["bound"] == "1"
    # the MILP's network meets the margin and its exact loss is the proven bound: optimal, gap 0
    assert out["run"] == {"exact_loss": 1, "meets_margin": True, "gap": "0", "optimal": True}
    r = run("bound", tmp_path / "run", data, "-o", tmp_path / "p2.json")
    assert r.exit_code == 0 and "the run's exact loss is 1: optimal" in r.output
    assert run("verify", tmp_path / "run", data, "--certificate", tmp_path / "p.json").exit_code == 0
    assert run("verify", spec, data, "--certificate", tmp_path / "p.json").exit_code == 0


def test_a_run_off_the_margin_is_not_called_optimal_by_the_bound(xor, tmp_path):
    """The bound is over networks meeting the epsilon margin: a network of the same loss that misses it (STE's
    here: 1 - 1 on the first unit, its threshold between) is not proven optimal by it."""
    _, data = xor
    (tmp_path / "run").mkdir()
    (tmp_path / "run/weights.yaml").write_text(
        "format: bnnmilp-weights\nversion: 1\n" + XOR_SPEC +
        "layers:\n- weights: [[1.0, -1.0]]\n  thresholds: [0.03]\n- weights: [[1.0]]\n  thresholds: [1.0]\n")
    r = run("bound", tmp_path / "run", data, "-o", tmp_path / "p.json", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["run"] == {"exact_loss": 1, "meets_margin": False, "gap": None, "optimal": False}


PAIRS_SPEC = "network: {layers: [2, 2, 1], weights: binary, thresholds: learned}\n" \
             "training: {loss: hamming, epsilon: 0.0625}\n"
PAIRS_DATA = "features: [[0, 0], [0, 0], [1, 0], [1, 0], [0, 1], [0, 1]]\nlabels: [0, 1, 0, 1, 0, 1]\n"


def test_group_proofs_use_symmetry_rows_except_for_vipr(tmp_path):
    """Two hidden units: each group's proof adds the swap's row (lemma 13); with --vipr (also through the job
    layer's workers) the groups are proven without it, and their VIPR derivations hold."""
    from fractions import Fraction

    from bnnmilp.data import load_data
    from bnnmilp.spec import load_spec
    from bnnmilp.verification.proofs.composite import group_model
    from tests.verification.proofs.test_vipr import check_derivations, parse_vipr

    (tmp_path / "s.yaml").write_text(PAIRS_SPEC)
    (tmp_path / "d.yaml").write_text(PAIRS_DATA)
    spec, data = tmp_path / "s.yaml", tmp_path / "d.yaml"
    r = run("bound", spec, data, "-o", tmp_path / "a.json", "--groups", "2", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "a.json").read_text())
    assert json.loads(r.stdout)["bound"] == "3" and all("symmetry" in g["proof"] for g in doc["groups"])
    r = run("bound", spec, data, "-o", tmp_path / "b.json", "--groups", "2", "--vipr", tmp_path / "v",
            "--workers", "2", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "b.json").read_text())
    assert json.loads(r.stdout)["bound"] == "3" and not any("symmetry" in g["proof"] for g in doc["groups"])
    for i, g in enumerate(doc["groups"]):
        v = parse_vipr((tmp_path / f"v/group_{i}.vipr").read_text())
        check_derivations(v)
        offset = group_model(load_spec(spec), load_data(data), g["samples"]).offset  # VIPR has no constant
        assert g["proof"]["claimed_bound_exact"] == "1" and v["lb"] == 1 - Fraction(float(offset))
    r = run("verify", spec, data, "--certificate", tmp_path / "a.json", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["claim_proven"] == "3"


def test_stop_after_capacity_writes_the_capacity_bound_alone(tmp_path, repo_root):
    """Two hidden units cannot give ten classes their own codes: the capacity bound is positive, and with
    --stop-after capacity it is the whole proof (no group solved); the full run records the same capacity."""
    (tmp_path / "narrow.yaml").write_text("network: {layers: [64, 2, 10]}\ntraining: {epsilon: 0.015625}\n")
    data = repo_root / "samples/digits_k2.yaml"
    r = run("bound", tmp_path / "narrow.yaml", data, "-o", tmp_path / "cap.json", "--stop-after", "capacity", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["by"], out["rounds"], [g["kind"] for g in out["groups"]]) == ("capacity", 0, ["capacity"])
    full = run("bound", tmp_path / "narrow.yaml", data, "-o", tmp_path / "full.json", "--groups", "2", "--json")
    engine = json.loads((tmp_path / "full.json").read_text())["engine"]
    assert full.exit_code == 0 and out["bound"] == engine["capacity"]
    # by hand: 4 codes for 10 classes; 3 classes keep their own, the other 7 share one output, so each of
    # their 14 samples has a wrong bit somewhere
    assert out["bound"] == "14"
    assert run("verify", tmp_path / "narrow.yaml", data, "--certificate", tmp_path / "cap.json").exit_code == 0


def test_stop_after_capacity_proves_groups_where_capacity_is_zero(xor, tmp_path):
    spec, data = xor
    r = run("bound", spec, data, "-o", tmp_path / "p.json", "--stop-after", "capacity", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["bound"], out["by"]) == ("1", "decomposition")
