"""Imported models on disk: the same model back, exactly; a bad entry rebuilt; the cache off on request; a conv
matrix pickled as its kernel and unpacked to the same arrays."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bnnmilp.io.importers import cache
from bnnmilp.network import sparse
from bnnmilp.network.sparse import Csr
from tests.network.test_sparse import conv_matrix


@pytest.mark.parametrize("channels_last", [True, False])
def test_a_convolution_pickles_as_its_kernel_and_unpacks_to_the_same_arrays(monkeypatch, channels_last):
    monkeypatch.setattr(sparse, "PACK_NNZ", 0)
    W = conv_matrix(np.random.default_rng(4), 9, 3, 6, 3, channels_last)
    C = Csr.from_dense(W)
    plain = pickle.dumps((C.shape, C.indptr, C.indices, C.data))
    packed = pickle.dumps(C)
    assert len(packed) * 4 < len(plain)  # the kernel and the groups' columns, not every entry
    back = pickle.loads(packed)
    X = np.random.default_rng(5).integers(-255, 256, size=(4, W.shape[1])).astype(float)
    # products, rows, maps and a second pickle come from the kernel: the entries are not expanded
    assert back.shape == C.shape and back.nnz == C.nnz
    assert np.array_equal(back.matmul_t(X), X @ W.T)
    for k in (0, 7, W.shape[0] - 1):
        cols, vals = back.row(k)
        assert np.array_equal(cols, np.nonzero(W[k])[0]) and np.array_equal(vals, W[k, cols])
    assert np.array_equal(back.take_rows(np.array([9, 2, 2])).toarray(), W[[9, 2, 2]])
    assert np.array_equal(back.map(np.abs).matmul_t(X), X @ np.abs(W).T)
    assert sorted(set(back.entries.tolist())) == sorted(set(W[W != 0].tolist()))
    some = np.array([0, 5, W.shape[1] - 1])
    touching = np.flatnonzero((W[:, some] != 0).any(axis=1))
    assert np.array_equal(back.rows_touching(some), touching) and np.array_equal(C.rows_touching(some), touching)
    assert pickle.dumps(back) == packed
    assert "indices" not in back.__dict__ and "data" not in back.__dict__
    for a, b in ((back.indptr, C.indptr), (back.indices, C.indices), (back.data, C.data)):  # expanded on request
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_rows_with_their_own_weights_pickle_as_arrays(monkeypatch):
    monkeypatch.setattr(sparse, "PACK_NNZ", 0)
    W = conv_matrix(np.random.default_rng(6), 6, 2, 4, 3, True)
    W[5, np.nonzero(W[5])[0][0]] *= -1  # one position's kernel differs: no shared kernel
    C = Csr.from_dense(W)
    assert C.blocks is not None and C._shared_kernel() is None
    back = pickle.loads(pickle.dumps(C))
    assert np.array_equal(back.toarray(), W) and "blocks" not in back.__dict__


def test_an_entry_is_built_once_read_back_and_rebuilt_when_unreadable(monkeypatch, tmp_path):
    monkeypatch.setenv("BNNMILP_CACHE_DIR", str(tmp_path))
    made = []

    def make():
        made.append(1)
        return {"weights": np.arange(6.0), "note": "x"}

    first = cache.cached("d" * 64, ("opt", 1), make)
    second = cache.cached("d" * 64, ("opt", 1), make)
    assert len(made) == 1 and np.array_equal(second["weights"], first["weights"]) and second["note"] == "x"
    cache.cached("d" * 64, ("opt", 2), make)  # other options: another entry
    assert len(made) == 2
    for p in tmp_path.glob("*.pickle"):
        p.write_bytes(p.read_bytes()[:10])  # a damaged entry
    assert cache.cached("d" * 64, ("opt", 1), make)["note"] == "x" and len(made) == 3
    assert not list(tmp_path.glob(".entry-*"))  # no temporary file left behind


def test_the_cache_can_be_turned_off_and_a_read_only_folder_is_no_error(monkeypatch, tmp_path):
    made = []
    monkeypatch.setenv("BNNMILP_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("BNNMILP_CACHE", "0")
    for _ in range(2):
        cache.cached("e" * 64, (), lambda: made.append(1) or 7)
    assert len(made) == 2 and not list(tmp_path.iterdir())
    monkeypatch.delenv("BNNMILP_CACHE")
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv("BNNMILP_CACHE_DIR", str(blocked / "sub"))
    assert cache.cached("e" * 64, (), lambda: 8) == 8


def test_a_cached_onnx_model_answers_as_the_imported_one(monkeypatch, tmp_path):
    from bnnmilp.verification.robustness import vnnlib as vq
    from tests.onnx_models import two_conv_bnn

    monkeypatch.setenv("BNNMILP_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.onnx"
    two_conv_bnn(model, 2, 6, seed=3)
    fresh = vq.model_for(model, False, None)
    vq._CACHE.clear()  # as a new process would: from the disk entry
    loaded = vq.model_for(model, False, None)
    assert loaded is not fresh and len(list((tmp_path / "cache").glob("*.pickle"))) == 1
    X = np.random.default_rng(0).uniform(-3, 3, size=(20, fresh.hidden.layers[0]))
    for x in X:
        assert vq.outputs_exact(loaded, x) == vq.outputs_exact(fresh, x)
