"""Certification of any MILP file: free columns, infinite bounds, exact claims, integrality from the file."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from click.testing import CliRunner

from bnnmilp.cli import main
from bnnmilp.milp.backends import highs
from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import proof_doc
from bnnmilp.verification.proofs.vipr import vipr_text
from tests.verification.checkers.test_checker_soundness import brute_force
from tests.verification.proofs.test_vipr import check_derivations, parse_vipr

FREE = """Minimize
 obj: 3 x + 2 y - z
Subject To
 c1: z - x - y <= 2.3
 c2: z + x <= 7.1
 c3: z + 0.5 y >= -4
Bounds
 0 <= x <= 5
 0 <= y <= 5
 z free
General
 x y
End
"""

PURE = """Maximize
 obj: 5 x + 4 y + 3 w + 7
Subject To
 c1: 2 x + 3 y + w <= 5
 c2: 4 x + y + 2 w <= 11
 c3: 3 x + 4 y + 2 w <= 8
Bounds
 0 <= x <= 10
 0 <= y <= 10
 0 <= w <= 10
General
 x y w
End
"""


def strict(text: str):
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(f"non-strict {c}")))


def test_guzelsoy_ralphs_claim_is_exactly_one(gr):
    tree = branch_and_bound(gr, cutoff=0.999999)  # HiGHS's incumbent, a little below the optimum
    assert tree.status == "optimal"
    assert tree.claimed_exact == 1 and tree.claimed_bound == 1.0  # every leaf proves exactly 1
    doc = proof_doc(gr, tree)
    assert doc["claimed_bound_exact"] == "1"
    rep = check_proof(gr, doc)
    assert rep.ok and rep.claim == 1
    assert parse_vipr(vipr_text(gr, doc))["lb"] == 1


def test_a_pure_integer_file_gets_an_integral_claim_and_rounded_leaves(tmp_path):
    (tmp_path / "pure.lp").write_text(PURE)
    model = highs.read(tmp_path / "pure.lp")
    assert model.objective_integral  # integer columns, integer costs, integer offset: read off the file
    opt = brute_force(model)
    assert opt == -20  # max 5x + 4y + 3w + 7 = 20 at x = 2, w = 1 (negated: a minimisation)
    tree = branch_and_bound(model)
    assert tree.claimed_exact == opt and tree.claimed_bound == float(opt)
    doc = proof_doc(model, tree)
    assert doc["objective_integral"] is True and check_proof(model, doc).ok
    v = parse_vipr(vipr_text(model, doc))
    assert [d[4] for d in v["ders"] if d[0].startswith("leaf")] == ["rnd"] * len(tree.leaves)
    check_derivations(v)


def test_a_free_column_gets_a_finite_exact_claim(tmp_path):
    (tmp_path / "free.lp").write_text(FREE)
    model = highs.read(tmp_path / "free.lp")
    assert not model.objective_integral and (model.col_lower == -float("inf")).sum() == 1
    opt = brute_force(model)
    tree = branch_and_bound(model, propagate=False)  # propagation would bound the free column
    assert tree.status == "optimal" and tree.claimed_exact is not None
    assert tree.claimed_exact <= opt and opt - tree.claimed_exact < Fraction(1, 10**9)
    assert any(lf.exact is not None for lf in tree.leaves)  # reduced costs made to vanish exactly
    doc = proof_doc(model, tree)
    assert check_proof(model, doc).ok
    check_derivations(parse_vipr(vipr_text(model, doc)))


def test_certify_and_verify_a_free_column_file_from_the_shell(tmp_path):
    (tmp_path / "free.lp").write_text(FREE)
    r = CliRunner().invoke(main, ["certify", str(tmp_path / "free.lp"), "--json"])
    assert r.exit_code == 0, r.stderr
    out = strict(r.stdout)
    proof = strict((tmp_path / "free.proof.json").read_text())
    assert out["proven"] is True and Fraction(out["claimed_bound_exact"]) == Fraction(proof["claimed_bound_exact"])
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "free.lp"), "--certificate",
                                  str(tmp_path / "free.proof.json"), "--json"])
    assert r.exit_code == 0 and strict(r.stdout)["ok"] is True
    r = CliRunner().invoke(main, ["certify", str(tmp_path / "free.lp"), "--format", "vipr", "-o",
                                  str(tmp_path / "free.vipr")])
    assert r.exit_code == 0
    check_derivations(parse_vipr((tmp_path / "free.vipr").read_text()))


def test_an_unbounded_model_is_not_certified(tmp_path):
    (tmp_path / "unb.lp").write_text("Minimize\n obj: - z + x\nSubject To\n c1: z - x >= 0\nBounds\n 0 <= x <= 3\n"
                                     " z free\nGeneral\n x\nEnd\n")
    r = CliRunner().invoke(main, ["certify", str(tmp_path / "unb.lp"), "-o", str(tmp_path / "p.json")])
    assert r.exit_code == 1  # no finite optimum: a fact about the model, not a solver failure (exit 3)
    assert r.stderr.strip() == "bnnmilp: error: the model is unbounded: its objective has no lower bound"
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(("text", "word"), [
    ("Minimize\n obj: - x1\nSubject To\n c: x1 - 2 x2 = 0\nGeneral\n x1 x2\nEnd\n", "unbounded"),
    ("Minimize\n obj: x1\nSubject To\n c: 2 x1 = 1\nGeneral\n x1\nEnd\n", "infeasible"),
])
@pytest.mark.parametrize("command", ["certify", "grad"])
def test_infeasible_or_unbounded_is_settled(tmp_path, text, word, command):
    """HiGHS's presolve says "infeasible or unbounded" on both models; a second solve tells which (x1 = 2 x2 is
    feasible and -x1 unbounded below; 2 x1 = 1 has no integer solution)."""
    (tmp_path / "m.lp").write_text(text)
    r = CliRunner().invoke(main, [command, str(tmp_path / "m.lp")])
    assert r.exit_code == 1
    assert r.stderr.strip().endswith(f"is {word}: " + ("its objective has no lower bound" if word == "unbounded"
                                                       else "no point satisfies its rows and bounds"))
