"""verify --robust --box FILE: per-feature input bounds (YAML or NPZ), checked like every input file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from tests.io.importers.test_chainer import SAKAI, images


@pytest.fixture(scope="module")
def rot8(tmp_path_factory):
    d = tmp_path_factory.mktemp("box")
    r = CliRunner().invoke(main, ["import", str(SAKAI / "models/mnist_rot.npz"), "-o", str(d / "n.npz")])
    assert r.exit_code == 0
    X, names = images("mnist_rot")
    x = X[names.index("bnn_mnist_rot_8_label1.png")]
    np.savez(d / "x.npz", X=x[None, :], y=np.array([1]))
    return d, x


def run(d, *extra):
    return CliRunner().invoke(main, ["verify", str(d / "n.npz"), str(d / "x.npz"), "--robust", "--eps", "1",
                                     "--domain", "integer", "--bounds", "0:255", "--json", *extra])


def test_a_box_that_pins_the_changed_pixels_makes_the_answer_robust(rot8):
    d, x = rot8
    r = run(d)
    (res,) = json.loads(r.stdout)["results"]
    assert r.exit_code == 1 and res["answer"] == "not_robust"
    moved = np.flatnonzero(np.array(res["counterexample"]) != x)
    # without the pixels the counterexample moved, is there another one? pin every pixel: no flip is possible
    (d / "pin.yaml").write_text(yaml.safe_dump({"lower": x.tolist(), "upper": x.tolist()}))
    r = run(d, "--box", str(d / "pin.yaml"))
    (res,) = json.loads(r.stdout)["results"]
    assert r.exit_code == 0 and res["answer"] == "robust" and json.loads(r.stdout)["options"]["box"] == str(
        d / "pin.yaml")
    # a box that frees only those pixels (as NPZ) finds the same attack again
    lo, hi = x.copy(), x.copy()
    lo[moved], hi[moved] = 0, 255
    np.savez(d / "free.npz", lower=lo, upper=hi)
    r = run(d, "--box", str(d / "free.npz"))
    (res,) = json.loads(r.stdout)["results"]
    assert res["answer"] == "not_robust" and np.all(np.array(res["counterexample"])[lo == hi] == x[lo == hi])


@pytest.mark.parametrize(("doc", "key", "expected"), [
    ({"lower": [0.0] * 3, "upper": [1.0] * 3}, "lower", "expected 784 numbers (one per input feature) or one number"),
    ({"lower": 0, "upper": "x"}, "upper", "expected numbers"),
    ({"lower": 5, "upper": 4}, "lower[0]", "expected lower <= upper, got 5.0 > 4.0"),
    ({"lower": 0}, None, "expected exactly the keys lower and upper"),
])
def test_bad_boxes_name_the_key(rot8, doc, key, expected):
    d, _ = rot8
    p = d / "bad.yaml"
    p.write_text(yaml.safe_dump(doc))
    r = run(d, "--box", str(p))
    where = f"{p}: {key}: " if key else f"{p}: "
    assert r.exit_code == 2 and r.output.strip().endswith(f"{where}{expected}"), r.output
