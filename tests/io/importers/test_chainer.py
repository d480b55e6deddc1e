"""Sakai's Chainer BNNs (MIT, tests/data/sakai-bnn) imported exactly: float32 reference, known solutions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.errors import ModelFileError
from bnnmilp.io.importers.chainer import load_chainer_npz
from bnnmilp.io.runs import load_weights
from bnnmilp.network import Network

SAKAI = Path(__file__).resolve().parents[3] / "tests" / "data" / "sakai-bnn"
SETS = ["mnist", "mnist_rot", "mnist_back_image"]


def images(ds: str) -> tuple[np.ndarray, list[str]]:
    """The shipped test images as feature vectors (rot and back_image PNGs are stored transposed)."""
    from PIL import Image

    files = sorted(SAKAI.glob(f"images/bnn_{ds}_[0-9]*.png"))
    rows = [np.array(Image.open(f)) for f in files]
    X = np.array([(a if ds == "mnist" else a.T).reshape(-1) for a in rows], dtype=np.float64)
    return X, [f.name for f in files]


def reference_logits(ds: str, X: np.ndarray) -> np.ndarray:
    """Chainer's forward pass in float32, written from the network's definition (not from the importer)."""
    d, f = np.load(SAKAI / f"models/{ds}.npz"), np.float32

    def bn(v, p):
        return d[f"{p}/gamma"] * (v - d[f"{p}/avg_mean"]) / np.sqrt(d[f"{p}/avg_var"] + f(2e-5)) + d[f"{p}/beta"]

    z = np.where(bn(X.astype(f) / f(255), "input_bn") >= 0, f(1), f(-1))
    for i in range(4):
        z = np.where(bn(z @ d[f"blocks/{i}/lin/W"].T + d[f"blocks/{i}/lin/b"], f"blocks/{i}/bn") >= 0, f(1), f(-1))
    return z @ d["output_lin/W"].T + d["output_lin/b"]


@pytest.mark.parametrize("ds", SETS)
def test_imported_networks_predict_what_chainer_predicts(ds):
    net, rep = load_chainer_npz(SAKAI / f"models/{ds}.npz")
    assert rep.layers == [784, 784, 200, 100, 100, 100, 10]
    X, names = images(ds)
    assert len(names) == 19
    rng = np.random.default_rng(1)
    near = np.clip(X + rng.integers(-3, 4, size=X.shape), 0, 255)
    far = np.clip(X + rng.integers(-40, 41, size=X.shape), 0, 255)
    for Z in (X, near, far):
        logits = reference_logits(ds, Z)
        top = np.sort(logits, axis=1)
        assert np.all(top[:, -1] > top[:, -2])  # no float32 ties here: argmax is the class
        assert net.argmax_predictions(Z).tolist() == np.argmax(logits, axis=1).tolist()


@pytest.mark.parametrize(("sol", "ds", "index", "label", "norm", "eps"), [
    ("bnn_mnist_back_image_32_label3_adversarial_norm_inf.sol", "mnist_back_image", 32, 3, "inf", 2),
    ("bnn_mnist_rot_8_label1_adversarial_norm_1.sol", "mnist_rot", 8, 1, "1", 3)])
def test_known_solutions_replay_bit_for_bit(sol, ds, index, label, norm, eps):
    """Sakai's MILP solutions give the input bits: every hidden bit they record follows from them in the
    imported network, some class k != y then scores at least y's, and the flipped pixels fit the budget."""
    vals: dict[str, dict[int, float]] = {}
    for line in (SAKAI / "solutions" / sol).read_text().splitlines():
        m = re.match(r"(\w+)\((\d+)\)\s+(\S+)", line)
        if m:
            vals.setdefault(m.group(1), {})[int(m.group(2))] = float(m.group(3))
    net, _ = load_chainer_npz(SAKAI / f"models/{ds}.npz")
    u0 = np.array([vals["input_bin"][j] for j in range(784)])
    bits = Network(net.weights[1:], net.thresholds[1:]).forward(u0[None, :])
    for l, name in enumerate(["block0", "block1", "block2", "block3"]):
        assert bits[l][0].tolist() == [vals[name][j] for j in range(bits[l].shape[1])]
    scores = net.weights[-1] @ bits[-2][0].astype(np.float64) - net.thresholds[-1]
    assert any(scores[k] >= scores[label] for k in range(10) if k != label)
    X, names = images(ds)
    x = X[names.index(f"bnn_{ds}_{index}_label{label}.png")]
    assert net.argmax_predictions(x[None, :]).tolist() == [label]
    flips = np.flatnonzero(net.forward(x[None, :])[0][0] != u0)
    W0, t0 = net.weights[0], net.thresholds[0]
    costs = [min(abs(v - x[j]) for v in range(256) if (W0[j, j] * v >= t0[j]) == bool(u0[j])) for j in flips]
    assert (max(costs) if norm == "inf" else sum(costs)) == eps


def test_import_then_predict_and_verify_from_the_shell(tmp_path):
    net_path = tmp_path / "net.npz"
    r = CliRunner().invoke(main, ["import", str(SAKAI / "models/mnist.npz"), "-o", str(net_path), "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["layers"] == [784, 784, 200, 100, 100, 100, 10]
    wf = load_weights(net_path)
    X, _ = images("mnist")
    pred = np.argmax(reference_logits("mnist", X), axis=1)
    np.savez(tmp_path / "imgs.npz", X=X, y=pred)
    r = CliRunner().invoke(main, ["predict", str(net_path), str(tmp_path / "imgs.npz"), "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["argmax_predictions"] == pred.tolist()
    r = CliRunner().invoke(main, ["verify", str(net_path), str(tmp_path / "imgs.npz"), "--json"])
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and rep["accuracy"] == 1.0 and rep["ok"] is True
    assert [c["name"] for c in rep["checks"]] == ["domain", "claims"]
    assert wf.network.layers == [784, 784, 200, 100, 100, 100, 10]


def test_bad_chainer_files_name_the_array(tmp_path):
    d = dict(np.load(SAKAI / "models/mnist.npz"))
    del d["blocks/2/bn/gamma"]
    np.savez(tmp_path / "m.npz", **d)
    with pytest.raises(ModelFileError) as info:
        load_chainer_npz(tmp_path / "m.npz")
    assert "blocks/2/bn/gamma: missing array" in str(info.value)
    d = dict(np.load(SAKAI / "models/mnist.npz"))
    d["blocks/0/lin/W"] = d["blocks/0/lin/W"] * 0.5
    np.savez(tmp_path / "m.npz", **d)
    r = CliRunner().invoke(main, ["import", str(tmp_path / "m.npz"), "-o", str(tmp_path / "o.npz")])
    assert r.exit_code == 2 and "blocks/0/lin/W: expected weights in {-1, +1}" in r.stderr
    assert not (tmp_path / "o.npz").exists()


def test_float32_disagreements_are_found_over_every_value():
    """The importer compares its thresholds with Chainer's float32 batch norm on every pixel value and every
    reachable hidden sum: none differ for Sakai's networks; a threshold moved by one is found at once."""
    from bnnmilp.io.importers.chainer import float32_disagreements

    net, rep = load_chainer_npz(SAKAI / "models/mnist_rot.npz")
    assert rep.float32_disagreements == []
    with np.load(SAKAI / "models/mnist_rot.npz") as z:
        arr = {k: z[k] for k in z.files}
    moved = Network([w.copy() if isinstance(w, np.ndarray) else w for w in net.weights],
                    [t.copy() for t in net.thresholds])
    moved.thresholds[0][7] += 1  # one pixel value now decides the other way
    moved.thresholds[2][3] += 1  # one hidden sum (layer 3, unit 3) too, if it is reachable
    found = float32_disagreements(arr, moved, [0, 1, 2, 3])
    w = net.weights[0][7, 7]
    pixel = int(net.thresholds[0][7] * w)  # the value at the old threshold: exact said 1, now 0
    assert (1, 7, pixel) in found and [f for f in found if f[:2] == (1, 7)] == [(1, 7, pixel)]
    assert [f[:2] for f in found if f[0] == 3] == [(3, 3)]
