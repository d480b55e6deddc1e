"""The spec: one wall-clock budget with per-stage limits kept; option strings checked when a spec is built."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.errors import SpecError
from bnnmilp.spec import SolverSpec, parse_spec


def test_a_stage_gets_what_remains_of_the_budget():
    assert SolverSpec(time_limit=60.0).stage_limit() == 60.0  # no budget: today's per-stage limit
    soon = SolverSpec(time_limit=60.0, deadline=time.monotonic() + 5.0)
    assert 0 < soon.stage_limit() <= 5.0 and soon.remaining() <= 5.0
    assert SolverSpec(time_limit=2.0, deadline=time.monotonic() + 100.0).stage_limit() == 2.0
    assert SolverSpec(time_limit=None, deadline=time.monotonic() - 1.0).stage_limit() == 0.01  # spent: minimal


def test_the_budget_is_a_setting_and_the_deadline_is_not():
    spec = parse_spec({"network": {"layers": [2, 1]}, "solver": {"budget": 30}})
    assert spec.solver.budget == 30.0 and spec.solver.deadline is None
    doc = spec.with_solver(deadline=123.0).to_dict()["solver"]
    assert doc["budget"] == 30.0 and "deadline" not in doc
    assert "budget" not in parse_spec({"network": {"layers": [2, 1]}}).to_dict()["solver"]
    for bad in (0, -1, "soon", float("nan")):
        with pytest.raises(SpecError, match="budget"):
            parse_spec({"network": {"layers": [2, 1]}, "solver": {"budget": bad}})


def test_train_reports_the_budget_and_what_each_part_took(repo_root, tmp_path):
    r = CliRunner().invoke(main, ["train", str(repo_root / "configs/xor.yaml"), str(repo_root / "samples/xor.yaml"),
                                  "-o", str(tmp_path / "run"), "--time-limit", "30", "--objective", "lexicographic",
                                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["budget"] == 30.0
    assert list(out["times"]) == ["ste", "build", "stage loss", "stage margin", "polish"]  # lns: the whole MILP
    assert all(v >= 0 for v in out["times"].values())
    import yaml

    doc = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())  # the finished run replaced any checkpoint
    assert doc["training_loss"]["status"] == "optimal" and "checkpoint" not in doc["training_loss"]


@pytest.mark.parametrize(("cls", "kwargs", "key"), [
    ("TrainingSpec", {"polish": "neurons"}, "training.polish"),
    ("TrainingSpec", {"objective": ("loss", "margins")}, "training.objective"),
    ("NetworkSpec", {"layers": (2, 1), "weights": "binay"}, "network.weights"),
    ("SolverSpec", {"name": "nosuch"}, "solver.name"),
])
def test_specs_built_in_python_are_validated(cls, kwargs, key):
    import bnnmilp.spec as spec_module

    with pytest.raises(ValueError, match=key):
        getattr(spec_module, cls)(**kwargs)


def test_every_method_name_is_a_registered_training_method():
    from bnnmilp.spec import METHODS
    from bnnmilp.training.pipeline import _METHODS

    assert sorted(_METHODS) == sorted(METHODS) == ["decompose", "lns", "milp", "ste"]


def test_one_list_of_statuses_each_explained():
    from bnnmilp.io.runs import FINISHED
    from bnnmilp.milp.backends.base import FAILED, STATUSES

    assert tuple(s for s in STATUSES if s not in FAILED) == FINISHED
    assert all(isinstance(v, str) and len(v) > 10 for v in STATUSES.values())


@pytest.mark.parametrize(("weights", "output", "expected"), [
    ("ternary", "argmax", "per_neuron"), ("binary", "argmax", "per_neuron"), ("continuous", "argmax", "learned"),
    ("ternary", "bits", "learned"), ("continuous", "bits", "learned")])
def test_threshold_default_breaks_ties_of_integer_scores(weights, output, expected):
    spec = parse_spec({"network": {"layers": [4, 3, 2], "weights": weights, "output": output}})
    assert spec.network.thresholds == expected
    named = parse_spec({"network": {"layers": [4, 3, 2], "weights": weights, "output": output,
                                    "thresholds": "zero"}})
    assert named.network.thresholds == "zero"
