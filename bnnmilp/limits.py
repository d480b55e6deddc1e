"""Resource limits: sizes a small file may declare, checked before any memory is spent on them.

A 64-byte NPZ can declare a 10^6 x 10^6 array, a YAML alias bomb a billion nodes, a spec a layer of 10^8
neurons. Every reader checks the declared size against these limits first and refuses with the size found
and the size allowed. The element limit is the one a real user may need to raise (a large data set):
``BNNMILP_MAX_ELEMENTS`` sets it; the others are far beyond anything bnnmilp can train or verify.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
from collections.abc import Iterator

DEFAULT_MAX_ELEMENTS = 100_000_000  # numbers in one array or document: 800 MB as float64
MAX_THREADS = 1024  # solver threads: no machine bnnmilp runs on has more cores
MAX_STEPS = 100_000  # points of a value-function sweep (each one a MILP solve)
MAX_MARGIN = 1e6  # epsilon, margin caps and radii: pre-activations of 784 pixels of 0..255 stay below 2e5
MAX_JOBS = 10_000  # grid points of a sweep (each one a training run)
MAX_JSON_DEPTH = 200  # nesting of a JSON or YAML document (ours are at most 5 deep)
ENV = "BNNMILP_MAX_ELEMENTS"


def max_elements() -> int:
    """The element limit: ``BNNMILP_MAX_ELEMENTS`` if set to a positive integer, else 10^8."""
    raw = os.environ.get(ENV, "").strip().replace("_", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return DEFAULT_MAX_ELEMENTS


def shown(v: object, width: int = 40) -> str:
    """A value as an error message shows it: at most ``width`` characters (a 4,000-digit integer or a
    131,072-character field is not echoed whole)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**width:
        return f"an integer of {len(str(abs(v))) if abs(v).bit_length() < 14000 else 'over 4,300'} digits"
    text = repr(v)
    return text if len(text) <= width else text[: width - 3] + "..."


def finite_number(v: object) -> bool:
    """A number a double holds: not a bool, not NaN or infinite, not an integer too large for a double
    (``math.isfinite(10**400)`` raises OverflowError)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def too_many(count: int, what: str, cost: int = 1) -> str | None:
    """None when ``count`` elements are allowed, else the message naming both sizes and how to raise the limit.
    ``cost``: elements that each one stands for (an ONNX input element carries several exact rationals), so
    the limit is the element limit divided by it. A count just above the limit is one capped while counting."""
    limit = max_elements() // cost
    if count <= limit:
        return None
    found = f"more than {limit:,}" if count == limit + 1 else f"{count:,}"
    how = f"{ENV} / {cost}; set {ENV} to allow more" if cost > 1 else f"set {ENV} to allow more"
    return f"{what} has {found} elements; at most {limit:,} are allowed ({how})"


def measure(doc: object, limit: int) -> tuple[int, int]:
    """(nodes, depth) of ``doc`` once shared parts (YAML aliases) are counted at every use, the count capped just
    above ``limit``: linear in the distinct objects however many times an alias bomb multiplies them, and
    without recursion (a document nested 100,000 deep is measured, not a stack overflow). A document that
    contains itself (a recursive alias) has no size: (limit + 1, limit + 1)."""
    def children(obj: list | dict) -> list:
        return list(obj.values()) if isinstance(obj, dict) else obj

    busy = (-1, -1)
    seen: dict[int, tuple[int, int]] = {}
    stack: list[tuple[object, bool]] = [(doc, False)]
    while stack:
        obj, leaving = stack.pop()
        if not isinstance(obj, (list, dict)):
            continue
        if leaving:
            parts = [seen.get(id(c), (1, 0)) if isinstance(c, (list, dict)) else (1, 0) for c in children(obj)]
            if busy in parts:  # a child still open is an ancestor: the document contains itself
                return limit + 1, limit + 1
            seen[id(obj)] = (min(limit + 1, 1 + sum(n for n, _ in parts)), 1 + max((d for _, d in parts), default=0))
            continue
        if id(obj) in seen:
            if seen[id(obj)] == busy:
                return limit + 1, limit + 1
            continue
        seen[id(obj)] = busy
        stack.append((obj, True))
        stack.extend((c, False) for c in children(obj) if isinstance(c, (list, dict)) and id(c) not in seen)
    return seen.get(id(doc), (1, 0))


@contextlib.contextmanager
def wall_clock(seconds: float | None, what: str) -> Iterator[None]:
    """Bound a stage that has no partial result (an import, an encoding) by ``seconds`` of wall clock: past it,
    :class:`~bnnmilp.errors.TimeLimitError` is raised at the next Python bytecode, so the stage's temporary
    files are removed on the way out. A real-time timer (SIGALRM), so it works only in the main thread; with
    ``seconds`` None, or elsewhere, the stage runs unbounded."""
    from bnnmilp.errors import TimeLimitError

    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeLimitError(seconds, what)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
