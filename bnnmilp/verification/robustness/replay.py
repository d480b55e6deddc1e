"""Counterexample replay: a solver's candidate counts only if, decided exactly, it lies in the
perturbation set and changes the output.

The distance is computed in rational arithmetic from the exact doubles; the box and integrality tests
compare doubles exactly; the output comes from the exact forward pass (``Network.predict_bits``). So a
``not_robust`` answer never rests on the solver's floating point.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol

import numpy as np

from bnnmilp.network import Network


class Perturbation(Protocol):
    eps: float | None
    norm: str  # inf | 1
    domain: str  # continuous | integer
    min_eps: bool


def distance(xp: np.ndarray, x: np.ndarray, norm: str) -> Fraction:
    """||xp - x|| (L-infinity or L1), exactly."""
    if xp.shape != x.shape:
        raise ValueError(f"shapes differ: {xp.shape} and {x.shape}")
    changed = np.flatnonzero(xp != x)  # equal doubles differ by exactly 0: only the others are summed
    a, b = xp[changed], x[changed]
    if np.all((a == np.round(a)) & (b == np.round(b)) & (np.abs(a) < 2.0**52) & (np.abs(b) < 2.0**52)):
        diffs = [Fraction(d) for d in np.abs(a - b).astype(np.int64).tolist()]  # integers: a - b is exact
    else:
        diffs = [abs(Fraction(float(u)) - Fraction(float(v))) for u, v in zip(a.tolist(), b.tolist(), strict=True)]
    return max(diffs, default=Fraction(0)) if norm == "inf" else sum(diffs, Fraction(0))


def in_perturbation_set(xp: np.ndarray, x: np.ndarray, opts: Perturbation, lo: np.ndarray,
                        hi: np.ndarray) -> tuple[bool, Fraction]:
    """(xp lies in the box [lo, hi], is integer for an integer domain and within eps of x; its distance).

    With ``min_eps`` there is no radius to respect: the distance is what is being minimised."""
    dist = distance(xp, x, opts.norm)
    inside = bool(np.all(xp >= lo) and np.all(xp <= hi))
    if opts.domain == "integer":
        inside = inside and bool(np.all(xp == np.round(xp)))
    if opts.eps is not None and not opts.min_eps:
        inside = inside and dist <= Fraction(float(opts.eps))
    return inside, dist


def replay(net: Network, xp: np.ndarray, x: np.ndarray, ref: np.ndarray, opts: Perturbation,
           lo: np.ndarray, hi: np.ndarray) -> tuple[bool, Fraction]:
    """Whether xp is a genuine counterexample: in the perturbation set, output bits differ from ref."""
    inside, dist = in_perturbation_set(xp, x, opts, lo, hi)
    differs = not np.array_equal(net.predict_bits(xp[None, :])[0], ref)
    return inside and differs, dist
