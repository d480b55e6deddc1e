"""Exact sizes of the Theorem 1 model, and its rows checked on hand-made points."""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp import formulations
from bnnmilp.formulations.bounds import preactivation_bounds
from bnnmilp.network import Network
from tests.conftest import make_spec

X3 = np.array([[0.5, -0.25], [1.0, 0.75], [-0.5, -1.0]])


def build(**kw):
    spec = make_spec([2, 2, 1], **kw)
    Y = np.array([[1], [0], [1]], dtype=np.int8)
    return formulations.get("theorem1").build(spec, X3, Y)


def test_counts_paper_setting():
    m = 3
    st = build().model.stats()
    # w1 4, lam1 1, w2 2, lam2 1, u1 2m, u2 m, s2 2m
    assert st["variables"] == 8 + 5 * m
    assert st["binary"] == 3 * m
    assert st["continuous"] == 8 + 2 * m
    # on/off rows for 2m + m neurons, 4 McCormick rows per product
    assert st["rows"] == 2 * 3 * m + 4 * 2 * m
    # layer-1 rows: 2 x-terms + lam + u; layer-2 rows: 2 s + lam + u; McCormick 2+2+3+3 per product
    assert st["nonzeros"] == 4 * m * 4 + 2 * m * 4 + 10 * 2 * m


def test_counts_error_binary_zero():
    m = 3
    st = build(weights="binary", thresholds="zero", loss="error").model.stats()
    # no thresholds; + z (6 binaries), + e (m binaries); w integer in [-1, 1]
    assert st["variables"] == 6 + 5 * m + 6 + m
    assert st["integer"] == 6
    assert st["binary"] == 3 * m + 6 + m
    assert st["rows"] == 2 * 3 * m + 4 * 2 * m + 6 + m
    assert st["nonzeros"] == 4 * m * 3 + 2 * m * 3 + 10 * 2 * m + 12 + 2 * m


def test_registry_resolves_names_classes_and_instances():
    cls = type(formulations.get("theorem1"))
    assert isinstance(formulations.get(cls), cls)
    inst = cls()
    assert formulations.get(inst) is inst
    with pytest.raises(KeyError):
        formulations.get("nope")


def test_tight_big_m_never_exceeds_paper():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(20, 5))
    for thresholds in ("learned", "zero"):
        spec = make_spec([5, 4, 3, 2], thresholds=thresholds)
        tight = preactivation_bounds(spec.network, X, "tight")
        paper = preactivation_bounds(spec.network, X, "paper")
        for (tl, th), (pl, ph) in zip(tight, paper, strict=True):
            assert np.all(th <= ph) and np.all(tl >= pl)
        # and the tight bounds are attained by some weights: |W x| = ||x||_1 with W = sign(x)
        w = np.sign(X[0])
        assert abs(w @ X[0]) + (1.0 if thresholds == "learned" else 0.0) == tight[0][1][0, 0]


def test_network_point_satisfies_rows_and_wrong_bits_do_not():
    tm = build()
    net = Network([np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.5, 0.5]])],
                  [np.array([0.25, 0.25]), np.array([0.5])])
    x = tm.solution_from(net)
    assert x is not None and tm.model.max_violation(x) == 0.0
    # flip one hidden bit: some row must be violated by at least the margin
    u = tm.model.cols("u1")
    x[u[0, 0]] = 1 - x[u[0, 0]]
    assert tm.model.max_violation(x) >= tm.spec.training.epsilon - 1e-12
    # objective of the point equals the Hamming loss of the network
    x = tm.solution_from(net)
    bits = net.predict_bits(X3)
    assert float(tm.model.c @ x + tm.model.offset) == int(np.sum(bits != tm.Y))


def test_names_are_readable_and_unique():
    tm = build(loss="error", weights="binary")
    cols, rows = tm.model.col_names(), tm.model.row_names()
    assert len(set(cols)) == len(cols) == tm.model.n_cols
    assert len(set(rows)) == len(rows) == tm.model.n_rows
    assert {"w_1_0_0", "w_2_0_1", "lam_1", "lam_2", "u_2_1_1", "u_0_2_0", "s_1_2_0_1", "z_1_1_0", "e_2"} <= set(cols)
    assert {"on_0_1_0", "off_2_2_0", "mca_1_2_0_1", "bin_1_0_0", "err_0_0"} <= set(rows)
