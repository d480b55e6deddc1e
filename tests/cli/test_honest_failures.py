"""Failures never look like success: solver failures, failed runs, stale files, full disks, read-only places."""

from __future__ import annotations

import json
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
from tests.conftest import wait_until_solving


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_solver_failure_exits_3_and_writes_nothing(repo_root, tmp_path):
    data = tmp_path / "huge.yaml"
    data.write_text("features:\n- [1e300, 0.5]\n- [0.25, 1.0]\n- [0.5, 0.5]\nlabels: [0, 1, 1]\n")
    r = run("train", repo_root / "configs/xor.yaml", data, "-o", tmp_path / "run")
    assert r.exit_code == 3
    assert "solver highs failed (status error)" in r.stderr
    assert not (tmp_path / "run").exists()


def test_verify_rejects_a_run_whose_solve_failed(repo_root, tmp_path):
    data = repo_root / "samples/xor.yaml"
    assert run("train", repo_root / "configs/xor.yaml", data, "-o", tmp_path / "run").exit_code == 0
    assert run("verify", tmp_path / "run", data).exit_code == 0
    w = tmp_path / "run/weights.yaml"
    doc = yaml.safe_load(w.read_text())
    doc["training_loss"]["status"] = "error"  # what an older bnnmilp wrote after a failed solve
    w.write_text(yaml.safe_dump(doc))
    r = run("verify", tmp_path / "run", data, "--json")
    assert r.exit_code == 1
    rep = json.loads(r.stdout)
    assert not rep["ok"] and [c["ok"] for c in rep["checks"] if c["name"] == "status"] == [False]


def test_unpolished_weights_that_lose_what_the_solver_won_are_flagged(repo_root, tmp_path):
    data = repo_root / "samples/digits_k1.yaml"
    r = run("train", repo_root / "configs/digits_milp.yaml", data, "-o", tmp_path / "run", "--polish", "none",
            "--time-limit", "30", "--json")
    assert r.exit_code == 0
    s = json.loads(r.stdout)
    cert = json.loads((tmp_path / "run/certificate.json").read_text())
    assert cert["written_loss"] == s["objective"]
    # the solver's network sits on the boundary of its rows: the exact pass loses bits (measured: 20 against 0)
    assert s["objective"] > cert["objective"] == 0
    assert "exceeds the solver's objective" in s["note"] and cert["written_loss_note"] == s["note"]
    assert run("verify", tmp_path / "run", data).exit_code == 0  # the recorded loss is the exact one


def test_train_refuses_an_earlier_run_unless_forced(repo_root, tmp_path):
    net, data, out = repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml", tmp_path / "run"
    assert run("train", net, data, "-o", out).exit_code == 0
    assert run("certify", out, data).exit_code == 0
    stale = (out / "proof.json").read_text()
    (out / "notes.txt").write_text("mine")
    stamp = (out / "weights.yaml").stat().st_mtime_ns
    r = run("train", net, data, "-o", out)
    assert r.exit_code == 2 and "--force" in r.stderr
    assert (out / "weights.yaml").stat().st_mtime_ns == stamp and (out / "proof.json").exists()
    assert run("train", net, data, "-o", out, "--force").exit_code == 0
    assert (out / "proof.json").read_text() != stale  # no stale proof beside new weights: the new run's own
    assert run("verify", out, data).exit_code == 0
    assert (out / "notes.txt").read_text() == "mine"  # files bnnmilp did not write are left alone
    assert sorted(p.name for p in out.iterdir()) == ["certificate.json", "notes.txt", "proof.json", "weights.yaml"]


def _in_private_mount(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run a shell script in its own mount namespace (mounts vanish with it); skip where that is impossible."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True,
                               check=False)
        if probe.returncode != 0:
            pytest.skip("no private mount namespace here")
        prefix = ["unshare", "--user", "--map-root-user", "--mount"]
    else:
        prefix = ["unshare", "--mount"]
    return subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          check=False)


BNNMILP = f"{sys.executable} -m bnnmilp"


@pytest.mark.parametrize(("writer", "ext"), [("highs", "mps"), ("pyomo", "lp")])
def test_a_full_disk_is_one_line_and_leaves_nothing(repo_root, tmp_path, writer, ext):
    """HiGHS's writer reports no failed write (it leaves a truncated file): bnnmilp must notice."""
    (tmp_path / "disk").mkdir()
    script = (f"mount -t tmpfs -o size=64k tmpfs disk && {BNNMILP} encode {repo_root}/configs/digits_milp.yaml "
              f"{repo_root}/samples/digits_k1.yaml -o disk/m.{ext} --writer {writer}; echo \"status $?\"; ls -A disk")
    p = _in_private_mount(script, tmp_path)
    lines = p.stdout.split()
    assert lines[:2] == ["status", "2"], (p.stdout, p.stderr)
    assert lines[2:] == []  # no partial file, no temporary file
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "No space left on device" in err[0] and "Traceback" not in p.stderr


def test_a_read_only_place_is_refused_before_solving(repo_root, tmp_path):
    (tmp_path / "ro").mkdir()
    script = (f"mount -t tmpfs -o ro,size=64k tmpfs ro && {BNNMILP} train {repo_root}/configs/digits_milp.yaml "
              f"{repo_root}/samples/digits_k1.yaml -o ro/run; echo \"status $?\"")
    p = _in_private_mount(script, tmp_path)
    assert p.stdout.split() == ["status", "2"], (p.stdout, p.stderr)
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "read-only" in err[0] and "training" not in p.stderr


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
@pytest.mark.slow
def test_sigterm_and_sighup_keep_the_best_network(repo_root, tmp_path, signum, code):
    """SIGTERM (timeout, schedulers, docker stop) and SIGHUP (a closed terminal or ssh session) are handled
    like Ctrl-C: the best network so far, exit 143 or 129."""
    data = repo_root / "samples/digits_k10.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "bnnmilp", "train", str(repo_root / "configs/digits_milp.yaml"),
                             str(data), "-o", str(tmp_path / "run"), "--time-limit", "120", "--json", "--progress",
                             "plain"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = wait_until_solving(proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, seen + err
    assert json.loads(out)["status"] == "interrupted"
    doc = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())
    assert doc["training_loss"]["best_so_far"] is True
    assert run("verify", tmp_path / "run", data).exit_code == 0


@pytest.mark.parametrize(("writer", "ext"), [("highs", "mps"), ("highs", "lp")])
def test_the_highs_writer_writes_complete_files(repo_root, tmp_path, writer, ext):
    from bnnmilp.milp.backends import highs

    out = tmp_path / f"m.{ext}"
    r = run("encode", repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml", "-o", out, "--writer", writer,
            "--json")
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    back = highs.read(out).stats()
    assert {k: back[k] for k in ("variables", "rows", "nonzeros")} == {k: s[k] for k in ("variables", "rows",
                                                                                          "nonzeros")}
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.slow
def test_sigkill_leaves_the_last_checkpointed_incumbent(repo_root, tmp_path):
    """kill -9 (or an out-of-memory kill) cannot be handled: the incumbent written while the solver ran stays,
    labelled as a checkpoint, and its claims check."""
    data = repo_root / "samples/digits_k10.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "bnnmilp", "train", str(repo_root / "configs/digits_milp.yaml"),
                             str(data), "-o", str(tmp_path / "run"), "--time-limit", "120"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    weights = tmp_path / "run/weights.yaml"
    for _ in range(600):  # wait (up to a minute) for the first checkpoint, then kill
        if weights.exists():
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    doc = yaml.safe_load(weights.read_text())
    assert doc["training_loss"]["best_so_far"] is True and "checkpoint" in doc["training_loss"]
    assert "checkpoint" in json.loads((tmp_path / "run/certificate.json").read_text())
    assert run("verify", tmp_path / "run", data).exit_code == 0
