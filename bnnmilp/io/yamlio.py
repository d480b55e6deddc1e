"""Safe YAML reading and atomic file writing, shared by every module that touches files.

Files are read with PyYAML's safe loader only (its C version where installed), with YAML 1.2's
numbers: ``1e-3`` and ``1E5`` are floats (YAML 1.1, PyYAML's default, reads them as strings). Every
output is written to a temporary file in the target folder and renamed into place, so a crash, a
time limit or Ctrl-C never leaves a half-written file behind; a full disk or an unwritable place is
one :class:`OutputError`. JSON is strict: NaN and infinities are written as null.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from bnnmilp.errors import BnnMilpError, InputError, OutputError
from bnnmilp.limits import MAX_JSON_DEPTH, max_elements, measure, too_many


class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, with YAML 1.2 floats (exponent without a dot: 1e-3, 1E5)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """YAML's integers, with the error for one too long to convert (Python's 4,300-digit guard) at its line."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(node.value):,} characters (at most 4,300 digits)", node.start_mark
        ) from None


Loader.add_constructor("tag:yaml.org,2002:int", _int)


def loads_yaml(text: str) -> Any:
    return yaml.load(text, Loader=Loader)


def check_size(doc: Any, path: str | Path, error: type[InputError] = InputError, kind: str = "document") -> Any:
    """Refuse a document that nests deeper than bnnmilp's formats ever do, or whose nodes, counted at every use
    of a shared (aliased) part, exceed the element limit: an alias bomb is refused before anything expands it."""
    limit = max_elements()
    nodes, depth = measure(doc, limit)
    if depth > MAX_JSON_DEPTH:
        raise error(str(path), None, f"{kind} nested more than {MAX_JSON_DEPTH} levels deep (or containing itself)")
    msg = too_many(nodes, kind)
    if msg:
        raise error(str(path), None, msg)
    return doc


def loads_json(text: str | bytes, path: str | Path, error: type[InputError] = InputError, kind: str = "JSON") -> Any:
    """Strict JSON (no NaN or infinities), any nesting or size refused by :func:`check_size`; errors name the
    file and the line."""
    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        doc = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise error(str(path), None, f"not valid {kind} at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise error(str(path), None, f"{kind} nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:  # the 4,300-digit guard, NaN / Infinity
        raise error(str(path), None, f"not valid {kind}: {exc}") from None
    return check_size(doc, path, error, kind)


STDIO = "-"  # as an input path: standard input; as an output path: standard output
_STDIN: dict[str, Any] = {}


def is_stdio(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDIO


def read_input(path: str | Path, error: type[InputError] = InputError, text: bool = False) -> bytes | str:
    """The bytes (or UTF-8 text) of an input file, or of standard input for ``-`` (read once and kept, so that
    sniffing its format and parsing it read the same bytes; one kind of input only, by ``error``); errors
    name the file."""
    p = Path(path)
    try:
        if is_stdio(path):
            owner = _STDIN.setdefault("owner", error) if error is not InputError else error
            if owner is not error:  # a spec and a data set (say) cannot both come from one standard input
                raise error(STDIO, None, "standard input is already read as another input: give only one "
                                         "input as -")
            if STDIO not in _STDIN:
                _STDIN[STDIO] = sys.stdin.buffer.read()
            data = _STDIN[STDIO]
        else:
            data = p.read_bytes()
        return data.decode("utf-8") if text else data
    except FileNotFoundError:
        raise error(str(p), None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(str(p), None, f"cannot read file ({exc.__class__.__name__})") from None


def sniff(path: str | Path) -> str:
    """The format of an input by its extension (.npz, .csv; .yaml, .yml, .json), or for ``-`` and any other
    name by its first bytes: "npz" (a zip archive), "csv" (a first line of comma-separated fields) or "yaml"."""
    if not is_stdio(path):
        suffix = Path(path).suffix.lower()
        if suffix in (".npz", ".csv"):
            return suffix[1:]
        if suffix in (".yaml", ".yml", ".json") or not Path(path).is_file():
            return "yaml"
        with open(path, "rb") as f:
            head = f.read(4096)
    else:
        head = read_input(path)[:4096]
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    first = head.split(b"\n", 1)[0].strip()
    return "csv" if first and b"," in first and b":" not in first and not first.startswith((b"#", b"{", b"-")) \
        else "yaml"


def read_yaml(path: str | Path, error: type[InputError] = InputError) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader (``-``: standard input); errors name the file."""
    p = Path(path)
    text = read_input(path, error, text=True)
    try:
        doc = loads_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if isinstance(exc, yaml.constructor.ConstructorError) and problem else ""
        raise error(str(p), None, f"not valid YAML{where}{why}") from None
    except RecursionError:
        raise error(str(p), None, f"not valid YAML: nested more than {MAX_JSON_DEPTH} levels deep") from None
    if not isinstance(doc, dict):
        raise error(str(p), None, "expected a YAML mapping at the top level")
    return check_size(doc, p, error, "YAML document")


def _special(p: Path) -> bool:
    """A path that exists and is neither a regular file nor a folder (after symbolic links): a character device
    such as /dev/stdout or /dev/null, a FIFO, a process substitution >(...), a socket."""
    try:
        mode = os.stat(p).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_output_path(path: str | Path, folder: bool = False) -> Path:
    """Fail early (before any solving) when ``path`` cannot be written: a file where a folder is needed
    on the way, a folder where a file is wanted, or no permission / a read-only file system. A special file
    (device, FIFO, process substitution) only needs to be writable itself."""
    p = Path(path)
    if not folder and is_stdio(path):
        return p
    if not folder and _special(p):
        if not os.access(p, os.W_OK):
            raise OutputError(str(p), "cannot write to it (permission denied)")
        return p
    if p.exists() and p.is_dir() != folder:
        raise OutputError(str(p), "is a folder; expected a file" if p.is_dir() else "is a file; expected a folder")
    parent = Path(os.path.realpath(p)) if folder else Path(os.path.realpath(p)).parent
    anc = parent
    while not anc.exists():
        if anc.is_symlink():
            raise OutputError(str(p), f"{anc} is a broken symbolic link")
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(str(p), f"cannot create it: {anc} is not a folder")
    if not os.access(anc, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise OutputError(str(p), f"cannot write into {anc} (permission denied or a read-only file system)")
    if not p.exists():  # the permission bits can say yes where the file system says no (/proc, /sys): ask it
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".bnnmilp_probe_", dir=anc))
        except OSError as exc:
            raise OutputError(str(p), f"cannot create anything in {anc} ({exc.strerror or exc})") from None
    return p


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path, then put the result in place: a regular file (or a new path) is
    replaced atomically by a rename beside it, so a reader never sees half a file; a symbolic link's target
    is written and the link kept; a special file (/dev/stdout, /dev/null, a FIFO, a process substitution) is
    written through, never replaced. New files get the mode the umask allows (0666 & ~umask)."""
    target = Path(path)
    if is_stdio(path):  # standard output: the data, whole, once written
        with tempfile.TemporaryDirectory(prefix="bnnmilp_") as d:
            tmp = Path(d) / "out"
            write(tmp)
            sys.stdout.flush()
            sys.stdout.buffer.write(tmp.read_bytes())
            sys.stdout.buffer.flush()
        return target
    if _special(target):
        try:
            with tempfile.TemporaryDirectory(prefix="bnnmilp_") as d:
                tmp = Path(d) / f"out{target.suffix}"
                write(tmp)
                with open(tmp, "rb") as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        except BnnMilpError:
            raise
        except OSError as exc:
            raise OutputError(str(target), f"cannot write ({exc.strerror or exc.__class__.__name__})") from exc
        return target
    real = Path(os.path.realpath(target))  # through symbolic links: the link stays, its target is written
    tmp_path: Path | None = None
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=real.suffix, dir=real.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        write(tmp_path)
        os.chmod(tmp_path, (stat.S_IMODE(os.stat(real).st_mode) if real.exists() else 0o666 & ~_umask()))
        os.replace(tmp_path, real)
    except BnnMilpError:  # a time limit (a TimeoutError) or bad input while writing: not a write failure
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise
    except OSError as exc:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise OutputError(str(target), f"cannot write ({exc.strerror or exc.__class__.__name__})") from exc
    except BaseException:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise
    return target


def write_together(items: list[tuple[str | Path, Callable[[Path], None]]]) -> list[Path]:
    """Write several files that belong together: each to a temporary file beside its target first, and only
    when every one is written (a full disk fails here, leaving the previous files untouched) renamed into
    place, in the order given. Regular files only (a run folder's). Returns the paths as given (what a
    command prints), though links are written through."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, write in items:
            real = Path(os.path.realpath(path))
            real.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=real.suffix, dir=real.parent)
            os.close(fd)
            staged.append((Path(tmp), real))
            write(Path(tmp))
            os.chmod(tmp, (stat.S_IMODE(os.stat(real).st_mode) if real.exists() else 0o666 & ~_umask()))
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise OutputError(str(items[len(staged) - 1][0]), f"cannot write ({exc.strerror or exc.__class__.__name__})"
                          ) from exc
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, real in staged:
        os.replace(tmp, real)
    return [Path(path) for path, _ in items]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
LONG_LIST = 64  # numeric lists at least this long are formatted here, not scalar by scalar by the YAML representer


def _number_text(v: int | float) -> str:
    """A number as PyYAML writes it (a YAML 1.1 reader sees a float where a float was written)."""
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return ".nan"
    if v in (math.inf, -math.inf):
        return ".inf" if v > 0 else "-.inf"
    t = repr(v).lower()
    return t.replace("e", ".0e", 1) if "." not in t and "e" in t else t


def yaml_text(doc: Any) -> str:
    """The document as YAML, leaf lists in flow style. Long lists of numbers (weights) are written as flow
    sequences directly: the representer's cost per scalar made an ensemble of 45 MNIST members take 12 s."""
    lists: dict[str, list] = {}
    tag = f"bnnmilp_list_{os.getpid()}_{id(lists)}_"

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            if len(node) >= LONG_LIST and all(type(v) in (int, float) for v in node):
                key = f"{tag}{len(lists)}"
                lists[key] = node
                return key
            return [swap(v) for v in node]
        return node

    text = yaml.dump(swap(doc), Dumper=_DUMPER, sort_keys=False, default_flow_style=None, width=120)
    if lists:
        text = re.sub(tag + r"\d+", lambda m: "[" + ", ".join(map(_number_text, lists[m.group(0)])) + "]", text)
    return text


def write_yaml_atomic(path: str | Path, doc: Any) -> Path:
    return write_text_atomic(path, yaml_text(doc))


def fraction_str(q: Fraction) -> str:
    """An exact rational as text: "p" or "p/q" (Fraction reads it back)."""
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def strict_json(obj: Any) -> Any:
    """A copy that strict JSON readers accept: non-finite floats become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def dumps_json(obj: Any, **kwargs: Any) -> str:
    return json.dumps(strict_json(obj), allow_nan=False, **kwargs)


def write_json_atomic(path: str | Path, doc: Any) -> Path:
    return write_text_atomic(path, dumps_json(doc, indent=2) + "\n")
