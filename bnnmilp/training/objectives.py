"""Lexicographic training objectives (BeMi-style), and the trust region (all of it lives here).

Stages (``training.objective``), each an objective of :class:`TrainingModel`:
    loss        min the training loss (hamming or error)
    margin      max sum_lk mu_lk, the per-neuron margins (Icarte et al. 2019), each capped at margin_cap
    min_weight  min sum_lkj nz_lkj, the number of nonzero weights

Stage s solves min f_s(x) subject to f_r(x) <= f_r* for every earlier stage r, where f_r* is the value
the earlier stage reached (its optimum, or its best value at a time limit). Integral objectives are kept
exactly; the summed margin keeps f* up to a relative 1e-6 (solver tolerance). When ``loss`` is not among
the stages, the data must be fitted exactly (loss = 0), as in Icarte et al.'s max-margin model. Every
stage starts from the previous stage's solution, so no stage can make an earlier objective worse.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bnnmilp.formulations.bounds import WeightBox
from bnnmilp.formulations.theorem1 import TrainingModel
from bnnmilp.milp.backends.base import ProgressFn, Solution
from bnnmilp.milp.solve import IncumbentFn, solve
from bnnmilp.spec import SolverSpec, Spec


@dataclass
class StageResult:
    name: str
    solution: Solution
    value: float | None  # objective value reached (minimisation form), kept by later stages


def solve_stages(tm: TrainingModel, solver: SolverSpec, start: np.ndarray | None = None,
                 progress: ProgressFn | None = None, warm: bool = True,
                 on_incumbent: IncumbentFn | None = None) -> list[StageResult]:
    """Solve the stages in order; stops early when a stage finds no point (earlier results are kept).

    ``warm``: ``start`` comes from a heuristic or the user (trust regions centre only on such starts).
    ``on_incumbent``: every stage's improving points (same columns), for checkpoints.
    """
    stages = tm.spec.training.objective
    model = tm.model
    if "loss" not in stages:
        c, off, _ = tm.objectives["loss"]
        model = model.with_row("fit_exactly", c, -np.inf, 0.0 - off + 1e-6)
    results: list[StageResult] = []
    x = start
    mu = tm.margins()
    full_upper = model.col_upper.copy()
    if mu.size:  # margins are free until their stage: pin them to 0 so earlier stages' points carry none
        upper = full_upper.copy()
        upper[mu] = 0.0
        model = replace(model, col_upper=upper)
    rho = tm.spec.training.trust_region if tm.spec.network.weights == "continuous" and warm else None
    if rho is not None and start is not None and tm.spec.training.trust_region_scope == "all":
        # a local search around the start: every stage, the loss stage included, stays within rho of it
        model = _trust_region(model, tm.all_weights(), start, rho)
        full_upper = np.where(np.isin(np.arange(model.n_cols), mu), full_upper, model.col_upper)
        rho = None
    for name in stages:
        if name == "margin":
            model = replace(model, col_upper=full_upper)
            full_upper = model.col_upper
        c, off, integral = tm.objectives[name]
        # start from the better of the previous stage's point and the initial start, if still feasible
        starts = [p for p in (x, start) if p is not None and model.max_violation(p) <= 1e-9]
        x = min(starts, key=lambda p: float(c @ p)) if starts else x
        staged = None if progress is None else (lambda p, stage=name: progress(replace(p, stage=stage)))
        sol = solve(model.with_objective(c, off, integral), solver, start=x, progress=staged,
                    on_incumbent=on_incumbent)
        if sol.x is None or sol.status == "interrupted":
            results.append(StageResult(name, sol, None if sol.x is None else float(c @ sol.x + off)))
            break
        value = float(c @ sol.x + off)
        if integral:
            value = float(round(value))
            keep = value - off + 1e-6
        else:
            keep = value - off + 1e-6 * max(1.0, abs(value))
        results.append(StageResult(name, sol, value))
        model = model.with_row(f"keep_{name}", c, -np.inf, keep)
        x = sol.x
        if name == "loss" and rho is not None:
            s0 = None
            if start is not None:
                s0 = start.copy()
                s0[mu] = 0.0  # margins are pinned to 0 until their stage
            centre = start if s0 is not None and model.max_violation(s0) <= 1e-9 else x
            if centre is x and s0 is not None:
                # the start misses the optimal loss: look for a point with that loss near the start first
                near = _trust_region(model, tm.all_weights(), s0, rho)
                rep = solve(near.with_objective(c, off, integral), solver, progress=progress)
                if rep.x is not None and near.max_violation(rep.x) <= 1e-6:
                    centre = rep.x
            model = _trust_region(model, tm.all_weights(), centre, rho)
            full_upper = np.where(np.isin(np.arange(model.n_cols), mu), full_upper, model.col_upper)
    return results


def in_trust_region(spec: Spec, has_start: bool) -> bool:
    """Whether the loss stage is a local search: a trust region around a start, continuous weights."""
    tr = spec.training
    return bool(tr.trust_region and tr.trust_region_scope == "all" and has_start
                and spec.network.weights == "continuous")


def trust_box(tm: TrainingModel, x0: np.ndarray, rho: float) -> WeightBox:
    """Every weight within rho of the point x0: a box the formulation also takes for its big-M values."""
    return [(x0[tm.weights(l)] - rho, x0[tm.weights(l)] + rho) for l in range(1, tm.depth + 1)]


def _trust_region(model, w: np.ndarray, centre: np.ndarray, rho: float):
    """Bound every weight column ``w`` to [w0 - rho, w0 + rho] within its domain."""
    lo, up = model.col_lower.copy(), model.col_upper.copy()
    lo[w] = np.maximum(lo[w], centre[w] - rho)
    up[w] = np.minimum(up[w], centre[w] + rho)
    return replace(model, col_lower=lo, col_upper=up)
