"""The class-code construction (training/heuristics/codes.py): exact losses against independent oracles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.data import Dataset, load_data
from bnnmilp.errors import SpecError
from bnnmilp.training.heuristics.codes import Costs, codes_network, group_costs, outputs_of
from bnnmilp.training.pipeline import train
from bnnmilp.verification.proofs.capacity import capacity_proof
from tests.conftest import make_spec
from tests.oracles import forward_exact, loss_of, slacks_exact


@pytest.fixture(scope="module")
def six(repo_root) -> Dataset:
    """Digits, two images of each of the classes 0-5 (12 samples, 64 pixels 0..16)."""
    d = load_data(repo_root / "samples/digits_k2.yaml")
    keep = np.flatnonzero(d.labels < 6)
    return Dataset(d.features[keep], d.labels[keep], d.path)


def exact_loss_and_slack(net, data: Dataset, n_out: int, loss: str, eps: float) -> tuple[int, object]:
    """The oracle: the exact forward pass and slacks of tests/oracles.py (rationals), not the library's."""
    w = [W.tolist() for W in net.weights]
    t = [th.tolist() for th in net.thresholds]
    X = data.features.tolist()
    outs = tuple(tuple(forward_exact(w, t, x)[-1]) for x in X)
    return loss_of(outs, data.targets(n_out).tolist(), loss), min(s for s, _ in slacks_exact(w, t, X, eps))


@pytest.mark.parametrize("thresholds", ["learned", "per_neuron"])
@pytest.mark.parametrize("loss", ["hamming", "error"])
def test_enough_codes_fit_every_sample(six, thresholds, loss):
    """Three hidden bits give eight codes for six classes: every class its own code, loss 0, and every bit
    meets the epsilon margin, in exact arithmetic."""
    spec = make_spec([64, 3, 6], thresholds=thresholds, loss=loss, eps=1 / 64)
    net = codes_network(spec, six)
    got, slack = exact_loss_and_slack(net, six, 6, loss, 1 / 64)
    assert got == 0
    assert slack >= 0


def test_a_wide_layer_uses_only_the_units_it_needs(six):
    """Sixteen hidden units for six classes: three code bits suffice (8 codes > 6 classes), the
    search stops there, and the other thirteen units repeat the first one (the output layer ignores them)."""
    spec = make_spec([64, 16, 6], eps=1 / 64)
    net = codes_network(spec, six)
    assert exact_loss_and_slack(net, six, 6, "hamming", 1 / 64)[0] == 0
    assert len(np.unique(net.weights[0], axis=0)) == 3
    assert np.count_nonzero(np.any(net.weights[1] != 0, axis=0)) == 3


@pytest.mark.parametrize(("loss", "thresholds"), [("hamming", "learned"), ("error", "per_neuron")])
def test_too_few_codes_meet_the_capacity_bound(six, loss, thresholds):
    """Two hidden bits, six classes: the capacity bound (a proof, checked by its own dynamic program) is
    attained, so the construction is optimal here. Hamming: three classes alone, three share the output 0,
    one wrong bit for each of their 6 images; error loss: three alone, three share one class's output, 4
    images wrong."""
    spec = make_spec([64, 2, 6], thresholds=thresholds, loss=loss, eps=1 / 64)
    net = codes_network(spec, six)
    got, slack = exact_loss_and_slack(net, six, 6, loss, 1 / 64)
    bound = capacity_proof(spec, six, list(range(six.n_samples)))
    assert bound is not None
    assert got == int(bound["claimed_bound_exact"]) == (6 if loss == "hamming" else 4)
    assert slack >= 0


def test_a_shared_output_threshold_silences_the_zero_code(six):
    """Error loss, shared thresholds, two bits for six classes: the four codes would give 4 (as with per-neuron
    thresholds), but on the zero code every output unit has pre-activation 0 and with one threshold they all
    fire or none does: one group outputs 0. Best then: 6 (e.g. the group of three at output 0, or a class
    alone there with 2 wrong and the group of three at 4), above the capacity bound 4, which does not see
    thresholds."""
    spec = make_spec([64, 2, 6], loss="error", eps=1 / 64)
    got, slack = exact_loss_and_slack(codes_network(spec, six), six, 6, "error", 1 / 64)
    assert got == 6
    assert slack >= 0


def test_group_costs_closed_form():
    """Two classes (2 and 3 samples, one-hot targets) share a code: output 0 costs 5 wrong bits, e_a 6, e_b 4
    (Hamming); with the error loss 5, 3 and 2; a class alone costs 0."""
    T = np.eye(3, dtype=np.int64)
    counts = np.array([2, 3, 4])
    codes = np.array([1, 1, 0])
    costs = Costs(T, counts, "hamming")
    assert group_costs(codes, costs) == 4
    assert outputs_of(codes, costs, zero_code=False).tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert group_costs(codes, Costs(T, counts, "error")) == 2
    # with one unit left, the pair could still be split: the cost hoped for is 0
    assert group_costs(codes, costs, left=1) == 0
    # one group must output 0: the pair (5 instead of 4) rather than the lone class (4 instead of 0)
    assert group_costs(codes, costs, zero_code=True) == 5
    assert outputs_of(codes, costs, zero_code=True).tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 1]]


def test_not_applicable_and_inseparable_are_spec_errors():
    xor = Dataset(np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]), np.array([0, 0, 1, 1]), "xor")
    with pytest.raises(SpecError, match=r"training\.warm_start.*continuous weights"):
        codes_network(make_spec([2, 2, 2], weights="binary"), xor)
    with pytest.raises(SpecError, match=r"training\.warm_start.*one hidden layer"):
        codes_network(make_spec([2, 2, 2, 2]), xor)
    with pytest.raises(SpecError, match=r"training\.warm_start.*method ste trains STE alone"):
        make_spec([2, 2, 2], method="ste").with_training(warm_start="codes")
    # XOR: the one bipartition of its two classes is not linearly separable
    with pytest.raises(SpecError, match="no bipartition"):
        codes_network(make_spec([2, 2, 2], thresholds="per_neuron"), xor)


def test_train_starts_from_the_codes(six):
    """``warm_start: codes`` hands the network to the method (here lns): the exact loss is 0 from the start."""
    spec = make_spec([64, 3, 6], eps=1 / 64, method="lns").with_training(warm_start="codes")
    said: list[str] = []
    res = train(spec, six, announce=said.append)
    assert res.best is not None and res.best.loss == 0 and res.best.epsilon_feasible
    assert res.start is not None and res.start.loss == 0
    assert any(s.startswith("class codes") for s in said)
    assert not any(s.startswith("STE") for s in said)


def test_cli_warm_start_codes(tmp_path, repo_root):
    spec = tmp_path / "narrow.yaml"
    spec.write_text("network: {layers: [64, 2, 10]}\ntraining: {epsilon: 0.015625, warm_start: codes}\n"
                    "solver: {time_limit: 5}\n")
    r = CliRunner().invoke(main, ["train", str(spec), str(repo_root / "samples/digits_k1.yaml"),
                                  "-o", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    # ten classes through four codes: three alone, seven share the zero output (one wrong bit each); the
    # capacity bound proves 7 optimal, although HiGHS's bound stays 0 in its 5 s
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert (doc["objective"], doc["source"], doc["proven_bound"], doc["proven_optimal"]) == (7, "start", "7", True)
    # the start attains the capacity bound, so neither the search nor the MILP ran
    assert (doc["status"], doc["stages"], doc["solver"]) == ("optimal", [], "none")
    assert "is the capacity bound: optimal, nothing to search" in r.output
    bad = tmp_path / "binary.yaml"
    bad.write_text("network: {layers: [64, 2, 10], weights: binary}\ntraining: {warm_start: codes}\n")
    r = CliRunner().invoke(main, ["train", str(bad), str(repo_root / "samples/digits_k1.yaml"),
                                  "-o", str(tmp_path / "run2")])
    assert r.exit_code == 2
    assert "training.warm_start" in r.output and "continuous weights" in r.output
    assert "Traceback" not in r.output
