"""The public API: every exported name resolves, the documented example runs, reports say why."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
import yaml

import bnnmilp


def test_every_public_name_resolves_and_train_is_the_function():
    names = [n for n in bnnmilp.__all__ if n != "__version__"]
    assert sorted(names) == sorted(bnnmilp._EXPORTS) and len(names) == 34
    for n in names:
        obj = getattr(bnnmilp, n)
        assert obj.__doc__, n  # every public name says what it is
    assert callable(bnnmilp.train) and bnnmilp.train.__module__ == "bnnmilp.training.pipeline"
    assert issubclass(bnnmilp.SpecError, ValueError) and issubclass(bnnmilp.SpecError, bnnmilp.BnnMilpError)
    with pytest.raises(AttributeError):
        bnnmilp.no_such_name  # noqa: B018


def test_the_readme_example_runs_and_prints_what_its_comments_say(repo_root, monkeypatch):
    text = (repo_root / "docs/api.md").read_text()
    section = text[:text.index("## Shell pipelines")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(repo_root)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/api.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "optimal 0 0.0"
    assert lines[1] == "True 0"
    assert lines[2] == "[0 1 1 0 0 1 1 0]"
    assert set(eval(lines[3])) <= {"robust", "not_robust"}
    assert lines[4] == "True 0" and lines[5] == "True"
    assert lines[6] == "2 True"
    assert "network.weights" in lines[7] and "binay" in lines[7]


def test_a_tampered_claim_is_reported_with_its_reason(repo_root, tmp_path):
    data = bnnmilp.load_data(repo_root / "samples/xor.yaml")
    spec = bnnmilp.parse_spec({"network": {"layers": [2, 2, 1], "weights": "ternary"},
                               "training": {"method": "milp"}})
    bnnmilp.write_run(bnnmilp.train(spec, data), tmp_path)
    w = tmp_path / "weights.yaml"
    doc = yaml.safe_load(w.read_text())
    doc["training_loss"]["value"] = 3
    w.write_text(yaml.safe_dump(doc))
    rep = bnnmilp.verify_claims(tmp_path, data)
    assert not rep.ok and rep.reasons == ["loss: recorded hamming loss 3, exact 0"]
    proof = bnnmilp.certify(tmp_path, data).proof
    proof["claimed_bound_exact"] = "1"
    assert not bnnmilp.check_proof(tmp_path, data, proof).ok


def test_the_docs_home_page_gives_the_readme_quick_start(repo_root):
    import re

    def commands(text: str) -> list[str]:
        part = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
        return re.findall(r"```bash\n(.*?)\n```", part, re.S)

    quick = commands((repo_root / "README.md").read_text())
    assert len(quick) == 2 and commands((repo_root / "docs/index.md").read_text()) == quick
