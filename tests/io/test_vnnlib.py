"""Reading VNN-LIB queries: exact rational constraints from the reference parser's tree, 1.0 files, errors."""

from __future__ import annotations

from fractions import Fraction

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
