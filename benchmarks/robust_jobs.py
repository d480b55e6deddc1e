"""Whole test sets: 1,000 robustness queries of Sakai's networks as jobs, in process, on a pool and on Dask.

    python benchmarks/robust_jobs.py [--queries 1000] [--eps 1] [--time-limit 10] [--workers 2]

Sakai's three networks (imported from tests/data/sakai-bnn) and their 57 shipped images plus perturbed
copies (each copy: 20 random pixels moved by -3..3, clipped to 0..255) until --queries images, split as
evenly as the networks allow; the query is L-infinity --eps on integer pixels against the label (argmax,
ties adversarial). Each network's queries are run by the command line a user would type,

    bnnmilp verify NET.npz IMAGES.npz --robust --eps 1 --domain integer --bounds 0:255 --against label -o OUT

in process (--workers 1), on a process pool (--workers N) and on a Dask cluster started on this machine
with `dask scheduler` and N `dask worker --nthreads 1` processes (--scheduler tcp://127.0.0.1:PORT).
Wall time includes starting the command, loading the network in every worker, and writing one result file
per query. The answers must agree across the three runs. Writes benchmarks/results/robust_jobs.md and
robust_jobs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp.io.importers import import_model  # noqa: E402
from bnnmilp.io.runs import write_network  # noqa: E402
from tests.io.importers.test_chainer import images  # noqa: E402

SAKAI = ROOT / "tests/data/sakai-bnn"
SETS = ("mnist", "mnist_rot", "mnist_back_image")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verify(net: Path, data: Path, out: Path, eps: float, limit: float, extra: list[str]) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "bnnmilp", "verify", str(net), str(data), "--robust", "--eps", str(eps),
           "--domain", "integer", "--bounds", "0:255", "--against", "label", "--time-limit", str(limit), "--json",
           "-o", str(out), *extra]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, check=False, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"verify failed ({p.returncode}): {p.stderr[-2000:]}")
    return dt, json.loads(p.stdout)


class DaskCluster:
    """`dask scheduler` and N `dask worker` processes on this machine, stopped on exit."""

    def __init__(self, workers: int) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        self.procs = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                        "--no-dashboard"], **quiet)]
        self.procs += [subprocess.Popen(["dask", "worker", self.address, "--nthreads", "1", "--nworkers", "1",
                                         "--no-dashboard"], **quiet) for _ in range(workers)]
        from distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                with Client(self.address, timeout="5s") as c:
                    if len(c.scheduler_info()["workers"]) >= workers:
                        return
            except OSError:
                pass
            if time.time() > deadline:
                self.close()
                raise SystemExit("the Dask cluster did not start within 60 s")
            time.sleep(0.5)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            p.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--eps", type=float, default=1.0)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/robust_jobs"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bnnmilp_robust_jobs_"))
    rng = np.random.default_rng(0)
    inputs = []
    for i, ds in enumerate(SETS):
        imp = import_model(SAKAI / f"models/{ds}.npz", "chainer-npz")
        net = write_network(work / f"{ds}.npz", imp.network, imp.doc)
        X, names = images(ds)
        y = np.array([int(n.split("label")[1].split(".")[0]) for n in names])
        n = args.queries // len(SETS) + (i < args.queries % len(SETS))
        rows, labels = [X[k % len(X)] for k in range(n)], [y[k % len(X)] for k in range(n)]
        for k in range(len(X), n):  # perturbed copies
            pix = rng.choice(X.shape[1], size=20, replace=False)
            rows[k] = rows[k].copy()
            rows[k][pix] = np.clip(rows[k][pix] + rng.integers(-3, 4, size=20), 0, 255)
        data = work / f"{ds}_images.npz"
        np.savez(data, X=np.array(rows, dtype=np.float64), y=np.array(labels, dtype=np.int64))
        inputs.append((ds, net, data, n))
    modes = [("in process", []), (f"pool, {args.workers} workers", ["--workers", str(args.workers)]),
             (f"Dask, {args.workers} workers", None)]
    runs = []
    for name, extra in modes:
        cluster = DaskCluster(args.workers) if extra is None else None
        try:
            flags = extra if extra is not None else ["--scheduler", cluster.address]
            total, docs = 0.0, []
            for ds, net, data, _ in inputs:
                dt, doc = verify(net, data, work / f"out_{len(runs)}_{ds}", args.eps, args.time_limit, flags)
                total += dt
                docs.append(doc)
                print(json.dumps({"mode": name, "net": ds, "time_s": round(dt, 2), **{
                    k: doc["summary"][k] for k in ("samples", "robust", "not_robust", "unknown")}}), flush=True)
        finally:
            if cluster is not None:
                cluster.close()
        answers = [(r["index"], r["answer"], r["counterexample"]) for d in docs for r in d["results"]]
        runs.append({"mode": name, "time_s": round(total, 2), "answers": answers,
                     "counts": {a: sum(d["summary"][a] for d in docs) for a in ("robust", "not_robust", "unknown")},
                     "per_query_s": [r["time_s"] for d in docs for r in d["results"]],
                     "methods": {m: sum(d["summary"]["by_method"].get(m, 0) for d in docs)
                                 for m in sorted({m for d in docs for m in d["summary"]["by_method"]})}})
    shutil.rmtree(work)
    agree = all(r["answers"] == runs[0]["answers"] for r in runs)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    q = sum(n for *_, n in inputs)
    base = runs[0]["time_s"]
    lines = [f"{q} robustness queries (Sakai's three networks; their 57 shipped images and perturbed copies; "
             f"L-inf eps {args.eps:g} on integer pixels against the label; --time-limit {args.time_limit:g} s per "
             f"query), run by `bnnmilp verify --robust -o OUT` per network; wall time includes starting the "
             f"command, loading the network in every worker and one result file per query; {machine}.", "",
             f"Answers identical in all three runs: {'yes' if agree else 'NO'}. "
             f"Answers: {runs[0]['counts']}; methods: {runs[0]['methods']}.", "",
             "| run | wall time (s) | queries/s | speed-up vs in process | median query (s) |", "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['mode']} | {r['time_s']} | {q / r['time_s']:.1f} | {base / r['time_s']:.2f}x | "
                     f"{float(np.median(r['per_query_s'])):.3f} |")
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "queries": q, "agree": agree, "runs": [
        {k: v for k, v in r.items() if k != "answers"} for r in runs]}, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
