"""The exact forward pass against an independent rational-arithmetic oracle, ties and float traps included."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from bnnmilp.network import Network, error_count, exact_match_predictions, hamming_loss
from tests.oracles import forward_exact


def test_float_rounding_cannot_flip_a_bit():
    # 1e16 + 1 - 1e16 is 0 in floating point but 1 exactly: the bit must follow the exact value
    net = Network([np.array([[1.0, 1.0, 1.0]])], [np.array([0.5])])
    x = np.array([[1e16, 1.0, -1e16]])
    assert float(x[0] @ net.weights[0][0]) < 0.5  # the float pass gets it wrong...
    assert net.forward(x)[0][0, 0] == 1  # ...the exact pass does not
    assert forward_exact([net.weights[0].tolist()], [[0.5]], x[0].tolist())[0] == [1]


def test_ties_are_bit_one():
    # 0.1 + 0.2 against lambda = fl(0.1) + fl(0.2) computed exactly: a tie on the exact values
    lam = float(Fraction(0.1) + Fraction(0.2))  # rounds: not the exact sum
    net = Network([np.array([[1.0, 1.0]])], [np.array([lam])])
    got = net.forward(np.array([[0.1, 0.2]]))[0][0, 0]
    want = 1 if Fraction(0.1) + Fraction(0.2) >= Fraction(lam) else 0
    assert got == want
    # an exact tie on a dyadic grid
    net = Network([np.array([[0.5, -0.25]])], [np.array([0.125])])
    assert net.forward(np.array([[0.5, 0.5]]))[0][0, 0] == 1
    assert net.forward(np.array([[0.5, 0.5 + 2**-50]]))[0][0, 0] == 0


def test_random_networks_match_oracle():
    rng = np.random.default_rng(7)
    for trial in range(30):
        layers = [int(v) for v in rng.integers(1, 5, size=rng.integers(2, 4))]
        ws = [rng.choice([-1.0, -0.5, 0.0, 0.25, 1.0], size=(layers[i + 1], layers[i])) for i in range(len(layers) - 1)]
        if trial % 2:
            ws = [w + rng.uniform(-1e-3, 1e-3, size=w.shape) for w in ws]
        ts = [rng.choice([-0.5, 0.0, 0.25, 0.5], size=d) for d in layers[1:]]
        X = rng.integers(-4, 5, size=(12, layers[0])) / 4
        net = Network(ws, ts)
        bits = net.forward(X)
        for i, x in enumerate(X.tolist()):
            ref = forward_exact([w.tolist() for w in ws], [t.tolist() for t in ts], x)
            assert [b[i].tolist() for b in bits] == ref


def test_min_slack_is_exact():
    net = Network([np.array([[0.5, 0.25]])], [np.array([0.125])])
    X = np.array([[1.0, 0.0], [0.0, 0.0], [0.25, 0.25]])
    # a = 1/2 (bit 1, slack 3/8), a = 0 (bit 0, slack 1/8 - eps), a = 3/16 (bit 1, slack 1/16)
    slack, where = net.min_slack(X, eps=0.0625)
    assert slack == Fraction(1, 16) and where in ((1, 1, 0), (1, 2, 0))
    slack, where = net.min_slack(X, eps=0.125)
    assert slack == 0 and where == (1, 1, 0)


def test_losses_and_predictions():
    bits = np.array([[0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=np.int8)
    targets = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]], dtype=np.int8)
    assert hamming_loss(bits, targets) == 2
    assert error_count(bits, targets) == 2
    assert exact_match_predictions(bits).tolist() == [1, -1, -1, 0]


def test_argmax_ties_count_as_wrong():
    # two outputs with equal scores for the first sample, distinct for the second
    net = Network([np.array([[1.0, 0.0], [0.0, 1.0]])], [np.array([0.0, 0.0])])
    X = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert net.argmax_predictions(X).tolist() == [-1, 1]
