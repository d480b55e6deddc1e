"""The composite proof (JSON, format ``bnnmilp-composite-proof``, version 1): a lower bound on the training
loss from a partition of the samples, one proof per group: a branch-and-bound proof of the group's training
MILP, or a capacity proof (``proofs/capacity.py``: a bound from the narrowest hidden layer's width).

    {"format": "bnnmilp-composite-proof", "version": 1,
     "claimed_bound": 8.0, "claimed_bound_exact": "8",    # the claim: at most the sum of the groups' claims
     "data_sha256": "...", "n_samples": 20,               # the data it is about (Dataset.sha256)
     "spec": {...},                                       # the spec the group models were built from (informative)
     "groups": [{"samples": [0, 5, 10, 15, 3],            # indices into the data, every sample in one group
                 "claimed_bound_exact": "2",              # what the group's proof claims
                 "proof": {...}}, ...],                   # a bnnmilp-proof of the group's own training MILP
     "engine": {...}}                                     # how it was found (informative)

Why it holds. The training loss is a sum over samples, so for any network W and any partition of the
samples into groups g, L(W) = sum_g L_g(W) >= sum_g min_V L_g(V). Group g's training MILP is Theorem 1
on g's samples alone: its rows are those of the whole MILP that mention g's samples, with big-M and fixed
inputs computed from g's data, which every network feasible for the whole MILP also satisfies (symmetry
rows keep an optimum: the group loss does not change when hidden units are permuted). So the whole
MILP's optimum is at least the sum of the groups' proven bounds: the bound covers every network that
meets the epsilon margin on every sample (the problem the MILP is about), as a single proof does.

The checker trusts nothing in the file but the rules: it rebuilds each group's model from the spec it is
given and the data, checks that the groups cover every sample exactly once, checks each group's proof in
exact arithmetic against its own model (the model's fingerprint must match), and adds the proven group
bounds in rationals. A capacity proof is checked by recomputing its bound from the spec and the group's
labels (it holds for every network of the architecture, so a fortiori for the group's MILP).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from bnnmilp.verification.checkers.proofs import CheckReport, _MalformedError, check_proof, rational
from bnnmilp.verification.proofs.capacity import check_capacity, is_capacity
from bnnmilp.verification.proofs.proof import COMPOSITE

if TYPE_CHECKING:
    from bnnmilp.data import Dataset
    from bnnmilp.formulations.theorem1 import TrainingModel
    from bnnmilp.milp.model import StandardModel
    from bnnmilp.spec import Spec

FORMAT = COMPOSITE


def is_composite(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def group_training(spec: Spec, ds: Dataset, samples: list[int]) -> TrainingModel:
    """Group g's own training MILP: Theorem 1 on its samples alone (the spec's formulation options)."""
    import numpy as np

    from bnnmilp import formulations

    idx = np.asarray(samples, dtype=np.int64)
    Y = ds.targets(spec.network.n_outputs)[idx]
    return formulations.get("theorem1").build(spec, ds.features[idx], Y)


def group_model(spec: Spec, ds: Dataset, samples: list[int]) -> StandardModel:
    return group_training(spec, ds, samples).model


def composite_doc(spec: Spec, ds: Dataset, groups: list[dict[str, Any]], engine: dict[str, Any]) -> dict[str, Any]:
    """The proof document from groups ({"samples", "proof"}, each proof checked already): the claim is the
    sum of the group claims, exactly."""
    from bnnmilp.io.yamlio import fraction_str

    total = sum((rational(g["proof"]["claimed_bound_exact"], "claim") for g in groups), Fraction(0))
    return {"format": FORMAT, "version": 1, "claimed_bound": float(total), "claimed_bound_exact": fraction_str(total),
            "data_sha256": ds.sha256(), "n_samples": ds.n_samples, "spec": spec.to_dict(),
            "groups": [{"samples": [int(i) for i in g["samples"]],
                        "claimed_bound_exact": g["proof"]["claimed_bound_exact"], "proof": g["proof"]}
                       for g in groups],
            "engine": engine}


def check_composite(spec: Spec, ds: Dataset, doc: dict[str, Any]) -> CheckReport:
    """Check a composite proof against the spec and the data, in exact arithmetic; never raises on a bad file."""
    rep = CheckReport(ok=False)
    try:
        _check(spec, ds, doc, rep)
    except _MalformedError as exc:
        rep.errors.append(str(exc))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        rep.errors.append(f"malformed composite proof ({type(exc).__name__}: {exc})")
    rep.ok = not rep.errors
    return rep


def _check(spec: Spec, ds: Dataset, doc: dict[str, Any], rep: CheckReport) -> None:
    if not is_composite(doc) or doc.get("version") != 1:
        rep.errors.append(f"not a {FORMAT} version 1 document")
        return
    if doc.get("data_sha256") != ds.sha256():
        rep.errors.append("data_sha256: the proof is about other data than DATA")
    groups = doc["groups"]
    if not isinstance(groups, list) or not groups:
        rep.errors.append("groups: expected a non-empty list")
        return
    seen: dict[int, int] = {}
    for g, grp in enumerate(groups):
        samples = grp["samples"]
        if not isinstance(samples, list) or not samples:
            rep.errors.append(f"groups[{g}].samples: expected a non-empty list of sample indices")
            return
        for i in samples:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < ds.n_samples:
                rep.errors.append(f"groups[{g}].samples: {i!r} is not a sample index (0..{ds.n_samples - 1})")
                return
            if i in seen:
                rep.errors.append(f"sample {i} is counted twice (groups {seen[i]} and {g})")
                return
            seen[i] = g
    missing = sorted(set(range(ds.n_samples)) - set(seen))
    if missing:
        rep.errors.append(f"sample {missing[0]} is in no group ({len(missing)} left out): the groups must "
                          "partition the data")
        return
    total = Fraction(0)
    leaves = 0
    for g, grp in enumerate(groups):
        sub = check_capacity(spec, ds, grp["samples"], grp["proof"]) if is_capacity(grp["proof"]) else \
            check_proof(group_model(spec, ds, grp["samples"]), grp["proof"])
        if not sub.ok:
            rep.errors.extend(f"groups[{g}]: {e}" for e in sub.errors[:5])
            continue
        total += sub.claim
        leaves += sub.leaves
    if rep.errors:
        return
    claim = rational(doc["claimed_bound_exact"], "claimed_bound_exact")
    if claim > total:
        rep.errors.append(f"claimed_bound_exact {claim} exceeds the sum of the proven group bounds {total}")
        return
    if rational(doc["claimed_bound"], "claimed_bound") > claim:
        rep.errors.append("claimed_bound exceeds claimed_bound_exact")
        return
    rep.claim, rep.leaves = claim, leaves
