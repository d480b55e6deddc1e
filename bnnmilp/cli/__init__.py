"""The command-line interface: thin click commands that parse options, call the library and render.

Errors are mapped to exit codes in one place (:class:`App.invoke`): bad input
2 with one line naming the file, key and expectation; a false claim 1;
Ctrl-C 130. ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import click

from bnnmilp import __version__
from bnnmilp.errors import EXIT_INTERRUPTED, BnnMilpError


class App(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BnnMilpError as exc:
            if ctx.params.get("debug"):
                raise
            from bnnmilp.cli.terminal import err

            err.print(f"bnnmilp: error: {exc}", markup=False, soft_wrap=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            click.echo("bnnmilp: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=App, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnnmilp")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def main(debug: bool) -> None:
    """Train binarized neural networks exactly by mixed-integer linear programming, and check the claims.

    \b
    Typical pipeline:
      bnnmilp encode  configs/xor.yaml samples/xor.yaml -o xor.mps      # the MILP, for any solver
      bnnmilp train   configs/xor.yaml samples/xor.yaml -o runs/xor     # solve with HiGHS, write weights
      bnnmilp verify  runs/xor samples/xor.yaml                         # re-check every claim exactly
      bnnmilp predict runs/xor samples/xor.yaml                         # predictions and accuracy
      bnnmilp certify runs/xor samples/xor.yaml                         # a proof anyone can check
      bnnmilp verify  runs/xor samples/xor.yaml --robust --eps 0.125    # robustness per sample

    More: value-function and grad (value functions, dual functions, gradients through a MILP),
    explain (sensitivity of the training loss to the data), sweep and train --ensemble ovo
    (independent jobs on a process pool or Dask).

    Exit status: 0 ok, 1 a claim is false (verify) or no solution exists, 2 bad input, 130 interrupted.
    """


from bnnmilp.cli import certify, encode, explain, grad, predict, sweep, train, valuefn, verify  # noqa: E402

for _mod in (encode, train, verify, predict, certify, valuefn, grad, explain, sweep):
    main.add_command(_mod.command)
