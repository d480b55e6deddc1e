"""Robustness verification benchmark on a BNN trained on the digits.

    python benchmarks/robustness.py [--k 5] [--samples 100] [--eps 1 2 4]

Trains configs/digits_milp.yaml on samples/digits_k{k}.yaml (STE, seed 0: fast and reproducible), then verifies
the first --samples images of samples/digits_test.yaml for each E (L-infinity, integer pixels in 0..16),
with and without interval pruning, each configuration in a fresh process of its own (1 worker). Writes
benchmarks/results/robustness.md and robustness.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp.data import load_data  # noqa: E402
from bnnmilp.network import exact_match_predictions  # noqa: E402
from bnnmilp.spec import load_spec  # noqa: E402
from bnnmilp.training.pipeline import train  # noqa: E402
from bnnmilp.verification.robustness.robust import RobustOptions, summary, verify_robust  # noqa: E402


def timed(net, X: np.ndarray, y: np.ndarray, opts: RobustOptions) -> tuple[list, float]:
    """The queries of one configuration and their wall time, in the worker process."""
    t0 = time.perf_counter()
    res = verify_robust(net, X, y, opts)
    return res, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--eps", type=float, nargs="+", default=[1, 2, 4])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/robustness"))
    args = ap.parse_args()
    spec = load_spec(ROOT / "configs/digits_milp.yaml")
    spec = replace(spec, training=replace(spec.training, method="ste"))
    net = train(spec, load_data(ROOT / f"samples/digits_k{args.k}.yaml")).best.network
    test = load_data(ROOT / "samples/digits_test.yaml")
    X, y = test.features[: args.samples], test.labels[: args.samples]
    pred = exact_match_predictions(net.predict_bits(X))
    rows = []
    for eps in args.eps:
        for prune, reuse in ((False, False), (True, False), (True, True)):
            opts = RobustOptions(eps=eps, domain="integer", bounds=(0, 16), prune=prune, reuse=reuse)
            # a fresh process per configuration: no model or solver thread carries over to the next one
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                res, total = pool.submit(timed, net, X, y, opts).result()
            s = summary(res, y, pred)
            rows.append({"eps": eps, "prune": prune, "reuse": reuse, "total_s": round(total, 3), **s})
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "k": args.k, "rows": rows}, indent=1))
    lines = [f"Network [64, 16, 10] trained by STE on digits k={args.k} (test exact-match accuracy "
             f"{np.mean(pred == y):.1%} on these {len(y)} images); L-infinity, integer pixels 0..16; 1 worker; "
             f"{machine}. Speed-up: time of the plain run (no pruning, a model per sample) / this run's.", "",
             "| E | pruning | one model reused | robust | not robust | unknown | by interval arithmetic | "
             "verified robust accuracy | ms per query | total (s) | speed-up |", "|---" * 11 + "|"]
    for r in rows:
        base = next(b for b in rows if b["eps"] == r["eps"] and not b["prune"])
        lines.append(f"| {r['eps']:g} | {'on' if r['prune'] else 'off'} | {'yes' if r['reuse'] else 'no'} | "
                     f"{r['robust']} | {r['not_robust']} | "
                     f"{r['unknown']} | {r['by_method'].get('interval', 0)} | {r['verified_robust_accuracy']:.1%} | "
                     f"{1000 * r['mean_time_per_query_s']:.1f} | {r['total_s']:.2f} | "
                     f"{base['total_s'] / r['total_s']:.2f}x |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
