from __future__ import annotations

from pathlib import Path

import click

from bnnmilp.cli.common import json_option, load_inputs


@click.command("encode")
@click.argument("network", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The MPS or LP file to write.")
@click.option("--format", "fmt", type=click.Choice(["mps", "lp"]), default=None,
              help="File format; by default taken from the extension of -o.")
@click.option("--writer", type=click.Choice(["pyomo", "highs"]), default="pyomo", show_default=True,
              help="pyomo: Pyomo's writers (readable names, any solver); highs: HiGHS' own writer (faster).")
@json_option
def command(network: str, data: str, output: str, fmt: str | None, writer: str, as_json: bool) -> None:
    """Write the training MILP of NETWORK (spec YAML) on DATA (YAML) as an MPS or LP file.

    Variables are named w_l_k_j (weights), lam_l / lam_l_k (thresholds),
    u_i_l_k (activation of neuron k in layer l on sample i), s_i_l_k_j
    (products w*u, layers >= 2), z_l_k_j (binary weights, w = 2z - 1), e_i
    (sample errors). Size statistics go to stderr (or stdout with --json).

    \b
    Example:
      bnnmilp encode configs/paper.yaml samples/xor.yaml -o xor.lp
    """
    from bnnmilp import formulations
    from bnnmilp.cli import terminal
    from bnnmilp.errors import InputError
    from bnnmilp.yamlio import atomic_write

    fmt = fmt or Path(output).suffix.lower().lstrip(".")
    if fmt not in ("mps", "lp"):
        raise InputError(output, None, "cannot tell the format: use a .mps or .lp extension, or --format")
    spec, ds = load_inputs(network, data)
    tm = formulations.get("theorem1").build(spec, ds.features, ds.targets(spec.network.n_outputs))
    if writer == "pyomo":
        from bnnmilp.backends import pyomo

        atomic_write(output, lambda tmp: pyomo.write(tm.model, tmp, fmt))
    else:
        from bnnmilp.backends import highs

        def write(tmp: Path) -> None:
            real = tmp.with_suffix("." + fmt)
            highs.write(tm.model, real)
            real.replace(tmp)

        atomic_write(output, write)
    stats = {"file": output, "format": fmt, **tm.model.stats(), "model_sha256": tm.model.fingerprint()}
    if as_json:
        terminal.emit_json(stats)
    else:
        terminal.table(f"wrote {output}", [(k, v) for k, v in stats.items() if k not in ("file",)])
