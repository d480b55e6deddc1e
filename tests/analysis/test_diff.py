"""Gradients of MILP optimal values: exact slopes of enumerated value functions, finite differences."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp import formulations
from bnnmilp.analysis.diff import MilpLayer, value_and_grad
from bnnmilp.analysis.valuefn import with_rhs
from bnnmilp.cli import main
from bnnmilp.milp.backends import SolveOptions, highs
from tests.conftest import grid_instance, make_spec
from tests.verification.proofs.test_proofs import random_milp
from tests.verification.proofs.test_valuefn import z_enum


def test_gradient_wrt_rhs_is_the_value_function_slope(gr):
    h = Fraction(1, 1000)
    smooth = kinks = 0
    for k in range(-12, 13):
        b = Fraction(k, 8) + Fraction(1, 32) * (k % 3 == 0)
        left, right = (z_enum(b) - z_enum(b - h)) / h, (z_enum(b + h) - z_enum(b)) / h
        vg = value_and_grad(with_rhs(gr, 0, float(b)))
        assert abs(vg.value - float(z_enum(b))) < 1e-7
        if left == right:  # z is affine around b: the gradient is its slope, and no kink is reported
            assert not vg.kink_rhs, float(b)
            assert abs(vg.y[0] - float(left)) < 1e-7, float(b)
            smooth += 1
        else:  # a kink of z: flagged; every candidate lies in the Clarke subdifferential [left, right] slopes
            assert vg.kink_rhs, float(b)
            lo, hi = float(min(left, right)), float(max(left, right))
            assert all(lo - 1e-7 <= c[0] <= hi + 1e-7 for c in vg.candidates), (float(b), vg.candidates)
            assert lo - 1e-7 <= vg.y[0] <= hi + 1e-7
            kinks += 1
    assert smooth >= 10 and kinks >= 3


def test_gradient_differs_from_the_lp_relaxation(gr):
    vg = value_and_grad(with_rhs(gr, 0, 0.25))
    lp_slope = 0.5  # LP relaxation: b/2 for b > 0
    assert vg.y[0] == pytest.approx(2.0) and not vg.kink_rhs
    assert abs(vg.y[0] - lp_slope) > 1


def _z(model) -> float:
    s = highs.solve(model, SolveOptions(tight=True))
    assert s.status == "optimal"
    return s.objective


SEEDS = [0, 1, 2, 4, 5, 7, 9, 11]


def test_most_random_milps_are_smooth_at_their_optimum():
    # so that the finite-difference test below really runs on most instances
    assert sum(not value_and_grad(random_milp(s)).kink for s in SEEDS) >= len(SEEDS) // 2


@pytest.mark.parametrize("seed", SEEDS)
def test_finite_differences_on_random_milps(seed):
    model = random_milp(seed)
    vg = value_and_grad(model)
    if vg.kink:
        pytest.skip("at a kink: finite differences are not a derivative")
    h = 1e-4
    # right-hand sides
    for i in range(model.n_rows):
        zp = _z(replace(model, row_lower=model.row_lower + h * np.eye(model.n_rows)[i]))
        zm = _z(replace(model, row_lower=model.row_lower - h * np.eye(model.n_rows)[i]))
        assert (zp - zm) / (2 * h) == pytest.approx(vg.grad_rhs[i], abs=1e-4)
    # objective
    for j in range(model.n_cols):
        e = h * np.eye(model.n_cols)[j]
        fd = (_z(replace(model, c=model.c + e)) - _z(replace(model, c=model.c - e))) / (2 * h)
        assert fd == pytest.approx(vg.grad_obj[j], abs=1e-4)
    # matrix entries
    gA = vg.grad_matrix(model)
    for k in range(0, model.nnz, 3):
        e = np.zeros(model.nnz)
        e[k] = h
        fd = (_z(replace(model, data=model.data + e)) - _z(replace(model, data=model.data - e))) / (2 * h)
        assert fd == pytest.approx(gA[k], abs=1e-4)


def test_finite_differences_on_a_tiny_bnn():
    layers = [2, 2, 1]
    data = grid_instance(400, layers, 5)
    tm = formulations.get("theorem1").build(make_spec(layers, "binary", "learned"), data.features,
                                            data.targets(1))
    vg = value_and_grad(tm.model, priority=tm.branching_priority())
    assert vg.value == pytest.approx(1.0)
    h = 1e-3
    rng = np.random.default_rng(0)
    for i in rng.choice(tm.model.n_rows, 8, replace=False):
        e = h * np.eye(tm.model.n_rows)[i]
        lo, up = tm.model.row_lower, tm.model.row_upper
        zp = _z(replace(tm.model, row_lower=lo + e, row_upper=up + e))
        zm = _z(replace(tm.model, row_lower=lo - e, row_upper=up - e))
        if not vg.kink_rhs:
            assert (zp - zm) / (2 * h) == pytest.approx(vg.grad_rhs[i], abs=1e-6)
        else:  # a kink: the candidates bound the one-sided slopes
            assert min(c[i] for c in vg.candidates) - 1e-6 <= (zp - zm) / (2 * h) + 1e-6


def test_milp_layer_gradient_descent_goes_down(repo_root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gd", repo_root / "samples/gradient_descent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    hist = mod.descend()
    losses = [f for _, f, _, _ in hist]
    assert len(losses) >= 4 and all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.5 * losses[0]


def test_milp_layer_backward_shapes(gr):
    layer = MilpLayer(gr)
    z = layer.forward(b=np.array([0.25]))
    g = layer.backward(2.0)
    assert z == pytest.approx(0.5) and g["b"][0] == pytest.approx(4.0) and g["c"].shape == (4,)
    assert g["A"].shape == (gr.nnz,)


def test_cli_grad(repo_root, tmp_path):
    lp = repo_root / "samples/guzelsoy_ralphs.lp"
    r = CliRunner().invoke(main, ["grad", str(lp), "--wrt", "obj", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["value"] == pytest.approx(1.0) and set(doc["gradient"]) == {"x1", "x2", "x3", "x4"}
    r = CliRunner().invoke(main, ["grad", str(lp), "--wrt", "matrix", "-o", str(tmp_path / "g.csv")])
    assert r.exit_code == 0 and (tmp_path / "g.csv").read_text().startswith("name,gradient\n")


def test_cli_explain_tiny_run(tmp_path):
    import yaml

    layers = [2, 2, 1]
    data = grid_instance(400, layers, 5)
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"features": data.features.tolist(),
                                                      "labels": data.labels.tolist()}))
    (tmp_path / "n.yaml").write_text(yaml.safe_dump({"network": {"layers": layers, "weights": "binary"}}))
    assert CliRunner().invoke(main, ["train", str(tmp_path / "n.yaml"), str(tmp_path / "d.yaml"), "-o",
                                     str(tmp_path / "run")]).exit_code == 0
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "run"), str(tmp_path / "d.yaml"), "--json", "-o",
                                  str(tmp_path / "s.csv")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["value"] == pytest.approx(1.0) and np.array(doc["sensitivity"]).shape == (5, 2)
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 6


def test_cli_explain_png_on_digits(repo_root, tmp_path):
    pytest.importorskip("matplotlib")
    data = repo_root / "samples/digits_k1.yaml"
    assert CliRunner().invoke(main, ["train", str(repo_root / "configs/digits_milp.yaml"), str(data), "-o",
                                     str(tmp_path / "run")]).exit_code == 0
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "run"), str(data), "--png", str(tmp_path / "h.svg")])
    assert r.exit_code == 0, r.output
    svg = (tmp_path / "h.svg").read_text()
    # the optimal loss is 0 here: every sensitivity is 0, and the picture and the output say why
    assert "optimal loss 0" in svg and "piecewise constant" in svg and "sample 9, label 9" in svg
    assert "every sensitivity is 0" in r.stderr


def test_torch_adapter(gr):
    torch = pytest.importorskip("torch")
    from bnnmilp.analysis.diff import torch_function

    b = torch.tensor([0.25], dtype=torch.float64, requires_grad=True)
    c = torch.tensor(gr.c, dtype=torch.float64, requires_grad=True)
    z = torch_function().apply(MilpLayer(gr), b, c)
    z.backward()
    assert b.grad.item() == pytest.approx(2.0)
