"""Value function and dual function on the Guzelsoy-Ralphs example, against enumeration."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp.analysis.valuefn import dual_function, value_function
from bnnmilp.cli import main
from bnnmilp.milp.backends import highs


def z_enum(b: Fraction) -> Fraction:
    """min x1/2 + 2 x3 + x4, x1 - 3/2 x2 + x3 - x4 = b: for integer x1, x2 the rest costs 2d (d >= 0) or -d."""
    best = None
    for x1 in range(0, 31):
        for x2 in range(0, 31):
            d = b - x1 + Fraction(3, 2) * x2
            if not -30 <= d <= 30:
                continue
            v = Fraction(x1, 2) + (2 * d if d >= 0 else -d)
            best = v if best is None or v < best else best
    return best


GRID = [Fraction(k, 8) for k in range(-24, 25)]


def test_value_function_matches_enumeration(gr):
    z = value_function(gr, 0, np.array([float(b) for b in GRID]))
    for b, zz in zip(GRID, z, strict=True):
        assert abs(zz - float(z_enum(b))) < 1e-7, b


def test_value_function_differs_from_the_lp_relaxation(gr):
    # LP relaxation: 0 for b <= 0 and b/2 for b > 0 (x1 takes any positive b at cost 1/2)
    assert z_enum(Fraction(-1, 2)) == Fraction(1, 2) != 0
    assert z_enum(Fraction(1, 2)) == 1 != Fraction(1, 4)


@pytest.mark.parametrize("b0", [Fraction(1, 2), Fraction(-5, 4), Fraction(7, 4)])
def test_dual_function_is_below_and_tight(gr, b0):
    F = dual_function(gr, 0, float(b0))
    assert abs(F(float(b0)) - float(z_enum(b0))) < 1e-6
    for b in GRID:
        assert F(float(b)) <= float(z_enum(b)) + 1e-7, b


def test_dual_function_at_one_half_is_the_known_one(gr):
    # Guzelsoy & Ralphs: F_BB(d) = min{2d, 3/2 - d, d/2 + 3/4} for the tree at b = 1/2
    F = dual_function(gr, 0, 0.5)
    for b in GRID:
        x = float(b)
        assert abs(F(x) - min(2 * x, 1.5 - x, x / 2 + 0.75)) < 1e-9
    assert len(F.active(0.5)) > 1  # 1/2 is a kink of F


def test_cli_value_function_csv_and_json(repo_root, tmp_path):
    lp = repo_root / "samples/guzelsoy_ralphs.lp"
    out = tmp_path / "vf.csv"
    r = CliRunner().invoke(main, ["value-function", str(lp), "--row", "b", "--from", "-1", "--to", "1", "--steps",
                                  "9", "--dual-function", "--at", "0.5", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0] == "b,z,F,kink" and len(lines) == 10
    doc = json.loads(r.stdout)
    for p in doc["points"]:
        assert p["F"] <= p["z"] + 1e-7
        assert abs(p["z"] - float(z_enum(Fraction(p["b"]).limit_denominator(8)))) < 1e-7
    r = CliRunner().invoke(main, ["value-function", str(lp), "--row", "nope", "--from", "0", "--to", "1"])
    assert r.exit_code == 2 and "nope" in r.stderr


def test_cli_plot_draws_both_functions(repo_root, tmp_path):
    """The PNG shows the value function (matplotlib's first colour) and the dual function (its second)."""
    pytest.importorskip("matplotlib")
    from PIL import Image

    png = tmp_path / "vf.png"
    r = CliRunner().invoke(main, ["value-function", str(repo_root / "samples/guzelsoy_ralphs.lp"), "--row", "b",
                                  "--from", "-2", "--to", "2", "--steps", "17", "--dual-function", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    img = np.asarray(Image.open(png).convert("RGB"), int)
    near = lambda rgb: (np.abs(img - np.array(rgb)).sum(axis=2) < 40).sum()  # noqa: E731
    assert near((31, 119, 180)) > 200 and near((255, 127, 14)) > 200  # C0 blue and C1 orange curves drawn


@pytest.mark.parametrize("seed", [0, 1, 4, 7])
def test_dual_function_on_random_milps_against_enumeration(seed):
    """z(beta) by enumerating the integer part (an LP for the continuous rest); F <= z, F(b0) = z(b0)."""
    import itertools

    from bnnmilp.analysis.valuefn import with_rhs
    from tests.verification.proofs.test_proofs import random_milp

    model = random_milp(seed)
    ints = np.flatnonzero(model.integrality)

    def z(beta: float) -> float:
        m = with_rhs(model, 0, beta)
        best = np.inf
        for vals in itertools.product(range(5), repeat=len(ints)):
            lo, up = m.col_lower.copy(), m.col_upper.copy()
            lo[ints] = up[ints] = vals
            from dataclasses import replace

            from bnnmilp.milp.backends import SolveOptions

            s = highs.solve(replace(m, col_lower=lo, col_upper=up, integrality=np.zeros(m.n_cols, bool)),
                            SolveOptions(tight=True))
            if s.status == "optimal":
                best = min(best, s.objective)
        return best

    b0 = float(model.row_lower[0])
    F = dual_function(model, 0, b0)
    assert abs(F(b0) - z(b0)) < 1e-6
    for beta in b0 + np.array([-3.0, -1.5, -0.5, 0.5, 1.5, 3.0]):
        assert F(beta) <= z(beta) + 1e-7
