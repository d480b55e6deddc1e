"""ONNX import and export, checked against onnxruntime running the same files (an independent implementation
of ONNX's semantics) and against round trips that must be the identity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bnnmilp.cli import main  # noqa: E402
from bnnmilp.errors import ModelFileError  # noqa: E402
from bnnmilp.io.exporters.onnx import to_onnx  # noqa: E402
from bnnmilp.io.importers import import_model  # noqa: E402
from bnnmilp.io.importers.onnx import load_onnx  # noqa: E402
from bnnmilp.io.runs import load_weights  # noqa: E402
from bnnmilp.network import Network  # noqa: E402
from bnnmilp.network.sparse import Csr, dense  # noqa: E402
from tests.verification.robustness.test_robust import random_net  # noqa: E402

D = TensorProto.DOUBLE


def build(nodes, inits, in_shape, out_name="y", out_type=D, path=None, out_rank=2, dtype=np.float64):
    """A model from nodes and initialisers (float arrays stored as ``dtype``: float32 where onnxruntime has no
    double kernel, as Larq and PyTorch export)."""
    elem = D if dtype == np.float64 else TensorProto.FLOAT
    out = helper.make_tensor_value_info(out_name, out_type if out_type != D else elem,
                                        [f"d{i}" for i in range(out_rank)])
    arrays = [numpy_helper.from_array(np.asarray(v).astype(dtype) if np.asarray(v).dtype.kind == "f"
                                      else np.asarray(v), k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", elem, ["N", *in_shape])], [out],
                              arrays)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def run_ort(model, X, out=0):
    elem = model.graph.input[0].type.tensor_type.elem_type
    X = X.astype(np.float32 if elem == TensorProto.FLOAT else np.float64)
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": X})[out]


def ste_sign(inp, out, tag):
    """Larq's ste_sign as exported: Sign(Sign(x) + 0.1)."""
    return [helper.make_node("Sign", [inp], [f"{tag}_s1"]),
            helper.make_node("Add", [f"{tag}_s1", f"{tag}_c"], [f"{tag}_s2"]),
            helper.make_node("Sign", [f"{tag}_s2"], [out])], {f"{tag}_c": np.array(0.1)}


def larq_conv_model(rng, path=None):
    """A Larq-style conv BNN: real first conv, batch norm, ste_sign, binary conv whose latent weights are
    quantised in the graph, batch norm as Mul/Add, ste_sign, MaxPool on bits, Flatten, binary dense, Softmax."""
    K1 = rng.normal(size=(3, 1, 3, 3))
    latent = rng.normal(size=(4, 3, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "K1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["n1"], epsilon=1e-3)]
    inits = {"K1": K1, "g": rng.uniform(-1, 1, 3), "b": rng.normal(size=3), "m": rng.normal(size=3) * 0.1,
             "v": rng.uniform(0.5, 2, 3)}
    s, i = ste_sign("n1", "a1", "q1")
    nodes += s
    inits |= i
    s, i = ste_sign("latent", "K2", "qw")  # weights quantised inside the graph
    nodes += s
    inits |= i | {"latent": latent}
    nodes += [helper.make_node("Conv", ["a1", "K2"], ["c2"], pads=[0, 0, 0, 0], strides=[1, 1]),
              helper.make_node("Mul", ["c2", "scale"], ["c2s"]), helper.make_node("Add", ["c2s", "shift"], ["n2"])]
    inits |= {"scale": rng.choice([-0.5, 0.25, 1.0], size=(1, 4, 1, 1)), "shift": rng.integers(-3, 3, (1, 4, 1, 1))
              + 0.5}
    s, i = ste_sign("n2", "a2", "q2")
    nodes += s
    inits |= i
    nodes += [helper.make_node("MaxPool", ["a2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
              helper.make_node("Flatten", ["p2"], ["f"], axis=1),
              helper.make_node("MatMul", ["f", "Wd"], ["logits"]),
              helper.make_node("Add", ["logits", "bd"], ["z"]),
              helper.make_node("Softmax", ["z"], ["y"], axis=1)]
    inits |= {"Wd": rng.choice([-1.0, 1.0], size=(4 * 2 * 2, 5)), "bd": rng.integers(-2, 3, 5) + 0.25}
    return build(nodes, inits, [1, 6, 6], path=path, dtype=np.float32)


def test_larq_style_conv_bnn_predicts_what_onnxruntime_predicts(tmp_path):
    rng = np.random.default_rng(11)
    model = larq_conv_model(rng, tmp_path / "m.onnx")
    net, rep = load_onnx(tmp_path / "m.onnx")
    assert rep.output == "argmax" and rep.two_unit_signs == 0
    assert net.layers == [36, 108, 64, 16, 5]  # conv (3x6x6), conv (4x4x4), OR units (4x2x2), classes
    assert isinstance(net.weights[0], Csr) and isinstance(net.weights[2], Csr)  # convolutions and pooling sparse
    X = rng.normal(size=(300, 36))
    probs = run_ort(model, X.reshape(-1, 1, 6, 6))
    ours = net.argmax_predictions(X)
    assert np.array_equal(ours[ours >= 0], probs.argmax(axis=1)[ours >= 0])
    assert np.sum(ours >= 0) > 0 and np.unique(ours[ours >= 0]).size > 1  # a non-trivial check


def test_pytorch_style_plain_sign_keeps_sign_zero_exact():
    """torch.sign exports Sign with Sign(0) = 0; on integer inputs ties are frequent: two units per sign."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h1"], transB=1),
             helper.make_node("Sign", ["h1"], ["s1"]),
             helper.make_node("MatMul", ["s1", "W2"], ["h2"]),
             helper.make_node("Sign", ["h2"], ["s2"]),
             helper.make_node("Shape", ["s2"], ["sh"]),
             helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["s2", "shape"], ["s2r"]),
             helper.make_node("MatMul", ["s2r", "W3"], ["y"])]
    inits = {"W1": rng.choice([-1.0, 1.0], size=(6, 4)), "b1": rng.integers(-1, 2, 6).astype(float),
             "W2": rng.choice([-1.0, 0.0, 1.0], size=(6, 5)), "W3": rng.choice([-1.0, 1.0], size=(5, 3)),
             "zero": np.array(0), "ax": np.array([0]), "minus1": np.array([-1])}
    model = build(nodes, inits, [4])
    net, rep = _load(model)
    assert rep.two_unit_signs > 0 and rep.output == "argmax"
    X = rng.integers(-2, 3, size=(400, 4)).astype(float)
    scores = run_ort(model, X)  # exact in doubles: small integers
    ours = net.argmax_predictions(X)
    top = scores.max(axis=1)
    ties = (scores == top[:, None]).sum(axis=1) > 1
    assert np.array_equal(ours == -1, ties)  # bnnmilp counts a tie as no class; onnxruntime takes the first
    assert np.array_equal(ours[~ties], scores.argmax(axis=1)[~ties])


def _load(model, integer_inputs=False, tmp=None):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.onnx"
        onnx.save(model, str(p))
        return load_onnx(p, integer_inputs)


def test_nhwc_transpose_greater_and_batchnorm_on_the_input():
    """tf2onnx's NHWC layout (Transpose around Conv), Greater as a strict step, batch norm on raw pixels."""
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("BatchNormalization", ["xt", "g", "b", "m", "v"], ["n0"], epsilon=2e-5),
             helper.make_node("Greater", ["n0", "zero"], ["s0"]),
             helper.make_node("Cast", ["s0"], ["u0"], to=TensorProto.FLOAT),
             helper.make_node("Conv", ["u0", "K"], ["c"], pads=[1, 0, 1, 0], strides=[1, 2], group=2),
             helper.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 3, 1]),
             helper.make_node("GreaterOrEqual", ["ct", "t"], ["s1"]),
             helper.make_node("Cast", ["s1"], ["y"], to=TensorProto.FLOAT)]
    inits = {"g": rng.uniform(-1, 1, 2), "b": rng.normal(size=2), "m": rng.uniform(50, 200, 2),
             "v": rng.uniform(100, 3000, 2), "zero": np.array(0.0), "K": rng.choice([-1.0, 1.0], size=(4, 1, 3, 2)),
             "t": np.array(0.5)}
    model = build(nodes, inits, [5, 4, 2], out_rank=4, dtype=np.float32)
    net, rep = _load(model, integer_inputs=True)
    assert rep.output == "bits" and rep.rounded == 0
    X = rng.integers(0, 256, size=(300, 40)).astype(float)
    out = run_ort(model, X.reshape(-1, 5, 4, 2)).reshape(300, -1)
    assert np.array_equal(net.predict_bits(X), out)


@pytest.mark.parametrize("output", ["bits", "argmax"])
@pytest.mark.parametrize("seed", range(4))
def test_export_runs_in_onnxruntime_and_round_trips_exactly(tmp_path, output, seed):
    rng = np.random.default_rng(40 + seed)
    net = random_net(rng, [5, 4, 3, 3])
    model = to_onnx(net, output)
    X = rng.integers(-4, 5, size=(200, 5)).astype(float)
    res = ort.InferenceSession(model.SerializeToString()).run(None, {"x": X})
    if output == "bits":
        assert np.array_equal(res[0], net.predict_bits(X))
    else:
        ours = net.argmax_predictions(X)
        assert np.array_equal(res[0][ours >= 0], ours[ours >= 0])
    onnx.save(model, str(tmp_path / "m.onnx"))
    back, _ = load_onnx(tmp_path / "m.onnx")
    assert back.layers == net.layers
    for a, b, ta, tb in zip(net.weights, back.weights, net.thresholds, back.thresholds, strict=True):
        assert np.array_equal(dense(a), dense(b)) and np.array_equal(ta, tb)


def test_cli_import_export_import_is_the_identity(tmp_path, repo_root):
    r = CliRunner()
    sakai = repo_root / "tests/data/sakai-bnn/models/mnist_rot.npz"
    a = r.invoke(main, ["import", str(sakai), "-o", str(tmp_path / "a.npz"), "--json"])
    assert a.exit_code == 0, a.output
    e = r.invoke(main, ["export", str(tmp_path / "a.npz"), "-o", str(tmp_path / "a.onnx"), "--json"])
    assert e.exit_code == 0 and json.loads(e.stdout)["outputs"] == ["class", "scores"]
    b = r.invoke(main, ["import", str(tmp_path / "a.onnx"), "-o", str(tmp_path / "b.npz"), "--integer-inputs",
                        "--json"])
    assert b.exit_code == 0, b.output
    info = json.loads(b.stdout)
    assert info["layers"] == [784, 784, 200, 100, 100, 100, 10] and info["weights"] == str(tmp_path / "b.npz")
    na, nb = load_weights(tmp_path / "a.npz").network, load_weights(tmp_path / "b.npz").network
    for x, y, tx, ty in zip(na.weights, nb.weights, na.thresholds, nb.thresholds, strict=True):
        assert np.array_equal(dense(x), dense(y)) and np.array_equal(tx, ty)


def test_unsupported_ops_name_the_node(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["r"], name="act"),
             helper.make_node("Sign", ["r"], ["y"])]
    build(nodes, {"W": np.ones((3, 2))}, [3], path=tmp_path / "relu.onnx")
    with pytest.raises(ModelFileError) as info:
        import_model(tmp_path / "relu.onnx", "onnx")
    assert str(info.value).startswith(f"{tmp_path / 'relu.onnx'}: node act (Relu): not supported")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "relu.onnx"), "-o", str(tmp_path / "n.npz")])
    assert r.exit_code == 2 and "node act (Relu)" in r.output and not (tmp_path / "n.npz").exists()
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01junk")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "junk.onnx"), "-o", str(tmp_path / "n.npz")])
    assert r.exit_code == 2 and "not an ONNX model" in r.output


def test_a_residual_connection_is_refused_by_name(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Sign", ["h"], ["s"]),
             helper.make_node("MatMul", ["s", "W2"], ["h2"]), helper.make_node("Add", ["h2", "s"], ["r"], name="res"),
             helper.make_node("Sign", ["r"], ["y"])]
    build(nodes, {"W": np.ones((3, 2)), "W2": np.ones((2, 2))}, [3], path=tmp_path / "res.onnx")
    with pytest.raises(ModelFileError, match=r"node res \(Add\): an operation on two network tensors"):
        import_model(tmp_path / "res.onnx", "onnx")


def test_weights_beyond_one_are_rescaled_by_powers_of_two(tmp_path):
    net = Network([np.array([[3.0, -0.5], [0.25, 0.5]]), np.array([[4.0, 1.0], [-2.0, 0.5]])],
                  [np.array([1.5, 0.25]), np.array([0.5, 1.0])])
    onnx.save(to_onnx(net, "argmax"), str(tmp_path / "m.onnx"))
    imp = import_model(tmp_path / "m.onnx", "onnx")
    assert imp.doc["network"]["weights"] == "continuous" and imp.doc["source"]["rows_rescaled"] == 3
    assert dense(imp.network.weights[0]).tolist() == [[0.75, -0.125], [0.25, 0.5]]
    assert imp.network.thresholds[0].tolist() == [0.375, 0.25]
    assert dense(imp.network.weights[1]).tolist() == [[0.5, 0.125], [-0.25, 0.0625]]  # one factor: argmax kept
    X = np.random.default_rng(0).integers(-3, 4, size=(100, 2)).astype(float)
    assert np.array_equal(imp.network.argmax_predictions(X), net.argmax_predictions(X))


def test_import_check_compares_with_onnxruntime(tmp_path):
    rng = np.random.default_rng(11)
    larq_conv_model(rng, tmp_path / "m.onnx")
    X = rng.normal(size=(50, 36))
    np.savez(tmp_path / "d.npz", X=X, y=np.zeros(50, dtype=np.int64))
    r = CliRunner().invoke(main, ["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "n.npz"), "--check",
                                  str(tmp_path / "d.npz"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["checked_samples"] == 50 and out["checked_against"] == "onnxruntime (tensor(float))"
    # every disagreement is a tie between classes (bnnmilp: no class; ArgMax: the first): none is a real one
    assert 0 < len(out["disagreements"]) == out["ties_here"]
    assert out["rounded_thresholds"] == 108 and out["sparse_layers"] == [1, 3]
    net = load_weights(tmp_path / "n.npz").network
    assert net.layers == [36, 108, 64, 16, 5]


def test_the_float_check_runs_a_model_whose_batch_size_is_fixed(tmp_path):
    """Exported models often fix the batch dimension at 1 (VNN-COMP's do): the model's own float predictions
    run row by row there, instead of failing inside onnxruntime (an internal error after every query)."""
    from bnnmilp.io.importers import float_predictions

    rng = np.random.default_rng(12)
    model = larq_conv_model(rng)
    model.graph.input[0].type.tensor_type.shape.dim[0].ClearField("dim_param")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(tmp_path / "one.onnx"))
    r = CliRunner().invoke(main, ["import", str(tmp_path / "one.onnx"), "-o", str(tmp_path / "n.npz")])
    assert r.exit_code == 0, r.output
    X = rng.normal(size=(7, 36))
    got, name = float_predictions(load_weights(tmp_path / "n.npz").doc["source"], X)
    sess = ort.InferenceSession(str(tmp_path / "one.onnx"))
    one_by_one = [int(np.argmax(sess.run(None, {"x": X[i:i + 1].reshape(1, 1, 6, 6).astype(np.float32)})[0]))
                  for i in range(7)]
    assert got.tolist() == one_by_one and name == "onnxruntime (tensor(float))"
