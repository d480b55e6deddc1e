"""A run folder is one run's, whole: one writer at a time, weights and certificate bound together, and a write
that fails (a full disk) or a kill -9 leaves the previous files, a labelled checkpoint or nothing, never a mix."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.io.runs import stale_temporary
from tests.cli.test_honest_failures import _in_private_mount
from tests.conftest import wait_until_solving

ROOT = Path(__file__).resolve().parents[2]
XOR = [str(ROOT / "configs/xor.yaml"), str(ROOT / "samples/xor.yaml")]
DIGITS = [str(ROOT / "configs/digits_milp.yaml"), str(ROOT / "samples/digits_k10.yaml")]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _start(args: list[str]) -> subprocess.Popen:
    """A training run, once its solver works (the folder is locked from the start; by then its first
    checkpoint is written too)."""
    proc = subprocess.Popen([sys.executable, "-m", "bnnmilp", "--progress", "plain", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_until_solving(proc)
    return proc


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    first = _start(["train", *DIGITS, "-o", str(tmp_path / "run"), "--time-limit", "30"])
    try:
        r = run("train", *XOR, "-o", tmp_path / "run")
        assert r.exit_code == 2
        assert r.stderr.strip() == (f"bnnmilp: error: {tmp_path / 'run'}: is being written by process {first.pid}: "
                                    "wait for it to end, or choose another folder")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["certificate.json", "weights.yaml"]
    assert run("verify", tmp_path / "run", DIGITS[1]).exit_code == 0


def test_files_of_two_runs_are_refused(tmp_path):
    for name, seed in (("a", "0"), ("b", "1")):
        assert run("train", *XOR, "-o", tmp_path / name, "--seed", seed, "--time-limit", "10").exit_code == 0
    a, b = (yaml.safe_load((tmp_path / n / "weights.yaml").read_text())["layers"] for n in "ab")
    assert a != b  # two different networks
    shutil.copy(tmp_path / "b/certificate.json", tmp_path / "a/certificate.json")
    for command in ("verify", "predict"):
        r = run(command, tmp_path / "a", XOR[1])
        assert r.exit_code == 2
        assert "weights.yaml and certificate.json are not of the same run" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert run("verify", tmp_path / "b", XOR[1]).exit_code == 0


def test_the_certificate_names_the_weights_it_was_written_with(tmp_path):
    from bnnmilp.io.runs import load_weights

    assert run("train", *XOR, "-o", tmp_path / "r", "--time-limit", "10").exit_code == 0
    cert = json.loads((tmp_path / "r/certificate.json").read_text())
    assert cert["weights_sha256"] == load_weights(tmp_path / "r").network.sha256()


def test_a_full_disk_leaves_no_run(tmp_path):
    """Room for one file of the run but not both: neither is put in place, and the folder is removed."""
    script = (f"mount -t tmpfs -o size=4k tmpfs disk && {sys.executable} -m bnnmilp train {XOR[0]} {XOR[1]} "
              f"-o disk/run --time-limit 10; echo \"exit $?\"; ls -A disk")
    (tmp_path / "disk").mkdir()
    p = _in_private_mount(script, tmp_path)
    lines = p.stdout.split()
    assert lines == ["exit", "2"], p.stdout + p.stderr
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("bnnmilp")]
    assert len(err) == 1 and "No space left on device" in err[0], p.stderr


def _state(folder: Path, data: str) -> str:
    """absent, checkpoint or complete; anything else (a mix, a file without its partner) fails the test."""
    if not folder.exists():
        return "absent"
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if not names:
        return "absent"
    assert {"weights.yaml", "certificate.json"} <= set(names), names
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".bnnmilp.lock"]
    assert all(stale_temporary(n) for n in hidden), hidden  # what kill -9 during a write can leave
    r = run("verify", folder, data)
    assert r.exit_code == 0, r.stderr
    doc = yaml.safe_load((folder / "weights.yaml").read_text())
    return "checkpoint" if doc["training_loss"].get("checkpoint") else "complete"


@pytest.mark.slow
def test_kill_9_at_ten_random_points_of_train_never_leaves_a_mix(tmp_path):
    rng = random.Random(35)
    seen = set()
    for i in range(10):
        out = tmp_path / f"run{i}"
        proc = subprocess.Popen([sys.executable, "-m", "bnnmilp", "train", *DIGITS, "-o", str(out),
                                 "--time-limit", "8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=_private_tmp(tmp_path))
        time.sleep(rng.uniform(0.3, 9.0))
        proc.kill()
        proc.wait()
        seen.add(_state(out, DIGITS[1]))
    assert seen <= {"absent", "checkpoint", "complete"}
    for i in range(10):  # the next run into each folder starts clean: no earlier file, no temporary one
        r = run("train", *XOR, "-o", tmp_path / f"run{i}", "--force", "--time-limit", "5")
        assert r.exit_code == 0, r.stderr
        assert not [p for p in (tmp_path / f"run{i}").iterdir() if stale_temporary(p.name)]


def _pair_data(tmp_path: Path, pair: str) -> Path:
    """The training images of a one-vs-one member "A_B": label 1 for class A (bit 1 votes for it), 0 for B."""
    a, b = (int(c) for c in pair.split("_"))
    doc = yaml.safe_load(Path(DIGITS[1]).read_text())
    keep = [i for i, y in enumerate(doc["labels"]) if y in (a, b)]
    out = tmp_path / f"pair_{pair}.yaml"
    out.write_text(yaml.safe_dump({"features": [doc["features"][i] for i in keep],
                                   "labels": [int(doc["labels"][i] == a) for i in keep]}))
    return out


def _private_tmp(tmp_path: Path) -> dict[str, str]:
    """The environment of a process about to be killed: its temporary folders go under the test's own, since
    kill -9 leaves them behind."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp_path / "tmp")}


def _killed_at(args: list[str], seconds: float, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bnnmilp", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_private_tmp(tmp_path))
    time.sleep(seconds)
    proc.kill()
    proc.wait()


def _json_or_absent(path: Path) -> dict | None:
    """A file a killed command wrote: absent, or whole (valid JSON), never half."""
    if not path.exists():
        return None
    return json.loads(path.read_text())


@pytest.mark.slow
def test_kill_9_at_ten_random_points_of_verify_robust_and_bound_never_leaves_half_a_file(tmp_path):
    rng = random.Random(36)
    assert run("train", *DIGITS, "-o", tmp_path / "net", "--time-limit", "10").exit_code == 0
    (tmp_path / "narrow.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 2, 10]},
                                                          "training": {"epsilon": 0.015625}}))
    test = str(ROOT / "samples/digits_test.yaml")
    for i in range(10):
        out = tmp_path / f"rob{i}"
        _killed_at(["verify", str(tmp_path / "net"), test, "--robust", "--eps", "1", "--engine", "milp",
                    "-o", str(out)], rng.uniform(0.5, 8.0), tmp_path)
        hidden = [p.name for p in out.rglob(".*") if p.is_file()]  # kill -9 can leave a record's temporary file
        assert all(n.startswith(".") and ".json." in n for n in hidden), hidden
        for job in (out / "jobs").glob("[!.]*.json") if (out / "jobs").exists() else []:  # not the temporaries
            assert json.loads(job.read_text())["ok"] in (True, False)
        doc = _json_or_absent(out / "robustness.json")
        assert doc is None or len(doc["results"]) == 500
        if hidden:  # the next run into the folder removes them
            r = run("verify", tmp_path / "net", test, "--robust", "--eps", "1", "--engine", "milp", "-o", out)
            assert r.exit_code in (0, 1), r.stderr
            assert not [p for p in out.rglob(".*") if p.is_file()]
        proof = tmp_path / f"bound{i}.json"
        _killed_at(["bound", str(tmp_path / "narrow.yaml"), DIGITS[1], "-o", str(proof), "--time-limit", "6"],
                   rng.uniform(0.5, 7.0), tmp_path)
        if _json_or_absent(proof) is not None:
            r = run("verify", tmp_path / "narrow.yaml", DIGITS[1], "--certificate", proof)
            assert r.exit_code == 0, r.stderr


@pytest.mark.slow
def test_kill_9_at_ten_random_points_of_an_ensemble_run_never_leaves_a_mix(tmp_path):
    """A killed ensemble run leaves member folders that are whole (weights and certificate of one run) or
    absent, and RUN/weights.yaml only when every member is there; a rerun finishes from the job records."""
    rng = random.Random(37)
    (tmp_path / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 16, 10]},
                                                       "training": {"epsilon": 0.015625}}))
    for i in range(10):
        out = tmp_path / f"ens{i}"
        _killed_at(["train", str(tmp_path / "net.yaml"), DIGITS[1], "-o", str(out), "--ensemble", "ovo",
                    "--time-limit", "0.5"], rng.uniform(0.5, 15.0), tmp_path)
        for member in (out / "members").iterdir() if (out / "members").exists() else []:
            names = sorted(p.name for p in member.iterdir() if not p.name.startswith("."))
            assert names in ([], ["certificate.json", "weights.yaml"]), names
            if names:  # a whole member reads and predicts its own pair of classes
                assert run("predict", member, _pair_data(tmp_path, member.name)).exit_code == 0
        if (out / "weights.yaml").exists():
            assert len(list((out / "members").iterdir())) == 45
            assert run("verify", out, DIGITS[1]).exit_code == 0
    r = run("train", tmp_path / "net.yaml", DIGITS[1], "-o", tmp_path / "ens9", "--ensemble", "ovo", "--time-limit",
            "0.5", "--force")
    assert r.exit_code == 0, r.stderr
    assert run("verify", tmp_path / "ens9", DIGITS[1]).exit_code == 0
