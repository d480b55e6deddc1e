"""Every command with --time-limit, on an input made to exceed it: the exit status and the labelled result a
budget-limited run must leave. The overrun itself is measured by benchmarks/budgets.py, never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from tests.onnx_models import two_conv_bnn

ROOT = Path(__file__).resolve().parents[2]
SAMPLES, CONFIGS = ROOT / "samples", ROOT / "configs"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def hard_milp(tmp_path_factory) -> Path:
    """The digits training MILP at 5 images per class: HiGHS needs minutes for it."""
    out = tmp_path_factory.mktemp("budgets") / "digits_k5.mps"
    r = run("encode", CONFIGS / "digits_milp.yaml", SAMPLES / "digits_k5.yaml", "-o", out, "--writer", "highs")
    assert r.exit_code == 0, r.stderr
    return out


@pytest.mark.parametrize(("command", "line"), [
    ("certify", "HiGHS did not solve the model to optimality (time_limit): nothing to certify"),
    ("grad", "HiGHS did not solve the MILP to optimality (time_limit); try a longer --time-limit"),
])
def test_a_milp_beyond_the_limit_is_one_line_and_exit_3(hard_milp, tmp_path, command, line):
    args = [command, hard_milp, "--time-limit", "1"] + (["-o", tmp_path / "p.json"] if command == "certify" else [])
    r = run(*args)
    assert r.exit_code == 3
    assert r.stderr.strip() == f"bnnmilp: error: {line}"
    assert not (tmp_path / "p.json").exists()


def test_bound_beyond_the_limit_still_writes_a_proof_that_checks(tmp_path):
    """Twenty groups of five digits in 3 s: those whose share of the time is spent keep the trivial bound, and
    the composite proof still checks."""
    (tmp_path / "narrow.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 2, 10]},
                                                          "training": {"epsilon": 0.015625}}))
    r = run("bound", tmp_path / "narrow.yaml", SAMPLES / "digits_k10.yaml", "-o", tmp_path / "b.json",
            "--time-limit", "3", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["format"] == "bnnmilp-composite-proof"
    check = run("verify", tmp_path / "narrow.yaml", SAMPLES / "digits_k10.yaml", "--certificate", tmp_path / "b.json")
    assert check.exit_code == 0, check.stderr


def test_an_ensemble_query_beyond_its_limit_is_unknown_with_its_open_rivals(tmp_path):
    from bnnmilp.io.runs import load_weights
    from bnnmilp.verification.robustness import robust
    from bnnmilp.verification.robustness.robust import RobustOptions, verify_ensemble_sample

    (tmp_path / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 16, 10]},
                                                       "training": {"epsilon": 0.015625}}))
    r = run("train", tmp_path / "net.yaml", SAMPLES / "digits_k2.yaml", "-o", tmp_path / "ens", "--ensemble", "ovo",
            "--time-limit", "1")
    assert r.exit_code == 0, r.stderr
    ens = load_weights(tmp_path / "ens")
    test = yaml.safe_load((SAMPLES / "digits_test.yaml").read_text())
    import numpy as np

    x = np.array(test["features"][0], dtype=float)
    saved = robust.FALSIFY_POINTS
    robust.FALSIFY_POINTS = 0  # the rivals' solves, not the sampled points
    try:
        res = verify_ensemble_sample(ens, x, test["labels"][0], 0, RobustOptions(eps=8, time_limit=0.01))
    finally:
        robust.FALSIFY_POINTS = saved
    if res.method == "interval":
        pytest.skip("interval arithmetic settled this query without any solve")
    assert res.answer in ("unknown", "not_robust")
    if res.answer == "unknown":
        assert res.note.startswith("rivals not settled: [")


@pytest.mark.parametrize("command", ["import", "encode"])
def test_import_and_encode_beyond_the_limit_stop_with_exit_3_and_write_nothing(tmp_path, command):
    """Neither has a partial result to keep: past --time-limit, one line, exit 3, no file (not even a temporary
    one); with room to finish, the same command writes its file."""
    if command == "import":
        two_conv_bnn(tmp_path / "conv.onnx", channels=16, side=32)
        args, out = ["import", tmp_path / "conv.onnx", "-o"], tmp_path / "net.npz"
        what = "importing"
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        X = (rng.random((100, 784)) < 0.2) * rng.integers(0, 256, (100, 784))
        np.savez(tmp_path / "mnist_like.npz", X=X, y=np.arange(100) % 10)
        (tmp_path / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [784, 16, 10], "output": "argmax"}}))
        args, out = ["encode", tmp_path / "net.yaml", tmp_path / "mnist_like.npz", "-o"], tmp_path / "m.lp"
        what = "encoding"
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run(*args, out, "--time-limit", "0.5")
    assert r.exit_code == 3
    assert r.stderr == f"bnnmilp: error: the time limit of 0.5 s ran out while {what}; nothing was written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    r = run(*args, out, "--time-limit", "300")
    assert r.exit_code == 0, r.stderr
    assert out.stat().st_size > 0
