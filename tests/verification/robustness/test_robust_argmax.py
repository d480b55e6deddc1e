"""Robustness of argmax outputs against enumeration of every perturbed integer input (ties count)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnmilp.network import Network
from bnnmilp.verification.robustness.robust import RobustOptions, rival_network, verify_robust
from tests.oracles import scores_exact
from tests.verification.robustness.test_robust import ball, random_net

CASES = [(seed, layers, norm, eps) for seed, (layers, norm, eps) in enumerate(
    itertools.product([[2, 3], [3, 2, 3], [3, 3, 2]], ["inf", "1"], [1, 2]))]


def adversarial(net: Network, x: np.ndarray, y: int) -> bool:
    s = scores_exact([w.tolist() for w in net.weights], [t.tolist() for t in net.thresholds], x.tolist())
    return any(s[k] >= s[y] for k in range(len(s)) if k != y)


@pytest.mark.parametrize(("seed", "layers", "norm", "eps"), CASES)
def test_argmax_robustness_matches_enumeration(seed, layers, norm, eps):
    rng = np.random.default_rng(700 + seed)
    net = random_net(rng, layers)
    X = rng.integers(0, 5, size=(6, layers[0])).astype(float)
    opts = RobustOptions(eps=eps, norm=norm, domain="integer", bounds=(0, 4), output="argmax")
    results = verify_robust(net, X, np.zeros(6, dtype=int), opts)
    for x, r in zip(X, results, strict=True):
        s = scores_exact([w.tolist() for w in net.weights], [t.tolist() for t in net.thresholds], x.tolist())
        best = max(s)
        if s.count(best) > 1:  # a tie at x itself: adversarial at distance 0
            assert r.answer == "not_robust" and r.distance == "0"
            continue
        y = s.index(best)
        truth = any(adversarial(net, xp, y) for xp in ball(x, eps, norm, 0, 4))
        assert r.answer == ("not_robust" if truth else "robust"), (seed, x, r)
        if truth:
            xp = np.array(r.counterexample)
            d = np.abs(xp - x)
            assert (d.max() if norm == "inf" else d.sum()) <= eps and adversarial(net, xp, y)


def test_rival_networks_are_exact_or_refused():
    net = Network([np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 0.3]])], [np.array([0.0, 0.25, 0.5])])
    r = rival_network(net, 0, 1)
    assert r is not None and r.weights[0].tolist() == [[-1.0, 1.0]] and r.thresholds[0].tolist() == [0.25]
    assert rival_network(net, 2, 0) is None  # 1 - 0.1 is not exact in doubles: no exact query
