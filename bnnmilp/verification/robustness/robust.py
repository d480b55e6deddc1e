"""Robustness verification of trained networks: per sample, a counterexample or a proof.

Soundness: ``not_robust`` is only answered after the counterexample has been replayed through the exact
forward pass and its distance checked in rational arithmetic; ``robust`` rests either on rigorous
interval arithmetic (no solver involved) or on the solver's infeasibility proof, cross-checked by a
second solve with the other presolve setting (presolve on answers first; presolve off where that settles
nothing within its share of the time, or loops past it: ``guarded``); whatever cannot be settled is ``unknown``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import partial

import highspy
import numpy as np

from bnnmilp.execution.jobs import job_kind
from bnnmilp.formulations import get
from bnnmilp.formulations.robustness import (
    RobustnessQuery,
    fixed_output,
    ibp_bounds,
    interval_affine,
    on_lattice,
)
from bnnmilp.io.yamlio import fraction_str
from bnnmilp.milp.backends import Solution, SolveOptions, highs
from bnnmilp.network import Network
from bnnmilp.network.sparse import dense, is_sparse, matmul_t, values
from bnnmilp.verification.robustness.replay import in_perturbation_set, replay


@dataclass(frozen=True)
class RobustOptions:
    """A robustness query: the ball (``eps``, ``norm``), the input domain, what must not change and limits."""

    eps: float | None
    norm: str = "inf"  # inf | 1
    domain: str = "continuous"  # continuous | integer
    bounds: tuple[float, float] | None = None
    against: str = "prediction"  # prediction | label
    min_eps: bool = False
    time_limit: float | None = 60.0
    prune: bool = True
    cross_check: bool = True
    reuse: bool = False  # with finite --bounds: one model for all samples, changed by bounds per sample
    output: str = "bits"  # bits: any output bit differs; argmax: some class k != y scores s_k >= s_y
    engine: str = "auto"  # auto: enum where small, else search, sat, branch and bound, milp | enum | sat | milp
    box: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # per-feature lower and upper bounds
    split: int = 1  # processes that share one query's exhaustive enumeration (``verification.robustness.split``)


PRESOLVE_SHARE = 0.5  # of a solve's time for HiGHS with presolve on, then presolve off (``SolveOptions``)


def guarded(limit: float | None) -> SolveOptions:
    """A query's solve: presolve on for PRESOLVE_SHARE of the time, then, where that settles nothing (or
    HiGHS's presolve loops past its limit and is abandoned), presolve off for the rest."""
    return SolveOptions(time_limit=limit, presolve_share=PRESOLVE_SHARE)


def checking(sol) -> tuple[bool, str, str]:
    """(presolve for the cross-check of ``sol``'s answer, the setting that answered, the one that checks): the
    check runs HiGHS with the other presolve setting (presolve off answers where presolve on did not)."""
    answered_on = "presolve_on" not in sol.info
    return not answered_on, "on" if answered_on else "off", "off" if answered_on else "on"


class QuerySession:
    """One HiGHS model reused across samples: big-M from interval arithmetic over the whole input domain
    (valid for every sample's ball inside it); per sample only bounds change (x', bits fixed by the
    sample's own interval arithmetic, the L1/radius rows' sides) and the differ row's coefficients."""

    def __init__(self, net: Network, opts: RobustOptions) -> None:
        assert opts.bounds is not None
        d0, dL = net.weights[0].shape[1], net.weights[-1].shape[0]
        lo, hi = np.full(d0, float(opts.bounds[0])), np.full(d0, float(opts.bounds[1]))
        if opts.domain == "integer":
            lo, hi = np.ceil(lo), np.floor(hi)
        self.net, self.opts = net, opts
        self.q = build_query(net, np.zeros(d0), np.zeros(dL, dtype=np.int8), replace(opts, eps=opts.eps, bounds=None),
                             box=(lo, hi))
        self.model = get("robustness").build(self.q)
        self.h = highs.to_highs(self.model)
        blocks = self.model.row_blocks
        self.differ = blocks["differ"].start
        self.xcols = self.model.cols("x").astype(np.int32)
        self.ucols = [self.model.cols(f"u{l}").astype(np.int32) for l in range(1, len(net.weights) + 1)]
        self.rows = {k: blocks[k].start for k in ("tpos", "tneg", "rlo", "rhi") if k in blocks}
        self.broken = False  # HiGHS was abandoned while running on self.h: never touch it again

    def solve(self, x: np.ndarray, ref: np.ndarray, lo: np.ndarray, hi: np.ndarray, presolve: bool | None = None,
              time_limit: float | None = None):
        """presolve None: ``guarded``; True or False: that setting only."""
        from bnnmilp.formulations.robustness import ibp_bounds

        h, d0 = self.h, x.shape[0]
        h.changeColsBounds(d0, self.xcols, lo, hi)
        for cols, (g_lo, g_hi) in zip(self.ucols, ibp_bounds(self.net, lo, hi), strict=True):
            u_hi = (g_hi >= 0).astype(np.float64)
            h.changeColsBounds(len(cols), cols, np.minimum((g_lo >= 0).astype(np.float64), u_hi), u_hi)
        r = ref.astype(np.float64)
        for j, col in enumerate(self.ucols[-1]):
            h.changeCoeff(self.differ, int(col), float(1.0 - 2.0 * r[j]))
        h.changeRowBounds(self.differ, float(1.0 - r.sum()), highspy.kHighsInf)
        inf = highspy.kHighsInf
        for k, start in self.rows.items():
            for j in range(d0):
                lower, upper = {"tpos": (-x[j], inf), "tneg": (x[j], inf), "rlo": (x[j], inf),
                                "rhi": (-inf, x[j])}[k]
                h.changeRowBounds(start + j, float(lower), float(upper))
        sol = highs.solve_or_stop(self.model, guarded(time_limit) if presolve is None else
                          SolveOptions(time_limit=time_limit, presolve=presolve), h=h)
        self.broken = bool(sol.info.get("abandoned"))
        return sol


@dataclass
class SampleResult:
    index: int
    answer: str  # robust | not_robust | unknown
    method: str
    time_s: float
    counterexample: list[float] | None = None
    distance: str | None = None  # exact ||x' - x|| of the counterexample, as a fraction
    min_eps_bound: float | None = None  # solver's lower bound on the smallest perturbation (reported)
    note: str = ""
    reference: list[int] = field(default_factory=list)
    float_check: str | None = None  # imported networks: the counterexample in the model's own float semantics

    def to_dict(self) -> dict:
        return asdict(self)


def answering(index: int, reference: list, t0: float) -> Callable[..., SampleResult]:
    """``done(answer, method, **details)``: a SampleResult of this query, timed from t0."""

    def done(answer: str, method: str, **kw) -> SampleResult:
        return SampleResult(index, answer, method, time.perf_counter() - t0, reference=reference, **kw)

    return done


def search_box(x: np.ndarray, opts: RobustOptions) -> tuple[np.ndarray, np.ndarray]:
    """The box x' ranges over: the input domain (--bounds, and the per-feature --box), cut to the ball's box."""
    lo = np.full(x.shape, -np.inf) if opts.bounds is None else np.full(x.shape, float(opts.bounds[0]))
    hi = np.full(x.shape, np.inf) if opts.bounds is None else np.full(x.shape, float(opts.bounds[1]))
    if opts.box is not None:
        lo, hi = np.maximum(lo, np.asarray(opts.box[0])), np.minimum(hi, np.asarray(opts.box[1]))
    if opts.eps is not None:
        lo, hi = np.maximum(lo, x - opts.eps), np.minimum(hi, x + opts.eps)
    if opts.domain == "integer":
        lo, hi = np.ceil(lo), np.floor(hi)
    return lo, hi


def _candidate(x_sol: np.ndarray, d0: int, opts: RobustOptions, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    xp = x_sol[:d0].copy()
    if opts.domain == "integer":
        xp = np.round(xp)
    return np.clip(xp, lo, hi) + 0.0


ENUM_LIMIT = 2_000_000  # choices of first-layer flips that auto enumerates before anything else
ENUM_RATE = 1_000_000  # choices per second the enumeration is assumed to manage (Sakai's networks: 1.2 million)
ENUM_SHARE = 0.5  # of the time left, for an enumeration that cannot finish in it, as a search (a hit is replayed)
ENUM_STRETCH = 2.0  # an enumeration estimated to need at most this much of the time left gets all of it (the
# estimate is conservative, and where it is that close the other engines have not settled Sakai's queries)


def by_enumeration(net: Network, x: np.ndarray, opts: RobustOptions, lo: np.ndarray, hi: np.ndarray,
                   adversarial: Callable, score: Callable | None = None, safe: Callable | None = None,
                   target: np.ndarray | int | None = None, deadline: float | None = None,
                   rivals: Sequence[Callable] | None = None) -> tuple[str, np.ndarray | None, str, str] | None:
    """(answer, counterexample, note, method) from the reachable first-layer bits (``reach``), or None where
    they do not apply (real inputs, a first layer that mixes features) or, with engine auto, nothing settled
    the query and the MILP should try. auto: exhaustive enumeration where the choices are few (ENUM_LIMIT);
    else a quick search for a counterexample (greedy, random), the exhaustive enumeration where the choices are
    few for its speed (ENUM_LIMIT x speed-up) or it may fit in the time left (at ENUM_RATE, up to
    ENUM_STRETCH), else, given ``rivals`` (None: the caller runs its own, as --min-eps does) and ``score``, the
    beam searches of ``_beam_upper`` from the budget and from 2 and 4 times it (a counterexample found further
    out is cheapened by the local search; only one within the budget counts), then the enumeration for
    ENUM_SHARE of the time left (its counterexamples are replayed like any other; if it finishes, it is
    exhaustive), SAT (10 s), branch and bound (20,000 nodes). ``robust`` only from an exhaustive enumeration,
    a confirmed UNSAT or a completed branch and bound; ``unknown`` when the deadline (time.perf_counter())
    stops an enumeration that was the last resort."""
    from bnnmilp.verification.robustness import reach, split

    if opts.engine == "milp" or opts.domain != "integer" or opts.eps is None or opts.min_eps:
        return None
    if opts.output == "argmax" and len(net.weights) < 2:  # the first layer is the score layer itself
        return None
    units = reach.threshold_layer(net)
    if units is None:
        return None
    r = reach.reachable(net, x, opts.eps, opts.norm, lo, hi, units)
    flips = f"{len(r.flips)} reachable first-layer patterns, {r.combinations} choices"

    def left() -> float:
        return math.inf if deadline is None else deadline - time.perf_counter()

    def exhaustive(until: float | None = deadline) -> tuple[str, np.ndarray | None, str, str]:
        try:
            xp = split.search(prepared, x, adversarial, until, opts.split)
        except reach.SearchTimeoutError as stop:
            return "unknown", None, f"enumeration stopped at the time limit after {stop.done} of {flips}", "enum"
        on = f" on {opts.split} processes" if split.usable(opts.split, r.combinations) else ""
        if xp is None:
            return "robust", None, f"exhaustive enumeration{on}: {flips}, none adversarial", "enum"
        return "not_robust", xp, f"enumeration{on} ({flips}): replayed exactly", "enum"

    prepared = reach.Enumeration(net, r, opts.eps, opts.norm)  # built once: for the estimate and the search
    if opts.engine == "enum" or (opts.engine == "auto" and r.combinations <= ENUM_LIMIT):
        return exhaustive()
    if opts.engine == "auto":
        xp = reach.attack(net, x, r, opts.eps, opts.norm, adversarial, score)
        if xp is not None:
            return "not_robust", xp, f"search among {flips}: replayed exactly", "search"
        fast = prepared.speedup * split.gain(opts.split, r.combinations)  # makes the tail plan: only now that
        # the quick search found nothing
        if r.combinations <= max(ENUM_LIMIT * fast, ENUM_STRETCH * ENUM_RATE * fast * left()):
            return exhaustive()
        # it cannot finish in time: beam searches (mnist image 10 at L1 budget 12: 10 from the one against class
        # 4; they are time-boxed, so what they find can move between runs), then the enumeration as a search for
        # part of it (image 1 at L1 budget 6, 5.5 billion choices, its first counterexample comes after 14 s)
        if rivals is not None and score is not None:
            e = math.floor(opts.eps)
            got = _beam_upper(net, x, opts, e, 4 * e, adversarial, score, deadline, rivals, (1, 2, 4), enough=e)
            if got is not None and got[0] <= e:
                return "not_robust", got[1], f"beam search among {flips}: replayed exactly", "search"
        searched = exhaustive(time.perf_counter() + ENUM_SHARE * left())
        if searched[0] != "unknown":
            return searched
    from bnnmilp.verification.robustness import sat

    limit = min(left(), opts.time_limit or math.inf, math.inf if opts.engine == "sat" else 10.0)
    answer = sat.solve(net, x, r, opts.eps, opts.norm, opts.output, target, limit) \
        if target is not None and limit > 0 else None
    if answer is not None and answer.answer != "unknown":
        return answer.answer, answer.counterexample, f"{answer.note} over {flips}", "sat"
    if opts.engine == "sat":
        return "unknown", None, answer.note if answer else "the SAT encoding does not apply", "sat"
    bnb = reach.branch_and_bound(net, x, r, opts.eps, opts.norm, adversarial, safe, 20_000, deadline) \
        if safe else None
    if bnb is not None and bnb.answer != "unknown":
        how = f"branch and bound over {flips} ({bnb.nodes} nodes, {bnb.leaves} evaluated exactly)"
        if bnb.answer == "robust":
            return "robust", None, f"{how}: the rest pruned by interval arithmetic, none adversarial", "enum"
        return "not_robust", bnb.counterexample, f"{how}: replayed exactly", "enum"
    return _reduced_milp(net, x, r, opts, target, left(), flips) if target is not None else None


def _reduced_milp(net: Network, x: np.ndarray, r, opts: RobustOptions, target: np.ndarray | int, limit: float,
                  flips: str) -> tuple[str, np.ndarray | None, str, str] | None:
    """HiGHS on the reduced MILP (``reduced_robustness``: flips as variables, fixed units folded); None where it
    does not apply. Infeasible is confirmed with the other presolve setting, as for the full MILP."""
    from bnnmilp.formulations.robustness import ReducedQuery
    from bnnmilp.verification.robustness import reach

    red = reach.reduced(net, r)
    if red is None or red[0].shape[1] == 0 or limit <= 0:
        return None
    D, a0, lam, rest = red
    label = int(target) if isinstance(target, (int, np.integer)) else None
    q = ReducedQuery(Network([np.ascontiguousarray(D.T), *rest.weights], [lam - a0, *rest.thresholds]),
                     np.array([f.feature for f in r.flips]), np.array([f.cost for f in r.flips]), float(opts.eps),
                     opts.norm, np.zeros(1) if label is not None else np.asarray(target), label)
    model = get("reduced_robustness").build(q)
    t0 = time.perf_counter()
    sol = highs.solve_or_stop(model, guarded(limit))
    what = f"reduced MILP over {flips}, {D.shape[1]} free second-layer units"
    if sol.status == "infeasible":
        if not opts.cross_check:
            return "robust", None, f"{what}: solver proof of infeasibility (not cross-checked)", "milp"
        presolve, one, other = checking(sol)
        again = highs.solve_or_stop(model, SolveOptions(time_limit=max(0.01, limit - (time.perf_counter() - t0)),
                                                presolve=presolve))
        if again.status == "infeasible":
            return "robust", None, f"{what}: solver proof of infeasibility, confirmed with presolve {other}", "milp"
        return "unknown", None, f"{what}: infeasible with presolve {one}, {again.status} with presolve {other}", \
            "milp"
    if sol.x is None:
        return "unknown", None, f"{what}: solver status {sol.status}", "milp"
    chosen = [i for i, v in enumerate(sol.x[:len(r.flips)]) if v > 0.5]
    xp = x.copy()
    for i in chosen:
        xp[r.flips[i].feature] = r.flips[i].value
    return "not_robust", xp, f"{what}: replayed exactly", "milp"


def smallest_by_enumeration(net: Network, x: np.ndarray, opts: RobustOptions, adversarial: Callable,
                            score: Callable | None = None, safe: Callable | None = None,
                            target: np.ndarray | int | None = None, rivals: Sequence[Callable] = ()
                            ) -> tuple[str, int, np.ndarray | None, str] | None:
    """--min-eps for integer inputs: budgets e = 1, 2, ... each decided by ``by_enumeration``. Returns
    ("not_robust", e, x', note) when e is the smallest adversarial budget (every smaller one proven robust by
    exhaustive enumeration), ("robust", e, None, note) when no input of the domain is adversarial (e the
    largest budget that matters), ("unknown", e, None, note) when budget e could not be decided (every
    smaller one is robust: e is a proven lower bound), or None where enumeration does not apply."""
    from bnnmilp.verification.robustness import reach

    if opts.engine == "milp" or opts.domain != "integer" or reach.threshold_layer(net) is None:
        return None
    if opts.output == "argmax" and len(net.weights) < 2:
        return None
    dom_lo, dom_hi = search_box(x, replace(opts, eps=None))
    span = np.maximum(x - dom_lo, dom_hi - x)
    if not np.all(np.isfinite(span)):
        return None
    top = int(span.max() if opts.norm == "inf" else span.sum())
    t0 = time.perf_counter()
    deadline = None if opts.time_limit is None else t0 + opts.time_limit
    how: list[str] = []
    upper: tuple[int, np.ndarray] | None = None  # a counterexample's exact distance and the point (beam search)
    beamed = score is None or opts.engine != "auto"
    for e in range(1, top + 1):
        if upper is not None and e >= upper[0]:
            return "not_robust", upper[0], upper[1], f"smallest budget {upper[0]}: every budget below proven " \
                f"robust ({', '.join(how) or 'none below'}); at {upper[0]}: beam search, replayed exactly"
        at = replace(opts, eps=float(e), min_eps=False)
        lo, hi = search_box(x, at)
        found = None
        if not beamed:
            r = reach.reachable(net, x, e, opts.norm, lo, hi, reach.threshold_layer(net))
            if r.combinations > ENUM_LIMIT:  # the budgets get expensive: unless the quick search settles this
                xp = reach.attack(net, x, r, e, opts.norm, adversarial, score)  # one, look further out first
                if xp is not None:
                    found = ("not_robust", xp, f"search among {len(r.flips)} reachable first-layer patterns: "
                                               "replayed exactly", "search")
                else:
                    beamed = True
                    upper = _beam_upper(net, x, opts, e, top, adversarial, score, deadline, rivals)
                    if upper is not None and e >= upper[0]:
                        continue
        if found is None:
            found = by_enumeration(net, x, at, lo, hi, adversarial, score, safe, target, deadline)
        if found is None or found[0] == "unknown":
            why = found[2] if found else "no engine settled it"
            if upper is not None:
                return "unknown", e, upper[1], f"the smallest perturbation lies in [{e}, {upper[0]}]: budget {e} " \
                    f"not decided ({why}), every budget below is robust; a counterexample at distance {upper[0]} " \
                    "(beam search, replayed exactly)"
            return "unknown", e, None, f"budget {e} not decided ({why}); every budget below is robust"
        if found[0] == "not_robust":
            return "not_robust", e, found[1], f"smallest budget {e}: every budget below proven robust " \
                                              f"({', '.join(how) or 'none below'}); at {e}: {found[2]}"
        how.append(f"{e}: {found[3]}")
        if deadline is not None and time.perf_counter() > deadline:
            return "unknown", e + 1, None if upper is None else upper[1], \
                f"time limit after budget {e}: every budget up to {e} is robust" + \
                ("" if upper is None else f"; a counterexample at distance {upper[0]} (beam search, replayed exactly)")
    return "robust", top, None, f"no input of the domain changes the output (budgets up to {top} enumerated)"


BEAM_SHARE = 1 / 3  # of the query's time limit (at most BEAM_SECONDS) for the beam searches (``_beam_upper``)
BEAM_SECONDS = 30.0
BEAM_WIDTH = 256  # rows each beam keeps per step (the rankings by ``score``)
RIVAL_WIDTH = 128  # and against one rival class each: narrower, so that all classes get their turn


def _beam_upper(net: Network, x: np.ndarray, opts: RobustOptions, e: int, top: int, adversarial: Callable,
                score: Callable, deadline: float | None, rivals: Sequence[Callable] = (),
                starts: Sequence[int] = (4, 5, 6, 8, 12, 16), enough: int | None = None
                ) -> tuple[int, np.ndarray] | None:
    """(exact distance rounded up, x') of the cheapest counterexample the beam searches find (``reach.beam``,
    each choice cheapened by ``reach.polish``): an upper bound on the smallest perturbation once the caller
    has replayed it, or None if they find none in their share of the time. Budget e is the first one left
    undecided so far. Three phases, each until its fraction of the share: ``score`` exact (a quarter), then
    smoothed (to half, or to the end without rivals), then each of ``rivals`` (argmax outputs: s_y - s_k for
    one class k), smoothed and exact, in narrower beams. In each phase every ranking starts afresh at budgets
    m * e for m in ``starts`` (at most ``top``) in turn, and after a counterexample at distance d searches
    again below d: a smaller budget leaves fewer flips, a narrower search; the search ends once d is at most
    ``enough`` (default e + 1). ``by_enumeration`` asks for one budget e: starts 1, 2 and 4, enough e, and only
    a counterexample within e answers its query. Measured on Sakai's networks (the brackets in docs/robustness.md): each
    ranking, each start and the polish find counterexamples the others miss (mnist image 21 at L1: 12 from
    budget 16, 7 from budget 20; benchmarks/external_beyond.py: fixed budgets where HiGHS settles nothing);
    s_y - max_k s_k steers towards the nearest class, which may be the hardest to reach (image 10: the nearest
    class is 9, nothing below 23 from either untargeted ranking, 10 against class 4)."""
    from bnnmilp.verification.robustness import reach

    units = reach.threshold_layer(net)
    now = time.perf_counter()
    share = BEAM_SECONDS if opts.time_limit is None else min(BEAM_SECONDS, BEAM_SHARE * opts.time_limit)
    stop = now + share if deadline is None else min(deadline, now + share)
    best: tuple[int, np.ndarray] | None = None
    caps = sorted({min(top, m * e) for m in starts})
    plan = [([(score, False)], BEAM_WIDTH, 0.25), ([(score, True)], BEAM_WIDTH, 0.5 if rivals else 1.0)]
    if rivals:
        plan.append(([(s, smooth) for s in rivals for smooth in (True, False)], RIVAL_WIDTH, 1.0))
    enough = e + 1 if enough is None else enough  # --min-eps: only budget e could be cheaper, and its
    # enumeration, needed to prove e + 1 anyway, finds that; more search here is wasted
    balls: dict[int, tuple] = {}  # cap -> (options, box, reachable patterns): every ranking starts at the same caps

    def ball(cap: int) -> tuple:
        if cap not in balls:
            at = replace(opts, eps=float(cap), min_eps=False)
            lo, hi = search_box(x, at)
            balls[cap] = at, lo, hi, reach.reachable(net, x, cap, opts.norm, lo, hi, units)
        return balls[cap]

    for rankings, width, part in plan:  # each phase until its fraction of the share
        until = now + part * (stop - now)
        for start, (rank, smooth) in itertools.product(caps, rankings):
            cap = start
            while cap >= e and time.perf_counter() < until:
                if best is not None and best[0] <= enough:
                    return best
                at, lo, hi, r = ball(cap)
                xp = reach.beam(net, x, r, cap, opts.norm, adversarial, rank, width=width, deadline=until,
                                smooth=smooth, polished=True)
                if xp is None:
                    break
                inside, dist = in_perturbation_set(xp, x, at, lo, hi)  # the output is replayed by the caller
                if not inside:
                    break
                if best is None or math.ceil(dist) < best[0]:
                    best = (math.ceil(dist), xp)
                cap = best[0] - 1
    return best


def reference_bits(net: Network, x: np.ndarray, label: int, against: str) -> tuple[np.ndarray, np.ndarray]:
    """(the network's exact output bits on x, the bits a perturbation must keep)."""
    out = net.predict_bits(x[None, :])[0]
    if against != "label":
        return out, out
    ref = np.zeros_like(out)
    ref[0 if out.shape[0] == 1 else label] = label if out.shape[0] == 1 else 1
    return out, ref


def build_query(net: Network, x: np.ndarray, ref: np.ndarray, opts: RobustOptions,
                box: tuple[np.ndarray, np.ndarray] | None = None, argmax: bool = False) -> RobustnessQuery:
    """The MILP query for one sample; strict rows are exact where a layer's inputs are integers or bits (the
    thresholds moved onto the lattice, ``on_lattice``). ``argmax``: the last layer is a score layer."""
    lo, hi = search_box(x, opts) if box is None else box
    exact, deltas = on_lattice(net, opts.domain == "integer", argmax)
    return RobustnessQuery(exact, x.astype(np.float64), ref, lo, hi, opts.eps, opts.norm, opts.domain == "integer",
                           opts.min_eps, deltas)


def verify_sample(net: Network, x: np.ndarray, label: int, index: int, opts: RobustOptions,
                  session: QuerySession | None = None) -> SampleResult:
    """One sample's query: answered without a solver where the ball allows (empty, misclassified, fixed by
    intervals, settled by enumeration), else by the MILP; every counterexample replayed exactly."""
    t0 = time.perf_counter()
    out, ref = reference_bits(net, x, label, opts.against)
    done = answering(index, ref.astype(int).tolist(), t0)
    lo, hi = search_box(x, opts)
    early = _without_solver(net, x, out, ref, opts, lo, hi, done, t0)
    if early is not None:
        return early

    def left() -> float | None:
        """The query's time limit is for the whole query: each solve gets what remains of it."""
        return None if opts.time_limit is None else max(0.01, opts.time_limit - (time.perf_counter() - t0))

    q = build_query(net, x, ref, opts)
    sol, again = _solve_query(q, x, ref, lo, hi, session, left)
    if sol.x is not None and not replay(net, _candidate(sol.x, x.shape[0], opts, lo, hi), x, ref, opts, lo, hi)[0]:
        sol, settled = _settle_ties(q, sol, opts, done, left)
        if settled is not None:
            return settled
    return _from_solution(net, x, ref, opts, lo, hi, sol, again, done)


def _without_solver(net: Network, x: np.ndarray, out: np.ndarray, ref: np.ndarray, opts: RobustOptions,
                    lo: np.ndarray, hi: np.ndarray, done: Callable, t0: float) -> SampleResult | None:
    """The answers that need no solver: an empty ball, a sample misclassified already, outputs fixed by
    interval arithmetic, the smallest radius or a counterexample found by enumeration."""
    if np.any(lo > hi):
        return done("robust", "empty", note="no input of the domain lies in the ball")
    x_in = bool(np.all(x >= lo) and np.all(x <= hi)) and (opts.domain != "integer" or np.all(x == np.round(x)))
    if not np.array_equal(out, ref) and x_in:
        return done("not_robust", "replay", counterexample=x.tolist(), distance="0", note="misclassified already")
    if opts.prune:
        fixed = fixed_output(net, lo, hi)
        if fixed is not None and np.array_equal(fixed, ref):
            return done("robust", "interval", note="interval arithmetic fixes every output bit over the ball")

    def differs(rest, U) -> np.ndarray:
        return np.any((U if rest is None else rest.predict_bits(U)) != ref, axis=1)

    def same_output(later: Network, lo_bits: np.ndarray, hi_bits: np.ndarray) -> bool:
        fixed = fixed_output(later, lo_bits, hi_bits)
        return fixed is not None and np.array_equal(fixed, ref)

    if opts.min_eps:
        best = smallest_by_enumeration(net, x, opts, differs, safe=same_output, target=ref)
        if best is not None and best[0] != "unknown":
            return _min_eps_result(done, net, x, opts, best, lambda xp: replay(net, xp, x, ref, replace(
                opts, eps=float(best[1]), min_eps=False), *search_box(x, replace(opts, eps=None)))[0])
    found = by_enumeration(net, x, opts, lo, hi, differs, safe=same_output, target=ref,
                           deadline=None if opts.time_limit is None else t0 + opts.time_limit)
    if found is not None:
        answer, xp, note, how = found
        if answer != "not_robust":
            return done(answer, how, note=note)
        genuine, dist = replay(net, xp, x, ref, opts, lo, hi)
        if genuine:
            return done("not_robust", how, counterexample=xp.tolist(), distance=fraction_str(dist), note=note)
    return None


def _solve_query(q, x: np.ndarray, ref: np.ndarray, lo: np.ndarray, hi: np.ndarray, session: QuerySession | None,
                 left: Callable[[], float | None]) -> tuple[Solution, Callable[[bool], Solution]]:
    """The query's MILP solved (on the session's shared model where there is one), and a way to solve it again
    with presolve on or off (the cross-check)."""
    sol = None
    if session is not None:
        sol = session.solve(x, ref, lo, hi, time_limit=left())
        if session.broken:  # HiGHS still runs on the shared model: this query builds its own (``_session`` too)
            session = None
    if session is not None:
        def again(presolve: bool) -> Solution:
            return session.solve(x, ref, lo, hi, presolve=presolve, time_limit=left())

        return sol, again
    model = get("robustness").build(q)
    sol = highs.solve_or_stop(model, guarded(left()) if sol is None else
                              SolveOptions(time_limit=left(), presolve=False))

    def again(presolve: bool) -> Solution:
        return highs.solve_or_stop(model, SolveOptions(time_limit=left(), presolve=presolve))

    return sol, again


def _settle_ties(q, sol: Solution, opts: RobustOptions, done: Callable, left: Callable[[], float | None]
                 ) -> tuple[Solution, SampleResult | None]:
    """The solver's point does not replay (a tie, or a point within tolerance of a threshold): ask for a
    counterexample with a clear margin from every inexact threshold (any point it finds is genuine); on a
    real-valued first layer, a maximal strict slack of 0 proves that only ties change the output."""
    under = highs.solve_or_stop(get("robustness").build(replace(q, margin=1e-5)), guarded(left()))
    if under.x is not None:
        return under, None
    if q.delta[0] != 0.0 or opts.min_eps:
        return sol, None
    model = get("robustness").build(replace(q, strict=True))
    sol = highs.solve_or_stop(model, guarded(left()))
    if not (sol.status == "optimal" and sol.objective is not None and -sol.objective <= 1e-9):
        return sol, None
    if opts.cross_check:
        presolve, _, other = checking(sol)
        chk = highs.solve_or_stop(model, SolveOptions(time_limit=left(), presolve=presolve))
        if chk.status != "optimal" or chk.objective is None or -chk.objective > 1e-9:
            return sol, done("unknown", "milp", note=f"strict-slack optimum differs with presolve {other}")
    return sol, done("robust", "milp", note="only ties change the output: the solver's maximal strict slack is 0"
                     + (", confirmed with the other presolve setting" if opts.cross_check else ""))


def _from_solution(net: Network, x: np.ndarray, ref: np.ndarray, opts: RobustOptions, lo: np.ndarray,
                   hi: np.ndarray, sol: Solution, again: Callable[[bool], Solution], done: Callable) -> SampleResult:
    """The answer the MILP gives: robust on infeasibility (cross-checked with the other presolve setting when
    asked), not robust on a point that replays exactly, else unknown."""
    if sol.status == "infeasible":
        if opts.cross_check:
            presolve, one, other = checking(sol)
            chk = again(presolve)
            if chk.status != "infeasible":
                return done("unknown", "milp", note=f"presolve {one}: infeasible; presolve {other}: {chk.status}")
            return done("robust", "milp", note=f"solver proof of infeasibility, confirmed with presolve {other}")
        return done("robust", "milp", note="solver proof of infeasibility (not cross-checked)")
    if sol.x is None:
        return done("unknown", "milp", note=f"solver status {sol.status}")
    xp = _candidate(sol.x, x.shape[0], opts, lo, hi)
    genuine, dist = replay(net, xp, x, ref, opts, lo, hi)
    if not genuine:
        return done("unknown", "milp", note="the solver's point does not replay (a tie or a tolerance)")
    note = "counterexample replayed exactly"
    if opts.min_eps:
        note += "; distance exact; " + ("proven minimal by the solver" if sol.status == "optimal"
                                        else f"solver stopped: {sol.status}")
    return done("not_robust", "milp", counterexample=xp.tolist(), distance=fraction_str(dist),
                min_eps_bound=sol.bound if opts.min_eps else None, note=note)


_SESSIONS: dict[int, QuerySession] = {}


def _min_eps_result(done: Callable, net: Network, x: np.ndarray, opts: RobustOptions, best: tuple,
                    genuine: Callable[[np.ndarray], bool]) -> SampleResult:
    """A SampleResult from ``smallest_by_enumeration``: the counterexample replayed exactly, the bound proven."""
    answer, e, xp, note = best
    if answer == "unknown" and xp is not None:  # an upper bound: kept only if it replays
        if not genuine(xp):
            return done("unknown", "enum", min_eps_bound=float(e),
                        note=f"budget {e} not decided; every budget below is robust (the beam search's point does "
                             "not replay)")
        _, dist = in_perturbation_set(xp, x, replace(opts, eps=None, min_eps=True), *search_box(x, replace(
            opts, eps=None)))
        return done("unknown", "enum", counterexample=xp.tolist(), distance=fraction_str(dist),
                    min_eps_bound=float(e), note=note)
    if answer == "not_robust":
        if not genuine(xp):
            return done("unknown", "enum", min_eps_bound=float(e), note="the enumerated point does not replay")
        _, dist = in_perturbation_set(xp, x, replace(opts, eps=None, min_eps=True), *search_box(x, replace(
            opts, eps=None)))
        return done("not_robust", "enum", counterexample=xp.tolist(), distance=fraction_str(dist),
                    min_eps_bound=float(e), note=note)
    return done(answer, "enum", min_eps_bound=float(e), note=note)


def _session(net: Network, opts: RobustOptions, key: int) -> QuerySession | None:
    """One reusable model per process and network (only with a finite input domain)."""
    if not opts.reuse or opts.bounds is None or not all(map(math.isfinite, opts.bounds)):
        return None
    if key not in _SESSIONS or _SESSIONS[key].broken:
        _SESSIONS.clear()
        _SESSIONS[key] = QuerySession(net, opts)
    return _SESSIONS[key]


def rival_network(net: Network, y: int, k: int) -> Network | None:
    """The step network whose one output bit is [s_k - s_y >= 0] (class k ties or beats class y), or None
    when W_k - W_y or lambda_k - lambda_y is not exact in doubles (the query would not be exact)."""
    W, lam = net.weights[-1], net.thresholds[-1]
    wk, wy = (W.take_rows(np.array([k, y])).toarray() if is_sparse(W) else W[[k, y]])
    dw, dl = wk - wy, lam[k] - lam[y]
    exact = all(Fraction(float(d)) == Fraction(float(a)) - Fraction(float(b)) for d, a, b in zip(dw, wk, wy,
                                                                                             strict=True))
    if not exact or Fraction(float(dl)) != Fraction(float(lam[k])) - Fraction(float(lam[y])):
        return None
    return Network([*net.weights[:-1], dw[None, :]], [*net.thresholds[:-1], np.array([dl])])


def verify_argmax_sample(net: Network, x: np.ndarray, label: int, index: int, opts: RobustOptions) -> SampleResult:
    """Argmax output: is there an x' in the ball on which some class k != y scores s_k >= s_y (ties count)?

    One step query per rival class k (the output layer replaced by the unit [s_k - s_y >= 0]); any
    counterexample is replayed through the exact argmax of the whole network."""
    t0 = time.perf_counter()
    pred = int(net.argmax_predictions(x[None, :])[0])
    y = pred if opts.against == "prediction" else label
    done = answering(index, [y], t0)

    lo, hi = search_box(x, opts)
    if pred != y or y < 0:
        inside, _ = in_perturbation_set(x, x, opts, lo, hi)
        if inside:
            return done("not_robust", "replay", counterexample=x.tolist(), distance="0",
                        note="a tie or another class already" if y < 0 or pred < 0 else "misclassified already")
        return done("unknown", "replay", note="the sample itself lies outside the input domain")
    def beaten(rest, U) -> np.ndarray:
        return rest.argmax_predictions(U) != y

    def margin(rest, U, rival: int | None = None) -> np.ndarray:  # s_y - max_k s_k (or s_y - s_rival) in
        return rest.score_margins(U, np.full(U.shape[0], y), rival=rival)  # floating point: only steers searches

    def y_wins(later: Network, lo_bits: np.ndarray, hi_bits: np.ndarray) -> bool:
        """Rigorously: s_k < s_y for every k != y and every bit vector in [lo, hi] (interval arithmetic)."""
        if len(later.weights) > 1:
            g_lo, g_hi = ibp_bounds(Network(later.weights[:-1], later.thresholds[:-1]), lo_bits, hi_bits)[-1]
            lo_bits, hi_bits = (g_lo >= 0).astype(np.float64), (g_hi >= 0).astype(np.float64)
        W, lam = dense(later.weights[-1]), later.thresholds[-1]
        _, up = interval_affine(W - W[y], lo_bits, hi_bits, lam - lam[y])
        up[y] = -np.inf
        return bool(np.all(up < 0))

    rivals = [partial(margin, rival=k) for k in range(net.weights[-1].shape[0]) if k != y]
    if opts.min_eps:
        best = smallest_by_enumeration(net, x, opts, beaten, margin, y_wins, y, rivals)
        if best is None:
            return done("unknown", "none", note="--min-eps on argmax outputs needs integer inputs and a threshold "
                                                "input layer (enumeration)")
        return _min_eps_result(done, net, x, opts, best,
                               lambda xp: int(net.argmax_predictions(xp[None, :])[0]) != y)

    if opts.eps is not None and opts.engine == "auto":  # an engine the user named runs alone
        hit = falsify(partial(float_argmax, net), net.argmax_predictions, x, y, opts, lo, hi,
                      np.random.default_rng([FALSIFY_SEED, index]))
        if hit is not None:
            return done("not_robust", "sampling", counterexample=hit[0].tolist(), distance=fraction_str(hit[1]),
                        note=f"class {hit[2]} wins at a sampled point; replayed exactly" if hit[2] >= 0 else
                        "a tie at a sampled point; replayed exactly")
    found = by_enumeration(net, x, opts, lo, hi, beaten, margin, y_wins, y,
                           None if opts.time_limit is None else t0 + opts.time_limit, rivals)
    if found is not None:
        answer, xp, note, how = found
        if answer != "not_robust":
            return done(answer, how, note=note)
        inside, dist = in_perturbation_set(xp, x, opts, lo, hi)
        if inside and int(net.argmax_predictions(xp[None, :])[0]) != y:
            return done("not_robust", how, counterexample=xp.tolist(), distance=fraction_str(dist), note=note)
    bits_opts = replace(opts, against="prediction", output="bits")
    open_rivals, methods = [], set()
    others = [k for k in range(net.weights[-1].shape[0]) if k != y]
    for turn, k in enumerate(others):
        rival = rival_network(net, y, k)
        spent = time.perf_counter() - t0
        if rival is None or (opts.time_limit is not None and spent >= opts.time_limit):
            open_rivals.append(k)
            continue
        # an equal share of what is left for each rival still to come: the first cannot take every rival's time
        share = None if opts.time_limit is None else (opts.time_limit - spent) / (len(others) - turn)
        r = verify_sample(rival, x, 0, index, replace(bits_opts, time_limit=share))
        methods.add(r.method)
        if r.answer == "not_robust" and r.counterexample is not None:
            xp = np.asarray(r.counterexample, dtype=np.float64)
            inside, dist = in_perturbation_set(xp, x, opts, lo, hi)
            if inside and int(net.argmax_predictions(xp[None, :])[0]) != y:
                return done("not_robust", r.method, counterexample=xp.tolist(),
                            distance=fraction_str(dist),
                            note=f"class {k} scores at least class {y}'s; replayed exactly")
            open_rivals.append(k)
        elif r.answer != "robust":
            open_rivals.append(k)
    if open_rivals:
        return done("unknown", "milp", note=f"rival classes not settled: {open_rivals}")
    return done("robust", "+".join(sorted(methods)) or "none", note=f"no class beats or ties class {y}")


def _task(args: tuple) -> SampleResult:
    weights, thresholds, x, label, index, opts, key = args
    net = Network(weights, thresholds)
    if opts.output == "argmax":
        return verify_argmax_sample(net, x, label, index, opts)
    return verify_sample(net, x, label, index, opts, _session(net, opts, key))


def verify_robust(net: Network, X: np.ndarray, labels: np.ndarray, opts: RobustOptions,
                  on_result: Callable[[SampleResult], None] | None = None) -> list[SampleResult]:
    """Is the network's answer on each sample the same everywhere in a ball around it? Exact answers only.

    Parameters
    ----------
    net : Network
    X : ndarray, shape (m, d0)
        The samples.
    labels : ndarray, shape (m,)
        Their labels (used with ``opts.against == "label"``).
    opts : RobustOptions
        The ball (``eps``, ``norm``: ``inf`` or ``1``), the input domain (``continuous`` or ``integer``,
        ``bounds``), the time limit per query.
    on_result : callable, optional
        Called with each result as it is found.

    Returns
    -------
    list of SampleResult
        In sample order: ``answer`` is ``robust`` (proven), ``not_robust`` (with a ``counterexample``
        replayed in exact arithmetic) or ``unknown`` (with a ``note``); ``method`` says which engine.
        The per-sample queries run in this process; ``bnnmilp verify --robust --workers`` runs them as jobs.
    """
    key = None if opts.output == "argmax" else hash((tuple(values(w).tobytes() for w in net.weights),
                                                      tuple(t.tobytes() for t in net.thresholds), opts))
    results: list[SampleResult] = []
    for i in range(X.shape[0]):
        results.append(_task((net.weights, net.thresholds, X[i], int(labels[i]), i, opts, key)))
        if on_result:
            on_result(results[-1])
    return results


def query_jobs(weights: str, data: str, n_samples: int, opts: RobustOptions, box: str | None = None) -> list:
    """One job per sample for the execution layer (``execution.jobs``: in process, a process pool or Dask; results
    written per query, a rerun resumes). The payload names files, not arrays: a worker loads the network
    (a weights file, a run folder or an ensemble) and the data once per process."""
    from pathlib import Path

    from bnnmilp.execution.jobs import Job

    base = {"weights": str(Path(weights).resolve()), "data": str(Path(data).resolve()),
            "box": str(Path(box).resolve()) if box else None, "options": asdict(replace(opts, box=None))}
    return [Job.make("robust", {**base, "index": i}) for i in range(n_samples)]


_LOADED: dict[tuple, tuple] = {}


def _loaded(weights: str, data: str, box: str | None) -> tuple:
    """(weights file or ensemble, data set, per-feature box, session key), loaded once per process."""
    from pathlib import Path

    from bnnmilp.data import load_box, load_data
    from bnnmilp.io.runs import load_weights

    stamp = tuple((p, Path(p).stat().st_mtime_ns) for p in (weights, data, box) if p)
    if stamp not in _LOADED:
        _LOADED.clear()
        wf, ds = load_weights(weights), load_data(data)
        per = None
        if box:
            lo, hi = load_box(box, ds.n_features)
            per = (tuple(lo.tolist()), tuple(hi.tolist()))
        _LOADED[stamp] = (wf, ds, per, hash(stamp))
    return _LOADED[stamp]


@job_kind("robust")
def run_query(payload: dict) -> dict:
    """Execute one ``query_jobs`` job; the SampleResult as a dict."""
    from bnnmilp.network.ensemble import EnsembleFile

    wf, ds, per, key = _loaded(payload["weights"], payload["data"], payload.get("box"))
    o = dict(payload["options"])
    o["bounds"] = tuple(o["bounds"]) if o.get("bounds") is not None else None
    opts = RobustOptions(**{**o, "box": per})
    i = int(payload["index"])
    x, y = ds.features[i], int(ds.labels[i])
    if isinstance(wf, EnsembleFile):
        return verify_ensemble_sample(wf, x, y, i, opts).to_dict()
    net = wf.network
    return _task((net.weights, net.thresholds, x, y, i, opts, hash((key, opts)))).to_dict()


def from_record(rec: dict, index: int) -> SampleResult:
    """A job record back as a SampleResult; a job that failed is an ``unknown`` naming its error."""
    if rec.get("ok") and rec.get("result"):
        return SampleResult(**rec["result"])
    return SampleResult(index, "unknown", "error", 0.0, note=f"job failed: {rec.get('error')}")


def check_in_float(results: list[SampleResult], predict: Callable[[np.ndarray], tuple[np.ndarray, str] | None]
                   ) -> None:
    """Replay every counterexample through an imported model's own floating-point semantics as well (argmax
    outputs), and say in ``float_check`` whether it is adversarial there too or where the two differ."""
    cx = [r for r in results if r.counterexample is not None and r.reference]
    if not cx:
        return
    got = predict(np.array([r.counterexample for r in cx], dtype=np.float64))
    if got is None:
        for r in cx:
            r.float_check = "not checked: the model file or its runtime is not available"
        return
    pred, name = got
    for r, k in zip(cx, pred.tolist(), strict=True):
        y = r.reference[0]
        r.float_check = (f"adversarial in {name} too (class {k})" if k != y else
                         f"DIFFERS: {name} still predicts class {y} here (the exact network does not)")


def summary(results: list[SampleResult], labels: np.ndarray, predictions: np.ndarray) -> dict:
    counts = {a: sum(r.answer == a for r in results) for a in ("robust", "not_robust", "unknown")}
    by_method: dict[str, int] = {}
    for r in results:
        by_method[r.method] = by_method.get(r.method, 0) + 1
    n = len(results)
    vra = sum(1 for r in results if r.answer == "robust" and predictions[r.index] == labels[r.index]) / max(n, 1)
    times = [r.time_s for r in results]
    return {"samples": n, **counts, "by_method": by_method, "verified_robust_accuracy": vra,
            "mean_time_per_query_s": float(np.mean(times)) if times else 0.0,
            "max_time_per_query_s": float(np.max(times)) if times else 0.0}


def verify_ensemble_sample(ens, x: np.ndarray, label: int, index: int, opts: RobustOptions) -> SampleResult:
    """One-vs-one ensembles: one query per rival class; robust only if no rival can win anywhere in the ball."""
    t0 = time.perf_counter()
    pred = int(ens.predict(x[None, :])[0])
    ref = label if opts.against == "label" else pred
    done = answering(index, [ref], t0)

    lo, hi = search_box(x, opts)
    if pred != ref:
        return done("not_robust", "replay", counterexample=x.tolist(), distance="0", note="misclassified already")
    exact = [on_lattice(net, opts.domain == "integer") for net in ens.networks]
    near = np.full(ens.n_classes, -np.inf)  # the sampled points' best vote margin of each class over ref
    found = None if opts.engine != "auto" else \
        falsify_ensemble(ens, x, ref, opts, lo, hi, np.random.default_rng([FALSIFY_SEED, index]), near)
    if found is not None:
        xp, dist, winner = found
        return done("not_robust", "sampling", counterexample=xp.tolist(), distance=fraction_str(dist),
                    note=f"class {winner} wins at a sampled point; replayed exactly")
    bits = member_bit_ranges([n for n, _ in exact], lo, hi)
    rivals = _open_rivals(bits, ens, ref, near)
    if not rivals:
        return done("robust", "interval", note="interval arithmetic: no rival class can collect more votes than "
                                               f"class {ref} anywhere in the box")
    member_end = None if opts.time_limit is None else t0 + MEMBER_SHARE * opts.time_limit
    flips: dict[int, np.ndarray] = {}
    asked = member_ranges(ens, x, opts, bits, ref, rivals, member_end, flips)
    rivals = _open_rivals(bits, ens, ref, near)
    found = mixed_flips(ens, x, ref, rivals, flips, opts, lo, hi, np.random.default_rng([FALSIFY_SEED, index]))
    if found is not None:
        xp, dist, winner = found
        return done("not_robust", "members", counterexample=xp.tolist(), distance=fraction_str(dist),
                    note=f"class {winner} wins at a mix of members' own counterexamples; replayed exactly")
    if not rivals:
        return done("robust", "members", note=f"no rival class can collect enough votes: each member's vote over "
                                              f"the box proven on its own ({asked} member queries, the rest by "
                                              "interval arithmetic)")
    unsettled = _joint_queries(ens, exact, x, ref, rivals, bits, lo, hi, opts, t0)
    if isinstance(unsettled, SampleResult):
        return replace(unsettled, index=index, reference=[ref], time_s=time.perf_counter() - t0)
    if unsettled:
        return done("unknown", "milp", note=f"rivals not settled: {unsettled}")
    return done("robust", "milp", note="no rival class can win (member-wise proofs, then joint solver proofs"
                + (", each confirmed with the other presolve setting)" if opts.cross_check else ")"))


MEMBER_SHARE = 0.25  # of a query's time for proving members' votes one at a time, before the joint MILPs


def _open_rivals(bits: np.ndarray, ens, ref: int, near: np.ndarray) -> list[int]:
    """The classes that could still win the vote with each member's bit in its range, the one that came
    closest at the sampled points first, then the one with the most room: a counterexample ends the query
    before the others' proofs."""
    gaps = {r: vote_gap_bound(bits, ens.classes, r, ref) for r in range(ens.n_classes) if r != ref}
    return sorted((r for r, g in gaps.items() if g > 0 or (g == 0 and r < ref)), key=lambda r: (-near[r], -gaps[r]))


def member_ranges(ens, x: np.ndarray, opts: RobustOptions, bits: np.ndarray, ref: int, rivals: list[int],
                  end: float | None, flips: dict[int, np.ndarray]) -> int:
    """Narrow ``bits`` in place: each member that votes for ``ref`` or an open rival and whose bit interval
    arithmetic leaves open is asked on its own whether its bit can change in the box (a one-output robustness
    query with every engine; a small model, milliseconds). A member proven robust keeps its bit at x; one
    that can change puts its counterexample into ``flips``. Returns the number of member queries asked. Sound
    on its own: a member that cannot change alone cannot change in the joint query either; only the joint
    MILP sees which changes can happen together."""
    involved = {ref, *rivals}
    todo = [m for m, (a, c) in enumerate(ens.classes) if bits[m, 0] != bits[m, 1] and {a, c} & involved]
    for turn, m in enumerate(todo):
        left = _until(end)
        if left is not None and left <= 0.01:
            return turn
        share = None if left is None else left / (len(todo) - turn)
        res = verify_sample(ens.networks[m], x, 0, m, replace(opts, time_limit=share, against="prediction",
                                                              min_eps=False, split=1))
        if res.answer == "robust":
            bits[m] = res.reference[0]
        elif res.answer == "not_robust" and res.counterexample is not None:
            flips[m] = np.asarray(res.counterexample, dtype=np.float64)
    return len(todo)


MIXES = 256  # candidate points per rival class in ``mixed_flips``


def mixed_flips(ens, x: np.ndarray, ref: int, rivals: list[int], flips: dict[int, np.ndarray], opts: RobustOptions,
                lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Fraction, int] | None:
    """A counterexample for the whole vote made from members' own ones: for each open rival, the members whose
    change of vote helps it lend their counterexamples' directions; random subsets of them are mixed as
    weighted averages (inside the ball for any norm: it is convex) and, for L-infinity, as the corners their
    summed signs point to. Screened in floating point, decided exactly; a screen, not a proof."""
    out = []
    for rival in rivals:
        helping = []
        for m, (a, b) in enumerate(ens.classes):
            if m not in flips:
                continue
            now = a if int(ens.networks[m].predict_bits(x[None, :])[0, 0]) == 1 else b
            then = b if now == a else a
            if ((then == rival) - (then == ref)) > ((now == rival) - (now == ref)):
                helping.append(flips[m] - x)
        if not helping:
            continue
        D = np.array(helping)
        W = rng.random((MIXES, len(D))) * (rng.random((MIXES, len(D))) < MIX_KEEP)
        pts = [x + (W @ D) / np.maximum(W.sum(axis=1, keepdims=True), 1e-12)]
        if opts.norm == "inf" and opts.eps is not None:
            pts.append(x + float(opts.eps) * np.sign(W @ np.sign(D)))
        out.append(np.clip(np.vstack(pts), lo, hi))
    if not out:
        return None
    pts = np.vstack(out)
    if opts.domain == "integer":
        pts = np.clip(np.where(pts > x, np.floor(pts), np.ceil(pts)), np.ceil(lo), np.floor(hi))
    return first_counterexample(pts, lambda P: np.argmax(float_votes(ens, P), axis=1), ens.predict, x, ref, opts,
                                lo, hi)


MIX_KEEP = 0.6  # the chance that a helping member's counterexample takes part in a mix


def _joint_queries(ens, exact: list, x: np.ndarray, ref: int, rivals: list[int], bits: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray, opts: RobustOptions, t0: float) -> list[int] | SampleResult:
    """One MILP per open rival over the members that can still change (the others are constants): the
    rivals left unsettled, or the not-robust result of a counterexample replayed exactly. Two passes: each
    rival first gets at most FIRST_TRY seconds, so one hard rival does not hold up an easy counterexample;
    those that ran out share what is left."""
    from bnnmilp.formulations.robustness import EnsembleQuery

    fixed = [int(b_lo) if b_lo == b_hi else None for b_lo, b_hi in bits]
    unsettled: list[int] = []
    todo = list(rivals)
    for first in (True, False):
        again: list[int] = []
        for turn, rival in enumerate(todo):
            spent = time.perf_counter() - t0
            if opts.time_limit is not None and spent >= opts.time_limit:  # no solve past the query's limit
                return unsettled + again + todo[turn:]
            # an equal share of what is left for each rival still to come: the first cannot take every rival's
            share = None if opts.time_limit is None else (opts.time_limit - spent) / (len(todo) - turn)
            if first:
                share = FIRST_TRY if share is None else min(share, FIRST_TRY)
            q = EnsembleQuery([n for n, _ in exact], ens.classes, x.astype(np.float64), ref, rival, lo, hi,
                              opts.eps, opts.norm, opts.domain == "integer", [d for _, d in exact], fixed=fixed)
            outcome = _joint_rival(ens, q, opts, None if share is None else time.perf_counter() + share)
            if isinstance(outcome, SampleResult):
                return outcome
            if outcome == "out of time" and first:
                again.append(rival)
            elif outcome != "robust":
                unsettled.append(rival)
        todo = again
    return unsettled


FIRST_TRY = 0.5  # seconds of a joint MILP per rival in the first pass


def _joint_rival(ens, q, opts: RobustOptions, end: float | None) -> str | SampleResult:
    """One rival's joint MILP: "robust" (infeasible, cross-checked), a replayed counterexample, "out of time"
    (no point found in time) or "unknown". A point the solver finds may sit on a threshold (a tie its
    tolerances allow): its bits are then pinned and the model with a clear margin solved as an LP, and only
    where that fails the whole margin model."""
    x, lo, hi = q.x, q.box_lo, q.box_hi
    model = get("ensemble_robustness").build(q)
    sol = highs.solve_or_stop(model, guarded(_until(end)))
    if sol.status == "infeasible":
        if opts.cross_check and highs.solve_or_stop(
                model, SolveOptions(time_limit=_until(end), presolve=checking(sol)[0])).status != "infeasible":
            return "unknown"
        return "robust"
    if sol.x is None:
        return "out of time" if sol.status == "time_limit" else "unknown"
    clear = get("ensemble_robustness").build(replace(q, margin=1e-5))
    attempts = (lambda: sol, lambda: highs.solve_or_stop(_pinned(clear, sol.x, x.shape[0]), guarded(_until(end))),
                lambda: highs.solve_or_stop(clear, guarded(_until(end))))
    for attempt in attempts:
        found = attempt()
        if found.x is None:
            continue
        xp = _candidate(found.x, x.shape[0], opts, lo, hi)
        inside, dist = in_perturbation_set(xp, x, opts, lo, hi)
        if inside and int(ens.predict(xp[None, :])[0]) != q.reference:
            return SampleResult(0, "not_robust", "milp", 0.0, counterexample=xp.tolist(), distance=fraction_str(dist),
                                note=f"class {q.rival} wins; replayed exactly")
    return "unknown"


def _pinned(model, x_sol: np.ndarray, d0: int):
    """``model`` with its integer columns past the first ``d0`` (the input's) fixed at ``x_sol``'s values."""
    lower, upper = model.col_lower.copy(), model.col_upper.copy()
    cols = np.flatnonzero(model.integrality)
    cols = cols[cols >= d0]
    lower[cols] = upper[cols] = np.round(x_sol[cols])
    return replace(model, col_lower=lower, col_upper=upper)


def _until(end: float | None) -> float | None:
    """Seconds from now to ``end`` (time.perf_counter), at least 0.01; None without an end."""
    return None if end is None else max(0.01, end - time.perf_counter())


FALSIFY_SEED = 35
FALSIFY_POINTS = 2048  # sampled points per query: one exact vote of every member on each, in one batch


def sample_points(x: np.ndarray, opts: RobustOptions, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator,
                  n: int = FALSIFY_POINTS) -> np.ndarray:
    """``n`` random points for a falsifier: the box's corners and its inside for L-infinity; for L1, a few
    coordinates moved by the budget; rounded inwards to integers for an integer domain. Not all need lie in the
    perturbation set (the caller checks each point it uses)."""
    d = x.shape[0]
    flo, fhi = np.where(np.isfinite(lo), lo, x - 1.0), np.where(np.isfinite(hi), hi, x + 1.0)
    half = n // 2
    if opts.norm == "inf":
        corners = np.where(rng.random((half, d)) < 0.5, flo, fhi)
        pts = np.vstack([corners, flo + rng.random((n - half, d)) * (fhi - flo)])
    else:
        pts = np.repeat(x[None, :].astype(np.float64), n, axis=0)
        k = rng.integers(1, max(2, min(d, int(opts.eps or 1)) + 1), size=n)
        for i in range(n):
            cols = rng.choice(d, size=k[i], replace=False)
            step = float(opts.eps or 0.0) / k[i]
            pts[i, cols] += np.where(rng.random(k[i]) < 0.5, -step, step)
        pts = np.clip(pts, flo, fhi)
    if opts.domain == "integer":
        pts = np.clip(np.where(pts > x, np.floor(pts), np.ceil(pts)), np.ceil(flo), np.floor(fhi))
    return pts


SCREENED = 32  # sampled points that the floating-point screen flags and the exact forward pass then checks


def falsify(screen: Callable[[np.ndarray], np.ndarray], predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
            ref: int, opts: RobustOptions, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, Fraction, int] | None:
    """A point of the perturbation set where ``predict`` (exact: the class per row, -1 for a tie) is not ``ref``,
    among :func:`sample_points`: ``screen`` (the same in floating point: fast, may err) picks the candidates,
    the exact ``predict`` decides. Most non-robust queries end here in milliseconds, before any search or MILP.
    None when no sampled point is found to change the answer."""
    if FALSIFY_POINTS <= 0:
        return None
    return first_counterexample(sample_points(x, opts, lo, hi, rng), screen, predict, x, ref, opts, lo, hi)


def first_counterexample(pts: np.ndarray, screen: Callable[[np.ndarray], np.ndarray],
                         predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, ref: int, opts: RobustOptions,
                         lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, Fraction, int] | None:
    """The first of ``pts`` (at most SCREENED flagged by ``screen``) in the perturbation set on which the exact
    ``predict`` is not ``ref``: (point, exact distance, its class); None if none is."""
    cand = np.flatnonzero(screen(pts) != ref)[:SCREENED]
    got = predict(pts[cand]) if cand.size else np.zeros(0, dtype=np.int64)
    for j, i in enumerate(cand):
        inside, dist = in_perturbation_set(pts[i], x, opts, lo, hi)
        if inside and got[j] != ref:
            return pts[i].copy(), dist, int(got[j])
    return None


def _float_scores(net: Network, P: np.ndarray) -> np.ndarray:
    """The last layer's a - lambda per row of P, every earlier bit a >= lambda in plain floating point."""
    inp = np.asarray(P, dtype=np.float64)
    for W, lam in zip(net.weights[:-1], net.thresholds[:-1], strict=True):
        inp = (matmul_t(inp, W) - lam >= 0).astype(np.float64)
    return matmul_t(inp, net.weights[-1]) - net.thresholds[-1]


def float_argmax(net: Network, P: np.ndarray) -> np.ndarray:
    """The class per row of P in plain floating point (the largest score): a screen."""
    return np.argmax(_float_scores(net, P), axis=1)


def float_votes(ens, P: np.ndarray) -> np.ndarray:
    """The ensemble's vote counts (rows of P, classes) with every member's bit in plain floating point."""
    v = np.zeros((P.shape[0], ens.n_classes), dtype=np.int64)
    for net, (a, b) in zip(ens.networks, ens.classes, strict=True):
        bit = _float_bit(net, P)
        v[:, a] += bit
        v[:, b] += 1 - bit
    return v


def _float_bit(net: Network, P: np.ndarray) -> np.ndarray:
    return (_float_scores(net, P)[:, 0] >= 0).astype(np.int64)


def falsify_ensemble(ens, x: np.ndarray, ref: int, opts: RobustOptions, lo: np.ndarray, hi: np.ndarray,
                     rng: np.random.Generator, near: np.ndarray | None = None
                     ) -> tuple[np.ndarray, Fraction, int] | None:
    """:func:`falsify` with the ensemble's vote (screened in floating point, decided exactly): random points,
    then (L-infinity) corners aimed at each rival class (:func:`aimed_corners`). ``near`` (one number per
    class) receives the most votes each class had over ``ref`` at any screened point: which rivals came close."""
    def screen(P: np.ndarray) -> np.ndarray:
        v = float_votes(ens, P)
        if near is not None and len(P):
            np.maximum(near, (v - v[:, [ref]]).max(axis=0), out=near)
        return np.argmax(v, axis=1)

    found = falsify(screen, ens.predict, x, ref, opts, lo, hi, rng)
    if found is not None or opts.norm != "inf" or opts.eps is None or FALSIFY_POINTS <= 0:
        return found
    pts = np.vstack([aimed_corners(ens, x, ref, r, lo, hi, float(opts.eps), rng) for r in range(ens.n_classes)
                     if r != ref])
    if opts.domain == "integer":
        pts = np.clip(np.where(pts > x, np.floor(pts), np.ceil(pts)), np.ceil(lo), np.floor(hi))
    return first_counterexample(pts, screen, ens.predict, x, ref, opts, lo, hi)


AIMED = 64  # corners per rival class in ``aimed_corners``


def aimed_corners(ens, x: np.ndarray, ref: int, rival: int, lo: np.ndarray, hi: np.ndarray, eps: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Corners x + eps * sign(g) of the L-infinity ball (cut to [lo, hi]) for directions g that push the
    first-layer units able to flip in the ball towards the flips that move a member's vote from ``ref`` to
    ``rival`` (straight through the later layer: a unit counts with the weight of its output), with random
    weights per unit for variety. Members of more than two layers are left out; a screen, not a proof."""
    d = x.shape[0]
    g = np.zeros((AIMED, d))
    for net, (a, b) in zip(ens.networks, ens.classes, strict=True):
        want = (a == rival) - (a == ref) - (b == rival) + (b == ref)  # +1: bit 1 helps the rival; -1: bit 0
        if want == 0 or len(net.weights) != 2:
            continue
        W1, lam1, w2 = dense(net.weights[0]), net.thresholds[0], dense(net.weights[1])[0]
        pre = W1 @ x - lam1
        flippable = np.abs(pre) <= eps * np.abs(W1).sum(axis=1)
        on = pre >= 0
        push = np.where(on, -1.0, 1.0) * (np.sign(w2) * want * np.where(on, -1.0, 1.0) > 0)  # the helpful flips
        units = np.flatnonzero(flippable & (push != 0))
        if units.size:
            weight = np.abs(w2[units]) * rng.random((AIMED, units.size))
            g += (weight * push[units]) @ np.sign(W1[units])
    pts = x + eps * np.where(g == 0, rng.choice([-1.0, 1.0], size=g.shape), np.sign(g))
    return np.clip(pts, lo, hi)


def member_bit_ranges(nets: list[Network], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(members, 2): the lowest and highest output bit each one-bit member can give on the box, by rigorous
    interval arithmetic (a member whose bit cannot change has equal ends)."""
    out = np.zeros((len(nets), 2), dtype=np.int64)
    for i, net in enumerate(nets):
        g_lo, g_hi = ibp_bounds(net, lo, hi)[-1]
        out[i] = int(g_lo[0] >= 0), int(g_hi[0] >= 0)
    return out


def vote_gap_bound(bits: np.ndarray, classes: Sequence[tuple[int, int]], rival: int, ref: int) -> int:
    """The most votes ``rival`` can have over ``ref`` when each member chooses its bit within ``bits`` on its
    own: below 0 (or 0 with ``ref`` the lower class: ties go to the lowest index) proves that the rival cannot
    win the vote anywhere in the box; anything else proves nothing."""
    best = 0
    for (b_lo, b_hi), (a, b) in zip(bits, classes, strict=True):
        gains = []
        for bit in range(b_lo, b_hi + 1):  # member (a, b) votes a with bit 1, b with bit 0
            voted = a if bit == 1 else b
            gains.append((voted == rival) - (voted == ref))
        best += max(gains)
    return best


def verify_robust_ensemble(ens, X: np.ndarray, labels: np.ndarray, opts: RobustOptions,
                           on_result: Callable[[SampleResult], None] | None = None) -> list[SampleResult]:
    out = []
    for i in range(X.shape[0]):
        out.append(verify_ensemble_sample(ens, X[i], int(labels[i]), i, opts))
        if on_result:
            on_result(out[-1])
    return out
