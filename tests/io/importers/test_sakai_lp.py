"""The MILP that ``bnnmilp encode --robust`` writes for Sakai's image-32 L-infinity query, compared row by row
with Sakai's own LP (MIPLIB 2024 version) of the same network and image."""

from __future__ import annotations

import bz2
import math
import re
from fractions import Fraction

import highspy
import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from tests.io.importers.test_chainer import SAKAI, images

LP = SAKAI / "instances/bnn_mnist_back_image_32_label3_adversarial_norm_inf.lp.bz2"
TERM = re.compile(r"([+-])\s*(\d+)?\s*([a-z_]+\d*)\((\d+)\)")
WIDTHS = [784, 200, 100, 100, 100]  # bits of Sakai's input_bin, block0..block3


def sakai_rows() -> list[tuple[dict, str, Fraction, str]]:
    """(terms {(name, index): coefficient}, relation, rhs, the rest of the left-hand side) of every row."""
    with bz2.open(LP, "rt") as fh:
        body = fh.read().split("SUBJECT TO", 1)[1].split("\nBOUNDS", 1)[0]
    rows = []
    for line in body.strip().splitlines():
        lhs, rel, rhs = re.match(r"(.*?)(>=|<=|=)\s*(-?\d+)\s*$", line).groups()
        terms = {(n, int(i)): (-1 if s == "-" else 1) * int(c or 1) for s, c, n, i in TERM.findall(lhs)}
        rows.append((terms, rel, Fraction(rhs), TERM.sub("", lhs).strip()))
    return rows


def sakai_units(rows) -> dict[tuple[int, int], tuple[np.ndarray, Fraction]]:
    """Per unit (layer 1..4 = block0..block3, index): the condition for bit 1 as (coefficients, theta) with
    coefficients . previous bits >= theta, read from the indicator row that forces it."""
    out = {}
    for terms, rel, rhs, rest in rows:
        blocks = [k for k in terms if k[0].startswith("block")]
        if rest or not blocks or any(k[0] == "output" for k in terms):
            continue
        ind = max(blocks, key=lambda k: int(k[0][5:]))
        layer, a = int(ind[0][5:]) + 1, terms[ind]
        vec = np.zeros(WIDTHS[layer - 1])
        for (n, j), v in terms.items():
            if (n, j) != ind:
                vec[j] = v
        if rel == ">=" and a < 0:  # b = 1 forces vec . v >= rhs - a
            out[(layer, ind[1])] = (vec, rhs - a)
        elif rel == "<=" and a > 0:  # b = 1 forces vec . v <= rhs - a
            out[(layer, ind[1])] = (-vec, -(rhs - a))
    return out


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """bnnmilp's imported network and the LP that encode --robust writes, read back with HiGHS."""
    from bnnmilp.io.runs import load_weights

    d = tmp_path_factory.mktemp("sakai_lp")
    X, names = images("mnist_back_image")
    x = X[names.index("bnn_mnist_back_image_32_label3.png")]
    np.savez(d / "img.npz", X=x[None, :], y=np.array([3]))
    r = CliRunner()
    assert r.invoke(main, ["import", str(SAKAI / "models/mnist_back_image.npz"), "-o", str(d / "n.npz")]).exit_code == 0
    e = r.invoke(main, ["encode", str(d / "n.npz"), str(d / "img.npz"), "--robust", "--eps", "1", "--domain",
                        "integer", "--bounds", "0:255", "--against", "label", "-o", str(d / "q.lp")])
    assert e.exit_code == 0, e.output
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.readModel(str(d / "q.lp"))
    lp = h.getLp()
    a = lp.a_matrix_
    start, index, value = np.array(a.start_), np.array(a.index_), np.array(a.value_)
    col_of = np.repeat(np.arange(lp.num_col_), np.diff(start))
    row_names, col_names = list(lp.row_names_), list(lp.col_names_)  # each property access copies the list
    rows = {}
    for r_, c, v in zip(index.tolist(), col_of.tolist(), value.tolist(), strict=True):
        rows.setdefault(row_names[r_], {})[col_names[c]] = v
    lower = dict(zip(row_names, lp.row_lower_, strict=True))
    return load_weights(d / "n.npz").network, x, rows, lower


def our_unit(rows, lower, layer: int, k: int) -> tuple[np.ndarray, Fraction] | None:
    """From the row on_<l>_<k>: W . u + L u_k >= lambda + L, the condition for bit 1 (W, lambda)."""
    terms = rows.get(f"c_l_on_{layer + 1}_{k}_")
    if terms is None:
        return None
    L = terms.get(f"u_{layer + 1}_{k}", 0.0)
    vec = np.zeros(WIDTHS[layer - 1])
    for name, v in terms.items():
        if name.startswith(f"u_{layer}_"):
            vec[int(name.rsplit("_", 1)[1])] = v
    return vec, Fraction(lower[f"c_l_on_{layer + 1}_{k}_"]) - Fraction(L)


def test_hidden_units_have_sakais_weights_and_thresholds(ours):
    net, _, rows, lower = ours
    sak = sakai_units(sakai_rows())
    same = 0
    for (layer, k), (vec, theta) in sak.items():
        mine = our_unit(rows, lower, layer, k)
        assert mine is not None
        assert np.array_equal(mine[0], vec) and mine[1] == theta, (layer, k)
        same += 1
    assert same == 499
    # the one unit without an on-row in Sakai's LP is constant 1 there (its b = 0 row cannot hold) and here
    (missing,) = {(l, k) for l in range(1, 5) for k in range(WIDTHS[l])} - set(sak)
    assert missing == (4, 90)
    W, lam = net.weights[4], net.thresholds[4]
    assert lam[90] <= np.minimum(W[90], 0).sum()  # lambda at or below the smallest reachable sum: always on


def test_input_bits_flip_at_sakais_costs_but_one(ours):
    """Sakai's LP charges |x'_j - x_j| for flipping input bit j; the exact thresholds give the same cost for
    783 pixels. Pixel 455 (x = 251) differs: Sakai charges 50, the threshold here (203) charges 49, and
    Chainer's own float32 batch norm agrees with it: at x = 202 its value is negative, at 203 positive."""
    net, x, _, _ = ours
    costs = {}
    for terms, _, _, rest in sakai_rows():
        if rest == "- top":
            ((_, j), c), = terms.items()
            costs[j] = (0 if c > 0 else 1, abs(c))
    W0, lam = np.diag(net.weights[0].toarray()), net.thresholds[0]
    bits = net.forward(x[None, :])[0][0]
    xs = np.arange(256.0)
    differ = []
    for j in range(784):
        flips = xs[(W0[j] * xs >= lam[j]).astype(int) != bits[j]]
        cost = int(np.abs(flips - x[j]).min())
        if costs[j] != (bits[j], cost):
            differ.append((j, costs[j], cost))
    assert differ == [(455, (1, 50), 49)]
    d, f = np.load(SAKAI / "models/mnist_back_image.npz"), np.float32
    g, b, m, v = (d[f"input_bn/{k}"][455] for k in ("gamma", "beta", "avg_mean", "avg_var"))
    bn = [g * (f(p) / f(255) - m) / np.sqrt(v + f(2e-5)) + b for p in (202, 203)]
    assert bn[0] < 0 <= bn[1] and lam[455] == 203.0 and W0[455] == 1.0


def test_output_rows_are_the_score_differences(ours):
    """Sakai's 90 rows 'output(k) = 1 => class k beats class i' use W_k - W_i (halved) and the score
    difference's threshold; here the rows 'beats' of the query (rival k against label 3) hold the same."""
    net, _, rows, lower = ours
    W, lam = net.weights[-1], net.thresholds[-1]
    checked = 0
    for terms, _, rhs, _ in sakai_rows():
        out = [j for (n, j) in terms if n == "output"]
        if len(out) != 1 or len(terms) < 10:
            continue
        k = out[0]
        vec = np.zeros(100)
        for (n, j), v in terms.items():
            if n == "block3":
                vec[j] = v
        (i,) = [i for i in range(10) if i != k and np.array_equal(2 * vec, W[k] - W[i])]
        need = (Fraction(lam[k]) - Fraction(lam[i])) / 2  # class k scores at least class i's: vec . u >= need
        theta = rhs - terms[("output", k)]
        assert theta in (math.ceil(need), math.floor(need) + 1)  # >= or > (Sakai breaks other ties by index)
        if i == 3:  # against the label: ties count, as in bnnmilp's beats rows
            assert theta == math.ceil(need)
            mine = rows[f"c_l_beats_{k if k < 3 else k - 1}_"]
            mv = np.zeros(100)
            for name, v in mine.items():
                if name.startswith("u_5_"):
                    mv[int(name.rsplit("_", 1)[1])] = v
            L = mine.get(f"z_{k if k < 3 else k - 1}", 0.0)
            assert np.array_equal(mv, 2 * vec) and Fraction(lower[f"c_l_beats_{k if k < 3 else k - 1}_"]) - \
                Fraction(L) == 2 * need
        checked += 1
    assert checked == 90
