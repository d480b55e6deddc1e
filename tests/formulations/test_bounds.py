"""Big-M bounds: interval propagation over weight boxes, and LP-based propagation (opt-in)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bnnmilp import formulations
from bnnmilp.formulations.bounds import lp_bounds, preactivation_bounds
from bnnmilp.network import Network
from bnnmilp.training.pipeline import train
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum

CASES = [([2, 2, 1], "continuous", "learned"), ([2, 2, 2], "ternary", "per_neuron"), ([3, 2, 2], "binary", "zero")]


@pytest.mark.parametrize(("layers", "weights", "thresholds"), CASES)
def test_lp_bounds_equal_interval_bounds_over_the_full_box(layers, weights, thresholds):
    """Over W in [-1, 1] the interval bounds are attained (W = sign(x), earlier bits 1, lambda = -1): the LP
    relaxation, which contains the MILP's points and respects the same variable bounds, cannot do better."""
    data = grid_instance(40, layers, 5)
    spec = make_spec(layers, weights, thresholds)
    tm = formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1]))
    interval = preactivation_bounds(spec.network, data.features, "tight")
    for (lo, hi), (llo, lhi) in zip(interval, lp_bounds(tm, interval), strict=True):
        assert np.allclose(lo, llo, atol=1e-5) and np.allclose(hi, lhi, atol=1e-5)
    # and the attaining network, for layer 1, sample 0, neuron 0: W = sign(x), lambda = -1
    x = data.features[0]
    if thresholds != "zero" and weights != "binary":
        assert float(np.sign(x) @ x + 1.0) == pytest.approx(interval[0][1][0, 0])


@pytest.mark.parametrize(("layers", "weights", "thresholds"), [c for c in CASES if c[1] != "continuous"])
def test_big_m_lp_keeps_the_optimum(layers, weights, thresholds):
    data = grid_instance(41, layers, 6)
    spec = make_spec(layers, weights, thresholds, "error")
    spec = replace(spec, training=replace(spec.training, big_m="lp"))
    opt = brute_force_optimum(layers, weights, thresholds, "error", data.features.tolist(),
                              data.targets(layers[-1]).tolist(), spec.training.epsilon)
    res = train(spec, data)
    assert res.status == "optimal" and res.best.loss == opt


def test_interval_bounds_over_a_box_contain_every_network_in_it():
    """Sample networks inside a trust-region box: every pre-activation minus threshold lies in the bounds,
    which are tighter than those of the full box."""
    layers = [3, 4, 2]
    spec = make_spec(layers, "continuous", "per_neuron")
    data = grid_instance(42, layers, 9)
    rng = np.random.default_rng(0)
    centre = [rng.uniform(-1, 1, (layers[i + 1], layers[i])) for i in range(2)]
    box = [(c - 0.1, c + 0.1) for c in centre]
    bounds = preactivation_bounds(spec.network, data.features, "tight", box)
    full = preactivation_bounds(spec.network, data.features, "tight")
    assert all((hi - lo < fhi - flo).all() for (lo, hi), (flo, fhi) in zip(bounds, full, strict=True))
    for _ in range(200):
        ws = [np.clip(c + rng.uniform(-0.1, 0.1, c.shape), -1, 1) for c in centre]
        ts = [rng.uniform(-1, 1, layers[i + 1]) for i in range(2)]
        net = Network(ws, ts)
        bits = net.forward(data.features)
        inp = data.features
        for l, (lo, hi) in enumerate(bounds):
            g = inp @ ws[l].T - ts[l]
            assert (g >= lo - 1e-12).all() and (g <= hi + 1e-12).all()
            inp = bits[l].astype(np.float64)


def test_build_with_a_box_restricts_the_weights():
    layers = [2, 2, 1]
    spec = make_spec(layers, "continuous", "learned")
    data = grid_instance(43, layers, 6)
    build = formulations.get("theorem1").build
    zero = [np.zeros((2, 2)), np.zeros((1, 2))]
    tm = build(spec, data.features, data.targets(1), [(c - 0.25, c + 0.25) for c in zero])
    w = np.concatenate([tm.model.cols(k).ravel() for k in ("w1", "w2")])
    assert set(tm.model.col_lower[w]) == {-0.25} and set(tm.model.col_upper[w]) == {0.25}
    # a box as large as the domain gives the model without a box, bit for bit
    same = build(spec, data.features, data.targets(1), [(c - 1, c + 1) for c in zero])
    assert same.model.fingerprint() == build(spec, data.features, data.targets(1)).model.fingerprint()
