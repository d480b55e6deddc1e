"""Predict-then-optimise through bnnmilp's MILP layer against PyEPO's own, on PyEPO's data.

    python benchmarks/predict_optimise.py [--items 32 80] [--grid 5] [--seeds 3] [--epochs 5]

Needs the benchmark extra (``pip install '.[benchmark]'``: PyEPO, torch, gurobipy with its size-limited
licence). Data come from PyEPO's own generators (``pyepo.data.knapsack.genData``: 2-dimensional knapsacks,
5 features, degree 4, noise half-width 0.5; ``pyepo.data.shortestpath.genData``: a grid, same settings).
Per problem, seed and loss (SPO+, and PFYL with 10 samples at sigma 1), two runs that share data, initial
linear model and batch order (batch 32, Adam, learning rate 0.01):

- pyepo: ``pyepo.func.SPOPlus`` / ``perturbedFenchelYoung`` on ``pyepo.model.grb`` (Gurobi, PyEPO's
  default and fastest backend), ``processes=2``;
- pyepo, HiGHS: the same on ``pyepo.model.omo`` with Pyomo's ``appsi_highs`` (the solver bnnmilp uses);
- bnnmilp: ``bnnmilp.torch.spo_plus`` / ``perturbed_fy`` on ``MilpLayer`` (HiGHS), ``workers=2``;
- bnnmilp, Gurobi: the same with ``MilpLayer(..., solver="gurobi")``.

Test regret (``pyepo.metric.regret``, normalised, the same evaluator for both) after every epoch, and
milliseconds per instance of the loss's forward and backward (the solver's share of training). Writes
benchmarks/results/predict_optimise.{json,md}.
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

from bnnmilp.milp.model import INF, ModelBuilder, StandardModel  # noqa: E402

FEATURES, DEG, NOISE, BATCH, LR, PFYL_SAMPLES = 5, 4, 0.5, 32, 0.01, 10
KINDS = ("pyepo", "pyepo, HiGHS", "bnnmilp", "bnnmilp, Gurobi")


def knapsack(items: int, n: int, seed: int):
    """PyEPO's data and Gurobi model, and the same knapsack as bnnmilp's model (max v x as min -v x)."""
    import pyepo

    w, x, c = pyepo.data.knapsack.genData(n, FEATURES, items, dim=2, deg=DEG, noise_width=NOISE, seed=seed)
    cap = w.sum(axis=1) / 2
    mb = ModelBuilder("knapsack")
    v = mb.add_vars("x", (items,), 0.0, 1.0, integer=True)
    mb.add_rows("capacity", (2,), np.broadcast_to(v, (2, items)), w, -INF, cap)
    mb.set_objective(v, 1.0)
    models = {"pyepo": pyepo.model.grb.knapsackModel(w, cap),
              "pyepo, HiGHS": pyepo.model.omo.knapsackModel(w, cap, solver="appsi_highs")}
    return x, c, models, mb.build(), -1.0


def shortest_path(grid: int, n: int, seed: int):
    """PyEPO's data and Gurobi model (a flow LP on a grid), and the same LP as bnnmilp's model."""
    import pyepo

    x, c = pyepo.data.shortestpath.genData(n, FEATURES, (grid, grid), deg=DEG, noise_width=NOISE, seed=seed)
    models = {"pyepo": pyepo.model.grb.shortestPathModel((grid, grid)),
              "pyepo, HiGHS": pyepo.model.omo.shortestPathModel((grid, grid), solver="appsi_highs")}
    arcs = np.asarray(models["pyepo"].arcs)
    nodes = grid * grid
    mb = ModelBuilder("shortest_path")
    f = mb.add_vars("f", (len(arcs),), 0.0, 1.0)
    into = [np.concatenate([f[arcs[:, 1] == v], f[arcs[:, 0] == v]]) for v in range(nodes)]
    width = max(len(t) for t in into)
    cols = np.stack([np.pad(t, (0, width - len(t)), constant_values=t[0]) for t in into])
    coefs = np.stack([np.pad(np.r_[np.ones((arcs[:, 1] == v).sum()), -np.ones((arcs[:, 0] == v).sum())],
                             (0, width - len(into[v]))) for v in range(nodes)])
    rhs = np.zeros(nodes)
    rhs[0], rhs[-1] = -1.0, 1.0
    mb.add_rows("flow", (nodes,), cols, coefs, rhs, rhs)
    mb.set_objective(f, 1.0)
    return x, c, models, mb.build(), 1.0


def run(kind: str, loss: str, x, c, models: dict, model: StandardModel, sense: float, seed: int, n_train: int,
        epochs: int) -> dict:
    """One training run; ``sense`` is -1 where PyEPO maximises (bnnmilp minimises sense * cost). Datasets and
    regret use PyEPO's Gurobi model."""
    import pyepo
    import torch
    from torch.utils.data import DataLoader

    from bnnmilp.torch import MilpLayer, perturbed_fy, spo_plus

    om = models["pyepo"]
    train = pyepo.data.dataset.optDataset(om, x[:n_train], c[:n_train])
    test = pyepo.data.dataset.optDataset(om, x[n_train:], c[n_train:])
    torch.manual_seed(seed)
    pred = torch.nn.Linear(FEATURES, c.shape[1])
    opt = torch.optim.Adam(pred.parameters(), lr=LR)
    ours = kind.startswith("bnnmilp")
    if not ours:
        f = (pyepo.func.SPOPlus(models[kind], processes=2) if loss == "spo+" else
             pyepo.func.perturbedFenchelYoung(models[kind], n_samples=PFYL_SAMPLES, sigma=1.0, processes=2,
                                              seed=seed))
    else:
        layer = MilpLayer(model, workers=2, solver="gurobi" if kind.endswith("Gurobi") else "highs")
        gen = torch.Generator().manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    regret = [pyepo.metric.regret(pred, om, DataLoader(test, batch_size=256))]
    spent, seen = 0.0, 0
    for _ in range(epochs):
        for xb, cb, wb, zb in DataLoader(train, batch_size=BATCH, shuffle=True, generator=order):
            cp = pred(xb)
            t0 = time.perf_counter()
            if not ours:
                value = f(cp, cb, wb, zb) if loss == "spo+" else f(cp, wb)
            elif loss == "spo+":
                value = spo_plus(layer, sense * cp.double(), sense * cb.double(), wb.double(),
                                 sense * zb[:, 0].double()).mean()
            else:
                value = perturbed_fy(layer, sense * cp.double(), wb.double(), PFYL_SAMPLES, 1.0, gen).mean()
            opt.zero_grad()
            value.backward()
            spent += time.perf_counter() - t0
            seen += len(xb)
            opt.step()
        regret.append(pyepo.metric.regret(pred, om, DataLoader(test, batch_size=256)))
    return {"regret": [float(r) for r in regret], "ms_per_instance": 1000 * spent / seen}


def mean_2se(v: list[float], scale: float = 100.0, digits: int = 2) -> str:
    a = scale * np.asarray(v)
    se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0.0
    return f"{a.mean():.{digits}f} +- {2 * se:.{digits}f}"


def table(rows: list[dict], command: str) -> str:
    out = [f"`{command}` ({platform.machine()}, Python {platform.python_version()}; PyEPO with 2 processes on "
           "Gurobi or on HiGHS through Pyomo, bnnmilp with 2 threads on HiGHS or on Gurobi). Normalised test regret "
           "in % after the last epoch, mean +- 2 SE over seeds (paired: same data, initial model and batches; the "
           "difference is bnnmilp on Gurobi minus PyEPO on Gurobi); milliseconds per instance of the loss's forward "
           "and backward, and bnnmilp's time over PyEPO's on the same solver.", "",
           "| problem | loss | seeds | regret: pyepo | pyepo, HiGHS | bnnmilp | bnnmilp, Gurobi | paired difference "
           "| ms: pyepo | pyepo, HiGHS | bnnmilp | bnnmilp, Gurobi | HiGHS: bnnmilp / pyepo | Gurobi: bnnmilp / "
           "pyepo |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out.insert(2, "<!-- --8<-- [start:table] -->")
    for problem in dict.fromkeys(r["problem"] for r in rows):
        for loss in ("spo+", "pfyl"):
            if not (sel := [r for r in rows if r["problem"] == problem and r["loss"] == loss]):
                continue
            reg = {k: [r[k]["regret"][-1] for r in sel] for k in KINDS}
            ms = {k: float(np.mean([r[k]["ms_per_instance"] for r in sel])) for k in KINDS}
            diff = [b - p for b, p in zip(reg["bnnmilp, Gurobi"], reg["pyepo"], strict=True)]
            out.append(f"| {problem} | {loss} | {len(sel)} | " + " | ".join(mean_2se(reg[k]) for k in KINDS) +
                       f" | {mean_2se(diff)} | " + " | ".join(f"{ms[k]:.2f}" for k in KINDS) +
                       f" | {ms['bnnmilp'] / ms['pyepo, HiGHS']:.2f}x | {ms['bnnmilp, Gurobi'] / ms['pyepo']:.2f}x |")
    return "\n".join([*out, "<!-- --8<-- [end:table] -->"]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, nargs="*", default=[32, 80])
    ap.add_argument("--grid", type=int, nargs="*", default=[5])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--losses", nargs="+", default=["spo+", "pfyl"], choices=["spo+", "pfyl"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/predict_optimise"))
    ap.add_argument("--markdown", action="store_true", help="only rewrite the .md from the stored .json")
    args = ap.parse_args()
    out = Path(args.out)
    if args.markdown:
        stored = json.loads(out.with_suffix(".json").read_text())
        out.with_suffix(".md").write_text(table(stored["rows"], stored["command"]))
        return
    command = "python benchmarks/predict_optimise.py " + shlex.join(sys.argv[1:])
    problems = [(f"knapsack {k} items", knapsack, k) for k in args.items]
    problems += [(f"shortest path {g}x{g}", shortest_path, g) for g in args.grid]
    rows = []
    for name, make, size in problems:
        for seed in range(args.seeds):
            x, c, models, model, sense = make(size, args.train + args.test, seed)
            for loss in args.losses:
                row = {"problem": name, "seed": seed, "loss": loss}
                for kind in KINDS:
                    row[kind] = run(kind, loss, x, c, models, model, sense, seed, args.train, args.epochs)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(rows, command))
    print(table(rows, command))


if __name__ == "__main__":
    main()
