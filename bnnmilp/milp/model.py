"""The one standard-form MILP every formulation produces and every backend consumes.

    min  c^T x + offset
    s.t. row_lower <= A x <= row_upper
         col_lower <= x <= col_upper,  x_j integer for integrality[j]

A is held as CSR arrays (no scipy dependency). Variables and rows are added
in named blocks of any shape; a block maps a multi-index to column (or row)
indices, so formulations address variables with numpy index arithmetic and
names (``w_1_0_3``) are only generated when a file is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from itertools import product

import numpy as np

INF = float("inf")


@dataclass(frozen=True)
class Block:
    """A named, shaped range of consecutive indices.

    ``fmt`` makes the names of its members, e.g. ``"u_{0}_2_{1}"`` for the
    layer-2 activations u_i_2_k; by default ``name_i_j_...``.
    """

    name: str
    start: int
    shape: tuple[int, ...]
    fmt: str | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def indices(self) -> np.ndarray:
        return (self.start + np.arange(self.size)).reshape(self.shape)

    def names(self) -> list[str]:
        fmt = self.fmt or "_".join([self.name, *(f"{{{i}}}" for i in range(len(self.shape)))])
        return [fmt.format(*t) for t in product(*(range(n) for n in self.shape))]


@dataclass
class StandardModel:
    c: np.ndarray
    offset: float
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray  # bool
    indptr: np.ndarray  # CSR of A
    indices: np.ndarray
    data: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_blocks: dict[str, Block] = field(default_factory=dict)
    row_blocks: dict[str, Block] = field(default_factory=dict)
    objective_integral: bool = False  # every feasible objective value is an integer
    name: str = "bnnmilp"
    names: tuple[list[str], list[str]] | None = None  # explicit (column, row) names, e.g. read from a file

    @property
    def n_cols(self) -> int:
        return int(self.c.shape[0])

    @property
    def n_rows(self) -> int:
        return int(self.row_lower.shape[0])

    @property
    def nnz(self) -> int:
        return int(self.data.shape[0])

    def col_names(self) -> list[str]:
        if self.names is not None:
            return self.names[0]
        return [n for b in self.col_blocks.values() for n in b.names()]

    def row_names(self) -> list[str]:
        if self.names is not None:
            return self.names[1]
        return [n for b in self.row_blocks.values() for n in b.names()]

    def cols(self, block: str) -> np.ndarray:
        return self.col_blocks[block].indices

    def stats(self) -> dict[str, int]:
        binary = self.integrality & (self.col_lower == 0) & (self.col_upper == 1)
        return {
            "variables": self.n_cols,
            "binary": int(binary.sum()),
            "integer": int((self.integrality & ~binary).sum()),
            "continuous": int((~self.integrality).sum()),
            "rows": self.n_rows,
            "nonzeros": self.nnz,
        }

    def row_activity(self, x: np.ndarray) -> np.ndarray:
        """A x, for checking a solution against the rows."""
        prod_ = self.data * x[self.indices]
        out = np.zeros(self.n_rows)
        np.add.at(out, np.repeat(np.arange(self.n_rows), np.diff(self.indptr)), prod_)
        return out

    def max_violation(self, x: np.ndarray) -> float:
        """Largest bound, row or integrality violation of x (0 for an exactly feasible point)."""
        ax = self.row_activity(x)
        v = [
            np.max(self.col_lower - x, initial=0.0), np.max(x - self.col_upper, initial=0.0),
            np.max(self.row_lower - ax, initial=0.0), np.max(ax - self.row_upper, initial=0.0),
            np.max(np.abs(x[self.integrality] - np.round(x[self.integrality])), initial=0.0),
        ]
        return float(max(v))

    def objective_integral_by_structure(self) -> bool:
        """Integer offset, integer costs on integer columns, no cost on continuous ones: then every
        integer-feasible point has an integer objective (used for files, which do not say so)."""
        ci, cc = self.c[self.integrality], self.c[~self.integrality]
        return bool(float(self.offset).is_integer() and not np.any(cc) and np.all(ci == np.trunc(ci)))

    def with_objective(self, c: np.ndarray, offset: float, integral: bool) -> StandardModel:
        """The same feasible set with another objective (lexicographic stages)."""
        return replace(self, c=np.asarray(c, dtype=np.float64), offset=float(offset), objective_integral=integral)

    def with_row(self, name: str, coefs: np.ndarray, lower: float, upper: float) -> StandardModel:
        """A copy with one more row ``lower <= coefs . x <= upper`` (coefs dense over the columns)."""
        nz = np.flatnonzero(coefs)
        return replace(
            self,
            indptr=np.append(self.indptr, self.indptr[-1] + nz.size),
            indices=np.concatenate([self.indices, nz]),
            data=np.concatenate([self.data, np.asarray(coefs, dtype=np.float64)[nz]]),
            row_lower=np.append(self.row_lower, lower),
            row_upper=np.append(self.row_upper, upper),
            row_blocks={**self.row_blocks, name: Block(name, self.n_rows, ())},
            names=None if self.names is None else (self.names[0], [*self.names[1], name]),
        )

    def fingerprint(self) -> str:
        """sha256 of the exact model numbers (objective, bounds, matrix, integrality)."""
        h = hashlib.sha256()
        for a in (self.c, np.array([self.offset]), self.col_lower, self.col_upper, self.row_lower, self.row_upper,
                  self.data):
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
        for a in (self.indptr, self.indices, self.integrality):
            h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
        return h.hexdigest()


class ModelBuilder:
    """Accumulates variable blocks and row blocks (as COO triplets) into a :class:`StandardModel`."""

    def __init__(self, name: str = "bnnmilp") -> None:
        self.name = name
        self._cols: list[tuple[Block, np.ndarray, np.ndarray, bool]] = []
        self._rows: list[tuple[Block, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._n_cols = 0
        self._n_rows = 0
        self.c: np.ndarray | None = None
        self.offset = 0.0

    def add_vars(self, name: str, shape: tuple[int, ...], lower: float | np.ndarray, upper: float | np.ndarray,
                 integer: bool = False, fmt: str | None = None) -> np.ndarray:
        """Add a block of variables; returns their column indices with the given shape."""
        block = Block(name, self._n_cols, tuple(shape), fmt)
        lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), block.shape).ravel()
        up = np.broadcast_to(np.asarray(upper, dtype=np.float64), block.shape).ravel()
        self._cols.append((block, lo.copy(), up.copy(), integer))
        self._n_cols += block.size
        return block.indices

    def add_rows(self, name: str, shape: tuple[int, ...], cols: np.ndarray, coefs: np.ndarray,
                 lower: float | np.ndarray, upper: float | np.ndarray, fmt: str | None = None) -> None:
        """Add a block of rows; row r has the terms coefs[r, t] * x[cols[r, t]] (zero coefficients dropped).

        ``cols`` and ``coefs`` have shape ``shape + (terms,)`` and are broadcast together.
        """
        block = Block(name, self._n_rows, tuple(shape), fmt)
        n = block.size
        cols, coefs = np.broadcast_arrays(np.asarray(cols), np.asarray(coefs, dtype=np.float64))
        cols = cols.reshape(n, -1)
        coefs = coefs.reshape(n, -1)
        lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), block.shape).ravel().copy()
        up = np.broadcast_to(np.asarray(upper, dtype=np.float64), block.shape).ravel().copy()
        self._rows.append((block, cols, coefs, lo, up))
        self._n_rows += n

    def set_objective(self, cols: np.ndarray, coefs: np.ndarray, offset: float = 0.0) -> None:
        c = np.zeros(self._n_cols)
        np.add.at(c, np.asarray(cols).ravel(), np.broadcast_to(np.asarray(coefs, dtype=np.float64),
                                                                 np.asarray(cols).shape).ravel())
        self.c = c
        self.offset = float(offset)

    def build(self, objective_integral: bool = False) -> StandardModel:
        n = self._n_cols
        col_lower = np.concatenate([b[1] for b in self._cols]) if self._cols else np.zeros(0)
        col_upper = np.concatenate([b[2] for b in self._cols]) if self._cols else np.zeros(0)
        integ = np.concatenate([np.full(b[0].size, b[3]) for b in self._cols]) if self._cols else np.zeros(0, bool)
        c = self.c if self.c is not None and self.c.shape[0] == n else np.zeros(n)
        counts, idx, val, lows, ups = [], [], [], [], []
        for _, cols, coefs, lo, up in self._rows:
            keep = coefs != 0
            counts.append(keep.sum(axis=1))
            idx.append(cols[keep])
            val.append(coefs[keep])
            lows.append(lo)
            ups.append(up)
        counts_a = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        indptr = np.zeros(counts_a.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts_a, out=indptr[1:])
        return StandardModel(
            c=c, offset=self.offset, col_lower=col_lower, col_upper=col_upper, integrality=integ.astype(bool),
            indptr=indptr,
            indices=(np.concatenate(idx) if idx else np.zeros(0)).astype(np.int64),
            data=(np.concatenate(val) if val else np.zeros(0)).astype(np.float64),
            row_lower=np.concatenate(lows) if lows else np.zeros(0),
            row_upper=np.concatenate(ups) if ups else np.zeros(0),
            col_blocks={b[0].name: b[0] for b in self._cols},
            row_blocks={r[0].name: r[0] for r in self._rows},
            objective_integral=objective_integral, name=self.name,
        )
