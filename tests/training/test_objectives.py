"""Lexicographic stages keep the earlier optimum (brute force), warm starts never make things worse."""

from __future__ import annotations

import numpy as np
import pytest

from bnnmilp.network import Network
from bnnmilp.spec import parse_objective
from bnnmilp.training.pipeline import evaluate, train
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_lexicographic


def spec_with(layers, weights, thresholds, loss, objective, **kw):
    from dataclasses import replace

    s = make_spec(layers, weights, thresholds, loss, **kw)
    return replace(s, training=replace(s.training, objective=objective))


@pytest.mark.parametrize(("layers", "thresholds", "loss", "seed"),
                         [([2, 2, 1], "learned", "hamming", 201), ([2, 2, 1], "per_neuron", "error", 202),
                          ([2, 2, 2], "learned", "hamming", 203), ([2, 2, 1], "zero", "hamming", 204)])
def test_loss_then_min_weight_matches_brute_force(layers, thresholds, loss, seed):
    data = grid_instance(seed, layers, 6)
    Y = data.targets(layers[-1])
    ref = brute_force_lexicographic(layers, "ternary", thresholds, loss, data.features.tolist(), Y.tolist(), 0.0625)
    assert ref is not None
    res = train(spec_with(layers, "ternary", thresholds, loss, ("loss", "min_weight")), data)
    assert res.status == "optimal"
    assert [st.name for st in res.stages] == ["loss", "min_weight"]
    assert res.best.loss == ref[0]
    assert sum(int(np.count_nonzero(w)) for w in res.best.network.weights) == ref[1]
    assert res.best.epsilon_feasible


@pytest.mark.parametrize("weights", ["ternary", "continuous"])
def test_loss_then_margin_keeps_the_loss(weights):
    layers = [2, 2, 1]
    data = grid_instance(205, layers, 8)
    Y = data.targets(1)
    plain = train(make_spec(layers, weights), data)
    lex = train(spec_with(layers, weights, "learned", "hamming", ("loss", "margin")), data)
    assert lex.status == plain.status == "optimal"
    assert lex.best.loss == plain.best.loss
    if weights == "ternary":
        ref = brute_force_lexicographic(layers, "ternary", "learned", "hamming", data.features.tolist(), Y.tolist(),
                                        0.0625)
        assert lex.best.loss == ref[0]
    # the margin stage found positive per-neuron margins, and the written weights keep the loss exactly
    margin = lex.stages[1]
    assert margin.value is not None and -margin.value > 0
    assert lex.best.epsilon_feasible


def test_margin_alone_requires_a_perfect_fit():
    layers = [2, 2, 1]
    data = grid_instance(206, layers, 4)
    res = train(spec_with(layers, "continuous", "learned", "hamming", ("margin",)), data)
    assert res.best is not None and res.best.loss == 0


def test_warm_start_is_never_beaten_by_a_worse_result(repo_root):
    from bnnmilp.data import load_data
    from bnnmilp.spec import load_spec

    spec = load_spec(repo_root / "configs/digits_milp.yaml").with_solver(time_limit=1.0)
    data = load_data(repo_root / "samples/digits_k10.yaml")
    from bnnmilp.training.pipeline import ste_networks

    start = ste_networks(spec, data)[0]
    start_loss = evaluate(spec, start, data, "start").loss
    res = train(spec, data, start=start)
    assert res.best.loss <= start_loss


def test_parse_objective():
    assert parse_objective("lexicographic") == ("loss", "margin")
    assert parse_objective(["loss", "margin", "min_weight"]) == ("loss", "margin", "min_weight")
    for bad in ("speed", ["loss", "loss"], [], 3):
        with pytest.raises(ValueError):
            parse_objective(bad)


def test_ste_is_seeded_and_exactly_evaluated():
    from bnnmilp.training.heuristics.ste import SteOptions, ste_train

    layers = [2, 3, 1]
    data = grid_instance(207, layers, 12)
    spec = make_spec(layers)
    Y = data.targets(1)
    a = ste_train(spec, data.features, Y, SteOptions(epochs=200, restarts=2, seed=5))
    b = ste_train(spec, data.features, Y, SteOptions(epochs=200, restarts=2, seed=5))
    assert all(np.array_equal(x, y) for n, m in zip(a, b, strict=True) for x, y in zip(n.weights, m.weights,
                                                                                         strict=True))
    res = train(spec_with(layers, "continuous", "learned", "hamming", ("loss",), ), data)
    from dataclasses import replace

    ste = train(replace(spec, training=replace(spec.training, method="ste")), data)
    assert ste.status == "heuristic" and ste.best.source == "ste"
    assert ste.best.loss >= res.best.loss  # the exact optimum is a lower bound for any heuristic
    assert isinstance(ste.best.network, Network)


def test_trust_region_keeps_the_global_loss_and_stays_near_the_start():
    from dataclasses import replace

    layers = [2, 3, 1]
    data = grid_instance(208, layers, 10)
    base = spec_with(layers, "continuous", "learned", "hamming", ("loss", "margin"))
    plain = train(base, data)
    spec = replace(base, training=replace(base.training, trust_region=0.1, margin_cap=0.5))
    # started from an optimal network, the margin stage must stay within 0.1 of it
    res = train(spec, data, start=plain.best.network)
    assert res.best.loss == plain.best.loss == res.start.loss
    assert res.loss_bound == plain.loss_bound
    assert res.best.source == "solver"
    for w, w0 in zip(res.best.network.weights, res.start.network.weights, strict=True):
        assert np.max(np.abs(w - w0)) <= 0.1 + 1e-9
    # and the margin stage did improve on the start's margins
    assert res.stages[1].value < 0


def test_trust_region_everywhere_is_a_local_search_without_a_global_bound(tmp_path):
    from dataclasses import replace

    from bnnmilp.io.runs import certificate_doc, load_weights, write_run
    from bnnmilp.verification.checkers.claims import verify_weights

    layers = [2, 3, 1]
    data = grid_instance(209, layers, 10)
    base = spec_with(layers, "continuous", "learned", "hamming", ("loss", "margin"))
    spec = replace(base, training=replace(base.training, trust_region=0.05, trust_region_scope="all"))
    rng = np.random.default_rng(2)
    start = Network([rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, (1, 3))], [np.zeros(3), np.zeros(1)])
    res = train(spec, data, start=start)
    assert res.local_search and res.loss_bound is None
    assert res.best.loss <= res.start.loss  # never worse than the start
    if res.best.source == "solver":
        for w, w0 in zip(res.best.network.weights, res.start.network.weights, strict=True):
            assert np.max(np.abs(w - w0)) <= 0.05 + 1e-9
    assert certificate_doc(res)["bound_scope"].startswith("trust region")
    write_run(res, tmp_path)
    rep = verify_weights(load_weights(tmp_path), data)
    assert rep["ok"] and next(c for c in rep["checks"] if c["name"] == "bound")["ok"] is None
    # without a warm start the same settings keep the global problem and its bound
    plain = train(spec, data)
    assert not plain.local_search and plain.loss_bound is not None
