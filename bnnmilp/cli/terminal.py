"""The terminal: status and progress on stderr, data on stdout (plain text or compact JSON).

Progress (``--progress``): ``rich`` draws live lines and bars (the default on a terminal); ``plain``
writes a timestamped line every few seconds on long work, never wrapped and free of control characters
(the default when stderr is a pipe or a log file); ``none`` draws nothing. ``--quiet`` keeps stderr to
errors only.
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

from bnnmilp.io.yamlio import dumps_json
from bnnmilp.milp.backends.base import Progress

err = Console(stderr=True, highlight=False, soft_wrap=True)
if not err.is_terminal:  # a log file or a pipe: lines as long as they need (no wrapping mid-number)
    err = Console(stderr=True, highlight=False, soft_wrap=True, width=1000)

SETTINGS: dict[str, Any] = {"progress": "auto", "quiet": False}
PLAIN_EVERY = 5.0  # seconds between plain progress lines


def configure(progress: str = "auto", quiet: bool = False) -> None:
    SETTINGS.update(progress=progress, quiet=quiet)


def mode() -> str:
    """rich, plain or none: what progress looks like now."""
    if SETTINGS["quiet"]:
        return "none"
    if SETTINGS["progress"] == "auto":
        return "rich" if err.is_terminal else "plain"
    return str(SETTINGS["progress"])


def note(line: str) -> None:
    """A step of long work (building a model, a heuristic start): a timestamped line in logs, a status line on
    a terminal, nothing with --quiet or --progress none."""
    how = mode()
    if how == "plain":
        plain(line)
    elif how == "rich":
        err.print(f"[dim]{line}[/]")


def plain(line: str) -> None:
    """One timestamped progress line on stderr."""
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    sys.stderr.flush()


def emit_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def status(msg: str, markup: bool = True) -> None:
    if not SETTINGS["quiet"]:
        err.print(msg, markup=markup)


def emit_csv(rows: list[dict[str, Any]]) -> None:
    """A table on stdout as CSV (a header line, then one line per row)."""
    import csv

    if not rows:
        return
    w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    sys.stdout.flush()


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    if SETTINGS["quiet"]:
        return
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows:
        t.add_row(k, cell(v))
    err.print(t)


LAYER_COLUMNS = [("layer", "layer"), ("in", "inputs"), ("out", "outputs"), ("kind", "kind"), ("stored", "stored"),
                 ("non-zeros", "nonzeros"), ("density", "density"), ("thresholds", "thresholds"),
                 ("operations", "operations"), ("op", "operation"), ("weight bytes", "weight_bytes")]


def layers_table(title: str, summary: dict[str, Any]) -> None:
    """A network's layers (``analysis.summary``) as a table on standard output: the command's data."""
    t = Table(title=title, title_justify="left")
    for head, _ in LAYER_COLUMNS:
        t.add_column(head, justify="right" if head not in ("kind", "stored", "thresholds", "op") else "left")
    for r in summary["per_layer"]:
        t.add_row(*(cell(r[key]) for _, key in LAYER_COLUMNS))
    t.caption = (f"parameters {summary['parameters']:,}; non-zero weights {summary['nonzeros']:,}; operations "
                 f"{summary['operations']:,}; memory {summary['memory_bytes']:,.0f} bytes")
    Console(highlight=False, soft_wrap=True, width=200 if not sys.stdout.isatty() else None).print(t)


def cell(v: Any) -> str:
    """A value as people read it in a table (``--json`` keeps the full values): floats to 6 significant
    digits, mappings as "milp 455, interval 45", lists of names without quotes, None as "-"."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "-"
    if isinstance(v, float):
        return _fmt(float(f"{v:.6g}"))
    if isinstance(v, dict):
        return ", ".join(f"{k} {cell(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(cell(x) for x in v) + "]"
    return str(v)


def _fmt(v: float) -> str:
    return f"{v:g}" if math.isfinite(v) else "-"


@contextmanager
def solve_progress(label: str, time_limit: float | None):
    """Yield a progress callback showing incumbent, bound, gap, nodes and elapsed time on stderr (live, or a
    plain line every PLAIN_EVERY seconds), or None when nothing is shown."""
    how = mode()
    if how == "none":
        yield None
        return
    t0 = time.monotonic()

    def line(p: Progress) -> str:
        limit = f" / {time_limit:g}s" if time_limit else ""
        gap = f"{100 * p.gap:.1f}%" if math.isfinite(p.gap) else "-"
        stage = f" stage {p.stage}" if p.stage else ""
        return (f"{label}{stage}: incumbent {_fmt(p.incumbent)}  bound {_fmt(p.bound)}  gap {gap}  nodes {p.nodes}  "
                f"elapsed {time.monotonic() - t0:.1f}s{limit}")

    if how == "plain":
        last = [-math.inf]

        def every(p: Progress) -> None:
            if time.monotonic() - last[0] >= PLAIN_EVERY:
                last[0] = time.monotonic()
                plain(line(p))
        yield every
        return
    with Live(console=err, refresh_per_second=4, transient=True) as live:
        def update(p: Progress) -> None:
            live.update(f"[bold]{line(p)}[/]  (Ctrl-C stops, keeps the best)")
        yield update


@contextmanager
def sample_progress(total: int, label: str = "samples"):
    """Yield a callback advancing a progress bar over samples or jobs (plain: a line every PLAIN_EVERY seconds
    and at the end)."""
    how = mode()
    if how == "none" or total == 0:
        yield lambda _r: None
        return
    if how == "plain":
        t0, state = time.monotonic(), {"done": 0, "last": time.monotonic()}
        word = "verifying" if label == "samples" else "running"

        def advance(_r: object) -> None:
            state["done"] += 1
            now = time.monotonic()
            if now - state["last"] >= PLAIN_EVERY or state["done"] == total:
                state["last"] = now
                plain(f"{word}: {state['done']}/{total} {label}  elapsed {now - t0:.1f}s")
        yield advance
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("verifying" if label == "samples" else "running"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err,
                  transient=True) as prog:
        task = prog.add_task(label, total=total)
        yield lambda _r: prog.advance(task)
