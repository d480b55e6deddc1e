"""weights.npz: the same network and claims as weights.yaml, exact doubles, no YAML parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.data import load_data
from bnnmilp.errors import WeightsError
from bnnmilp.io import runs
from bnnmilp.spec import load_spec
from bnnmilp.training.pipeline import train


@pytest.fixture(scope="module")
def result(repo_root):
    spec = load_spec(repo_root / "configs/xor.yaml")
    return train(spec, load_data(repo_root / "samples/xor.yaml"))


def test_npz_and_yaml_hold_the_same_network_and_claims(result, tmp_path, repo_root):
    runs.write_run(result, tmp_path / "y")
    runs.write_run(result, tmp_path / "n", fmt="npz")
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["certificate.json", "weights.npz"]
    a, b = runs.load_weights(tmp_path / "y"), runs.load_weights(tmp_path / "n")
    assert b.path.endswith("weights.npz")
    for wa, wb in zip(a.network.weights + a.network.thresholds, b.network.weights + b.network.thresholds,
                      strict=True):
        assert wa.dtype == wb.dtype == np.float64 and np.array_equal(wa, wb)  # the same doubles, bit for bit
    assert {k: v for k, v in a.doc.items() if k != "layers"} == {k: v for k, v in b.doc.items() if k != "layers"}
    data = str(repo_root / "samples/xor.yaml")
    for folder in ("n", "n/weights.npz"):
        assert CliRunner().invoke(main, ["verify", str(tmp_path / folder), data]).exit_code == 0
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "n"), data, "--json"])
    s = CliRunner().invoke(main, ["predict", str(tmp_path / "y"), data, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == json.loads(s.stdout)


def test_large_networks_are_written_as_npz(result, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "NPZ_ABOVE", 5)  # the XOR network has 9 parameters
    assert runs.write_run(result, tmp_path / "r")["weights"].name == "weights.npz"
    monkeypatch.setattr(runs, "NPZ_ABOVE", 9)
    assert runs.write_run(result, tmp_path / "s")["weights"].name == "weights.yaml"


def test_a_tampered_npz_claim_is_caught(result, tmp_path, repo_root):
    p = runs.write_run(result, tmp_path / "n", fmt="npz")["weights"]
    doc = runs.read_weights_npz(p)
    doc["training_loss"]["value"] += 1
    runs.write_weights_npz(p, doc)
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "n"), str(repo_root / "samples/xor.yaml"), "--json"])
    assert r.exit_code == 1 and [c["ok"] for c in json.loads(r.stdout)["checks"] if c["name"] == "loss"] == [False]


@pytest.mark.parametrize(("arrays", "key", "expected"), [
    ({"W0": np.zeros((1, 2)), "t0": np.zeros(1)}, "header", "missing array"),
    ({"header": np.array("[1]"), "W0": np.zeros((1, 2)), "t0": np.zeros(1)}, "header", "expected a JSON object"),
    ({"header": np.array("{}"), "W0": np.zeros((1, 2)), "t1": np.zeros(1)}, "W0",
     "expected arrays W0, t0, W1, t1, ... for every layer"),
    ({"header": np.array("{}"), "W0": np.zeros((1, 2)), "t0": np.zeros(1), "extra": np.zeros(1)}, "layers",
     "expected arrays W0, t0, W1, t1, ... and nothing else"),
    ({"header": np.array('{"format": "other"}'), "W0": np.zeros((1, 2)), "t0": np.zeros(1)}, "format",
     "expected 'bnnmilp-weights'"),
])
def test_bad_npz_files_name_the_key(tmp_path, arrays, key, expected):
    p = tmp_path / "w.npz"
    np.savez(p, **arrays)
    with pytest.raises(WeightsError) as info:
        runs.load_weights(p)
    assert str(info.value) == f"{p}: {key}: {expected}"


def test_a_file_that_is_no_npz(tmp_path):
    p = tmp_path / "w.npz"
    p.write_text("weights")
    r = CliRunner().invoke(main, ["verify", str(p), "x.yaml"])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"bnnmilp: error: {p}: not a bnnmilp weights NPZ file (not a zip archive)"


@pytest.mark.parametrize(("name", "kind"), [("net", "npz"), ("net.bin", "npz"), ("net.yaml", "yaml"),
                                            ("net.yml", "yaml"), ("net.npz", "npz")])
def test_a_network_is_written_as_npz_unless_named_yaml_and_read_back_by_content(tmp_path, name, kind):
    """"-o net" without an extension: the fast format, which every reader recognises by its content."""
    from bnnmilp.network import Network

    net = Network([np.array([[1.0, -1.0], [0.5, 0.25]]), np.array([[1.0, -1.0]])],
                  [np.array([0.5, -0.25]), np.array([0.75])])
    header = {"format": "bnnmilp-weights", "version": 1,
              "network": {"layers": [2, 2, 1], "weights": "continuous", "thresholds": "per_neuron",
                          "output": "bits"}}
    runs.write_network(tmp_path / name, net, header)
    assert (tmp_path / name).read_bytes().startswith(b"PK\x03\x04") == (kind == "npz")
    got = runs.load_weights(tmp_path / name).network
    assert [w.tolist() for w in got.weights] == [w.tolist() for w in net.weights]
    assert [t.tolist() for t in got.thresholds] == [t.tolist() for t in net.thresholds]
