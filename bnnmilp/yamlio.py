"""Safe YAML reading and atomic file writing, shared by every module that touches files.

Files are read with PyYAML's safe loader only. Every output is written to a
temporary file in the target folder and renamed into place, so a crash, a
time limit or Ctrl-C never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bnnmilp.errors import InputError


def read_yaml(path: str | Path, error: type[InputError] = InputError) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; errors name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(str(p), None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(str(p), None, f"cannot read file ({exc.__class__.__name__})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(str(p), None, f"not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise error(str(p), None, "expected a YAML mapping at the top level")
    return doc


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_yaml_atomic(path: str | Path, doc: Any) -> Path:
    return write_text_atomic(path, yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120))


def write_json_atomic(path: str | Path, doc: Any) -> Path:
    return write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
