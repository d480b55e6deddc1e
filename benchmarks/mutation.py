"""Mutation testing of the code that decides truth: the proof checker, the exact forward pass, the replay.

    pip install mutmut && python benchmarks/mutation.py            # run, then report (about 20 min)
    python benchmarks/mutation.py --report                          # report the last run only

mutmut (configured in pyproject.toml, [tool.mutmut]) mutates bnnmilp/verification/checkers/proofs.py,
bnnmilp/network/__init__.py and bnnmilp/verification/robustness/replay.py
and runs the tests that reach each mutated function. Every
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

# Why a mutant may survive: (pattern of the mutant's name, pattern of its changed line, the reason). Every
# rule was written after reading the survivors it matches; a survivor no rule matches is "unexplained".
RULES: list[tuple[str, str, str]] = [
    (r"\.network\.x__numbers__", r'dtype\.kind (!=|==) "(XXfXX|F|f)"',
     "Skips or takes the fast path for arrays of doubles from NPZ files: the general path converts the same "
     "numbers to the same doubles, only slower."),
    (r"\.network\.xǁNetworkǁ_layer__", r"unsure\.any\(\) or err\.any\(\)",
     "Sends exact ties of an integral layer (err = 0) through the rational fallback, which decides them the "
     "same way (a tie is bit 1): the same bits, only slower."),
    (r"\.(network|certificates\.check|replay)\.", r"zip\(.*strict=(None|False)\)|zip\([^()]*(\([^()]*\)[^()]*)*, \)",
     "Drops zip(strict=True) where both sequences have the same length by construction."),
    (r"\.(network\.\S*(argmax_predictions|score_margins|argmax_slack|predictions|training_loss))__",
     r"\(bits is None\) or True|argmax_predictions\(X, (None)?\)",
     "Recomputes the forward pass instead of reusing the bits the caller computed from the same X: the same "
     "bits, only slower."),
    (r"\.network\.", r"dtype=None\)|asarray\(X, \)|astype\(None\)|asarray\(value, \)",
     "Drops an explicit float64: every caller passes float64 arrays (and astype(None) is float64); the exact "
     "parts convert each entry with Fraction(float(.)). Same values."),
    (r"\.network\.x_dot_error_bound__|\.network\.\S*(min_slack|argmax_slack|argmax_predictions|_layer)__",
     r"W\.shape\[1\] [-+] [23]|n \* _U [*/] \([12] [-+] n \* _U\)|[23]\.0 \* gamma|[45] \* _U|"
     r"[23]\.0\*\*-100[01]|- 2\.0\*\*-1000|\* [23] [-+] [45]|/ 2 \+ 4|4 / _U|_U / abs|abs\(score\) - np\.abs|"
     r"abs\(a\) - np\.abs|2 - 4 \* _U",
     "Changes the width of a rounding-error window by a bounded factor (or by the 4u|.| or 2^-1000 terms). The "
     "window is Higham's worst-case gamma_n, doubled: it is wider than any error that occurs (the 1e16 "
     "cancellation traps in the tests err by 1 against a window of about 20), and a wider window only sends "
     "more entries to exact arithmetic. No input we could construct tells these apart."),
    (r"\.network\.", r"(<|>) (np\.min|best_low|floor|\(top|top\[i\])|np\.abs\(d\) < err|\.sum\(axis=1\) >= 1|"
     r"\(d > 0\)",
     "Makes a window comparison strict (or always true). Every window has positive width (err >= 2^-1000), so "
     "the entry that defines the edge stays inside and a float tie d = 0 is always re-decided exactly; 'at "
     "least one candidate' only sends every sample to exact arithmetic. Same results."),
    (r"\.network\.\S*argmax_slack__", r"- score \+ eps",
     "Shifts every gap by the same 2 eps: the same candidates; their values are recomputed exactly with eps."),
    (r"\.network\.x_exact_preactivation__", r"sign = [12]\.0 if|np\.where\(None|\+np\.inf|mask \|",
     "Entries outside the mask are -inf, so they never become candidates; where(None, ...) makes every masked "
     "entry a candidate; scaling the signed values by 2 against a doubled error bound keeps the window "
     "rigorous. The same exact extremum."),
    (r"\.network\.x__exact_dot__", r"Fraction\(0\)\)$|, \)$|if a or b",
     "The empty sum is the int 0 instead of Fraction(0) (every caller subtracts a Fraction from it), or zero "
     "products are added: the same value."),
    (r"\.network\.x_training_slack__", r"min\(parts, (key=None)?\)",
     "Compares (slack, location) tuples instead of slacks: the hidden part is listed first and its layer index "
     "is smaller, so ties resolve the same way."),
    (r"\.certificates\.check\.x__exact_leaf_bound__", r"yi >= 0|rj >= 0",
     "Zero multipliers and zero reduced costs are skipped just before: the comparison never sees 0."),
    (r"\.certificates\.check\.x__check__", r"while nodes\[k\]\[1\] is not None",
     "Walks up until the column is None instead of the parent: only the root has either."),
    (r"\.certificates\.check\.x__check__", r"weakest = b if weakest is None or b <= weakest",
     "Keeps the later of two equal weakest bounds: the same value."),
    (r"\.certificates\.check\.x__check__", r"root_bound\(v, bool\(i\), None\)",
     "None for False: both are falsy, so lower bounds are rounded the same way."),
    (r"\.certificates\.check\.x_check_proof__", r"rep\.fail\(None\)",
     "The message of the defensive catch-all for malformed proofs: every malformed input we know of is "
     "rejected earlier with its own message (tests/verification/checkers/test_checker_messages.py)."),
]


def explain(name: str, diff: str) -> str | None:
    plus = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+")]
    for name_pat, line_pat, reason in RULES:
        if re.search(name_pat, name) and any(re.search(line_pat, ln) for ln in plus):
            return reason
    return None


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
             + (f", {minutes:.0f} min" if not args.report else "") + ". Score: detected / (detected + survived); "
             "detected = killed or timed out (a mutant that never ends is caught); 'no tests' are mutants no "
             "selected test reaches (listed below too).", "",
             "| module | mutants | killed | survived | no tests | timeout | score |", "|---|---|---|---|---|---|---|"]
    total = Counter()
    for module, c in sorted(per_file.items()):
        total.update(c)
        n = sum(c.values())
        score = (c["killed"] + c["timeout"]) / max(c["killed"] + c["timeout"] + c["survived"], 1)
        lines.append(f"| {module} | {n} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['timeout']} | "
                     f"{100 * score:.1f}% |")
    n = sum(total.values())
    score = (total["killed"] + total["timeout"]) / max(total["killed"] + total["timeout"] + total["survived"], 1)
    lines.append(f"| all | {n} | {total['killed']} | {total['survived']} | {total['no tests']} | "
                 f"{total['timeout']} | {100 * score:.1f}% |")
    listed = survivors + sorted(n for n, st in status.items() if st not in ("killed", "survived", "timeout"))
    diffs = {s: "\n".join(ln for ln in mutmut("show", s).splitlines()[1:] if ln.startswith(("+", "-"))
                          and not ln.startswith(("+++", "---"))) for s in listed}
    reasons = {s: explain(s, diffs[s]) if status[s] == "survived" else None for s in listed}
    unexplained = [s for s in listed if reasons[s] is None]
    lines += ["", f"Survivors: {len(survivors)}, explained {len(survivors) - len(unexplained)}, "
              f"unexplained or not run {len(unexplained)}.", ""]
    for s in listed:
        lines += [f"### {s} ({status[s]})", "", "```diff", diffs[s], "```", "", reasons[s] or "**unexplained**", ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mutation.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "mutation.json").write_text(json.dumps({"status": status, "score": score}, indent=1) + "\n")
    print("\n".join(lines[:len(per_file) + 6]))
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
