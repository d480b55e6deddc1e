"""Large-neighbourhood search over the training MILP: a local search that scales with the number of samples.

A step frees part of the network and a batch B of samples, and keeps everything else:

    min  sum_{i in B} loss_i(u^{i,L})
    s.t. Theorem 1's rows for the samples in B                 (their bits u^{i,l} free, big-M rows)
         W^l_k = current W^l_k, lambda_l = current             for every unit and threshold not freed
         the pattern rows of every other sample i, for the freed units only (bits fixed: linear in W):
             a^{i,l}_k - lambda_l >= 0  where u^{i,l}_k = 1,    a^{i,l}_k - lambda_l <= -epsilon  where u^{i,l}_k = 0

Neighbourhoods, in turn: the output layer with every misclassified sample (the hidden layers fixed, all
bits but the output bits of B are constants: a small MILP, and often the largest gain, since STE fits the
output layer only approximately); a few units of a hidden layer together with the whole next layer, with
the misclassified samples and their nearest neighbours in input space, where the conflicts are.
The current network is a feasible point of every step (it meets the epsilon margin everywhere), so the
step's optimum is at most the current loss on B, and the kept samples keep their bits, hence their loss:
the exact training loss never increases. Whatever the solver returns is snapped (thresholds in exact
arithmetic), made to meet the margin where it misses it (``exact_start``) and evaluated exactly, and taken
only when its exact loss is lower. Batches as in mip_nn's batch training (Thorbjarnarson & Yorke-Smith),
with the guarantee of the whole problem; a search, so it proves no bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bnnmilp.data import Dataset
from bnnmilp.milp.backends.base import ProgressFn, Solution
from bnnmilp.network import Network
from bnnmilp.spec import Spec

if TYPE_CHECKING:
    from bnnmilp.training.pipeline import Candidate


@dataclass(frozen=True)
class LnsOptions:
    batch: int = 16  # free samples in a step that frees hidden units
    output_batch: int = 200  # misclassified samples freed with the output layer (at most)
    units: int = 2  # hidden units freed per step
    step_time: float = 5.0  # seconds per step's MILP
    patience: int = 40  # stop after this many steps in a row without a lower loss
    seed: int = 0


@dataclass
class LnsResult:
    best: Candidate
    steps: int
    improved: int
    solution: Solution  # a summary: status, the best loss as objective, no bound (the search is local)
    history: list[tuple[float, int]]  # (seconds, exact loss) after every improving step


def sample_losses(spec: Spec, net: Network, data: Dataset) -> np.ndarray:
    """Each sample's share of the training loss (Hamming: wrong output bits; error: 0/1; argmax: 0/1)."""
    X, out = data.features, spec.network.output
    bits = net.forward(X)
    if out == "argmax":
        return (net.argmax_predictions(X, bits) != data.labels).astype(np.int64)
    wrong = (bits[-1] != data.targets(spec.network.n_outputs)).sum(axis=1)
    return wrong if spec.training.loss == "hamming" else (wrong > 0).astype(np.int64)


def _batch(rng: np.random.Generator, X: np.ndarray, losses: np.ndarray, size: int) -> np.ndarray:
    """Some samples the network gets wrong and, round robin, their nearest neighbours (squared Euclidean)."""
    wrong = np.flatnonzero(losses > 0)
    seeds = rng.choice(wrong, size=min(len(wrong), max(1, size // 4)), replace=False)
    order = np.argsort(((X[None, :, :] - X[seeds][:, None, :]) ** 2).sum(axis=2), axis=1, kind="stable")
    chosen: dict[int, None] = {}
    for col in order.T:  # the j-th nearest of every seed, then the (j+1)-th ...
        for i in col:
            chosen.setdefault(int(i))
            if len(chosen) >= size:
                return np.array(sorted(chosen), dtype=np.int64)
    return np.array(sorted(chosen), dtype=np.int64)


def _moves(spec: Spec, rng: np.random.Generator, options: LnsOptions):
    """The neighbourhoods in turn, forever: (free units per layer as boolean masks, is it the output move)."""
    layers = spec.network.layers
    depth = spec.network.depth
    while True:
        yield [np.zeros(d, bool) if l < depth else np.ones(d, bool) for l, d in enumerate(layers[1:], 1)], True
        for l in range(1, depth):
            masks = [np.zeros(d, bool) for d in layers[1:]]
            masks[l - 1][rng.choice(layers[l], size=min(options.units, layers[l]), replace=False)] = True
            masks[l][:] = True
            yield masks, False


def _step_model(form, spec: Spec, X: np.ndarray, Y: np.ndarray, net: Network, B: np.ndarray,
                free: list[np.ndarray], pattern: list[np.ndarray]):
    """Theorem 1 on the samples B, the unfreed weights and thresholds fixed, the other samples' rows kept."""
    box = []
    for W, f in zip(net.weights, free):
        lo, hi = W.copy(), W.copy()
        lo[f], hi[f] = -1.0, 1.0
        box.append((lo, hi))
    K = np.setdiff1d(np.arange(X.shape[0]), B)
    tm = form.build(spec, X[B], Y[B], box, kept=(X[K], [p[K] for p in pattern], free))
    m = tm.model
    for l, f in enumerate(free, 1):
        cols = tm.thresholds(l)
        if cols is None:
            continue
        shared = spec.network.thresholds == "learned"
        fixed = ~f if not shared else np.full(f.shape, not f.all())
        m.col_lower[cols[fixed]] = m.col_upper[cols[fixed]] = net.thresholds[l - 1][fixed]
    return tm


def lns(spec: Spec, data: Dataset, start: Candidate, options: LnsOptions = LnsOptions(),
        progress: ProgressFn | None = None, on_better: Callable[[Candidate], None] | None = None,
        anchor: Network | None = None) -> LnsResult:
    """Improve ``start`` (epsilon-feasible) step by step until loss 0, the budget, or ``patience`` failed steps.

    A step's bits are moved onto the weights nearest (L1) to ``anchor`` (default: the current network) that
    realise them: the heuristic network the search started from, before it was made to meet the margin."""
    from bnnmilp.formulations.theorem1 import Theorem1
    from bnnmilp.milp.solve import solve
    from bnnmilp.training.pipeline import evaluate, exact_start, nearest
    from bnnmilp.training.polish import pattern_of, snap_thresholds

    t0 = time.perf_counter()
    # kept samples break the hidden-unit symmetry, and unused inputs are decided over all samples, not B
    step = replace(spec, training=replace(spec.training, symmetry="none", fix_unused=False, objective=("loss",),
                                          trust_region=None))
    X, Y, labels = data.features, data.targets(spec.network.n_outputs), data.labels
    rng = np.random.default_rng(options.seed)
    form = Theorem1()
    cur, steps, improved, fails, status = start, 0, 0, 0, "optimal"
    history = [(0.0, start.loss)]
    moves = _moves(spec, rng, options)
    losses, pattern = sample_losses(spec, cur.network, data), pattern_of(spec, cur.network, X, labels)
    while cur.loss > 0 and status != "interrupted":
        left = spec.solver.remaining()
        if fails >= options.patience or (left is not None and left < 0.5):
            status = "time_limit" if fails < options.patience else "stalled"
            break
        steps += 1
        free, output_move = next(moves)
        if output_move:
            wrong = np.flatnonzero(losses > 0)
            B = np.sort(rng.permutation(wrong)[: options.output_batch])
        else:
            B = _batch(rng, X, losses, min(options.batch, X.shape[0]))
        tm = _step_model(form, step, X, Y, cur.network, B, free, pattern)
        limit = options.step_time if left is None else min(options.step_time, left)
        try:
            sol = solve(tm.model, replace(step.solver, time_limit=limit), start=tm.solution_from(cur.network),
                        progress=progress)
        except KeyboardInterrupt:  # Ctrl-C or a signal outside the solver's own handling: the search ends here
            status = "interrupted"
            break
        if sol.status == "interrupted":  # the solver took the signal: its point is considered, then the search ends
            status = "interrupted"
        cand = None
        if sol.x is not None and status != "interrupted":
            target = [p.copy() for p in pattern]
            for p, q in zip(target, tm.pattern_from(sol.x)):
                p[B] = q
            cand = evaluate(spec, snap_thresholds(spec, X, target, tm.network_from(sol.x)), data, "lns")
            if cand.loss < cur.loss:  # keep what the current network learned: the nearest weights with these bits
                near = [c for c in nearest(spec, data, cand.network, anchor or cur.network, "lns")
                        if c.epsilon_feasible and c.loss <= cand.loss]
                cand = near[0] if near else cand
            if not cand.epsilon_feasible:
                cand = exact_start(spec, cand.network, data, "lns")
        if cand is not None and cand.epsilon_feasible and cand.loss < cur.loss:
            cur, fails = cand, 0
            losses, pattern = sample_losses(spec, cur.network, data), pattern_of(spec, cur.network, X, labels)
            improved += 1
            history.append((round(time.perf_counter() - t0, 3), cur.loss))
            if on_better is not None:
                on_better(cur)
        else:
            fails += 1
    runtime = time.perf_counter() - t0
    summary = Solution(status if cur.loss > 0 or status == "interrupted" else "optimal", None, float(cur.loss), None,
                       None, 0, runtime,
                       spec.solver.name, "", {"steps": steps, "improved": improved, "local": True})
    return LnsResult(cur, steps, improved, summary, history)
