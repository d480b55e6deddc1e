"""The batched MILP layer (numpy side): batches equal one-by-one solves, gradients equal finite differences away
from kinks, ranged rows give the moved side's multiplier, rows over integers give 0 and flag jumps (checked
against the value function enumerated)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnmilp.analysis.layer import BatchMilp
from bnnmilp.milp.model import INF, ModelBuilder, StandardModel


def mixed(seed: int) -> StandardModel:
    """min c x over 3 integers in [0, 4] and 3 continuous in [0, 6]: two >= rows, one ranged row."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    xi = b.add_vars("xi", (3,), 0, 4, True)
    xc = b.add_vars("xc", (3,), 0, 6)
    cols = np.concatenate([xi, xc])
    A = rng.choice([0.5, 1.0, 1.5, 2.0, 3.0], (3, 6)) * (rng.random((3, 6)) < 0.8)
    A[:, 3:] = np.maximum(A[:, 3:], 0.5)  # every row has a continuous variable
    b.add_rows("r", (3,), np.broadcast_to(cols, (3, 6)), A, rng.uniform(2, 6, 3),
               np.array([INF, INF, 30.0]))
    b.set_objective(cols, rng.uniform(1, 5, 6))
    return b.build()


def test_a_batch_equals_one_by_one_solves() -> None:
    m = mixed(0)
    rng = np.random.default_rng(1)
    C = rng.uniform(1, 5, (6, m.n_cols))
    B = m.row_lower + rng.uniform(0, 2, (6, m.n_rows))
    layer = BatchMilp(m, workers=2)
    batch = layer.solve(B, C, duals=True)
    single = [BatchMilp(m, workers=1).solve_one(B[i], C[i], None, True) for i in range(6)]
    for s, t in zip(batch, single, strict=True):
        assert s.z == t.z and np.array_equal(s.x, t.x) and np.array_equal(s.y, t.y)


@pytest.mark.parametrize("seed", range(12))
def test_gradients_equal_finite_differences_away_from_kinks(seed: int) -> None:
    m = mixed(seed)
    layer = BatchMilp(m, workers=1)
    b0 = np.where(np.isfinite(m.row_lower), m.row_lower, m.row_upper)
    s = layer.solve_one(b0, None, None, True)
    h = 1e-5
    checked = 0
    for i in range(m.n_rows):
        e = np.zeros(m.n_rows)
        e[i] = h
        zp, zm = layer.solve_one(b0 + e, None, None, False).z, layer.solve_one(b0 - e, None, None, False).z
        right, left = (zp - s.z) / h, (s.z - zm) / h
        if abs(right - left) > 1e-4:
            continue  # a kink of z in b_i
        assert s.y[i] == pytest.approx((right + left) / 2, abs=1e-4)
        checked += 1
    for j in range(m.n_cols):
        e = np.zeros(m.n_cols)
        e[j] = h
        zp, zm = layer.solve_one(None, m.c + e, None, False).z, layer.solve_one(None, m.c - e, None, False).z
        if abs((zp - s.z) - (s.z - zm)) / h > 1e-4:
            continue
        assert s.x[j] == pytest.approx((zp - zm) / (2 * h), abs=1e-4)
        checked += 1
    for k in range(m.nnz):
        e = np.zeros(m.nnz)
        e[k] = h
        zp, zm = (layer.solve_one(None, None, m.data + sgn * e, False).z for sgn in (1, -1))
        if abs((zp - s.z) - (s.z - zm)) / h > 1e-4:
            continue
        row = np.searchsorted(m.indptr, k, side="right") - 1
        assert -s.y[row] * s.x[m.indices[k]] == pytest.approx((zp - zm) / (2 * h), abs=1e-4)
        checked += 1
    assert checked >= m.n_rows  # most directions are smooth


def ranged() -> StandardModel:
    """max x (min -x) with the row 1 <= x <= 3 and x in [0, 10]: the upper side binds."""
    b = ModelBuilder()
    x = b.add_vars("x", (1,), 0, 10)
    k = b.add_vars("k", (1,), 0, 1, True)
    b.add_rows("r", (), np.array([[int(x[0]), int(k[0])]]), np.array([[1.0, 0.0]]), 1.0, 3.0)
    b.set_objective(np.concatenate([x, k]), np.array([-1.0, 0.5]))
    return b.build()


def test_a_ranged_row_gives_the_moved_sides_multiplier() -> None:
    """b moves the lower side (1); the upper side (3) binds: dz/db = 0, as the finite difference says (the
    upper side's multiplier, -1, is not a derivative with respect to b)."""
    m = ranged()
    layer = BatchMilp(m, workers=1)
    s = layer.solve_one(np.array([1.0]), None, None, True)
    assert s.z == -3.0 and s.y[0] == 0.0
    assert layer.solve_one(np.array([1.5]), None, None, False).z == -3.0
    # the lower side binds once b passes the upper one's effect: min x with the same row
    t = BatchMilp(ranged_min(), workers=1).solve_one(np.array([1.0]), None, None, True)
    assert t.z == 1.0 and t.y[0] == 1.0


def ranged_min() -> StandardModel:
    m = ranged()
    return m.with_objective(np.array([1.0, 0.5]), 0.0, False)


def knapsack(cap: float) -> StandardModel:
    w, v = np.array([3.0, 4.0, 5.0, 6.0]), np.array([4.0, 5.0, 7.0, 8.0])
    b = ModelBuilder()
    x = b.add_vars("x", (4,), 0, 1, True)
    b.add_rows("cap", (), x[None, :], w[None, :], -INF, cap)
    b.set_objective(x, -v)
    return b.build()


def enumerate_z(cap: float) -> float:
    w, v = np.array([3.0, 4.0, 5.0, 6.0]), np.array([4.0, 5.0, 7.0, 8.0])
    return min(-float(v @ np.array(p)) for p in itertools.product([0, 1], repeat=4) if w @ np.array(p) <= cap)


@pytest.mark.parametrize("cap", [float(c) for c in range(3, 19)] + [7.5, 10.25, 12.75])
def test_rows_over_integers_have_gradient_zero_and_every_jump_is_flagged(cap: float) -> None:
    s = BatchMilp(knapsack(cap), workers=1).solve_one(None, None, None, True)
    assert s.z == enumerate_z(cap) and s.y[0] == 0.0
    jumps_below = enumerate_z(cap - 1e-6) != enumerate_z(cap)  # z jumps as the capacity moves inwards
    if jumps_below:
        assert s.jump[0]
    if cap != int(cap):
        assert not s.jump[0]  # off the lattice the row cannot hold with equality


def test_exact_gradients_flag_a_kink() -> None:
    """Two optimal solutions (items 1 and 2 tie): the exact method says kink, the fast one says not checked."""
    m = knapsack(5.0).with_objective(np.array([-4.0, -4.0, -1.0, -1.0]), 0.0, False)
    m = m.with_objective(np.array([-4.0, -4.0, -1.0, -1.0]), 0.0, False)
    assert BatchMilp(m, workers=1, exact=True).solve_one(None, None, None, True).kink is True
    assert BatchMilp(m, workers=1).solve_one(None, None, None, True).kink is None


def test_different_batch_sizes_are_refused() -> None:
    m = mixed(0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        BatchMilp(m).solve(np.zeros((2, m.n_rows)), np.ones((3, m.n_cols)))


@pytest.mark.parametrize("seed", range(6))
def test_gurobi_and_highs_give_the_same_optima_and_gradients(seed: int) -> None:
    """Two solvers, one answer: z equal to 1e-9; where both find the same x* (most instances: the rest are ties),
    the same duals of the fixed LP and the same jump flags."""
    pytest.importorskip("gurobipy")
    m = mixed(seed)
    rng = np.random.default_rng(10 + seed)
    C = rng.uniform(1, 5, (5, m.n_cols))
    B = m.row_lower + rng.uniform(0, 2, (5, m.n_rows))
    A = m.data * rng.uniform(0.8, 1.2, (5, m.nnz))
    same = 0
    for args in ((B, C, None), (None, C, A), (B, None, A)):
        h = BatchMilp(m, workers=2).solve(*args, duals=True)
        g = BatchMilp(m, workers=2, solver="gurobi").solve(*args, duals=True)
        for sh, sg in zip(h, g, strict=True):
            assert sg.z == pytest.approx(sh.z, abs=1e-9)
            if np.allclose(sh.x, sg.x, atol=1e-7):
                same += 1
                assert np.allclose(sh.y, sg.y, atol=1e-7) and np.array_equal(sh.jump, sg.jump)
    assert same >= 8
    ranged_model = ranged()
    for solver in ("highs", "gurobi"):
        s = BatchMilp(ranged_model, workers=1, solver=solver).solve_one(np.array([2.0]), None, None, True)
        assert (s.z, s.x[0], s.y[0]) == (-3.0, 3.0, 0.0)  # the upper side binds: b (the lower side) moves nothing


def test_an_unknown_solver_is_refused() -> None:
    with pytest.raises(ValueError, match="'highs' or 'gurobi'"):
        BatchMilp(mixed(0), solver="cplex")
