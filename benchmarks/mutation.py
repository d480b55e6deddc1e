"""Mutation testing of the code that decides truth: the proof checker, the exact forward pass, the replay.

    pip install mutmut && python benchmarks/mutation.py            # run, then report (about 20 min)
    python benchmarks/mutation.py --report                          # report the last run only

mutmut (configured in pyproject.toml, [tool.mutmut]) mutates bnnmilp/certificates/check.py,
bnnmilp/network.py and bnnmilp/replay.py and runs the tests that reach each mutated function. Every
mutant that survives must be explained below (an equivalent mutant, or a difference no input can
observe); the report lists the score per file and every survivor with its diff and its explanation,
and the script exits 1 while any survivor is unexplained.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# mutant name -> why it survives (each was read and judged by hand)
EXPLAINED: dict[str, str] = {}


def mutmut(*args: str) -> str:
    return subprocess.run(["mutmut", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="report the last run without running mutmut")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if not args.report:
        subprocess.run(["mutmut", "run"], cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
    minutes = (time.perf_counter() - t0) / 60
    status: dict[str, str] = {}
    for line in mutmut("results", "--all", "true").splitlines():
        m = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)$", line)
        if m:
            status[m.group(1)] = m.group(2).strip()
    if not status:
        print("no mutmut results: run `mutmut run` first (pip install mutmut)", file=sys.stderr)
        return 2
    per_file: dict[str, Counter] = {}
    for name, st in status.items():
        module = name.split(".x")[0].split(".X")[0] if ".x" in name or ".X" in name else name.rsplit(".", 1)[0]
        per_file.setdefault(module, Counter())[st] += 1
    survivors = sorted(n for n, st in status.items() if st == "survived")
    lines = [f"mutmut on {platform.machine()}, Python {platform.python_version()}"
             + (f", {minutes:.0f} min" if not args.report else "") + ". Score: killed / (killed + survived); "
             "'no tests' are mutants no selected test reaches (listed below too).", "",
             "| module | mutants | killed | survived | no tests | timeout | score |", "|---|---|---|---|---|---|---|"]
    total = Counter()
    for module, c in sorted(per_file.items()):
        total.update(c)
        n = sum(c.values())
        score = c["killed"] / max(c["killed"] + c["survived"], 1)
        lines.append(f"| {module} | {n} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['timeout']} | "
                     f"{100 * score:.1f}% |")
    n = sum(total.values())
    score = total["killed"] / max(total["killed"] + total["survived"], 1)
    lines.append(f"| all | {n} | {total['killed']} | {total['survived']} | {total['no tests']} | "
                 f"{total['timeout']} | {100 * score:.1f}% |")
    unexplained = [s for s in survivors if s not in EXPLAINED]
    lines += ["", f"Survivors: {len(survivors)}, explained {len(survivors) - len(unexplained)}, "
              f"unexplained {len(unexplained)}.", ""]
    for s in survivors + sorted(n for n, st in status.items() if st == "no tests"):
        diff = "\n".join(ln for ln in mutmut("show", s).splitlines()[1:] if ln.startswith(("+", "-"))
                         and not ln.startswith(("+++", "---")))
        lines += [f"### {s} ({status[s]})", "", "```diff", diff, "```", "",
                  EXPLAINED.get(s, "**unexplained**"), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mutation.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "mutation.json").write_text(json.dumps({"status": status, "score": score}, indent=1) + "\n")
    print("\n".join(lines[:len(per_file) + 6]))
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
