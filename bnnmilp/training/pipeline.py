"""Training: spec + data -> formulation -> model -> solver -> network, with every claim recomputed exactly.

The loss bnnmilp reports is never the solver's number: it is the loss of the
written weights under the exact forward pass. The solver's bound is reported
as such (a claim about the epsilon-margin problem, not independently proven).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from bnnmilp import formulations
from bnnmilp.data import Dataset
from bnnmilp.milp.backends.base import ProgressFn, Solution
from bnnmilp.network import Network, training_loss, training_slack
from bnnmilp.spec import Spec
from bnnmilp.training.heuristics.ste import SteInterrupted
from bnnmilp.training.objectives import StageResult, in_trust_region, solve_stages, trust_box
from bnnmilp.training.polish import nearest_feasible, pattern_of, polish, snap_thresholds


@dataclass
class Candidate:
    """A network with its exactly recomputed loss and margin."""

    network: Network
    source: str  # "solver" (snapped), "lns" (the search's), "polished", "ste", "start"
    loss: int
    min_slack: Fraction

    @property
    def epsilon_feasible(self) -> bool:
        """True when the network satisfies the training problem's epsilon margin everywhere."""
        return self.min_slack >= 0


@dataclass
class TrainResult:
    """What :func:`train` returns: the chosen network (``best``) with its exact loss, the solver's stages,
    the start, the status, the bound and its scope, and the time each part took."""

    spec: Spec
    data: Dataset
    solution: Solution  # the last stage's solve (or a record of the heuristic run)
    best: Candidate | None
    model_stats: dict = field(default_factory=dict)
    model_sha256: str = ""
    stages: list[StageResult] = field(default_factory=list)
    start: Candidate | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per part (STE, build, stages, polish)

    @property
    def status(self) -> str:
        """optimal only when every stage was solved to optimality."""
        for st in self.stages:
            if st.solution.status != "optimal":
                return st.solution.status
        return self.solution.status

    @property
    def bound_scope(self) -> str:
        """What the reported bound covers, in words: ``global`` unless the loss stage ran as a large-
        neighbourhood search, on the start's hidden pattern (decomposition) or in a trust region."""
        if any(st.name == "lns" for st in self.stages):
            return "none: a large-neighbourhood search proves no bound on the training problem"
        if self.spec.training.method == "decompose":
            return "none: the hidden pattern was fixed by the STE heuristic (decomposition)"
        if in_trust_region(self.spec, self.start is not None):
            return "trust region around the start (not a bound of the training problem)"
        return "global"

    @property
    def local_search(self) -> bool:
        """Whether the bound is only local, or there is none (see ``bound_scope``)."""
        return self.bound_scope != "global"

    @property
    def loss_bound(self) -> float | None:
        """The solver's bound on the training loss (from the loss stage; None when there is none, or when
        it only holds in a trust region)."""
        if self.local_search:
            return None
        for st in self.stages:
            if st.name == "loss":
                return st.solution.bound
        return None


def as_checkpoint(run: Run, cand: Candidate, solver: str, runtime: float, stats: dict | None = None,
                  sha: str = "") -> TrainResult:
    """A candidate written while the run goes on, labelled as a checkpoint (status interrupted: if the file
    stays so, the process was killed)."""
    sol = Solution("interrupted", None, None, None, None, 0, runtime, solver, "", {"checkpoint": True})
    return TrainResult(run.spec, run.data, sol, cand, stats or {}, sha, [], run.start)


def prefers_solver(spec: Spec) -> bool:
    """Margin objectives: the solver's per-neuron margins are what was asked for, unless polishing is per unit."""
    return "margin" in spec.training.objective and spec.training.polish != "neuron"


def evaluate(spec: Spec, net: Network, data: Dataset, source: str) -> Candidate:
    X, out = data.features, spec.network.output
    loss = training_loss(net, X, data.labels, data.targets(spec.network.n_outputs), spec.training.loss, out)
    slack, _ = training_slack(net, X, data.labels, spec.training.epsilon, out)
    return Candidate(net, source, loss, slack)


def trivial_start(spec: Spec) -> Network | None:
    """W = 0, lambda = 0: every pre-activation is 0 >= 0, all bits 1; feasible unless weights are binary."""
    if spec.network.weights == "binary":
        return None
    L = spec.network.layers
    return Network([np.zeros((L[i + 1], L[i])) for i in range(len(L) - 1)], [np.zeros(d) for d in L[1:]])


def choose(cands: list[Candidate], prefer_solver: bool = False) -> Candidate | None:
    """Prefer the lowest exact loss, then networks meeting the epsilon margin, then the larger margin.

    With ``prefer_solver`` (margin objectives) the solver's own weights win ties over polished ones:
    their per-neuron margins are what was asked for.
    """
    if not cands:
        return None
    rank = {"solver": 0, "lns": 0, "polished": 1, "ste": 2, "start": 3}
    if prefer_solver:
        return min(cands, key=lambda c: (c.loss, not c.epsilon_feasible, rank[c.source], -c.min_slack))
    return min(cands, key=lambda c: (c.loss, not c.epsilon_feasible, -c.min_slack, rank[c.source]))


START_SHARE = 0.1  # of the budget left that the LP of one start (``exact_start``) may take


def exact_start(spec: Spec, net: Network, data: Dataset, source: str) -> Candidate:
    """A heuristic network made feasible for the MILP (epsilon margin) without changing its bits.

    Thresholds are snapped first (weights unchanged); only if that cannot meet the margin are the
    weights moved, as little as possible (L1). The network keeps its own activation pattern, hence its loss.
    """
    X = data.features
    pattern = pattern_of(spec, net, X, data.labels)
    snapped = evaluate(spec, snap_thresholds(spec, X, pattern, net), data, source)
    if snapped.epsilon_feasible:
        return snapped
    left = spec.solver.remaining()  # a start's LP is a tenth of what is left of the budget: three starts are made
    near = nearest_feasible(spec, X, pattern, net, time_limit=None if left is None else START_SHARE * left)
    cands = [snapped] + ([evaluate(spec, near, data, source)] if near is not None else [])
    return choose(cands)  # type: ignore[return-value]


STE_SHARE = 0.35  # of the time left of solver.budget that the STE grids may take (the method and checks: the rest)


def ste_options(spec: Spec, share: float = STE_SHARE, report: Callable[[str], None] | None = None):
    """STE's options: the spec's seed and, under a budget, a deadline at ``share`` of the time left; ``report``
    receives a progress line every few seconds."""
    from bnnmilp.training.heuristics.ste import SteOptions

    left = spec.solver.remaining()
    return SteOptions(seed=spec.training.seed, deadline=None if left is None else time.monotonic() + share * left,
                      report=report)


def ste_networks(spec: Spec, data: Dataset, share: float = STE_SHARE,
                 report: Callable[[str], None] | None = None) -> list[Network]:
    from bnnmilp.training.heuristics.ste import ste_train

    return ste_train(spec, data.features, data.targets(spec.network.n_outputs), ste_options(spec, share, report))


def search_networks(spec: Spec, data: Dataset, report: Callable[[str], None] | None = None
                    ) -> tuple[list[Network], Network]:
    """STE's starts for ``method: lns`` (the noisy grid's first) and the plain grid's best (``search_starts``)."""
    from bnnmilp.training.heuristics.ste import search_starts

    return search_starts(spec, data.features, data.targets(spec.network.n_outputs),
                         ste_options(spec, report=report))


def train(spec: Spec, data: Dataset, progress: ProgressFn | None = None, start: Network | None = None,
          formulation: str = "theorem1", checkpoint: Callable[[TrainResult], None] | None = None,
          announce: Callable[[str], None] | None = None) -> TrainResult:
    """Train a BNN by the spec's method; every candidate network is evaluated exactly before it is chosen.

    Parameters
    ----------
    spec : Spec
        The network, the method (``training.method``: ``lns``, the default, ``milp``, ``ste``,
        ``decompose``), the objective stages, the solver and its limits.
    data : Dataset
        The training data.
    progress : callable, optional
        Called with the solver's progress (incumbent, bound, gap, nodes, elapsed).
    start : Network, optional
        A start network (instead of STE's), made to meet the epsilon margin without changing its bits.
    formulation : str
        The registered training formulation.
    checkpoint : callable, optional
        Called with the start and then with every better incumbent (every few seconds at most), each
        evaluated exactly and labelled as a checkpoint, so that a killed run still leaves its last one.
    announce : callable, optional
        Called with the steps of long work (text), as they start.

    Returns
    -------
    TrainResult
        ``best`` (the chosen network, its exact loss and margin), ``status``, ``loss_bound`` (the solver's,
        None where the search was local) and its ``bound_scope``, ``stages``, ``start``, ``timings``.

    Notes
    -----
    With ``solver.budget`` every part (STE, building, each stage, polishing) shares one wall-clock budget,
    counted from here unless ``solver.deadline`` is already set (the command line counts from its start);
    ``solver.time_limit`` still caps each stage.
    """
    if spec.solver.budget is not None and spec.solver.deadline is None:
        spec = spec.with_solver(deadline=time.monotonic() + spec.solver.budget)
    clock = Timings()
    res = _train(spec, data, progress, start, formulation, clock, checkpoint, announce or (lambda _t: None))
    res.timings = clock.parts
    return res


class Timings:
    """Seconds per part of a training run, in the order the parts ran."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self._t = time.perf_counter()

    def restart(self) -> None:
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts[name] = round(self.parts.get(name, 0.0) + now - self._t, 3)
        self._t = now


STE_STARTS = 3  # the STE runs with the lowest exact losses that are made into MILP starts (the best is taken)


@dataclass
class Run:
    """One training run: what every method gets (the spec with ``polish`` resolved, the data, callbacks)
    and the start, as made to meet the epsilon margin (``start``) and as it was given (``given``)."""

    spec: Spec
    data: Dataset
    progress: ProgressFn | None
    formulation: str
    clock: Timings
    checkpoint: Callable[[TrainResult], None] | None
    announce: Callable[[str], None]
    start: Candidate | None = None
    given: Candidate | None = None
    fallback: Candidate | None = None  # lns: the plain STE grid's best, which the result must not lose to
    finish_s: float = 0.0  # seconds the exact checks after a search take, as measured on the starts


MethodFn = Callable[[Run], TrainResult]
_METHODS: dict[str, MethodFn] = {}


def method(name: str) -> Callable[[MethodFn], MethodFn]:
    """Register a training method under the name ``training.method`` uses."""

    def deco(fn: MethodFn) -> MethodFn:
        _METHODS[name] = fn
        return fn

    return deco


def _train(spec: Spec, data: Dataset, progress: ProgressFn | None, start: Network | None, formulation: str,
           clock: Timings, checkpoint: Callable[[TrainResult], None] | None = None,
           announce: Callable[[str], None] = lambda _t: None) -> TrainResult:
    """Resolve the spec, make the start (STE's best network, or the one given), then run the method."""
    data.check_fits(spec.network.n_inputs, spec.network.n_outputs)
    spec = resolved(spec)
    tr = spec.training
    run = Run(spec, data, progress, formulation, clock, checkpoint, announce)
    if start is None and tr.warm_start == "codes":
        from bnnmilp.training.heuristics.codes import codes_network

        announce(f"class codes on {data.n_samples} samples (an LP per bipartition of the classes)")
        start = codes_network(spec, data, spec.solver.deadline)
        clock.lap("codes")
    elif tr.method in ("ste", "decompose", "lns") or tr.warm_start == "ste":
        announce(f"STE heuristic on {data.n_samples} samples")
    if start is not None:
        run.start, run.given = exact_start(spec, start, data, "start"), evaluate(spec, start, data, "start")
    elif tr.warm_start == "ste" or tr.method in ("decompose", "lns"):
        try:
            if tr.method == "lns":  # the search fits the rest: from the noisy grid, the plain grid's best to beat
                nets, plain = search_networks(spec, data, announce)
                run.fallback = evaluate(spec, plain, data, "ste")
            else:
                nets = ste_networks(spec, data, report=announce)
        except SteInterrupted as exc:
            return _stopped_in_ste(run, exc.networks[0])
        made, per_start = starts_in_budget(spec, data, nets[:STE_STARTS])
        run.finish_s = FINISH_CHECKS * per_start
        first = min(range(len(made)), key=lambda i: (made[i][0].loss, not made[i][0].epsilon_feasible, i))
        run.start = made[first][0]  # ties: STE's own order (its noisy-grid fits first), not the larger margin
        run.given = evaluate(spec, made[first][1], data, "ste")
        clock.lap("ste")
    if tr.method in ("lns", "milp") and tr.objective == ("loss",) and run.start is not None:
        floor = capacity_floor(spec, data)
        if floor and run.start.loss <= floor and run.start.epsilon_feasible:
            announce(f"the start's exact loss {run.start.loss} is the capacity bound: optimal, nothing to search")
            return _at_floor(run, floor)
    return _METHODS[tr.method](run)


def starts_in_budget(spec: Spec, data: Dataset, nets: list[Network]) -> tuple[list[tuple[Candidate, Network]], float]:
    """The first of ``nets`` made into a start (``exact_start``), and the others while the budget left allows
    the search and its exact checks after them (a start on 200,000 samples takes seconds); with the seconds
    one start took."""
    made: list[tuple[Candidate, Network]] = []
    t0 = time.perf_counter()
    for n in nets:
        per = (time.perf_counter() - t0) / max(1, len(made))
        left = spec.solver.remaining()
        if made and left is not None and per * (1 + FINISH_CHECKS) > STE_SHARE * left:
            break
        made.append((exact_start(spec, n, data, "ste"), n))
    return made, (time.perf_counter() - t0) / max(1, len(made))


def capacity_floor(spec: Spec, data: Dataset) -> int:
    """The capacity bound on the training loss (``verification/proofs/capacity.py``: integers, no solver;
    0 where it does not apply). ``train`` proves it again after training, as its certificate."""
    from bnnmilp.network.capacity import capacity

    found = capacity(spec, data, list(range(data.n_samples)))
    return 0 if found is None else int(found[0])


def _at_floor(run: Run, floor: int) -> TrainResult:
    """The start already attains the capacity bound (a start from the class codes often does): it is optimal,
    and neither the search nor the MILP runs. The bound is proven after training, as every run's is."""
    assert run.start is not None
    sol = Solution("optimal", None, float(run.start.loss), None, None, 0, 0.0, "none", "",
                   {"optimal_by": "the capacity bound", "capacity_bound": floor})
    return TrainResult(run.spec, run.data, sol, selected(run, [run.start]), start=run.start)


def _stopped_in_ste(run: Run, net: Network) -> TrainResult:
    """Ctrl-C or a signal during STE: its best network so far, evaluated exactly, labelled ``interrupted``."""
    best = evaluate(run.spec, net, run.data, "ste")
    run.clock.lap("ste")
    sol = Solution("interrupted", None, None, None, None, 0, 0.0, "ste", "bnnmilp", {"stopped_in": "ste"})
    return TrainResult(run.spec, run.data, sol, best, start=best)


@method("ste")
def _ste(run: Run) -> TrainResult:
    """The baseline: STE's own weights, evaluated exactly, untouched."""
    t0 = time.perf_counter()
    try:
        nets = ste_networks(run.spec, run.data, share=1.0 - FINISH_SHARE)
    except SteInterrupted as exc:
        return _stopped_in_ste(run, exc.networks[0])
    best = evaluate(run.spec, nets[0], run.data, "ste")
    sol = Solution("heuristic", None, None, None, None, 0, time.perf_counter() - t0, "ste", "bnnmilp")
    run.clock.lap("ste")
    return TrainResult(run.spec, run.data, sol, best, start=best)


@method("lns")
def _lns(run: Run) -> TrainResult:
    """STE, then the large-neighbourhood search; the whole MILP from the STE start when it is small."""
    return _milp(run) if whole_milp(run.spec, run.data.n_samples) else _searched(run)


@method("milp")
def _milp(run: Run) -> TrainResult:
    """The paper's MILP (with the objective stages), from the start if there is one."""
    spec, data, clock, checkpoint, announce, progress = (run.spec, run.data, run.clock, run.checkpoint,
                                                         run.announce, run.progress)
    start_c, formulation, tr = run.start, run.formulation, spec.training
    X, Y = data.features, data.targets(spec.network.n_outputs)
    form = formulations.get(formulation)
    announce(f"building the training MILP ({data.n_samples} samples, layers {list(spec.network.layers)})")
    tm = form.build(spec, X, Y)
    start_net = start_c.network if start_c is not None else trivial_start(spec)
    x0 = tm.solution_from(start_net) if start_net is not None else None
    if in_trust_region(spec, start_c is not None) and x0 is not None:  # the box also tightens the big-M values
        tm = form.build(spec, X, Y, trust_box(tm, x0, float(tr.trust_region)))  # type: ignore[arg-type]
        x0 = tm.solution_from(start_net)
    clock.lap("build")
    st = tm.model.stats()
    announce(f"built in {clock.parts['build']:.2f}s: {st.get('variables')} variables, {st.get('rows')} rows; solving")
    on_incumbent = None
    if checkpoint is not None:
        t_solve = time.perf_counter()
        written: list[Candidate] = []

        def keep(cand: Candidate) -> None:
            rank = (cand.loss, not cand.epsilon_feasible)
            if written and rank >= (written[-1].loss, not written[-1].epsilon_feasible):
                return
            written[:] = [cand]
            checkpoint(as_checkpoint(run, cand, "highs", time.perf_counter() - t_solve, tm.model.stats(),
                                     tm.model.fingerprint()))

        def on_incumbent(x: np.ndarray) -> None:
            raw, pattern = tm.network_from(x), tm.pattern_from(x)
            keep(evaluate(spec, snap_thresholds(spec, X, pattern, raw), data, "solver"))

        if start_c is not None:
            keep(start_c)
    stages = solve_stages(tm, spec.solver, start=x0, progress=progress, warm=start_c is not None,
                          on_incumbent=on_incumbent)
    for st in stages:  # the stages' own times (the solver's), then the clock goes on from here
        clock.parts[f"stage {st.name}"] = round(st.solution.runtime_s, 3)
    clock.restart()
    cands = []
    if start_c is not None:  # the result is never worse than the start, even one the MILP could not take
        cands.append(start_c)
    elif start_net is not None and x0 is not None:
        cands.append(evaluate(spec, start_net, data, "start"))
    sol = stages[-1].solution
    with_point = [st for st in stages if st.solution.x is not None]
    if with_point:
        x = with_point[-1].solution.x
        cands += refined(run, tm.network_from(x), tm.pattern_from(x), "solver")
        clock.lap("polish")
    return TrainResult(spec, data, sol, selected(run, cands), tm.model.stats(), tm.model.fingerprint(), stages, start_c)


def resolved(spec: Spec) -> Spec:
    """The spec with ``polish: auto`` made concrete: ``min`` after a MILP (its point sits on the boundary of
    its rows), ``none`` after STE or ``lns`` (their networks meet the margin; ``lns`` moves the solver's bits
    onto the weights nearest its start instead, which keeps what STE learned)."""
    if spec.training.polish != "auto":
        return spec
    tr = spec.training
    return spec.with_training(polish="none" if tr.method in ("ste", "lns") else "min")


WHOLE_BITS = 400  # method lns: the whole MILP (from the STE start) up to this many activation bits


def whole_milp(spec: Spec, n_samples: int) -> bool:
    """``method: lns`` solves the whole MILP, from the STE start, when it has at most WHOLE_BITS activation
    bits (samples x units): then the bound is global; beyond, the large-neighbourhood search runs instead."""
    return n_samples * sum(spec.network.layers[1:]) <= WHOLE_BITS


def refined(run: Run, net: Network, pattern: list[np.ndarray], source: str, exact: bool = False) -> list[Candidate]:
    """The one refinement step every method's network goes through: its thresholds snapped in exact
    arithmetic to its pattern (unless ``exact``: a search's network is already), the configured polishing,
    and for ``lns`` its bits on the weights nearest the given start when the loss fell below the start's."""
    spec, data = run.spec, run.data
    out = [] if exact else [evaluate(spec, snap_thresholds(spec, data.features, pattern, net), data, source)]
    out += _polished(spec, data, net, pattern)
    if not exact and spec.training.method == "lns" and run.given is not None and out[0].loss < run.given.loss:
        out += nearest(spec, data, out[0].network, run.given.network, source)
    return out


def selected(run: Run, cands: list[Candidate]) -> Candidate | None:
    """The one selection rule: ``choose`` (the lowest exact loss, then the margin), and for ``lns`` the start
    as given unless the loss is lower (``unless_no_better``), and never a loss above the plain STE grid's."""
    best = choose(cands, prefer_solver=prefers_solver(run.spec))
    if best is not None and run.spec.training.method == "lns":
        fell_short = run.fallback is not None and run.fallback.loss < best.loss  # the plain grid's best was lower
        best = unless_no_better(run.spec, run.data, best, run.fallback if fell_short else run.given)
    return best


def unless_no_better(spec: Spec, data: Dataset, best: Candidate, given: Candidate | None) -> Candidate:
    """``method: lns`` writes the start as the heuristic gave it unless the MILP found a lower exact loss: a
    network made to meet the epsilon margin (thresholds snapped, weights moved) fits the training data no
    better and generalises worse (the margin serves the MILP's rows, not the plain rule a >= lambda). The
    result goes on the 2^-24 grid where that keeps it (``on_grid``)."""
    if given is not None and given.loss <= best.loss:
        best = given
    return on_grid(spec, data, best)


FINISH_SHARE = 0.03  # of solver.budget kept after the search for the exact checks of its result (0.5 s at k = 100)
FINISH_CHECKS = 4  # ... or the time of this many starts' exact checks, where more (200,000 samples: seconds each)


def _searched(run: Run) -> TrainResult:
    """``method: lns``: the large-neighbourhood search from the start (``solver.time_limit`` for the search,
    cut to the budget), then the configured polishing of its network. The better of the start and the
    search's network is kept (exact loss first)."""
    from bnnmilp.training.heuristics.lns import LnsOptions, lns

    spec, data, start_c, given, progress, clock, checkpoint = (run.spec, run.data, run.start, run.given,
                                                               run.progress, run.clock, run.checkpoint)
    assert start_c is not None
    budget_end = None if spec.solver.deadline is None else \
        spec.solver.deadline - max(FINISH_SHARE * (spec.solver.budget or 0.0), run.finish_s)  # to check and round
    ends = [t for t in (budget_end, None if spec.solver.time_limit is None
                        else time.monotonic() + spec.solver.time_limit) if t is not None]
    search = spec.with_solver(deadline=min(ends)) if ends else spec

    def better(c: Candidate) -> None:
        if checkpoint is not None:
            checkpoint(as_checkpoint(run, c, "lns", 0.0))

    if checkpoint is not None:
        better(start_c)
    begin = start_c  # the search needs a start that meets the margin; W = 0 does where STE's network cannot
    trivial = None if start_c.epsilon_feasible else trivial_start(spec)
    if trivial is not None:
        begin = evaluate(spec, trivial, data, "start")
    res = lns(search, data, begin, LnsOptions(seed=spec.training.seed), progress, better,
              anchor=None if given is None else given.network)
    clock.lap("lns")
    stage = StageResult("lns", res.solution, float(res.best.loss))
    stopped = res.solution.status == "interrupted"  # a signal: write what is there, no more solves
    pattern = None if stopped else pattern_of(spec, res.best.network, data.features, data.labels)
    cands = [start_c, res.best, *([] if stopped else refined(run, res.best.network, pattern, "lns", exact=True))]
    clock.lap("polish")
    best = selected(run, cands)
    stats = {"lns_steps": res.steps, "lns_improved": res.improved}
    return TrainResult(spec, data, res.solution, best, stats, "", [stage], start_c)


GRID = 2.0 ** -24


def on_grid(spec: Spec, data: Dataset, c: Candidate) -> Candidate:
    """``c`` with weights and thresholds rounded to multiples of 2^-24, when that keeps its exact loss and
    margin: sums and differences of such numbers are exact in doubles, so that the robustness queries of an
    argmax network (its class scores' differences W_k - W_y) are exact too. Otherwise ``c`` unchanged."""
    net = Network([np.round(W / GRID) * GRID for W in c.network.weights],
                  [np.round(t / GRID) * GRID for t in c.network.thresholds])
    r = evaluate(spec, net, data, c.source)
    return r if r.loss <= c.loss and (r.epsilon_feasible or not c.epsilon_feasible) else c


def nearest(spec: Spec, data: Dataset, net: Network, towards: Network, source: str) -> list[Candidate]:
    """``net``'s activation pattern on the weights nearest (L1) to ``towards`` that realise it with the margin
    (none when there are none): the bits a solver found, on what the start network learned."""
    X = data.features
    near = nearest_feasible(spec, X, pattern_of(spec, net, X, data.labels), towards,
                            time_limit=spec.solver.stage_limit())
    return [] if near is None else [evaluate(spec, near, data, source)]


def _polished(spec: Spec, data: Dataset, net: Network, pattern: list[np.ndarray]) -> list[Candidate]:
    """The configured polishing of ``net`` for ``pattern`` (none, or one candidate)."""
    if spec.training.polish == "none":
        return []
    pol = polish(spec, data.features, pattern, net, spec.training.polish, spec.training.polish_radius,
                 time_limit=spec.solver.remaining())
    return [] if pol is None else [evaluate(spec, pol, data, "polished")]


@method("decompose")
def _decomposed(run: Run) -> TrainResult:
    """Icarte et al.'s hybrid (``method: decompose``): the start's hidden pattern, one problem per unit."""
    from bnnmilp.training.decompose import decompose

    spec, data, start_c, progress, clock = run.spec, run.data, run.start, run.progress, run.clock
    assert start_c is not None

    X = data.features
    dec = decompose(spec, X, data.targets(spec.network.n_outputs), start_c.network, progress)
    clock.lap("decompose")
    net = dec.network
    pattern = pattern_of(spec, net, X, data.labels)
    cands = [start_c, *refined(run, net, pattern, "solver")]
    clock.lap("polish")
    best = selected(run, cands)
    stats = {"units": dec.units, "units_improved": dec.units_improved}
    return TrainResult(spec, data, dec.stages[-1].solution, best, stats, "", dec.stages, start_c)
