"""bnnmilp networks as ONNX models that onnxruntime (and other verifiers) run.

Layer l: a = MatMul(u, W^T) in doubles, u' = Cast(GreaterOrEqual(a, lambda), double): exactly bnnmilp's step
u'_k = [W_k u >= lambda_k]. Output ``bits`` (the last layer's u, doubles 0/1) for step outputs; ``scores``
(a - lambda) and ``class`` (ArgMax) for argmax outputs. Weights stay doubles, so where the sums are exact
(binary or ternary weights, integer inputs) onnxruntime computes exactly what bnnmilp's exact forward pass
decides; elsewhere only where a sum rounds across a threshold (bnnmilp's own forward pass is exact).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnnmilp.io.yamlio import atomic_write
from bnnmilp.network import Network
from bnnmilp.network.sparse import dense

OPSET = 17


def to_onnx(net: Network, output: str, name: str = "bnnmilp"):
    """The ONNX ModelProto of a network (``output``: bits | argmax)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    cur = "x"
    L = len(net.weights)
    for l, (W, lam) in enumerate(zip(net.weights, net.thresholds, strict=True)):
        wt = numpy_helper.from_array(np.ascontiguousarray(dense(W).T, dtype=np.float64), f"W{l}_T")
        lt = numpy_helper.from_array(np.asarray(lam, np.float64), f"lambda{l}")
        inits += [wt, lt]
        nodes.append(helper.make_node("MatMul", [cur, wt.name], [f"a{l}"], name=f"layer{l}_matmul"))
        if l == L - 1 and output == "argmax":
            nodes.append(helper.make_node("Sub", [f"a{l}", lt.name], ["scores"], name="scores"))
            nodes.append(helper.make_node("ArgMax", ["scores"], ["class"], name="argmax", axis=1, keepdims=0))
            break
        nodes.append(helper.make_node("GreaterOrEqual", [f"a{l}", lt.name], [f"s{l}"], name=f"layer{l}_step"))
        nxt = "bits" if l == L - 1 else f"u{l}"
        nodes.append(helper.make_node("Cast", [f"s{l}"], [nxt], name=f"layer{l}_cast", to=TensorProto.DOUBLE))
        cur = nxt
    d0, dL = net.layers[0], net.layers[-1]
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", d0])
    if output == "argmax":
        outs = [helper.make_tensor_value_info("class", TensorProto.INT64, ["N"]),
                helper.make_tensor_value_info("scores", TensorProto.DOUBLE, ["N", dL])]
    else:
        outs = [helper.make_tensor_value_info("bits", TensorProto.DOUBLE, ["N", dL])]
    graph = helper.make_graph(nodes, name, [x], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bnnmilp")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_onnx(net: Network, output: str, path: str | Path) -> Path:
    """Write the network as an ONNX file, atomically (``bnnmilp.export_onnx``).

    Parameters
    ----------
    net : Network
    output : {"bits", "argmax"}
        The output rule: step bits, or ArgMax over the scores (which are a second output).
    path : str or Path

    Returns
    -------
    Path
        MatMul, GreaterOrEqual and Cast in doubles: onnxruntime predicts exactly what bnnmilp predicts.
    """
    data = to_onnx(net, output).SerializeToString()
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
