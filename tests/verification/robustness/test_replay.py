"""Counterexample replay, decided exactly: distance, box, integrality, radius, output change."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from bnnmilp.network import Network
from bnnmilp.verification.robustness.replay import distance, in_perturbation_set, replay
from bnnmilp.verification.robustness.robust import RobustOptions

NET = Network([np.array([[1.0, 1.0]])], [np.array([1.0])])  # bit = [x0 + x1 >= 1]
X = np.array([0.25, 0.5])  # x0 + x1 = 0.75: bit 0
REF = np.array([0], dtype=np.int8)


def test_distances_are_exact():
    a, b = np.array([0.1, 0.2]), np.array([0.0, 0.0])
    assert distance(a, b, "inf") == Fraction(0.2)
    assert distance(a, b, "1") == Fraction(0.1) + Fraction(0.2)  # not the double 0.30000000000000004
    assert distance(b, b, "inf") == 0 and distance(np.array([]), np.array([]), "inf") == 0
    assert distance(np.array([-1.0, 3.0]), np.array([1.0, 0.0]), "1") == 5
    big = 2.0**53  # integers from 2^52 on: their difference may not be a double (2^53 + 2 - (-1))
    assert distance(np.array([big + 2, 7.0]), np.array([-1.0, 0.0]), "1") == 2**53 + 3 + 7
    assert distance(np.array([big + 2, 7.0]), np.array([-1.0, 0.0]), "inf") == 2**53 + 3
    rng = np.random.default_rng(0)  # integer vectors against the rational sum, one entry at a time
    for _ in range(20):
        a, b = rng.integers(-2**51, 2**51, 50).astype(float), rng.integers(-2**51, 2**51, 50).astype(float)
        same = rng.random(50) < 0.3  # unchanged entries too
        b[same] = a[same]
        exact = [abs(Fraction(u) - Fraction(v)) for u, v in zip(a.tolist(), b.tolist(), strict=True)]
        assert distance(a, b, "1") == sum(exact) and distance(a, b, "inf") == max(exact)
    for norm in ("inf", "1"):  # exact rationals even for empty vectors; vectors of different lengths are an error
        assert isinstance(distance(np.array([]), np.array([]), norm), Fraction)
        with pytest.raises(ValueError):
            distance(np.zeros(2), np.zeros(3), norm)


@pytest.mark.parametrize(("xp", "eps", "norm", "genuine"), [
    ([0.5, 0.5], 0.25, "inf", True),  # on the sphere: the radius is inclusive, the bit flips (a tie is 1)
    ([0.5, 0.5], 0.25 - 2**-20, "inf", False),  # just outside the ball
    ([0.5, 0.5], 0.25, "1", True),
    ([0.5, 0.75], 0.25, "1", False),  # L1 distance 0.5
    ([0.25, 0.5], 1.0, "inf", False),  # the sample itself: the output does not change
    ([0.5, 0.4999999], 0.25, "inf", False),  # in the ball, but 0.9999999 < 1: still bit 0
])
def test_replay_decides_radius_and_output_exactly(xp, eps, norm, genuine):
    opts = RobustOptions(eps=eps, norm=norm)
    lo, hi = np.full(2, -np.inf), np.full(2, np.inf)
    ok, dist = replay(NET, np.array(xp), X, REF, opts, lo, hi)
    assert ok is genuine
    assert dist == distance(np.array(xp), X, norm)


def test_box_and_integrality_are_checked():
    x, ref = np.array([0.0, 0.0]), np.array([0], dtype=np.int8)
    lo, hi = np.array([0.0, 0.0]), np.array([2.0, 2.0])
    integer = RobustOptions(eps=2.0, domain="integer")
    assert replay(NET, np.array([1.0, 0.0]), x, ref, integer, lo, hi)[0] is True
    assert replay(NET, np.array([1.5, 0.0]), x, ref, integer, lo, hi)[0] is False  # not an integer
    assert replay(NET, np.array([-1.0, 2.0]), x, ref, integer, lo, hi)[0] is False  # below the box
    assert replay(NET, np.array([0.0, 2.0 + 2**-50]), x, ref, RobustOptions(eps=3.0), lo, hi)[0] is False
    assert replay(NET, np.array([1.5, 0.0]), x, ref, RobustOptions(eps=2.0), lo, hi)[0] is True  # continuous


def test_min_eps_has_no_radius_but_keeps_the_box():
    opts = RobustOptions(eps=0.1, min_eps=True)
    lo, hi = np.full(2, -5.0), np.full(2, 5.0)
    ok, dist = replay(NET, np.array([3.0, 0.0]), X, REF, opts, lo, hi)
    assert ok is True and dist == Fraction(11, 4)
    inside, _ = in_perturbation_set(np.array([6.0, 0.0]), X, opts, lo, hi)
    assert inside is False
    assert in_perturbation_set(np.array([3.0, 0.0]), X, RobustOptions(eps=0.1), lo, hi)[0] is False
    assert in_perturbation_set(np.array([3.0, 0.0]), X, RobustOptions(eps=None), lo, hi)[0] is True
