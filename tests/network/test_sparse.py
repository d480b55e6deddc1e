"""Sparse (CSR) layers behave exactly as the same dense layers: forward pass, argmax, robustness, storage."""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp.errors import WeightsError
from bnnmilp.io import runs
from bnnmilp.network import Network
from bnnmilp.network.sparse import Csr
from bnnmilp.verification.robustness.robust import RobustOptions, verify_robust
from tests.oracles import forward_exact
from tests.verification.robustness.test_robust import random_net


def sparse_copy(net: Network) -> Network:
    return Network([Csr.from_dense(w) for w in net.weights], list(net.thresholds))


def test_csr_matches_dense_arithmetic():
    rng = np.random.default_rng(3)
    W = rng.choice([-1.0, 0.0, 0.0, 0.5], size=(9, 13))
    W[4] = 0.0  # an empty row
    C = Csr.from_dense(W)
    X = rng.normal(size=(6, 13))
    assert C.nnz == int(np.count_nonzero(W)) and np.array_equal(C.toarray(), W)
    assert np.allclose(C.matmul_t(X), X @ W.T)
    cols, vals = C.padded()
    assert cols.shape == (9, int((W != 0).sum(axis=1).max()))
    assert np.allclose((X[:, cols] * vals).sum(axis=2), X @ W.T)
    assert np.array_equal(C.take_rows(np.array([4, 0, 8])).toarray(), W[[4, 0, 8]])
    with pytest.raises(ValueError, match="duplicate"):
        Csr.from_coo(np.array([0, 0]), np.array([1, 1]), np.array([1.0, 2.0]), (1, 2))


def conv_matrix(rng, side: int, channels: int, filters: int, k: int, channels_last: bool) -> np.ndarray:
    """A valid k x k convolution of a (side, side, channels) image as a dense matrix, built by loops: its rows
    are (position, filter) when channels_last, else (filter, position); no kernel entry is 0."""
    out = side - k + 1
    kernel = rng.choice([-2.0, -1.0, 1.0, 2.0], size=(filters, k, k, channels))
    W = np.zeros((out * out * filters, side * side * channels))
    for i in range(out):
        for j in range(out):
            for f in range(filters):
                row = (i * out + j) * filters + f if channels_last else f * out * out + i * out + j
                for a in range(k):
                    for b in range(k):
                        for c in range(channels):
                            W[row, ((i + a) * side + (j + b)) * channels + c] = kernel[f, a, b, c]
    return W


@pytest.mark.parametrize("channels_last", [True, False])
def test_convolution_rows_are_grouped_and_multiply_exactly(channels_last):
    rng = np.random.default_rng(11)
    W = conv_matrix(rng, 6, 2, 5, 3, channels_last)
    C = Csr.from_dense(W)
    cols, order = C.blocks
    assert cols.shape == (16, 18) and order.shape == (16, 5)
    assert sorted(order.ravel().tolist()) == list(range(80))
    for g in range(16):  # a group's rows share its columns
        assert all(np.array_equal(np.nonzero(W[r])[0], cols[g]) for r in order[g])
    assert C._block_values.base is not None  # a view of the non-zeros in both layouts, not a copy
    X = rng.integers(-255, 256, size=(7, 72)).astype(float)  # integers: every product and sum is exact
    assert np.array_equal(C.matmul_t(X), X @ W.T)
    assert C.with_data(np.abs(C.data)).blocks is C.blocks
    assert np.array_equal(C.with_data(np.abs(C.data)).matmul_t(X), X @ np.abs(W).T)


def test_rows_that_do_not_share_columns_use_the_plain_product():
    rng = np.random.default_rng(12)
    W = rng.choice([-1.0, 0.0, 1.0], size=(12, 30))
    W[:, :3] = 1.0
    uneven = Csr.from_dense(W)
    distinct = Csr.from_dense(np.eye(12, 30) + np.eye(12, 30, 1))
    assert len(set(np.diff(uneven.indptr).tolist())) > 1 and uneven.blocks is None  # rows of unequal widths
    assert distinct.blocks is None  # 12 rows, 12 different column pairs
    X = rng.integers(-9, 10, size=(4, 30)).astype(float)
    assert np.array_equal(uneven.matmul_t(X), X @ W.T)
    assert np.array_equal(distinct.matmul_t(X), X @ distinct.toarray().T)


@pytest.mark.parametrize("seed", range(6))
def test_sparse_network_is_the_dense_network(seed):
    rng = np.random.default_rng(90 + seed)
    net = random_net(rng, [4, 3, 3])
    sp = sparse_copy(net)
    X = rng.integers(-3, 4, size=(40, 4)).astype(float)
    oracle = [forward_exact([w.tolist() for w in net.weights], [t.tolist() for t in net.thresholds], list(x))[-1]
              for x in X]
    assert sp.predict_bits(X).tolist() == net.predict_bits(X).tolist() == oracle
    assert sp.argmax_predictions(X).tolist() == net.argmax_predictions(X).tolist()
    assert sp.min_slack(X, 0.25) == net.min_slack(X, 0.25)
    for output in ("bits", "argmax"):
        opts = RobustOptions(eps=1, norm="1", domain="integer", bounds=(-3, 3), output=output)
        a = verify_robust(net, X[:8], np.zeros(8, dtype=int), opts)
        b = verify_robust(sp, X[:8], np.zeros(8, dtype=int), opts)
        assert [r.answer for r in a] == [r.answer for r in b]
        assert "unknown" not in [r.answer for r in a]


def test_sparse_layers_are_stored_as_csr_in_npz(tmp_path):
    rng = np.random.default_rng(5)
    net = sparse_copy(random_net(rng, [5, 4, 2]))
    doc = {"format": runs.WEIGHTS_FORMAT, "version": 1,
           "network": {"layers": net.layers, "weights": "continuous", "thresholds": "per_neuron"},
           "layers": net.to_layers_doc(sparse=True)}
    p = runs.write_weights_npz(tmp_path / "s.npz", doc)
    with np.load(p) as z:
        assert sorted(z.files) == ["W0.data", "W0.indices", "W0.indptr", "W0.shape", "W1.data", "W1.indices",
                                   "W1.indptr", "W1.shape", "header", "t0", "t1"]
    back = runs.load_weights(p).network
    for a, b in zip(net.weights, back.weights, strict=True):
        assert isinstance(b, Csr) and np.array_equal(a.toarray(), b.toarray())


def test_a_broken_csr_layer_names_the_key(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, header=np.array('{"format": "bnnmilp-weights"}'), **{
        "W0.indptr": np.array([0, 2]), "W0.indices": np.array([1, 0]), "W0.data": np.array([1.0, 1.0]),
        "W0.shape": np.array([1, 2]), "t0": np.zeros(1)})
    with pytest.raises(WeightsError, match=r"W0: expected a CSR matrix"):
        runs.load_weights(p)
