"""The VNN-COMP 2023 traffic-sign BNN shapes (Larq-style, NHWC real inputs, MaxPool before the batch norm and
Sign(Sign(x) + c)), imported exactly: outputs equal onnxruntime's on random images, the pools moved after the
signs (pre-pool step layers, then OR layers)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from bnnmilp.io.importers.onnx import load_onnx_affine
from tests.onnx_models import traffic_sign_bnn

LAYERS = {"30": [2700, 12544, 23328], "48": [6912, 61952, 15488, 20736, 5184, 3136, 576, 256]}


@pytest.mark.parametrize("arch", ["30", "48"])
def test_outputs_equal_onnxruntime_on_random_images(tmp_path, arch: str) -> None:
    import onnxruntime as ort

    path = tmp_path / "m.onnx"
    traffic_sign_bnn(path, arch, seed=3)
    m = load_onnx_affine(path)
    assert m.hidden.layers == LAYERS[arch]
    side = int(arch)
    X = np.random.default_rng(0).uniform(0, 255, (12, side, side, 3)).astype(np.float32)
    sess = ort.InferenceSession(str(path))
    Y = np.vstack(
        [sess.run(None, {"x": x[None]})[0] for x in X])
    bits = m.hidden.forward(X.reshape(len(X), -1).astype(np.float64))[-1]
    for b, y in zip(bits, Y, strict=True):
        exact = m.exact([Fraction(int(v)) for v in b])
        assert [float(v) for v in exact] == y.tolist()  # integer logits: float32 is exact on them
