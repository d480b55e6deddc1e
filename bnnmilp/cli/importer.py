from __future__ import annotations

from pathlib import Path

import click

from bnnmilp.cli.common import OUTPUT_FILE, json_option, time_limit_option

FORMATS = {".onnx": "onnx", ".npz": "chainer-npz"}


@click.command("import")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="The bnnmilp network to write: NET.yaml or NET.yml (readable; small networks), any other name "
                   "NPZ (sparse layers kept sparse; loads in milliseconds).")
@click.option("--from", "fmt", type=click.Choice(["onnx", "chainer-npz"]), default=None,
              help="The model's format [default: from the extension: .onnx, .npz].")
@click.option("--integer-inputs", is_flag=True,
              help="ONNX: the inputs are integers (pixels 0..255, say): first-layer thresholds are placed on the "
                   "integer lattice, so no decision depends on rounding.")
@click.option("--check", "check_data", type=click.Path(dir_okay=False),
              help="A data file (YAML, CSV, NPZ): compare the imported network's exact predictions with the model's "
                   "own (Chainer float32, or onnxruntime if installed) and list the samples where they differ.")
@time_limit_option("reading, translating, checking and writing")
@json_option
def command(model: str, output: str, fmt: str | None, integer_inputs: bool, check_data: str | None,
            time_limit: float | None, as_json: bool) -> None:
    """Import a BNN trained elsewhere (ONNX from Larq or PyTorch; Sakai's Chainer npz) as a bnnmilp network,
    exactly.

    \b
    ONNX ops: Sign, Sign(Sign(x) + c) (Larq's ste_sign), Greater/GreaterOrEqual/Less/LessOrEqual as steps;
    MatMul, Gemm, Conv (NCHW; NHWC through Transpose; zero padding, strides, dilations, groups) as sparse
    layers; Add, Sub, Mul, Div, Neg, BatchNormalization (explicit, as Mul/Add, or folded into a Conv);
    MaxPool on bits (an OR unit); Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Identity, Dropout, Cast;
    Softmax (dropped: monotone); ArgMax. Weights may be quantised inside the graph (Sign on constants).

    Batch norm followed by a step becomes an exact threshold: on bits (and integer inputs) the smallest
    lattice point at or above the real root, decided in rational arithmetic with the square root kept exact;
    on real inputs the smallest double above it (the count of such thresholds is reported). Where ONNX's
    Sign(0) = 0 is reachable, a Sign becomes two units [z >= t], [z > t]. An op or pattern that cannot be
    mapped exactly is exit 2, naming the node and the op.

    \b
    Examples:
      bnnmilp import samples/conv_bnn.onnx -o net.npz --json | python -m json.tool
      bnnmilp import tests/data/sakai-bnn/models/mnist_rot.npz -o rot.npz    # Sakai's Chainer layout
      bnnmilp predict rot.npz samples/rot8.npz
      bnnmilp verify rot.npz samples/rot8.npz --robust --eps 1 --domain integer --bounds 0:255
    """
    from bnnmilp.cli import terminal
    from bnnmilp.io.importers import import_model
    from bnnmilp.io.runs import write_network
    from bnnmilp.limits import wall_clock

    fmt = fmt or FORMATS.get(Path(model).suffix.lower())
    if fmt is None:
        raise click.UsageError(f"cannot tell the format of {model!r} from its extension: pass --from onnx or "
                               "--from chainer-npz")
    with wall_clock(time_limit, "importing"):
        imported = import_model(model, fmt, integer_inputs)
        checked = _check(imported, check_data) if check_data else {}
        write_network(output, imported.network, imported.doc)
    out = {"weights": str(output), **imported.summary, **checked}
    if as_json:
        terminal.emit_json(out)
    else:
        terminal.table(f"imported {model}", list(out.items()))


@click.command("export")
@click.argument("network", type=click.Path())
@click.option("-o", "--output", required=True, callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="The ONNX file to write.")
@json_option
def export_command(network: str, output: str, as_json: bool) -> None:
    """Export a bnnmilp network (a run folder or weights file) as ONNX, for onnxruntime and other verifiers.

    Each layer is MatMul, GreaterOrEqual(a, lambda), Cast in doubles: input ``x`` (N x d0); output ``bits``,
    or ``scores`` and ``class`` (ArgMax) for an argmax output layer.

    \b
    Example:
      bnnmilp export runs/k1 -o - | gzip > k1.onnx.gz
      bnnmilp export runs/k1 -o k1.onnx
      python -c "import onnxruntime as o; print(o.InferenceSession('k1.onnx').get_outputs()[0].name)"
    """
    from bnnmilp.cli import terminal
    from bnnmilp.io.exporters.onnx import write_onnx
    from bnnmilp.io.runs import load_weights

    wf = load_weights(network, ensemble=False)
    out_kind = wf.spec.network.output
    write_onnx(wf.network, out_kind, output)
    out = {"onnx": str(output), "layers": wf.network.layers, "output": out_kind,
           "outputs": ["class", "scores"] if out_kind == "argmax" else ["bits"]}
    if as_json:
        terminal.emit_json(out)
    else:
        terminal.table(f"exported {network}", list(out.items()))


def _check(imported, path: str) -> dict:
    """The samples of ``path`` on which the exact network and the model's own float semantics disagree."""
    import numpy as np

    from bnnmilp.data import load_data
    from bnnmilp.errors import InputError
    from bnnmilp.io.importers import float_predictions
    from bnnmilp.network import predictions

    ds = load_data(path)
    ds.check_fits(imported.network.layers[0], imported.network.layers[-1])
    got = float_predictions(imported.doc["source"], ds.features)
    if got is None:
        raise InputError(path, "--check", "the model's own semantics cannot be run (needs onnxruntime for ONNX "
                                          "models, and a class output)")
    theirs, name = got
    ours = predictions(imported.network, ds.features, imported.doc["network"]["output"])
    differ = np.flatnonzero(ours != theirs)
    return {"checked_samples": ds.n_samples, "checked_against": name, "disagreements": differ.tolist(),
            "ties_here": int(np.sum(ours[differ] == -1))}
