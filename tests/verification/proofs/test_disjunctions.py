"""General disjunctions pi x <= k | pi x >= k + 1 in proofs (lemma 5): the engine closes Guzelsoy & Ralphs's
example at the root with one, where every variable disjunction leaves a side open; the checker rejects
disjunctions that do not cover the integer points and multipliers that do not belong to them."""

from __future__ import annotations

import copy
import math
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import proof_doc
from bnnmilp.verification.proofs.vipr import vipr_text
from tests.verification.proofs.test_vipr import VIPRCHK, check_derivations, parse_vipr


@pytest.fixture(scope="module")
def split_proof(gr):
    tree = branch_and_bound(gr, cutoff=0.999999)  # HiGHS's incumbent, a little below the optimum 1
    doc = proof_doc(gr, tree)
    assert tree.status == "optimal" and tree.claimed_exact == 1
    return doc


def test_one_general_disjunction_closes_the_example_at_the_root(gr, split_proof):
    # columns x1, x3, x4, x2 (the file's order of appearance): x1 - x2 <= 0 | x1 - x2 >= 1
    assert split_proof["nodes"] == [[0, None, None, None, None], [1, 0, [[0, 1], [3, -1]], "<=", 0.0],
                                    [2, 0, [[0, 1], [3, -1]], ">=", 1.0]]
    assert split_proof["version"] == 3
    assert [lf["splits"] for lf in split_proof["leaves"]] == [[[1, -1.5]], [[2, 1.5]]]
    rep = check_proof(gr, split_proof)
    assert rep.ok and rep.claim == 1 and rep.leaves == 2, rep.errors


def test_no_variable_disjunction_closes_the_root(gr):
    """Why the engine without general disjunctions needs 5 nodes: for every integer column and every k, one
    child's LP optimum (HiGHS, an independent solve) stays below the optimum 1, so no tree of 3 nodes exists."""
    relaxed = replace(gr, integrality=np.zeros(gr.n_cols, dtype=bool))
    for j in np.flatnonzero(gr.integrality):
        for k in range(int(gr.col_lower[j]), int(gr.col_upper[j])):
            lows = []
            for lo, up in ((gr.col_lower[j], k), (k + 1, gr.col_upper[j])):
                lower, upper = gr.col_lower.copy(), gr.col_upper.copy()
                lower[j], upper[j] = lo, up
                sol = highs.solve(replace(relaxed, col_lower=lower, col_upper=upper), SolveOptions())
                lows.append(sol.objective if sol.status == "optimal" else math.inf)
            assert min(lows) < 1 - 1e-6, (j, k, lows)
    assert len(branch_and_bound(gr, cutoff=0.999999, splits=False).nodes) == 5


def test_the_vipr_export_unsplits_the_general_disjunction(gr, split_proof):
    v = parse_vipr(vipr_text(gr, split_proof))
    check_derivations(v)  # the uns of pi x <= 0 | pi x >= 1 with pi integral on integer columns
    assert v["lb"] == 1
    assert [d[4] for d in v["ders"]].count("uns") == 1


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: [d["nodes"][k].__setitem__(2, [[0, 0.5], [3, -1]]) for k in (1, 2)],  # 0.5 x1 - x2: not integral
     "nonzero integer coefficients, got x0 with 1/2"),
    (lambda d: [d["nodes"][k].__setitem__(2, [[0, 1], [1, -1]]) for k in (1, 2)],  # x3 is continuous
     "nonzero integer coefficients, got x1 with -1"),
    (lambda d: d["nodes"][2].__setitem__(2, [[0, 1], [3, 1]]), "children must branch on the same integer column"),
    (lambda d: d["nodes"][2].__setitem__(2, 0), "children must branch on the same integer column"),
    (lambda d: [d["nodes"][k].__setitem__(2, []) for k in (1, 2)], "an empty disjunction"),
    (lambda d: d["leaves"][0].__setitem__("splits", [[1, 1.5]]), "wrong sign"),
    (lambda d: d["leaves"][0].__setitem__("splits", [[2, 1.5]]), "does not name a general disjunction on its path"),
    (lambda d: d["leaves"][0].__setitem__("splits", [[1, -1.5], [1, -1.5]]), "(once)"),
    (lambda d: d["leaves"][0].__setitem__("splits", {"1": -1.5}), "splits must be a list"),
    (lambda d: d["leaves"][0].pop("splits"), "leaf 1: bound"),  # without it the leaf proves less than 1
    (lambda d: d.update(claimed_bound=1.25, claimed_bound_exact="5/4"), "does not reach the claimed 5/4"),
    (lambda d: d["nodes"][2].__setitem__(4, 2.0), "branches must be x <= k and x >= k + 1"),
])
def test_tampered_disjunctions_are_rejected(gr, split_proof, edit, message):
    d = copy.deepcopy(split_proof)
    edit(d)
    rep = check_proof(gr, d)
    assert not rep.ok and message in rep.errors[0], rep.errors


@pytest.mark.skipif(VIPRCHK is None, reason="viprchk is not built here (set BNNMILP_VIPRCHK to its path)")
def test_viprchk_accepts_the_general_disjunction(gr, split_proof, tmp_path):
    path = tmp_path / "gr.vipr"
    path.write_text(vipr_text(gr, split_proof))
    r = subprocess.run([VIPRCHK, str(path)], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and "Successfully verified" in r.stdout, r.stdout[-500:] + r.stderr[-500:]
