from __future__ import annotations

import click

from bnnmilp.cli.common import NUMBER, OUTPUT_FILE, PLOT_FILE, json_option, one_stdout
from bnnmilp.limits import MAX_STEPS


@click.command("value-function")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--row", required=True, help="Name of the row whose right-hand side b varies.")
@click.option("--from", "start", type=NUMBER, required=True)
@click.option("--to", "stop", type=NUMBER, required=True)
@click.option("--steps", type=click.IntRange(min=2, max=MAX_STEPS), default=41, show_default=True,
              help=f"Values of b in [--from, --to], each one MILP solve (at most {MAX_STEPS:,}).")
@click.option("--dual-function", is_flag=True, help="Also evaluate the dual function F of one tree built at --at.")
@click.option("--at", "b0", type=NUMBER, help="Where the tree is built (default: the row's right-hand side).")
@click.option("-o", "--output", callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="Write a CSV (or JSON with .json).")
@click.option("--plot", callback=PLOT_FILE, type=click.Path(dir_okay=False),
              help="Draw z (and F): .png, .svg or .pdf (needs matplotlib).")
@json_option
def command(model: str, row: str, start: float, stop: float, steps: int, dual_function: bool, b0: float | None,
            output: str | None, plot: str | None, as_json: bool) -> None:
    """The value function z(b) of MODEL along one row's right-hand side, and a dual function F <= z.

    z(b) is solved for each of --steps values of b in [--from, --to]. With --dual-function, one
    branch-and-bound tree is built at b0 and its dual function F(b) = min over leaves of an affine piece
    (slope: the leaf's multiplier of the row) is evaluated on the same grid; F <= z everywhere and
    F(b0) = z(b0). The paper's Figure 4 shows such a pair.

    \b
    Example:
      bnnmilp value-function samples/guzelsoy_ralphs.lp --row b --from -2 --to 2 --dual-function --at 0.5
      bnnmilp value-function samples/guzelsoy_ralphs.lp --row b --from -2 --to 2 -o - | head -5
    """

    import numpy as np

    from bnnmilp.analysis.valuefn import dual_function as build_dual
    from bnnmilp.analysis.valuefn import value_function
    from bnnmilp.cli import terminal
    from bnnmilp.errors import InputError
    from bnnmilp.io.yamlio import write_json_atomic, write_text_atomic
    from bnnmilp.milp.backends.highs import read

    one_stdout(as_json, output=output, plot=plot)
    m = read(model)
    names = m.row_names()
    if row not in names:
        raise InputError(model, f"--row {row}", f"no such row (rows: {', '.join(names[:8])}...)")
    i = names.index(row)
    from fractions import Fraction

    a, b = Fraction(start), Fraction(stop)  # the grid in rationals, each point rounded once: -1.3, not -1.2999...
    betas = np.array([float(a + (b - a) * k / (steps - 1)) for k in range(steps)])
    z = value_function(m, i, betas)
    F = None
    if dual_function:
        if b0 is None:
            b0 = float(m.row_lower[i] if np.isfinite(m.row_lower[i]) else m.row_upper[i])
        F = build_dual(m, i, b0)
    rows = [{"b": float(b), "z": zz, **({"F": F(float(b)), "kink": len(F.active(float(b))) > 1} if F else {})}
            for b, zz in zip(betas, z, strict=True)]
    head = "b,z" + (",F,kink" if F else "")
    table = "\n".join([head] + [",".join("" if r.get(k) is None else str(r.get(k)) for k in head.split(","))
                                for r in rows]) + "\n"  # an empty z: infeasible at that b
    if output:
        if output.endswith(".json"):
            write_json_atomic(output, rows)
        else:
            write_text_atomic(output, table)
    if plot:
        _plot(plot, betas, z, F, row)
    if as_json:
        terminal.emit_json({"row": row, "b0": b0, "pieces": F.pieces if F else None, "points": rows})
    elif not output:  # the table is the data: CSV on stdout
        click.echo(table, nl=False)


def _plot(path: str, betas, z, F, row: str) -> None:
    from bnnmilp.analysis.plots import value_function

    value_function(path, betas, z, F, row)
