"""One enumeration shared by forked processes (``verification.robustness.split``): the same answers as brute force
over the ball, counterexamples that are genuine, failures and deadlines that never read as proofs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bnnmilp.verification.robustness import reach, split
from bnnmilp.verification.robustness.robust import RobustOptions, verify_robust
from tests.verification.robustness.test_reach import TAIL_CASES, plan_ball, sat_net, threshold_net

pytestmark = pytest.mark.skipif(not split.usable(2, split.SPLIT_MIN), reason="needs fork (Linux)")


def _argmax_adversarial(y: int):
    def adversarial(last, U):
        sc = U @ reach.dense(last.weights[0]).T - last.thresholds[0]
        return (np.delete(sc, y, axis=1) >= sc[:, [y]]).any(axis=1)
    return adversarial


@pytest.mark.parametrize(("seed", "norm", "eps"), [c for c in TAIL_CASES if c[0] in (1, 3)])
def test_split_search_matches_brute_force(seed, norm, eps, monkeypatch):
    """Two and three processes on small queries (SPLIT_MIN 0 so they do split): a counterexample exactly where
    some point of the ball changes the argmax, within the ball and adversarial; None otherwise."""
    monkeypatch.setattr(split, "SPLIT_MIN", 0)
    monkeypatch.setattr(reach, "PLAN_MIN", 0)
    rng = np.random.default_rng(2100 + seed)
    net = sat_net(rng, 7, [8, 6], 3)
    both = set()
    for x in rng.integers(-3, 4, size=(12, 7)).astype(float):
        y = int(net.argmax_predictions(x[None, :])[0])
        truth = bool(np.any(net.argmax_predictions(plan_ball(x, eps, norm)) != y))
        r = reach.reachable(net, x, eps, norm, np.full(7, -3.0), np.full(7, 3.0), reach.threshold_layer(net))
        for processes in (2, 3):
            xp = split.search(reach.Enumeration(net, r, eps, norm), x, _argmax_adversarial(y), None, processes)
            assert (xp is not None) == truth, (seed, x, processes)
            if xp is not None:
                d = np.abs(xp - x)
                assert (d.sum() if norm == "1" else d.max()) <= eps and np.all(np.abs(xp) <= 3)
                assert net.argmax_predictions(xp[None, :])[0] != y
        both.add(truth)
    assert both == {True, False}  # robust and not robust points both met


def test_a_failing_part_raises_and_a_deadline_proves_nothing(monkeypatch):
    """A part whose rule raises surfaces as RuntimeError naming the error (never as 'robust'); at a deadline
    already past every part stops: SearchTimeoutError with the choices the parts checked."""
    monkeypatch.setattr(split, "SPLIT_MIN", 0)
    rng = np.random.default_rng(9)
    net = threshold_net(rng, 6, 1, [5], 3)
    x = np.zeros(6)
    r = reach.reachable(net, x, 2, "inf", np.full(6, -3.0), np.full(6, 3.0), reach.threshold_layer(net))

    def broken(rest, U):
        raise ValueError("rule broke")

    with pytest.raises(RuntimeError, match="ValueError: rule broke"):
        split.search(reach.Enumeration(net, r, 2, "inf"), x, broken, None, 2)
    with pytest.raises(reach.SearchTimeoutError) as stop:
        split.search(reach.Enumeration(net, r, 2, "inf"), x, lambda rest, U: np.zeros(U.shape[0], bool),
                     time.perf_counter() - 1.0, 2)
    assert 1 <= stop.value.done < r.combinations


def test_verify_robust_with_split_gives_the_same_answers(monkeypatch):
    """``RobustOptions.split`` through the engine: the same answers as one process on every sample, and the
    notes of the enumerations (not of the samples that interval arithmetic settles) say that they ran on two
    processes."""
    monkeypatch.setattr(split, "SPLIT_MIN", 0)
    rng = np.random.default_rng(15)
    net = threshold_net(rng, 6, 1, [6, 5], 3)
    X = rng.integers(-3, 4, size=(16, 6)).astype(float)
    labels = np.zeros(16, dtype=int)
    opts = RobustOptions(eps=2, norm="1", domain="integer", bounds=(-3, 3), engine="enum")
    one = verify_robust(net, X, labels, opts)
    two = verify_robust(net, X, labels, RobustOptions(**{**opts.__dict__, "split": 2}))
    assert [q.answer for q in one] == [q.answer for q in two]
    assert {q.answer for q in two} == {"robust", "not_robust"}
    enumerated = [q for q in two if q.method == "enum"]
    assert len(enumerated) >= 8
    for q in two:
        assert ("on 2 processes" in q.note) == (q.method == "enum")
        if q.answer == "not_robust":
            xp = np.array(q.counterexample)
            assert np.abs(xp - X[q.index]).sum() <= 2
            assert not np.array_equal(net.predict_bits(xp[None, :]), net.predict_bits(X[q.index][None, :]))
