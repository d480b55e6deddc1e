"""The command-line interface: thin click commands that parse options, call the library and render.

Errors are mapped to exit codes in one place (:class:`App`): bad input and usage errors 2 with one
line naming the file or option, the key and the expectation; a false claim 1; a solver that failed or
could not finish 3; Ctrl-C 130; SIGTERM 143; SIGHUP 129 (a closed terminal or ssh session). An unexpected
exception is one line too (exit 3, "internal error"); ``--debug`` (anywhere on the command line, or
BNNMILP_DEBUG=1) shows tracebacks instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import click

from bnnmilp import __version__
from bnnmilp.errors import (
    EXIT_BAD_INPUT,
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_SOLVER,
    EXIT_TERMINATED,
    BnnMilpError,
)


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, batch schedulers, docker stop) or SIGHUP (the terminal or ssh session closed): handled
    like Ctrl-C, the best result so far is kept."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


SIGNALS = {"terminated": False, "code": EXIT_INTERRUPTED}  # set by a signal: the exit status to end with
CAUGHT = {signal.SIGTERM: ("terminated", EXIT_TERMINATED), signal.SIGHUP: ("hangup", EXIT_HANGUP)}


def _on_signal(signum: int, frame: object) -> None:
    SIGNALS["terminated"] = True
    SIGNALS["code"] = CAUGHT[signal.Signals(signum)][1]
    raise Terminated(signum)


def _interrupt_of(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The word and exit status of an interrupt: a signal's own, also when the library absorbed the signal's
    exception (a solver stopped by it) and raised a plain KeyboardInterrupt on its behalf."""
    signum = getattr(exc, "signum", None)
    if signum is not None:
        return CAUGHT[signal.Signals(signum)]
    if SIGNALS["terminated"]:
        return next(w for w, c in CAUGHT.values() if c == SIGNALS["code"]), int(SIGNALS["code"])
    return "interrupted", EXIT_INTERRUPTED


def exit_code_of_interrupt() -> int:
    """130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return int(SIGNALS["code"])


GLOBAL_FLAGS = ("--debug", "--quiet", "-q")


def _debug_anywhere(args: list[str]) -> list[str]:
    """The global options (--debug, --quiet, --progress MODE) are accepted after the subcommand too: moved to
    the front (and BNNMILP_DEBUG=1 means --debug)."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    front, rest, i = [], [], 0
    while i < len(args):
        a = args[i]
        if i < end and a in GLOBAL_FLAGS:
            front.append(a)
        elif i < end and a == "--progress" and i + 1 < end:
            front += [a, args[i + 1]]
            i += 1
        elif i < end and a.startswith("--progress="):
            front.append(a)
        else:
            rest.append(a)
        i += 1
    if "--debug" not in front and os.environ.get("BNNMILP_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        front.append("--debug")
    return front + rest


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _one_blas_thread_per_worker(args: list[str]) -> None:
    """With --workers N > 1 (or --scheduler) the processes are the parallelism: each numpy gets one BLAS thread,
    as Dask's workers do, instead of N processes each spinning up a thread per core. Set before numpy is
    first imported (the CLI imports it lazily); a value the user set wins."""
    workers = 1
    for i, a in enumerate(args):
        if a == "--workers" and i + 1 < len(args) and args[i + 1].isdigit():
            workers = int(args[i + 1])
        elif a.startswith("--workers=") and a.split("=", 1)[1].isdigit():
            workers = int(a.split("=", 1)[1])
    if (workers > 1 or "--scheduler" in args or any(a.startswith("--scheduler=") for a in args)) \
            and "numpy" not in sys.modules:
        for name in BLAS_THREADS:
            os.environ.setdefault(name, "1")


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("debug"))


def run() -> None:
    """The console entry point (``bnnmilp``, ``python -m bnnmilp``): :data:`main`, then the process ends with its
    status at once (``os._exit``, output flushed). Once HiGHS was loaded its threads (a solve stopped by a
    signal, one abandoned past its time limit, the global task scheduler) can still be alive, and the
    interpreter's shutdown under them aborts the process ("terminate called without an active exception",
    SIGABRT) after the results were written; and tearing down a large model object by object takes seconds
    (a second and more after an encoding stopped by its time limit) that the budget does not have. Every
    file is closed and every temporary folder removed by then. Library users and tests call :data:`main`
    and exit as usual."""
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if not isinstance(code, int) and code is not None:
        print(code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head) or stream
            stream.flush()
    os._exit(status)


class App(click.Group):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        """click's main, with every usage error as one line on stderr (exit 2) instead of a usage block."""
        args = _debug_anywhere(sys.argv[1:] if args is None else args)
        _one_blas_thread_per_worker(args)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        previous = {}
        for signum in CAUGHT:
            with contextlib.suppress(ValueError):  # not the main thread
                previous[signum] = signal.signal(signum, _on_signal)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "bnnmilp"
            click.echo(f"{where}: error: {_one_line(exc.format_message())} (see '{where} --help')", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as exc:
            click.echo(f"bnnmilp: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("bnnmilp: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BnnMilpError as exc:
            if _debug(ctx):
                raise
            self._fail(ctx, f"bnnmilp: error: {_one_line(str(exc))}", exc.exit_code)
        except KeyboardInterrupt as exc:
            if _debug(ctx):
                raise
            word, code = _interrupt_of(exc)
            self._fail(ctx, f"bnnmilp: {word}", code)
        except Exception as exc:
            if _debug(ctx):
                raise
            if isinstance(exc, OSError):
                where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
                msg, code = f"bnnmilp: error: {where}{exc.strerror or exc}", EXIT_BAD_INPUT
            else:
                msg = f"bnnmilp: internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for a traceback)"
                code = EXIT_SOLVER
            self._fail(ctx, _one_line(msg), code)

    @staticmethod
    def _fail(ctx: click.Context, line: str, code: int) -> None:
        from bnnmilp.cli.terminal import err

        err.print(line, markup=False, soft_wrap=True, highlight=False)
        ctx.exit(code)


@click.group(name="bnnmilp", cls=App, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bnnmilp")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors (also after the command, or "
                                            "BNNMILP_DEBUG=1).")
@click.option("--progress", type=click.Choice(["auto", "plain", "rich", "none"]), default="auto", show_default=True,
              help="Progress on stderr: rich (live, on a terminal), plain (a timestamped line every few seconds: "
                   "the default in pipes and logs), none.")
@click.option("-q", "--quiet", is_flag=True, help="Errors only on stderr (no status, tables or progress).")
def main(debug: bool, progress: str, quiet: bool) -> None:
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

    Exit status: 0 ok; 1 a claim is false (verify) or no solution exists; 2 bad input (a file, a key, an
    option, or an output that cannot be written); 3 the solver failed or could not finish (or an internal
    error); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM); 129 hangup (SIGHUP). Add --debug (or set
    BNNMILP_DEBUG=1) for a traceback.
    """
    from bnnmilp.cli import terminal

    terminal.configure(progress, quiet)


from bnnmilp.cli import (  # noqa: E402
    bound,
    certify,
    encode,
    explain,
    grad,
    importer,
    predict,
    show,
    sweep,
    train,
    valuefn,
    verify,
)

for _mod in (encode, train, verify, predict, show, certify, bound, valuefn, grad, explain, sweep, importer):
    main.add_command(_mod.command)
main.add_command(importer.export_command)
