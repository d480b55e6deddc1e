"""Bad input: exit status 2, one line on stderr naming the file, the key and the expectation, no output left."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main

GOOD_NET = {"network": {"layers": [2, 2, 1]}, "solver": {"time_limit": 10}}
GOOD_DATA = {"features": [[0.5, -0.5], [0.25, 1.0]], "labels": [0, 1]}


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(p)


def with_key(doc, path, value):
    import copy

    d = copy.deepcopy(doc)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return d


NET_CASES = [
    ("unknown top key", with_key(GOOD_NET, ["extra"], 1), "extra"),
    ("unknown network key", with_key(GOOD_NET, ["network", "widths"], [1]), "network.widths"),
    ("missing layers", {"network": {"weights": "binary"}}, "network.layers"),
    ("missing section", {"training": {}}, "network"),
    ("bad width", with_key(GOOD_NET, ["network", "layers"], [2, 0, 1]), "network.layers[1]"),
    ("bad domain", with_key(GOOD_NET, ["network", "weights"], "real"), "network.weights"),
    ("bad epsilon", {**GOOD_NET, "training": {"epsilon": -1}}, "training.epsilon"),
    ("nan epsilon", {**GOOD_NET, "training": {"epsilon": float("nan")}}, "training.epsilon"),
    ("bad polish", {**GOOD_NET, "training": {"polish": "max"}}, "training.polish"),
    ("bad polish radius", {**GOOD_NET, "training": {"polish_radius": 0}}, "training.polish_radius"),
    ("bad threads", {**GOOD_NET, "solver": {"threads": 0}}, "solver.threads"),
    ("not yaml", "network: [1, 2\n", "not valid YAML"),
    ("not a mapping", "- 1\n- 2\n", "mapping"),
    ("unsafe yaml", "!!python/object/apply:os.system ['true']\n", "not valid YAML"),
]

DATA_CASES = [
    ("unknown key", with_key(GOOD_DATA, ["weights"], 1), "weights"),
    ("missing labels", {"features": [[1, 2]]}, "labels"),
    ("empty", {"features": [], "labels": []}, "features"),
    ("ragged", {"features": [[1, 2], [1]], "labels": [0, 1]}, "features[1]"),
    ("wrong width", {"features": [[1, 2, 3]], "labels": [0]}, "features"),
    ("non-finite", {"features": [[1, float("inf")]], "labels": [0]}, "features[0][1]"),
    ("string number", {"features": [[1, "x"]], "labels": [0]}, "features[0][1]"),
    ("label count", {"features": [[1, 2]], "labels": [0, 1]}, "labels"),
    ("label range", {"features": [[1, 2]], "labels": [2]}, "labels[0]"),
    ("label type", {"features": [[1, 2]], "labels": [0.5]}, "labels[0]"),
    ("missing file", None, "file not found"),
]


def _check(result, path, key, out):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert path in lines[0] and key in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(("label", "doc", "key"), NET_CASES, ids=[c[0] for c in NET_CASES])
@pytest.mark.parametrize("command", ["train", "encode"])
def test_bad_network_file(tmp_path, label, doc, key, command):
    net = write(tmp_path, "net.yaml", doc)
    data = write(tmp_path, "data.yaml", GOOD_DATA)
    out = tmp_path / ("run" if command == "train" else "m.mps")
    result = CliRunner().invoke(main, [command, net, data, "-o", str(out)])
    _check(result, net, key, out)


@pytest.mark.parametrize(("label", "doc", "key"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_file(tmp_path, label, doc, key):
    net = write(tmp_path, "net.yaml", GOOD_NET)
    data = write(tmp_path, "data.yaml", doc) if doc is not None else str(tmp_path / "absent.yaml")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", net, data, "-o", str(out)])
    _check(result, data, key, out)


def test_bad_weights_file(tmp_path):
    data = write(tmp_path, "data.yaml", GOOD_DATA)
    w = write(tmp_path, "weights.yaml", {"format": "bnnmilp-weights", "network": {"layers": [2, 1]},
                                         "layers": [{"weights": [[1, 2, 3]], "thresholds": [0]}]})
    for cmd in ("verify", "predict"):
        result = CliRunner().invoke(main, [cmd, w, data])
        assert result.exit_code == 2
        assert "layers" in result.stderr and w in result.stderr


def test_debug_shows_traceback(tmp_path):
    net = write(tmp_path, "net.yaml", {"network": {}})
    data = write(tmp_path, "data.yaml", GOOD_DATA)
    result = CliRunner().invoke(main, ["--debug", "train", net, data, "-o", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert result.exception is not None and isinstance(result.exception, ValueError)


@pytest.mark.parametrize("where", ["after", "env"])
def test_debug_after_the_subcommand_or_from_the_environment(tmp_path, monkeypatch, where):
    net = write(tmp_path, "net.yaml", {"network": {}})
    data = write(tmp_path, "data.yaml", GOOD_DATA)
    args = ["train", net, data, "-o", str(tmp_path / "r")]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 2 and not isinstance(plain.exception, ValueError)  # one line, no traceback
    if where == "env":
        monkeypatch.setenv("BNNMILP_DEBUG", "1")
    result = CliRunner().invoke(main, [*args, "--debug"] if where == "after" else args)
    assert result.exit_code != 0
    assert result.exception is not None and isinstance(result.exception, ValueError)


def test_unknown_solver_is_bad_input(tmp_path):
    net = write(tmp_path, "net.yaml", GOOD_NET)
    data = write(tmp_path, "data.yaml", GOOD_DATA)
    result = CliRunner().invoke(main, ["train", net, data, "-o", str(tmp_path / "r"), "--solver", "nosuch"])
    assert result.exit_code == 2
    assert "nosuch" in result.stderr
    assert not (tmp_path / "r").exists()


def test_yaml_numbers_with_exponents_are_numbers(tmp_path):
    """YAML 1.2 floats: 1e-3 and 1E5 are numbers (PyYAML's YAML 1.1 rules read them as strings)."""
    from bnnmilp.data import load_data
    from bnnmilp.spec import load_spec

    net = tmp_path / "net.yaml"
    net.write_text("network:\n  layers: [2, 2, 1]\ntraining:\n  epsilon: 1e-3\n  margin_cap: 4E0\n"
                   "solver:\n  time_limit: 1E1\n")
    spec = load_spec(net)
    assert spec.training.epsilon == 0.001 and spec.training.margin_cap == 4.0 and spec.solver.time_limit == 10.0
    data = tmp_path / "data.yaml"
    data.write_text("features:\n- [1e-3, -2.5E+2]\n- [1, 1e0]\nlabels: [0, 1]\n")
    ds = load_data(data)
    assert ds.features.tolist() == [[0.001, -250.0], [1.0, 1.0]]
    r = CliRunner().invoke(main, ["train", str(net), str(data), "-o", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize(("text", "key"), [("training:\n  epsilon: .nan\n", "training.epsilon"),
                                           ("training:\n  epsilon: .inf\n", "training.epsilon"),
                                           ("solver:\n  time_limit: -.inf\n", "solver.time_limit"),
                                           ("solver:\n  mip_gap: .nan\n", "solver.mip_gap"),
                                           ("training:\n  polish_radius: 1e400\n", "training.polish_radius"),
                                           ("training:\n  epsilon: 1e-3x\n", "training.epsilon")])
def test_non_finite_yaml_numbers_are_refused(tmp_path, text, key):
    net = write(tmp_path, "net.yaml", "network:\n  layers: [2, 2, 1]\n" + text)
    data = write(tmp_path, "data.yaml", GOOD_DATA)
    out = tmp_path / "run"
    _check(CliRunner().invoke(main, ["train", net, data, "-o", str(out)]), net, key, out)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400"])
def test_non_finite_data_is_refused(tmp_path, value):
    net = write(tmp_path, "net.yaml", GOOD_NET)
    data = write(tmp_path, "data.yaml", f"features:\n- [0.5, {value}]\n- [1, 2]\nlabels: [0, 1]\n")
    out = tmp_path / "run"
    _check(CliRunner().invoke(main, ["train", net, data, "-o", str(out)]), data, "features[0][1]", out)


@pytest.mark.parametrize(("doc", "where", "line"), [
    ({"network": {"layers": [2, 2, 1], "wieghts": "binary"}}, "net",
     "network.wieghts: unknown key (did you mean 'weights'? allowed: layers, output, thresholds, weights)"),
    ({"network": {"layers": [2, 2, 1]}, "traning": {}}, "net",
     "traning: unknown section (did you mean 'training'? allowed: network, solver, training)"),
    ({"network": {"layers": [2, 2, 1]}, "zzz": {}}, "net", "zzz: unknown section (allowed: network, solver, training)"),
    ({**GOOD_DATA, "lables": [0, 1]}, "data",
     "lables: unknown key (did you mean 'labels'? allowed: features, labels, meta)"),
])
def test_a_typo_gets_the_name_it_was_probably_meant_to_be(tmp_path, doc, where, line):
    files = {"net": write(tmp_path, "net.yaml", GOOD_NET), "data": write(tmp_path, "data.yaml", GOOD_DATA)}
    files[where] = write(tmp_path, f"{where}.yaml", doc)
    r = CliRunner().invoke(main, ["train", files["net"], files["data"], "-o", str(tmp_path / "run")])
    assert r.exit_code == 2
    assert r.stderr == f"bnnmilp: error: {files[where]}: {line}\n"


def test_swapped_arguments_are_named_as_such(tmp_path):
    net, data = write(tmp_path, "net.yaml", GOOD_NET), write(tmp_path, "data.yaml", GOOD_DATA)
    r = CliRunner().invoke(main, ["train", data, net, "-o", str(tmp_path / "run")])
    assert r.exit_code == 2
    assert r.stderr == f"bnnmilp: error: {data}: this is a data file (features, labels), not a spec: the spec " \
                       "comes first (bnnmilp train SPEC DATA)\n"
    r = CliRunner().invoke(main, ["train", net, net, "-o", str(tmp_path / "run")])
    assert r.stderr == f"bnnmilp: error: {net}: this is a spec (network), not a data file: the data come second " \
                       "(bnnmilp train SPEC DATA)\n"
    assert not (tmp_path / "run").exists()
