"""Soundness of the proof checker, as a property: an (edited) proof is accepted only if its claim is true.

Random tiny MILPs (integer columns in small boxes, at most one continuous column, possibly free) and
tiny BNN trainings are proven by the engine; hypothesis then edits claim, multipliers, tree, bounds and
model (an adversary re-stamps the model's sha256). The truth is decided by brute force in exact
rational arithmetic: every integer point, and for the continuous column the exact interval of its
feasible values. The checker must never accept a claim above that optimum.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bnnmilp import formulations
from bnnmilp.milp.model import INF, ModelBuilder, StandardModel
from bnnmilp.verification.checkers.proofs import check_proof
from bnnmilp.verification.proofs.bnb import branch_and_bound
from bnnmilp.verification.proofs.proof import proof_doc
from bnnmilp.verification.proofs.symmetry import automorphisms
from tests.conftest import grid_instance, make_spec
from tests.oracles import brute_force_optimum

F = Fraction


def brute_force(model: StandardModel) -> Fraction | None:
    """Exact optimum (None: infeasible; -inf is excluded by the instances). At most one continuous column."""
    ints = np.flatnonzero(model.integrality).tolist()
    cont = np.flatnonzero(~model.integrality).tolist()
    assert len(cont) <= 1
    ranges = [range(math.ceil(model.col_lower[j]), math.floor(model.col_upper[j]) + 1) for j in ints]
    A = np.zeros((model.n_rows, model.n_cols))
    for i in range(model.n_rows):
        for p in range(model.indptr[i], model.indptr[i + 1]):
            A[i, model.indices[p]] += model.data[p]
    best = None
    for point in itertools.product(*ranges):
        lo = F(float(model.col_lower[cont[0]])) if cont and math.isfinite(model.col_lower[cont[0]]) else None
        up = F(float(model.col_upper[cont[0]])) if cont and math.isfinite(model.col_upper[cont[0]]) else None
        ok = True
        for i in range(model.n_rows):
            act = sum((F(float(A[i, j])) * v for j, v in zip(ints, point, strict=True)), F(0))
            a = F(float(A[i, cont[0]])) if cont else F(0)
            L, U = model.row_lower[i], model.row_upper[i]
            for side, sense in ((L, ">="), (U, "<=")):
                if not math.isfinite(side):
                    continue
                rest = F(float(side)) - act  # a z (sense) rest
                if a == 0:
                    ok &= (rest <= 0) if sense == ">=" else (rest >= 0)
                elif (a > 0) == (sense == ">="):
                    lo = rest / a if lo is None else max(lo, rest / a)
                else:
                    up = rest / a if up is None else min(up, rest / a)
        if not ok or (lo is not None and up is not None and lo > up):
            continue
        val = F(float(model.offset)) + sum((F(float(model.c[j])) * v for j, v in zip(ints, point, strict=True)), F(0))
        if cont:
            cz = F(float(model.c[cont[0]]))
            z = (lo if cz > 0 else up) if cz != 0 else F(0)
            if z is None:
                return F(-10**9)  # unbounded: the strategies assume this away
            val += cz * z
        best = val if best is None else min(best, val)
    return best


@st.composite
def milps(draw) -> StandardModel:
    n_int = draw(st.integers(1, 3))
    cont = draw(st.sampled_from(["none", "boxed", "free"]))
    m = draw(st.integers(1, 3))
    half = st.integers(-6, 6).map(lambda k: k / 2)
    b = ModelBuilder("random")
    lo = [draw(st.integers(-2, 0)) for _ in range(n_int)]
    up = [lo[j] + draw(st.integers(0, 3)) for j in range(n_int)]
    xi = b.add_vars("x", (n_int,), np.array(lo, float), np.array(up, float), True)
    cols = list(xi)
    if cont != "none":
        cols += list(b.add_vars("z", (1,), -INF if cont == "free" else -2.5, INF if cont == "free" else 3.0))
    A = np.array([[draw(half) for _ in cols] for _ in range(m)])
    kinds = [draw(st.sampled_from([">=", "<=", "=", "range"])) for _ in range(m)]
    rhs = np.array([draw(half) for _ in range(m)])
    L = np.array([r if k in (">=", "=", "range") else -INF for r, k in zip(rhs, kinds, strict=True)])
    U = np.array([r + (2.0 if k == "range" else 0.0) if k in ("<=", "=", "range") else INF
                  for r, k in zip(rhs, kinds, strict=True)])
    b.add_rows("r", (m,), np.broadcast_to(np.array(cols), (m, len(cols))), A, L, U)
    integral = draw(st.booleans())
    c = [draw(st.integers(-3, 3)) if integral else draw(half) for _ in xi]
    if cont != "none":
        c.append(0.0 if integral else draw(half))
    b.set_objective(np.array(cols), np.array(c, float), offset=float(draw(st.integers(-2, 2))))
    model = b.build()
    model.objective_integral = model.objective_integral_by_structure()
    return model


def _claim(doc) -> Fraction | None:
    vals = []
    for key in ("claimed_bound", "claimed_bound_exact"):
        v = doc.get(key)
        if v is None:
            continue
        try:
            q = F(v) if isinstance(v, (str, int)) and not isinstance(v, bool) else F(float(v))
        except (ValueError, TypeError, OverflowError, ZeroDivisionError):
            return None
        vals.append(q)
    return max(vals) if vals else None


EDITS = ["claim_tiny", "claim_small", "claim_one", "claim_exact", "claim_string_up", "multiplier_scale",
         "multiplier_sign", "multiplier_drop", "multiplier_add", "branch_shift", "branch_sense", "branch_column",
         "drop_leaf", "drop_subtree", "bound_widen", "coef_change", "rhs_change", "integral_flag", "cost_change",
         "claim_nan", "claim_inf", "leaf_duplicate", "node_cycle", "derived_tighten", "derived_row", "derived_sense",
         "derived_node", "derived_drop", "derived_empty", "duals_scale", "split_coef", "split_multiplier",
         "split_drop"]


def _edit(draw, model: StandardModel, doc: dict, kind: str) -> tuple[StandardModel, dict]:
    d = copy.deepcopy(doc)
    restamp = False
    claim = _claim(d)
    if kind in ("claim_tiny", "claim_small", "claim_one"):
        delta = {"claim_tiny": 2.0 ** -40, "claim_small": 0.01, "claim_one": 1.0}[kind]
        d["claimed_bound"] = float(d["claimed_bound"]) + delta
        d.pop("claimed_bound_exact", None)
    elif kind == "claim_exact":
        d["claimed_bound_exact"] = f"{claim.numerator * 10**12 + 1}/{claim.denominator * 10**12}"
    elif kind == "claim_string_up":
        d["claimed_bound"] = str(math.floor(claim) + 1)
    elif kind == "claim_nan":
        d["claimed_bound"] = float("nan")
    elif kind == "claim_inf":
        d["claimed_bound"] = float("-inf")
    elif kind.startswith("multiplier") and d["leaves"]:
        lf = d["leaves"][draw(st.integers(0, len(d["leaves"]) - 1))]
        if kind == "multiplier_add" or not lf["y"]:
            lf["y"].append([draw(st.integers(0, model.n_rows - 1)), draw(st.sampled_from([1.0, -1.0, 0.5, 1e6]))])
        else:
            k = draw(st.integers(0, len(lf["y"]) - 1))
            v = F(lf["y"][k][1])
            if kind == "multiplier_drop":
                lf["y"].pop(k)
            else:
                lf["y"][k][1] = float(v * (-1 if kind == "multiplier_sign" else draw(st.sampled_from([2, 0.5, 1.001]))))
        d["claimed_bound"] = float(d["claimed_bound"]) + draw(st.sampled_from([0.0, 0.25, 1.0]))
        d.pop("claimed_bound_exact", None)
    elif kind.startswith("branch") and len(d["nodes"]) > 1:
        node = d["nodes"][draw(st.integers(1, len(d["nodes"]) - 1))]
        if kind == "branch_shift":
            node[4] += draw(st.sampled_from([-1, 1, 0.5]))
        elif kind == "branch_sense":
            node[3] = "<=" if node[3] == ">=" else ">="
        else:
            node[2] = draw(st.integers(0, model.n_cols - 1))
        d["claimed_bound"] = float(d["claimed_bound"]) + draw(st.sampled_from([0.0, 1.0]))
    elif kind in ("drop_leaf", "drop_subtree") and len(d["leaves"]) > 1:
        lf = d["leaves"].pop(draw(st.integers(0, len(d["leaves"]) - 1)))
        if kind == "drop_subtree":
            d["nodes"] = [n for n in d["nodes"] if n[0] != lf["node"]]
    elif kind == "duals_scale" and d.get("duals"):  # a reduced-cost fixing's multipliers changed
        vec = d["duals"][draw(st.integers(0, len(d["duals"]) - 1))]
        if vec:
            pair = vec[draw(st.integers(0, len(vec) - 1))]
            pair[1] = float(F(pair[1]) * draw(st.sampled_from([-1, 2, F(1, 2)])))
        d["claimed_bound"] = float(d["claimed_bound"]) + draw(st.sampled_from([0.0, 1.0]))
    elif kind.startswith("derived") and d.get("derived"):
        k = draw(st.integers(0, len(d["derived"]) - 1))
        step = d["derived"][k]  # [node, column, sense, value, row]
        if kind == "derived_tighten":
            step[3] += draw(st.sampled_from([-1.0, -0.5, -2.0 ** -30])) * (1 if step[2] == "<=" else -1)
        elif kind == "derived_row":
            step[4] = draw(st.integers(-1, model.n_rows - 1))
        elif kind == "derived_sense":
            step[2] = "<=" if step[2] == ">=" else ">="
        elif kind == "derived_node":
            step[0] = d["nodes"][draw(st.integers(0, len(d["nodes"]) - 1))][0]
        elif kind == "derived_drop":
            d["derived"].pop(k)
        else:  # a leaf that claims its box is empty, with its multipliers gone
            lf = d["leaves"][draw(st.integers(0, len(d["leaves"]) - 1))]
            lf["kind"], lf["y"] = "empty", []
        d["claimed_bound"] = float(d["claimed_bound"]) + draw(st.sampled_from([0.0, 1.0]))
    elif kind.startswith("split_") and any(isinstance(n[2], list) for n in d["nodes"]):  # a general disjunction
        general = [n for n in d["nodes"] if isinstance(n[2], list)]
        node = general[draw(st.integers(0, len(general) - 1))]
        with_split = [lf for lf in d["leaves"] if lf.get("splits")]
        if kind == "split_coef":
            pair = node[2][draw(st.integers(0, len(node[2]) - 1))]
            pair[1] = draw(st.sampled_from([2, -1, 0.5, 0])) * pair[1]
        elif with_split:
            lf = with_split[draw(st.integers(0, len(with_split) - 1))]
            if kind == "split_drop":
                lf.pop("splits")
            else:
                lf["splits"][0][1] = float(F(lf["splits"][0][1]) * draw(st.sampled_from([-1, 2, F(1, 2)])))
        d["claimed_bound"] = float(d["claimed_bound"]) + draw(st.sampled_from([0.0, 0.5, 1.0]))
        d.pop("claimed_bound_exact", None)
    elif kind.startswith("sym_") and d.get("symmetry", {}).get("generators"):  # lemma 13's record edited
        sym = d["symmetry"]
        gen = sym["generators"][draw(st.integers(0, len(sym["generators"]) - 1))]
        pairs = gen["columns"] if kind in ("sym_column", "sym_swap_targets") else gen["rows"]
        if kind == "sym_column" and pairs:
            pairs[draw(st.integers(0, len(pairs) - 1))][1] = draw(st.integers(0, model.n_cols - 1))
        elif kind in ("sym_swap_targets", "sym_row_targets") and len(pairs) > 1:
            a, b = draw(st.integers(0, len(pairs) - 1)), draw(st.integers(0, len(pairs) - 1))
            pairs[a][1], pairs[b][1] = pairs[b][1], pairs[a][1]
        elif kind == "sym_terms":
            gen["terms"] += draw(st.sampled_from([-1, 1, 5]))
        elif kind == "sym_order":
            sym["order"] = sym["order"][::-1]
        elif kind == "sym_drop":
            d.pop("symmetry")
        d["claimed_bound"] = float(d["claimed_bound"]) + draw(st.sampled_from([0.0, 1.0]))
        d.pop("claimed_bound_exact", None)
    elif kind == "leaf_duplicate" and d["leaves"]:
        d["leaves"].append(copy.deepcopy(d["leaves"][0]))
    elif kind == "node_cycle" and len(d["nodes"]) > 2:
        d["nodes"][1][1] = d["nodes"][-1][0]
    elif kind == "integral_flag":
        d["objective_integral"] = not d["objective_integral"]
        d["claimed_bound"] = float(math.ceil(claim) if claim is not None else 0)
        d.pop("claimed_bound_exact", None)
    elif kind == "bound_widen":
        j = draw(st.integers(0, model.n_cols - 1))
        lo = model.col_lower.copy()
        lo[j] = lo[j] - 1 if math.isfinite(lo[j]) else lo[j]
        model, restamp = replace(model, col_lower=lo), True
    elif kind == "coef_change" and model.nnz:
        data = model.data.copy()
        data[draw(st.integers(0, model.nnz - 1))] += draw(st.sampled_from([-1.0, 0.5, 1.0]))
        model, restamp = replace(model, data=data), True
    elif kind == "rhs_change" and model.n_rows:
        i = draw(st.integers(0, model.n_rows - 1))
        lo, up = model.row_lower.copy(), model.row_upper.copy()
        if math.isfinite(lo[i]):
            lo[i] -= 1.5
        if math.isfinite(up[i]):
            up[i] += 1.5
        model, restamp = replace(model, row_lower=lo, row_upper=up), True
    elif kind == "cost_change":
        c = model.c.copy()
        c[draw(st.integers(0, model.n_cols - 1))] -= draw(st.sampled_from([0.5, 1.0]))
        model, restamp = replace(model, c=c), True
    if restamp:  # the adversary makes the proof name the edited model
        d["model_sha256"] = model.fingerprint()
    return model, d


def _sound(model: StandardModel, doc: dict, opt: Fraction | None) -> None:
    rep = check_proof(model, doc)
    if rep.ok:
        claim = _claim(doc)
        assert claim is not None
        assert opt is None or claim <= opt, f"accepted claim {claim} above the optimum {opt}"


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.filter_too_much])


@SETTINGS
@given(data=st.data(), model=milps())
def test_random_milp_proofs_accepted_only_when_true(data, model):
    opt = brute_force(model)
    assume(opt is None or opt > -10**8)  # bounded instances only
    tree = branch_and_bound(model)
    assume(tree.status == "optimal" and tree.claimed_exact is not None)
    doc = proof_doc(model, tree)
    rep = check_proof(model, doc)
    assert rep.ok, rep.errors  # the engine's own proofs check
    if opt is not None:
        assert tree.claimed_exact <= opt
        # as strong as the leaves prove: an integral objective's claim is the optimum itself
        if model.objective_integral:
            assert tree.claimed_exact == opt
    kind = data.draw(st.sampled_from(EDITS))
    edited_model, edited = _edit(data.draw, model, doc, kind)
    _sound(edited_model, edited, brute_force(edited_model) if edited_model is not model else opt)


BNN = [([2, 1], "ternary", "learned", "hamming", 4, 4), ([2, 1], "binary", "learned", "error", 6, 12),
       ([2, 2, 1], "binary", "learned", "hamming", 5, 400),
       ([2, 2, 1], "ternary", "learned", "hamming", 5, 28)]  # the last: the ternary 2-2-1, optimum 1
_BNN_CACHE: dict[int, tuple] = {}


def _bnn(k: int, symmetric: bool = False):
    """(model, proof, optimum) of BNN[k]; ``symmetric``: with the hidden-unit swaps as symmetry rows (lemma 13)
    where the network has a hidden layer."""
    if (k, symmetric) not in _BNN_CACHE:
        layers, weights, thresholds, loss, m, seed = BNN[k]
        data = grid_instance(seed, layers, m)
        spec = make_spec(layers, weights, thresholds, loss)
        tm = formulations.get("theorem1").build(spec, data.features, data.targets(layers[-1]))
        opt = brute_force_optimum(layers, weights, thresholds, loss, data.features.tolist(),
                                  data.targets(layers[-1]).tolist(), 0.0625)
        sym = automorphisms(tm.model, *tm.unit_swaps()) if symmetric else None
        tree = branch_and_bound(tm.model, cutoff=opt, priority=tm.branching_priority(), symmetry=sym)
        doc = proof_doc(tm.model, tree)
        assert check_proof(tm.model, doc).ok and _claim(doc) == opt
        assert ("symmetry" in doc) == (symmetric and len(layers) > 2)
        _BNN_CACHE[k, symmetric] = (tm.model, doc, F(opt))
    return _BNN_CACHE[k, symmetric]


SYM_EDITS = ["sym_column", "sym_swap_targets", "sym_row_targets", "sym_terms", "sym_order", "sym_drop"]
PROOF_EDITS = [e for e in EDITS if e not in ("bound_widen", "coef_change", "rhs_change", "cost_change")] + SYM_EDITS


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), k=st.integers(0, len(BNN) - 2), kind=st.sampled_from(PROOF_EDITS),
       symmetric=st.booleans())
def test_bnn_training_proofs_accepted_only_when_true(data, k, kind, symmetric):
    model, doc, opt = _bnn(k, symmetric)
    edited_model, edited = _edit(data.draw, model, doc, kind)
    _sound(edited_model, edited, opt)


@pytest.mark.parametrize("claim", [1.01, 1 + 2.0 ** -40, "101/100", 1.5])
def test_an_integral_proof_edited_above_its_optimum_is_rejected(claim):
    """The reported hole: a ternary 2-2-1 proof with optimum 1, claim edited to 1.01 or 1 + 2^-40."""
    model, doc, opt = _bnn(len(BNN) - 1)
    assert opt == 1 and check_proof(model, doc).ok
    d = copy.deepcopy(doc)
    d["claimed_bound"] = claim
    d.pop("claimed_bound_exact")
    rep = check_proof(model, d)
    # a leaf misses ceil(claim) - 1, or a bound derived under c x <= T fails under the claim's larger T
    assert not rep.ok and rep.errors
    if "derived" in doc:  # the root's first step uses c x <= ceil(claim) - 1: it no longer follows
        assert len(rep.errors) == 1 and re.fullmatch(r"node 0: derived bound x\d+ (<=|>=) -?\d+ does not follow from "
                                                     r"row -1 \(it gives -?\d+\); its subtree is not checked",
                                                     rep.errors[0]), rep.errors
    else:
        assert all("ceil(claim) - 1" in e for e in rep.errors), rep.errors


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), True, "1/0", "nan", [1], None])
def test_meaningless_claims_are_rejected(bad):
    model, doc, _ = _bnn(0)
    d = copy.deepcopy(doc)
    d["claimed_bound"] = bad
    rep = check_proof(model, d)
    assert not rep.ok and len(rep.errors) == 1


def test_rejections_say_which_leaf_and_why():
    """One failing leaf, reported with its exact bound and the claim (and the integral rule where it applies)."""
    model, doc, opt = _bnn(0)
    d = copy.deepcopy(doc)
    d["claimed_bound"] = "3/2"
    d.pop("claimed_bound_exact")
    rep = check_proof(model, d)
    assert rep.ok is False and rep.claim is None
    leaf = r"leaf \d+: bound -?\d+(/\d+ \(~[-0-9.e]+\))? does not reach the claimed 3/2 \(~1\.5\) " \
        r"\(an integral objective needs a bound above ceil\(claim\) - 1\)"
    step = r"node 0: derived bound x\d+ (<=|>=) -?\d+ does not follow from row -1 \(it gives -?\d+\); its subtree " \
        r"is not checked"
    if "derived" in doc:  # the hypothesis c x <= ceil(3/2) - 1 = 1 is weaker than the engine's c x <= 0
        assert len(rep.errors) == 1 and re.fullmatch(step, rep.errors[0]), rep.errors
    else:
        assert rep.errors and all(re.fullmatch(leaf, e) for e in rep.errors), rep.errors
    ok = check_proof(model, doc)
    assert ok.ok is True and ok.errors == [] and ok.claim == opt and ok.leaves == len(doc["leaves"])
    if all(lf["kind"] == "empty" for lf in doc["leaves"]):  # propagation and probing closed every leaf
        assert ok.weakest_leaf_bound is None
    else:
        assert ok.weakest_leaf_bound is not None and ok.weakest_leaf_bound > opt - 1


def test_a_non_integral_claim_is_compared_exactly(gr):
    from bnnmilp.verification.proofs.bnb import branch_and_bound

    doc = proof_doc(gr, branch_and_bound(gr))
    assert check_proof(gr, doc).claim == 1
    d = copy.deepcopy(doc)
    d["claimed_bound_exact"] = "1001/1000"
    rep = check_proof(gr, d)
    assert rep.ok is False
    assert rep.errors[0].endswith("does not reach the claimed 1001/1000 (~1.001)")
    d["claimed_bound_exact"] = "999999999999/1000000000000"
    assert check_proof(gr, d).ok is True  # a weaker claim than proven is still true


def _split_proof(model: StandardModel, pi: list[list[int]], k: int) -> dict | None:
    """A proof whose root branches on pi x <= k | pi x >= k + 1, each side a leaf with HiGHS's LP multipliers
    (the engine uses such disjunctions only where they close both sides, rarely on random models), claiming
    what the leaves prove; None where a side's LP is not optimal."""
    import highspy

    from bnnmilp.milp.backends.highs import to_highs

    leaves = []
    for node, (lo, up) in ((1, (-INF, k)), (2, (k + 1, INF))):
        h = to_highs(replace(model, integrality=np.zeros(model.n_cols, dtype=bool)))
        h.addRow(lo, up, len(pi), np.array([j for j, _ in pi], dtype=np.int32), np.array([a for _, a in pi], float))
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        y = np.asarray(h.getSolution().row_dual, dtype=np.float64)
        y[:-1][(y[:-1] > 0) & ~np.isfinite(model.row_lower)] = 0.0
        y[:-1][(y[:-1] < 0) & ~np.isfinite(model.row_upper)] = 0.0
        z = min(y[-1], 0.0) if node == 1 else max(y[-1], 0.0)
        leaves.append({"node": node, "kind": "bound", "y": [[int(i), float(y[i])] for i in np.flatnonzero(y[:-1])],
                       "splits": [[node, float(z)]]})
    doc = {"format": "bnnmilp-proof", "version": 3, "model_sha256": model.fingerprint(), "sense": "min",
           "objective_integral": False, "claimed_bound": -1e9, "leaves": leaves,
           "nodes": [[0, None, None, None, None], [1, 0, pi, "<=", k], [2, 0, pi, ">=", k + 1]]}
    rep = check_proof(model, doc)
    if not rep.ok:  # e.g. a free column keeps a reduced cost: the leaf bound is -infinity
        return None
    w = rep.weakest_leaf_bound
    doc["claimed_bound"] = float(w) if F(float(w)) <= w else -1e9
    doc["claimed_bound_exact"] = f"{w.numerator}/{w.denominator}"
    return doc


@SETTINGS
@given(data=st.data(), model=milps())
def test_general_disjunction_proofs_accepted_only_when_true(data, model):
    ints = np.flatnonzero(model.integrality).tolist()
    assume(len(ints) >= 2)
    opt = brute_force(model)
    assume(opt is None or opt > -10**8)
    pi = [[j, data.draw(st.integers(-2, 2))] for j in ints]
    pi = [p for p in pi if p[1] != 0]
    assume(pi)
    doc = _split_proof(model, pi, data.draw(st.integers(-3, 3)))
    assume(doc is not None)
    assert check_proof(model, doc).ok
    if opt is not None:
        assert _claim(doc) <= opt  # the two sides' LP bounds, each a valid bound on its side
    kind = data.draw(st.sampled_from(["split_coef", "split_multiplier", "split_drop", "claim_tiny", "claim_small",
                                      "branch_shift", "branch_sense", "multiplier_scale", "multiplier_sign"]))
    edited_model, edited = _edit(data.draw, model, doc, kind)
    _sound(edited_model, edited, opt)
