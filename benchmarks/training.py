"""`bnnmilp train` with its defaults against the reference STE of issue 18, on the digits from 10 to 1,000 images.

    python benchmarks/training.py [--ks 1 2 5 10 20 50 100] [--seeds 10] [--budget 60]

The spec names only the network ([64, 16, 10], continuous weights, one learned threshold per layer; everything
else is bnnmilp's default: Hamming loss, epsilon 1/16, method lns = STE, then the large-neighbourhood search
over the MILP, or the whole MILP from the STE start where it has at most 400 activation bits), with a budget of
--budget seconds for the whole command. Data: samples/digits_k{k}.yaml (k images per class), test: the 500
held-out images of samples/digits_test.yaml. For each seed s: the reference (benchmarks/reference_ste.py,
plain numpy written apart from bnnmilp, its grid seeded 2 s and 2 s + 1) and bnnmilp (training.seed s).
Every network is evaluated by bnnmilp's exact forward pass: training Hamming loss, test exact-match accuracy
(the output bits must be exactly the label's one-hot code) and argmax accuracy. Paired differences
(bnnmilp - reference, same k and seed): mean +- 2 standard errors. Writes benchmarks/results/training.md/json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ste import column, paired, percent, reference, scores  # noqa: E402

from bnnmilp.data import load_data  # noqa: E402
from bnnmilp.spec import parse_spec  # noqa: E402
from bnnmilp.training.pipeline import train  # noqa: E402

BARE = {"network": {"layers": [64, 16, 10], "weights": "continuous", "thresholds": "learned"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50, 100])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/training"))
    args = ap.parse_args()
    test = load_data(ROOT / "samples/digits_test.yaml")
    rows = []
    for k in args.ks:
        data = load_data(ROOT / f"samples/digits_k{k}.yaml")
        for seed in range(args.seeds):
            ref, ref_t = reference(BARE["network"]["layers"], data, seed)
            spec = parse_spec({**BARE, "training": {"seed": seed}, "solver": {"budget": args.budget}})
            t0 = time.perf_counter()
            res = train(spec, data)
            our_t = time.perf_counter() - t0
            row = {"k": k, "seed": seed, "reference": {**scores(ref, data, test), "time_s": round(ref_t, 2)},
                   "bnnmilp": {**scores(res.best.network, data, test), "time_s": round(our_t, 2),
                               "start_loss": res.start.loss if res.start else None, "status": res.status,
                               "stages": [st.name for st in res.stages], "source": res.best.source}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    lines = [f"`bnnmilp train` on a spec that names only the network ([64, 16, 10]; defaults: method lns), budget "
             f"{args.budget:g} s per run, against the reference STE; digits, k images per class, test: 500 held-out "
             f"images; {args.seeds} seeds per k; means over seeds; differences paired by seed (bnnmilp - reference, "
             f"+- 2 standard errors); {machine}.", "",
             "| k | images | reference: train loss | exact match | argmax | time (s) | bnnmilp: STE start loss | "
             "train loss | exact match | argmax | time (s) | difference: train loss | exact match (points) | "
             "argmax (points) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in args.ks:
        rs = [r for r in rows if r["k"] == k]
        mean = {(who, key): f"{np.mean(column(rs, who, key)):.{2 if key == 'time_s' else 1}f}"
                for who in ("reference", "bnnmilp") for key in ("train_loss", "time_s", "start_loss")
                if key != "start_loss" or who == "bnnmilp"}
        cells = [str(k), str(10 * k), mean["reference", "train_loss"], percent(rs, "reference", "test_exact"),
                 percent(rs, "reference", "test_argmax"), mean["reference", "time_s"], mean["bnnmilp", "start_loss"],
                 mean["bnnmilp", "train_loss"], percent(rs, "bnnmilp", "test_exact"),
                 percent(rs, "bnnmilp", "test_argmax"), mean["bnnmilp", "time_s"],
                 paired(column(rs, "bnnmilp", "train_loss"), column(rs, "reference", "train_loss"))]
        for key in ("test_exact", "test_argmax"):
            cells.append(paired([100 * v for v in column(rs, "bnnmilp", key)],
                                [100 * v for v in column(rs, "reference", key)]))
        lines.append("| " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "budget": args.budget, "rows": rows},
                                                   indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
