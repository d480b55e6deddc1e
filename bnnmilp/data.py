"""Data sets: load, validate against the network, fingerprint.

A data file is YAML with ``features`` (m rows of d0 numbers), ``labels``
(m integers) and an optional free-form ``meta`` mapping (provenance); or, by
extension, CSV (each row d0 feature values then the label; an optional header
line whose last column is ``label``) or NPZ (arrays ``X``, m x d0 numbers, and
``y``, m integers). With one output a label is the target bit; with dL > 1
outputs label c means the one-hot target e_c. Every format gets the same
validation, and the fingerprint is of the numbers, not of the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnnmilp.errors import DataError, unknown
from bnnmilp.io.yamlio import read_input, read_yaml, sniff
from bnnmilp.limits import finite_number, shown, too_many


@dataclass(frozen=True)
class Dataset:
    """A data set: inputs and class labels (label c means target bit c, or the one-hot code e_c).

    Attributes
    ----------
    features : ndarray, shape (m, d0)
        The inputs, float64.
    labels : ndarray, shape (m,)
        Class labels, int64.
    path : str or None
        Where it was read from.
    """

    features: np.ndarray  # (m, d0) float64, the exact doubles read from the file
    labels: np.ndarray  # (m,) int64
    path: str | None = None

    @property
    def n_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def sha256(self) -> str:
        """Fingerprint of the exact numbers (not of the file's formatting)."""
        h = hashlib.sha256()
        h.update(np.asarray(self.features.shape, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.features, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        return h.hexdigest()

    def targets(self, n_outputs: int) -> np.ndarray:
        """Target bits, shape (m, n_outputs): the label itself for one output, one-hot otherwise."""
        if n_outputs == 1:
            return self.labels.reshape(-1, 1).astype(np.int8)
        t = np.zeros((self.n_samples, n_outputs), dtype=np.int8)
        t[np.arange(self.n_samples), self.labels] = 1
        return t

    def check_fits(self, n_inputs: int, n_outputs: int) -> None:
        """Raise DataError unless the data have d0 features and labels in range for dL outputs."""
        if self.n_features != n_inputs:
            raise DataError(self.path, "features", f"expected rows of {n_inputs} numbers (network.layers[0]), "
                                                   f"got {self.n_features}")
        hi = 1 if n_outputs == 1 else n_outputs - 1
        bad = np.flatnonzero((self.labels < 0) | (self.labels > hi))
        if bad.size:
            i = int(bad[0])
            raise DataError(self.path, f"labels[{i}]",
                            f"expected an integer in 0..{hi} for {n_outputs} output(s), got {int(self.labels[i])}")

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.features[index], self.labels[index], self.path)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


LABEL_MAX = 2**31 - 1  # class labels index outputs: far beyond any network's width, far inside int64


def parse_data(doc: dict, path: str | None = None) -> Dataset:
    """Validate a data mapping (as read from YAML) into a :class:`Dataset`.

    Parameters
    ----------
    doc : dict
        ``features`` (a list of equal-length lists of finite numbers), ``labels`` (non-negative integers, one
        per row) and optionally ``meta``.
    path : str, optional
        The file it came from, named in errors.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Naming the file, the key and what was expected (also a ValueError).
    """
    if "features" not in doc and "network" in doc:
        raise DataError(path, None, "this is a spec (network), not a data file: the data come second "
                                    "(bnnmilp train SPEC DATA)")
    for k in doc:
        if k not in ("features", "labels", "meta"):
            raise DataError(path, k, unknown("key", k, ("features", "labels", "meta")))
    for k in ("features", "labels"):
        if k not in doc:
            raise DataError(path, k, "missing required key")
    feats, labels = doc["features"], doc["labels"]
    if not isinstance(feats, list) or not feats:
        raise DataError(path, "features", "expected a non-empty list of rows")
    if not isinstance(labels, list):
        raise DataError(path, "labels", "expected a list of integers")
    width = None
    for i, row in enumerate(feats):
        if not isinstance(row, list) or not row:
            raise DataError(path, f"features[{i}]", "expected a non-empty list of numbers")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise DataError(path, f"features[{i}]", f"expected {width} numbers like features[0], got {len(row)}")
        for j, v in enumerate(row):
            if not finite_number(v):
                raise DataError(path, f"features[{i}][{j}]", f"expected a finite number, got {shown(v)}")
    if len(labels) != len(feats):
        raise DataError(path, "labels", f"expected {len(feats)} labels (one per row of features), got {len(labels)}")
    for i, v in enumerate(labels):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= LABEL_MAX:
            raise DataError(path, f"labels[{i}]", f"expected an integer class label in 0..{LABEL_MAX}, got {shown(v)}")
    return Dataset(np.asarray(feats, dtype=np.float64), np.asarray(labels, dtype=np.int64), path)


def load_data(path: str | Path) -> Dataset:
    """Read and validate a data file: YAML, or CSV / NPZ by extension (``-``: standard input, by its content).

    Parameters
    ----------
    path : str or Path
        The file; ``-`` reads standard input.

    Returns
    -------
    Dataset
        Features as the exact doubles written in the file, integer labels.
    """
    fmt = sniff(path)
    if fmt == "csv":
        return _load_csv(Path(path))
    if fmt == "npz":
        return _load_npz(Path(path))
    return parse_data(read_yaml(path, DataError), str(path))


def _read_bytes(p: Path, mode: str = "r"):
    return read_input(p, DataError, text=mode == "r")


def _load_csv(p: Path) -> Dataset:
    """CSV: d0 feature values then the label per row; an optional header line ending in ``label``."""
    import csv
    import io

    reader = csv.reader(io.StringIO(_read_bytes(p)))
    try:
        rows = [r for r in reader if r and any(f.strip() for f in r)]
    except csv.Error as exc:  # a field over csv.field_size_limit() (131,072 characters), a NUL byte
        raise DataError(str(p), f"line {reader.line_num}", f"not valid CSV: {exc}") from None
    msg = too_many(sum(map(len, rows)), "the CSV file")
    if msg:
        raise DataError(str(p), None, msg)
    if rows and rows[0] and rows[0][-1].strip().lower() == "label":
        rows = rows[1:]
    if not rows:
        raise DataError(str(p), "rows", "expected at least one row of features and a label")
    feats, labels = [], []
    for i, row in enumerate(rows):
        if len(row) < 2:
            raise DataError(str(p), f"row {i + 1}", "expected feature values and a label")
        vals = []
        for j, field in enumerate(row[:-1]):
            try:
                v = float(field)
            except ValueError:
                raise DataError(str(p), f"row {i + 1}, column {j + 1}",
                                f"expected a number, got {shown(field)}") from None
            vals.append(v)
        try:
            labels.append(int(row[-1]))
        except ValueError:
            raise DataError(str(p), f"row {i + 1}, label", f"expected an integer, got {shown(row[-1])}") from None
        feats.append(vals)
    return parse_data({"features": feats, "labels": labels}, str(p))


def _load_npz(p: Path) -> Dataset:
    """NPZ: arrays X (m x d0 numbers) and y (m integers); nothing is unpickled."""
    from bnnmilp.io.npz import read_npz

    arrays = read_npz(p, DataError, "an NPZ file with arrays X and y")
    for k in ("X", "y"):
        if k not in arrays:
            raise DataError(str(p), k, f"missing array (found: {', '.join(sorted(arrays)) or 'none'})")
    X, y = arrays["X"], arrays["y"]
    if X.ndim != 2 or X.dtype.kind not in "iuf":
        raise DataError(str(p), "X", f"expected a 2-D array of numbers, got {X.ndim}-D {X.dtype}")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(str(p), "y", f"expected a 1-D array of integers, got {y.ndim}-D {y.dtype}")
    return parse_data({"features": X.astype(np.float64).tolist(), "labels": y.astype(np.int64).tolist()}, str(p))


def data_to_doc(ds: Dataset, meta: dict | None = None) -> dict:
    """The YAML mapping of a data set (integers stay integers, so files stay readable)."""
    feats = ds.features
    if np.all(feats == np.round(feats)):
        rows = feats.astype(np.int64).tolist()
    else:
        rows = feats.tolist()
    doc = {"features": rows, "labels": ds.labels.tolist()}
    if meta:
        doc = {"meta": meta, **doc}
    return doc


def load_box(path: str | Path, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature input bounds: a YAML/JSON mapping or an NPZ file with ``lower`` and ``upper`` (n_inputs numbers
    each; ``.inf`` / ``-.inf`` for no bound, or one number for every feature), lower <= upper."""
    from bnnmilp.io.npz import read_npz

    p = Path(path)
    if p.suffix.lower() == ".npz":
        doc = read_npz(p, DataError, "an NPZ file with arrays lower and upper")
    else:
        doc = read_yaml(p, DataError)
    if not isinstance(doc, dict) or set(doc) != {"lower", "upper"}:
        raise DataError(str(p), None, "expected exactly the keys lower and upper")
    out = []
    for key in ("lower", "upper"):
        raw = doc[key]
        vals = np.atleast_1d(np.asarray(raw, dtype=object)).ravel().tolist()
        if not vals or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                               for v in vals):
            raise DataError(str(p), key, "expected numbers")
        arr = np.asarray(vals, dtype=np.float64)
        if arr.size == 1:
            arr = np.full(n_inputs, arr[0])
        if arr.size != n_inputs or np.isnan(arr).any():
            raise DataError(str(p), key, f"expected {n_inputs} numbers (one per input feature) or one number")
        out.append(arr)
    bad = np.flatnonzero(out[0] > out[1])
    if bad.size:
        raise DataError(str(p), f"lower[{bad[0]}]", f"expected lower <= upper, got {out[0][bad[0]]} > {out[1][bad[0]]}")
    return out[0], out[1]
