"""NPZ archives read safely: every member's declared shape is checked before a byte of it is inflated.

A 64-byte NPZ can declare a 10^6 x 10^6 array, and a 1.5 MB one can inflate to gigabytes; ``np.load`` would
allocate first and fail later. Here the archive's directory and each ``.npy`` header are read, the element
count is checked against :func:`bnnmilp.limits.max_elements`, and only then are the arrays loaded (never
unpickled). Every failure is one :class:`InputError` naming the file and the member.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bnnmilp.errors import InputError
from bnnmilp.io.yamlio import read_input
from bnnmilp.limits import too_many

_UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


def _declared(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a member's .npy header declares (reads the header only)."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(int(d) for d in shape), dtype


def read_npz(path: str | Path, error: type[InputError], expected: str) -> dict[str, np.ndarray]:
    """The arrays of an NPZ file (``-``: standard input) by name, after checking their declared sizes.

    ``expected`` says what the file should be ("an NPZ file with arrays X and y"), for the error message.
    """
    p = str(path)
    raw = read_input(path, error)
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        members = zf.infolist()
    except _UNREADABLE:
        raise error(p, None, f"not {expected} (not a zip archive)") from None
    total = 0
    for info in members:
        if not info.filename.endswith(".npy"):
            raise error(p, info.filename, f"expected only .npy arrays in {expected}")
        try:
            shape, dtype = _declared(zf, info)
        except _UNREADABLE as exc:
            raise error(p, info.filename[:-4], f"not a .npy array ({exc.__class__.__name__})") from None
        if dtype.hasobject:
            raise error(p, info.filename[:-4], "expected an array of numbers or text, not of Python objects")
        count = math.prod(shape)
        total += count
        msg = too_many(count, f"array {info.filename[:-4]} of shape {shape}") or too_many(total, "the arrays together")
        if msg:
            raise error(p, info.filename[:-4], msg)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except _UNREADABLE as exc:
        raise error(p, None, f"not {expected} ({exc.__class__.__name__})") from None
