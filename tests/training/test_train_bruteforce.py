"""Optimality of `train` against exhaustive enumeration on tiny instances (tests/oracles.py)."""

from __future__ import annotations

import itertools

import pytest

from bnnmilp.io.runs import load_weights, write_run
from bnnmilp.training.pipeline import train
from bnnmilp.verification.checkers.claims import verify_weights
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum, forward_exact

CASES = [
    (layers, w, t, loss, seed)
    for (layers, w, t, loss), seed in zip(
        itertools.product([[2, 2, 1], [2, 2, 2]], ["binary", "ternary"], ["learned", "per_neuron", "zero"],
                          ["hamming", "error"]),
        itertools.count(100),
    )
]


@pytest.mark.parametrize(("layers", "weights", "thresholds", "loss", "seed"), CASES)
def test_train_matches_brute_force(layers, weights, thresholds, loss, seed, tmp_path):
    m = 4 + seed % 5  # 4..8 samples
    data = grid_instance(seed, layers, m)
    spec = make_spec(layers, weights, thresholds, loss)
    Y = data.targets(layers[-1]).tolist()
    optimum = brute_force_optimum(layers, weights, thresholds, loss, data.features.tolist(), Y, spec.training.epsilon)
    res = train(spec, data)
    if optimum is None:
        assert res.status == "infeasible"
        assert res.best is None
        return
    assert res.status == "optimal"
    assert res.best is not None
    assert res.best.loss == optimum
    assert res.best.epsilon_feasible
    # the written weights achieve it: independent exact forward pass, and `verify`
    net = res.best.network
    w = [W.tolist() for W in net.weights]
    t = [th.tolist() for th in net.thresholds]
    outs = [forward_exact(w, t, x)[-1] for x in data.features.tolist()]
    from tests.oracles import loss_of

    assert loss_of(tuple(map(tuple, outs)), Y, loss) == optimum
    write_run(res, tmp_path)
    report = verify_weights(load_weights(tmp_path), data)
    assert report["ok"], report["checks"]
    assert report["exact_loss"] == optimum


def test_brute_force_oracle_closed_form():
    """The oracle itself on a case solvable by hand: one input, one output, x = +-1/2, labels = sign."""
    X = [[0.5], [-0.5]]
    # w = 1, lambda = 0 separates them; so does w = -1 with the labels flipped
    assert brute_force_optimum([1, 1], "binary", "zero", "hamming", X, [[1], [0]], 0.0625) == 0
    assert brute_force_optimum([1, 1], "binary", "zero", "hamming", X, [[0], [1]], 0.0625) == 0
    # same label for both: w*0.5 and -w*0.5 always have different signs with lambda = 0 -> one error
    assert brute_force_optimum([1, 1], "binary", "zero", "hamming", X, [[1], [1]], 0.0625) == 1
    # with a learned threshold lambda = -1 both bits are 1
    assert brute_force_optimum([1, 1], "binary", "learned", "hamming", X, [[1], [1]], 0.0625) == 0
    # a point inside the margin makes zero thresholds infeasible: x = 1/32, eps = 1/16
    assert brute_force_optimum([1, 1], "binary", "zero", "hamming", [[1 / 32], [-1 / 32]], [[1], [0]], 0.0625) is None
