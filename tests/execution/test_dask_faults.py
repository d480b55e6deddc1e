"""A Dask worker killed mid-run: the run ends cleanly (exit 3, one line) within seconds, keeps its finished
records, and a rerun on a live worker resumes from them. The scheduler and workers are started by the test
with the standard ``dask scheduler`` / ``dask worker`` commands on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
DASK = shutil.which("dask") or str(Path(sys.executable).parent / "dask")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(address: str) -> subprocess.Popen:
    return subprocess.Popen([DASK, "worker", address, "--no-nanny", "--nthreads", "1", "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def scheduler():
    if not Path(DASK).exists():
        pytest.skip("the dask command is not installed")
    port = _port()
    proc = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"tcp://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield address
    proc.kill()
    proc.wait()


def test_a_killed_worker_ends_the_run_cleanly_and_a_rerun_resumes(repo_root, tmp_path, scheduler):
    """A sweep of 8 training jobs of about 3 s each on one worker, killed once the first jobs are done (it used
    to wait for ever: "Couldn't gather 1 keys, rescheduling", then silence)."""
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({
        "spec": str(repo_root / "configs/digits_milp.yaml"), "data": str(repo_root / "samples/digits_k2.yaml"),
        "grid": {"training.seed": list(range(8)), "solver.time_limit": [3]}}))
    args = [sys.executable, "-m", "bnnmilp", "--progress", "plain", "sweep", str(tmp_path / "sweep.yaml"),
            "--scheduler", scheduler, "-o", str(tmp_path / "out")]
    worker = _worker(scheduler)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "running: " in line and not line.split("running: ")[1].startswith("0/"):
            break
    worker.kill()
    worker.wait()
    killed = time.monotonic()
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - killed
    assert proc.returncode == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"bnnmilp: error: the Dask scheduler {scheduler} has had no workers for 10 s"), err
    assert took < 60  # well within a job's own limit of the run's; it used to wait for ever
    kept = {p.name for p in (tmp_path / "out/jobs").glob("*.json")}
    assert 1 <= len(kept) < 8
    worker = _worker(scheduler)
    try:
        again = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=900, check=False)
    finally:
        worker.kill()
        worker.wait()
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["jobs"] == 8 and summary["cached"] == len(kept) and summary["failed"] == 0
    assert kept <= {p.name for p in (tmp_path / "out/jobs").glob("*.json")}
