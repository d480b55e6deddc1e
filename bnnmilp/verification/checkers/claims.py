"""Independent checks of a trained network's claims, in exact arithmetic.

Nothing here trusts the solver: the loss is recomputed with the exact forward
pass, the margin with rational arithmetic, and the solver's bound is only
compared (it must not exceed the loss of a network that meets the
epsilon margin, since the bound is about that problem).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from bnnmilp.data import Dataset
from bnnmilp.io.runs import FINISHED, WeightsFile
from bnnmilp.io.yamlio import fraction_str
from bnnmilp.network import error_count, hamming_loss, predictions, training_loss, training_slack
from bnnmilp.network.sparse import has_zeros, values

BOUND_TOL = 1e-6  # the solver's bound is a float; it may exceed an integer loss by its own tolerance only


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not applicable
    detail: str


def _domain_check(wf: WeightsFile) -> Check:
    net, ns = wf.network, wf.spec.network
    bad = []
    for l, (W, t) in enumerate(zip(net.weights, net.thresholds, strict=True), start=1):
        v = values(W)
        if ns.weights == "continuous" and np.any(np.abs(v) > 1):
            bad.append(f"layer {l}: weights outside [-1, 1]")
        if ns.weights == "binary" and (not np.all(np.isin(v, (-1.0, 1.0))) or has_zeros(W)):
            bad.append(f"layer {l}: weights not in {{-1, +1}}")
        if ns.weights == "ternary" and not np.all(np.isin(v, (-1.0, 0.0, 1.0))):
            bad.append(f"layer {l}: weights not in {{-1, 0, +1}}")
        if ns.thresholds == "zero" and np.any(t != 0):
            bad.append(f"layer {l}: thresholds not zero")
        if ns.thresholds == "learned" and np.any(t != t[0]):
            bad.append(f"layer {l}: thresholds not shared")
        if np.any(np.abs(t) > 1) and "source" not in wf.doc:  # imported networks keep their own thresholds
            bad.append(f"layer {l}: thresholds outside [-1, 1]")
    return Check("domain", not bad, "; ".join(bad) or f"{ns.weights} weights, {ns.thresholds} thresholds")


def verify_weights(wf: WeightsFile, data: Dataset,
                   proof_check: Callable[[WeightsFile, Dataset, int, Fraction], Check] | None = None) -> dict[str, Any]:
    """Recompute everything the weights file claims; returns a report with a list of checks. ``proof_check``
    (``run_proofs.proof_check``) adds the check of proof.json beside the weights: it rebuilds the training
    MILP, which this module never does (checking claims imports no solver; big_m: lp builds with HiGHS)."""
    spec = wf.spec
    data.check_fits(spec.network.n_inputs, spec.network.n_outputs)
    Y = data.targets(spec.network.n_outputs)
    out = spec.network.output
    all_bits = wf.network.forward(data.features)
    loss = training_loss(wf.network, data.features, data.labels, Y, spec.training.loss, out, all_bits)
    slack, where = training_slack(wf.network, data.features, data.labels, spec.training.epsilon, out)
    doc = wf.doc
    checks = [_domain_check(wf)]
    if "source" in doc:  # imported: a network without training claims (its thresholds are integers, not [-1, 1])
        checks.append(Check("claims", None, f"imported from {doc['source'].get('from')}: no training claims"))
        return _report(wf, data, checks, loss, slack, where, all_bits, Y)
    sha = (doc.get("data") or {}).get("sha256")
    checks.append(Check("data", sha == data.sha256(),
                        "data fingerprint matches the training data" if sha == data.sha256()
                        else f"data sha256 {data.sha256()[:12]} differs from the training data's {str(sha)[:12]}"))
    tl = doc.get("training_loss") or {}
    status = tl.get("status")
    checks.append(Check("status", status in FINISHED,
                        f"the run ended {status}" + ("" if status in FINISHED else
                                                     ": the solve failed, so the file's claims are not a result")))
    rec = tl.get("value")
    checks.append(Check("loss", rec == loss, f"recorded {spec.training.loss} loss {rec}, exact {loss}"))
    bound = tl.get("solver_bound")
    if bound is None:
        checks.append(Check("bound", None, "no solver bound recorded"))
    elif slack < 0:
        checks.append(Check("bound", None, "network does not meet the epsilon margin, so the bound "
                                           "(a claim about the epsilon-margin problem) does not apply"))
    else:
        ok = float(bound) <= loss + BOUND_TOL
        checks.append(Check("bound", ok, f"solver bound {bound} {'<=' if ok else '>'} exact loss {loss}"))
    if proof_check is not None:
        checks.append(proof_check(wf, data, loss, slack))
    recorded_slack = (doc.get("margin") or {}).get("min_slack")
    if recorded_slack is None:
        checks.append(Check("margin", None, "no margin recorded"))
    else:
        ok = Fraction(str(recorded_slack)) == slack
        checks.append(Check("margin", ok, f"recorded min slack {recorded_slack}, exact {fraction_str(slack)}"))
    return _report(wf, data, checks, loss, slack, where, all_bits, Y)


def _report(wf: WeightsFile, data: Dataset, checks: list[Check], loss: int, slack: Fraction, where: tuple,
            all_bits: list[np.ndarray], Y: np.ndarray) -> dict[str, Any]:
    spec, out, bits = wf.spec, wf.spec.network.output, all_bits[-1]
    pred = predictions(wf.network, data.features, out, all_bits)
    return {
        "weights": wf.path,
        "data": data.path,
        "samples": data.n_samples,
        "loss": spec.training.loss,
        "exact_loss": loss,
        "output": out,
        "hamming": hamming_loss(bits, Y) if out == "bits" else None,
        "errors": error_count(bits, Y) if out == "bits" else int(np.sum(pred != data.labels)),
        "accuracy": float(np.mean(pred == data.labels)),
        "min_slack": fraction_str(slack),
        "min_slack_float": float(slack),
        "min_slack_at": {"layer": where[0], "sample": where[1],
                         ("rival_class" if out == "argmax" and where[0] == spec.network.depth else "neuron"): where[2]},
        "epsilon_feasible": slack >= 0,
        "checks": [asdict(c) for c in checks],
        "ok": all(c.ok is not False for c in checks),
    }
