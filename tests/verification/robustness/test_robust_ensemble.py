"""Ensemble robustness stage by stage, against brute force over every point of small integer boxes: members'
votes proven one at a time, counterexamples mixed from members' own, the joint MILP per rival, and the
whole query."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from bnnmilp.formulations.robustness import on_lattice
from bnnmilp.network import Network
from bnnmilp.network.ensemble import vote_predictions, votes
from bnnmilp.verification.robustness.replay import in_perturbation_set
from bnnmilp.verification.robustness.robust import (
    RobustOptions,
    _joint_queries,
    member_bit_ranges,
    member_ranges,
    mixed_flips,
    search_box,
    verify_ensemble_sample,
)

N_CLASSES, D0, TOP = 4, 4, 4  # inputs 0..TOP: 625 points in all


def _ensemble(seed: int) -> SimpleNamespace:
    """Six one-vs-one members [4, 3, 1] with weights and thresholds in small integers (+0.5: no ties)."""
    rng = np.random.default_rng(seed)
    classes = [(a, b) for a in range(N_CLASSES) for b in range(a + 1, N_CLASSES)]
    nets = [Network([rng.integers(-2, 3, size=(3, D0)).astype(float), rng.integers(-1, 2, size=(1, 3)).astype(float)],
                    [rng.integers(-3, 8, size=3).astype(float) + 0.5, rng.integers(-1, 2, size=1).astype(float) + 0.5])
            for _ in classes]
    ens = SimpleNamespace(networks=nets, classes=classes, n_classes=N_CLASSES)
    ens.predict = lambda X: vote_predictions(votes(nets, classes, X, N_CLASSES))
    return ens


GRID = np.array(list(itertools.product(range(TOP + 1), repeat=D0)), float)


def _ball(x: np.ndarray, eps: float) -> np.ndarray:
    return GRID[np.abs(GRID - x).max(axis=1) <= eps]


OPTS = RobustOptions(eps=1, domain="integer", bounds=(0, TOP), time_limit=None)
CASES = [(seed, i) for seed in range(8) for i in range(6)]


def _centre(seed: int, i: int) -> np.ndarray:
    return np.random.default_rng([seed, i]).integers(0, TOP + 1, D0).astype(float)


@pytest.mark.parametrize(("seed", "i"), CASES)
def test_a_member_is_fixed_only_where_it_cannot_change_and_its_flips_are_genuine(seed, i):
    ens, x = _ensemble(seed), _centre(seed, i)
    lo, hi = search_box(x, OPTS)
    ball = _ball(x, 1)
    bits = member_bit_ranges(ens.networks, lo, hi)
    flips: dict[int, np.ndarray] = {}
    member_ranges(ens, x, OPTS, bits, int(ens.predict(x[None])[0]), list(range(N_CLASSES)), None, flips)
    for m, net in enumerate(ens.networks):
        seen = set(net.predict_bits(ball)[:, 0].tolist())
        assert seen <= set(range(bits[m, 0], bits[m, 1] + 1))  # sound: every value met in the ball is allowed
        assert (bits[m, 0] == bits[m, 1]) == (len(seen) == 1)  # and exact: every member was asked
        if m in flips:
            assert in_perturbation_set(flips[m], x, OPTS, lo, hi)[0]
            assert net.predict_bits(flips[m][None])[0, 0] != net.predict_bits(x[None])[0, 0]
        else:
            assert len(seen) == 1


@pytest.mark.parametrize(("seed", "i"), CASES)
def test_joint_queries_settle_each_rival_as_brute_force_does(seed, i):
    """The joint MILP alone (members' ranges from interval arithmetic, no falsifier): a rival is settled
    robust exactly when it wins nowhere in the ball; a counterexample makes some class other than x's win."""
    ens, x = _ensemble(seed), _centre(seed, i)
    lo, hi = search_box(x, OPTS)
    ref = int(ens.predict(x[None])[0])
    winners = set(ens.predict(_ball(x, 1)).tolist()) - {ref}
    exact = [on_lattice(net, True) for net in ens.networks]
    bits = member_bit_ranges([n for n, _ in exact], lo, hi)
    for rival in set(range(N_CLASSES)) - {ref}:
        got = _joint_queries(ens, exact, x, ref, [rival], bits, lo, hi, OPTS, 0.0)
        if isinstance(got, list):
            assert got == [] and rival not in winners
        else:
            xp = np.array(got.counterexample)  # the MILP's point may make another class than the rival win
            assert int(ens.predict(xp[None])[0]) in winners
            assert in_perturbation_set(xp, x, OPTS, lo, hi)[0]


def test_mixed_flips_find_only_genuine_counterexamples():
    found = 0
    for seed, i in CASES:
        ens, x = _ensemble(seed), _centre(seed, i)
        lo, hi = search_box(x, OPTS)
        ref = int(ens.predict(x[None])[0])
        bits = member_bit_ranges(ens.networks, lo, hi)
        flips: dict[int, np.ndarray] = {}
        member_ranges(ens, x, OPTS, bits, ref, list(range(N_CLASSES)), None, flips)
        got = mixed_flips(ens, x, ref, [r for r in range(N_CLASSES) if r != ref], flips, OPTS, lo, hi,
                          np.random.default_rng(i))
        if got is not None:
            xp, _, winner = got
            assert in_perturbation_set(xp, x, OPTS, lo, hi)[0]
            assert int(ens.predict(xp[None])[0]) == winner != ref
            found += 1
    assert found >= 5


@pytest.mark.parametrize("eps", [1, 2])
def test_whole_queries_match_brute_force(eps):
    methods = set()
    for seed, i in CASES:
        ens, x = _ensemble(seed), _centre(seed, i)
        ref = int(ens.predict(x[None])[0])
        truth = bool(np.all(ens.predict(_ball(x, eps)) == ref))
        r = verify_ensemble_sample(ens, x, ref, i, RobustOptions(eps=eps, domain="integer", bounds=(0, TOP)))
        assert r.answer == ("robust" if truth else "not_robust"), (seed, i, r)
        methods.add(r.method)
    assert {"members", "sampling"} <= methods
