"""One-vs-one ensembles: pool and Dask agree, the vote is deterministic, robustness matches enumeration."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.io.runs import load_weights
from bnnmilp.network.ensemble import vote_predictions
from bnnmilp.spec import parse_spec
from bnnmilp.verification.robustness.robust import RobustOptions, verify_robust_ensemble


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 classes in 2 integer inputs, 9 samples."""
    d = tmp_path_factory.mktemp("ens")
    rng = np.random.default_rng(3)
    X = rng.integers(0, 4, size=(9, 2)).tolist()
    (d / "data.yaml").write_text(yaml.safe_dump({"features": X, "labels": [0, 1, 2] * 3}))
    (d / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [2, 2, 3], "weights": "ternary",
                                                            "thresholds": "per_neuron"},
                                                "training": {"epsilon": "auto"}, "solver": {"time_limit": 30}}))
    return d


def train_ens(tiny, out, *extra):
    r = CliRunner().invoke(main, ["train", str(tiny / "net.yaml"), str(tiny / "data.yaml"), "-o", str(out),
                                  "--ensemble", "ovo", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.slow
def test_pool_and_dask_train_identical_ensembles(tiny, tmp_path):
    pytest.importorskip("distributed")
    a = train_ens(tiny, tmp_path / "pool", "--workers", "2")
    b = train_ens(tiny, tmp_path / "dask", "--workers", "2", "--scheduler", "local")
    assert a["members"] == b["members"] == 3 and a["status"] == b["status"] == "optimal"
    ea, eb = load_weights(tmp_path / "pool"), load_weights(tmp_path / "dask")
    assert ea.classes == eb.classes == [(0, 1), (0, 2), (1, 2)]
    X = np.array(yaml.safe_load((tiny / "data.yaml").read_text())["features"], float)
    grid = np.array(list(itertools.product(range(4), repeat=2)), float)
    assert np.array_equal(ea.predict(grid), eb.predict(grid))
    for ma, mb in zip(ea.members, eb.members, strict=True):  # the same exact training loss per member
        assert ma.doc["training_loss"]["value"] == mb.doc["training_loss"]["value"]
    assert (tmp_path / "pool/members/0_1/weights.yaml").exists()
    assert (tmp_path / "pool/members/1_2/certificate.json").exists()
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "pool"), str(tiny / "data.yaml"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["members"] == 3
    r = CliRunner().invoke(main, ["predict", str(tmp_path / "pool"), str(tiny / "data.yaml"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["predictions"] == ea.predict(X).tolist()


def test_vote_ties_go_to_the_lowest_class():
    v = np.array([[1, 1, 1], [0, 2, 2], [0, 1, 2], [2, 0, 2]])
    assert vote_predictions(v).tolist() == [0, 1, 2, 0]


def test_a_tampered_member_is_a_false_claim(tiny, tmp_path):
    train_ens(tiny, tmp_path / "run")
    doc = yaml.safe_load((tmp_path / "run/weights.yaml").read_text())
    doc["members"][1]["weights"]["training_loss"]["value"] += 1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "bad.yaml"), str(tiny / "data.yaml"), "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["failed_members"] == [[0, 2]]


@pytest.mark.parametrize(("eps", "norm"), [(1, "inf"), (1, "1"), (2, "1")])
def test_ensemble_robustness_matches_enumeration(tiny, tmp_path, eps, norm):
    train_ens(tiny, tmp_path / "run")
    ens = load_weights(tmp_path / "run")
    X = np.array(yaml.safe_load((tiny / "data.yaml").read_text())["features"], float)
    res = verify_robust_ensemble(ens, X, np.zeros(len(X), int),
                                 RobustOptions(eps=eps, norm=norm, domain="integer", bounds=(0, 3)))
    for r, x in zip(res, X, strict=True):
        c0 = int(ens.predict(x[None])[0])
        ball = [np.array(p, float) for p in itertools.product(range(4), repeat=2)
                if (np.abs(np.array(p) - x).max() if norm == "inf" else np.abs(np.array(p) - x).sum()) <= eps]
        truth = all(int(ens.predict(p[None])[0]) == c0 for p in ball)
        assert r.answer != "unknown"
        assert (r.answer == "robust") == truth, (x, r)
        if r.counterexample is not None:
            assert int(ens.predict(np.array([r.counterexample]))[0]) != c0


def test_ensemble_robustness_runs_as_jobs_on_a_pool(tiny, tmp_path):
    """--workers applies to ensembles too: the same answers as the library's in-process loop."""
    train_ens(tiny, tmp_path / "run")
    ens = load_weights(tmp_path / "run")
    X = np.array(yaml.safe_load((tiny / "data.yaml").read_text())["features"], float)
    y = np.array(yaml.safe_load((tiny / "data.yaml").read_text())["labels"], int)
    ref = verify_robust_ensemble(ens, X, y, RobustOptions(eps=1, norm="1", domain="integer", bounds=(0, 3)))
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "run"), str(tiny / "data.yaml"), "--robust", "--eps", "1",
                                  "--norm", "1", "--domain", "integer", "--bounds", "0:3", "--workers", "2", "--json",
                                  "-o", str(tmp_path / "out")])
    got = json.loads(r.stdout)["results"]
    assert [(g["answer"], g["counterexample"]) for g in got] == [(e.answer, e.counterexample) for e in ref]
    assert len(list((tmp_path / "out/jobs").glob("*.json"))) == len(X)


def _random_member(rng, d0: int):
    from bnnmilp.network import Network

    return Network([rng.integers(-1, 2, size=(3, d0)).astype(float), rng.integers(-1, 2, size=(1, 3)).astype(float)],
                   [rng.integers(-2, 3, size=3).astype(float) + 0.5, rng.integers(-1, 2, size=1).astype(float) + 0.5])


@pytest.mark.parametrize("seed", range(6))
def test_the_vote_gap_bound_never_rules_out_a_rival_that_can_win(seed):
    """Brute force over a small integer box: wherever the bound says a rival cannot win, it wins nowhere; and
    where every member's bit is fixed on the box, the bound is the exact vote difference."""
    from bnnmilp.network.ensemble import votes
    from bnnmilp.verification.robustness.robust import member_bit_ranges, vote_gap_bound

    rng = np.random.default_rng(seed)
    classes = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    nets = [_random_member(rng, 3) for _ in classes]
    lo, hi = np.zeros(3), np.full(3, 2.0)
    pts = np.array(list(itertools.product(range(3), repeat=3)), float)
    v = votes(nets, classes, pts, 4)
    won = vote_predictions(v)
    bits = member_bit_ranges(nets, lo, hi)
    for ref in range(4):
        for rival in range(4):
            if rival == ref:
                continue
            gap = vote_gap_bound(bits, classes, rival, ref)
            assert gap >= int((v[:, rival] - v[:, ref]).max())  # an upper bound on the true difference
            if gap < 0 or (gap == 0 and rival > ref):  # ruled out: the rival wins at no point of the box
                assert not np.any(won == rival)
    point = np.array([[1.0, 1.0, 1.0]])
    fixed = member_bit_ranges(nets, point[0], point[0])
    assert np.array_equal(fixed[:, 0], fixed[:, 1])
    pv = votes(nets, classes, point, 4)[0]
    assert all(vote_gap_bound(fixed, classes, r, q) == pv[r] - pv[q] for r in range(4) for q in range(4) if r != q)


def test_sampled_counterexamples_are_genuine(tiny, tmp_path):
    from bnnmilp.verification.robustness.replay import in_perturbation_set
    from bnnmilp.verification.robustness.robust import falsify_ensemble, search_box

    train_ens(tiny, tmp_path / "run")
    ens = load_weights(tmp_path / "run")
    X = np.array(yaml.safe_load((tiny / "data.yaml").read_text())["features"], float)
    found = 0
    for norm, eps in (("inf", 1), ("1", 2)):
        opts = RobustOptions(eps=eps, norm=norm, domain="integer", bounds=(0, 3))
        for i, x in enumerate(X):
            lo, hi = search_box(x, opts)
            ref = int(ens.predict(x[None])[0])
            got = falsify_ensemble(ens, x, ref, opts, lo, hi, np.random.default_rng(i))
            if got is not None:
                xp, _, winner = got
                assert in_perturbation_set(xp, x, opts, lo, hi)[0]
                assert int(ens.predict(xp[None])[0]) == winner != ref
                found += 1
    assert found > 0


@pytest.mark.slow
def test_sigterm_ends_an_ensemble_robustness_run_and_keeps_its_finished_queries(repo_root, tmp_path):
    """SIGTERM was ignored here (each solver took the signal and the next rival's solve went on): now the run
    ends with 143, the finished queries stay in OUT/jobs, and a rerun resumes from them."""
    import signal
    import subprocess
    import sys

    doc = yaml.safe_load((repo_root / "samples/digits_k10.yaml").read_text())
    keep = [i for i, y in enumerate(doc["labels"]) if y < 4]
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"features": [doc["features"][i] for i in keep],
                                                     "labels": [doc["labels"][i] for i in keep]}))
    (tmp_path / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [64, 16, 4]},
                                                       "training": {"epsilon": 0.015625}}))
    r = CliRunner().invoke(main, ["train", str(tmp_path / "net.yaml"), str(tmp_path / "d.yaml"), "-o",
                                  str(tmp_path / "ens"), "--ensemble", "ovo", "--time-limit", "3"])
    assert r.exit_code == 0, r.stderr
    test = yaml.safe_load((repo_root / "samples/digits_test.yaml").read_text())  # queries take 0.1 s: ask many
    keep = [i for i, y in enumerate(test["labels"]) if y < 4]
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"features": [test["features"][i] for i in keep],
                                                     "labels": [test["labels"][i] for i in keep]}))
    args = [sys.executable, "-m", "bnnmilp", "--progress", "plain", "verify", str(tmp_path / "ens"),
            str(tmp_path / "t.yaml"), "--robust", "--eps", "3", "--engine", "milp", "--time-limit", "60", "-o",
            str(tmp_path / "out")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the first progress line (every 5 s): some queries are done, most are not
        if "verifying: " in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "bnnmilp: terminated"
    assert not (tmp_path / "out/robustness.json").exists()
    kept = len(list((tmp_path / "out/jobs").glob("*.json")))
    assert 2 <= kept < len(keep)
    again = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    assert again.returncode in (0, 1), again.stderr
    assert len(json.loads((tmp_path / "out/robustness.json").read_text())["results"]) == len(keep)


def test_a_member_takes_its_share_of_the_time_left():
    from bnnmilp.training.ensemble import member_budget

    b = {"deadline": 100.0, "count": 45, "workers": 2}
    assert member_budget({**b, "index": 0}, now=40.0) == 60.0 * 2 / 45
    assert member_budget({**b, "index": 43}, now=70.0) == 30.0  # the last two run side by side
    assert member_budget({**b, "index": 44}, now=70.0) == 30.0
    assert member_budget({**b, "index": 10}, now=101.0) == 0.05  # past the deadline: a token budget, labelled
    assert member_budget(None) is None


def test_a_deadline_leaves_the_members_jobs_the_same(tiny):
    """A rerun with another --time-limit resumes the members already trained: the budget is not in the key."""
    from bnnmilp.spec import load_spec
    from bnnmilp.training.ensemble import member_jobs

    spec, path = load_spec(tiny / "net.yaml"), tiny / "data.yaml"
    plain = member_jobs(spec, path)
    timed = member_jobs(spec.with_solver(budget=5.0), path, deadline=1e9, workers=2)
    assert [j.key for j in plain] == [j.key for j in timed]
    assert [j.payload["budget"]["index"] for j in timed] == list(range(len(timed)))
    assert all("budget" not in j.payload for j in plain)


@pytest.mark.parametrize(("network", "expected"), [
    ({"layers": [784, 16, 10], "weights": "ternary"}, "ovo"),
    ({"layers": [256, 4, 3], "weights": "binary"}, "ovo"),
    ({"layers": [255, 4, 3], "weights": "ternary"}, None),  # below the measured scale
    ({"layers": [784, 16, 2], "weights": "ternary"}, None),  # two classes: one member is the network
    ({"layers": [784, 16, 10], "weights": "continuous"}, "ovo"),
    ({"layers": [64, 16, 10], "weights": "ternary"}, None),  # the digits: not measured
    ({"layers": [784, 16, 10], "weights": "ternary", "output": "argmax"}, None),  # asked for one network
])
def test_the_default_picks_the_ensemble_where_it_was_measured_best(network, expected):
    from bnnmilp.training.ensemble import default_ensemble

    assert default_ensemble(parse_spec({"network": network})) == expected


def test_a_spec_naming_only_a_ternary_mnist_network_trains_an_ensemble(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((12, 784)) < 0.2) * rng.integers(0, 256, (12, 784))
    np.savez(tmp_path / "d.npz", X=X.astype(np.int64), y=np.arange(12) % 3)
    (tmp_path / "net.yaml").write_text(yaml.safe_dump({"network": {"layers": [784, 4, 3], "weights": "ternary"}}))
    args = ["train", str(tmp_path / "net.yaml"), str(tmp_path / "d.npz"), "--time-limit", "20", "--json"]
    r = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "auto")])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["members"] == 3
    assert yaml.safe_load((tmp_path / "auto/weights.yaml").read_text())["format"] == "bnnmilp-ensemble"
    r = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "one"), "--ensemble", "none"])
    assert r.exit_code == 0, r.stderr
    assert "members" not in json.loads(r.stdout)
    assert yaml.safe_load((tmp_path / "one/weights.yaml").read_text())["format"] == "bnnmilp-weights"
