"""The large-neighbourhood search: never a higher exact loss, the output move exact, and `train`'s default."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnmilp.data import Dataset
from bnnmilp.io.runs import load_weights, write_run
from bnnmilp.network import Network
from bnnmilp.training.heuristics.lns import LnsOptions, lns, sample_losses
from bnnmilp.training.pipeline import exact_start, train, whole_milp
from bnnmilp.verification.checkers.claims import verify_weights
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum, forward_exact, loss_of


def exact_loss(net: Network, data: Dataset, loss: str) -> int:
    """The loss by the oracles' own rational forward pass (not bnnmilp's)."""
    w = [W.tolist() for W in net.weights]
    t = [th.tolist() for th in net.thresholds]
    outs = [forward_exact(w, t, x)[-1] for x in data.features.tolist()]
    Y = data.targets(net.weights[-1].shape[0]).tolist()
    return loss_of(tuple(map(tuple, outs)), Y, loss)


def random_start(spec, data, seed):
    rng = np.random.default_rng(seed)
    L = spec.network.layers
    ws, ts = [], []
    for l in range(1, len(L)):
        W = rng.uniform(-1, 1, (L[l], L[l - 1]))
        if spec.network.weights == "binary":
            W = np.where(W >= 0, 1.0, -1.0)
        elif spec.network.weights == "ternary":
            W = np.round(W)
        ws.append(W)
        lam = rng.uniform(-0.5, 0.5)
        ts.append(np.full(L[l], lam) if spec.network.thresholds == "learned" else rng.uniform(-0.5, 0.5, L[l]))
    return exact_start(spec, Network(ws, ts), data, "start")


CASES = list(itertools.product(["continuous", "ternary"], ["learned", "per_neuron"], ["hamming", "error"]))


@pytest.mark.parametrize(("weights", "thresholds", "loss"), CASES)
def test_the_search_never_raises_the_exact_loss(weights, thresholds, loss):
    layers = [3, 3, 2]
    data = grid_instance(7, layers, 24)
    spec = make_spec(layers, weights, thresholds, loss, time_limit=20.0)
    for seed in range(3):
        start = random_start(spec, data, seed)
        assert start.epsilon_feasible
        res = lns(spec, data, start, LnsOptions(batch=6, output_batch=6, patience=6, seed=seed))
        losses = [v for _, v in res.history]
        assert losses == sorted(losses, reverse=True) and len(set(losses)) == len(losses)  # strictly lower
        assert res.best.loss == losses[-1] <= start.loss
        assert res.best.epsilon_feasible
        assert exact_loss(res.best.network, data, loss) == res.best.loss
        assert res.steps >= res.improved and res.improved == len(losses) - 1
        assert res.solution.status in ("optimal", "stalled")
        assert (res.solution.status == "optimal") == (res.best.loss == 0)


@pytest.mark.parametrize("seed", [101, 102, 103])
def test_on_brute_force_instances_the_search_ends_between_the_optimum_and_the_start(seed):
    layers = [2, 2, 2]
    data = grid_instance(seed, layers, 7)
    spec = make_spec(layers, "ternary", "learned", "hamming")
    Y = data.targets(2).tolist()
    optimum = brute_force_optimum(layers, "ternary", "learned", "hamming", data.features.tolist(), Y,
                                  spec.training.epsilon)
    assert optimum is not None
    for s in range(3):
        start = random_start(spec, data, 10 * seed + s)
        res = lns(spec, data, start, LnsOptions(batch=3, output_batch=3, patience=8, seed=s))
        assert optimum <= res.best.loss <= start.loss
        assert exact_loss(res.best.network, data, "hamming") == res.best.loss


def test_the_output_move_fits_an_output_layer_that_a_fixed_hidden_layer_allows():
    """Hidden units that copy the inputs' one-hot blocks, an output layer of zeros (every bit 1: loss
    m (k - 1)): the hidden codes are one-hot per class, so an output layer with loss 0 exists, and the
    output layer with the misclassified samples is the first neighbourhood."""
    k, m = 3, 12
    y = np.arange(m) % k
    X = np.eye(k)[y] * 0.5
    data = Dataset(X, y, "blocks")
    spec = make_spec([k, k, k], "continuous", "per_neuron", "hamming", time_limit=20.0)
    net = Network([np.eye(k), np.zeros((k, k))], [np.full(k, 0.25), np.zeros(k)])
    start = exact_start(spec, net, data, "start")
    assert start.loss == m * (k - 1) and start.epsilon_feasible
    res = lns(spec, data, start, LnsOptions(batch=4, output_batch=m, patience=3))
    assert res.best.loss == 0 and res.solution.status == "optimal" and res.improved == 1
    assert np.array_equal(res.best.network.weights[0], np.eye(k))  # the hidden layer was not freed
    assert np.array_equal(sample_losses(spec, res.best.network, data), np.zeros(m, np.int64))


def test_train_by_default_solves_the_whole_milp_when_it_is_small(tmp_path):
    layers = [2, 2, 1]
    data = grid_instance(5, layers, 8)
    spec = make_spec(layers, "ternary", "learned", "hamming", method="lns", polish="auto")
    assert whole_milp(spec, data.n_samples)
    optimum = brute_force_optimum(layers, "ternary", "learned", "hamming", data.features.tolist(),
                                  data.targets(1).tolist(), spec.training.epsilon)
    res = train(spec, data)
    assert res.status == "optimal" and res.best.loss == optimum and res.start is not None
    assert [st.name for st in res.stages] == ["loss"] and res.bound_scope == "global"
    assert res.spec.training.polish == "none"  # auto, with lns


def test_train_beyond_the_whole_milp_size_searches_and_claims_no_bound(tmp_path):
    layers = [3, 4, 3]
    data = grid_instance(9, layers, 60)
    spec = make_spec(layers, "continuous", "learned", "hamming", method="lns", polish="auto", time_limit=3.0)
    assert not whole_milp(spec, data.n_samples)
    res = train(spec, data)
    assert [st.name for st in res.stages] == ["lns"]
    assert res.loss_bound is None and res.bound_scope.startswith("none")
    assert res.best.loss <= res.start.loss
    assert res.stages[0].solution.info["steps"] >= 1
    assert res.spec.training.polish == "none"
    assert exact_loss(res.best.network, data, "hamming") == res.best.loss
    write_run(res, tmp_path)
    report = verify_weights(load_weights(tmp_path), data)
    assert report["ok"], report["checks"]
    assert report["exact_loss"] == res.best.loss
    cert = (tmp_path / "certificate.json").read_text()
    assert '"bound": null' in cert and "large-neighbourhood search proves no bound" in cert


def test_the_heuristic_network_is_written_unless_the_milp_lowers_the_loss():
    """At equal exact loss the start as STE gave it wins over its margin-made copy (which generalises worse);
    a lower loss wins; either goes on the 2^-24 grid only where that keeps its loss and margin."""
    from bnnmilp.training.pipeline import GRID, evaluate, unless_no_better

    layers = [3, 3, 2]
    data = grid_instance(11, layers, 20)
    spec = make_spec(layers, "continuous", "per_neuron", "hamming")
    made = random_start(spec, data, 1)
    raw = evaluate(spec, Network([w + 1e-9 for w in made.network.weights], made.network.thresholds), data, "ste")
    assert raw.loss == made.loss
    kept = unless_no_better(spec, data, made, raw)
    assert kept.loss == raw.loss and kept.source == "ste"
    for W, W0 in zip(kept.network.weights, raw.network.weights, strict=True):
        assert np.all(np.abs(W - W0) <= GRID / 2) and np.all(np.round(W / GRID) * GRID == W)
    zero = evaluate(spec, Network([np.zeros((3, 3)), np.zeros((2, 3))], [np.zeros(3), np.zeros(2)]), data, "ste")
    assert zero.loss == 20 > made.loss  # all bits 1: one wrong bit per sample
    assert unless_no_better(spec, data, made, zero).source == "start"
    assert unless_no_better(spec, data, made, None).loss == made.loss


def test_the_search_starts_from_the_noisy_grid_and_never_ends_above_the_plain_grids_best():
    """``lns`` starts from the noisy grid's best network; whatever the search does in its time, the written loss
    is at most the plain grid's best (the fallback), even with a search too short to fit anything."""
    from bnnmilp.training.heuristics.ste import SteOptions, search_starts, ste_train
    from bnnmilp.training.pipeline import search_networks

    layers = [3, 4, 3]
    data = grid_instance(9, layers, 60)
    spec = make_spec(layers, "continuous", "learned", "hamming", method="lns", polish="auto", time_limit=0.01)
    Y = data.targets(3)
    starts, plain_best = search_starts(spec, data.features, Y, SteOptions(seed=spec.training.seed))
    plain = ste_train(spec, data.features, Y, SteOptions(noise=0.0, seed=spec.training.seed))
    assert len(starts) == 24 and plain_best is starts[12]
    assert all(np.array_equal(a, b) for a, b in zip(plain_best.weights, plain[0].weights, strict=True))
    assert search_networks(spec, data)[1].weights[0].shape == (4, 3)
    res = train(spec, data)
    assert res.best.loss <= exact_loss(plain_best, data, "hamming") and res.best.loss <= res.start.loss


def test_a_search_that_falls_short_of_the_plain_grid_writes_the_plain_grids_best(repo_root):
    """Digits at 50 per class: the noisy grid's best misses some bits where the plain grid fits them all; a
    search with no time to fit the rest leaves the plain grid's own network written."""
    from bnnmilp.data import load_data
    from bnnmilp.spec import parse_spec

    data = load_data(repo_root / "samples/digits_k50.yaml")
    spec = parse_spec({"network": {"layers": [64, 16, 10], "weights": "continuous"},
                       "solver": {"time_limit": 0.01}})
    res = train(spec, data)
    assert res.start.loss > 0 and res.best.loss == 0 and res.best.source == "ste"
    assert exact_loss(res.best.network, data, "hamming") == 0
