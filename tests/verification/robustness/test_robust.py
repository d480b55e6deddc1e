"""Robustness answers against exhaustive enumeration of every perturbed integer input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnmilp.network import Network
from bnnmilp.verification.robustness.robust import RobustOptions, verify_robust
from tests.oracles import forward_exact


def random_net(rng, layers):
    ws = [rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=(layers[i + 1], layers[i])) for i in range(len(layers) - 1)]
    ts = [rng.choice([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0], size=d) for d in layers[1:]]
    return Network(ws, ts)


def ball(x, eps, norm, lo, hi):
    ranges = [range(max(lo, int(v) - eps), min(hi, int(v) + eps) + 1) for v in x]
    for p in itertools.product(*ranges):
        d = np.abs(np.array(p) - x)
        if (d.max() if norm == "inf" else d.sum()) <= eps:
            yield np.array(p, dtype=float)


def oracle_out(net, x):
    return forward_exact([w.tolist() for w in net.weights], [t.tolist() for t in net.thresholds], list(x))[-1]


CASES = [(seed, layers, norm, eps) for seed, (layers, norm, eps) in enumerate(
    itertools.product([[2, 2, 1], [3, 2, 2], [3, 3, 2]], ["inf", "1"], [1, 2]))]


@pytest.mark.parametrize(("seed", "layers", "norm", "eps"), CASES)
@pytest.mark.parametrize(("prune", "reuse"), [(True, True), (False, False)])
def test_integer_domain_matches_enumeration(seed, layers, norm, eps, prune, reuse):
    rng = np.random.default_rng(300 + seed)
    net = random_net(rng, layers)
    X = rng.integers(0, 4, size=(6, layers[0])).astype(float)
    labels = np.zeros(6, dtype=int)
    opts = RobustOptions(eps=eps, norm=norm, domain="integer", bounds=(0, 3), prune=prune, reuse=reuse)
    results = verify_robust(net, X, labels, opts)
    answers = []
    for r, x in zip(results, X, strict=True):
        ref = oracle_out(net, x)
        truth = all(oracle_out(net, p) == ref for p in ball(x, eps, norm, 0, 3))
        assert r.answer != "unknown", r
        assert (r.answer == "robust") == truth, (r, x)
        if r.answer == "not_robust":  # every counterexample replays, independently
            cx = np.array(r.counterexample)
            assert oracle_out(net, cx) != ref
            d = np.abs(cx - x)
            assert (d.max() if norm == "inf" else d.sum()) <= eps and np.all(cx == np.round(cx))
        answers.append(r.answer)
    if seed == 0:
        assert set(answers) <= {"robust", "not_robust"}


@pytest.mark.parametrize("norm", ["inf", "1"])
@pytest.mark.parametrize("reuse", [True, False])
def test_min_eps_matches_enumeration(norm, reuse):
    rng = np.random.default_rng(42)
    for trial in range(4):
        layers = [3, 2, 2]
        net = random_net(rng, layers)
        X = rng.integers(0, 4, size=(5, 3)).astype(float)
        opts = RobustOptions(eps=None, norm=norm, domain="integer", bounds=(0, 3), min_eps=True, reuse=reuse)
        for r, x in zip(verify_robust(net, X, np.zeros(5, int), opts), X, strict=True):
            ref = oracle_out(net, x)
            dists = [(np.abs(p - x).max() if norm == "inf" else np.abs(p - x).sum())
                     for p in ball(x, 9, norm, 0, 3) if oracle_out(net, p) != ref]
            if not dists:
                assert r.answer == "robust", (trial, r)
            else:
                assert r.answer == "not_robust", (trial, r)
                assert float(r.distance) == min(dists)


def test_against_label_and_continuous_domain():
    # one input, one output: bit = x >= 0.5 ; sample x = 1 with label 1, eps 0.5 reaches x' = 0.5 (a tie: bit 1)
    net = Network([np.array([[1.0]])], [np.array([0.5])])
    X = np.array([[1.0], [0.0]])
    r = verify_robust(net, X, np.array([1, 1]), RobustOptions(eps=0.5, against="label"))
    assert r[0].answer == "robust"  # the tie keeps bit 1: no epsilon slack on the verifier's side
    assert r[1].answer == "not_robust" and r[1].note == "misclassified already"
    r = verify_robust(net, X, np.array([1, 1]), RobustOptions(eps=0.625))
    assert r[0].answer == "not_robust" and float(r[0].counterexample[0]) < 0.5
