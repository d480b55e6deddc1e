"""Lower bounds on the training loss by decomposition: partition the samples, prove each group's optimum, add.

The big-M relaxation of the whole training MILP fits any data, so its LP bound is 0 and a solver's bound stays
0 for a long time even where loss 0 is impossible. A small group of samples that conflict (different labels
that the network cannot all tell apart, e.g. five classes through two hidden bits) has a small MILP whose
optimum HiGHS finds in seconds and bnnmilp's branch and bound proves; since the loss is a sum over samples,
the group optima add up to a lower bound on the whole problem (``proofs/composite.py`` says why, and
checks the result).

``auto`` grouping starts with groups that hold as many different labels as their size allows (one sample
per class in turn), half as many as there are classes, then tries larger groups within the time budget:
one sample more per group (five classes through two hidden bits cost at least 2, six cost 3, seven 4), or
twice the size while every group's optimum is 0 (a bigger group can conflict where its halves did not). It
stops when the groups of a round could not all be proven or the next round would not fit in the time left,
and keeps the partition that proved most: adapting never lowers the bound.

Before any group is solved, the capacity bound of the whole data (``proofs/capacity.py``: through a
hidden layer of width w at most 2^w different outputs, whatever the weights) is computed in integers; where
it is larger than what the groups prove, it is the bound (a composite proof with one group, all samples).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from bnnmilp.execution.jobs import job_kind

if TYPE_CHECKING:
    from bnnmilp.data import Dataset
    from bnnmilp.spec import Spec

GROUP_TIME_LIMIT = 30.0  # seconds for each group's HiGHS solve and for its proof, at most
GROWTH = 3.0  # a round with groups one sample larger is tried when this many times the last round's time is left


@dataclass
class Group:
    """One group's result: its samples, HiGHS's report and the proof (checked exactly when it was made)."""

    samples: list[int]
    status: str  # HiGHS's status on the group's MILP
    optimum: float | None  # HiGHS's optimum where it finished (reported; the claim is what is proven)
    proof: dict[str, Any]
    time_s: float
    nodes: int

    @property
    def claim(self) -> Fraction:
        """The bound the group's proof establishes."""
        return Fraction(self.proof["claimed_bound_exact"])

    @property
    def kind(self) -> str:
        """``capacity`` (a capacity proof: no solver ran) or ``milp`` (a branch-and-bound proof)."""
        from bnnmilp.verification.proofs.capacity import is_capacity

        return "capacity" if is_capacity(self.proof) else "milp"

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "status": self.status, "optimum": self.optimum, "proof": self.proof,
                "time_s": self.time_s, "nodes": self.nodes}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Group:
        return Group([int(i) for i in d["samples"]], d["status"], d["optimum"], d["proof"], float(d["time_s"]),
                     int(d["nodes"]))


@dataclass
class BoundResult:
    """A decomposition lower bound: ``bound`` (exact) = the sum of the groups' proven bounds; ``proof`` is the
    composite proof, checked exactly before it was returned."""

    bound: Fraction
    groups: list[Group]
    proof: dict[str, Any]
    rounds: int
    time_s: float
    history: list[dict[str, Any]] = field(default_factory=list)  # the bound after each round
    interrupted: bool = False  # Ctrl-C while growing the groups: the best finished round's partition
    by: str = "decomposition"  # or "capacity": the whole data's capacity bound was larger


def conflict_groups(labels: np.ndarray, size: int) -> list[list[int]]:
    """Groups of ``size`` samples (the last may be smaller) holding as many different labels as they can:
    the samples are taken one per class in turn (class 0's first, class 1's first, ..., class 0's second, ...)
    and cut into consecutive groups."""
    labels = np.asarray(labels)
    by_class = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    order = [i for rank in range(max(map(len, by_class), default=0)) for members in by_class
             if rank < len(members) for i in [members[rank]]]
    return [order[a:a + size] for a in range(0, len(order), size)]


MIN_PROOF_SECONDS = 0.05  # a group with less time left gets the trivial bound (its proof needs no search)
FINISH = 0.9  # of the time left that the groups of a round share: the rest checks the composite proof exactly


def prove_group(spec: Spec, ds: Dataset, samples: list[int], time_limit: float, symmetry: bool = True) -> Group:
    """HiGHS solves the group's MILP (its optimum, or its bound at the time limit, is the target), then bnnmilp's
    branch and bound proves it, cut off there; if that proof does not finish, the trivial bound 0 is proven
    (the root alone). The proof is checked exactly before it is returned. ``symmetry``: the hidden-unit swaps
    as symmetry rows (about 1.8x fewer nodes on the digits groups; proofs that VIPR cannot take)."""
    from bnnmilp.errors import SolverError
    from bnnmilp.milp.backends import SolveOptions, highs
    from bnnmilp.verification.checkers.proofs import check_proof
    from bnnmilp.verification.proofs.bnb import branch_and_bound
    from bnnmilp.verification.proofs.composite import group_training
    from bnnmilp.verification.proofs.proof import proof_doc, trivial_proof
    from bnnmilp.verification.proofs.symmetry import unit_symmetry

    t0 = time.perf_counter()
    tm = group_training(spec, ds, samples)
    model = tm.model
    sol = highs.solve_or_stop(model, SolveOptions(time_limit=time_limit))
    optimum = sol.objective if sol.status == "optimal" else None
    target = optimum if optimum is not None else (sol.bound if sol.bound is not None else 0.0)
    target = max(0.0, float(round(target) if optimum is not None else math.ceil(target - 1e-6)))
    nodes = 0
    for cutoff in dict.fromkeys([target, 0.0]):  # the target, else the trivial bound
        doc = trivial_proof(model) if cutoff == 0 else None  # the column box: no LP needed
        left = time_limit - (time.perf_counter() - t0)
        if doc is None and left < MIN_PROOF_SECONDS:
            continue  # no time for a search: the trivial bound (the group's share of the budget is spent)
        if doc is None:
            # without propagation: on these groups it costs 2-6x the time for 5-25% fewer nodes, and the
            # decomposition works against a time budget (docs/certificates.md, certificate benchmark)
            tree = branch_and_bound(model, cutoff=cutoff, time_limit=left, priority=tm.branching_priority(),
                                    propagate=False, symmetry=unit_symmetry(tm) if symmetry else None)
            nodes += len(tree.nodes)
            doc = proof_doc(model, tree) if tree.status == "optimal" and tree.claimed_exact is not None else None
        rep = check_proof(model, doc) if doc is not None else None
        if rep is not None and rep.ok and rep.claim == Fraction(doc["claimed_bound_exact"]):
            return Group(list(samples), sol.status, optimum, doc, round(time.perf_counter() - t0, 3), nodes)
    raise SolverError(f"no proof of any bound for the group {list(samples)} (HiGHS: {sol.status})")


def capacity_group(spec: Spec, ds: Dataset) -> Group | None:
    """The whole data as one group with its capacity proof (None where that bound is 0 or does not apply)."""
    from bnnmilp.verification.proofs.capacity import capacity_proof

    t0 = time.perf_counter()
    doc = capacity_proof(spec, ds, list(range(ds.n_samples)))
    if doc is None:
        return None
    return Group(list(range(ds.n_samples)), "capacity", None, doc, round(time.perf_counter() - t0, 3), 0)


@job_kind("bound-group")
def run_group_job(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``bound-group`` job of the execution layer: payload {spec, data, samples, time_limit[, symmetry]}."""
    from bnnmilp.data import load_data
    from bnnmilp.spec import parse_spec

    ds = load_data(payload["data"])
    return prove_group(parse_spec(payload["spec"]), ds, payload["samples"], payload["time_limit"],
                       payload.get("symmetry", True)).to_dict()


Runner = Callable[[list[list[int]], float], list[Group]]


def in_process(spec: Spec, ds: Dataset, on_group: Callable[[Group], None] | None = None,
               symmetry: bool = True) -> Runner:
    """Groups proven one after another in this process; ``on_group`` is told of each as it is proven."""

    def run(groups: list[list[int]], limit: float) -> list[Group]:
        out = []
        for g in groups:
            out.append(prove_group(spec, ds, g, limit, symmetry))
            if on_group:
                on_group(out[-1])
        return out

    return run


def job_runner(spec: Spec, data: str, out_dir: str, workers: int = 1, scheduler: str | None = None,
               on_done: Callable[[dict], None] | None = None, symmetry: bool = True) -> Runner:
    """Groups proven as ``bound-group`` jobs of the execution layer (``execution.jobs``): a process pool of
    ``workers`` or Dask; each group's result is written to OUT_DIR/jobs (a rerun reuses finished groups)."""
    from pathlib import Path

    from bnnmilp.errors import SolverError
    from bnnmilp.execution.jobs import Job, execute

    def run(groups: list[list[int]], limit: float) -> list[Group]:
        jobs = [Job.make("bound-group", {"spec": spec.to_dict(), "data": str(Path(data).resolve()),
                                         "samples": [int(i) for i in g], "time_limit": float(limit),
                                         "symmetry": symmetry})
                for g in groups]
        records = execute(jobs, out_dir, workers=workers, scheduler=scheduler, on_done=on_done)
        failed = [r for r in records if not r.get("ok")]
        if failed:
            raise SolverError(f"group {failed[0]['payload']['samples']} failed: {failed[0]['error']}")
        return [Group.from_dict(r["result"]) for r in records]

    return run


def decomposition_bound(spec: Spec, ds: Dataset, groups: str | int = "auto", time_limit: float = 300.0,
                        group_time_limit: float = GROUP_TIME_LIMIT, run: Runner | None = None,
                        parallel: int = 1, on_round: Callable[[dict[str, Any]], None] | None = None,
                        stop_after_capacity: bool = False) -> BoundResult:
    """A proven lower bound on the training MILP's optimum: the sum of the groups' proven bounds.

    Parameters
    ----------
    spec, ds : Spec, Dataset
        The training problem (the spec's formulation options build each group's MILP).
    groups : "auto" or int
        "auto": conflict groups of half the number of classes (at least 2), then rounds with larger groups
        (one sample more; twice the size while every group's optimum is 0) while the time left allows and
        every group is proven, keeping the partition that proves most; an int: conflict groups of that
        size, one round.
    time_limit : float
        Seconds for the whole bound.
    group_time_limit : float
        Seconds for each group's HiGHS solve and its proof, at most.
    run : callable
        Proves a list of groups (``in_process`` by default; the CLI passes the job layer's pool or Dask).
    parallel : int
        How many groups ``run`` proves at once (its workers): each group's time limit is what is left over
        the number of waves.
    stop_after_capacity : bool
        Where the capacity bound is positive, take it and prove no group (it is instant; the groups take the
        time limit). Where it is 0, the groups are proven as usual.

    Returns
    -------
    BoundResult
        The bound, the groups and the composite proof (checked exactly).
    """
    from bnnmilp.errors import SolverError
    from bnnmilp.verification.proofs.composite import check_composite, composite_doc

    t0 = time.perf_counter()
    run = run or in_process(spec, ds)
    n_classes = len(np.unique(ds.labels))
    size = max(2, n_classes // 2) if groups == "auto" else int(groups)
    size = min(size, ds.n_samples)

    def left() -> float:
        return time_limit - (time.perf_counter() - t0)

    def total(gs: list[Group]) -> Fraction:
        return sum((g.claim for g in gs), Fraction(0))

    def attempt(sz: int) -> tuple[list[Group], float]:
        parts = conflict_groups(ds.labels, sz)
        waves = math.ceil(len(parts) / max(1, parallel))  # groups proven one after another per worker
        t = time.perf_counter()
        got = run(parts, min(group_time_limit, max(MIN_PROOF_SECONDS, FINISH * left() / waves)))
        return got, time.perf_counter() - t

    cap = capacity_group(spec, ds)
    if cap is not None and on_round:
        on_round({"round": "capacity", "group_size": ds.n_samples, "bound": float(cap.claim), "groups": 1,
                  "codes": cap.proof["codes"], "time_s": round(time.perf_counter() - t0, 3)})
    rounds, interrupted, history = 0, False, []
    if stop_after_capacity and cap is not None and cap.claim > 0:
        current, size, groups = [cap], ds.n_samples, "capacity"
    else:
        current, spent = attempt(size)
        history = [{"round": 0, "group_size": size, "bound": float(total(current)), "groups": len(current),
                    "time_s": round(time.perf_counter() - t0, 3)}]
        if on_round:
            on_round(history[-1])
    best_size = size
    while groups == "auto" and size < ds.n_samples:
        if any(g.optimum is None for g in current if len(g.samples) >= size):
            break  # groups of this size already time out: bigger ones will not be proven
        size = min(ds.n_samples, size * 2 if total(current) == 0 else size + 1)  # zero groups: merge in pairs
        if spent * GROWTH > left():
            break
        try:
            got, spent = attempt(size)
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) while growing: the finished rounds' best is kept
            interrupted = True
            break
        rounds += 1
        kept = total(got) > total(current)
        if kept:
            current, best_size = got, size
        history.append({"round": rounds, "group_size": size, "bound": float(total(got)), "kept": kept,
                        "groups": len(got), "time_s": round(time.perf_counter() - t0, 3)})
        if on_round:
            on_round(history[-1])
        if any(g.optimum is None for g in got):
            break
    size = best_size
    current.sort(key=lambda g: g.samples[0])
    by, split = "decomposition", total(current)
    if cap is not None and (cap.claim > split or current == [cap]):
        current, by = [cap], "capacity"
    engine = {"grouping": str(groups), "group_size": size, "rounds": rounds, "history": history, "by": by,
              "capacity": None if cap is None else cap.proof["claimed_bound_exact"],
              "decomposition": str(split),
              "interrupted": interrupted,
              "time_s": round(time.perf_counter() - t0, 3),
              "groups": [{"samples": g.samples, "status": g.status, "optimum": g.optimum, "time_s": g.time_s,
                          "nodes": g.nodes} for g in current]}
    doc = composite_doc(spec, ds, [{"samples": g.samples, "proof": g.proof} for g in current], engine)
    rep = check_composite(spec, ds, doc)  # never hand out a proof the exact checker rejects
    if not rep.ok or rep.claim is None:
        raise SolverError(f"the composite proof does not check ({rep.errors[0] if rep.errors else 'no claim'})")
    return BoundResult(rep.claim, current, doc, rounds, round(time.perf_counter() - t0, 3), history, interrupted, by)
