"""``bnnmilp-vnnlib``: the solver interface of chapter 5 of the VNN-LIB 2.0 standard.

    bnnmilp-vnnlib verify QUERY.vnnlib --network NAME=MODEL.onnx [--timeout SECONDS]
    bnnmilp-vnnlib supports --onnx-operators   (and the ten other capabilities of section 5.4)
    bnnmilp-vnnlib --name | --version

``verify`` prints sat, unsat, unknown or timed-out as the first line of stdout, and after sat the satisfying
assignment (section 5.3.1); notes go to stderr. Errors (a file that cannot be read, an operator that is not
supported) are one line on stderr and exit status 2; every answer exits 0. Tools that drive one executable
(vnnlib-satisfactory, VNN-COMP harnesses) call this; people may prefer ``bnnmilp verify MODEL --vnnlib QUERY``.
"""

from __future__ import annotations

import sys

import click

from bnnmilp import __version__

# Operators whose every use bnnmilp reads exactly (on the network's tensor; any operator on constants is folded)
OPERATORS = ("Add", "BatchNormalization", "Concat", "Constant", "ConstantOfShape", "Conv", "Dropout", "Expand",
             "Flatten", "Gather", "Gemm", "Greater", "GreaterOrEqual", "Identity", "Less", "LessOrEqual", "MatMul",
             "Neg", "ReduceMean", "ReduceSum", "Reshape", "Shape", "Sign", "Slice", "Split", "Squeeze", "Sub",
             "Transpose", "Unsqueeze")
CAPABILITIES = {
    "onnx-opset-versions": ("11", "21"),
    "onnx-element-types": ("float32", "float64", "float16"),
    "onnx-operators": OPERATORS,
    "vnnlib-versions": ("1.0", "2.0"),
    "hidden-node-theories": ("NH",),
    "multiple-input-output-theories": ("SIO",),
    "multiple-network-theories": ("SNET",),
    "multiple-node-comparison-theories": ("SNC", "MNC"),
    "arithmetic-complexity-theories": ("BND", "OUTC", "LIN"),
    "optimised-disjunctive-reasoning": ("true",),
    "serialise-assignments": ("false",),
}


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--name", "show_name", is_flag=True, help="Print the solver's name.")
@click.option("--version", "show_version", is_flag=True, help="Print the solver's version.")
@click.pass_context
def main(ctx: click.Context, show_name: bool, show_version: bool) -> None:
    """bnnmilp as a VNN-LIB solver (chapter 5 of the VNN-LIB 2.0 standard): exact answers on ONNX binarized
    and linear networks."""
    if show_name or show_version:
        if ctx.invoked_subcommand is not None:
            raise click.UsageError("--name and --version are global options, not for a command")
        click.echo("bnnmilp" if show_name else __version__)
    elif ctx.invoked_subcommand is None:
        raise click.UsageError("no command given (verify or supports)")


@main.command("verify")
@click.argument("query", type=click.Path(dir_okay=False))
@click.option("--network", "networks", multiple=True, metavar="NAME=MODEL.onnx",
              help="The model for each network the query declares (a VNN-LIB 1.0 query: one, whatever NAME is).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds for the whole answer.")
@click.option("--serialise-assignments", "--assignments", "assignments", type=click.Path(),
              help="Not supported (supports --serialise-assignments says false): the assignment goes to stdout.")
def verify(query: str, networks: tuple[str, ...], timeout: float | None, assignments: str | None) -> None:
    """Answer QUERY: sat (with the assignment), unsat, unknown or timed-out."""
    from bnnmilp.io.vnnlib import read_query
    from bnnmilp.verification.robustness.vnnlib import answer_within, assignment_block

    mapping = dict(_mapping(n) for n in networks)
    q = read_query(query, network=next(iter(mapping), None))
    if q.version == "2.0" and set(mapping) != {q.network}:
        raise click.UsageError(f"--network: the query declares network {q.network!r}; got "
                               f"{', '.join(repr(k) for k in mapping) or 'none'}")
    if len(mapping) != 1:
        raise click.UsageError("--network NAME=MODEL.onnx: exactly one model")
    if assignments:
        click.echo("bnnmilp-vnnlib: warning: --serialise-assignments is not supported; the assignment is on stdout",
                   err=True)
    ans = answer_within(q, next(iter(mapping.values())), timeout)
    for note in ans.notes:
        click.echo(f"bnnmilp-vnnlib: {note}", err=True)
    text = f"{ans.result}\n" + (assignment_block(q, ans) if ans.result == "sat" else "")
    sys.stdout.write(text)


def _mapping(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise click.BadParameter(f"expected NAME=MODEL.onnx, got {item!r}", param_hint="--network")
    return name, path



def _capability_command(name: str, hidden: bool = False) -> click.Command:
    @click.command(name, hidden=hidden)
    @click.pass_context
    def command(ctx: click.Context, **flags: bool) -> None:
        asked = [k.replace("_", "-") for k, v in flags.items() if v]
        if len(asked) != 1:
            raise click.UsageError(f"give exactly one of: {', '.join('--' + k for k in CAPABILITIES)}")
        key = "multiple-input-output-theories" if asked[0] == "multiple-inputs-output-theories" else asked[0]
        sys.stdout.write("".join(f"{v}\n" for v in CAPABILITIES[key]))

    command.__doc__ = "Report one capability (section 5.4 of the standard)."
    for key in CAPABILITIES:
        command = click.option(f"--{key}", is_flag=True)(command)
    return click.option("--multiple-inputs-output-theories", is_flag=True, hidden=True)(command)


main.add_command(_capability_command("supports"))
main.add_command(_capability_command("capabilities", hidden=True))


def run() -> None:
    """The console entry point: errors as one line on stderr with exit status 2, answers with 0."""
    from bnnmilp.errors import BnnMilpError

    try:
        main.main(standalone_mode=False)
        code = 0
    except click.ClickException as exc:
        click.echo(f"bnnmilp-vnnlib: {exc.format_message()}", err=True)
        code = 2
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except BnnMilpError as exc:
        click.echo(f"bnnmilp-vnnlib: {' '.join(str(exc).split())}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("bnnmilp-vnnlib: interrupted", err=True)
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    import os

    os._exit(code)
