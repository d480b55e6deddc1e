"""Every strengthening keeps the optimum: brute force on tiny instances, and starts stay feasible."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from bnnmilp import formulations
from bnnmilp.data import Dataset
from bnnmilp.network import Network
from bnnmilp.training.pipeline import train
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum


def with_training(spec, **kw):
    return replace(spec, training=replace(spec.training, **kw))


CASES = list(itertools.product([[2, 2, 1], [2, 3, 2]], ["binary", "ternary"], ["learned", "per_neuron"]))


@pytest.mark.parametrize(("layers", "weights", "thresholds"), CASES)
@pytest.mark.slow
def test_symmetry_order_keeps_the_optimum(layers, weights, thresholds):
    if layers == [2, 3, 2] and weights == "ternary":
        layers = [2, 2, 2]  # keep the enumeration small
    data = grid_instance(500 + len(layers) + len(weights), layers, 6)
    spec = with_training(make_spec(layers, weights, thresholds, "error"), symmetry="order")
    opt = brute_force_optimum(layers, weights, thresholds, "error", data.features.tolist(),
                              data.targets(layers[-1]).tolist(), spec.training.epsilon)
    res = train(spec, data)
    assert res.status == "optimal" and res.best.loss == opt
    tm = formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1]))
    assert "sym1" in tm.model.row_blocks


@pytest.mark.parametrize("weights", ["binary", "ternary"])
def test_epsilon_auto_is_exact_for_integer_data(weights):
    rng = np.random.default_rng(7)
    layers = [2, 2, 1]
    for trial in range(3):
        X = rng.integers(-2, 3, size=(6, 2)).astype(float)
        data = Dataset(X, rng.integers(0, 2, size=6))
        spec = make_spec(layers, weights, "per_neuron")
        auto = replace(spec, training=replace(spec.training, epsilon=1.0, epsilon_auto=True))
        # the plain step rule a >= lambda, enumerated with a tiny margin (exact on this integer data)
        opt = brute_force_optimum(layers, weights, "per_neuron", "hamming", X.tolist(), data.targets(1).tolist(),
                                  1 / 1024)
        res = train(auto, data)
        assert res.status == "optimal" and res.best.loss == opt, trial


def test_epsilon_auto_rejects_real_data_or_weights():
    from bnnmilp.errors import SpecError
    from bnnmilp.spec import parse_spec

    spec = parse_spec({"network": {"layers": [2, 1], "weights": "binary"}, "training": {"epsilon": "auto"}})
    assert spec.training.epsilon_auto and spec.to_dict()["training"]["epsilon"] == "auto"
    with pytest.raises(SpecError):
        train(spec, Dataset(np.array([[0.5, 1.0]]), np.array([1])))


@pytest.mark.parametrize("weights", ["binary", "ternary", "continuous"])
def test_fix_unused_inputs_keeps_the_optimum(weights):
    layers = [3, 2, 1]
    data = grid_instance(600, layers, 6)
    X = data.features.copy()
    X[:, 1] = 0.0  # an input that is 0 everywhere
    data = Dataset(X, data.labels)
    on = make_spec(layers, weights, "learned")
    off = with_training(on, fix_unused=False)
    r_on, r_off = train(on, data), train(off, data)
    assert r_on.best.loss == r_off.best.loss
    tm = formulations.get("theorem1").build(on, X, data.targets(1))
    w1 = tm.model.cols("w1")
    assert np.all(tm.model.col_lower[w1[:, 1]] == tm.model.col_upper[w1[:, 1]])
    if weights != "continuous":
        opt = brute_force_optimum(layers, weights, "learned", "hamming", X.tolist(), data.targets(1).tolist(),
                                  0.0625)
        assert r_on.best.loss == opt


def test_starts_are_canonicalised_not_dropped():
    layers = [2, 3, 1]
    data = grid_instance(601, layers, 8)
    spec = with_training(make_spec(layers, "continuous", "per_neuron"), symmetry="order")
    tm = formulations.get("theorem1").build(spec, data.features, data.targets(1))
    rng = np.random.default_rng(1)
    tested = 0
    for _ in range(20):  # random networks in random neuron order still give feasible starts
        net = Network([rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, (1, 3))],
                      [rng.uniform(-0.5, 0.5, 3), rng.uniform(-0.5, 0.5, 1)])
        from bnnmilp.training.polish import snap_thresholds

        net = snap_thresholds(spec, data.features, net.forward(data.features), net)
        if net.min_slack(data.features, spec.training.epsilon)[0] < 0:
            continue
        x = tm.solution_from(net)
        assert x is not None
        assert np.array_equal(tm.canonical(net).predict_bits(data.features), net.predict_bits(data.features))
        tested += 1
    assert tested >= 3
