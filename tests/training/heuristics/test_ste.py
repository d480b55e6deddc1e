"""The STE grid: zero loss where a zero-loss network of the class exists, the domain kept, the scale exact."""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp.network import training_loss
from bnnmilp.spec import parse_spec
from bnnmilp.training.heuristics.ste import SteOptions, _quantise, input_scale, ste_train


def spec_of(layers, weights="continuous", thresholds="learned", output="bits"):
    return parse_spec({"network": {"layers": layers, "weights": weights, "thresholds": thresholds,
                                   "output": output}})


def teacher_data(seed: int, layers: list[int], m: int, output: str = "bits"):
    """Separable toy data: integer inputs 0..16 in blocks, one block per class; class c has its block's
    features high (12..16) and the others low (0..4), so a network of the class with loss 0 exists."""
    rng = np.random.default_rng(seed)
    d0, k = layers[0], layers[-1]
    y = np.arange(m) % k
    block = np.arange(d0) * k // d0
    high = block[None, :] == y[:, None]
    X = np.where(high, rng.integers(12, 17, size=(m, d0)), rng.integers(0, 5, size=(m, d0))).astype(np.float64)
    return X, y


@pytest.mark.parametrize("output", ["bits", "argmax"])
def test_separable_toy_data_reaches_loss_zero(output):
    layers = [6, 8, 3]
    X, y = teacher_data(3, layers, 40, output)
    assert len(np.unique(y)) == 3 and len(y) == 40
    spec = spec_of(layers, output=output)
    Y = np.eye(3, dtype=np.int8)[y]
    nets = ste_train(spec, X, Y, SteOptions(noise=0.0))
    losses = [training_loss(n, X, y, Y, "hamming" if output == "bits" else "error", output) for n in nets]
    assert losses[0] == 0 and losses == sorted(losses) and len(nets) == 12


def same(a, b) -> bool:
    return all(np.array_equal(u, v) for x, y in zip(a, b, strict=True)
               for u, v in zip(x.weights + x.thresholds, y.weights + y.thresholds, strict=True))


@pytest.mark.parametrize("output", ["bits", "argmax"])
def test_the_noisy_grid_only_replaces_a_fit_by_another_fit(output):
    """Where the plain grid fits, the noisy grid's exact fits come first and the plain grid follows unchanged;
    where it does not fit, the noisy grid does not run."""
    layers = [6, 8, 3]
    X, y = teacher_data(3, layers, 40, output)
    Y = np.eye(3, dtype=np.int8)[y]
    spec = spec_of(layers, output=output)
    loss = "hamming" if output == "bits" else "error"
    plain = ste_train(spec, X, Y, SteOptions(noise=0.0))
    nets = ste_train(spec, X, Y)
    noisy = len(nets) - 12
    assert noisy >= 1 and same(nets[noisy:], plain)
    assert [training_loss(n, X, y, Y, loss, output) for n in nets[:noisy]] == [0] * noisy
    assert not same(nets[:1], plain[:1])
    rng = np.random.default_rng(7)  # random labels that 2 hidden units cannot fit: no noisy grid
    y = rng.integers(0, 3, size=40)
    Y = np.eye(3, dtype=np.int8)[y]
    small = spec_of([6, 2, 3], output=output)
    plain = ste_train(small, X, Y, SteOptions(noise=0.0, epochs=100))
    assert training_loss(plain[0], X, y, Y, loss, output) > 0
    assert same(ste_train(small, X, Y, SteOptions(epochs=100)), plain)


@pytest.mark.parametrize(("weights", "thresholds"), [("continuous", "learned"), ("continuous", "per_neuron"),
                                                     ("binary", "learned"), ("ternary", "zero"),
                                                     ("ternary", "per_neuron"), ("binary", "per_neuron")])
def test_the_networks_stay_in_the_domain(weights, thresholds):
    X, y = teacher_data(4, [5, 4, 2], 30)
    spec = spec_of([5, 4, 2], weights, thresholds)
    nets = ste_train(spec, X, np.eye(2, dtype=np.int8)[y], SteOptions(epochs=60))
    allowed = {"binary": {-1.0, 1.0}, "ternary": {-1.0, 0.0, 1.0}}
    for n in nets:
        for W, lam in zip(n.weights, n.thresholds, strict=True):
            assert np.abs(W).max() <= 1 and np.abs(lam).max() <= 1
            if weights in allowed:
                assert set(np.unique(W)) <= allowed[weights]
            if thresholds == "learned":
                assert len(np.unique(lam)) == 1
            if thresholds == "zero":
                assert not lam.any()


def test_the_input_scale_is_a_power_of_two_folded_into_the_first_layer():
    X, y = teacher_data(5, [4, 3, 2], 20)
    assert input_scale(X) == 1 / 16 and input_scale(X * 3) == 1 / 64 and input_scale(np.zeros((2, 2))) == 1.0
    nets = ste_train(spec_of([4, 3, 2]), X, np.eye(2, dtype=np.int8)[y], SteOptions(epochs=40))
    assert all(np.abs(n.weights[0]).max() <= 1 / 16 for n in nets)  # trained on x / 16, weights in [-1, 1]


def test_ternary_weights_use_the_ternary_weight_networks_threshold():
    """0.7 times the mean |latent weight| of each run's layer: runs on the first axis get their own."""
    w = np.array([[[0.1, -0.2, 0.3, -0.4]], [[1.0, 0.0, 0.0, -0.05]]])  # means 0.25 and 0.2625
    # thresholds 0.175 (run 0) and 0.18375 (run 1)
    assert _quantise(w, "ternary").tolist() == [[[0.0, -1.0, 1.0, -1.0]], [[1.0, 0.0, 0.0, 0.0]]]
    assert _quantise(w, "binary").tolist() == [[[1.0, -1.0, 1.0, -1.0]], [[1.0, 1.0, 1.0, -1.0]]]


@pytest.mark.parametrize("weights", ["binary", "ternary"])
def test_discrete_grids_are_deterministic_per_seed(weights):
    X, y = teacher_data(6, [6, 4, 3], 30, "argmax")
    spec = spec_of([6, 4, 3], weights, "per_neuron", "argmax")
    Y = np.eye(3, dtype=np.int8)[y]
    runs = [ste_train(spec, X, Y, SteOptions(epochs=50, seed=s)) for s in (3, 3, 4)]
    same = [all(np.array_equal(a, b) for p, q in zip(runs[0], r, strict=True)
                for a, b in zip(p.weights + p.thresholds, q.weights + q.thresholds, strict=True)) for r in runs[1:]]
    assert same == [True, False]


def test_a_grid_reports_its_progress(monkeypatch):
    """A line every REPORT_EVERY seconds (0 here: every epoch after the first) with the epoch and the lowest
    training loss so far; the networks are the same as without reporting."""
    from bnnmilp.training.heuristics import ste

    monkeypatch.setattr(ste, "REPORT_EVERY", 0.0)
    X, y = teacher_data(4, [5, 4, 2], 30)
    spec, Y = spec_of([5, 4, 2]), np.eye(2, dtype=np.int8)[y]
    lines: list[str] = []
    quiet = ste_train(spec, X, Y, SteOptions(epochs=20, noise=0.0))
    told = ste_train(spec, X, Y, SteOptions(epochs=20, noise=0.0, report=lines.append))
    assert len(lines) == 20 and lines[0].startswith("STE: epoch 1/20 of 12 runs, lowest training loss so far ")
    losses = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert losses == sorted(losses, reverse=True) and losses[0] <= 30 * 2  # never above 2 wrong bits per sample
    assert all(np.array_equal(a, b) for p, q in zip(quiet, told, strict=True)
               for a, b in zip(p.weights + p.thresholds, q.weights + q.thresholds, strict=True))
