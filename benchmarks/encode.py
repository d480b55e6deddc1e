"""The encode path: arrays -> HiGHS against the Pyomo route, on the 16-8-3 network with 1000 samples.

    python benchmarks/encode.py

Times, in one process: building the standard-form arrays (numpy), loading them into HiGHS, HiGHS's MPS
writer, building the Pyomo model from the same arrays, and Pyomo's LP and MPS writers. Writes
benchmarks/results/encode.md.
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp import formulations  # noqa: E402
from bnnmilp.milp.backends import highs, pyomo  # noqa: E402
from bnnmilp.spec import parse_spec  # noqa: E402


def clock(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (1000, 16))
    Y = np.eye(3)[rng.integers(0, 3, 1000)]
    spec = parse_spec({"network": {"layers": [16, 8, 3]}, "training": {"loss": "error"}})
    tmp = Path(tempfile.mkdtemp())
    t_build, tm = clock(lambda: formulations.get("theorem1").build(spec, X, Y))
    m = tm.model
    t_highs, _ = clock(lambda: highs.to_highs(m))
    t_hmps, _ = clock(lambda: highs.write(m, tmp / "h.mps"))
    t_pyomo, _ = clock(lambda: pyomo.to_pyomo(m))
    t_plp, _ = clock(lambda: pyomo.write(m, tmp / "p.lp", "lp"))
    t_pmps, _ = clock(lambda: pyomo.write(m, tmp / "p.mps", "mps"))
    st = m.stats()
    base = t_build + t_highs
    rows = [("numpy arrays (standard form)", t_build), ("arrays -> HiGHS (passModel)", t_highs),
            ("build + load into HiGHS (the train path)", base), ("HiGHS writes MPS", t_hmps),
            ("arrays -> Pyomo model", t_pyomo), ("Pyomo model + LP writer (encode)", t_plp),
            ("Pyomo model + MPS writer (encode)", t_pmps)]
    lines = [f"{platform.machine()}, Python {platform.python_version()}; model: {st['variables']} columns, "
             f"{st['rows']} rows, {st['nonzeros']} nonzeros. Ratio: time / (build + load into HiGHS).", "",
             "| step | seconds | ratio |", "|---|---|---|"]
    lines += [f"| {name} | {t:.3f} | {t / base:.1f} |" for name, t in rows]
    out = ROOT / "benchmarks/results/encode.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
