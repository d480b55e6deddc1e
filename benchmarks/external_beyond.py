"""Fixed budgets beyond what the enumeration finishes in time, on the queries external.py left undecided.

    python benchmarks/external_beyond.py [--time-limit 60] [--factor 2]

Reads benchmarks/results/external.json. For every ``unknown`` --min-eps row (lower bound b proven: every budget
below b robust), the query at budget eps = --factor x b, a budget whose choices no enumeration finishes in the
minute: engine auto (the enumeration's quick search, then the beam searches against every rival class, the
partial enumeration, SAT, branch and bound, the reduced MILP) against engine milp (HiGHS on the MILP that
``encode --robust`` writes, one step query per rival class), --time-limit seconds each, loading included.
Every counterexample is replayed exactly by verify_robust before it is reported. Writes
benchmarks/results/external_beyond.md and external_beyond.json.
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


def cell(r: dict) -> str:
    at = f" (at {r['distance']})" if r["distance"] else ""
    return f"{r['answer']}{at}, {r['method']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--factor", type=float, default=2.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/external_beyond"))
    args = ap.parse_args()
    before = json.loads((ROOT / "benchmarks/results/external.json").read_text())
    rows = []
    for r, path, x, label in undecided(before):
        eps = float(round(args.factor * r["bound"]))
        got = {engine: query(path, x, label, r["norm"], eps, engine, args.time_limit) for engine in ("auto", "milp")}
        rows.append({"net": r["net"], "image": r["image"], "norm": r["norm"], "eps": eps,
                     "bracket": [r["bound"], r["distance"]], **got})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"machine": before["machine"], "time_limit": args.time_limit,
                                                    "factor": args.factor, "rows": rows}, indent=1))
    settled = {e: sum(r[e]["answer"] != "unknown" for r in rows) for e in ("auto", "milp")}
    lines = [f"The --min-eps queries external.py left undecided, asked at {args.factor:g} x their proven lower "
             f"bound (a fixed budget no enumeration finishes in time), {args.time_limit:g} s per query, load "
             f"included, 1 process; {before['machine']}.", "",
             f"Settled: auto {settled['auto']} of {len(rows)}, HiGHS on the MILP {settled['milp']} of {len(rows)}.",
             "", "| network | image | norm | eps | bracket at 60 s | auto | time (s) | milp | time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, up = r["bracket"]
        lines.append(f"| {r['net']} | {r['image'].removeprefix('bnn_').removesuffix('.png')} | {r['norm']} | "
                     f"{r['eps']:g} | [{lo:g}, {up or '-'}] | {cell(r['auto'])} | {r['auto']['time_s']} | "
                     f"{cell(r['milp'])} | {r['milp']['time_s']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
