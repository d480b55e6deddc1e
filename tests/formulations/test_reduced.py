"""The reduced robustness MILP (flips as variables, fixed second-layer units folded) against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnmilp.verification.robustness import reach
from bnnmilp.verification.robustness.robust import RobustOptions, _reduced_milp
from tests.verification.robustness.test_reach import threshold_net
from tests.verification.robustness.test_robust import ball

CASES = list(itertools.product([0, 1, 3], ["inf", "1"], [1, 2], ["bits", "argmax"]))


@pytest.mark.parametrize(("seed", "norm", "eps", "output"), CASES)
def test_reduced_milp_matches_brute_force(seed, norm, eps, output):
    rng = np.random.default_rng(700 + seed)
    net = threshold_net(rng, 4, 1 + seed % 2, [5, 4], 3 if output == "argmax" else 2)
    opts = RobustOptions(eps=eps, norm=norm, domain="integer", bounds=(-3, 3), output=output)
    decided = 0
    for x in rng.integers(-3, 4, size=(15, 4)).astype(float):
        lo, hi = np.maximum(x - eps, -3), np.minimum(x + eps, 3)
        r = reach.reachable(net, x, eps, norm, lo, hi, reach.threshold_layer(net))
        if output == "argmax":
            y = int(net.argmax_predictions(x[None, :])[0])
            if y < 0:
                continue
            target = y
            truth = any(net.argmax_predictions(p[None, :])[0] != y for p in ball(x, eps, norm, -3, 3))
        else:
            target = net.predict_bits(x[None, :])[0]
            truth = any(not np.array_equal(net.predict_bits(p[None, :])[0], target)
                        for p in ball(x, eps, norm, -3, 3))
        got = _reduced_milp(net, x, r, opts, target, 30.0, "")
        if got is None:  # no free second-layer unit: the output cannot change
            assert not truth
            continue
        answer, xp, note, method = got
        assert method == "milp" and answer == ("not_robust" if truth else "robust"), (x, note)
        decided += 1
        if truth:
            d = np.abs(xp - x)
            assert (d.max() if norm == "inf" else d.sum()) <= eps
            changed = net.argmax_predictions(xp[None, :])[0] != target if output == "argmax" else \
                not np.array_equal(net.predict_bits(xp[None, :])[0], target)
            assert changed
        else:
            assert "confirmed with presolve off" in note
    assert decided
