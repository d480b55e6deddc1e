"""Exception classes, and the one table that maps them to exit codes.

Every error bnnmilp raises on purpose derives from :class:`BnnMilpError` and
from the built-in it resembles, so library users can catch ``ValueError`` or
``OSError`` as usual while the CLI maps them to exit codes in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_OK = 0
EXIT_CLAIM_FALSE = 1
EXIT_BAD_INPUT = 2
EXIT_SOLVER = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_HANGUP = 129


def unknown(kind: str, name: object, allowed: Iterable[str]) -> str:
    """The message for an unknown key or section: the allowed names, and the closest one where a typo is
    likely ("did you mean 'weights'?"), as click does for options."""
    import difflib

    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {kind} ({hint}allowed: {', '.join(allowed)})"


class BnnMilpError(Exception):
    """Base class of bnnmilp's errors."""

    exit_code = EXIT_BAD_INPUT


class InputError(BnnMilpError, ValueError):
    """A file given by the user is malformed: names the file, the key path and what was expected."""

    def __init__(self, path: str | None, key: str | None, expected: str) -> None:
        self.path, self.key, self.expected = path, key, expected
        where = ": ".join(p for p in (str(path) if path else None, key) if p)
        super().__init__(f"{where}: {expected}" if where else expected)


class SpecError(InputError):
    """The network/training/solver specification is invalid."""


class DataError(InputError):
    """The data set is invalid or does not fit the network."""


class WeightsError(InputError):
    """A weights file is invalid."""


class ModelFileError(InputError):
    """A model or certificate file cannot be read."""


class QueryError(InputError):
    """A VNN-LIB query cannot be read, or asks for what bnnmilp does not support."""


class OutputError(BnnMilpError, OSError):
    """An output path that cannot be written (a file in the way, no permission, a full disk)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class SolverUnavailableError(BnnMilpError, RuntimeError):
    """The requested solver is not installed or cannot be reached."""

    exit_code = EXIT_BAD_INPUT


class SolverError(BnnMilpError, RuntimeError):
    """The solver failed in a way that leaves no usable result."""

    exit_code = EXIT_SOLVER


class InfeasibleError(BnnMilpError, RuntimeError):
    """The training problem has no solution (e.g. with the epsilon margin and fixed thresholds)."""

    exit_code = EXIT_CLAIM_FALSE


class UnboundedError(BnnMilpError, ArithmeticError):
    """The model's objective has no lower bound (or no finite optimum at all): nothing to prove or differentiate."""

    exit_code = EXIT_CLAIM_FALSE


class TimeLimitError(BnnMilpError, TimeoutError):
    """A command's --time-limit ran out in a stage that has no partial result to keep (importing, encoding):
    nothing was written."""

    exit_code = EXIT_SOLVER

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        super().__init__(f"the time limit of {seconds:g} s ran out while {what}; nothing was written")
