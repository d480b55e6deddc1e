"""The proof a training run writes beside its weights (RUN/proof.json), so that its bound is proven, not reported.

``train`` reports the solver's bound in floating point (certificate.json). After the run is written, within a
share of the time budget:

- where the solver's bound is global (the whole MILP was solved) and positive, bnnmilp's branch and bound
  proves ceil(bound) on the rebuilt training MILP, cut off there;
- where the written network has exact loss 0, the trivial bound 0 is proven (the root alone): with it the
  run is proven optimal;
- where the architecture cannot give every label its own output (a hidden layer of width w has at most 2^w
  codes), the capacity bound (``proofs/capacity.py``; integers, no solver) is proven as well;
- with ``training.lower_bound: decomposition``, a decomposition bound (``bnnmilp bound``) is computed as well
  and the larger of the two proven bounds is written (a composite proof).

certificate.json then names the proof, the proven bound, its gap to the written network's exact loss and its
scope, and ``verify RUN DATA`` checks the proof without being asked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bnnmilp.data import Dataset
    from bnnmilp.io.runs import WeightsFile
    from bnnmilp.verification.checkers.claims import Check

PROOF_SHARE = 0.25  # of the run's budget (or of a stage's time limit) for proving its bound
PROOF_SECONDS = 60.0  # without any limit
SCOPE = "the training MILP's optimum: no network meeting the epsilon margin on every sample has a lower loss"


@dataclass
class RunProof:
    """A proven lower bound for a run: the proof document (checked exactly) and how it was found."""

    bound: Fraction
    doc: dict[str, Any]
    how: str  # "solver bound" | "loss 0" | "capacity" | "decomposition"
    time_s: float


def proof_seconds(budget: float | None, stage_limit: float | None) -> float:
    base = budget if budget is not None else stage_limit
    return PROOF_SECONDS if base is None else max(1.0, PROOF_SHARE * base)


def prove_run(wf: WeightsFile, ds: Dataset, bound: float | None, bound_scope: str | None, loss: int | None,
              time_limit: float) -> RunProof | None:
    """The best lower bound bnnmilp can prove for the run in ``time_limit`` seconds (see the module), checked
    exactly; None where there is nothing to prove (no global bound, loss above 0) or no proof was found."""
    from bnnmilp.verification.checkers.proofs import check_proof
    from bnnmilp.verification.proofs.bnb import branch_and_bound
    from bnnmilp.verification.proofs.models import training_model
    from bnnmilp.verification.proofs.proof import proof_doc, trivial_proof
    from bnnmilp.verification.proofs.symmetry import unit_symmetry

    t0 = time.perf_counter()
    best: RunProof | None = None
    target = None
    if bound is not None and bound_scope == "global" and bound > 1e-9:
        target = float(math.ceil(bound - 1e-6))
    elif loss == 0:
        target = 0.0
    if target is not None:
        tm, _ = training_model(wf, ds)
        doc = trivial_proof(tm.model) if target == 0 else None
        if doc is None:
            tree = branch_and_bound(tm.model, cutoff=target, time_limit=time_limit, priority=tm.branching_priority(),
                                    propagate=False,  # a share of train's budget: time matters more than nodes
                                    symmetry=unit_symmetry(tm))
            doc = proof_doc(tm.model, tree) if tree.status == "optimal" and tree.claimed_exact is not None else None
        rep = check_proof(tm.model, doc) if doc is not None else None
        if rep is not None and rep.ok and rep.claim is not None and rep.claim >= target:
            best = RunProof(rep.claim, doc, "loss 0" if target == 0 else "solver bound",
                            round(time.perf_counter() - t0, 3))
    if best is None or loss is None or best.bound < loss:
        cap = capacity_run_proof(wf, ds)
        if cap is not None and (best is None or cap.bound > best.bound):
            best = cap
    left = time_limit - (time.perf_counter() - t0)
    if wf.spec.training.lower_bound == "decomposition" and left > 1.0 and (best is None or loss is None
                                                                           or best.bound < loss):
        from bnnmilp.errors import SolverError
        from bnnmilp.verification.proofs.decomposition import decomposition_bound

        t1 = time.perf_counter()
        try:
            res = decomposition_bound(wf.spec, ds, "auto", time_limit=left, group_time_limit=min(30.0, left))
        except SolverError:
            res = None
        if res is not None and (best is None or res.bound > best.bound):
            best = RunProof(res.bound, res.proof, "decomposition", round(time.perf_counter() - t1, 3))
    return best


def capacity_run_proof(wf: WeightsFile, ds: Dataset) -> RunProof | None:
    """The capacity bound of the run's architecture on the data, as a composite proof with one group (checked)."""
    from bnnmilp.verification.proofs.composite import check_composite, composite_doc
    from bnnmilp.verification.proofs.decomposition import capacity_group

    cap = capacity_group(wf.spec, ds)
    if cap is None:
        return None
    doc = composite_doc(wf.spec, ds, [{"samples": cap.samples, "proof": cap.proof}], {"by": "capacity"})
    rep = check_composite(wf.spec, ds, doc)
    return RunProof(rep.claim, doc, "capacity", cap.time_s) if rep.ok and rep.claim is not None else None


def record(cert: dict[str, Any], proof: RunProof | None, loss: int | None, wanted: str) -> dict[str, Any]:
    """certificate.json's account of the proof: where it is, what it proves, the gap to the written loss."""
    from bnnmilp.io.yamlio import fraction_str

    if proof is None:
        why = "training.lower_bound: none" if wanted == "none" else \
            "no global bound to prove and a loss above 0, or no proof found in the time share"
        return {**cert, "proof": None, "proof_note": f"no proof written ({why})"}
    return {**cert, "proof": "proof.json", "proven": True, "proven_bound": fraction_str(proof.bound),
            "proven_by": proof.how, "proof_scope": SCOPE,
            "proven_gap": None if loss is None else fraction_str(Fraction(loss) - proof.bound),
            "proven_optimal": loss is not None and Fraction(loss) == proof.bound,
            "proof_time_s": proof.time_s,
            "note": "objective, bound and gap as reported by the solver in floating point; proof.json proves the "
                    "lower bound proven_bound in exact arithmetic (bnnmilp verify RUN DATA checks it)"}


def write_run_proof(run_dir: str | Path, wf: WeightsFile, ds: Dataset, time_limit: float) -> dict[str, Any]:
    """Prove the written run's bound and record it: RUN/proof.json (when found) and certificate.json updated.
    Returns the updated certificate."""
    import json

    from bnnmilp.io.yamlio import write_json_atomic

    out = Path(run_dir)
    cert = json.loads((out / "certificate.json").read_text())
    loss = (wf.doc.get("training_loss") or {}).get("value")
    loss = loss if isinstance(loss, int) else None
    proof = None
    if wf.spec.training.lower_bound != "none":
        proof = prove_run(wf, ds, cert.get("bound"), cert.get("bound_scope"), loss, time_limit)
    if proof is not None:
        write_json_atomic(out / "proof.json", proof.doc)
    cert = record(cert, proof, loss, wf.spec.training.lower_bound)
    write_json_atomic(out / "certificate.json", cert)
    return cert


def proof_check(wf: WeightsFile, data: Dataset, loss: int, slack: Fraction) -> Check:
    """proof.json beside the weights (``train`` writes it; ``certify`` or ``bound`` may have): checked exactly
    against the training MILP rebuilt from the weights file's spec and the data (a composite proof against
    each group's), its claim compared with certificate.json's proven_bound and with the exact loss."""
    import json

    from bnnmilp.io.yamlio import fraction_str
    from bnnmilp.verification.checkers.claims import Check

    folder = Path(wf.path).parent
    path = folder / "proof.json"
    if not path.is_file():
        return Check("proof", None, "no proof.json beside the weights")
    from bnnmilp.errors import BnnMilpError
    from bnnmilp.verification.checkers.proofs import check_proof
    from bnnmilp.verification.proofs.composite import check_composite, is_composite
    from bnnmilp.verification.proofs.models import training_model
    from bnnmilp.verification.proofs.proof import read_proof

    try:
        doc = read_proof(path)
    except BnnMilpError as exc:
        return Check("proof", False, f"proof.json: {exc}")
    rep = check_composite(wf.spec, data, doc) if is_composite(doc) else \
        check_proof(training_model(wf, data)[0].model, doc)
    if not rep.ok or rep.claim is None:
        return Check("proof", False, f"proof.json does not check: {rep.errors[0] if rep.errors else 'no claim'}")
    claim = rep.claim
    try:
        cert = json.loads((folder / "certificate.json").read_text())
    except (OSError, ValueError):
        cert = {}
    said = cert.get("proven_bound")
    if said is not None and Fraction(str(said)) > claim:
        return Check("proof", False, f"certificate.json says proven_bound {said}, proof.json proves only "
                                     f"{fraction_str(claim)}")
    if slack >= 0 and claim > loss:
        return Check("proof", False, f"proof.json proves {fraction_str(claim)} > the exact loss {loss} of a "
                                     "network that meets the epsilon margin")
    return Check("proof", True, f"proof.json proves every epsilon-margin network's loss >= {fraction_str(claim)}"
                                f" (exact loss {loss}{': optimal' if claim == loss else ''})")
