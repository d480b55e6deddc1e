"""Sparse layers: a small CSR matrix for fixed networks (convolutions imported from ONNX), without scipy.

A layer's weights are a dense ``np.ndarray`` or a :class:`Csr`; the helpers below (``matmul_t``,
``absolute``, ``row``, ...) accept either, so the exact forward pass, interval arithmetic and the robustness
MILP build rows from the non-zeros only. Training formulations work on dense layers (``dense``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

_CHUNK = 2_000_000  # entries of the (samples x non-zeros) product held at once
PACK_NNZ = 1_000_000  # non-zeros from which a pickled matrix tries the compact form


@dataclass(frozen=True)
class Csr:
    """Compressed sparse rows: row k holds data[indptr[k]:indptr[k+1]] at columns indices[...] (sorted)."""

    shape: tuple[int, int]
    indptr: np.ndarray  # int64, rows + 1
    indices: np.ndarray  # int64, nnz
    data: np.ndarray  # float64, nnz

    @classmethod
    def from_coo(cls, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> Csr:
        """Entries (rows, cols, vals); duplicates must not occur (they are rejected, not summed)."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        vals = np.asarray(vals, np.float64)
        keep = vals != 0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = np.lexsort((cols, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        if rows.size > 1 and np.any((np.diff(rows) == 0) & (np.diff(cols) == 0)):
            raise ValueError("duplicate entries in a sparse matrix")
        indptr = np.zeros(shape[0] + 1, np.int64)
        np.add.at(indptr, rows + 1, 1)
        return cls((int(shape[0]), int(shape[1])), np.cumsum(indptr), cols, vals)

    @classmethod
    def from_dense(cls, W: np.ndarray) -> Csr:
        r, c = np.nonzero(W)
        return cls.from_coo(r, c, W[r, c], W.shape)

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    @property
    def size(self) -> int:
        """The number of stored parameters (non-zeros): what a dense layer's ``size`` counts."""
        return self.nnz

    @property
    def row_of(self) -> np.ndarray:
        """The row of every stored entry."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape)
        out[self.row_of, self.indices] = self.data
        return out

    @property
    def entries(self) -> np.ndarray:
        """Stored values in which every distinct value occurs (all of them here; a shared kernel's once)."""
        return self.data

    def map(self, f) -> Csr:
        """f applied to the entries (f(0) = 0), the sparsity kept."""
        return self.with_data(f(self.data))

    def with_data(self, data: np.ndarray) -> Csr:
        out = Csr(self.shape, self.indptr, self.indices, np.asarray(data, np.float64))
        if "blocks" in self.__dict__:  # the same sparsity: its grouping carries over
            out.__dict__["blocks"] = self.__dict__["blocks"]
        return out

    def row(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.indptr[k], self.indptr[k + 1]
        return self.indices[a:b], self.data[a:b]

    def take_rows(self, rows: np.ndarray) -> Csr:
        rows = np.asarray(rows, np.int64)
        counts = np.diff(self.indptr)[rows]
        starts = self.indptr[rows]
        idx = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        return Csr((rows.size, self.shape[1]), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   self.indices[idx], self.data[idx])

    def rows_touching(self, cols: np.ndarray) -> np.ndarray:
        """The rows (sorted) with a non-zero in one of ``cols``."""
        hit = np.zeros(self.shape[1], bool)
        hit[cols] = True
        return np.unique(self.row_of[hit[self.indices]])

    @cached_property
    def blocks(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows that share their columns, grouped: (columns (P, w), rows (P, f)) when every row has w entries and
        the rows fall into P groups of f >= 4 rows with the same columns (a convolution's filters at one
        position), else None. A product then gathers each group's inputs once and multiplies them in BLAS."""
        counts = np.diff(self.indptr)
        rows = self.shape[0]
        if rows < 4 or self.nnz == 0 or counts.min() != counts.max():
            return None
        w = int(counts[0])
        cols = self.indices.reshape(rows, w)
        mix = np.random.default_rng(0).integers(1, 2**62, w, dtype=np.int64) | 1
        key = np.zeros(rows, np.int64)
        for t in range(w):  # a hash of each row's columns, one column at a time (no rows x w temporary)
            key += cols[:, t] * mix[t]
        first, group = np.unique(key, return_index=True, return_inverse=True)[1:]
        group = group.ravel()
        sizes = np.bincount(group)
        if first.size * 4 > rows or sizes.min() != sizes.max() or not _rows_equal(cols, cols, first[group]):
            return None  # few groups, unequal groups, or a hash collision: the plain product
        order = np.argsort(group.ravel(), kind="stable").reshape(first.size, -1)
        by_row = np.argsort(order[:, 0])  # groups in the order of their first rows
        return cols[first][by_row], order[by_row]

    @cached_property
    def _block_values(self) -> np.ndarray:
        """Each group's weights as an (f x w) matrix: (P, f, w); a view, not a copy, when the rows are ordered by
        group or by position within the groups (a convolution's channels last or first)."""
        cols, order = self.blocks
        (P, f), rows = order.shape, self.data.reshape(self.shape[0], cols.shape[1])
        index = np.arange(order.size)
        if np.array_equal(order, index.reshape(P, f)):
            return rows.reshape(P, f, -1)
        if np.array_equal(order, index.reshape(f, P).T):
            return rows.reshape(f, P, -1).transpose(1, 0, 2)
        return rows[order]

    def _matmul_blocks(self, X: np.ndarray) -> np.ndarray:
        cols, order = self.blocks
        V = None if getattr(self, "kernel", None) is not None else self._block_values
        (P, w), f = cols.shape, order.shape[1]
        out = np.empty((X.shape[0], self.shape[0]))
        ms = min(X.shape[0], 256)
        pg = max(1, _CHUNK // (ms * max(w, f)))
        kernel = getattr(self, "kernel", None)
        for s in range(0, X.shape[0], ms):
            for g in range(0, P, pg):
                G = X[s:s + ms][:, cols[g:g + pg]]  # (samples, groups, w)
                if kernel is not None:  # one weight matrix for every group: one product
                    R = (G.reshape(-1, w) @ kernel.T).reshape(G.shape[0], -1)
                else:
                    R = np.matmul(G.transpose(1, 0, 2), V[g:g + pg].transpose(0, 2, 1)).transpose(1, 0, 2)
                out[s:s + ms, order[g:g + pg].ravel()] = R.reshape(G.shape[0], -1)
        return out

    def matmul_t(self, X: np.ndarray) -> np.ndarray:
        """X @ self.T for a batch X (m x columns), from the non-zeros only."""
        X = np.asarray(X, np.float64)
        if self.blocks is not None:
            return self._matmul_blocks(X)
        m = X.shape[0]
        out = np.zeros((m, self.shape[0]))
        counts = np.diff(self.indptr)
        full = counts > 0
        starts = self.indptr[:-1][full]
        step = max(1, _CHUNK // max(1, self.nnz))
        for s in range(0, m, step):
            if self.nnz:
                prod = X[s:s + step][:, self.indices] * self.data
                out[s:s + step, full] = np.add.reduceat(prod, starts, axis=1)
        return out

    def __reduce__(self):
        """Pickled compactly where every group of rows sharing columns also shares one weight matrix (a
        convolution without padding: 35 million entries become a kernel and the groups' columns), else as its
        arrays; cached groupings are not pickled."""
        packed = self._shared_kernel() if self.nnz >= PACK_NNZ else None
        if packed is None:
            return (Csr, (self.shape, self.indptr, self.indices, self.data))
        return (_unpack, (self.shape, *packed))

    def packed(self) -> Csr:
        """The same matrix as a ``SharedKernel`` where it is one (and large), else itself."""
        kernel = self._shared_kernel() if self.nnz >= PACK_NNZ else None
        return self if kernel is None else SharedKernel.of(self.shape, *kernel)

    def _shared_kernel(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if self.blocks is None:
            return None
        cols, order = self.blocks
        values = self.data.reshape(self.shape[0], cols.shape[1])
        kernel = values[order[0]]
        if not _rows_equal(values, kernel, np.tile(np.arange(order.shape[1]), order.shape[0]), order.ravel()):
            return None
        small = np.int32 if max(self.shape) < 2**31 else np.int64
        return cols.astype(small), order.astype(small), np.ascontiguousarray(kernel)

    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) as (rows x widest row) arrays, short rows padded with column 0 and value 0."""
        counts = np.diff(self.indptr)
        width = int(counts.max(initial=0))
        cols = np.zeros((self.shape[0], width), np.int64)
        vals = np.zeros((self.shape[0], width))
        pos = np.arange(self.nnz) - np.repeat(self.indptr[:-1], counts)
        cols[self.row_of, pos] = self.indices
        vals[self.row_of, pos] = self.data
        return cols, vals


def _rows_equal(a: np.ndarray, b: np.ndarray, b_rows: np.ndarray, a_rows: np.ndarray | None = None,
                entries: int = 1 << 20) -> bool:
    """Whether a[a_rows[i]] == b[b_rows[i]] for every i (a_rows: all rows of a in order), compared in chunks of
    about ``entries`` entries so that no copy of a large matrix is made."""
    n = b_rows.size
    chunk = max(1, entries // max(1, a.shape[1]))
    for s in range(0, n, chunk):
        left = a[s:s + chunk] if a_rows is None else a[a_rows[s:s + chunk]]
        if not np.array_equal(left, b[b_rows[s:s + chunk]]):
            return False
    return True


def _unpack(shape: tuple[int, int], cols: np.ndarray, order: np.ndarray, kernel: np.ndarray) -> Csr:
    """The matrix ``Csr.__reduce__`` packed: row order[g][i] holds kernel[i] at columns cols[g]."""
    return SharedKernel.of(shape, cols, order, kernel)


class SharedKernel(Csr):
    """A Csr whose rows fall into groups sharing their columns and one weight matrix (a convolution without
    padding), kept as (columns per group, rows per group, kernel): products, rows and maps work from these, and
    the expanded ``indices`` and ``data`` (hundreds of MB for a 64x64 conv) are made only when asked for."""

    @classmethod
    def of(cls, shape: tuple[int, int], cols: np.ndarray, order: np.ndarray, kernel: np.ndarray) -> SharedKernel:
        out = object.__new__(cls)
        w = cols.shape[1]
        object.__setattr__(out, "shape", (int(shape[0]), int(shape[1])))
        object.__setattr__(out, "indptr", np.arange(shape[0] + 1, dtype=np.int64) * w)
        out.__dict__["blocks"] = (cols.astype(np.int64), order.astype(np.int64))
        out.__dict__["kernel"] = np.ascontiguousarray(kernel, np.float64)
        return out

    @cached_property
    def _where(self) -> tuple[np.ndarray, np.ndarray]:
        """(group, position in the kernel) of every row."""
        order = self.blocks[1]
        (P, f), rows = order.shape, self.shape[0]
        group, pos = np.empty(rows, np.int64), np.empty(rows, np.int64)
        group[order.ravel()] = np.repeat(np.arange(P), f)
        pos[order.ravel()] = np.tile(np.arange(f), P)
        return group, pos

    @cached_property
    def indices(self) -> np.ndarray:  # type: ignore[override]
        return self.blocks[0][self._where[0]].ravel()

    @cached_property
    def data(self) -> np.ndarray:  # type: ignore[override]
        return self.kernel[self._where[1]].ravel()

    @property
    def nnz(self) -> int:
        return self.shape[0] * self.blocks[0].shape[1]

    @property
    def entries(self) -> np.ndarray:
        return self.kernel.ravel()

    def map(self, f) -> SharedKernel:
        return SharedKernel.of(self.shape, *self.blocks, f(self.kernel))

    def rows_touching(self, cols: np.ndarray) -> np.ndarray:
        hit = np.zeros(self.shape[1], bool)
        hit[cols] = True
        groups = np.flatnonzero(hit[self.blocks[0]].any(axis=1))
        return np.sort(self.blocks[1][groups].ravel())

    def row(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        group, pos = self._where
        return self.blocks[0][group[k]], self.kernel[pos[k]]

    def take_rows(self, rows: np.ndarray) -> Csr:
        group, pos = self._where
        rows = np.asarray(rows, np.int64)
        w = self.blocks[0].shape[1]
        return Csr((rows.size, self.shape[1]), np.arange(rows.size + 1, dtype=np.int64) * w,
                   self.blocks[0][group[rows]].ravel(), self.kernel[pos[rows]].ravel())

    def packed(self) -> SharedKernel:
        return self

    def _shared_kernel(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cols, order = self.blocks
        small = np.int32 if max(self.shape) < 2**31 else np.int64
        return cols.astype(small), order.astype(small), self.kernel


def compact(W: np.ndarray | Csr, below: float = 0.25) -> np.ndarray | Csr:
    """Sparse when fewer than ``below`` of the entries are non-zero (or the dense matrix would be huge), else
    dense: the storage of a fixed layer."""
    rows, cols = W.shape
    nnz = W.nnz if isinstance(W, Csr) else int(np.count_nonzero(W))
    sparse = nnz < below * rows * cols or rows * cols > 4_000_000
    if sparse:
        return (W if isinstance(W, Csr) else Csr.from_dense(W)).packed()
    return W.toarray() if isinstance(W, Csr) else W


def is_sparse(W: object) -> bool:
    return isinstance(W, Csr)


def dense(W: np.ndarray | Csr) -> np.ndarray:
    return W.toarray() if isinstance(W, Csr) else W


def matmul_t(X: np.ndarray, W: np.ndarray | Csr) -> np.ndarray:
    """X @ W.T for a dense or sparse layer."""
    return W.matmul_t(X) if isinstance(W, Csr) else X @ W.T


def matvec(W: np.ndarray | Csr, v: np.ndarray) -> np.ndarray:
    return W.matmul_t(v[None, :])[0] if isinstance(W, Csr) else W @ v


def elementwise(W: np.ndarray | Csr, f) -> np.ndarray | Csr:
    """f applied to the entries (f(0) must be 0 for a sparse layer: abs, positive part, negative part)."""
    return W.map(f) if isinstance(W, Csr) else f(W)


def row(W: np.ndarray | Csr, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of the non-zeros of row k."""
    if isinstance(W, Csr):
        return W.row(k)
    cols = np.flatnonzero(W[k])
    return cols, W[k, cols]


def values(W: np.ndarray | Csr) -> np.ndarray:
    """The stored entries (all of a dense layer; the non-zeros of a sparse one)."""
    return W.data if isinstance(W, Csr) else W.ravel()


def entries(W: np.ndarray | Csr) -> np.ndarray:
    """Values in which every distinct entry occurs (a shared kernel's once): for checks over the set of values."""
    return W.entries if isinstance(W, Csr) else W.ravel()


def has_zeros(W: np.ndarray | Csr) -> bool:
    """Whether the layer has zero entries (implicit ones of a sparse layer included)."""
    if isinstance(W, Csr):
        return W.nnz < W.shape[0] * W.shape[1] or bool(np.any(W.data == 0))
    return bool(np.any(W == 0))
