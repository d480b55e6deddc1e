"""The training budget holds in every stage, and a signal during STE leaves STE's best network so far.

No timed assertions (those belong in benchmarks/budgets.py): the STE grid is checked to stop at its deadline
by comparing its networks with those of a grid that runs exactly the epochs before it, and a training run is
checked to end with the labels a budget-limited run must carry.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.spec import parse_spec
from bnnmilp.training.heuristics.ste import SteInterrupted, SteOptions, _grid, ste_train


def _mnist_like(m: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """784 integer pixels 0..255 (a fifth of them lit), labels 0..9: MNIST's shape, the STE grid's slow case."""
    rng = np.random.default_rng(seed)
    X = (rng.random((m, 784)) < 0.2) * rng.integers(0, 256, (m, 784))
    return X.astype(np.float64), np.arange(m) % 10


SPEC = parse_spec({"network": {"layers": [784, 16, 10], "output": "argmax"}})


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for n, o in zip(a, b, strict=True)
               for x, y in zip(n.weights + n.thresholds, o.weights + o.thresholds, strict=True))


def test_a_deadline_already_passed_stops_the_grid_after_its_first_epoch():
    X, y = _mnist_like()
    Y = np.eye(10)[y]
    stopped = _grid(SPEC, X, Y, SteOptions(noise=0.0, deadline=time.monotonic() - 1.0))
    one_epoch = _grid(SPEC, X, Y, SteOptions(noise=0.0, epochs=1))
    two_epochs = _grid(SPEC, X, Y, SteOptions(noise=0.0, epochs=2))
    assert _same(stopped, one_epoch)
    assert not _same(stopped, two_epochs)  # the comparison can tell one epoch from two


def test_an_interrupt_keeps_every_runs_best_epoch_so_far(monkeypatch):
    """A KeyboardInterrupt (what SIGTERM raises) in the third epoch: the grid's networks after two epochs,
    best float loss first."""
    from bnnmilp.training.heuristics import ste

    X, y = _mnist_like()
    Y = np.eye(10)[y]
    calls = {"n": 0}
    real = ste._forward

    def forward(*args):
        calls["n"] += 1
        if calls["n"] == 3:  # one forward pass per epoch without input noise
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(ste, "_forward", forward)
    with pytest.raises(SteInterrupted) as info:
        ste_train(SPEC, X, Y, SteOptions(noise=0.0))
    monkeypatch.setattr(ste, "_forward", real)
    two = _grid(SPEC, X, Y, SteOptions(noise=0.0, epochs=2))
    assert len(info.value.networks) == len(two)
    assert all(any(_same([n], [t]) for t in two) for n in info.value.networks)


def _write(tmp_path, m: int = 100) -> tuple[str, str]:
    X, y = _mnist_like(m)
    np.savez(tmp_path / "d.npz", X=X.astype(np.int64), y=y)
    (tmp_path / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [784, 16, 10], "output": "argmax"}}))
    return str(tmp_path / "net.yaml"), str(tmp_path / "d.npz")


def test_training_784_inputs_within_a_short_budget_writes_its_best_labelled(tmp_path):
    """Without deadlines this run took 25 s whatever the budget (STE's grid and its starts' LPs); the overrun
    itself is measured by benchmarks/budgets.py."""
    net, data = _write(tmp_path)
    r = CliRunner().invoke(main, ["train", net, data, "-o", str(tmp_path / "run"), "--time-limit", "2", "--json"])
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    cert = json.loads((tmp_path / "run/certificate.json").read_text())
    assert out["status"] in ("time_limit", "optimal")
    assert out["budget"] == 2.0
    assert cert["status"] == out["status"]
    assert CliRunner().invoke(main, ["verify", str(tmp_path / "run"), data]).exit_code == 0


@pytest.mark.slow
def test_sigterm_during_ste_writes_ste_best_so_far(tmp_path):
    net, data = _write(tmp_path, 300)
    proc = subprocess.Popen([sys.executable, "-m", "bnnmilp", "train", net, data, "-o", str(tmp_path / "run"),
                             "--time-limit", "300", "--json", "--progress", "plain"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "STE heuristic" in line:
            break
    time.sleep(1.0)  # inside the grid (it runs for tens of seconds here)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, "".join(seen) + err
    assert json.loads(out)["status"] == "interrupted"
    doc = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())
    assert doc["training_loss"]["best_so_far"] is True and doc["training_loss"]["source"] == "ste"
    assert CliRunner().invoke(main, ["verify", str(tmp_path / "run"), data]).exit_code == 0


@pytest.mark.slow
def test_sigterm_during_the_search_ends_it_and_keeps_its_best(tmp_path, repo_root):
    """The search (method lns) used to take SIGTERM inside a step's solve and go on to the next step until its
    time limit (28.5 s in one trial): now the step's solve ends the search, and the best network is written."""
    (tmp_path / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 4, 10]},
                                                       "training": {"epsilon": 0.015625}}))
    data = str(repo_root / "samples/digits_k20.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "bnnmilp", "--progress", "plain", "train",
                             str(tmp_path / "net.yaml"), data, "-o", str(tmp_path / "run"), "--time-limit", "300",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "solving:" in line and "nodes" in line and sum("solving:" in s for s in seen) >= 2:
            break  # a few seconds into the search's steps
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)  # not the 300 s budget
    assert proc.returncode == 143, "".join(seen) + err
    assert json.loads(out)["status"] == "interrupted"
    doc = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())
    assert doc["training_loss"]["best_so_far"] is True
    assert CliRunner().invoke(main, ["verify", str(tmp_path / "run"), data]).exit_code == 0
