"""Every answer in the README of Sakai's verification set, reproduced from the shell: import, then
``verify --robust`` (argmax output, ties adversarial, integer pixels 0..255). Counterexamples are replayed
exactly and through Chainer's own float32 forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from tests.io.importers.test_chainer import SAKAI, images, reference_logits

# (data set, image, label, norm, eps, answer) from ../shared/external/sakai-bnn/README.md
ANSWERS = [
    ("mnist_back_image", 32, 3, "inf", 1, "robust"),
    ("mnist_back_image", 32, 3, "inf", 2, "not_robust"),
    ("mnist_back_image", 32, 3, "1", 3, "robust"),
    ("mnist_back_image", 32, 3, "1", 4, "not_robust"),
    ("mnist_rot", 8, 1, "inf", 1, "not_robust"),
    ("mnist_rot", 8, 1, "1", 2, "robust"),
    ("mnist_rot", 8, 1, "1", 3, "not_robust"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sakai")
    out = {}
    for ds, idx, label in {(a[0], a[1], a[2]) for a in ANSWERS}:
        r = CliRunner().invoke(main, ["import", str(SAKAI / f"models/{ds}.npz"), "-o", str(d / f"{ds}.npz")])
        assert r.exit_code == 0, r.output
        X, names = images(ds)
        x = X[names.index(f"bnn_{ds}_{idx}_label{label}.png")]
        np.savez(d / f"{ds}_{idx}.npz", X=x[None, :], y=np.array([label]))
        out[ds] = (d / f"{ds}.npz", d / f"{ds}_{idx}.npz", x)
    return out


@pytest.mark.parametrize(("ds", "idx", "label", "norm", "eps", "answer"), ANSWERS)
def test_sakais_known_answers(files, ds, idx, label, norm, eps, answer):
    net, data, x = files[ds]
    r = CliRunner().invoke(main, ["verify", str(net), str(data), "--robust", "--eps", str(eps), "--norm", norm,
                                  "--domain", "integer", "--bounds", "0:255", "--against", "label", "--json"])
    assert r.exit_code == (0 if answer == "robust" else 1), r.output
    (res,) = json.loads(r.stdout)["results"]
    assert res["answer"] == answer and res["reference"] == [label]
    if answer == "not_robust":
        # eps is the smallest adversarial budget here (eps - 1 is robust): the counterexample sits exactly at eps
        xp = np.array(res["counterexample"])
        d = np.abs(xp - x)
        assert res["distance"] == str(eps) and (d.max() if norm == "inf" else d.sum()) == eps
        assert np.all(xp == np.round(xp)) and xp.min() >= 0 and xp.max() <= 255
        logits = reference_logits(ds, xp[None, :])[0]  # the test's own float32 Chainer forward pass
        assert any(logits[k] >= logits[label] for k in range(10) if k != label)
        assert res["float_check"].startswith("adversarial in Chainer float32 too")
    else:
        assert res["method"] in ("enum", "interval", "milp")


@pytest.mark.parametrize(("ds", "idx", "label", "norm", "eps", "answer"), ANSWERS)
def test_sakais_known_answers_on_two_processes(files, ds, idx, label, norm, eps, answer, monkeypatch):
    """``--split 2`` (every enumeration split, however small): the same answers, the enumerations on two
    processes, the counterexamples at the optimum."""
    from bnnmilp.verification.robustness import split

    if not split.usable(2, split.SPLIT_MIN):
        pytest.skip("needs fork (Linux)")
    from bnnmilp.verification.robustness import robust

    monkeypatch.setattr(split, "SPLIT_MIN", 0)
    monkeypatch.setattr(robust, "FALSIFY_POINTS", 0)  # the enumeration, not the sampled points
    net, data, x = files[ds]
    r = CliRunner().invoke(main, ["verify", str(net), str(data), "--robust", "--eps", str(eps), "--norm", norm,
                                  "--domain", "integer", "--bounds", "0:255", "--against", "label", "--split", "2",
                                  "--json"])
    assert r.exit_code == (0 if answer == "robust" else 1), r.output
    (res,) = json.loads(r.stdout)["results"]
    assert res["answer"] == answer and res["method"] in ("enum", "search", "interval")
    assert ("on 2 processes" in res["note"]) == (res["method"] == "enum")
    if answer == "robust":
        assert res["method"] == "enum"
    if answer == "not_robust":
        d = np.abs(np.array(res["counterexample"]) - x)
        assert (d.max() if norm == "inf" else d.sum()) == eps


@pytest.mark.parametrize(("ds", "norm", "smallest"), [("mnist_back_image", "inf", 2), ("mnist_back_image", "1", 4),
                                                      ("mnist_rot", "inf", 1), ("mnist_rot", "1", 3)])
def test_smallest_perturbations(files, ds, norm, smallest):
    """--min-eps: every smaller budget proven robust by enumeration, a counterexample at the optimum."""
    net, data, x = files[ds]
    r = CliRunner().invoke(main, ["verify", str(net), str(data), "--robust", "--min-eps", "--norm", norm,
                                  "--domain", "integer", "--bounds", "0:255", "--against", "label", "--json"])
    (res,) = json.loads(r.stdout)["results"]
    assert r.exit_code == 1 and res["answer"] == "not_robust" and res["distance"] == str(smallest)
    assert res["min_eps_bound"] == smallest and res["method"] == "enum"
    d = np.abs(np.array(res["counterexample"]) - x)
    assert (d.max() if norm == "inf" else d.sum()) == smallest
