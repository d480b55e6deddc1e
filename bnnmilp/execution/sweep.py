"""Sweeps: a grid over spec fields and data -> independent training jobs -> a results table and a plot.

    spec: configs/digits.yaml            # the base network.yaml (paths relative to the sweep file)
    data: samples/digits_k{k}.yaml       # may use plain grid variables
    test: samples/digits_test.yaml       # optional held-out set
    grid:
      k: [1, 2]                          # a plain variable (used in the data path)
      network.layers: [[64, 8, 10], [64, 16, 10]]
      training.seed: [0, 1]              # dotted: a spec field
      solver.time_limit: [10]
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from pathlib import Path
from typing import Any

from bnnmilp.errors import SpecError, unknown
from bnnmilp.execution.jobs import Job, job_kind
from bnnmilp.io.yamlio import read_yaml, write_text_atomic
from bnnmilp.limits import MAX_JOBS
from bnnmilp.spec import parse_spec


@job_kind("train")
def train_job(p: dict[str, Any]) -> dict[str, Any]:
    """One grid point of a sweep: train, then test where a test set is given."""
    import numpy as np

    from bnnmilp.data import load_data
    from bnnmilp.network import exact_match_predictions
    from bnnmilp.spec import parse_spec
    from bnnmilp.training.pipeline import train

    spec = parse_spec(p["spec"])
    data = load_data(p["data"])
    t0 = time.perf_counter()
    res = train(spec, data)
    out: dict[str, Any] = {"status": res.status, "time_s": round(time.perf_counter() - t0, 3),
                           "train_loss": res.best.loss if res.best else None, "bound": res.loss_bound}
    if p.get("test") and res.best is not None:
        test = load_data(p["test"])
        bits = res.best.network.forward(test.features)
        out["test_exact"] = float(np.mean(exact_match_predictions(bits[-1]) == test.labels))
        out["test_argmax"] = float(np.mean(res.best.network.argmax_predictions(test.features, bits) == test.labels))
    if res.best is not None:
        out["layers"] = res.best.network.to_layers_doc()
    return out


def load_sweep(path: str | Path) -> tuple[list[Job], list[dict[str, Any]]]:
    """The jobs of a sweep file and, per job, the grid point it comes from."""
    p = Path(path)
    doc = read_yaml(p, SpecError)
    for k in doc:
        if k not in ("spec", "data", "test", "grid"):
            raise SpecError(str(p), k, unknown("key", k, ("spec", "data", "test", "grid")))
    for k in ("spec", "data", "grid"):
        if k not in doc:
            raise SpecError(str(p), k, "missing required key")
    grid = doc["grid"]
    if not isinstance(grid, dict) or not grid:
        raise SpecError(str(p), "grid", "expected a mapping of names to lists of values")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise SpecError(str(p), f"grid.{k}", "expected a non-empty list of values")
        if "." in k and k.split(".", 1)[0] not in ("network", "training", "solver"):
            raise SpecError(str(p), f"grid.{k}", "dotted names must start with network., training. or solver.")
    points_total = math.prod(len(v) for v in grid.values())
    if points_total > MAX_JOBS:
        raise SpecError(str(p), "grid", f"{points_total:,} grid points (training runs); at most {MAX_JOBS:,} are "
                                        "allowed: split the sweep")
    base_dir = p.parent
    base = read_yaml(base_dir / doc["spec"], SpecError)
    names = list(grid)
    jobs, points = [], []
    for values in itertools.product(*(grid[n] for n in names)):
        point = dict(zip(names, values, strict=True))
        spec = copy.deepcopy(base)
        for n, v in point.items():
            if "." in n:
                sec, key = n.split(".", 1)
                spec.setdefault(sec, {})[key] = v
        try:
            parse_spec(spec, str(p))
        except SpecError as exc:
            raise SpecError(str(p), f"grid ({exc.key})", exc.expected) from None
        plain = {n: v for n, v in point.items() if "." not in n}
        try:
            data = str(base_dir / str(doc["data"]).format(**plain))
            test = str(base_dir / doc["test"]) if doc.get("test") else None
        except KeyError as exc:
            raise SpecError(str(p), "data", f"uses {{{exc.args[0]}}}, which is not in the grid") from None
        if not Path(data).exists():
            raise SpecError(str(p), "data", f"no such file {data} (grid point {plain})")
        jobs.append(Job.make("train", {"spec": spec, "data": data, "test": test}))
        points.append(point)
    return jobs, points


COLUMNS = ("status", "train_loss", "bound", "time_s", "test_exact", "test_argmax")


def write_results(out: Path, records: list[dict], points: list[dict]) -> list[dict]:
    rows = []
    for rec, point in zip(records, points, strict=True):
        res = rec.get("result") or {}
        row = {k: (str(v) if isinstance(v, list) else v) for k, v in point.items()}
        row.update({c: res.get(c) for c in COLUMNS})
        row["error"] = rec.get("error")
        row["key"] = rec["key"]
        rows.append(row)
    head = list(rows[0]) if rows else []

    def cell(v: Any) -> str:
        return "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    csv = [",".join(head)] + [",".join(f'"{cell(r[h])}"' if "," in cell(r[h]) else cell(r[h]) for h in head)
                              for r in rows]
    write_text_atomic(out / "results.csv", "\n".join(csv) + "\n")
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(cell(r[h]) for h in head) + " |" for r in rows]
    write_text_atomic(out / "results.md", "\n".join(md) + "\n")
    return rows


def plot_results(out: Path, rows: list[dict]) -> Path | None:
    """Test accuracy against training time (PNG), each point labelled with its grid point; None when
    matplotlib is missing or nothing to plot."""
    pts = [(r["time_s"], r["test_exact"], ", ".join(f"{k}={r[k]}" for k in r if k not in COLUMNS
                                                     and k not in ("error", "key")))
           for r in rows if r.get("time_s") is not None and r.get("test_exact") is not None]
    if not pts:
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from bnnmilp.analysis.plots import accuracy_against_time

    return accuracy_against_time(out / "plot.png", pts)
