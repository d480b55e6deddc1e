from __future__ import annotations

from pathlib import Path

import click

from bnnmilp.cli.common import OUTPUT_FILE, json_option


@click.command("import")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="The bnnmilp network to write: NET.npz (or NET.yaml for small networks).")
@click.option("--from", "fmt", type=click.Choice(["chainer-npz"]), default="chainer-npz", show_default=True,
              help="chainer-npz: Sakai's Chainer BNNs (input_bn, blocks/i/{lin,bn}, output_lin).")
@json_option
def command(model: str, output: str, fmt: str, as_json: bool) -> None:
    """Import a BNN trained elsewhere as a bnnmilp network, with exact integer thresholds.

    Batch norm followed by sign becomes an integer threshold on the 0/1 sum of each layer (rows negated
    where gamma < 0), decided in exact arithmetic; the input layer becomes one threshold per pixel on
    integer pixels 0..255; the output is an argmax layer. The result works with predict and verify
    (robustness queries on argmax outputs are not supported yet).

    \b
    Example:
      bnnmilp import mnist.npz -o mnist_net.npz --json
      bnnmilp predict mnist_net.npz images.npz
    """
    import hashlib

    from bnnmilp.cli import terminal
    from bnnmilp.importers.chainer import load_chainer_npz
    from bnnmilp.runs import WEIGHTS_FORMAT, write_weights_npz
    from bnnmilp.yamlio import write_yaml_atomic

    net, rep = load_chainer_npz(model)
    doc = {"format": WEIGHTS_FORMAT, "version": 1,
           "network": {"layers": rep.layers, "weights": "ternary", "thresholds": "per_neuron", "output": "argmax"},
           "training": {"loss": "error"},
           "source": {"from": fmt, "model": str(model), "sha256": hashlib.sha256(Path(model).read_bytes()).hexdigest(),
                      "input": "integer pixels 0..255: one threshold per pixel (binarisation inside the network)",
                      "negated_rows": rep.negated_rows, "constant_rows": rep.constant_rows},
           "layers": net.to_layers_doc()}
    if Path(output).suffix.lower() == ".npz":
        write_weights_npz(output, doc)
    else:
        write_yaml_atomic(output, doc)
    out = {"weights": str(output), "layers": rep.layers, "from": fmt, "negated_rows": rep.negated_rows,
           "constant_rows": rep.constant_rows, "output": "argmax"}
    if as_json:
        terminal.emit_json(out)
    else:
        terminal.table(f"imported {model}", list(out.items()))
