"""VNN-LIB queries on conv BNNs of the VNN-COMP 2023 traffic-sign shapes, answered three ways in the same run.

    python benchmarks/vnnlib_queries.py [--archs 30 48 64] [--seeds 2] [--images 2] [--eps 1 3 5 10 15] [--timeout 60]

Networks: ``tests.onnx_models.traffic_sign_bnn`` (Larq-style, NHWC float inputs, +-1 convolutions, MaxPool
before the batch norm, Sign(Sign(x) + 0.1), 43 classes) with seeded random weights. Properties: an
L-infinity box of radius eps around a random image (uniform 0..255), clipped to 0..255, asking whether some
class scores at least the network's own class at the image (VNN-COMP's form, written as VNN-LIB 1.0).

- bnnmilp: ``bnnmilp-vnnlib verify QUERY --network N=MODEL --timeout T`` as a process (import included);
- milp: the query's MILP (the same formulation) given to HiGHS alone, with the same limit after the import;
- random: 2,000 points of the box (centre, corners, uniform) replayed exactly: sat or unknown.

Answers must not contradict each other (sat in one, unsat in another). Writes
benchmarks/results/vnnlib_queries.{json,md}
with per-instance rows and a table per shape and eps: answered, sat, unsat, median seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks/results"
sys.path.insert(0, str(ROOT))

from bnnmilp.io.vnnlib import read_query  # noqa: E402
from bnnmilp.verification.robustness import vnnlib as vq  # noqa: E402
from tests.onnx_models import traffic_sign_bnn  # noqa: E402


def make_instance(tmp: Path, arch: str, seed: int, image: int, eps: float) -> tuple[Path, Path, int]:
    import onnxruntime as ort

    side = int(arch)
    model = tmp / f"ts{arch}_{seed}.onnx"
    if not model.exists():
        traffic_sign_bnn(model, arch, seed)
    x = np.random.default_rng([seed, image]).uniform(0, 255, (1, side, side, 3)).astype(np.float32)
    y = int(ort.InferenceSession(str(model)).run(None, {"x": x})[0].argmax())
    lo, hi = np.clip(x - eps, 0, 255).ravel(), np.clip(x + eps, 0, 255).ravel()
    lines = [f"(declare-const X_{i} Real)" for i in range(lo.size)] + [f"(declare-const Y_{j} Real)" for j in range(43)]
    for i in range(lo.size):
        lines += [f"(assert (>= X_{i} {float(lo[i])!r}))", f"(assert (<= X_{i} {float(hi[i])!r}))"]
    lines.append("(assert (or " + " ".join(f"(and (>= Y_{j} Y_{y}))" for j in range(43) if j != y) + "))")
    query = tmp / f"ts{arch}_{seed}_{image}_eps{eps:g}.vnnlib"
    query.write_text("\n".join(lines) + "\n")
    return model, query, y


def run_bnnmilp(model: Path, query: Path, timeout: float, cache: Path) -> dict:
    """The chapter-5 process, its model cache in ``cache`` (the run's own: a model's first query imports it)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "from bnnmilp.cli.vnnlib import run; run()", "verify", str(query),
                        "--network", f"N={model}", "--timeout", str(timeout)], capture_output=True, text=True,
                       check=False, timeout=timeout * 3 + 60, env={**os.environ, "BNNMILP_CACHE_DIR": str(cache)})
    answer = r.stdout.splitlines()[0] if r.stdout else "error"
    return {"answer": answer, "time_s": round(time.perf_counter() - t0, 3), "note": r.stderr.strip()[-200:]}


def run_milp(model: Path, query: Path, timeout: float) -> dict:
    """The same MILP without the falsifier and the repairs: what HiGHS alone makes of the query."""
    from bnnmilp.formulations.registry import get
    from bnnmilp.milp.backends import highs
    from bnnmilp.milp.backends.base import SolveOptions

    t0 = time.perf_counter()
    q = read_query(query, network="N")
    p = vq.problem(q, vq.model_for(model, False, None))
    m = get("linear_query").build(vq.linear_query(p))
    sol = highs.solve_or_stop(m, SolveOptions(time_limit=max(timeout - (time.perf_counter() - t0), 1.0)))
    answer = "unknown"
    if sol.status == "infeasible" or (sol.status == "optimal" and -float(sol.objective) < -vq.UNSAT_MARGIN):
        answer = "unsat"
    elif sol.x is not None and vq.replay(p, vq.to_dtype(p, sol.x[m.cols("x")])) is not None:
        answer = "sat"
    elif sol.status == "time_limit":
        answer = "timed-out"
    return {"answer": answer, "time_s": round(time.perf_counter() - t0, 3), "note": sol.status}


def run_random(model: Path, query: Path, points: int = 2000) -> dict:
    t0 = time.perf_counter()
    q = read_query(query, network="N")
    p = vq.problem(q, vq.model_for(model, False, None))
    rng = np.random.default_rng(0)
    n = p.lo.size
    pts = np.vstack([(p.lo + p.hi) / 2, np.where(rng.random((points // 2, n)) < 0.5, p.lo, p.hi),
                     p.lo + rng.random((points // 2, n)) * (p.hi - p.lo)])
    for chunk in np.array_split(pts, max(1, len(pts) // 64)):
        X = np.vstack([vq.to_dtype(p, x) for x in chunk])
        for i in np.nonzero(vq.screen(p, X, vq.outputs_float(p, X)))[0]:
            if vq.replay(p, X[i]) is not None:
                return {"answer": "sat", "time_s": round(time.perf_counter() - t0, 3), "note": ""}
    return {"answer": "unknown", "time_s": round(time.perf_counter() - t0, 3), "note": f"{points} points"}


def table(rows: list[dict], methods: list[str]) -> list[str]:
    out = ["| shape | eps | instances | " + " | ".join(f"{m}: answered (sat/unsat), median s" for m in methods) + " |",
           "|---|---|---|" + "---|" * len(methods)]
    keys = sorted({(r["arch"], r["eps"]) for r in rows}, key=lambda k: (int(k[0]), k[1]))
    for arch, eps in keys:
        sel = [r for r in rows if r["arch"] == arch and r["eps"] == eps]
        cells = []
        for m in methods:
            ans = [r[m]["answer"] for r in sel]
            sat, unsat = ans.count("sat"), ans.count("unsat")
            med = float(np.median([r[m]["time_s"] for r in sel]))
            cells.append(f"{sat + unsat} ({sat}/{unsat}), {med:.2f}")
        out.append(f"| {arch}x{arch}x3 | {eps:g} | {len(sel)} | " + " | ".join(cells) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", nargs="+", default=["30", "48", "64"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--eps", type=float, nargs="+", default=[1, 3, 5, 10, 15])
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--markdown", action="store_true", help="only rewrite the .md from the stored .json")
    args = ap.parse_args()
    if args.markdown:
        print(write_markdown(json.loads((RESULTS / "vnnlib_queries.json").read_text())))
        return
    command = "python benchmarks/vnnlib_queries.py " + shlex.join(sys.argv[1:])
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t_import = {}
        for arch in args.archs:
            for seed in range(args.seeds):
                for image in range(args.images):
                    for eps in args.eps:
                        model, query, label = make_instance(tmp, arch, seed, image, eps)
                        cold = (arch, seed) not in t_import
                        if cold:  # the import alone, in this process, past any cache
                            os.environ["BNNMILP_CACHE"] = "0"
                            t0 = time.perf_counter()
                            vq.model_for(model, False, None)
                            t_import[(arch, seed)] = round(time.perf_counter() - t0, 2)
                            del os.environ["BNNMILP_CACHE"]
                        row = {"arch": arch, "seed": seed, "image": image, "eps": eps, "label": label, "cold": cold,
                               "bnnmilp": run_bnnmilp(model, query, args.timeout, tmp / "cache"),
                               "milp": run_milp(model, query, args.timeout), "random": run_random(model, query)}
                        answers = {row[m]["answer"] for m in ("bnnmilp", "milp", "random")}
                        row["contradiction"] = {"sat", "unsat"} <= answers
                        rows.append(row)
                        print(json.dumps({k: row[k] if k not in ("bnnmilp", "milp", "random") else row[k]["answer"]
                                          + f" {row[k]['time_s']}s" for k in row}), flush=True)
    result = {"command": command, "machine": platform.platform(), "python": platform.python_version(),
              "timeout_s": args.timeout, "import_s": {f"{a}/{s}": t for (a, s), t in t_import.items()},
              "contradictions": sum(r["contradiction"] for r in rows), "rows": rows}
    (RESULTS / "vnnlib_queries.json").write_text(json.dumps(result, indent=1) + "\n")
    print(write_markdown(result))


def _cold_warm(rows: list[dict]) -> str:
    """bnnmilp's median seconds over each model's first query (import included) and over the others."""
    if not any("cold" in r for r in rows):
        return ""
    cold = [r["bnnmilp"]["time_s"] for r in rows if r.get("cold")]
    warm = [r["bnnmilp"]["time_s"] for r in rows if not r.get("cold")]
    return (f" bnnmilp, median s: {float(np.median(cold)):.2f} over {len(cold)} first queries of a model, "
            f"{float(np.median(warm)):.2f} over the {len(warm)} others, {float(np.median(cold + warm)):.2f} "
            "over all.") if cold and warm else ""


def write_markdown(result: dict) -> str:
    """benchmarks/results/vnnlib_queries.md from the run's JSON; the table is a section the docs include."""
    md = [f"# VNN-LIB queries on traffic-sign-shaped conv BNNs\n\n`{result['command']}` ({result['machine']}, "
          f"--timeout {result['timeout_s']:g} s per query).\n",
          "bnnmilp: the `bnnmilp-vnnlib` process, with its model cache in a folder of this run (a model's first "
          "query imports it, the later ones load it); milp: HiGHS on the same MILP alone, after the import; random: "
          "2,000 points of the box replayed exactly.\n", "<!-- --8<-- [start:table] -->",
          *table(result["rows"], ["bnnmilp", "milp", "random"]), "<!-- --8<-- [end:table] -->", "",
          f"Contradictions between methods: {result['contradictions']}. Import (in process, s): "
          + ", ".join(f"{k}: {v}" for k, v in result["import_s"].items()) + "." + _cold_warm(result["rows"])]
    text = "\n".join(md) + "\n"
    (RESULTS / "vnnlib_queries.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
