"""Run one CLI invocation in a fresh process under resource limits, fast.

A fork server imports bnnmilp (and numpy, HiGHS, ONNX) once, before any solver thread exists; each case is a
process forked from it, which caps its own address space (``resource.setrlimit``), sends stdout and stderr
to files, runs the command and reports its exit status and peak memory. A case that outlives its time is
killed and reported as such. So a size bomb that would allocate gigabytes fails the test (MemoryError is an
internal error, exit 3) instead of the machine.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
from dataclasses import dataclass
from pathlib import Path

PRELOAD = ["bnnmilp.cli", "numpy", "yaml", "highspy", "onnx", "bnnmilp.milp.backends.highs",
           "bnnmilp.io.importers.onnx", "bnnmilp.verification.checkers.proofs"]
MEMORY_CAP = 1536 * 2**20  # address space a case may add to the fork server's
TIME_CAP = 30.0  # seconds a case may run


@dataclass
class Outcome:
    code: int | None  # exit status; None when killed at TIME_CAP
    stdout: str
    stderr: str
    extra_rss_mb: float  # peak resident memory beyond the fork server's, MB
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _case(args: list[str], cwd: str, env: dict[str, str], out: str, err: str, report: str) -> None:
    """In the forked child: limits, redirections, the command, its status (os._exit: no atexit, no pytest)."""
    import sys

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    limit = _vm_size() + MEMORY_CAP
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.chdir(cwd)
    os.environ.update(env)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, out), (2, err)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    code = 99
    try:
        from bnnmilp.cli import main

        main.main(args, prog_name="bnnmilp")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        sys.stderr.write(f"Traceback (escaped the CLI): {exc.__class__.__name__}: {exc}\n")
        code = 98
    sys.stdout.flush()
    sys.stderr.flush()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(report).write_text(f"{(peak - base_rss) / 1024:.1f}")
    os._exit(code)


_CTX: list = []


def _context():
    if not _CTX:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _CTX.append(ctx)
    return _CTX[0]


def run_isolated(args: list[str], cwd: str | Path, env: dict[str, str] | None = None,
                 time_cap: float = TIME_CAP) -> Outcome:
    """Run ``bnnmilp ARGS`` in ``cwd`` in a forked, memory-capped process; kill it after ``time_cap`` seconds."""
    import tempfile
    import time

    with tempfile.TemporaryDirectory(prefix="bnnmilp_case_") as d:
        out, err, report = (str(Path(d) / n) for n in ("out", "err", "rss"))
        proc = _context().Process(target=_case, args=([str(a) for a in args], str(cwd), env or {}, out, err, report))
        t0 = time.perf_counter()
        proc.start()
        proc.join(time_cap)
        killed = proc.is_alive()
        if killed:
            proc.kill()
            proc.join()
        seconds = time.perf_counter() - t0
        read = (lambda p: Path(p).read_text(errors="replace") if Path(p).exists() else "")  # noqa: E731
        rss = float(read(report) or "nan")
        return Outcome(None if killed else proc.exitcode, read(out), read(err), rss, seconds)
