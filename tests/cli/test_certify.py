"""`certify` and `verify --certificate` end to end."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bnnmilp.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_certify_a_digits_run_and_check_it(repo_root, tmp_path):
    data = repo_root / "samples/digits_k1.yaml"
    assert run("train", repo_root / "configs/digits_milp.yaml", data, "-o", tmp_path / "run").exit_code == 0
    r = run("certify", tmp_path / "run", data, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["claimed_bound"] == 0.0 and (tmp_path / "run/proof.json").exists()
    r = run("verify", tmp_path / "run", data, "--certificate", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ok"] is True
    # the proof is about this model only: other data, other model
    other = repo_root / "samples/digits_k2.yaml"
    r = run("verify", tmp_path / "run", other, "--certificate", "--json")
    assert r.exit_code == 1 and "another model" in json.loads(r.stdout)["errors"][0]


def test_certify_an_lp_file_and_reject_a_tampered_proof(repo_root, tmp_path):
    lp = repo_root / "samples/guzelsoy_ralphs.lp"
    proof = tmp_path / "p.json"
    r = run("certify", lp, "-o", proof, "--json")
    assert r.exit_code == 0, r.output
    assert run("verify", lp, "--certificate", proof).exit_code == 0
    doc = json.loads(proof.read_text())
    doc["claimed_bound"] = 1.25
    proof.write_text(json.dumps(doc))
    r = run("verify", lp, "--certificate", proof)
    assert r.exit_code == 1 and "does not reach" in r.stderr
    r = run("certify", lp, "--format", "vipr", "-o", tmp_path / "p.vipr")
    assert r.exit_code == 0 and (tmp_path / "p.vipr").read_text().startswith("VER 1.0")
