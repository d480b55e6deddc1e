"""One-vs-one ensembles (BeMi, Bernardelli et al.): one small BNN per pair of classes, then a vote.

Member (a, b), a < b, has one output bit, trained on the samples of classes a and b with target 1 for a.
On an input, member (a, b) votes a if its bit is 1, else b. The predicted class is the one with most
votes; ties go to the lowest class index (deterministic). Members are independent jobs
(``jobs.execute``): a process pool or a Dask cluster trains them in parallel.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from bnnmilp.data import Dataset
from bnnmilp.execution.jobs import job_kind
from bnnmilp.spec import Spec, parse_spec

FORMAT = "bnnmilp-ensemble"
RESERVE_S, RESERVE_SHARE = 1.0, 0.03  # of the command's budget, kept for writing and checking the ensemble
ENSEMBLE_INPUTS = 256  # the scale at which the ensemble was measured best (MNIST's 784 inputs)


def default_ensemble(spec: Spec) -> str | None:
    """"ovo" where it was measured best, else None (one network): three or more classes as one-hot bits and
    at least ``ENSEMBLE_INPUTS`` inputs. On few-shot MNIST (benchmarks/mnist.py, 5 seeds, --time-limit 60 for
    the whole command) the ovo ensemble reached 50.2 / 71.5 / 75.8 / 86.3% at 2 / 6 / 10 / 40 images per
    class with ternary weights (a single [784, 16, 10] network: 39.0 / 61.3 / 65.6 / 76.5%) and
    51.4 / 70.5 / 75.4 / 86.2% with continuous weights (single: 47.5 / 67.6 / 69.9 / 80.8%). A spec that asks
    for an argmax output keeps its single network; below MNIST's scale nothing was measured, so one network
    stays the default there."""
    net = spec.network
    if net.output == "bits" and net.n_outputs >= 3 and net.n_inputs >= ENSEMBLE_INPUTS:
        return "ovo"
    return None


def member_budget(budget: dict[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds for a member that starts now: the time left to the command's wall-clock deadline, shared by the
    members still to start (this one included), ``workers`` of them at a time. None without a budget."""
    if not budget:
        return None
    left = budget["deadline"] - (time.time() if now is None else now)
    to_go = max(int(budget["count"]) - int(budget["index"]), 1)
    return max(left * min(int(budget["workers"]), to_go) / to_go, 0.05)


def ensemble_deadline(budget_s: float, started_monotonic: float) -> float:
    """The members' wall-clock deadline (``time.time()``: processes and Dask workers share it, not a monotonic
    clock) for a command that started at ``started_monotonic`` with ``budget_s`` seconds, less the reserve."""
    end = started_monotonic + budget_s * (1 - RESERVE_SHARE) - RESERVE_S
    return time.time() + (end - time.monotonic())


def pairs(n_classes: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n_classes), 2))


def member_data(data: Dataset, a: int, b: int) -> Dataset:
    idx = np.flatnonzero((data.labels == a) | (data.labels == b))
    return Dataset(data.features[idx], (data.labels[idx] == a).astype(np.int64), data.path)


def member_spec_doc(spec: Spec) -> dict[str, Any]:
    doc = spec.to_dict()
    doc["network"]["layers"] = [*doc["network"]["layers"][:-1], 1]
    doc["network"]["output"] = "bits"  # a member is one bit (class a vs b); the vote is the ensemble's output rule
    doc["solver"].pop("budget", None)  # the ensemble's budget is shared out as members start (``member_budget``)
    return doc


@job_kind("member")
def train_member(payload: dict[str, Any]) -> dict[str, Any]:
    """Job body: train member (a, b); returns its weights and certificate documents."""
    from bnnmilp.data import load_data
    from bnnmilp.io.runs import run_documents
    from bnnmilp.training.pipeline import train

    spec = parse_spec(payload["spec"])
    limit = member_budget(payload.get("budget"))
    if limit is not None:
        spec = spec.with_solver(budget=limit, deadline=time.monotonic() + limit)
    a, b = payload["classes"]
    data = member_data(load_data(payload["data"]), a, b)
    res = train(spec, data)
    cert, weights = run_documents(res)
    return {"status": res.status, "certificate": cert, "classes": [a, b], "weights": weights}


def member_jobs(spec: Spec, data_path: str | Path, deadline: float | None = None, workers: int = 1) -> list:
    """One job per pair of classes (kind ``member``) for the execution layer; with a wall-clock ``deadline``
    each member takes its share of the time left when it starts (``member_budget``)."""
    from bnnmilp.execution.jobs import Job

    doc = member_spec_doc(spec)
    todo = pairs(spec.network.n_outputs)
    jobs = []
    for i, (a, b) in enumerate(todo):
        payload: dict[str, Any] = {"spec": doc, "data": str(Path(data_path).resolve()), "classes": [a, b]}
        if deadline is not None:
            payload["budget"] = {"deadline": deadline, "index": i, "count": len(todo), "workers": workers}
        jobs.append(Job.make("member", payload))
    return jobs


def train_ensemble(spec: Spec, data_path: str | Path, run_dir: str | Path, workers: int = 1,
                   scheduler: str | None = None, on_done: Any = None, deadline: float | None = None
                   ) -> tuple[list[dict], dict[str, Path], dict[str, Any]]:
    """Train every member as a job (in process, a process pool or Dask; resumable from ``run_dir/jobs``) and
    write the ensemble file and its members' folders. Returns the job records, the written paths and the
    ensemble's document.
    ``deadline`` (wall clock, ``ensemble_deadline``) bounds the members together."""
    from bnnmilp.execution.jobs import execute
    from bnnmilp.io.runs import write_ensemble

    records = execute(member_jobs(spec, data_path, deadline, workers), Path(run_dir) / "jobs", workers=workers,
                      scheduler=scheduler, on_done=on_done)
    return records, *write_ensemble(run_dir, spec, str(data_path), records)
