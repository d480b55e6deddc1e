"""The terminal: status and progress on stderr (rich), data on stdout (plain text or compact JSON).

Progress is drawn only when stderr is a terminal, so pipes and logs get no
control characters and nothing is left on screen.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bnnmilp.backends.base import Progress
from bnnmilp.yamlio import dumps_json

err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def status(msg: str) -> None:
    err.print(msg)


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows:
        t.add_row(k, str(v))
    err.print(t)


def _fmt(v: float) -> str:
    return f"{v:g}" if math.isfinite(v) else "-"


@contextmanager
def solve_progress(label: str, time_limit: float | None):
    """Yield a progress callback drawing incumbent, bound, gap and elapsed time live on stderr."""
    if not err.is_terminal:
        yield None
        return
    t0 = time.monotonic()
    with Live(console=err, refresh_per_second=4, transient=True) as live:
        def update(p: Progress) -> None:
            limit = f" / {time_limit:g}s" if time_limit else ""
            gap = f"{100 * p.gap:.1f}%" if math.isfinite(p.gap) else "-"
            live.update(f"[bold]{label}[/] incumbent {_fmt(p.incumbent)}  bound {_fmt(p.bound)}  gap {gap}  "
                        f"nodes {p.nodes}  {time.monotonic() - t0:.1f}s{limit}  (Ctrl-C stops, keeps the best)")
        yield update


@contextmanager
def sample_progress(total: int, label: str = "samples"):
    """Yield a callback advancing a progress bar over samples or jobs (drawn only on a terminal)."""
    if not err.is_terminal:
        yield lambda _r: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("verifying" if label == "samples" else "running"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err,
                  transient=True) as prog:
        task = prog.add_task(label, total=total)
        yield lambda _r: prog.advance(task)
