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


TRAFFIC_SIGNS = {  # the three VNN-COMP 2023 traffic-sign BNN shapes: (side, [(filters, kernel, pool)], dense)
    "30": (30, [(16, 3, False), (32, 2, False)], []),
    "48": (48, [(32, 5, True), (64, 5, True), (64, 3, True)], [256]),
    "64": (64, [(32, 5, True), (64, 5, True), (64, 3, True)], [256]),
}


def traffic_sign_bnn(path: Path, arch: str, seed: int = 0, classes: int = 43) -> None:
    """A Larq-style BNN of one of the traffic-sign shapes with random weights, as tf2onnx writes them: NHWC float
    input 0..255, per block Conv (+-1 kernels) -> (MaxPool 2) -> BatchNormalization (positive scales) ->
    Sign(Sign(x) + 0.1); flattened in NHWC order; Dense (+-1) -> BatchNormalization -> Sign(Sign(x) + 0.1);
    Dense to ``classes`` logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    side, blocks, dense = TRAFFIC_SIGNS[arch]
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def t(name: str, a, dtype=np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(a, dtype), name))
        return name

    def bn_sign(src: str, tag: str, ch: int, fan_in: int) -> str:
        spread = np.sqrt(fan_in) * (255.0 if tag == "b0" else 1.0)
        nodes.append(helper.make_node(
            "BatchNormalization", [src, t(f"{tag}_g", rng.uniform(0.5, 2, ch)), t(f"{tag}_b", rng.normal(0, 0.2, ch)),
                                   t(f"{tag}_m", rng.normal(0, 0.3 * spread, ch)),
                                   t(f"{tag}_v", rng.uniform(0.5, 2, ch) * spread ** 2)], [f"{tag}_n"], epsilon=1e-3))
        nodes.append(helper.make_node("Sign", [f"{tag}_n"], [f"{tag}_s1"]))
        nodes.append(helper.make_node("Add", [f"{tag}_s1", t(f"{tag}_c", 0.1)], [f"{tag}_s2"]))
        nodes.append(helper.make_node("Sign", [f"{tag}_s2"], [f"{tag}_out"]))
        return f"{tag}_out"

    nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
    src, ch, h = "x_nchw", 3, side
    for i, (filters, k, pool) in enumerate(blocks):
        nodes.append(helper.make_node("Conv", [src, t(f"k{i}", rng.choice([-1.0, 1.0], (filters, ch, k, k)))],
                                      [f"c{i}"], kernel_shape=[k, k]))
        h, last = h - k + 1, f"c{i}"
        if pool:
            nodes.append(helper.make_node("MaxPool", [last], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            h, last = h // 2, f"p{i}"
        src, ch = bn_sign(last, f"b{i}", filters, ch * k * k), filters
    nodes.append(helper.make_node("Transpose", [src], ["nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Reshape", ["nhwc", t("flat", [1, -1], np.int64)], ["f"]))
    src, width = "f", ch * h * h
    for j, units in enumerate([*dense, classes]):
        nodes.append(helper.make_node("MatMul", [src, t(f"W{j}", rng.choice([-1.0, 1.0], (width, units)))],
                                      [f"d{j}"]))
        src, width = f"d{j}", units
        if j < len(dense):
            src = bn_sign(src, f"bd{j}", units, width)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, side, side, 3])
    y = helper.make_tensor_value_info(src, TensorProto.FLOAT, [1, classes])
    graph = helper.make_graph(nodes, f"traffic_signs_{arch}", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
