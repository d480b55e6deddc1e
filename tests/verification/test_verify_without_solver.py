"""The exact checkers import no solver: a run's claims and a proof check with highspy unavailable."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from bnnmilp.cli import main

CHECK = """
import sys
sys.modules["highspy"] = None  # any import of the solver now fails
import bnnmilp
run, data, proof = sys.argv[1:]
print(bnnmilp.verify_claims(run, data).ok)
print(bnnmilp.check_proof(run, data, proof).ok)
print("highspy" in sys.modules and sys.modules["highspy"] is not None)
"""


def test_claims_and_proofs_check_without_highspy(repo_root, tmp_path):
    net, data = repo_root / "configs/xor.yaml", repo_root / "samples/xor.yaml"
    assert CliRunner().invoke(main, ["train", str(net), str(data), "-o", str(tmp_path / "run")]).exit_code == 0
    assert CliRunner().invoke(main, ["certify", str(tmp_path / "run"), str(data), "-o",
                                     str(tmp_path / "proof.json")]).exit_code == 0
    p = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "run"), str(data), str(tmp_path / "proof.json")],
                       capture_output=True, text=True, check=False)
    assert p.stdout.split() == ["True", "True", "False"], p.stderr
