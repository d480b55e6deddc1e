"""The two build routes (arrays -> HiGHS; arrays -> Pyomo -> files / other solvers) give the same model.

Oracles: a second solver (SCIP through pyscipopt) reading the files bnnmilp writes, and HiGHS reading
them back; the optimum must agree with the direct HiGHS solve on every instance.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp import formulations
from bnnmilp.milp.backends import SolveOptions, highs, pyomo
from tests.conftest import grid_instance, make_spec

pyscipopt = pytest.importorskip("pyscipopt")

# chosen so that every optimum is positive: the solvers must really branch
INSTANCES = [([2, 2, 1], "continuous", "learned", "hamming", 16, 1),
             ([2, 2, 2], "continuous", "per_neuron", "error", 14, 10),
             ([3, 2, 2], "ternary", "learned", "hamming", 8, 3),
             ([2, 2, 1], "binary", "per_neuron", "error", 8, 4)]


def _build(layers, weights, thresholds, loss, m, seed, big_m="tight"):
    data = grid_instance(seed, layers, m)
    spec = make_spec(layers, weights, thresholds, loss, big_m=big_m)
    return formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1]))


def _scip_file(path) -> float:
    m = pyscipopt.Model()
    m.hideOutput()
    m.readProblem(str(path))
    m.optimize()
    assert m.getStatus() == "optimal"
    return m.getObjVal()


def _highs_file(path) -> float:
    h = highs.new_highs()
    h.readModel(str(path))
    h.run()
    assert h.getModelStatus().name == "kOptimal"
    return h.getInfo().objective_function_value


@pytest.mark.parametrize("inst", INSTANCES)
@pytest.mark.slow
def test_same_optimum_on_every_route(inst, tmp_path):
    tm = _build(*inst)
    direct = highs.solve(tm.model, SolveOptions())
    assert direct.status == "optimal"
    z = round(direct.objective)
    assert abs(direct.objective - z) < 1e-6
    values = {}
    for fmt in ("mps", "lp"):
        f = tmp_path / f"m.{fmt}"
        pyomo.write(tm.model, f, fmt)
        values[f"pyomo-{fmt}-scip"] = _scip_file(f)
        values[f"pyomo-{fmt}-highs"] = _highs_file(f)
        g = tmp_path / f"h.{fmt}"
        highs.write(tm.model, g)
        values[f"highs-{fmt}-scip"] = _scip_file(g)
    values["pyomo-scip_direct"] = pyomo.solve(tm.model, "scip", SolveOptions()).objective
    for k, v in values.items():
        assert abs(v - z) < 1e-6, (k, v, z)
    assert z > 0


@pytest.mark.parametrize("inst", INSTANCES[:3])
def test_big_m_settings_same_optimum(inst):
    tight = highs.solve(_build(*inst, big_m="tight").model, SolveOptions())
    paper = highs.solve(_build(*inst, big_m="paper").model, SolveOptions())
    assert tight.status == paper.status == "optimal"
    assert round(tight.objective) == round(paper.objective)


def test_pyomo_model_is_the_same_model():
    """Same variables, bounds, integrality, rows and coefficients after the Pyomo round trip (LP file -> HiGHS)."""
    tm = _build([2, 2, 2], "binary", "learned", "error", 5, 9)
    model = pyomo.to_pyomo(tm.model)
    names = tm.model.col_names()
    for j in range(tm.model.n_cols):
        v = model.component(names[j])
        assert v.lb == tm.model.col_lower[j] and v.ub == tm.model.col_upper[j]
        assert v.is_integer() == bool(tm.model.integrality[j])
    import pyomo.environ as pyo

    cons = list(model.component_data_objects(pyo.Constraint))
    assert [c.name for c in cons] == tm.model.row_names()
    ax = tm.model.row_activity(np.arange(tm.model.n_cols, dtype=float))
    for v, j in zip(model.component_data_objects(pyo.Var), range(tm.model.n_cols), strict=True):
        v.set_value(float(j), skip_validation=True)
    for r, c in enumerate(cons):  # coefficients: every row evaluated at x_j = j
        assert pyo.value(c.body) == pytest.approx(ax[r], abs=1e-9)


def test_unknown_and_missing_solvers_are_reported():
    from bnnmilp.errors import SolverUnavailableError

    tm = _build(*INSTANCES[0])
    with pytest.raises(SolverUnavailableError):
        pyomo.solve(tm.model, "nosuchsolver", SolveOptions())


def test_root_bound_lies_between_the_lp_bound_and_the_optimum():
    """HiGHS's dual bound at the end of the root node: at least the LP relaxation's (cuts only raise it),
    at most the optimum; recorded when progress is followed."""
    from dataclasses import replace

    tm = _build([2, 3, 2], "ternary", "per_neuron", "error", 10, 77)
    lp = highs.solve(replace(tm.model, integrality=np.zeros_like(tm.model.integrality)), SolveOptions())
    seen = []
    mip = highs.solve(tm.model, SolveOptions(), progress=seen.append)
    assert mip.status == "optimal" and lp.status == "optimal"
    root = mip.info["root_bound"]
    assert root is not None
    assert lp.objective - 1e-6 <= root <= mip.objective + 1e-6
