from __future__ import annotations

import click

from bnnmilp.cli.common import OUTPUT_FILE, PLOT_FILE, POSITIVE, json_option, one_stdout


@click.command("explain")
@click.argument("run_dir", type=click.Path(exists=True))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="Write the sensitivities (CSV, or .json).")
@click.option("--plot", "--png", "png", callback=PLOT_FILE, type=click.Path(dir_okay=False),
              help="Heat maps per sample for square images, with a colour bar (.png, .svg or .pdf; matplotlib).")
@click.option("--time-limit", type=POSITIVE, default=600.0, show_default=True)
@json_option
def command(run_dir: str, data: str, output: str | None, png: str | None, time_limit: float, as_json: bool) -> None:
    """Sensitivity of the optimal training loss to every input feature of every training sample.

    Rebuilds the training MILP of RUN_DIR on DATA, proves its optimum with a recorded tree and returns
    dz/dx_ij = -sum_k W*_kj (y_on + y_off) (data are matrix coefficients of the first-layer weights).

    \b
    Example:
      bnnmilp explain runs/k1 samples/digits_k1.yaml --plot k1.png -o k1.csv
      bnnmilp explain runs/k1 samples/digits_k1.yaml -o - | cut -d, -f1-5 | head -3
    """
    import math

    from bnnmilp import formulations
    from bnnmilp.analysis.explain import input_sensitivity
    from bnnmilp.cli import terminal
    from bnnmilp.data import load_data
    from bnnmilp.io.runs import load_weights
    from bnnmilp.io.yamlio import write_json_atomic, write_text_atomic

    one_stdout(as_json, output=output, png=png)
    wf = load_weights(run_dir, ensemble=False)
    ds = load_data(data)
    ds.check_fits(wf.spec.network.n_inputs, wf.spec.network.n_outputs)
    tm = formulations.get("theorem1").build(wf.spec, ds.features, ds.targets(wf.spec.network.n_outputs))
    S, vg = input_sensitivity(tm, time_limit)
    out = {"value": vg.value, "kink": vg.kink, "samples": ds.n_samples, "features": ds.n_features,
           "sensitivity": S.tolist()}
    if output:
        if output.endswith(".json"):
            write_json_atomic(output, out)
        else:
            head = "sample," + ",".join(f"x{j}" for j in range(ds.n_features))
            write_text_atomic(output, head + "\n" + "".join(f"{i}," + ",".join(repr(float(v)) for v in row) + "\n"
                                                            for i, row in enumerate(S)))
    if png:
        from bnnmilp.analysis.plots import heatmaps

        side = math.isqrt(ds.n_features)
        if side * side != ds.n_features:
            raise click.BadParameter("heat maps need square images (d0 = n * n)", param_hint="--png")
        flat = "" if S.any() else "\nall 0: an integral loss is piecewise constant in the data"
        heatmaps(png, S, ds.labels.tolist(), f"d(optimal training loss) / d(pixel); optimal loss {vg.value:g}{flat}",
                 "sensitivity of the optimal loss")
    if not S.any():
        out["note"] = ZERO_NOTE
    if as_json:
        terminal.emit_json(out)
    else:
        terminal.status(f"optimal loss {vg.value:g}; kink {vg.kink}; max |dz/dx| {float(abs(S).max()):.6g}")
        if not S.any():
            terminal.status(ZERO_NOTE)


ZERO_NOTE = ("every sensitivity is 0: the training loss is an integer, so its optimum is piecewise constant in the "
             "data and its derivative is 0 wherever it exists (kink true: the data sit on a jump, where 0 is one "
             "element of the conservative Jacobian)")
