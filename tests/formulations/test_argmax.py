"""The argmax output layer: linear scores, the class with the largest score by a margin epsilon."""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp.io.runs import load_weights, write_run
from bnnmilp.spec import parse_spec
from bnnmilp.training.pipeline import train
from bnnmilp.verification.checkers.claims import verify_weights
from tests.conftest import grid_instance
from tests.oracles import brute_force_argmax

CASES = [([2, 3], "ternary", "learned", 20), ([2, 3], "binary", "zero", 21), ([2, 2, 3], "ternary", "learned", 22),
         ([2, 2, 3], "binary", "learned", 23), ([2, 2], "ternary", "per_neuron", 24),
         ([2, 2, 2], "ternary", "per_neuron", 25)]


def argmax_spec(layers, weights, thresholds, polish="min"):
    """The MILP (method milp: the default, lns, may write STE's own network, which need not meet the margin)."""
    return parse_spec({"network": {"layers": layers, "weights": weights, "thresholds": thresholds,
                                   "output": "argmax"},
                       "training": {"epsilon": 0.0625, "polish": polish, "method": "milp"},
                       "solver": {"time_limit": 60, "threads": 1}})


@pytest.mark.parametrize(("layers", "weights", "thresholds", "seed"), CASES)
def test_argmax_training_matches_brute_force(layers, weights, thresholds, seed, tmp_path):
    data = grid_instance(seed, layers, 7)
    spec = argmax_spec(layers, weights, thresholds)
    optimum = brute_force_argmax(layers, weights, thresholds, data.features.tolist(), data.labels.tolist(),
                                 spec.training.epsilon)
    res = train(spec, data)
    assert res.status == "optimal"
    assert res.best is not None
    assert res.best.loss == optimum
    assert res.best.epsilon_feasible
    # the exact argmax of the written network misclassifies exactly `optimum` samples
    pred = res.best.network.argmax_predictions(data.features)
    assert int(np.sum(pred != data.labels)) == optimum
    write_run(res, tmp_path)
    report = verify_weights(load_weights(tmp_path), data)
    assert report["ok"], report["checks"]
    assert report["errors"] == optimum and report["output"] == "argmax"


@pytest.mark.parametrize("polish", ["min", "neuron"])
def test_argmax_polish_keeps_the_correct_samples(polish):
    layers = [2, 3, 3]
    data = grid_instance(30, layers, 9)
    spec = argmax_spec(layers, "continuous", "per_neuron", polish)
    res = train(spec, data)
    assert res.status == "optimal" and res.best is not None
    assert res.best.source == "polished"  # a strictly positive margin beats the solver's zero margin
    assert res.best.min_slack > 0
    assert res.best.loss == round(res.stages[0].solution.objective)


def test_argmax_needs_error_loss_and_two_outputs():
    from bnnmilp.errors import SpecError

    with pytest.raises(SpecError, match=r"training\.loss"):
        parse_spec({"network": {"layers": [2, 3], "output": "argmax"}, "training": {"loss": "hamming"}})
    with pytest.raises(SpecError, match=r"network\.output"):
        parse_spec({"network": {"layers": [2, 1], "output": "argmax"}})
    assert parse_spec({"network": {"layers": [2, 3], "output": "argmax"}}).training.loss == "error"
