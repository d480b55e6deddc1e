"""Reading VNN-LIB queries: exact rational constraints from the reference parser's tree, 1.0 files, errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from bnnmilp.errors import QueryError
from bnnmilp.io.vnnlib import Linear, parse_query, read_query

V2 = """(vnnlib-version <2.0>)
(declare-network N
    (declare-input X float32 [1,2])
    (declare-output Y float32 [1,2])
)
(assert (>= X[0,0] 0.1))
(assert (<= X[0,0] 1.0))
(assert (and (>= X[0,1] -0.1) (<= X[0,1] 1.0) (<= (+ X[0,0] (* 2.0 X[0,1])) 1.5)))
(assert (or (and (>= Y[0,0] Y[0,1]) (<= Y[0,0] 100.0)) (> (- Y[0,1] 3.5) 0.0) (!= Y[0,0] -2.5)))
"""

V1 = """; a VNN-COMP 2022 property
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (<= X_0 1.0e-3))
(assert (>= X_0 0.0))
(assert (<= X_1 1.0))
(assert (>= X_1 -1E2))
(assert (or (and (>= Y_0 Y_1))))
"""


def test_constants_are_the_exact_decimals_written_and_comparisons_are_normalised() -> None:
    q = parse_query(V2)
    assert (q.version, q.network, q.input.name, q.input.dtype, q.input.shape) == ("2.0", "N", "X", "float32", (1, 2))
    assert q.assertions[0] == [(Linear(((("x", 0), Fraction(-1)),), Fraction(1, 10), "<="),)]
    x0_2x1 = Linear(((("x", 0), Fraction(1)), (("x", 1), Fraction(2))), Fraction(-3, 2), "<=")
    assert q.assertions[2][0][2] == x0_2x1
    rivals = q.assertions[3]
    assert rivals[0] == (Linear(((("y", 0), Fraction(-1)), (("y", 1), Fraction(1))), Fraction(0), "<="),
                         Linear(((("y", 0), Fraction(1)),), Fraction(-100), "<="))
    assert rivals[1] == (Linear(((("y", 1), Fraction(-1)),), Fraction(7, 2), "<"),)
    # != is < or >
    assert rivals[2:] == [(Linear(((("y", 0), Fraction(1)),), Fraction(5, 2), "<"),),
                          (Linear(((("y", 0), Fraction(-1)),), Fraction(-5, 2), "<"),)]


def test_holds_decides_in_rationals() -> None:
    q = parse_query(V2)
    x = [Fraction(1, 10), Fraction(7, 10)]  # x0 + 2 x1 = 1.5 exactly: on the boundary, allowed
    assert q.holds(x, [Fraction(5), Fraction(5)])
    assert not q.holds([Fraction(1, 10) - Fraction(1, 10**30), x[1]], [Fraction(5), Fraction(5)])
    assert not q.holds(x, [Fraction(-5, 2), Fraction(7, 2)])  # Y1 - 3.5 > 0 fails at equality; Y0 != -2.5 fails
    assert q.satisfied_disjuncts(x, [Fraction(-5, 2), Fraction(4)]) == [0, 0, 0, 1]


BOUNDS = """(vnnlib-version <2.0>)
(declare-network N (declare-input X real [4]) (declare-output Y real [1]))
(assert (>= X[0] 0.1))
(assert (< X[0] 0.5))
(assert (> X[1] -0.25))
(assert (<= X[1] 0.3))
(assert (== X[2] 0.125))
(assert (and (>= (* -2.0 X[3]) -1.0) (<= Y[0] 7.0) (>= X[3] 0.2)))
(assert (or (>= X[3] 0.3) (<= Y[0] 1.0)))
"""


def _neighbourhood(v: float) -> list[float]:
    return [np.nextafter(np.nextafter(v, -np.inf), -np.inf), np.nextafter(v, -np.inf), v, np.nextafter(v, np.inf),
            np.nextafter(np.nextafter(v, np.inf), np.inf)]


def test_the_box_in_doubles_decides_exactly_as_the_rationals_do() -> None:
    """Box.holds at doubles next to every bound (0.1 and 0.3 are not doubles, 0.5, -0.25 and 0.125 are;
    strict, non-strict, equal, a negative coefficient) against ``holds`` in exact rationals."""
    q = parse_query(BOUNDS)
    only_box = parse_query(BOUNDS.replace("(<= Y[0] 7.0) ", "").rsplit("(assert (or", 1)[0])
    assert not only_box.others
    assert len(q.box.index) == 8 and [len(a) for a in q.others] == [1, 2]  # (<= Y 7) stays, the rest is the box
    rng = np.random.default_rng(0)
    grid = [_neighbourhood(v) for v in (0.1, 0.5)] + [_neighbourhood(v) for v in (-0.25, 0.3)]
    for _ in range(2000):  # about 2% of the points meet every bound
        x = np.array([rng.choice(grid[rng.integers(2)]), rng.choice(grid[2 + rng.integers(2)]),
                      rng.choice(_neighbourhood(0.125)), rng.choice(_neighbourhood(0.2) + _neighbourhood(0.5))])
        y = [Fraction(int(rng.integers(0, 9)))]
        xs = [Fraction(float(v)) for v in x]
        assert q.holds_at(x, y) == q.holds(xs, y)
        assert bool(only_box.box.holds(x)) == only_box.holds(xs, y)
    lo, hi = q.box.limits(4, inner=True)
    outer_lo, outer_hi = q.box.limits(4, inner=False)
    assert lo.tolist() == [np.nextafter(0.1, np.inf) if Fraction(0.1) < Fraction(1, 10) else 0.1,
                           np.nextafter(-0.25, np.inf), 0.125, np.nextafter(0.2, np.inf)
                           if Fraction(0.2) < Fraction(1, 5) else 0.2]
    assert hi.tolist() == [np.nextafter(0.5, -np.inf), 0.3 if Fraction(0.3) <= Fraction(3, 10)
                           else np.nextafter(0.3, -np.inf), 0.125, 0.5]
    assert np.all(outer_lo <= lo) and np.all(outer_hi >= hi)
    for i, (a, b) in enumerate(zip(outer_lo, outer_hi, strict=True)):  # outer: the doubles around each bound
        assert Fraction(float(a)) <= [Fraction(1, 10), Fraction(-1, 4), Fraction(1, 8), Fraction(1, 5)][i]
        assert Fraction(float(b)) >= [Fraction(1, 2), Fraction(3, 10), Fraction(1, 8), Fraction(1, 2)][i]


def test_a_version_1_file_reads_as_one_network_with_flat_input_and_output() -> None:
    q = parse_query(V1, network="net")
    assert (q.version, q.network, q.input.shape, q.output.shape, q.input.dtype) == ("1.0", "net", (2,), (2,), "real")
    assert q.assertions[0] == [(Linear(((("x", 0), Fraction(1)),), Fraction(-1, 1000), "<="),)]
    assert q.assertions[3] == [(Linear(((("x", 1), Fraction(-1)),), Fraction(-100), "<="),)]


def test_surd_outputs_are_decided_exactly() -> None:
    q = parse_query(V2)
    y0 = {Fraction(1): Fraction(0), Fraction(2): Fraction(1)}  # sqrt(2)
    x = [Fraction(1, 2), Fraction(1, 2)]
    # Y0 = sqrt(2) >= Y1 = 1.41421356 (just below): the first disjunct holds
    assert q.satisfied_disjuncts(x, [y0, Fraction(141421356, 10**8)])[3] == 0
    assert q.satisfied_disjuncts(x, [y0, Fraction(141421357, 10**8)])[3] == 3  # not >=; Y0 > -2.5 holds


@pytest.mark.parametrize("text,where", [
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X float32 [2]) (declare-output Y float32 [1]))\n"
     "(assert (>= (* X[0] X[1]) 0.0))", "assertion 1: a product of two variables"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X float32 [2]) (declare-output Y float32 [1]))\n"
     "(assert (>= X[0] 1))", "line 3: Type mismatch"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X float32 [2]) (declare-output Y float32 [1]))\n"
     "(assert (>= X[0] 1.0)", "syntax error"),
    ("(declare-const Z_0 Real)\n(assert (>= Z_0 1.0))", "expected declare-const X_i and Y_j"),
])
def test_bad_queries_say_where_and_what(text: str, where: str) -> None:
    with pytest.raises(QueryError, match=r"q\.vnnlib") as info:
        parse_query(text, "q.vnnlib")
    assert where in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(QueryError, match=r"nope\.vnnlib: file not found"):
        read_query(tmp_path / "nope.vnnlib")
