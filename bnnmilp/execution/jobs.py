"""One execution layer for independent jobs: in process, on a local process pool, or on Dask.

A job is a kind ("train", "member", "robust") and a JSON payload (spec, file paths, options); its key is
the sha256 of both plus the fingerprints of the files it names (data, test, weights, box), so a rerun
recognises finished jobs. Results are written per job, atomically, to OUT/jobs/KEY.json as they arrive:
a rerun skips them and resumes. A job lost with its worker (a crashed process) is retried up to
``retries`` times; a job that raises records its error and the others go on. Dask (``bnnmilp[dask]``) is
imported only when a scheduler is given: ``local`` starts a LocalCluster on this machine,
``tcp://HOST:PORT`` joins a running cluster.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnmilp.io.yamlio import write_json_atomic

_KINDS: dict[str, str] = {}  # job kind -> "module:function" of its body, filled by the modules that make the jobs


def job_kind(kind: str) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Callable]:
    """Register the decorated function as the body of jobs of ``kind``. The execution layer imports nothing
    it runs: each job carries its body's name, and a worker imports that module by name."""
    def register(body: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable:
        _KINDS[kind] = f"{body.__module__}:{body.__qualname__}"
        return body

    return register


UNKEYED = ("budget",)  # payload fields that leave a job the same job (a rerun with a new deadline resumes it)


@dataclass(frozen=True)
class Job:
    kind: str
    payload: dict[str, Any] = field(hash=False)
    key: str = ""
    body: str = field(default="", compare=False)  # "module:function" (not part of the key: records stay valid)

    @staticmethod
    def make(kind: str, payload: dict[str, Any]) -> Job:
        files = {name: fingerprint(payload[name]) for name in ("data", "test", "weights", "box") if payload.get(name)}
        keyed = {k: v for k, v in payload.items() if k not in UNKEYED}
        blob = json.dumps({"kind": kind, "payload": keyed, "files": files}, sort_keys=True)
        return Job(kind, payload, hashlib.sha256(blob.encode()).hexdigest()[:20], _KINDS.get(kind, ""))


_PRINTS: dict[tuple, str] = {}


def fingerprint(path: str | Path) -> str:
    """sha256 of a file, or of the weights files under a folder (a run folder, an ensemble and its members),
    remembered per size and modification time (a thousand jobs on one data file hash it once)."""
    p = Path(path)
    files = sorted(f for f in p.rglob("weights.*") if f.is_file()) if p.is_dir() else [p]
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if stamp not in _PRINTS:
        if not p.is_dir():
            _PRINTS[stamp] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            h = hashlib.sha256()
            for f in files:
                h.update(str(f.relative_to(p)).encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
            _PRINTS[stamp] = h.hexdigest()
    return _PRINTS[stamp]


def run_job(job: Job) -> dict[str, Any]:
    """Execute one job (on whatever worker): import its body by name and call it on the payload; returns a
    JSON-serialisable result."""
    import importlib

    from bnnmilp.milp.backends.highs import new_highs

    new_highs()  # keep HiGHS' banner off stdout in worker processes too
    module, _, name = (job.body or _KINDS.get(job.kind, "")).partition(":")
    if not module:
        raise ValueError(f"unknown job kind {job.kind!r}")
    return getattr(importlib.import_module(module), name)(job.payload)


@job_kind("sleep")
def sleep_job(payload: dict[str, Any]) -> dict[str, Any]:
    """For tests of the execution layer: sleeps, then echoes its payload."""
    time.sleep(float(payload.get("seconds", 0)))
    return {"echo": payload}


def _record(out_dir: Path, job: Job, result: dict[str, Any] | None, error: str | None, attempts: int) -> dict:
    doc = {"key": job.key, "kind": job.kind, "payload": job.payload, "ok": error is None, "error": error,
           "attempts": attempts, "result": result}
    write_json_atomic(out_dir / "jobs" / f"{job.key}.json", doc)
    return doc


def execute(jobs: Iterable[Job], out_dir: str | Path, workers: int = 1, scheduler: str | None = None,
            retries: int = 2, on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the jobs not finished yet; return every job's record in input order (cached ones included)."""
    out = Path(out_dir)
    jobs = list(jobs)
    records: dict[str, dict] = {}
    pending = []
    if (out / "jobs").is_dir():  # temporary files of records whose writer was killed (kill -9): never a record
        for stale in (out / "jobs").glob(".*.json.*"):
            stale.unlink(missing_ok=True)
    for job in jobs:
        f = out / "jobs" / f"{job.key}.json"
        if f.exists():
            doc = json.loads(f.read_text())
            if doc.get("ok"):
                records[job.key] = {**doc, "cached": True}
                if on_done:
                    on_done(records[job.key])
                continue
        pending.append(job)

    def done(job: Job, result: dict | None, error: str | None, attempts: int) -> None:
        records[job.key] = _record(out, job, result, error, attempts)
        if on_done:
            on_done(records[job.key])

    if scheduler:
        _run_dask(pending, scheduler, workers, retries, done)
    elif workers <= 1:
        for job in pending:
            try:
                done(job, run_job(job), None, 1)
            except Exception as exc:
                done(job, None, f"{type(exc).__name__}: {exc}", 1)
    else:
        _run_pool(pending, workers, retries, done)
    return [records[j.key] for j in jobs if j.key in records]


def _run_pool(pending: list[Job], workers: int, retries: int, done: Callable) -> None:
    attempts = {j.key: 0 for j in pending}
    queue = list(pending)
    while queue:
        pool = ProcessPoolExecutor(max_workers=workers)
        futures: dict[Future, Job] = {}
        for job in queue:
            attempts[job.key] += 1
            futures[pool.submit(run_job, job)] = job
        queue = []
        broken = False
        try:
            remaining = set(futures)
            while remaining:
                finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = futures[fut]
                    try:
                        done(job, fut.result(), None, attempts[job.key])
                    except BrokenProcessPool:
                        broken = True
                        if attempts[job.key] <= retries:
                            queue.append(job)
                        else:
                            done(job, None, "worker lost (process died) after retries", attempts[job.key])
                    except Exception as exc:
                        done(job, None, f"{type(exc).__name__}: {exc}", attempts[job.key])
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


def check_scheduler(scheduler: str | None) -> str | None:
    """'local', a Dask address (tcp://HOST:PORT, tls://, ucx://, inproc://, ws://) or None."""
    import re

    from bnnmilp.errors import InputError

    if scheduler is not None and scheduler != "local" and \
            not re.fullmatch(r"(tcp|tls|ucx|inproc|ws|wss)://[^\s/:]+(:\d+)?/?", scheduler):
        raise InputError(None, "--scheduler", f"expected 'local' or a Dask address such as tcp://HOST:8786, "
                                              f"got {scheduler!r}")
    return scheduler


def _run_dask(pending: list[Job], scheduler: str, workers: int, retries: int, done: Callable) -> None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        from bnnmilp.errors import SolverUnavailableError

        raise SolverUnavailableError("--scheduler needs Dask: pip install 'bnnmilp[dask]'") from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=max(workers, 1), threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster)
    else:
        from bnnmilp.errors import SolverUnavailableError

        check_scheduler(scheduler)
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SolverUnavailableError(f"cannot reach the Dask scheduler {scheduler} "
                                         f"({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})") from None
    try:
        futures = {client.submit(run_job, job, key=f"bnnmilp-{job.key}", retries=retries, pure=False): job
                   for job in pending}
        for fut in _as_completed_while_workers(client, list(futures), scheduler):
            job = futures[fut]
            try:
                done(job, fut.result(), None, 1)
            except Exception as exc:
                done(job, None, f"{type(exc).__name__}: {exc}", retries + 1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


NO_WORKERS_GRACE = 10.0  # seconds a Dask cluster may be without workers (one restarting, one joining) mid-run


def _as_completed_while_workers(client, futures: list, scheduler: str):
    """Dask futures as they finish, watching the cluster: a job lost with its worker is rescheduled by Dask on
    another one; with no worker left for NO_WORKERS_GRACE seconds the run fails (SolverError, exit 3) instead
    of waiting for ever, its finished jobs' records kept for a rerun to resume from."""
    from distributed import wait

    from bnnmilp.errors import SolverError

    remaining, alone_since = set(futures), None
    while remaining:
        try:
            finished = wait(list(remaining), timeout=1.0, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            finished = set()
        yield from (f for f in futures if f in finished)
        remaining -= finished
        if not remaining or finished:
            alone_since = None
            continue
        if client.scheduler_info().get("workers"):
            alone_since = None
        elif alone_since is None:
            alone_since = time.monotonic()
        elif time.monotonic() - alone_since > NO_WORKERS_GRACE:
            raise SolverError(f"the Dask scheduler {scheduler} has had no workers for {NO_WORKERS_GRACE:g} s: "
                              f"{len(remaining)} of {len(futures)} jobs not finished (the finished ones are kept: "
                              "rerun with the same output folder to resume)")
