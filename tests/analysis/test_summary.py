"""`show`: a network's layers, counted by hand."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from bnnmilp.analysis.summary import network_summary
from bnnmilp.cli import main
from bnnmilp.io import runs
from bnnmilp.network import Network

NET = Network([np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 1.0]]), np.array([[1.0, -1.0], [0.0, 1.0]])],
              [np.array([0.5, 0.5]), np.array([0.25, -0.25])])


def test_counts_by_hand():
    s = network_summary(NET, "ternary", "argmax", "per_neuron")
    first, second = s["per_layer"]
    assert (first["nonzeros"], first["density"], first["operation"], first["kind"]) == \
        (3, 0.5, "multiply-accumulate", "step")
    assert (second["nonzeros"], second["density"], second["operation"], second["kind"]) == \
        (3, 0.75, "xnor-popcount", "argmax scores")
    assert (s["layers"], s["parameters"], s["nonzeros"], s["operations"]) == ([3, 2, 2], 6 + 2 + 4 + 2, 6, 6)
    # dense layers: 6 and 4 weights at 2 bits, then 4 thresholds at 8 bytes
    assert first["weight_bytes"] == 1.5 and second["weight_bytes"] == 1.0 and s["memory_bytes"] == 2.5 + 32
    assert first["threshold_range"] == [0.5, 0.5] and second["thresholds"] == "per neuron"


def test_show_prints_a_table_and_json(tmp_path):
    header = {"format": "bnnmilp-weights", "version": 1,
              "network": {"layers": [3, 2, 2], "weights": "ternary", "thresholds": "per_neuron", "output": "argmax"}}
    runs.write_network(tmp_path / "net.npz", NET, header)
    r = CliRunner().invoke(main, ["show", str(tmp_path / "net.npz"), "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(json.dumps(network_summary(NET, "ternary", "argmax", "per_neuron")))
    r = CliRunner().invoke(main, ["show", str(tmp_path / "net.npz")])
    assert r.exit_code == 0 and "xnor-popcount" in r.stdout
    assert "parameters 14; non-zero weights 6; operations 6; memory 34 bytes" in r.stdout
