"""Networks trained elsewhere, converted exactly into bnnmilp networks (``import_model``: one entry point)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnnmilp.errors import ModelFileError
from bnnmilp.network import Network
from bnnmilp.network.sparse import Csr, compact, has_zeros, values

FORMATS = ("onnx", "chainer-npz")


@dataclass
class Imported:
    network: Network
    doc: dict[str, Any]  # the weights document's header (everything but the layers)
    summary: dict[str, Any] = field(default_factory=dict)


def weight_domain(net: Network) -> str:
    """The tightest of bnnmilp's weight domains that holds every layer (after ``unit_scale``)."""
    vals = [values(W) for W in net.weights]
    if all(np.all(np.isin(v, (-1.0, 1.0))) and not has_zeros(W) for v, W in zip(vals, net.weights, strict=True)):
        return "binary"
    if all(np.all(np.isin(v, (-1.0, 0.0, 1.0))) for v in vals):
        return "ternary"
    return "continuous"


def unit_scale(net: Network, output: str) -> tuple[Network, int]:
    """Rows scaled by powers of two (exact) so that every weight lies in [-1, 1]: a step [W_k u >= lambda_k] is
    unchanged by a positive factor; an argmax layer gets one factor for all rows. Returns the rescaled rows."""
    ws, ts, scaled = [], [], 0
    for l, (W, lam) in enumerate(zip(net.weights, net.thresholds, strict=True)):
        absmax = np.zeros(W.shape[0])
        if isinstance(W, Csr):
            np.maximum.at(absmax, W.row_of, np.abs(W.data))
        else:
            absmax = np.abs(W).max(axis=1, initial=0.0)
        if l == len(net.weights) - 1 and output == "argmax":
            absmax = np.full(W.shape[0], absmax.max(initial=0.0))
        e = np.array([math.frexp(v)[1] if v > 1 else 0 for v in absmax.tolist()])  # 2^-e brings |w| <= 1
        f = 2.0 ** -e.astype(np.float64)
        scaled += int(np.sum(e > 0))
        if isinstance(W, Csr):
            Wn = W.with_data(W.data * f[W.row_of])
        else:
            Wn = W * f[:, None]
        ws.append(Wn)
        ts.append(lam * f)
    return Network(ws, ts), scaled


def import_model(path: str | Path, fmt: str, integer_inputs: bool = False) -> Imported:
    """Read a BNN trained elsewhere, exactly, as a bnnmilp network (``bnnmilp.import_network``).

    Parameters
    ----------
    path : str or Path
        The model file.
    fmt : {"onnx", "chainer-npz"}
        Its format (ONNX step networks; Sakai's Chainer BNNs).
    integer_inputs : bool
        Inputs are integers: thresholds may then be rounded up exactly.

    Returns
    -------
    Imported
        ``.network`` (a :class:`Network`, its step thresholds exact), ``.doc`` (the weights document's
        header: the source, the output rule, the notes on what was converted) and ``.summary``.

    Raises
    ------
    ModelFileError
        For files that cannot be read exactly (names the file, the node and why).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(str(p), None, "file not found")
    notes: list[str] = []
    if fmt == "onnx":
        from bnnmilp.io.importers.onnx import load_onnx

        net, rep = load_onnx(p, integer_inputs)
        output = rep.output
        source = {"input": f"shape {rep.input_shape} flattened in C order; "
                           + ("integer inputs" if integer_inputs else "real inputs"),
                  "input_shape": rep.input_shape,
                  "rounded_thresholds": rep.rounded, "two_unit_signs": rep.two_unit_signs}
        notes += rep.notes
        if rep.rounded:
            notes.append(f"{rep.rounded} thresholds on real inputs rounded up to the next double: decisions differ "
                         "from the exact model only for a pre-activation inside [t, lambda) (below one ulp)")
    else:
        from bnnmilp.io.importers.chainer import load_chainer_npz

        net, crep = load_chainer_npz(p)
        output = "argmax"
        source = {"input": "integer pixels 0..255: one threshold per pixel (binarisation inside the network)",
                  "negated_rows": crep.negated_rows, "constant_rows": crep.constant_rows,
                  "float32_disagreements": len(crep.float32_disagreements)}
        notes += crep.notes
    net, scaled = unit_scale(Network([compact(W) for W in net.weights], net.thresholds), output)
    domain = weight_domain(net)
    doc = {"format": "bnnmilp-weights", "version": 1,
           "network": {"layers": net.layers, "weights": domain, "thresholds": "per_neuron", "output": output},
           "training": {"loss": "error" if output == "argmax" else "hamming"},
           "source": {"from": fmt, "model": str(p.resolve()), "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                      "rows_rescaled": scaled, **source, "notes": notes}}
    sparse = [l for l, W in enumerate(net.weights, start=1) if isinstance(W, Csr)]
    summary = {"layers": net.layers, "from": fmt, "output": output, "weights_domain": domain,
               "sparse_layers": sparse, "parameters": int(sum(W.size for W in net.weights)), **source}
    return Imported(net, doc, summary)


def float_predictions(source: dict[str, Any], X: np.ndarray) -> tuple[np.ndarray, str] | None:
    """The classes the imported model itself predicts on X in its own floating point (Chainer: float32 as Sakai's
    code computes; ONNX: onnxruntime), and a name for that semantics; None where the model file is gone or
    changed (sha256), onnxruntime is not installed, or the model has no class output."""
    p = Path(str(source.get("model", "")))
    if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != source.get("sha256"):
        return None
    if source.get("from") == "chainer-npz":
        from bnnmilp.io.importers.chainer import float32_scores

        return np.argmax(float32_scores(p, X), axis=1), "Chainer float32"
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    sess = ort.InferenceSession(str(p))
    inp = sess.get_inputs()[0]
    dtype = np.float64 if "double" in inp.type else np.float32
    shape = [X.shape[0], *source.get("input_shape", [X.shape[1]])]
    batch = inp.shape[0] if inp.shape else None
    if isinstance(batch, int) and batch > 0 and batch != X.shape[0]:  # a fixed batch size: that many rows a run
        runs = [sess.run(None, {inp.name: X[i:i + batch].reshape([batch, *shape[1:]]).astype(dtype)})[0]
                for i in range(0, X.shape[0], batch)]
        out = np.concatenate(runs)
    else:
        out = sess.run(None, {inp.name: X.reshape(shape).astype(dtype)})[0]
    if out.ndim == 1 and out.dtype.kind in "iu":
        return out.astype(np.int64), f"onnxruntime ({inp.type})"
    if out.ndim == 2 and out.shape[1] > 1:
        return np.argmax(out, axis=1), f"onnxruntime ({inp.type})"
    return None
