"""Generalisation benchmark on the digits samples: the plain MILP against margins, polishing and STE.

    python benchmarks/margins.py [--time-limit 30] [--seeds 0 1 ... 9] [--ks 1 2 5 10]

Every method trains configs/digits_milp.yaml ([64, 16, 10], continuous weights, learned thresholds, Hamming
loss) on samples/digits_k{k}.yaml and is evaluated on samples/digits_test.yaml (500 held-out images),
all in this one process on this machine. Accuracy by exact match of the 10 output bits and by argmax of
the output scores (ties wrong). Writes benchmarks/results/margins.md and margins.json.
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

LOCAL = {"warm_start": "ste", "trust_region": 0.05, "trust_region_scope": "all"}
METHODS = {
    # name: (training overrides, seeds: 0 = unseeded (one run), "few" = the first three seeds, "all")
    "paper MILP": ({"big_m": "paper", "polish": "none"}, 0),
    "MILP + polish": ({"polish": "min"}, 0),
    "lex loss, margin": ({"objective": ("loss", "margin")}, 0),
    "STE": ({"method": "ste"}, "all"),
    "STE-started lex": ({"objective": ("loss", "margin"), "warm_start": "ste"}, "few"),
    "STE-started lex, trust region": ({"objective": ("loss", "margin"), "warm_start": "ste", "margin_cap": 0.5,
                                       "trust_region": 0.05}, "few"),
    "STE-started local search": ({"objective": ("loss", "margin"), "margin_cap": 0.5, **LOCAL}, "all"),
    "STE-started local search, unit polish": ({"polish": "neuron", "polish_radius": 0.2, **LOCAL}, "all"),
    "STE hidden pattern, decomposed": ({"method": "decompose", "polish": "neuron", "polish_radius": 0.2}, "all"),
    # the same network with an argmax output layer (ten linear scores; loss: misclassified images)
    "STE, argmax output": ({"method": "ste", "output": "argmax"}, "all"),
    "STE-started local search, unit polish, argmax output": ({"polish": "neuron", "polish_radius": 0.2,
                                                              "output": "argmax", **LOCAL}, "all"),
}
BASELINE = {"bits": "STE", "argmax": "STE, argmax output"}  # deltas: against STE with the same output rule


def spec_for(base, over: dict, seed: int):
    """The base spec with a method's overrides (``output`` goes to the network, the rest to training)."""
    over = dict(over)
    output = over.pop("output", "bits")
    tr = {"loss": "error"} if output == "argmax" else {}
    return replace(base, network=replace(base.network, output=output),
                   training=replace(base.training, seed=seed, **tr, **over))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=30.0, help="seconds per MILP stage")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)),
                    help="seeds of the STE-based methods (the slow global ones use the first three)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/margins"))
    ap.add_argument("--table-only", action="store_true", help="rewrite the table from the JSON file")
    ap.add_argument("--methods", nargs="+", help="run only these methods and merge them into the JSON file")
    args = ap.parse_args()
    if args.table_only:
        doc = json.loads(Path(args.out).with_suffix(".json").read_text())
        write(doc["rows"], args)
        return
    base = load_spec(ROOT / "configs/digits_milp.yaml").with_solver(time_limit=args.time_limit, threads=1)
    test = load_data(ROOT / "samples/digits_test.yaml")
    rows = []
    for k in args.ks:
        data = load_data(ROOT / f"samples/digits_k{k}.yaml")
        for name, (over, seeded) in METHODS.items():
            if args.methods and name not in args.methods:
                continue
            for seed in {0: [0], "few": args.seeds[:3], "all": args.seeds}[seeded]:
                spec = spec_for(base, over, seed)
                t0 = time.perf_counter()
                res = train(spec, data)
                dt = time.perf_counter() - t0
                net = res.best.network
                bits = net.forward(test.features)
                bit_outputs = spec.network.output == "bits"  # exact match is about output bits
                row = {"k": k, "method": name, "seed": seed, "status": res.status, "train_loss": res.best.loss,
                       "bound": res.loss_bound, "time_s": round(dt, 2), "output": spec.network.output,
                       "test_exact": float(np.mean(exact_match_predictions(bits[-1]) == test.labels))
                       if bit_outputs else None,
                       "test_argmax": float(np.mean(net.argmax_predictions(test.features, bits) == test.labels))}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.methods:  # merge with the rows of the other methods from the last full run
        old = json.loads(Path(args.out).with_suffix(".json").read_text())["rows"]
        rows = [r for r in old if r["method"] not in args.methods] + rows
    write(rows, args)


def write(rows: list[dict], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
            "time_limit_per_stage_s": args.time_limit, "seeds": args.seeds}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [f"Time limit {args.time_limit:g} s per MILP stage, threads 1; {meta['machine']}. "
             f"Test: 500 held-out images; seeded methods: mean (min-max) over the seeds; ratio: test exact-match "
             "accuracy / STE's; delta: paired difference from STE (with the same output rule) with the same seed (the "
             "STE-started methods start from that very network), mean +- 2 standard errors, in points. Argmax-output "
             "networks have no output bits: no exact match; their loss counts misclassified images.", "",
             "| k | method | seeds | train loss | status | time (s) | test exact-match | test argmax | ratio to STE | "
             "delta exact | delta argmax |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in sorted({r["k"] for r in rows}):
        ste = np.mean([r["test_exact"] for r in rows if r["k"] == k and r["method"] == "STE"] or [np.nan])
        for name in METHODS:
            rs = [r for r in rows if r["k"] == k and r["method"] == name]
            if not rs:
                continue
            base_name = BASELINE[rs[0].get("output", "bits")]
            ste_rows = {r["seed"]: r for r in rows if r["k"] == k and r["method"] == base_name}

            def agg(key: str, rs=rs) -> str:
                v = [r[key] for r in rs]
                if v[0] is None:
                    return "-"
                pct = key.startswith("test")
                f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3g}")
                return f(np.mean(v)) + (f" ({f(min(v))}-{f(max(v))})" if len(v) > 1 else "")

            def delta(key: str, rs=rs, name=name, ste_rows=ste_rows, base_name=base_name) -> str:
                d = [100 * (r[key] - ste_rows[r["seed"]][key]) for r in rs
                     if r["seed"] in ste_rows and r[key] is not None]
                if name == base_name or len(d) < 2:
                    return "-"
                return f"{np.mean(d):+.1f} +- {2 * np.std(d, ddof=1) / np.sqrt(len(d)):.1f}"

            status = ",".join(sorted({r["status"] for r in rs}))
            ratio = f"{np.mean([r['test_exact'] for r in rs]) / ste:.2f}" if rs[0]["test_exact"] is not None else "-"
            lines.append(f"| {k} | {name} | {len(rs)} | {agg('train_loss')} | {status} | {agg('time_s')} | "
                         f"{agg('test_exact')} | {agg('test_argmax')} | {ratio} | {delta('test_exact')} | "
                         f"{delta('test_argmax')} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
