"""One exhaustive enumeration (``reach.Enumeration``) shared by several processes on this machine.

``--workers`` spreads the queries of a test set over processes; a single hard query (``--min-eps`` on one
image, where one budget holds billions of choices) would still run on one core. Here its choices are dealt
out as interleaved parts (``Enumeration.search(part=(i, n))``: every n-th row of every block of prefixes),
one per process; the parts together are the whole enumeration, so ``None`` from every part is the same proof
as ``None`` from one process. The first counterexample any part finds ends the others (it is replayed by the
caller like any other). The processes are forked after the evaluator and the tail plan are made, so nothing is
pickled on the way in and each starts at once; where fork is not available (macOS, Windows, or inside a
daemonic worker) the search runs in this process."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue

import numpy as np

from bnnmilp.verification.robustness.reach import Enumeration, SearchTimeoutError

SPLIT_MIN = 20_000_000  # choices from which starting processes pays (Sakai's mnist network: about 6 s of work)
POLL_SECONDS = 0.2  # how often the parent checks that its parts are alive while it waits


# the speed-up per process (as many as cores): Sakai's mnist network, image 21 at L1 budget 6, 2 processes on 2
# cores check 1.4x the choices per second of one (each part keeps its own caches of patterns already evaluated)
GAIN_PER_PROCESS = 0.7


def usable(processes: int, choices: int) -> bool:
    """Would ``search`` use several processes for an enumeration of this many choices?"""
    return processes > 1 and choices >= SPLIT_MIN and "fork" in mp.get_all_start_methods() \
        and not mp.current_process().daemon


def gain(processes: int, choices: int) -> float:
    """How much faster ``search`` gets through the choices than one process (for the engine's estimate)."""
    if not usable(processes, choices):
        return 1.0
    return max(1.0, GAIN_PER_PROCESS * min(processes, os.cpu_count() or 1))


def search(enum: Enumeration, x: np.ndarray, adversarial, deadline: float | None, processes: int
           ) -> np.ndarray | None:
    """``enum.search(x, adversarial, deadline)`` on ``processes`` processes (see the module docstring): a
    counterexample x', or None when no admissible choice is adversarial. Raises SearchTimeoutError at
    ``deadline`` with the choices done by all parts, and RuntimeError when a part fails."""
    if not usable(processes, enum.reach.combinations):
        return enum.search(x, adversarial, deadline)
    enum.ev, enum.plan  # noqa: B018 -- made here, once, and inherited by the forked parts
    ctx = mp.get_context("fork")
    answers = ctx.Queue()
    parts = [ctx.Process(target=_part, args=(enum, x, adversarial, deadline, (i, processes), answers),
                         daemon=True) for i in range(processes)]
    try:
        for p in parts:
            p.start()
        done, timed_out, finished = 0, False, 0
        while finished < processes:
            try:
                kind, value = answers.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p.exitcode for p in parts if p.exitcode not in (None, 0)]
                if dead and answers.empty():
                    raise RuntimeError(f"a part of the enumeration ended with exit code {dead[0]}") from None
                continue
            finished += 1
            if kind == "hit":
                return value
            if kind == "error":
                raise RuntimeError(f"a part of the enumeration failed: {value}")
            if kind == "timeout":
                timed_out = True
            done += value
        if timed_out:
            raise SearchTimeoutError(done)
        return None
    finally:
        for p in parts:
            if p.is_alive():
                p.terminate()
        for p in parts:
            p.join()
        answers.close()


def _part(enum: Enumeration, x: np.ndarray, adversarial, deadline: float | None, part: tuple[int, int],
          answers) -> None:
    """One process's share: ("hit", x'), ("none", choices done), ("timeout", choices done) or ("error", why).
    BLAS keeps to one thread here: the parts already fill the cores (with OpenBLAS's own threads on top, two
    parts on two cores went slower than one process). The signal handlers inherited from the command line are
    dropped: the parent ends its parts with SIGTERM, and Ctrl-C is the parent's to handle (it ends them)."""
    import signal

    from threadpoolctl import threadpool_limits

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with threadpool_limits(limits=1):
            xp = enum.search(x, adversarial, deadline, part)
        answers.put(("hit", xp) if xp is not None else ("none", enum.done))
    except SearchTimeoutError as stop:
        answers.put(("timeout", stop.done))
    except BaseException as err:  # reported to the parent, which raises
        answers.put(("error", f"{type(err).__name__}: {err}"))
