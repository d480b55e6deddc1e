"""SCIP, CBC and GLPK through Pyomo (where installed): XOR and digits k=1 trained with each, then verified.

GLPK takes its time limit in whole seconds (glpsol --tmlim), so a fractional limit must still work.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.errors import SolverUnavailableError
from bnnmilp.milp.backends.pyomo import solver_for


def available(name: str) -> bool:
    try:
        solver_for(name)
    except SolverUnavailableError:
        return False
    return True


@pytest.mark.parametrize("solver", ["scip", "cbc", "glpk"])
@pytest.mark.parametrize(("config", "data", "time_limit"), [("xor", "xor", "10.5"), ("digits", "digits_k1", "30")])
def test_train_and_verify_with_another_solver(repo_root, tmp_path, solver, config, data, time_limit):
    if not available(solver):
        pytest.skip(f"{solver} is not installed")
    data_path = repo_root / "samples" / f"{data}.yaml"
    r = CliRunner().invoke(main, ["train", str(repo_root / "configs" / f"{config}.yaml"), str(data_path), "-o",
                                  str(tmp_path / "run"), "--solver", solver, "--time-limit", time_limit, "--json"])
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["solver"] == solver and s["status"] == "optimal"
    assert s["objective"] == 0  # both sets can be fitted exactly (HiGHS and brute force agree elsewhere)
    cert = json.loads((tmp_path / "run/certificate.json").read_text())
    assert cert["solver"]["name"] == solver
    assert CliRunner().invoke(main, ["verify", str(tmp_path / "run"), str(data_path)]).exit_code == 0


def test_the_solver_names_the_spec_accepts_are_the_backends():
    from bnnmilp.milp.backends.pyomo import SOLVERS
    from bnnmilp.spec import SOLVER_NAMES

    assert ("highs", *SOLVERS) == SOLVER_NAMES
