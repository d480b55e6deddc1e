"""Scale-out benchmark: throughput against workers, and the one-vs-one ensemble against one network.

    python benchmarks/scaleout.py [--ks 2 5] [--member-time-limit 5]

(1) The 45 members of a one-vs-one ensemble on digits k=2, as independent jobs: in process, on a
process pool with 1 and 2 workers, and on a Dask LocalCluster with 2 and 4 workers (this machine has 2
cores: 4 Dask workers show the scheduling overhead). (2) For each k: the ensemble (2 workers) against
a single [64, 16, 10] network trained by the MILP with the same total wall time, and against STE; test
accuracy on the 500 held-out images. Writes benchmarks/results/scaleout.md and scaleout.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp.data import load_data  # noqa: E402
from bnnmilp.execution.jobs import execute  # noqa: E402
from bnnmilp.io.runs import load_weights  # noqa: E402
from bnnmilp.network import exact_match_predictions  # noqa: E402
from bnnmilp.spec import load_spec  # noqa: E402
from bnnmilp.training.ensemble import member_jobs, member_spec_doc, train_ensemble  # noqa: E402
from bnnmilp.training.pipeline import train  # noqa: E402


def timed(jobs, **kw) -> tuple[float, list[dict]]:
    out = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    recs = execute(jobs, out, **kw)
    dt = time.perf_counter() - t0
    shutil.rmtree(out)
    return dt, recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--member-time-limit", type=float, default=5.0)
    args = ap.parse_args()
    spec = load_spec(ROOT / "configs/digits_milp.yaml").with_solver(time_limit=args.member_time_limit, threads=1)
    test = load_data(ROOT / "samples/digits_test.yaml")
    lines = [f"{platform.machine()}, 2 cores, Python {platform.python_version()}; members: "
             f"{list(member_spec_doc(spec)['network']['layers'])}, time limit {args.member_time_limit:g} s each.",
             "",
             "Throughput (45 member jobs, digits k=2):", "",
             "| executor | workers | wall time (s) | jobs/s | speed-up |", "|---|---|---|---|---|"]
    jobs = member_jobs(spec, ROOT / "samples/digits_k2.yaml")
    rows = []
    base = None
    for name, kw in [("in process", {"workers": 1}), ("process pool", {"workers": 1}), ("process pool", {"workers": 2}),
                     ("Dask LocalCluster", {"workers": 2, "scheduler": "local"}),
                     ("Dask LocalCluster", {"workers": 4, "scheduler": "local"})]:
        if name == "process pool" and kw["workers"] == 1:
            continue  # the pool with one worker is the in-process loop plus overhead; skipped
        dt, recs = timed(jobs, **kw)
        base = base or dt
        rows.append({"executor": name, **kw, "wall_s": round(dt, 2), "ok": sum(r["ok"] for r in recs)})
        lines.append(f"| {name} | {kw['workers']} | {dt:.2f} | {len(jobs) / dt:.1f} | {base / dt:.2f}x |")
        print(json.dumps(rows[-1]), flush=True)
    lines += ["", "One-vs-one ensemble against one network at equal wall time (test: 500 held-out images):", "",
              "| k | model | wall time (s) | train accuracy | test accuracy (exact match / vote) |",
              "|---|---|---|---|---|"]
    for k in args.ks:
        data_path = ROOT / f"samples/digits_k{k}.yaml"
        data = load_data(data_path)
        out = Path(tempfile.mkdtemp())
        t0 = time.perf_counter()
        train_ensemble(spec, data_path, out, workers=2)
        ens = load_weights(out / "weights.yaml")
        dt = time.perf_counter() - t0
        acc_tr = float(np.mean(ens.predict(data.features) == data.labels))
        acc = float(np.mean(ens.predict(test.features) == test.labels))
        shutil.rmtree(out)
        single = train(spec.with_solver(time_limit=dt), data)
        ste = train(replace(spec, training=replace(spec.training, method="ste")), data)
        for name, wall, net in (("ovo ensemble (45 members, 2 workers)", dt, None),
                                (f"single MILP (time limit {dt:.0f} s)", single.solution.runtime_s, single),
                                ("single STE", ste.solution.runtime_s, ste)):
            if net is None:
                tr, te = acc_tr, acc
            else:
                tr, te = (float(np.mean(exact_match_predictions(net.best.network.predict_bits(d.features)) == d.labels))
                          for d in (data, test))
            rows.append({"k": k, "model": name, "wall_s": round(wall, 2), "train_acc": tr, "test_acc": te})
            lines.append(f"| {k} | {name} | {wall:.1f} | {100 * tr:.1f}% | {100 * te:.1f}% |")
            print(json.dumps(rows[-1]), flush=True)
    res = ROOT / "benchmarks/results/scaleout"
    res.parent.mkdir(parents=True, exist_ok=True)
    res.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    res.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
