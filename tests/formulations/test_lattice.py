"""Thresholds moved onto the pre-activations' lattice: the same bits on every integer input, and MILP robustness
answers that are definite and right where a learned threshold has a long binary expansion."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnmilp.formulations.robustness import on_lattice
from bnnmilp.network import Network
from bnnmilp.verification.robustness.robust import RobustOptions, verify_robust
from tests.oracles import forward_exact


def off_lattice_net(rng, layers) -> Network:
    """Weights on a lattice of 1/2, thresholds anywhere in [-1, 1] (as polishing leaves them), and some exactly
    on the lattice (ties possible)."""
    ws = [rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=(layers[i + 1], layers[i])) for i in range(len(layers) - 1)]
    ts = [np.where(rng.random(d) < 0.3, rng.choice([-1.0, -0.5, 0.0, 0.5]), rng.uniform(-1, 1, size=d))
          for d in layers[1:]]
    return Network(ws, ts)


def bits(net: Network, x) -> list:
    return forward_exact([w.tolist() for w in net.weights], [t.tolist() for t in net.thresholds], list(x))


@pytest.mark.parametrize("seed", range(5))
def test_every_bit_is_kept_on_every_integer_input(seed):
    rng = np.random.default_rng(900 + seed)
    net = off_lattice_net(rng, [3, 3, 2])
    moved, deltas = on_lattice(net, integer=True)
    lattice = tuple(1.0 if np.all(np.round(W) == W) else 0.5 for W in net.weights)  # the weights' own
    assert deltas == lattice
    for lam, g, orig in zip(moved.thresholds, lattice, net.thresholds, strict=True):
        assert np.all(lam / g == np.round(lam / g))  # on the lattice, moved up by less than one step
        assert np.all(lam >= orig) and np.all(lam - orig < g)
    for x in itertools.product(range(-3, 4), repeat=3):
        assert bits(moved, x) == bits(net, x)
    real, real_deltas = on_lattice(net, integer=False)  # real inputs: layer 1 untouched, delta 0
    assert np.array_equal(real.thresholds[0], net.thresholds[0]) and real_deltas == (0.0, lattice[1])
    scores, _ = on_lattice(net, integer=True, argmax=True)  # a score layer keeps its thresholds
    assert np.array_equal(scores.thresholds[1], net.thresholds[1])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("norm", ["inf", "1"])
def test_the_milp_engine_is_definite_and_right_with_off_lattice_thresholds(seed, norm):
    rng = np.random.default_rng(950 + seed)
    net = off_lattice_net(rng, [3, 2, 2])
    X = rng.integers(0, 4, size=(5, 3)).astype(float)
    results = verify_robust(net, X, np.zeros(5, dtype=int),
                            RobustOptions(eps=1, norm=norm, domain="integer", bounds=(0, 3), engine="milp"))
    for r, x in zip(results, X, strict=True):
        ref = bits(net, x)[-1]
        ball = [p for p in itertools.product(*(range(max(0, int(v) - 1), min(3, int(v) + 1) + 1) for v in x))
                if (np.abs(np.array(p) - x).max() if norm == "inf" else np.abs(np.array(p) - x).sum()) <= 1]
        truth = all(bits(net, p)[-1] == ref for p in ball)
        assert r.answer != "unknown", r
        assert (r.answer == "robust") == truth, (r, x)
