"""Time budgets: every command with --time-limit, on an input made to exceed it, timed from outside.

    python benchmarks/budgets.py

Each case runs the command line as a user would (a fresh process; the wall clock includes Python's start,
reading the inputs, every stage and writing the results) and compares the wall time with the limit. A
budget holds when the wall time is at most the limit plus 5% plus 2 s. verify's --time-limit is per query:
its cases ask one query. Writes benchmarks/results/budgets.json and budgets.md.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLES, CONFIGS = ROOT / "samples", ROOT / "configs"
sys.path.insert(0, str(ROOT))

from tests.onnx_models import two_conv_bnn  # noqa: E402


def slack(limit: float) -> float:
    return 0.05 * limit + 2.0


def inputs(tmp: Path) -> dict[str, str]:
    """The inputs the cases need, written into tmp: MNIST-shaped data, many rows, an ensemble, MILP files."""
    rng = np.random.default_rng(0)
    X = (rng.random((100, 784)) < 0.2) * rng.integers(0, 256, (100, 784))
    np.savez(tmp / "mnist_like.npz", X=X.astype(np.int64), y=np.arange(100) % 10)
    (tmp / "mnist_net.yaml").write_text(yaml.safe_dump({"network": {"layers": [784, 16, 10], "output": "argmax"}}))
    (tmp / "ovo_mnist.yaml").write_text(yaml.safe_dump({"network": {"layers": [784, 16, 10], "weights": "ternary"}}))
    X2 = rng.integers(-8, 9, (200_001, 2)) / 8
    np.savez(tmp / "rows.npz", X=X2, y=(X2[:, 0] * X2[:, 1] > 0).astype(np.int64))
    (tmp / "narrow.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 2, 10]},
                                                     "training": {"epsilon": 0.015625}}))
    test = yaml.safe_load((SAMPLES / "digits_test.yaml").read_text())
    (tmp / "one.yaml").write_text(yaml.safe_dump({"features": test["features"][:1], "labels": test["labels"][:1]}))
    run([sys.executable, "-m", "bnnmilp", "train", str(CONFIGS / "digits_argmax.yaml"),
         str(SAMPLES / "digits_k10.yaml"), "-o", str(tmp / "argmax"), "--time-limit", "20"])
    (tmp / "ovo.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 16, 10]},
                                                  "training": {"epsilon": 0.015625}}))
    run([sys.executable, "-m", "bnnmilp", "train", str(tmp / "ovo.yaml"), str(SAMPLES / "digits_k10.yaml"), "-o",
         str(tmp / "ens"), "--ensemble", "ovo", "--time-limit", "3", "--workers", "2"])
    run([sys.executable, "-m", "bnnmilp", "encode", str(CONFIGS / "digits_milp.yaml"), str(SAMPLES / "digits_k5.yaml"),
         "-o", str(tmp / "digits_k5.mps"), "--writer", "highs"])
    conv_bnn(tmp, rng)
    two_conv_bnn(tmp / "big_conv.onnx", channels=32, side=64)
    run([sys.executable, "-m", "bnnmilp", "import", str(tmp / "conv.onnx"), "-o", str(tmp / "conv.npz")])
    return {"tmp": str(tmp)}


def conv_bnn(tmp: Path, rng: np.random.Generator) -> None:
    """A Larq-style conv BNN on real-valued NHWC images (16x16x3, pixels 0..255, batch size fixed at 1, as
    VNN-COMP's traffic-sign models): Transpose, Conv (+-1 kernels), batch norm as Mul/Add, Sign(Sign(x) + 0.1),
    a binary Conv, Reshape, a binary MatMul to 10 classes. Random weights; four random images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def t(name: str, a) -> object:
        return numpy_helper.from_array(np.asarray(a, np.float32), name)

    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xt", "k1"], ["c1"], kernel_shape=[3, 3])]
    inits = [t("k1", rng.choice([-1, 1], (8, 3, 3, 3))), t("s1", rng.uniform(0.5, 2, (1, 8, 1, 1))),
             t("b1", rng.normal(0, 50, (1, 8, 1, 1))), t("p", 0.1), t("k2", rng.choice([-1, 1], (16, 8, 2, 2))),
             t("s2", rng.uniform(0.5, 2, (1, 16, 1, 1))), t("b2", rng.normal(0, 2, (1, 16, 1, 1))),
             numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
             t("wd", rng.choice([-1, 1], (16 * 13 * 13, 10)))]
    for i, src in ((1, "c1"), (2, "c2")):
        nodes += [helper.make_node("Mul", [src, f"s{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"],
                                                                                         [f"a{i}"]),
                  helper.make_node("Sign", [f"a{i}"], [f"g{i}"]), helper.make_node("Add", [f"g{i}", "p"], [f"h{i}"]),
                  helper.make_node("Sign", [f"h{i}"], [f"z{i}"])]
        if i == 1:
            nodes.append(helper.make_node("Conv", ["z1", "k2"], ["c2"], kernel_shape=[2, 2]))
    nodes += [helper.make_node("Reshape", ["z2", "shape"], ["f"]), helper.make_node("MatMul", ["f", "wd"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 3])
    graph = helper.make_graph(nodes, "conv_bnn", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp / "conv.onnx"))
    X = rng.integers(0, 256, (4, 16 * 16 * 3)).astype(np.float64)
    (tmp / "images.yaml").write_text(yaml.safe_dump({"features": X.tolist(), "labels": [0, 0, 0, 0]}))


def run(args: list[str]) -> tuple[int, float]:
    t0 = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, check=False)
    return p.returncode, time.perf_counter() - t0


def cases(tmp: Path) -> list[tuple[str, list[str], float]]:
    b = [sys.executable, "-m", "bnnmilp"]
    return [
        ("train: 784 inputs, 100 images (STE grid)", [*b, "train", str(tmp / "mnist_net.yaml"),
                                                      str(tmp / "mnist_like.npz"), "-o", str(tmp / "r1")], 10.0),
        ("train: 200,001 rows of 2 features", [*b, "train", str(CONFIGS / "xor.yaml"), str(tmp / "rows.npz"),
                                                "-o", str(tmp / "r2")], 20.0),
        ("train: digits k=10, the paper's MILP", [*b, "train", str(CONFIGS / "digits_milp.yaml"),
                                                  str(SAMPLES / "digits_k10.yaml"), "-o", str(tmp / "r3")], 10.0),
        ("train: ovo ensemble, 784 inputs, 45 members on 2 workers",
         [*b, "train", str(tmp / "ovo_mnist.yaml"), str(tmp / "mnist_like.npz"), "-o", str(tmp / "r4"), "--ensemble",
          "ovo", "--workers", "2"], 10.0),
        ("certify: digits k=5 training MILP", [*b, "certify", str(tmp / "digits_k5.mps"), "-o",
                                               str(tmp / "p.json")], 10.0),
        ("grad: digits k=5 training MILP", [*b, "grad", str(tmp / "digits_k5.mps")], 10.0),
        ("bound: digits [64, 2, 10], k=10", [*b, "bound", str(tmp / "narrow.yaml"), str(SAMPLES / "digits_k10.yaml"),
                                             "-o", str(tmp / "b.json")], 10.0),
        ("import: conv BNN, 3x64x64 real inputs, 32 channels", [*b, "import", str(tmp / "big_conv.onnx"), "-o",
                                                                str(tmp / "big_conv.npz")], 5.0),
        ("encode: 784 inputs, 100 images, LP", [*b, "encode", str(tmp / "mnist_net.yaml"), str(tmp / "mnist_like.npz"),
                                                "-o", str(tmp / "m.lp")], 2.0),
        ("verify --robust: argmax net, eps 4, one query", [*b, "verify", str(tmp / "argmax"), str(tmp / "one.yaml"),
                                                           "--robust", "--eps", "4"], 5.0),
        ("verify --robust: ovo ensemble, eps 2, one query", [*b, "verify", str(tmp / "ens"), str(tmp / "one.yaml"),
                                                             "--robust", "--eps", "2"], 5.0),
        ("verify --robust: conv BNN on real inputs, eps 0.2, 4 queries (per query)",
         [*b, "verify", str(tmp / "conv.npz"), str(tmp / "images.yaml"), "--robust", "--eps", "0.2", "--bounds",
          "0:255"], 10.0),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bnnmilp_budgets_") as d:
        tmp = Path(d)
        inputs(tmp)
        rows = []
        for name, args, limit in cases(tmp):
            code, wall = run([*args, "--time-limit", f"{limit:g}"])
            budget = limit * (4 if "4 queries" in name else 1)
            rows.append({"command": name, "limit_s": limit, "budget_s": budget, "wall_s": round(wall, 2),
                         "overrun_s": round(wall - budget, 2), "ratio": round(wall / budget, 3), "exit": code,
                         "holds": wall <= budget + slack(budget)})
            print(rows[-1], flush=True)
    meta = {"machine": platform.machine(), "python": platform.python_version(),
            "command": "python benchmarks/budgets.py", "rule": "wall <= budget + 5% + 2 s"}
    out = ROOT / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "budgets.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"{meta['machine']}, Python {meta['python']}; `{meta['command']}`. Budget: the limit (verify's "
             "is per query); holds: wall <= budget + 5% + 2 s. "
             "Ratio: wall / budget.", "",
             "| command | --time-limit (s) | budget (s) | wall (s) | overrun (s) | ratio | exit | holds |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['command']} | {r['limit_s']:g} | {r['budget_s']:g} | {r['wall_s']:.2f} | {r['overrun_s']:+.2f} "
              f"| {r['ratio']:.2f} | {r['exit']} | {'yes' if r['holds'] else 'NO'} |" for r in rows]
    (out / "budgets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
