"""The execution layer and sweeps: pool and Dask agree, lost workers are retried, reruns resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.execution.jobs import Job, execute


def sweep_file(tmp_path: Path, repo_root: Path) -> Path:
    doc = {"spec": str(repo_root / "configs/xor.yaml"), "data": str(repo_root / "samples/xor.yaml"),
           "test": str(repo_root / "samples/xor.yaml"),
           "grid": {"network.layers": [[2, 2, 1], [2, 3, 1]], "training.thresholds": ["learned", "per_neuron"],
                    "training.polish": ["min"]}}
    doc["grid"]["network.thresholds"] = doc["grid"].pop("training.thresholds")
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def results(out: Path) -> list[dict]:
    rows = json.loads((out / "summary.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def run_sweep(p: Path, out: Path, *extra: str):
    r = CliRunner().invoke(main, ["sweep", str(p), "-o", str(out), "--json", *extra])
    assert r.exit_code == 0, r.output
    (out / "summary.json").write_text(r.stdout)
    return json.loads(r.stdout)


@pytest.mark.slow
def test_pool_and_dask_give_identical_results(tmp_path, repo_root):
    pytest.importorskip("distributed")
    p = sweep_file(tmp_path, repo_root)
    a = run_sweep(p, tmp_path / "pool", "--workers", "2")
    b = run_sweep(p, tmp_path / "dask", "--workers", "2", "--scheduler", "local")
    assert a["jobs"] == b["jobs"] == 4 and a["failed"] == b["failed"] == 0
    assert results(tmp_path / "pool") == results(tmp_path / "dask")
    assert (tmp_path / "pool/results.csv").read_text().splitlines()[0].startswith("network.layers,")
    assert (tmp_path / "pool/results.md").exists()
    if a["plot"]:  # the accuracy-against-time figure has one point per job, in colour
        from PIL import Image

        img = np.asarray(Image.open(a["plot"]).convert("RGB"), int)
        assert img.shape[0] > 100 and ((img.max(axis=2) - img.min(axis=2)) > 60).sum() > 20


def _children() -> list[int]:
    me = os.getpid()
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                kids.append(int(d))
    return kids


def test_a_killed_worker_is_retried_and_the_run_completes(tmp_path):
    jobs = [Job.make("sleep", {"seconds": 0.6, "i": i}) for i in range(6)]
    killed = []
    before = set(_children())  # processes left by earlier tests are not this pool's workers

    def on_done(rec):
        if not killed:
            kids = sorted(set(_children()) - before)
            if kids:
                os.kill(kids[0], signal.SIGKILL)
                killed.append(kids[0])

    recs = execute(jobs, tmp_path, workers=2, retries=2, on_done=on_done)
    assert killed, "no worker process was found to kill"
    assert len(recs) == 6 and all(r["ok"] for r in recs)
    assert [r["result"]["echo"]["i"] for r in recs] == list(range(6))
    assert any(r["attempts"] > 1 for r in recs)


def test_an_interrupted_run_resumes_with_only_the_missing_jobs(tmp_path):
    jobs = [Job.make("sleep", {"seconds": 0, "i": i}) for i in range(5)]
    seen = []

    def stop_after_two(rec):
        seen.append(rec)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(jobs, tmp_path, on_done=stop_after_two)
    assert len(list((tmp_path / "jobs").iterdir())) == 2
    recs = execute(jobs, tmp_path)
    assert sum(1 for r in recs if r.get("cached")) == 2 and len(recs) == 5 and all(r["ok"] for r in recs)


def test_a_failing_job_is_recorded_and_the_others_go_on(tmp_path):
    jobs = [Job.make("sleep", {"seconds": 0}), Job.make("nonsense", {}), Job.make("sleep", {"seconds": 0, "x": 1})]
    recs = execute(jobs, tmp_path)
    assert [r["ok"] for r in recs] == [True, False, True]
    assert "unknown job kind" in recs[1]["error"]
    assert json.loads((tmp_path / "jobs" / f"{jobs[1].key}.json").read_text())["ok"] is False


def test_bad_sweep_files_are_bad_input(tmp_path, repo_root):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"spec": str(repo_root / "configs/xor.yaml"), "data": "x{k}.yaml",
                                 "grid": {"network.layers": [[2, 2, 1]]}}))
    r = CliRunner().invoke(main, ["sweep", str(p), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "data" in r.stderr
    p.write_text(yaml.safe_dump({"spec": str(repo_root / "configs/xor.yaml"),
                                 "data": str(repo_root / "samples/xor.yaml"), "grid": {"network.weights": ["real"]}}))
    r = CliRunner().invoke(main, ["sweep", str(p), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "network.weights" in r.stderr


def test_jobs_carry_their_body_by_name_and_a_fresh_worker_imports_it():
    """The execution layer imports none of the work it runs: the modules that make jobs register their
    bodies, each job carries the body's name, and a worker process imports it (checked in a new process
    that has imported nothing of bnnmilp's work)."""
    import subprocess
    import sys

    import bnnmilp.execution.sweep
    import bnnmilp.training.ensemble
    import bnnmilp.verification.proofs.decomposition
    import bnnmilp.verification.robustness.robust  # noqa: F401
    from bnnmilp.execution.jobs import _KINDS

    assert _KINDS == {"sleep": "bnnmilp.execution.jobs:sleep_job", "train": "bnnmilp.execution.sweep:train_job",
                      "member": "bnnmilp.training.ensemble:train_member",
                      "bound-group": "bnnmilp.verification.proofs.decomposition:run_group_job",
                      "robust": "bnnmilp.verification.robustness.robust:run_query"}
    code = ("import sys; from bnnmilp.execution.jobs import Job, run_job; "
            "r = run_job(Job('any', {'seconds': 0}, 'k', 'bnnmilp.execution.jobs:sleep_job')); "
            "print(r, sorted(m for m in sys.modules if m.startswith(('bnnmilp.training', 'bnnmilp.verification'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "{'echo': {'seconds': 0}} []"
