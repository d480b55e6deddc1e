"""ONNX models made by code, for tests and benchmarks that need a network of a given shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def two_conv_bnn(path: Path, channels: int, side: int, seed: int = 0) -> None:
    """Two +-1 3x3 convolutions of ``channels`` channels with signs on a 3 x side x side real-valued input, then a
    dense layer to 10 classes. Importing takes about 4 s at 16 channels and side 32, a minute at 32 and 64."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def t(name: str, a) -> object:
        return numpy_helper.from_array(np.asarray(a, np.float32), name)

    c, out = channels, side - 4
    nodes = [helper.make_node("Conv", ["x", "k1"], ["c1"], kernel_shape=[3, 3]),
             helper.make_node("Sign", ["c1"], ["s1"]),
             helper.make_node("Conv", ["s1", "k2"], ["c2"], kernel_shape=[3, 3]),
             helper.make_node("Add", ["c2", "b2"], ["d2"]), helper.make_node("Sign", ["d2"], ["s2"]),
             helper.make_node("Reshape", ["s2", "shape"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
    inits = [t("k1", rng.choice([-1, 1], (c, 3, 3, 3))), t("k2", rng.choice([-1, 1], (c, c, 3, 3))),
             t("b2", rng.choice([-0.5, 0.5], (1, c, 1, 1))),
             numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
             t("W", rng.choice([-1, 1], (c * out * out, 10)))]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])
    graph = helper.make_graph(nodes, "conv", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
