"""The PyTorch MILP layer's cost per instance against a plain HiGHS solve, on multi-dimensional knapsacks.

    python benchmarks/layers.py [--items 10 20 40 80] [--batch 32] [--seeds 3]

Instances: 2-constraint 0/1 knapsacks (weights uniform 3..30, capacity half the total, values from a noisy
linear model of 5 features as in PyEPO's generator), one batch of cost vectors per size. Per instance, in the
same run and on one thread:

- highs: a competent user's solve: the model passed to HiGHS once, the costs changed, ``run`` (the baseline);
- layer c: ``bnnmilp.torch.MilpLayer`` forward and backward for dz/dc = x*;
- layer b, A: forward and backward for dz/db and dz/dA as well (one more LP with the integers fixed);
- exact: the proof-tree gradients (``exact=True``), on the first 4 instances.

Writes benchmarks/results/layers.{json,md} with milliseconds per instance and ratios to highs.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp.milp.backends import highs  # noqa: E402
from bnnmilp.milp.model import INF, ModelBuilder, StandardModel  # noqa: E402


def knapsack(items: int, seed: int, batch: int) -> tuple[StandardModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.integers(3, 31, (2, items)).astype(float)
    b = ModelBuilder("knapsack")
    x = b.add_vars("x", (items,), 0, 1, True)
    b.add_rows("cap", (2,), np.broadcast_to(x, (2, items)), w, -INF, w.sum(axis=1) / 2)
    b.set_objective(x, -np.ones(items))
    B = rng.normal(0, 1, (5, items))
    feats = rng.normal(0, 1, (batch, 5))
    values = ((feats @ B / np.sqrt(5) + 3) ** 4 / 3.5 ** 4 + 1) * rng.uniform(0.5, 1.5, (batch, items))
    return b.build(), -values  # minimise -value


def per_instance(f, n: int) -> float:
    t0 = time.perf_counter()
    f()
    return 1000 * (time.perf_counter() - t0) / n


def main() -> None:
    import torch

    from bnnmilp.torch import MilpLayer

    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, nargs="+", default=[10, 20, 40, 80])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    command = "python benchmarks/layers.py " + shlex.join(sys.argv[1:])
    rows = []
    for items in args.items:
        for seed in range(args.seeds):
            m, C = knapsack(items, seed, args.batch)

            def plain(m=m, C=C) -> None:
                h = highs.to_highs(m)
                h.setOptionValue("threads", 1)
                for c in C:
                    h.clearSolver()
                    h.changeColsCost(m.n_cols, np.arange(m.n_cols, dtype=np.int32), c)
                    h.run()

            layer = MilpLayer(m, workers=1)

            def c_only(layer=layer, C=C) -> None:
                Ct = torch.tensor(C, requires_grad=True)
                layer(c=Ct).sum().backward()

            def with_b(layer=layer, C=C, m=m) -> None:
                b = torch.tensor(m.row_upper, requires_grad=True)
                A = torch.tensor(m.data, requires_grad=True)
                layer(c=torch.tensor(C), b=b, A=A).sum().backward()

            exact = MilpLayer(m, workers=1, exact=True)

            def exact_b(exact=exact, C=C, m=m) -> None:
                exact(c=torch.tensor(C[:4]), b=torch.tensor(m.row_upper, requires_grad=True)).sum().backward()

            row = {"items": items, "seed": seed, "highs_ms": per_instance(plain, len(C)),
                   "layer_c_ms": per_instance(c_only, len(C)), "layer_bA_ms": per_instance(with_b, len(C)),
                   "exact_ms": per_instance(exact_b, 4)}
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    table = ["| items | highs (ms) | layer, dz/dc (ms, ratio) | layer, dz/db and dz/dA (ms, ratio) "
             "| exact (ms, ratio) |",
             "|---|---|---|---|---|"]
    for items in args.items:
        sel = [r for r in rows if r["items"] == items]
        med = {k: float(np.median([r[k] for r in sel])) for k in ("highs_ms", "layer_c_ms", "layer_bA_ms", "exact_ms")}
        base = med["highs_ms"]
        table.append(f"| {items} | {base:.2f} | {med['layer_c_ms']:.2f} ({med['layer_c_ms'] / base:.2f}x) | "
                     f"{med['layer_bA_ms']:.2f} ({med['layer_bA_ms'] / base:.2f}x) | "
                     f"{med['exact_ms']:.1f} ({med['exact_ms'] / base:.0f}x) |")
    out = ROOT / "benchmarks/results"
    (out / "layers.json").write_text(json.dumps({"command": command, "machine": platform.platform(),
                                                 "rows": rows}, indent=1) + "\n")
    md = [f"# The PyTorch MILP layer against a plain HiGHS solve\n\n`{command}` ({platform.platform()}, one "
          f"thread, batch {args.batch}, median over {args.seeds} seeds of milliseconds per instance).\n", *table]
    (out / "layers.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
