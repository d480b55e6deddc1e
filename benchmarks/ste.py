"""bnnmilp's STE heuristic against the reference STE of issue 18, on the digits from 10 to 1,000 images.

    python benchmarks/ste.py [--ks 1 2 5 10 20 50 100] [--seeds 10]

configs/digits_milp.yaml ([64, 16, 10], continuous weights, one learned threshold per layer, Hamming loss) on
samples/digits_k{k}.yaml (k images per class), evaluated on samples/digits_test.yaml (500 held-out images).
For each seed: the reference (benchmarks/reference_ste.py, plain numpy written apart from bnnmilp, its grid
seeded 2 s and 2 s + 1) and `bnnmilp train --method ste` (training.seed s). Every network is evaluated by
bnnmilp's exact forward pass: training Hamming loss, test exact-match accuracy (the one-hot output must be
exactly the label) and test argmax accuracy. Paired differences (bnnmilp - reference, same k and seed):
mean +- 2 standard errors. Writes benchmarks/results/ste.md and ste.json.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

import reference_ste  # noqa: E402

from bnnmilp.data import load_data  # noqa: E402
from bnnmilp.network import Network, exact_match_predictions  # noqa: E402
from bnnmilp.spec import load_spec  # noqa: E402
from bnnmilp.training.pipeline import train  # noqa: E402


def scores(net: Network, data, test) -> dict:
    Y = data.targets(10)
    return {"train_loss": int(np.sum(net.predict_bits(data.features) != Y)),
            "test_exact": float(np.mean(exact_match_predictions(net.predict_bits(test.features)) == test.labels)),
            "test_argmax": float(np.mean(net.argmax_predictions(test.features) == test.labels))}


def reference(layers, data, seed: int) -> tuple[Network, float]:
    """The reference STE's network (its grid seeded 2 seed and 2 seed + 1) and its training time."""
    t0 = time.perf_counter()
    Ws, lams = reference_ste.train(layers, data.features, data.labels, seed)
    return Network(Ws, [np.full(W.shape[0], t) for W, t in zip(Ws, lams, strict=True)]), time.perf_counter() - t0


def column(rs: list, who: str, key: str) -> list:
    """One method's values of one key over the rows of a k."""
    return [r[who][key] for r in rs]


def percent(rs: list, who: str, key: str) -> str:
    return f"{100 * np.mean(column(rs, who, key)):.1f}%"


def paired(a: list[float], b: list[float]) -> str:
    d = np.array(a) - np.array(b)
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
    return f"{d.mean():+.2f} +- {2 * se:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50, 100])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ste"))
    args = ap.parse_args()
    spec = load_spec(ROOT / "configs/digits_milp.yaml")
    test = load_data(ROOT / "samples/digits_test.yaml")
    rows = []
    for k in args.ks:
        data = load_data(ROOT / f"samples/digits_k{k}.yaml")
        for seed in range(args.seeds):
            ref, ref_t = reference(spec.network.layers, data, seed)
            t0 = time.perf_counter()
            ours = train(replace(spec, training=replace(spec.training, method="ste", seed=seed)), data).best.network
            our_t = time.perf_counter() - t0
            row = {"k": k, "seed": seed, "reference": {**scores(ref, data, test), "time_s": round(ref_t, 2)},
                   "bnnmilp": {**scores(ours, data, test), "time_s": round(our_t, 2)}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = f"{platform.machine()}, Python {platform.python_version()}"
    lines = [f"configs/digits_milp.yaml on the digits (k images per class; test: 500 held-out images); {args.seeds} "
             f"seeds per k; means over seeds; differences paired by seed (bnnmilp - reference, +- 2 standard errors); "
             f"{machine}.", "",
             "| k | images | reference: train loss | exact match | argmax | time (s) | bnnmilp STE: train loss | "
             "exact match | argmax | time (s) | difference: train loss | exact match (points) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in args.ks:
        rs = [r for r in rows if r["k"] == k]

        def col(who: str, key: str, rs: list = rs) -> list:
            return column(rs, who, key)

        def pct(who: str, key: str, rs: list = rs) -> str:
            return percent(rs, who, key)

        cells = [str(k), str(10 * k)]
        for who in ("reference", "bnnmilp"):
            cells += [f"{np.mean(col(who, 'train_loss')):.1f}", pct(who, "test_exact"), pct(who, "test_argmax"),
                      f"{np.mean(col(who, 'time_s')):.2f}"]
        cells += [paired(col("bnnmilp", "train_loss"), col("reference", "train_loss")),
                  paired([100 * v for v in col("bnnmilp", "test_exact")],
                         [100 * v for v in col("reference", "test_exact")])]
        lines.append("| " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
