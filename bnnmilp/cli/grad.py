from __future__ import annotations

import click

from bnnmilp.cli.common import OUTPUT_FILE, POSITIVE, json_option, one_stdout


@click.command("grad")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--wrt", type=click.Choice(["rhs", "obj", "matrix"]), default="rhs", show_default=True)
@click.option("-o", "--output", callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="Write the gradient as CSV (or JSON).")
@click.option("--time-limit", type=POSITIVE, default=600.0, show_default=True)
@json_option
def command(model: str, wrt: str, output: str | None, time_limit: float, as_json: bool) -> None:
    """Gradient of the optimal value of MODEL (MPS/LP) with respect to rhs, objective or matrix entries.

    dz/db = y (the multipliers of the proving leaf that holds x*), dz/dc = x*, dz/dA_ij = -y_i x*_j:
    an element of the conservative Jacobian of the (piecewise linear) value function (Bolte et al. 2021).
    At a kink ("kink": true) every candidate is an element; none is "the" derivative.

    \b
    Example:
      bnnmilp grad samples/guzelsoy_ralphs.lp --wrt rhs --json
      bnnmilp grad samples/guzelsoy_ralphs.lp --wrt matrix -o - | sort -t, -k2 -g | tail -3
    """

    from bnnmilp.analysis.diff import value_and_grad
    from bnnmilp.cli import terminal
    from bnnmilp.io.yamlio import write_json_atomic, write_text_atomic
    from bnnmilp.milp.backends.highs import read

    one_stdout(as_json, output=output)
    m = read(model)
    vg = value_and_grad(m, time_limit=time_limit)
    if wrt == "rhs":
        names, g = m.row_names(), vg.grad_rhs
    elif wrt == "obj":
        names, g = m.col_names(), vg.grad_obj
    else:
        import numpy as np

        rows = np.repeat(np.arange(m.n_rows), np.diff(m.indptr))
        rn, cn = m.row_names(), m.col_names()
        names = [f"{rn[i]}:{cn[j]}" for i, j in zip(rows, m.indices, strict=True)]
        g = vg.grad_matrix(m)
    entries = {n: float(v) for n, v in zip(names, g, strict=True)}
    out = {"value": vg.value, "wrt": wrt, "kink": vg.kink_for(wrt), "gradient": entries,
           "candidates": [c.tolist() for c in vg.candidates] if wrt == "rhs" else None,
           "note": "an element of the conservative Jacobian; at a kink, one of several"}
    if output:
        if output.endswith(".json"):
            write_json_atomic(output, out)
        else:
            write_text_atomic(output, "name,gradient\n" + "".join(f"{k},{v!r}\n" for k, v in entries.items()))
    if as_json:
        terminal.emit_json(out)
    elif not output:
        click.echo(f"value {vg.value!r}  kink {vg.kink_for(wrt)}")
        for k, v in entries.items():
            if v != 0:
                click.echo(f"{k} {v!r}")
