"""`train` writes proof.json beside the weights and `verify RUN DATA` checks it without being asked."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.proof import trivial_proof
from tests.cli.test_bound import XOR_DATA, XOR_SPEC
from tests.conftest import grid_instance, make_spec


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def xor(tmp_path):
    (tmp_path / "xd.yaml").write_text(XOR_DATA)
    return tmp_path


def spec_file(folder, extra: str = "") -> str:
    p = folder / "spec.yaml"
    p.write_text(XOR_SPEC.replace("epsilon: 0.0625}", "epsilon: 0.0625" + extra + "}"))
    return str(p)


def checks(r) -> dict:
    return {c["name"]: c for c in json.loads(r.stdout)["checks"]}


def test_train_proves_the_solver_bound_and_verify_checks_it(xor):
    r = run("train", spec_file(xor, ", method: milp"), xor / "xd.yaml", "-o", xor / "run", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["objective"], out["proven_bound"], out["proven_optimal"]) == (1, "1", True)
    cert = json.loads((xor / "run/certificate.json").read_text())
    assert cert["proof"] == "proof.json" and cert["proven_by"] == "solver bound" and cert["proven_gap"] == "0"
    r = run("verify", xor / "run", xor / "xd.yaml", "--json")
    assert r.exit_code == 0 and checks(r)["proof"]["ok"] is True
    assert checks(r)["proof"]["detail"].endswith("(exact loss 1: optimal)")
    # a certificate that claims more than its proof, or a proof that was edited, fails verify
    cert["proven_bound"] = "2"
    (xor / "run/certificate.json").write_text(json.dumps(cert))
    r = run("verify", xor / "run", xor / "xd.yaml", "--json")
    assert r.exit_code == 1
    assert checks(r)["proof"]["detail"] == "certificate.json says proven_bound 2, proof.json proves only 1"
    doc = json.loads((xor / "run/proof.json").read_text())
    doc["claimed_bound_exact"], doc["claimed_bound"] = "3", 3.0
    (xor / "run/proof.json").write_text(json.dumps(doc))
    r = run("verify", xor / "run", xor / "xd.yaml", "--json")
    assert r.exit_code == 1 and checks(r)["proof"]["detail"].startswith("proof.json does not check: ")


def test_without_a_bound_the_decomposition_proves_one(xor):
    """STE reports no bound; training.lower_bound: decomposition proves the optimum 1 of XOR with one hidden
    unit by merging its two separable pairs (a composite proof), and verify checks it."""
    r = run("train", spec_file(xor, ", method: ste, lower_bound: decomposition"), xor / "xd.yaml", "-o",
            xor / "run", "--json")
    assert r.exit_code == 0, r.output
    cert = json.loads((xor / "run/certificate.json").read_text())
    assert json.loads(r.stdout)["objective"] == 1 and cert["kind"] == "heuristic" and "bound" not in cert
    assert (cert["proven_bound"], cert["proven_by"], cert["proven_optimal"]) == ("1", "decomposition", True)
    proof = json.loads((xor / "run/proof.json").read_text())
    assert proof["format"] == "bnnmilp-composite-proof"
    r = run("verify", xor / "run", xor / "xd.yaml", "--json")
    assert r.exit_code == 0 and checks(r)["proof"]["ok"] is True


def test_no_proof_when_asked_for_none_or_when_there_is_nothing_to_prove(xor):
    r = run("train", spec_file(xor, ", method: milp, lower_bound: none"), xor / "xd.yaml", "-o", xor / "a", "--json")
    assert r.exit_code == 0 and not (xor / "a/proof.json").exists()
    cert = json.loads((xor / "a/certificate.json").read_text())
    assert cert["proof"] is None and cert["proof_note"] == "no proof written (training.lower_bound: none)"
    r = run("verify", xor / "a", xor / "xd.yaml", "--json")
    assert r.exit_code == 0 and checks(r)["proof"]["ok"] is None
    r = run("train", spec_file(xor, ", method: ste"), xor / "xd.yaml", "-o", xor / "b", "--json")
    assert json.loads(r.stdout)["objective"] == 1 and not (xor / "b/proof.json").exists()  # no bound, loss 1
    assert json.loads((xor / "b/certificate.json").read_text())["proof_note"].startswith("no proof written (no global")


def test_loss_zero_is_proven_optimal_by_the_column_box_alone(tmp_path, repo_root):
    r = run("train", repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml", "-o", tmp_path / "run",
            "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["objective"] == 0 and out["proven_bound"] == "0" and out["proven_optimal"] is True
    doc = json.loads((tmp_path / "run/proof.json").read_text())
    assert doc["nodes"] == [[0, None, None, None, None]] and doc["leaves"] == [{"node": 0, "kind": "bound", "y": []}]


@pytest.mark.parametrize("loss", ["hamming", "error"])
def test_the_trivial_proof_proves_zero_for_every_loss(loss):
    from bnnmilp import formulations

    data = grid_instance(5, [3, 2, 2], 6)
    spec = make_spec([3, 2, 2], loss=loss)
    tm = formulations.get("theorem1").build(spec, data.features, data.targets(2))
    rep = check_proof(tm.model, trivial_proof(tm.model))
    assert rep.ok and rep.claim == 0


def test_a_narrow_network_gets_its_capacity_bound_proven_without_a_solver(tmp_path, repo_root):
    """STE reports no bound; two hidden bits cannot give ten classes their own output, so the run's proof is
    the capacity bound 14, and verify checks it."""
    spec = tmp_path / "narrow.yaml"
    spec.write_text("network: {layers: [64, 2, 10], weights: continuous}\ntraining: {method: ste}\n")
    data = repo_root / "samples/digits_k2.yaml"
    r = run("train", spec, data, "-o", tmp_path / "run", "--json")
    assert r.exit_code == 0, r.output
    cert = json.loads((tmp_path / "run/certificate.json").read_text())
    assert (cert["proven_bound"], cert["proven_by"]) == ("14", "capacity")
    assert int(cert["proven_gap"]) == json.loads(r.stdout)["objective"] - 14 >= 0
    r = run("verify", tmp_path / "run", data, "--json")
    assert r.exit_code == 0 and checks(r)["proof"]["ok"] is True
