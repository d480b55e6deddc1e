"""Robustness queries of a one-vs-one ensemble: time per query, with and without the member-wise stage.

    python benchmarks/ensemble_queries.py [--images 100] [--time-limit 60]

An ovo ensemble of 45 members [64, 16, 1] is trained on digits k=10 (`--time-limit 3` per member, 2
workers), as a user would. Each of the first --images held-out images is then asked at L-infinity eps 1 and
2 on real-valued inputs (the query a user types: `bnnmilp verify RUN IMAGES --robust --eps E`), twice in the
same run: as shipped (sampling, interval arithmetic, each member's vote proven on its own, counterexamples
mixed from members' own, then one joint MILP per open rival), and with the member-wise stage switched off
(the joint MILP for every open rival: the baseline). Answers must not contradict each other (robust in one,
not robust in the other). Writes benchmarks/results/ensemble_queries.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp.data import load_data  # noqa: E402
from bnnmilp.io.runs import load_weights  # noqa: E402
from bnnmilp.verification.robustness import robust  # noqa: E402


def train(tmp: Path) -> Path:
    (tmp / "ovo.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 16, 10]},
                                                  "training": {"epsilon": 0.015625}}))
    subprocess.run([sys.executable, "-m", "bnnmilp", "train", str(tmp / "ovo.yaml"),
                    str(ROOT / "samples/digits_k10.yaml"), "-o", str(tmp / "ens"), "--ensemble", "ovo",
                    "--time-limit", "3", "--workers", "2"], check=True, capture_output=True)
    return tmp / "ens"


def queries(ens, X: np.ndarray, y: np.ndarray, eps: float, limit: float, members: bool) -> list:
    share = robust.MEMBER_SHARE
    robust.MEMBER_SHARE = share if members else 0.0  # 0: no time for members, the joint MILPs do everything
    try:
        opts = robust.RobustOptions(eps=eps, time_limit=limit)
        return [robust.verify_ensemble_sample(ens, X[i], int(y[i]), i, opts) for i in range(len(X))]
    finally:
        robust.MEMBER_SHARE = share


def row(name: str, eps: float, res: list) -> dict:
    t = np.array([r.time_s for r in res])
    answers = {a: sum(r.answer == a for r in res) for a in ("robust", "not_robust", "unknown")}
    return {"variant": name, "eps": eps, "queries": len(res), **answers, "mean_s": round(float(t.mean()), 3),
            "median_s": round(float(np.median(t)), 3), "p95_s": round(float(np.percentile(t, 95)), 3),
            "max_s": round(float(t.max()), 2), "over_1s": int(np.sum(t > 1.0))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--time-limit", type=float, default=60.0)
    a = ap.parse_args()
    test = load_data(str(ROOT / "samples/digits_test.yaml"))
    X, y = test.features[: a.images], test.labels[: a.images]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bnnmilp_ens_") as d:
        ens = load_weights(str(train(Path(d))), ensemble=True)
        for eps in (1.0, 2.0):
            t0 = time.perf_counter()
            shipped = queries(ens, X, y, eps, a.time_limit, members=True)
            base = queries(ens, X, y, eps, a.time_limit, members=False)
            clash = [r.index for r, b in zip(shipped, base, strict=True)
                     if {r.answer, b.answer} == {"robust", "not_robust"}]
            if clash:
                raise SystemExit(f"answers contradict each other at eps {eps}: images {clash}")
            rows += [row("joint MILP per rival (baseline)", eps, base), row("as shipped", eps, shipped)]
            rows[-1]["mean_ratio_vs_baseline"] = round(rows[-1]["mean_s"] / max(rows[-2]["mean_s"], 1e-9), 3)
            print(rows[-2], rows[-1], f"{time.perf_counter() - t0:.0f} s", flush=True)
    meta = {"machine": platform.machine(), "python": platform.python_version(),
            "command": f"python benchmarks/ensemble_queries.py --images {a.images} --time-limit {a.time_limit:g}",
            "ensemble": "ovo, 45 members [64, 16, 1], digits k=10, --time-limit 3 per member"}
    out = ROOT / "benchmarks/results"
    (out / "ensemble_queries.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"{meta['machine']}, Python {meta['python']}; `{meta['command']}`; {meta['ensemble']}; L-infinity, "
             "real-valued inputs; times per query in seconds.", "",
             "| eps | variant | robust | not robust | unknown | mean | median | p95 | max | over 1 s | mean ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['eps']:g} | {r['variant']} | {r['robust']} | {r['not_robust']} | {r['unknown']} | "
              f"{r['mean_s']:.3f} | {r['median_s']:.3f} | {r['p95_s']:.3f} | {r['max_s']:.2f} | {r['over_1s']} | "
              f"{r.get('mean_ratio_vs_baseline', 1.0):.3f} |" for r in rows]
    (out / "ensemble_queries.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
