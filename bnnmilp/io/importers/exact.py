"""Exact arithmetic for importers: thresholds in Q(sqrt r) (batch norm divides by sqrt(var + eps)), and sums
and products of doubles that must stay exact.

A threshold t = p + q sqrt(r) with rationals p, q, r is compared with rationals through squares, never
rounded: ``surd_nonneg`` decides p + q sqrt(r) >= 0, ``ceil_on_lattice`` finds the smallest multiple of a
granularity g that is >= t, and ``double_at_least`` the smallest double >= t.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from bnnmilp.network import product_error


def surd_nonneg(x: Fraction, y: Fraction, r: Fraction) -> bool:
    """Exactly: x + y sqrt(r) >= 0 (r >= 0)."""
    if y == 0 or r == 0:
        return x >= 0
    if y > 0:
        return x >= 0 or x * x <= y * y * r
    return x >= 0 and x * x >= y * y * r


def surd_float(p: Fraction, q: Fraction, r: Fraction) -> float:
    return float(p) + float(q) * math.sqrt(float(r))


def surd_sign(terms: dict[Fraction, Fraction], digits: int = 80) -> int | None:
    """The sign of sum_r c_r sqrt(r) (r >= 0), exactly where at most one r is irrational; otherwise from
    ``digits`` correctly rounded digits of each root with a rigorous error bound (None where that cannot tell)."""
    rational = sum((c * rational_sqrt(r) for r, c in terms.items() if c and rational_sqrt(r) is not None), Fraction(0))
    surds = {r: c for r, c in terms.items() if c and rational_sqrt(r) is None}
    if not surds:
        return (rational > 0) - (rational < 0)
    if len(surds) == 1:
        (r, c), = surds.items()
        return 1 if not surd_nonneg(-rational, -c, r) else -1 if not surd_nonneg(rational, c, r) else 0
    from decimal import Context

    ctx = Context(prec=digits)
    err = Fraction(0)
    for r, c in surds.items():  # each root within a relative 10^-(digits - 2) of sqrt(r)
        root = ctx.sqrt(ctx.divide(ctx.create_decimal(r.numerator), ctx.create_decimal(r.denominator)))
        term = Fraction(root) * c
        err += abs(term) * Fraction(1, 10 ** (digits - 4))
        rational += term
    if rational > err:
        return 1
    if rational < -err:
        return -1
    return None


def ceil_on_lattice(p: Fraction, q: Fraction, r: Fraction, g: Fraction) -> Fraction:
    """The smallest n g (n integer) with n g >= p + q sqrt(r)."""
    n = math.ceil(surd_float(p, q, r) / float(g)) if math.isfinite(surd_float(p, q, r) / float(g)) else 0
    while not surd_nonneg(n * g - p, -q, r):
        n += 1
    while surd_nonneg((n - 1) * g - p, -q, r):
        n -= 1
    return n * g


def double_at_least(p: Fraction, q: Fraction, r: Fraction) -> float:
    """The smallest double d with d >= p + q sqrt(r)."""
    d = surd_float(p, q, r)
    while not surd_nonneg(Fraction(d) - p, -q, r):
        d = float(np.nextafter(d, np.inf))
    while surd_nonneg(Fraction(float(np.nextafter(d, -np.inf))) - p, -q, r):
        d = float(np.nextafter(d, -np.inf))
    return d


def rational_sqrt(r: Fraction) -> Fraction | None:
    """sqrt(r) when it is rational, else None."""
    a, b = math.isqrt(r.numerator), math.isqrt(r.denominator)
    return Fraction(a, b) if a * a == r.numerator and b * b == r.denominator else None


def fraction_bits(v: np.ndarray) -> np.ndarray:
    """Per entry, the smallest q such that it is an integer multiple of 2^-q (doubles are dyadic; 0 for 0)."""
    v = np.asarray(v, np.float64)
    m, e = np.frexp(v)  # v = m 2^e, |m| in [0.5, 1): m 2^53 is an integer
    mant = np.abs(m * 2.0**53).astype(np.int64)
    low = np.where(mant == 0, 1, mant & -mant).astype(np.float64)
    return np.where(v == 0, 0, 53 - e - np.log2(low).astype(np.int64))


def small_integers(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 22) -> bool:
    """Both integer-valued, with max|a| max|b| below 2^53 (so every product and small sum is exact); checked in
    chunks, so a layer of tens of millions of weights needs no full-size temporaries."""
    if a.size == 0 or b.size == 0:
        return True
    ma = max(float(np.abs(a[i:i + chunk]).max()) for i in range(0, a.size, chunk))
    mb = max(float(np.abs(b[i:i + chunk]).max()) for i in range(0, b.size, chunk))
    if ma * mb >= 2.0**53:
        return False
    return all(bool(np.all(v[i:i + chunk] == np.floor(v[i:i + chunk]))) for v in (a, b)
               for i in range(0, v.size, chunk))


def products_exact(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether every float64 product a * b is exact (the error term of Dekker's product is zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if small_integers(a, b):  # integers whose products stay below 2^53: exact (the common +-1 weights)
        return True
    p = a * b
    return bool(np.all(product_error(a, b, p) == 0) and np.all(np.isfinite(p)))


def sums_exact(terms: np.ndarray, rows: np.ndarray) -> bool:
    """Whether float64 sums of ``terms`` grouped by ``rows`` are exact in any order: in each group of two or
    more terms, every term a multiple of 2^-q and the sum of magnitudes below 2^(53 - q)."""
    if terms.size == 0:
        return True
    n = int(rows.max()) + 1
    if small_integers(terms, np.ones(1)) and np.bincount(rows, weights=np.abs(terms), minlength=n).max() < 2.0**53:
        return True  # integer terms: every partial sum is an integer below the total magnitude
    size = np.bincount(rows, minlength=n)
    q = np.full(n, -(2**30), dtype=np.int64)
    np.maximum.at(q, rows, fraction_bits(terms))
    mag = np.bincount(rows, weights=np.abs(terms), minlength=n)
    many = size > 1
    return bool(np.all(np.ldexp(mag[many], q[many]) < 2.0**53))
