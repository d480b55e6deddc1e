"""The commands end to end on the committed samples: files written, JSON on stdout, claims re-checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from tests.conftest import wait_until_solving


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_verify_predict_xor(repo_root, tmp_path):
    cfg, data = repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml"
    r = run("train", cfg, data, "-o", tmp_path / "run", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert set(summary) >= {"status", "objective", "bound", "gap", "runtime_s", "weights", "certificate"}
    assert summary["status"] == "optimal" and summary["objective"] == 0
    cert = json.loads((tmp_path / "run/certificate.json").read_text())
    assert cert["format"] == "bnnmilp-certificate" and cert["solver"]["name"] == "highs"
    assert cert["status"] == "optimal"  # the solver's report; loss 0 is proven optimal by proof.json
    assert (cert["proven"], cert["proven_bound"], cert["proven_optimal"], cert["proof"]) == (True, "0", True,
                                                                                          "proof.json")
    r = run("verify", tmp_path / "run", data, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["ok"] and rep["exact_loss"] == 0
    # lns writes STE's own network where nothing fits better (here the noisy grid's exact fit): its recorded
    # margin, whatever its sign, is recomputed exactly
    margin = next(c for c in rep["checks"] if c["name"] == "margin")
    assert margin["ok"] is True and margin["detail"].startswith("recorded min slack ")
    r = run("predict", tmp_path / "run/weights.yaml", data, "-o", tmp_path / "pred.csv")
    assert r.exit_code == 0
    rows = (tmp_path / "pred.csv").read_text().splitlines()
    assert rows[0] == "index,label,prediction,argmax_prediction,bits" and len(rows) == 9
    assert all(line.split(",")[1] == line.split(",")[2] for line in rows[1:])


def test_verify_rejects_false_claims(repo_root, tmp_path):
    cfg, data = repo_root / "configs/paper.yaml", repo_root / "samples/xor.yaml"
    assert run("train", cfg, data, "-o", tmp_path / "run").exit_code == 0
    good = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())

    def tampered(edit):
        doc = yaml.safe_load(yaml.safe_dump(good))
        edit(doc)
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump(doc))
        return run("verify", p, data, "--json")

    def lower_loss(d):
        d["training_loss"]["value"] = d["training_loss"]["value"] - 1

    def raise_bound(d):
        d["training_loss"]["solver_bound"] = d["training_loss"]["value"] + 1

    def flip_weight(d):
        d["layers"][-1]["weights"][0] = [-w for w in d["layers"][-1]["weights"][0]]

    def unshare_threshold(d):
        d["layers"][0]["thresholds"][0] = d["layers"][0]["thresholds"][0] / 2 + 0.125

    def fake_margin(d):
        d["margin"]["min_slack"] = "1/2"

    for edit, failing in [(lower_loss, "loss"), (raise_bound, "bound"), (flip_weight, "loss"),
                          (unshare_threshold, "domain"), (fake_margin, "margin")]:
        r = tampered(edit)
        assert r.exit_code == 1, edit.__name__
        rep = json.loads(r.stdout)
        assert not rep["ok"]
        assert failing in [c["name"] for c in rep["checks"] if c["ok"] is False], (edit.__name__, rep["checks"])
    # other data than the training data is a false claim too
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"features": [[0.5, 0.5]], "labels": [1]}))
    assert run("verify", tmp_path / "run", other).exit_code == 1


@pytest.mark.parametrize("fmt", ["mps", "lp"])
def test_encode_writes_file_and_stats(repo_root, tmp_path, fmt):
    out = tmp_path / f"xor.{fmt}"
    r = run("encode", repo_root / "configs/paper.yaml", repo_root / "samples/xor.yaml", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)
    m = 8
    assert st["variables"] == 8 + 5 * m and st["binary"] == 3 * m and st["rows"] == 14 * m
    text = out.read_text()
    assert "w_1_0_1" in text and "u_7_2_0" in text and "lam_1" in text
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left behind


def test_node_limited_run_is_labelled_and_valid(tmp_path):
    """A limit that does not depend on the machine: one branch-and-bound node (HiGHS stops after its root)."""
    from tests.conftest import grid_instance

    d = grid_instance(3, [2, 3, 1], 24)
    data = tmp_path / "d.yaml"
    data.write_text(yaml.safe_dump({"features": d.features.tolist(), "labels": d.labels.tolist()}))
    net = tmp_path / "net.yaml"
    net.write_text(yaml.safe_dump({"network": {"layers": [2, 3, 1]}, "training": {"method": "milp"}}))
    r = run("train", net, data, "-o", tmp_path / "run", "--node-limit", "1", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["status"] == "node_limit" and s["nodes"] == 1 and s["bound"] == 0.0 and s["objective"] > 0
    w = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())
    assert w["training_loss"]["best_so_far"] is True and w["training_loss"]["status"] == "node_limit"
    assert json.loads((tmp_path / "run/certificate.json").read_text())["node_limit"] == 1
    r = run("verify", tmp_path / "run", data, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["exact_loss"] == s["objective"]


def test_ctrl_c_keeps_best_so_far(repo_root, tmp_path):
    """SIGINT during a long solve: HiGHS is cancelled, the best weights are written and labelled."""
    out = tmp_path / "run"
    args = ["train", str(repo_root / "configs/digits_milp.yaml"), str(repo_root / "samples/digits_k10.yaml"), "-o",
            str(out), "--time-limit", "120", "--json", "--progress", "plain"]
    # `python -m bnnmilp ARGS`, with Python's Ctrl-C handler installed even if this suite runs as a shell's
    # background job (which inherits SIGINT ignored, and Python then keeps ignoring it)
    boot = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.argv = ['bnnmilp', *{args!r}]; runpy.run_module('bnnmilp', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", boot], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = wait_until_solving(proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + stderr
    s = json.loads(stdout)
    assert s["status"] == "interrupted"
    w = yaml.safe_load((out / "weights.yaml").read_text())
    assert w["training_loss"]["best_so_far"] is True
    assert run("verify", out, repo_root / "samples/digits_k10.yaml").exit_code == 0
    assert not [p for p in os.listdir(out) if p.startswith(".")]


def test_infeasible_training_problem_exits_1(tmp_path):
    net = tmp_path / "net.yaml"
    net.write_text(yaml.safe_dump({"network": {"layers": [1, 1], "weights": "binary", "thresholds": "zero"},
                                   "training": {"method": "milp"}}))
    data = tmp_path / "d.yaml"
    data.write_text(yaml.safe_dump({"features": [[0.03125], [-0.03125]], "labels": [1, 0]}))
    r = run("train", net, data, "-o", tmp_path / "run", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["status"] == "infeasible"
    assert not (tmp_path / "run/weights.yaml").exists()
    assert json.loads((tmp_path / "run/certificate.json").read_text())["status"] == "infeasible"


def test_argmax_output_train_predict_verify(tmp_path, repo_root):
    """XOR with two output scores: trained to zero errors; predict follows the argmax rule; robustness of the
    argmax (ties count as adversarial) is answered per sample; --min-eps refuses argmax outputs."""
    cfg = tmp_path / "net.yaml"
    cfg.write_text(yaml.safe_dump({"network": {"layers": [2, 2, 2], "thresholds": "per_neuron", "output": "argmax"},
                                   "training": {"epsilon": 0.0625}, "solver": {"time_limit": 30}}))
    data = repo_root / "samples/xor.yaml"
    r = run("train", cfg, data, "-o", tmp_path / "run", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["objective"] == 0
    doc = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())
    assert doc["network"]["output"] == "argmax" and doc["training"]["loss"] == "error"
    r = run("predict", tmp_path / "run/weights.yaml", data, "--json")
    out = json.loads(r.stdout)
    assert out["output"] == "argmax" and out["predictions"] == out["argmax_predictions"]
    assert out["predictions"] == [0, 1, 1, 0, 0, 1, 1, 0] and out["accuracy"] == 1.0
    r = run("predict", tmp_path / "run", data, "-o", tmp_path / "p.csv")  # the network's own rule leads
    assert r.stderr.strip().endswith(f"8 samples: accuracy 1.0000 (argmax), {out['accuracy_exact_match']:.4f} "
                                     "(exact match)")
    r = run("verify", tmp_path / "run", data, "--json")
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and rep["ok"] and rep["errors"] == 0  # the margin, of STE's own weights, recomputed
    assert next(c for c in rep["checks"] if c["name"] == "margin")["ok"] is True
    r = run("verify", tmp_path / "run", data, "--robust", "--eps", "0.1", "--json")
    assert r.exit_code in (0, 1), r.stderr
    res = json.loads(r.stdout)["results"]
    assert len(res) == 8 and all(x["answer"] in ("robust", "not_robust") for x in res)
    r = run("verify", tmp_path / "run", data, "--robust", "--min-eps", "--bounds", "-1:1")
    assert r.exit_code == 2 and "network.output" in r.stderr


def test_tables_show_values_as_people_read_them():
    from bnnmilp.cli.terminal import cell

    assert [cell(v) for v in (0.5654136157900016, 1e-9, {"milp": 455, "interval": 45}, ["loss", "margin"],
                              [784, 16, 10], None, True, 3, "x")] == \
        ["0.565414", "1e-09", "milp 455, interval 45", "[loss, margin]", "[784, 16, 10]", "-", "yes", "3", "x"]


@pytest.mark.parametrize("config", ["digits_milp.yaml", "digits_argmax.yaml"])
def test_train_reports_the_training_accuracy_that_predict_finds(repo_root, tmp_path, config):
    data = repo_root / "samples/digits_k2.yaml"
    r = run("train", repo_root / "configs" / config, data, "-o", tmp_path / "run", "--method", "ste", "--json")
    assert r.exit_code == 0, r.stderr
    acc = json.loads(r.stdout)["training_accuracy"]
    p = run("predict", tmp_path / "run", data, "--json")
    assert acc == json.loads(p.stdout)["accuracy"]
