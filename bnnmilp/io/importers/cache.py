"""Imported models kept on disk by content, so that a process asked one query of a model it has seen before
skips the exact import (the VNN-COMP harness starts one process per query; a 64x64 conv BNN takes seconds to
import and a fraction of a second to load).

The folder is ``$BNNMILP_CACHE_DIR``, else ``$XDG_CACHE_HOME/bnnmilp``, else ``~/.cache/bnnmilp``;
``BNNMILP_CACHE=0`` turns the cache off. An entry's key is the model file's sha256, the import's options and a
fingerprint of the importing code, so a new version of bnnmilp never reads an old entry. Entries are pickles
written atomically; an entry that cannot be read is ignored and written again. The cache is the user's own
folder: like any pickle, an entry runs code when loaded, so the folder must not be writable by others.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_CODE = ("io/importers/onnx.py", "io/importers/exact.py", "network/__init__.py", "network/sparse.py")


def folder() -> Path | None:
    """Where entries live, or None when the cache is off."""
    if os.environ.get("BNNMILP_CACHE", "1") == "0":
        return None
    if os.environ.get("BNNMILP_CACHE_DIR"):
        return Path(os.environ["BNNMILP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bnnmilp"


@functools.cache
def code_fingerprint() -> str:
    """The version and the importing code's bytes: an entry made by other code is never read."""
    import bnnmilp

    h = hashlib.sha256(bnnmilp.__version__.encode())
    root = Path(bnnmilp.__file__).parent
    for rel in _CODE:
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def cached(digest: str, options: tuple, make: Callable[[], Any]) -> Any:
    """The object ``make`` builds for the file with sha256 ``digest`` and these options: from the cache when an
    entry is there and readable, else built and stored (where the folder is writable)."""
    where = folder()
    if where is None:
        return make()
    key = hashlib.sha256(repr((digest, options, code_fingerprint())).encode()).hexdigest()
    entry = where / f"{key}.pickle"
    try:
        with entry.open("rb") as f:
            return pickle.load(f)
    except Exception:  # absent, truncated by another writer's crash, or from an incompatible Python
        pass
    obj = make()
    tmp: str | None = None
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".entry-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, entry)
    except OSError:  # a read-only or full disk: the answer does not depend on the cache
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return obj
