"""Icarte et al.'s hybrid decomposition: the start's hidden pattern is kept, the output layer is optimal for it."""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp.io.runs import load_weights, write_run
from bnnmilp.network import Network
from bnnmilp.training.decompose import decompose, unit_margin
from bnnmilp.training.pipeline import evaluate, train
from bnnmilp.verification.checkers.claims import verify_weights
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum

CASES = [([2, 2, 1], "ternary", "learned", "hamming", 7), ([2, 2, 2], "ternary", "per_neuron", "hamming", 8),
         ([2, 3, 2], "binary", "per_neuron", "error", 9), ([2, 2, 2], "binary", "zero", "hamming", 10),
         ([2, 2, 2], "continuous", "learned", "hamming", 11)]


def _start(spec, layers, seed) -> Network:
    """A random network of the domain (thresholds on the dyadic grid, so the epsilon margin is likely met)."""
    rng = np.random.default_rng(seed)
    dom = {"binary": [-1.0, 1.0], "ternary": [-1.0, 0.0, 1.0]}.get(spec.network.weights)
    ws = [rng.choice(dom, size=(layers[i + 1], layers[i])) if dom
          else rng.integers(-8, 9, (layers[i + 1], layers[i])) / 8 for i in range(len(layers) - 1)]
    ts = []
    for i in range(len(layers) - 1):
        if spec.network.thresholds == "zero":
            ts.append(np.zeros(layers[i + 1]))
        elif spec.network.thresholds == "learned":
            ts.append(np.full(layers[i + 1], rng.integers(-7, 8) / 8 + 1 / 32))
        else:
            ts.append(rng.integers(-7, 8, layers[i + 1]) / 8 + 1 / 32)
    return Network(ws, ts)


@pytest.mark.parametrize(("layers", "weights", "thresholds", "loss", "seed"), CASES)
def test_output_layer_is_optimal_for_the_start_hidden_pattern(layers, weights, thresholds, loss, seed):
    data = grid_instance(seed, layers, 6)
    spec = make_spec(layers, weights, thresholds, loss)
    X, Y = data.features, data.targets(layers[-1])
    start = _start(spec, layers, seed)
    dec = decompose(spec, X, Y, start)
    bits0, bits = start.forward(X), dec.network.forward(X)
    # the hidden activations are the start's, bit for bit
    assert all(np.array_equal(a, b) for a, b in zip(bits0[:-1], bits[:-1], strict=True))
    # the output layer reaches the brute-force optimum of a one-layer network on those hidden bits
    got, before = evaluate(spec, dec.network, data, "solver"), evaluate(spec, start, data, "start")
    if weights != "continuous":  # the oracle enumerates discrete weights only
        H = bits0[-2].astype(np.float64).tolist()
        opt = brute_force_optimum([layers[-2], layers[-1]], weights, thresholds, loss, H, Y.tolist(),
                                  spec.training.epsilon)
        assert got.loss == opt
    if before.epsilon_feasible:  # then the start's output layer is a MILP start: never worse
        assert got.loss <= before.loss


@pytest.mark.parametrize("weights", ["ternary", "binary", "continuous"])
def test_unit_margin_is_the_largest_margin(weights):
    """Against enumeration of weights (a fine grid for continuous ones) and thresholds: one unit, four inputs.

    The unit must output x_1: margin mu = min(w1 - l, w1 + w2 - l, l - w2 - eps, l - eps) (rows on, on, off,
    off); binary weights cannot (w = (1, -1) gives a = 0 on both (1, 1) and (0, 0)).
    """
    spec = make_spec([2, 1], weights, "per_neuron")
    inputs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    target = np.array([1, 0, 1, 0], dtype=np.int8)
    got = unit_margin(spec, inputs, target, np.array([1.0, -1.0]), 0.5, free_threshold=True)
    dom = {"binary": [-1.0, 1.0], "ternary": [-1.0, 0.0, 1.0]}.get(weights, np.linspace(-1, 1, 33))
    best = max(min(w1 - l, w1 + w2 - l, l - w2 - 0.0625, l - 0.0625)
               for w1 in dom for w2 in dom for l in np.linspace(-1, 1, 65))
    if best < 0:
        assert weights == "binary"
        assert got is None
        return
    assert got is not None
    w, lam, mu = got
    assert np.array_equal((inputs @ w - lam >= 0).astype(np.int8), target)
    assert mu == pytest.approx(best, abs=1e-6)


def test_train_decompose_writes_weights_that_verify(tmp_path):
    layers = [2, 2, 2]
    data = grid_instance(12, layers, 8)
    spec = make_spec(layers, "ternary", "learned").with_training(method="decompose")
    res = train(spec, data)
    assert res.best is not None and res.start is not None
    assert res.best.loss <= res.start.loss
    assert res.loss_bound is None  # the hidden pattern was fixed: no bound of the training problem
    write_run(res, tmp_path)
    assert verify_weights(load_weights(tmp_path), data)["ok"]
    cert = (tmp_path / "certificate.json").read_text()
    assert "none: the hidden pattern was fixed by the STE heuristic" in cert
