"""Options and loaders shared by several commands."""

from __future__ import annotations

import math

import click

from bnnmilp.limits import MAX_THREADS

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")


def time_limit_option(stages: str):
    """--time-limit for a command whose work has no partial result: past it, exit 3 and nothing written."""
    return click.option("--time-limit", type=Finite(min=0, min_open=True), default=None,
                        help=f"Seconds of wall clock for {stages}; past them the command stops with exit status 3 "
                             "and writes nothing [default: no limit].")


def load_inputs(network: str, data: str):
    """Read and validate a spec and a data set that must fit it."""
    from bnnmilp.data import load_data
    from bnnmilp.spec import load_spec

    spec = load_spec(network)
    ds = load_data(data)
    ds.check_fits(spec.network.n_inputs, spec.network.n_outputs)
    return spec, ds


def one_stdout(as_json: bool, **outputs: str | None) -> None:
    """Standard output carries one thing: refuse two outputs given as ``-``, or one with --json."""
    from bnnmilp.errors import InputError
    from bnnmilp.io.yamlio import is_stdio

    dashes = [name for name, path in outputs.items() if is_stdio(path)]
    if len(dashes) + bool(as_json and dashes) > 1:
        raise InputError(None, " and ".join(f"--{d}" for d in dashes) + (" and --json" if as_json else ""),
                         "only one of them can go to standard output (-)")


class Finite(click.ParamType):
    """A finite float in a range: NaN and infinities are refused (click's FloatRange lets NaN through)."""

    name = "number"

    def __init__(self, min: float | None = None, max: float | None = None, min_open: bool = False) -> None:
        self.min, self.max, self.min_open = min, max, min_open

    def convert(self, value, param, ctx) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number, got {value!r}", param, ctx)
        if not math.isfinite(v):
            self.fail(f"expected a finite number, got {value!r}", param, ctx)
        if self.min is not None and (v < self.min or (self.min_open and v == self.min)):
            self.fail(f"expected a number {'>' if self.min_open else '>='} {self.min:g}, got {value!r}", param, ctx)
        if self.max is not None and v > self.max:
            self.fail(f"expected a number <= {self.max:g}, got {value!r}", param, ctx)
        return v


PARALLEL = click.IntRange(min=1, max=MAX_THREADS)  # threads, processes, parts of a search
POSITIVE = Finite(min=0, min_open=True)
NONNEGATIVE = Finite(min=0)
NUMBER = Finite()


def load_box_option(path: str | None, n_inputs: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """--box FILE: per-feature (lower, upper) as tuples (RobustOptions are hashable), or None."""
    if path is None:
        return None
    from bnnmilp.data import load_box

    lo, hi = load_box(path, n_inputs)
    return tuple(lo.tolist()), tuple(hi.tolist())


def parse_bounds(value: str | None) -> tuple[float, float] | None:
    """--bounds LO:HI: the input domain, finite, LO <= HI."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected LO:HI, e.g. 0:16, got {value!r}", param_hint="--bounds") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise click.BadParameter(f"expected finite LO <= HI, got {value!r}", param_hint="--bounds")
    return lo, hi


def _checked(folder: bool):
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        """Output paths are checked when the options are parsed: before any reading or solving."""
        from bnnmilp.errors import OutputError
        from bnnmilp.io.yamlio import check_output_path

        if value is not None:
            try:
                check_output_path(value, folder)
            except OutputError as exc:
                raise click.BadParameter(str(exc), ctx, param) from None
        return value

    return callback


OUTPUT_FILE = _checked(folder=False)
OUTPUT_DIR = _checked(folder=True)


def PLOT_FILE(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:  # noqa: N802
    """A picture to write: writable, and .png, .svg or .pdf (checked before any work)."""
    from bnnmilp.analysis.plots import plot_format
    from bnnmilp.errors import InputError

    value = OUTPUT_FILE(ctx, param, value)
    if value is not None:
        try:
            plot_format(value)
        except InputError as exc:
            raise click.BadParameter(exc.expected, ctx, param) from None
    return value


def scheduler_option(help_text: str):
    """--scheduler, checked when parsed: 'local' or a Dask address."""
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        from bnnmilp.errors import InputError
        from bnnmilp.execution.jobs import check_scheduler

        try:
            return check_scheduler(value)
        except InputError as exc:
            raise click.BadParameter(exc.expected, ctx, param) from None

    return click.option("--scheduler", callback=callback, help=help_text)
