"""`verify --robust` and `encode --robust` end to end on a trained network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.io.runs import load_weights


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path_factory.mktemp("robust") / "run"
    r = run("train", root / "configs/digits_milp.yaml", root / "samples/digits_k1.yaml", "-o", out, "--method", "ste")
    assert r.exit_code == 0, r.output
    return out, root / "samples/digits_k1.yaml"


def test_verify_robust_json_and_counterexamples(trained, tmp_path):
    run_dir, data = trained
    cx = tmp_path / "cx.yaml"
    r = run("verify", run_dir, data, "--robust", "--eps", "2", "--domain", "integer", "--bounds", "0:16",
            "--counterexamples", cx, "--json", "--workers", "2")
    assert r.exit_code in (0, 1), r.output
    rep = json.loads(r.stdout)
    s = rep["summary"]
    assert s["samples"] == 10 and s["robust"] + s["not_robust"] + s["unknown"] == 10
    assert (r.exit_code == 0) == (s["robust"] == 10)
    net = load_weights(run_dir).network
    doc = yaml.safe_load(cx.read_text())
    assert len(doc["features"]) == s["not_robust"]
    feats = yaml.safe_load(data.read_text())["features"]
    for res in rep["results"]:
        if res["answer"] == "not_robust":  # replay: inside the ball, integer, and the output bits change
            x, xp = np.array(feats[res["index"]], float), np.array(res["counterexample"])
            assert np.abs(xp - x).max() <= 2 and np.all(xp == np.round(xp)) and xp.min() >= 0 and xp.max() <= 16
            assert not np.array_equal(net.predict_bits(xp[None])[0], net.predict_bits(x[None])[0])


def test_pruning_does_not_change_answers(trained):
    run_dir, data = trained
    answers = []
    for extra in ([], ["--no-prune"], ["--reuse-model", "--workers", "2"]):
        r = run("verify", run_dir, data, "--robust", "--eps", "1", "--domain", "integer", "--bounds", "0:16",
                "--json", *extra)
        answers.append([x["answer"] for x in json.loads(r.stdout)["results"]])
    assert answers[0] == answers[1] == answers[2]


def test_encode_robust_query_matches_verify(trained, tmp_path):
    pyscipopt = pytest.importorskip("pyscipopt")
    run_dir, data = trained
    r = run("verify", run_dir, data, "--robust", "--eps", "1", "--domain", "integer", "--bounds", "0:16",
            "--json", "--no-prune")
    answers = [x["answer"] for x in json.loads(r.stdout)["results"]]
    for i in range(3):
        out = tmp_path / f"q{i}.mps"
        r = run("encode", run_dir, data, "--robust", "--sample", i, "--eps", "1", "--domain", "integer",
                "--bounds", "0:16", "-o", out)
        assert r.exit_code == 0, r.output
        m = pyscipopt.Model()
        m.hideOutput()
        m.readProblem(str(out))
        m.optimize()
        assert (m.getStatus() == "infeasible") == (answers[i] == "robust")


def test_robust_needs_a_radius(trained):
    run_dir, data = trained
    r = run("verify", run_dir, data, "--robust")
    assert r.exit_code == 2 and "--eps" in r.stderr


def answers(doc: dict) -> list[tuple]:
    """What a query decided (not how long it took)."""
    return [(r["index"], r["answer"], r["method"], r["counterexample"], r["distance"]) for r in doc["results"]]


@pytest.mark.slow
def test_queries_run_as_jobs_on_a_pool_and_on_dask_with_the_same_answers(trained, tmp_path):
    run_dir, data = trained
    base = ["verify", run_dir, data, "--robust", "--eps", "2", "--domain", "integer", "--bounds", "0:16", "--json"]
    one = json.loads(run(*base).stdout)
    pool = json.loads(run(*base, "--workers", "2").stdout)
    dask = json.loads(run(*base, "--workers", "2", "--scheduler", "local").stdout)
    assert answers(one) == answers(pool) == answers(dask)
    assert [r["index"] for r in one["results"]] == list(range(10))


def test_per_query_results_are_written_and_a_rerun_resumes(trained, tmp_path):
    run_dir, data = trained
    out = tmp_path / "out"
    args = ["verify", run_dir, data, "--robust", "--eps", "1", "--domain", "integer", "--bounds", "0:16", "--json",
            "-o", out]
    first = run(*args)
    files = sorted((out / "jobs").glob("*.json"))
    assert len(files) == 10
    assert json.loads((out / "robustness.json").read_text()) == json.loads(first.stdout)
    # a rerun reads the finished queries instead of solving them again: a record marked by hand shows through
    rec = json.loads(files[3].read_text())
    rec["result"]["note"] = "read back from the job record"
    files[3].write_text(json.dumps(rec))
    again = json.loads(run(*args).stdout)
    assert sum(r["note"] == "read back from the job record" for r in again["results"]) == 1
    assert answers(again) == answers(json.loads(first.stdout))
    # other options are other queries: nothing reused
    other = json.loads(run(*args[:-3], "--eps", "2", "--json", "-o", out).stdout)
    assert len(list((out / "jobs").glob("*.json"))) == 20 and other["summary"]["samples"] == 10


def test_a_query_that_fails_is_unknown_and_named(trained, tmp_path, monkeypatch):
    from bnnmilp.verification.robustness import robust

    def broken(payload):
        if payload["index"] == 4:
            raise RuntimeError("disk on fire")
        return real(payload)

    real = robust.run_query
    monkeypatch.setattr(robust, "run_query", broken)
    run_dir, data = trained
    r = run("verify", run_dir, data, "--robust", "--eps", "1", "--domain", "integer", "--bounds", "0:16", "--json")
    assert r.exit_code == 1
    res = json.loads(r.stdout)["results"][4]
    assert (res["answer"], res["method"]) == ("unknown", "error") and "RuntimeError: disk on fire" in res["note"]


def test_output_is_spelled_as_elsewhere_and_the_old_out_still_works(trained, tmp_path):
    run_dir, data = trained
    args = ["verify", run_dir, data, "--robust", "--eps", "1", "--json"]
    new, old = run(*args, "--output", tmp_path / "a"), run(*args, "--out", tmp_path / "b")
    assert new.exit_code in (0, 1) and old.exit_code == new.exit_code, (new.stderr, old.stderr)
    answers = [[(q["answer"], q["counterexample"]) for q in json.loads((tmp_path / f"{d}/robustness.json")
                                                                       .read_text())["results"]] for d in "ab"]
    assert answers[0] == answers[1] and len(answers[0]) == 10
    both = run(*args, "--output", tmp_path / "c", "--out", tmp_path / "d")
    assert both.exit_code == 2
    assert both.stderr == "bnnmilp: error: --output and --out: give one of them, not both (--out is the older " \
                          "spelling of --output)\n"
    assert "--out " not in run("verify", "--help").output


def test_plot_draws_the_counterexamples_of_image_inputs(trained, tmp_path, repo_root):
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg

    run_dir, data = trained
    r = run("verify", run_dir, data, "--robust", "--eps", "3", "--domain", "integer", "--bounds", "0:16",
            "--plot", tmp_path / "cx.png", "--json")
    assert r.exit_code == 1, r.stderr  # digits at eps 3 have counterexamples
    shown = sum(q["counterexample"] is not None for q in json.loads(r.stdout)["results"])
    assert shown > 0 and mpimg.imread(tmp_path / "cx.png").ndim == 3
    plain = run("verify", run_dir, data, "--plot", tmp_path / "y.png")
    assert plain.exit_code == 2 and "--plot: draws the counterexamples of --robust" in plain.stderr
    assert run("train", repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml", "-o", tmp_path / "xor",
               "--method", "ste").exit_code == 0
    two = run("verify", tmp_path / "xor", repo_root / "samples/xor.yaml", "--robust", "--eps", "0.1", "--plot",
              tmp_path / "x.png")
    assert two.exit_code == 2 and "--plot: inputs that form an image; these are 2 features" in two.stderr
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_image_shapes_come_from_the_import_or_a_square():
    from bnnmilp.analysis.plots import _as_image, image_shape

    assert image_shape(None, 64) == (8, 8) and image_shape(None, 63) is None and image_shape({}, 2) is None
    assert image_shape({"input_shape": [3, 4, 5]}, 60) == (3, 4, 5)
    assert image_shape({"input_shape": [4, 5, 3]}, 60) == (4, 5, 3)
    x = np.arange(60.0)
    assert _as_image(x, (3, 4, 5)).shape == (4, 5, 3) and _as_image(x, (3, 4, 5))[1, 2, 0] == 7.0  # C order
    assert _as_image(x, (4, 5, 3)).shape == (4, 5, 3) and _as_image(x, (4, 5, 3))[1, 2, 0] == 21.0
