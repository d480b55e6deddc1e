from __future__ import annotations

from pathlib import Path

import click

from bnnmilp.cli.common import (
    NONNEGATIVE,
    OUTPUT_FILE,
    json_option,
    load_box_option,
    load_inputs,
    one_stdout,
    time_limit_option,
)


@click.command("encode")
@click.argument("network", type=click.Path())
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="The MPS or LP file to write ('-': standard output, with --format).")
@click.option("--format", "fmt", type=click.Choice(["mps", "lp"]), default=None,
              help="File format; by default taken from the extension of -o.")
@click.option("--writer", type=click.Choice(["pyomo", "highs"]), default="pyomo", show_default=True,
              help="pyomo: Pyomo's writers (readable names, any solver); highs: HiGHS' own writer (faster).")
@click.option("--robust", is_flag=True, help="Write a robustness query instead: NETWORK is then a weights file or "
                                               "run folder, and --sample, --eps, --norm, --domain, --bounds, "
                                               "--against, --min-eps describe the query.")
@click.option("--sample", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--eps", type=NONNEGATIVE)
@click.option("--norm", type=click.Choice(["inf", "1"]), default="inf", show_default=True)
@click.option("--domain", type=click.Choice(["continuous", "integer"]), default="continuous", show_default=True)
@click.option("--bounds", help="Input domain LO:HI.")
@click.option("--box", type=click.Path(dir_okay=False),
              help="Per-feature input bounds: a YAML or NPZ file with lower and upper.")
@click.option("--against", type=click.Choice(["prediction", "label"]), default="prediction", show_default=True)
@click.option("--min-eps", is_flag=True)
@time_limit_option("reading, building and writing")
@json_option
def command(network: str, data: str, output: str, fmt: str | None, writer: str, robust: bool, sample: int,
            eps: float | None, norm: str, domain: str, bounds: str | None, box: str | None, against: str,
            min_eps: bool, time_limit: float | None, as_json: bool) -> None:
    """Write the training MILP of NETWORK (spec YAML) on DATA (YAML) as an MPS or LP file.

    Variables are named w_l_k_j (weights), lam_l / lam_l_k (thresholds),
    u_i_l_k (activation of neuron k in layer l on sample i), s_i_l_k_j
    (products w*u, layers >= 2), z_l_k_j (binary weights, w = 2z - 1), e_i
    (sample errors). Size statistics go to stderr (or stdout with --json).

    NETWORK, DATA: files, or '-' for standard input (one of them).

    \b
    Examples:
      bnnmilp encode configs/paper.yaml samples/xor.yaml -o xor.lp
      bnnmilp encode configs/paper.yaml - -o - --format mps < samples/xor.yaml | gzip > xor.mps.gz
    """
    from bnnmilp.cli import terminal
    from bnnmilp.errors import InputError
    from bnnmilp.limits import wall_clock

    one_stdout(as_json, output=output)
    fmt = fmt or Path(output).suffix.lower().lstrip(".")
    if fmt not in ("mps", "lp"):
        raise InputError(output, None, "cannot tell the format: use a .mps or .lp extension, or --format")
    with wall_clock(time_limit, "encoding"):
        model = _model(network, data, robust, sample, eps, norm, domain, bounds, box, against, min_eps)
        _write(model, output, fmt, writer)
    stats = {"file": output, "format": fmt, **model.stats(), "model_sha256": model.fingerprint()}
    if as_json:
        terminal.emit_json(stats)
    else:
        where = "standard output" if output == "-" else output
        terminal.table(f"wrote {where}", [(k, v) for k, v in stats.items() if k not in ("file",)])


def _model(network, data, robust, sample, eps, norm, domain, bounds, box, against, min_eps):
    """The standard-form model to write: the training MILP, or a robustness query."""
    from bnnmilp import formulations

    if robust:
        return _robust_model(network, data, sample, eps, norm, domain, bounds, box, against, min_eps)
    spec, ds = load_inputs(network, data)
    return formulations.get("theorem1").build(spec, ds.features, ds.targets(spec.network.n_outputs)).model


def _write(model, output: str, fmt: str, writer: str) -> None:
    """Write atomically: a failure or the time limit leaves no file."""
    from bnnmilp.io.yamlio import atomic_write

    if writer == "pyomo":
        from bnnmilp.milp.backends import pyomo

        atomic_write(output, lambda tmp: pyomo.write(model, tmp, fmt))
    else:
        from bnnmilp.milp.backends import highs

        def write(tmp: Path) -> None:
            real = tmp.with_suffix("." + fmt)  # HiGHS picks the format by extension
            try:
                highs.write(model, real)
                real.replace(tmp)
            except BaseException:
                real.unlink(missing_ok=True)
                raise

        atomic_write(output, write)


def _robust_model(weights, data, sample, eps, norm, domain, bounds, box, against, min_eps):
    from dataclasses import replace

    import numpy as np

    from bnnmilp import formulations
    from bnnmilp.cli.common import parse_bounds
    from bnnmilp.data import load_data
    from bnnmilp.errors import InputError
    from bnnmilp.io.runs import load_weights
    from bnnmilp.verification.robustness.robust import RobustOptions, build_query, reference_bits

    wf = load_weights(weights, ensemble=False)
    ds = load_data(data)
    ds.check_fits(wf.spec.network.n_inputs, wf.spec.network.n_outputs)
    if sample >= ds.n_samples:
        raise InputError(data, "--sample", f"expected an index below {ds.n_samples}, got {sample}")
    lim = parse_bounds(bounds)
    if eps is None and not (min_eps and lim is not None):
        raise InputError(None, "--eps", "expected a radius (or --min-eps with --bounds)")
    per_feature = load_box_option(box, wf.spec.network.n_inputs)
    opts = RobustOptions(eps=eps, norm=norm, domain=domain, bounds=lim, against=against, min_eps=min_eps,
                         box=per_feature)
    x = ds.features[sample]
    if wf.spec.network.output == "argmax":  # some class k != y with s_k >= s_y (ties count)
        if min_eps:
            raise InputError(None, "--min-eps", "not available for argmax outputs (write one query per radius)")
        pred = int(wf.network.argmax_predictions(x[None, :])[0])
        y = pred if against == "prediction" else int(ds.labels[sample])
        if y < 0:
            raise InputError(data, "--sample", f"sample {sample} has a tie between classes: no class to keep")
        q = build_query(wf.network, x, np.zeros(wf.network.layers[-1], np.int8), opts, argmax=True)
        return formulations.get("robustness").build(replace(q, label=y))
    _, ref = reference_bits(wf.network, x, int(ds.labels[sample]), against)
    return formulations.get("robustness").build(build_query(wf.network, x, ref, opts))
