"""Margin polishing keeps the pattern, hence the loss, and gives every bit a strictly positive slack."""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp import formulations
from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.training.pipeline import evaluate
from bnnmilp.training.polish import polish
from tests.conftest import grid_instance, make_spec

# the last field: whether this instance admits a strictly positive slack for the solver's pattern
# (zero thresholds force a = 0 >= 0 wherever every hidden bit of a sample is 0; with fixed binary weights the
# solver may pick a pattern whose pre-activations are exactly epsilon apart)
CASES = [([2, 2, 1], "continuous", "learned", 12, 1, True), ([2, 3, 2], "continuous", "per_neuron", 10, 2, True),
         ([2, 2, 1], "continuous", "zero", 8, 3, False), ([2, 2, 2], "ternary", "learned", 6, 4, True),
         ([2, 2, 1], "binary", "per_neuron", 7, 5, False)]


@pytest.mark.parametrize(("layers", "weights", "thresholds", "m", "seed", "positive"), CASES)
@pytest.mark.parametrize("objective", ["min", "sum", "neuron"])
def test_polish_keeps_loss_and_makes_slack_positive(layers, weights, thresholds, m, seed, positive, objective):
    data = grid_instance(seed, layers, m)
    spec = make_spec(layers, weights, thresholds)
    tm = formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1]))
    sol = highs.solve(tm.model, SolveOptions())
    assert sol.status == "optimal"
    pattern = tm.pattern_from(sol.x)
    raw = tm.network_from(sol.x)
    pol = polish(spec, data.features, pattern, raw, objective)
    assert pol is not None
    # the exact forward pass reproduces the solver's pattern, bit for bit
    assert [b.tolist() for b in pol.forward(data.features)] == [p.tolist() for p in pattern]
    cand = evaluate(spec, pol, data, "polished")
    assert cand.loss == round(sol.objective)
    assert cand.min_slack >= 0  # meets the epsilon margin: the solver's bound applies to it
    if positive:
        assert cand.min_slack > 0
    if weights != "continuous":  # discrete weights are kept, only thresholds move
        assert all((a == b).all() for a, b in zip(pol.weights, raw.weights, strict=True))


def _solved(layers, weights, thresholds, m, seed):
    data = grid_instance(seed, layers, m)
    spec = make_spec(layers, weights, thresholds)
    tm = formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1]))
    sol = highs.solve(tm.model, SolveOptions())
    assert sol.status == "optimal"
    return spec, data, tm.pattern_from(sol.x), tm.network_from(sol.x)


def _neuron_slacks(spec, X, pattern, net) -> np.ndarray:
    """Each unit's smallest slack over the samples (float; units of all layers concatenated)."""
    out, inp = [], X
    for l, (W, lam) in enumerate(zip(net.weights, net.thresholds, strict=True)):
        a = inp @ W.T - lam
        out.append(np.where(pattern[l] == 1, a, -a - spec.training.epsilon).min(axis=0))
        inp = pattern[l].astype(np.float64)
    return np.concatenate(out)


@pytest.mark.parametrize(("layers", "weights", "thresholds", "m", "seed", "positive"),
                         [c for c in CASES if c[1] == "continuous" and c[5]])
def test_neuron_polish_maximises_the_sum_of_unit_margins(layers, weights, thresholds, m, seed, positive):
    spec, data, pattern, raw = _solved(layers, weights, thresholds, m, seed)
    X = data.features
    smallest = polish(spec, X, pattern, raw, "min")
    per_unit = polish(spec, X, pattern, raw, "neuron")
    s_min, s_unit = _neuron_slacks(spec, X, pattern, smallest), _neuron_slacks(spec, X, pattern, per_unit)
    t_star = s_min.min()
    assert t_star > 0
    # the max-min network is feasible for the per-unit LP (every slack >= t* >= t*/2), so the optimum is at least
    # as large; and the floor t*/2 holds for every unit
    assert s_unit.sum() >= s_min.sum() - 1e-7
    assert s_unit.min() >= t_star / 2 - 1e-7
    assert s_unit.sum() > s_min.sum() + 1e-3 or len(s_unit) == 1  # not a no-op on these instances


@pytest.mark.parametrize(("layers", "weights", "thresholds", "m", "seed", "positive"),
                         [c for c in CASES if c[1] == "continuous" and c[5]])
@pytest.mark.parametrize("objective", ["min", "neuron"])
def test_polish_radius_keeps_weights_near_the_solution(layers, weights, thresholds, m, seed, positive, objective):
    spec, data, pattern, raw = _solved(layers, weights, thresholds, m, seed)
    pol = polish(spec, data.features, pattern, raw, objective, radius=0.05)
    assert [b.tolist() for b in pol.forward(data.features)] == [p.tolist() for p in pattern]
    assert max(float(np.abs(w - w0).max()) for w, w0 in zip(pol.weights, raw.weights, strict=True)) <= 0.05 + 1e-12
    assert evaluate(spec, pol, data, "polished").min_slack > 0


def test_snap_thresholds_repairs_a_threshold_off_by_rounding():
    from bnnmilp.network import Network
    from bnnmilp.training.polish import snap_thresholds

    spec = make_spec([2, 1], "ternary", "learned", eps=0.0625)
    X = np.array([[0.5, 0.25], [0.25, 0.25], [0.0, 0.125]])
    # a = 0.75, 0.5, 0.125; wanted pattern 1, 1, 0 needs 0.1875 <= lambda <= 0.5
    pattern = [np.array([[1], [1], [0]], dtype=np.int8)]
    net = Network([np.array([[1.0, 1.0]])], [np.array([0.5 + 1e-12])])  # as an LP might return it
    assert net.forward(X)[0].tolist() != pattern[0].tolist()
    snapped = snap_thresholds(spec, X, pattern, net)
    assert snapped.forward(X)[0].tolist() == pattern[0].tolist()
    assert snapped.thresholds[0][0] == (0.1875 + 0.5) / 2
