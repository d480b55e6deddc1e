"""The exact forward pass against an independent rational-arithmetic oracle, ties and float traps included."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from bnnmilp.errors import WeightsError
from bnnmilp.network import (
    Network,
    error_count,
    exact_match_predictions,
    exact_preactivation,
    hamming_loss,
    loss_value,
    predictions,
    training_loss,
    training_slack,
)
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


def test_single_output_predictions_and_both_losses():
    bits = np.array([[1], [0], [1]], dtype=np.int8)
    pred = exact_match_predictions(bits)
    assert pred.tolist() == [1, 0, 1] and pred.dtype == np.int64
    multi = exact_match_predictions(np.array([[0, 0, 1], [0, 1, 1]], dtype=np.int8))
    assert multi.tolist() == [2, -1] and multi.dtype == np.int64
    targets = np.array([[1], [1], [0]], dtype=np.int8)
    assert loss_value("hamming", bits, targets) == 2 and loss_value("error", bits, targets) == 2
    two = np.array([[1, 1], [0, 0]], dtype=np.int8)
    assert loss_value("hamming", two, np.array([[0, 0], [0, 0]], dtype=np.int8)) == 2
    assert loss_value("error", two, np.array([[0, 0], [0, 0]], dtype=np.int8)) == 1


def test_training_loss_follows_the_output_rule():
    net = Network([np.array([[1.0, 0.0], [0.0, 1.0]])], [np.array([0.5, 0.5])])
    X = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # bits [1, 1], [1, 0], [0, 0]
    labels = np.array([0, 1, 1])
    Y = np.array([[1, 0], [0, 1], [0, 1]], dtype=np.int8)
    assert training_loss(net, X, labels, Y, "hamming", "bits") == 1 + 2 + 1
    assert training_loss(net, X, labels, Y, "error", "bits") == 3
    # argmax of scores a - lambda: [0.5, 0.5] (a tie: wrong), [0.5, -0.5] -> 0 (wrong), [-0.5, -0.5] (a tie)
    assert training_loss(net, X, labels, Y, "error", "argmax") == 3
    assert training_loss(net, X, np.array([0, 0, 0]), Y, "error", "argmax") == 2


@pytest.mark.parametrize(("layers", "key", "expected"), [
    ([], "layers", "expected a non-empty list of layers"),
    ({"weights": [[1.0]]}, "layers", "expected a non-empty list of layers"),
    ([{"weights": [[1.0]]}], "layers[0]", "expected a mapping with exactly the keys weights and thresholds"),
    ([[1.0]], "layers[0]", "expected a mapping with exactly the keys weights and thresholds"),
    ([{"weights": [[1.0]], "thresholds": [0.0], "bias": [1]}], "layers[0]",
     "expected a mapping with exactly the keys weights and thresholds"),
    ([{"weights": [["a"]], "thresholds": [0.0]}], "layers[0]", "expected numbers in weights and thresholds"),
    ([{"weights": [[1.0]], "thresholds": ["x"]}], "layers[0]", "expected numbers in weights and thresholds"),
    ([{"weights": [[True]], "thresholds": [0.0]}], "layers[0]", "expected numbers in weights and thresholds"),
    ([{"weights": [["1"]], "thresholds": [0.0]}], "layers[0]", "expected numbers in weights and thresholds"),
    ([{"weights": [1.0, 2.0], "thresholds": [0.0]}], "layers[0].weights",
     "expected a non-empty matrix (d_l rows of d_(l-1) numbers)"),
    ([{"weights": [[1.0]], "thresholds": [0.0]}, {"weights": [[1.0, 1.0]], "thresholds": [0.0]}],
     "layers[1].weights", "expected rows of 1 numbers, got 2"),
    ([{"weights": [[1.0], [2.0]], "thresholds": [0.0]}], "layers[0].thresholds", "expected 2 numbers, got shape (1,)"),
    ([{"weights": [[float("nan")]], "thresholds": [0.0]}], "layers[0]", "expected finite numbers"),
    ([{"weights": [[1.0]], "thresholds": [float("inf")]}], "layers[0]", "expected finite numbers"),
])
def test_bad_layer_documents_name_the_key(layers, key, expected):
    with pytest.raises(WeightsError) as info:
        Network.from_layers_doc(layers, "w.yaml")
    assert str(info.value) == f"w.yaml: {key}: {expected}"


def test_layer_documents_round_trip_as_doubles():
    doc = [{"weights": [[1, 0], [-1, 1]], "thresholds": [1, 0]}, {"weights": [[0.5, -0.25]], "thresholds": [0.125]}]
    net = Network.from_layers_doc(doc, "w.yaml", [2, 2, 1])
    assert all(w.dtype == np.float64 for w in net.weights) and all(t.dtype == np.float64 for t in net.thresholds)
    assert net.to_layers_doc() == [{"weights": [[1.0, 0.0], [-1.0, 1.0]], "thresholds": [1.0, 0.0]},
                                   {"weights": [[0.5, -0.25]], "thresholds": [0.125]}]
    with pytest.raises(WeightsError) as info:
        Network.from_layers_doc(doc, "w.yaml", [2, 3, 1])
    assert str(info.value) == "w.yaml: layers: expected layer widths [2, 3, 1], got [2, 2, 1]"
    with pytest.raises(ValueError):  # a network with a missing threshold vector is not written
        Network(net.weights, net.thresholds[:1]).to_layers_doc()


def _trap_network(rng, layers):
    """Dyadic weights (exact ties are common) and thresholds placed on or next to an attained value."""
    ws = [rng.choice([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 0.1, 0.2], size=(layers[i + 1], layers[i]))
          for i in range(len(layers) - 1)]
    ts = [rng.choice([-0.5, 0.0, 0.25, 0.3, 0.5, 1.0], size=d) for d in layers[1:]]
    return ws, ts


def test_exact_quantities_match_the_rational_oracle():
    """min_slack, argmax predictions and argmax_slack against all slacks and scores enumerated in rationals."""
    from tests.oracles import scores_exact, slacks_exact

    rng = np.random.default_rng(11)
    for trial in range(40):
        layers = [int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 4))][: 2 + trial % 2]
        layers[-1] = max(layers[-1], 2)
        ws, ts = _trap_network(rng, layers)
        X = rng.choice([0.0, 0.1, 0.2, 0.3, 0.5, 1.0, -0.5], size=(5, layers[0]))
        net = Network(ws, ts)
        W, T, XL = [w.tolist() for w in ws], [t.tolist() for t in ts], X.tolist()
        eps = [0.0625, 0.1][trial % 2]
        all_slacks = slacks_exact(W, T, XL, eps)
        got, where = net.min_slack(X, eps)
        assert (got, where) == min(all_slacks, key=lambda p: (p[0], p[1][0], p[1][1], p[1][2]))  # the first one
        if len(ws) > 1:
            hidden = slacks_exact(W, T, XL, eps, depth=len(ws) - 1)
            assert net.min_slack(X, eps, len(ws) - 1)[0] == min(s for s, _ in hidden)
        scores = [scores_exact(W, T, x) for x in XL]
        pred = [max(range(len(s)), key=lambda k, s=s: s[k]) if sorted(s)[-1] != sorted(s)[-2] else -1 for s in scores]
        assert net.argmax_predictions(X).tolist() == pred
        labels = rng.integers(0, layers[-1], size=5)
        margins = net.score_margins(X, labels)
        for i, s in enumerate(scores):
            rival = max(v for k, v in enumerate(s) if k != labels[i])
            assert abs(margins[i] - float(s[labels[i]] - rival)) <= 1e-12
        gaps = [(s[labels[i]] - v - Fraction(eps), (len(ws), i, k)) for i, s in enumerate(scores)
                if pred[i] == labels[i] for k, v in enumerate(s) if k != labels[i]]
        got = net.argmax_slack(X, labels, eps)
        if not gaps:
            assert got is None
        else:
            assert got == min(gaps, key=lambda p: (p[0], p[1][1], p[1][2]))  # the first (sample, rival) attaining it
        # the training problem's slack: every step row's for bit outputs; hidden rows and score margins for argmax
        assert training_slack(net, X, labels, eps, "bits") == net.min_slack(X, eps)
        parts = ([net.min_slack(X, eps, len(ws) - 1)] if len(ws) > 1 else []) + ([got] if got else [])
        want = min(parts, key=lambda p: p[0]) if parts else (Fraction(0), (len(ws), -1, -1))
        assert training_slack(net, X, labels, eps, "argmax") == want


def test_score_margins_by_hand():
    net = Network([np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])], [np.array([0.0, 0.25, 0.0])])
    X = np.array([[1.0, 0.0], [0.0, 1.0]])  # scores [1, -0.25, 0.5] and [0, 0.75, 0.5]
    assert net.score_margins(X, np.array([0, 2])).tolist() == [0.5, -0.25]
    assert net.score_margins(X, np.array([0, 2]), rival=1).tolist() == [1.25, -0.25]  # s_y - s_1
    assert net.score_margins(X, np.array([0, 2]), rival=2).tolist() == [0.5, 0.0]  # s_2 - s_2 on the second
    assert net.argmax_predictions(X).tolist() == [0, 1]
    assert net.argmax_slack(X, np.array([0, 1]), 0.125) == (Fraction(1, 8), (1, 1, 2))
    assert net.argmax_slack(X, np.array([2, 2]), 0.125) is None


# Float traps: 1e16 + x - 1e16 rounds x to a multiple of 2, so the float pass misjudges these rows by up to 1.
BIG = 1e16


def test_min_slack_survives_float_traps():
    """The exact minimum is found whether the misjudged row is the true minimum or only looks like it."""
    from tests.oracles import slacks_exact

    net = Network([np.array([[1.0, 1.0, 1.0]])], [np.array([1.0])])
    for X in ([[BIG, 1.25, -BIG], [0.0, 1.5, 0.0]],  # float slack 1, exact 1/4: the true minimum
              [[BIG, 1.75, -BIG], [0.0, 1.5, 0.0]],  # float slack 1, exact 3/4: looks smallest (its error is large)
              [[0.0, 1.5, 0.0], [BIG, 0.75, -BIG]]):  # bit 0 in floats, bit 1 exactly (a tie-breaking trap)
        want = min(slacks_exact([[[1.0, 1.0, 1.0]]], [[1.0]], X, 0.0625),
                   key=lambda p: (p[0], p[1][0], p[1][1], p[1][2]))
        assert net.min_slack(np.array(X), 0.0625) == want


def test_argmax_survives_float_traps():
    """Class 0's score is 0 in floats and 3/4 exactly; class 1's is 1/2: the exact winner is class 0."""
    from tests.oracles import scores_exact

    W, lam = [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], [0.0, 0.25]
    net = Network([np.array(W)], [np.array(lam)])
    X = np.array([[BIG, 0.75, -BIG], [BIG, 1.25, -BIG], [0.0, 1.5, -1.0], [0.25, 1.0, -0.5]])
    scores = [scores_exact([W], [lam], x) for x in X.tolist()]
    assert scores[0] == [Fraction(3, 4), Fraction(1, 2)] and scores[1] == [Fraction(5, 4), Fraction(1)]
    assert scores[2] == [Fraction(1, 2), Fraction(5, 4)] and scores[3] == [Fraction(3, 4), Fraction(3, 4)]
    assert net.argmax_predictions(X).tolist() == [0, 0, 1, -1]  # the last is a tie: wrong
    for chosen in ([0, 0, 1, 0], [1, 0, 1, 1], [0, 1, 1, 1]):
        labels = np.array(chosen)
        got = net.argmax_slack(X, labels, 0.0625)
        gaps = [(s[labels[i]] - v - Fraction(0.0625), (1, i, k)) for i, s in enumerate(scores)
                if net.argmax_predictions(X)[i] == labels[i] for k, v in enumerate(s) if k != labels[i]]
        assert got == min(gaps, key=lambda p: (p[0], p[1][1], p[1][2]))


def test_exact_preactivation_matches_enumeration():
    rng = np.random.default_rng(5)
    for trial in range(30):
        W = rng.choice([-1.0, -0.5, 0.0, 0.25, 1.0, 0.1], size=(3, 3))
        inp = rng.choice([0.0, 1.0, 0.2, 0.3], size=(4, 3))
        if trial % 3 == 0:
            inp[0] = [BIG, 0.75, -BIG]
        mask = rng.random((4, 3)) < 0.6
        exact = {(i, k): sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(inp[i], W[k])), Fraction(0))
                 for i in range(4) for k in range(3) if mask[i, k]}
        if not exact:
            assert exact_preactivation(W, inp, mask, "max") is None
            continue
        assert exact_preactivation(W, inp, mask, "max") == max(exact.values())
        assert exact_preactivation(W, inp, mask, "min") == min(exact.values())
    assert exact_preactivation(W, inp, np.zeros((4, 3), dtype=bool), "min") is None
    # the largest value sits behind a large rounding error (float 2, exact 7/4); a clean 3/2 looks safer
    W, inp = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]), np.array([[BIG, 1.75, -BIG], [0.0, 1.5, 0.0]])
    mask = np.array([[True, False], [False, True]])
    assert exact_preactivation(W, inp, mask, "max") == Fraction(7, 4)
    assert exact_preactivation(W, inp, mask, "min") == Fraction(3, 2)
    inp = np.array([[BIG, 1.25, -BIG], [0.0, 1.5, 0.0]])  # float 2, exact 5/4: the smallest
    assert exact_preactivation(W, inp, mask, "min") == Fraction(5, 4)


def test_predictions_follow_the_output_rule():
    net = Network([np.array([[1.0, -1.0], [0.5, 0.5]]), np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])],
                  [np.array([0.0, 0.5]), np.array([1.0, 1.0, 0.5])])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # hidden [1, 1], [0, 1], [1, 1]
    bits = net.forward(X)
    assert bits[0].tolist() == [[1, 1], [0, 1], [1, 1]] and bits[1].tolist() == [[1, 1, 1], [0, 1, 1], [1, 1, 1]]
    assert predictions(net, X, "bits").tolist() == [-1, -1, -1]
    assert predictions(net, X, "argmax").tolist() == [1, 2, 1]  # scores [0, 1, 1/2], [-1, 0, 1/2], as the first
    assert predictions(net, X, "argmax", bits).tolist() == [1, 2, 1]
    assert predictions(net, X, "bits", bits).tolist() == [-1, -1, -1]
    one = Network([np.array([[1.0, -1.0], [0.5, 0.5]]), np.array([[-1.0, 1.0]])], [np.array([0.0, 0.5]),
                                                                                  np.array([0.5])])
    out = one.argmax_predictions(X)  # one output: its bit is the class, as for exact match
    assert out.tolist() == one.forward(X)[-1][:, 0].tolist() == [0, 1, 0] and out.dtype == np.int64


def test_layer_documents_of_other_widths_and_mixed_types():
    doc = [{"weights": [[1, 0], [0, 1], [1, 1]], "thresholds": [1, 1, 2]}, {"weights": [[1, 1, -1]],
                                                                             "thresholds": [1]}]
    assert Network.from_layers_doc(doc, "w.yaml", [2, 3, 1]).layers == [2, 3, 1]
    with pytest.raises(WeightsError) as info:
        Network.from_layers_doc([{"weights": [[True, 0.5]], "thresholds": [0.0]}], "w.yaml")
    assert str(info.value) == "w.yaml: layers[0]: expected numbers in weights and thresholds"


def test_argmax_training_slack_takes_the_smaller_part():
    # hidden: one unit x0 >= 0.5 (slack 1/2 on x0 = 1, 0.5 - 1/16 on x0 = 0); scores [h, 1 - h] - [0, 0.25]
    net = Network([np.array([[1.0, 0.0]]), np.array([[1.0], [-1.0]])], [np.array([0.5]), np.array([0.0, -0.75])])
    X = np.array([[1.0, 0.0], [0.0, 0.0]])
    eps = 0.0625
    # sample 0: h = 1, scores [1, -0.25]: label 0 wins by 5/4; sample 1: h = 0, scores [0, 0.75]: label 1 by 3/4
    assert training_slack(net, X, np.array([0, 1]), eps, "argmax") == (Fraction(7, 16), (1, 1, 0))
    wide = Network([np.array([[1.0, 0.0]]), np.array([[0.125], [-0.125]])], [np.array([0.5]), np.array([0.0, 0.0])])
    # scores [1/8, -1/8] and [0, 0] (a tie: not correct): the score margin 1/4 - eps is the smaller part
    assert training_slack(wide, X, np.array([0, 1]), eps, "argmax") == (Fraction(3, 16), (2, 0, 1))
    lone = Network([np.array([[1.0, 0.0], [1.0, 0.0]])], [np.array([0.0, 0.0])])  # every sample a tie
    assert training_slack(lone, X, np.array([0, 1]), eps, "argmax") == (Fraction(0), (1, -1, -1))


def test_three_layer_predictions_use_the_last_layer():
    net = Network([np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([[-1.0, 1.0]])],
                  [np.array([0.5, 0.5]), np.array([1.0, 1.0]), np.array([0.5])])
    X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    bits = net.forward(X)  # hidden [1, 0], [1, 1], [0, 0]; then [1, 1], [1, 0], [0, 0]; output [0], [0], [0]
    assert all(b.dtype == np.int8 for b in bits)
    assert [b.tolist() for b in bits] == [[[1, 0], [1, 1], [0, 0]], [[1, 1], [1, 0], [0, 0]], [[0], [0], [0]]]
    assert predictions(net, X, "bits").tolist() == [0, 0, 0]
    assert net.argmax_predictions(X).tolist() == [0, 0, 0]


def test_the_integer_fast_path_is_taken_only_where_doubles_are_exact():
    """Adversarial cases for Network._integral (the fast path that decides bits in floating point with no error
    bound): non-integer inputs, and integer sums beyond 2^53, must take the exact path."""
    from fractions import Fraction

    x = np.array([[0.1, 0.2, -(0.1 + 0.2)]])  # exactly: 0.1 + 0.2 - fl(0.1 + 0.2) < 0; in floats: 0
    net = Network([np.ones((1, 3))], [np.zeros(1)])
    exact = sum(Fraction(float(v)) for v in x[0])
    assert exact < 0 and float(x[0].sum()) == 0.0
    assert not net._integral(0, x) and net.predict_bits(x).tolist() == [[0]]
    big = np.array([[2.0**53, 1.0, 1.0]])  # exactly 2^53 + 2 >= lambda; in floats 2^53 + 1 + 1 = 2^53 < lambda
    net = Network([np.ones((1, 3))], [np.array([2.0**53 + 2])])
    assert float(big[0, 0] + big[0, 1] + big[0, 2]) < 2.0**53 + 2
    assert not net._integral(0, big) and net.predict_bits(big).tolist() == [[1]]
    small = np.array([[3.0, 4.0, -2.0]])  # integers, small sums: the fast path, and the same bits
    net = Network([np.array([[1.0, -1.0, 2.0]])], [np.array([-5.0])])
    assert net._integral(0, small) and net.predict_bits(small).tolist() == [[1]]  # 3 - 4 - 4 = -5 >= -5
    halves = Network([np.array([[0.5, 1.0, 1.0]])], [np.zeros(1)])
    assert not halves._integral(0, small)  # non-integer weights never take it
    W = np.array([[1.0, 1.0], [2.0, -3.0]])
    net = Network([W, np.ones((1, 2))], [np.array([1.0, 0.0]), np.array([2.0])])
    assert net._integral(0, small[:, :2]) and net._integral(0, small[:, :2])  # cached per layer, still right
    assert not Network([W, np.ones((1, 2))], [np.array([1.5, 0.0]), np.array([2.0])])._integral(0, small[:, :2])
