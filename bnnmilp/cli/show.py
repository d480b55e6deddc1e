from __future__ import annotations

import click

from bnnmilp.cli.common import json_option


@click.command("show")
@click.argument("network", type=click.Path())
@json_option
def command(network: str, as_json: bool) -> None:
    """Describe a network layer by layer: widths, weight domain, non-zeros, thresholds, operations, memory.

    NETWORK: a run folder, a weights file (YAML or NPZ) or an ensemble (each member is shown). Operations
    are the non-zero weights a forward pass uses: XNOR/popcount on binary or ternary weights after the first
    layer (whose inputs are the raw features), multiply-accumulates otherwise. Memory counts the weights
    packed (1 bit binary, 2 bits ternary, 64 bits continuous) and the thresholds as doubles.

    \b
    Examples:
      bnnmilp show runs/k1
      bnnmilp show rot.npz --json | python -m json.tool
    """
    from bnnmilp.analysis.summary import network_summary
    from bnnmilp.cli import terminal
    from bnnmilp.io.runs import load_weights
    from bnnmilp.network.ensemble import EnsembleFile

    wf = load_weights(network)
    if isinstance(wf, EnsembleFile):
        members = [(f"member {a}_{b}", m) for (a, b), m in zip(wf.classes, wf.members, strict=True)]
    else:
        members = [("network", wf)]
    out = {name: network_summary(m.network, m.spec.network.weights, m.spec.network.output, m.spec.network.thresholds)
           for name, m in members}
    if as_json:
        terminal.emit_json(out if len(out) > 1 else out["network"])
        return
    for name, s in out.items():
        terminal.layers_table(f"{name} {s['layers']}: {s['weights']} weights, {s['output']} output", s)
