"""Tractability benchmark: the paper's formulation against each strengthening, on the digits.

    python benchmarks/tractability.py [--time-limit 30] [--ks 1 2 5 10] [--shapes 64,16,10 64,8,10]

All configurations run in this one process (HiGHS, 1 thread); each reports time to a proven optimum or
the gap at the time limit, nodes, the dual bound at the end of the root node and at the end, the exact
training loss of the written network and test accuracy (exact match and argmax). Ratios compare with the
paper's formulation on the same instance; the heuristics (STE alone, the decomposition) have no bound.
Writes benchmarks/results/tractability.md and tractability.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp.data import load_data  # noqa: E402
from bnnmilp.network import exact_match_predictions  # noqa: E402
from bnnmilp.spec import load_spec  # noqa: E402
from bnnmilp.training.pipeline import train  # noqa: E402

CONFIGS = {
    "paper (big-M paper)": {"big_m": "paper", "fix_unused": False, "symmetry": "none", "polish": "none"},
    "tight big-M": {"big_m": "tight", "fix_unused": False, "symmetry": "none"},
    "+ fix unused inputs": {"big_m": "tight", "fix_unused": True, "symmetry": "none"},
    "+ symmetry order": {"big_m": "tight", "fix_unused": True, "symmetry": "order"},
    "+ STE warm start": {"big_m": "tight", "fix_unused": True, "symmetry": "order", "warm_start": "ste"},
    # heuristics (no bound on the training problem): the baseline, and Icarte et al.'s decomposition
    "STE heuristic alone": {"method": "ste"},
    "decomposition (STE hidden pattern)": {"method": "decompose", "polish": "neuron", "polish_radius": 0.2},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10])
    ap.add_argument("--shapes", nargs="+", default=["64,16,10", "64,8,10"])
    ap.add_argument("--table-only", action="store_true", help="rewrite the table from the JSON file")
    args = ap.parse_args()
    out = ROOT / "benchmarks/results/tractability"
    if args.table_only:
        write(json.loads(out.with_suffix(".json").read_text()), args, out)
        return
    base = load_spec(ROOT / "configs/digits_milp.yaml").with_solver(time_limit=args.time_limit, threads=1)
    test = load_data(ROOT / "samples/digits_test.yaml")
    rows = []
    for shape in args.shapes:
        layers = tuple(int(v) for v in shape.split(","))
        for k in args.ks:
            data = load_data(ROOT / f"samples/digits_k{k}.yaml")
            for name, over in CONFIGS.items():
                spec = replace(base, network=replace(base.network, layers=layers),
                               training=replace(base.training, **over))
                t0 = time.perf_counter()
                res = train(spec, data, progress=lambda _: None)  # progress callbacks also record the root bound
                dt = time.perf_counter() - t0
                st = res.stages[0].solution if res.stages else res.solution
                net = res.best.network
                bits = net.forward(test.features)
                heuristic = res.loss_bound is None
                rows.append({"shape": shape, "k": k, "config": name,
                             "status": "heuristic" if heuristic else res.status, "time_s": round(dt, 2),
                             "solve_s": round(dt if heuristic else st.runtime_s, 2), "nodes": st.nodes,
                             "root_bound": None if heuristic else st.info.get("root_bound"),
                             "bound": None if heuristic else st.bound, "gap": None if heuristic else st.gap,
                             "train_loss": res.best.loss,
                             "test_exact": float(np.mean(exact_match_predictions(bits[-1]) == test.labels)),
                             "test_argmax": float(np.mean(net.argmax_predictions(test.features, bits) == test.labels))})
                print(json.dumps(rows[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    write(rows, args, out)


def write(rows: list[dict], args: argparse.Namespace, out: Path) -> None:
    lines = [f"{platform.machine()}, Python {platform.python_version()}, HiGHS 1 thread, time limit "
             f"{args.time_limit:g} s. Ratio: solve time (proven optima) or gap (at the limit) of the paper's "
             "formulation / this configuration's (higher is better); times are wall-clock totals, "
             "heuristic starts included.", "",
             "| shape | k | configuration | status | time (s) | nodes | root bound | bound | gap | "
             "train loss (exact) | test exact-match | test argmax | ratio |", "|" + "---|" * 13]
    for r in rows:
        p = next(b for b in rows if b["shape"] == r["shape"] and b["k"] == r["k"] and b["config"].startswith("paper"))
        if r["status"] == "heuristic":
            ratio = "no bound"
        elif r["status"] == p["status"] == "optimal":
            ratio = f"{p['time_s'] / max(r['time_s'], 0.01):.1f}x time"
        elif r["status"] == "optimal":
            ratio = "proven (the paper's: not)"
        elif r["gap"] is not None and p["gap"]:
            ratio = f"{p['gap'] / max(r['gap'], 1e-9):.1f}x gap"
        else:
            ratio = "-"
        gap = "-" if r["gap"] is None else f"{100 * r['gap']:.0f}%"
        num = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
        lines.append(f"| {r['shape']} | {r['k']} | {r['config']} | {r['status']} | {r['time_s']} | {r['nodes']} | "
                     f"{num(r.get('root_bound'))} | {num(r['bound'])} | {gap} | {r['train_loss']} | "
                     f"{100 * r['test_exact']:.1f}% | {100 * r.get('test_argmax', float('nan')):.1f}% | {ratio} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
