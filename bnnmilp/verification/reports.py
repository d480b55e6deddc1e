"""The functions of the public API that are more than a re-export: claims, proofs and certificates.

Everything here takes paths or objects alike, returns a report object (``.ok`` and the reasons), and
imports a solver only where it solves: checking claims and proofs runs without highspy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnnmilp.data import Dataset, load_data

if TYPE_CHECKING:
    from fractions import Fraction

    from bnnmilp.io.runs import WeightsFile
    from bnnmilp.milp.model import StandardModel
    from bnnmilp.spec import Spec
    from bnnmilp.verification.checkers.proofs import CheckReport
    from bnnmilp.verification.proofs.bnb import Tree


@dataclass
class ClaimsReport:
    """What :func:`verify_claims` found.

    Attributes
    ----------
    ok : bool
        True when no check failed (checks that do not apply count as passed).
    checks : list of dict
        Each check's ``name``, ``ok`` (True, False or None: not applicable) and ``detail``.
    details : dict
        Everything recomputed: ``exact_loss``, ``accuracy``, ``min_slack`` (exact, as a fraction string), ...
    """

    ok: bool
    checks: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """The details of the checks that failed."""
        return [f"{c['name']}: {c['detail']}" for c in self.checks if c["ok"] is False]

    @property
    def exact_loss(self) -> int:
        """The training loss of the weights, recomputed in exact arithmetic."""
        return self.details["exact_loss"]


def _weights(weights: str | Path | WeightsFile) -> WeightsFile:
    from bnnmilp.io.runs import WeightsFile, load_weights

    return weights if isinstance(weights, WeightsFile) else load_weights(weights, ensemble=False)


def _data(data: str | Path | Dataset) -> Dataset:
    return data if isinstance(data, Dataset) else load_data(data)


def verify_claims(weights: str | Path | WeightsFile, data: str | Path | Dataset) -> ClaimsReport:
    """Recompute every claim a weights file makes, in exact arithmetic, without a solver.

    Parameters
    ----------
    weights : path or WeightsFile
        A run folder, a ``weights.yaml``/``weights.npz`` file, or a loaded :class:`~bnnmilp.io.runs.WeightsFile`.
    data : path or Dataset
        The training data the claims are about.

    Returns
    -------
    ClaimsReport
        ``ok`` and the checks: weight domain, data fingerprint, final status, the recorded loss against the
        exact loss, the solver's bound against it, the recorded margin.
    """
    from bnnmilp.verification.checkers.claims import verify_weights
    from bnnmilp.verification.proofs.run_proofs import proof_check

    rep = verify_weights(_weights(weights), _data(data), proof_check)
    return ClaimsReport(bool(rep["ok"]), list(rep["checks"]), {k: v for k, v in rep.items() if k != "checks"})


def _model(target: str | Path | StandardModel, data: str | Path | Dataset | None
           ) -> tuple[StandardModel, Any, float | None]:
    """(model, its training model or None, the run's exact loss when the MILP attains it, else None)."""
    from bnnmilp.milp.model import StandardModel
    from bnnmilp.verification.proofs.models import is_model_file, training_model

    if isinstance(target, StandardModel):
        return target, None, None
    if is_model_file(target):
        from bnnmilp.milp.backends.highs import read

        return read(target), None, None
    if data is None:
        from bnnmilp.errors import InputError

        raise InputError(None, "DATA", "a run folder needs its training data to rebuild the MILP")
    tm, cutoff = training_model(_weights(target), _data(data))
    return tm.model, tm, cutoff


def spec_of(network: str | Path | Spec) -> Spec:
    """The spec a proof about a training problem refers to: a spec file, or the spec recorded with a run's
    weights (a run folder, a weights YAML or NPZ file)."""
    from bnnmilp.spec import Spec, load_spec

    if isinstance(network, Spec):
        return network
    wf = weights_of(network)
    return wf.spec if wf is not None else load_spec(network)


def weights_of(network: str | Path | Spec) -> WeightsFile | None:
    """The weights NETWORK holds (a run folder, a weights YAML or NPZ file); None for a spec."""
    from bnnmilp.spec import Spec

    if isinstance(network, Spec):
        return None
    p = Path(network)
    if p.is_dir() or p.suffix.lower() == ".npz":
        return _weights(p)
    from bnnmilp.errors import SpecError
    from bnnmilp.io.yamlio import read_yaml

    doc = read_yaml(p, SpecError)
    return _weights(p) if isinstance(doc, dict) and "layers" in doc else None


def against_bound(wf: WeightsFile, ds: Dataset, bound: Fraction) -> dict[str, Any]:
    """A run's network against a proven lower bound: its exact loss and, where it meets the epsilon margin
    (the bound covers only such networks), the gap and whether the bound proves it optimal."""
    from bnnmilp.network import training_loss, training_slack

    net, spec = wf.network, wf.spec
    loss = training_loss(net, ds.features, ds.labels, ds.targets(spec.network.n_outputs), spec.training.loss,
                         spec.network.output)
    covered = training_slack(net, ds.features, ds.labels, spec.training.epsilon, spec.network.output)[0] >= 0
    return {"exact_loss": int(loss), "meets_margin": bool(covered),
            "gap": str(loss - bound) if covered else None, "optimal": bool(covered and loss <= bound)}


def check_proof(target: str | Path | StandardModel, data: str | Path | Dataset | None,
                proof: str | Path | dict[str, Any]) -> CheckReport:
    """Check a branch-and-bound proof in exact rational arithmetic, trusting no solver.

    Parameters
    ----------
    target : path or StandardModel
        The model the proof is about: an MPS/LP file, a model, or a run folder (its training MILP is
        rebuilt from the weights file's spec and ``data``).
    data : path, Dataset or None
        The training data, for a run folder.
    proof : path or dict
        The proof (``proof.json``, written by :func:`certify` or ``bnnmilp certify``), or a composite proof
        of a decomposition bound (``bnnmilp bound``): then ``target`` is the spec (or a run folder) and
        ``data`` the training data, and each group's model is rebuilt from them.

    Returns
    -------
    CheckReport
        ``ok``, ``errors`` (the reasons), ``claim`` (the proven lower bound, a Fraction), ``leaves``.
    """
    from bnnmilp.milp.model import StandardModel
    from bnnmilp.verification.checkers.proofs import check_proof as check
    from bnnmilp.verification.proofs.composite import check_composite, is_composite
    from bnnmilp.verification.proofs.models import is_model_file
    from bnnmilp.verification.proofs.proof import read_proof

    doc = proof if isinstance(proof, dict) else read_proof(proof)
    if is_composite(doc):  # a decomposition bound: about a spec's training problem, not one model
        from bnnmilp.spec import Spec

        if data is None or isinstance(target, StandardModel) or (not isinstance(target, Spec)
                                                                 and is_model_file(target)):
            from bnnmilp.errors import InputError

            raise InputError(None, "NETWORK", "a composite proof is about a training problem: give its spec (or a "
                                              "run folder) and DATA")
        ds = _data(data)
        spec = spec_of(target)
        ds.check_fits(spec.network.n_inputs, spec.network.n_outputs)
        return check_composite(spec, ds, doc)
    model, _, _ = _model(target, data)
    return check(model, doc)


@dataclass
class Certified:
    """A proof found by :func:`certify` and checked exactly before it was returned.

    Attributes
    ----------
    proof : dict
        The proof document (write it with :func:`bnnmilp.io.yamlio.write_json_atomic`; check it with
        :func:`check_proof`).
    report : CheckReport
        The exact checker's report on it (always ``ok``).
    model : StandardModel
        The model it is about.
    tree : Tree
        The search that produced it (nodes, leaves, runtime).
    incumbent_by : str
        Where the cutoff came from: the run's exact loss, or HiGHS's optimum (floating point, unchecked).
    """

    proof: dict[str, Any]
    report: CheckReport
    model: StandardModel
    tree: Tree
    incumbent_by: str


def certify(target: str | Path | StandardModel, data: str | Path | Dataset | None = None,
            time_limit: float = 300.0, vipr: bool = False) -> Certified:
    """Prove a lower bound on a MILP's optimum by branch and bound, as a proof anyone can check.

    Parameters
    ----------
    target : path or StandardModel
        An MPS/LP file, a model, or a run folder (with ``data``: its training MILP, cut off at the run's
        exact loss).
    data : path, Dataset or None
        The training data, for a run folder.
    time_limit : float
        Seconds for HiGHS's solve (the cutoff) and for the proof search each.
    vipr : bool
        Prove with the rules VIPR has only. Otherwise the proof (version 3) may add, for a training MILP,
        one lexicographic row per swap of two interchangeable hidden units (the checker's lemma 13).

    Returns
    -------
    Certified
        The proof, checked exactly.

    Raises
    ------
    SolverError
        When HiGHS cannot solve the model, the search stops before it proves the optimum, or (never
        expected) the exact checker rejects the proof.
    """
    from bnnmilp.errors import SolverError
    from bnnmilp.milp.backends import SolveOptions, highs
    from bnnmilp.milp.backends.base import require_optimal
    from bnnmilp.verification.checkers.proofs import check_proof as check
    from bnnmilp.verification.proofs.bnb import branch_and_bound
    from bnnmilp.verification.proofs.proof import proof_doc
    from bnnmilp.verification.proofs.symmetry import unit_symmetry

    model, tm, cutoff = _model(target, data)
    incumbent_by = "the run's exact loss" if cutoff is not None else "HiGHS (floating point, not checked)"
    if cutoff is None:
        sol = require_optimal(highs.solve_or_stop(model, SolveOptions(time_limit=time_limit)), "the model",
                              ": nothing to certify")
        cutoff = round(sol.objective) if model.objective_integral else sol.objective
    priority = tm.branching_priority() if tm is not None else None
    sym = unit_symmetry(tm) if not vipr and tm is not None else None
    tree = branch_and_bound(model, cutoff=cutoff, time_limit=time_limit, priority=priority, symmetry=sym)
    if tree.status != "optimal" or tree.claimed_exact is None:
        why = f": {tree.failure}" if tree.failure else ""
        raise SolverError(f"the proof search stopped ({tree.status}) after {len(tree.nodes)} nodes{why}")
    doc = proof_doc(model, tree)
    rep = check(model, doc)  # never hand out a proof that the exact checker rejects
    if not rep.ok:
        raise SolverError(f"the proof does not check ({rep.errors[0]}): not written")
    return Certified(doc, rep, model, tree, incumbent_by)
