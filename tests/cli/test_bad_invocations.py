"""Every command, invoked badly: one line on stderr, no traceback, a documented exit status, no file left.

Documented statuses: 0 ok, 1 a claim is false or no solution exists, 2 bad input (files, keys, options,
outputs that cannot be written), 3 the solver failed or could not finish, 130 / 143 interrupted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main

DOCUMENTED = {0, 1, 2, 3, 129, 130, 143}


@pytest.fixture(scope="module")
def fx(tmp_path_factory, repo_root):
    """Inputs for the bad invocations: a trained XOR run, a 3-class ensemble run, broken files."""
    d = tmp_path_factory.mktemp("fixtures")
    r = CliRunner()
    net, data = str(repo_root / "configs/xor.yaml"), str(repo_root / "samples/xor.yaml")
    assert r.invoke(main, ["train", net, data, "-o", str(d / "run")]).exit_code == 0
    (d / "data3.yaml").write_text(yaml.safe_dump({"features": [[0, 1], [2, 3], [1, 1], [3, 0], [0, 0], [2, 2]],
                                                  "labels": [0, 1, 2, 0, 1, 2]}))
    (d / "net3.yaml").write_text(yaml.safe_dump({"network": {"layers": [2, 2, 3], "weights": "ternary",
                                                             "thresholds": "per_neuron"},
                                                 "training": {"epsilon": "auto"}, "solver": {"time_limit": 20}}))
    res = r.invoke(main, ["train", str(d / "net3.yaml"), str(d / "data3.yaml"), "-o", str(d / "ens"),
                          "--ensemble", "ovo"])
    assert res.exit_code in (0, 1), res.output
    (d / "huge.yaml").write_text("features:\n- [1e300, 0.5]\n- [0.25, 1.0]\n- [0.5, 0.5]\nlabels: [0, 1, 1]\n")
    (d / "wide.yaml").write_text(yaml.safe_dump({"features": [[1, 2, 3]], "labels": [0]}))
    (d / "notyaml.yaml").write_text("features: [1, 2\n")
    (d / "notjson.json").write_text("{not json")
    (d / "garbage.lp").write_text("this is not a model\n")
    (d / "sweep_bad.yaml").write_text(yaml.safe_dump({"spec": net, "grid": {"training.bogus": [1]}}))
    (d / "sweep.yaml").write_text(yaml.safe_dump({"spec": net, "data": data, "grid": {"training.seed": [0]}}))
    (d / "afile").write_text("x")
    return {"net": net, "data": data, "lp": str(repo_root / "samples/guzelsoy_ralphs.lp"), "run": str(d / "run"),
            "ens": str(d / "ens"), "net3": str(d / "net3.yaml"), "data3": str(d / "data3.yaml"),
            "huge": str(d / "huge.yaml"), "wide": str(d / "wide.yaml"), "notyaml": str(d / "notyaml.yaml"),
            "notjson": str(d / "notjson.json"), "garbage": str(d / "garbage.lp"),
            "sweep_bad": str(d / "sweep_bad.yaml"), "sweep": str(d / "sweep.yaml"), "afile": str(d / "afile"),
            "missing": str(d / "missing.yaml"),
            "under_file": str(d / "afile" / "x"), "dir": str(d)}


# (command line with {placeholders}; expected status). {out} is a path in a fresh folder that must stay empty.
CASES = [
    # encode
    ("encode {net} {data}", 2),
    ("encode {missing} {data} -o {out}/m.mps", 2),
    ("encode {net} {missing} -o {out}/m.mps", 2),
    ("encode {net} {notyaml} -o {out}/m.mps", 2),
    ("encode {net} {wide} -o {out}/m.mps", 2),
    ("encode {net} {data} -o {out}/m.mps --format pdf", 2),
    ("encode {net} {data} -o {under_file}.mps", 2),
    ("encode {net} {data} -o {dir}", 2),
    ("encode {net} {data} -o {out}/m.mps --writer bogus", 2),
    ("encode {run} {data} --robust --eps nan -o {out}/q.lp", 2),
    ("encode {run} {data} --robust --eps inf -o {out}/q.lp", 2),
    ("encode {run} {data} --robust --eps 1 --sample 99 -o {out}/q.lp", 2),
    ("encode {run} {data} --robust --eps 1 --bounds 5:1 -o {out}/q.lp", 2),
    ("encode {ens} {data3} --robust --eps 1 -o {out}/q.lp", 2),
    # train
    ("train {net} {data}", 2),
    ("train {net} {data} -o {out}/r --time-limit nan", 2),
    ("train {net} {data} -o {out}/r --time-limit inf", 2),
    ("train {net} {data} -o {out}/r --time-limit -1", 2),
    ("train {net} {data} -o {out}/r --time-limit 0", 2),
    ("train {net} {data} -o {out}/r --mip-gap nan", 2),
    ("train {net} {data} -o {out}/r --mip-gap -0.1", 2),
    ("train {net} {data} -o {out}/r --threads 0", 2),
    ("train {net} {data} -o {out}/r --threads two", 2),
    ("train {net} {data} -o {out}/r --polish maybe", 2),
    ("train {net} {data} -o {out}/r --method sgd", 2),
    ("train {net} {data} -o {out}/r --objective accuracy", 2),
    ("train {net} {data} -o {out}/r --solver nosuch", 2),
    ("train {net} {data} -o {out}/r --seed -1", 2),
    ("train {net} {data} -o {run}", 2),
    ("train {net} {data} -o {under_file}", 2),
    ("train {net} {data} -o {afile}", 2),
    ("train {net} {huge} -o {out}/r", 3),
    ("train {net} {data} -o {out}/r --ensemble ovo", 2),
    ("train {net3} {data3} -o {out}/r --ensemble ovo --scheduler bogus", 2),
    ("train {net} {notyaml} -o {out}/r", 2),
    ("train {notyaml} {data} -o {out}/r", 2),
    ("train {net} {data} -o {out}/r --bogus-flag", 2),
    # verify
    ("verify {run}", 2),
    ("verify {missing} {data}", 2),
    ("verify {run} {wide}", 2),
    ("verify {run} {data} --robust", 2),
    ("verify {run} {data} --robust --eps nan", 2),
    ("verify {run} {data} --robust --eps inf", 2),
    ("verify {run} {data} --robust --eps -1", 2),
    ("verify {run} {data} --robust --eps 1 --bounds a:b", 2),
    ("verify {run} {data} --robust --eps 1 --bounds nan:1", 2),
    ("verify {run} {data} --robust --eps 1 --norm 3", 2),
    ("verify {run} {data} --robust --eps 1 --time-limit nan", 2),
    ("verify {run} {data} --robust --eps 1 --workers 0", 2),
    ("verify {run} {data} --robust --eps 1 --counterexamples {under_file}", 2),
    ("verify {run} {data} --certificate {missing}", 2),
    ("verify {run} {data} --certificate {notjson}", 2),
    ("verify {lp} --certificate", 2),
    ("verify {ens} {data3} --robust --min-eps", 2),
    # predict
    ("predict {run}", 2),
    ("predict {run} {missing}", 2),
    ("predict {run} {wide}", 2),
    ("predict {run} {data} -o {dir}", 2),
    ("predict {missing} {data}", 2),
    # certify
    ("certify {missing}", 2),
    ("certify {run}", 2),
    ("certify {ens} {data3} -o {out}/p.json", 2),
    ("certify {lp} --time-limit nan -o {out}/p.json", 2),
    ("certify {lp} --format pdf -o {out}/p.json", 2),
    ("certify {lp} -o {under_file}", 2),
    ("certify {garbage} -o {out}/p.json", 2),
    # value-function
    ("value-function {lp} --from nan --to 1", 2),
    ("value-function {lp} --from 0 --to inf", 2),
    ("value-function {lp} --from 0 --to 1 --steps 1", 2),
    ("value-function {lp} --from 0 --to 1 --row nosuch", 2),
    ("value-function {lp} --from 0 --to 1 -o {under_file}", 2),
    ("value-function {garbage} --row b --from 0 --to 1", 2),
    # grad
    ("grad {lp} --wrt everything", 2),
    ("grad {missing}", 2),
    ("grad {garbage}", 2),
    ("grad {lp} -o {under_file}", 2),
    ("grad {lp} --time-limit nan", 2),
    ("grad {lp} --time-limit 1e-9", 3),
    # explain
    ("explain {ens} {data3}", 2),
    ("explain {run} {wide}", 2),
    ("explain {run} {data} --time-limit nan", 2),
    ("explain {run} {data} --png {under_file}", 2),
    ("explain {run} {data} --time-limit 1e-9", 3),
    # sweep
    ("sweep {missing} -o {out}/s", 2),
    ("sweep {sweep_bad} -o {out}/s", 2),
    ("sweep {sweep} -o {out}/s --scheduler bogus", 2),
    ("sweep {sweep} -o {afile}", 2),
    ("sweep {sweep} -o {out}/s --workers 0", 2),
    ("sweep {sweep} -o {out}/s --scheduler tcp://127.0.0.1:1", 2),
    # import
    ("import {missing} -o {out}/n.npz", 2),
    ("import {garbage} -o {out}/n.npz", 2),
    ("import {notjson} -o {out}/n.npz --from onnx", 2),
    ("import {lp}", 2),
    # the group
    ("nosuch", 2),
    ("--bogus", 2),
]


def _snapshot(folder: str) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in Path(folder).rglob("*")}


@pytest.mark.parametrize(("line", "status"), CASES, ids=[c[0] for c in CASES])
def test_bad_invocation(fx, tmp_path, line, status):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(out=out, **fx) for a in line.split()]
    before = _snapshot(fx["dir"])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == status, (result.exit_code, result.stderr, result.stdout)
    assert status in DOCUMENTED
    progress = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ")  # plain progress lines before the failure
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("training ")
             and not progress.match(ln)]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert lines[0].startswith("bnnmilp")
    assert list(out.iterdir()) == []  # nothing written, nothing half-written
    assert _snapshot(fx["dir"]) == before  # the inputs are untouched


def test_at_least_sixty_cases_cover_every_command():
    commands = {c[0].split()[0] for c in CASES}
    assert len(CASES) >= 60
    assert {"encode", "train", "verify", "predict", "certify", "value-function", "grad", "explain",
            "sweep", "import"} <= commands


def test_json_output_is_strict(fx):
    """Strict JSON readers accept everything printed with --json (no NaN or Infinity)."""
    r = CliRunner().invoke(main, ["verify", fx["run"], fx["data"], "--json"])
    assert r.exit_code == 0
    json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    doc = json.loads(Path(fx["run"], "certificate.json").read_text(),
                     parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert doc["format"] == "bnnmilp-certificate"


def test_outputs_follow_the_umask(fx, tmp_path):
    old = os.umask(0o022)
    try:
        r = CliRunner().invoke(main, ["encode", fx["net"], fx["data"], "-o", str(tmp_path / "m.lp")])
    finally:
        os.umask(old)
    assert r.exit_code == 0
    assert (tmp_path / "m.lp").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("args", [
    ["train", "configs/xor.yaml", "samples/xor.yaml", "-o", "/proc/nope"],
    ["verify", "configs/xor.yaml", "samples/xor.yaml", "--robust", "--eps", "1", "-o", "/proc/nope"],
    ["encode", "configs/xor.yaml", "samples/xor.yaml", "-o", "/proc/nope.lp"],
])
def test_an_output_the_file_system_refuses_is_found_before_any_work(repo_root, args, monkeypatch):
    """/proc's permission bits let root write; the file system does not: the probe asks it (as another user,
    the permission bits already say no)."""
    monkeypatch.chdir(repo_root)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2
    why = "cannot create anything in /proc (No such file or directory)" if os.geteuid() == 0 else \
        "cannot write into /proc (permission denied or a read-only file system)"
    assert why in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
