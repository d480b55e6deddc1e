"""The queries that benchmarks/external.py left undecided, again with a longer time limit.

    python benchmarks/external_hard.py [--time-limit 600] [--split 2] [--only mnist_0_ ...]

Reads benchmarks/results/external.json, reruns every ``unknown`` row's --min-eps query (enumeration engine
auto, the same code path) with --time-limit seconds (each exhaustive enumeration shared by --split processes),
and writes benchmarks/results/external_hard.md and
external_hard.json. Loading the network is included in every time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from external import query, undecided  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--only", nargs="*", default=None, help="rerun only images whose name contains one of these")
    ap.add_argument("--split", type=int, default=1, help="processes per query (verify --robust --split)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/external_hard"))
    args = ap.parse_args()
    before = json.loads((ROOT / "benchmarks/results/external.json").read_text())
    rows = []
    for r, path, x, label in undecided(before, args.only):
        res = query(path, x, label, r["norm"], None, "auto", args.time_limit, args.split)
        rows.append({"net": r["net"], "image": r["image"], "norm": r["norm"], "before": r, **res})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": before["machine"], "time_limit": args.time_limit,
                                                    "split": args.split, "rows": rows}, indent=1))
    lines = [f"The queries external.py left undecided at {before.get('time_limit', 60):g} s, rerun with "
             f"{args.time_limit:g} s each (--min-eps, engine auto; load included"
             f"{f'; every enumeration shared by {args.split} processes' if args.split > 1 else ''}); "
             f"{before['machine']}.", "",
             "| network | image | norm | before: bracket | now: answer | smallest perturbation | proven lower bound "
             "| time (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = r["before"]
        was = f"[{b['bound']:g}, {b['distance'] or '-'}]"
        smallest = r["distance"] or "-"
        if r["answer"] == "unknown" and r["distance"]:
            smallest = f"in [{r['bound']:g}, {r['distance']}]"
        lines.append(f"| {r['net']} | {r['image'].removeprefix('bnn_').removesuffix('.png')} | {r['norm']} | {was} "
                     f"| {r['answer']} | {smallest} | {r['bound']} | {r['time_s']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
