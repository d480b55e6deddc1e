"""Lexicographic training objectives (BeMi-style): solve stage after stage, each keeping the earlier optima.

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

from dataclasses import dataclass

import numpy as np

from bnnmilp.backends.base import ProgressFn, Solution
from bnnmilp.formulations.theorem1 import TrainingModel
from bnnmilp.solve import solve
from bnnmilp.spec import SolverSpec


@dataclass
class StageResult:
    name: str
    solution: Solution
    value: float | None  # objective value reached (minimisation form), kept by later stages


def solve_stages(tm: TrainingModel, solver: SolverSpec, start: np.ndarray | None = None,
                 progress: ProgressFn | None = None) -> list[StageResult]:
    """Solve the stages in order; stops early when a stage finds no point (earlier results are kept)."""
    stages = tm.spec.training.objective
    model = tm.model
    if "loss" not in stages:
        c, off, _ = tm.objectives["loss"]
        model = model.with_row("fit_exactly", c, -np.inf, 0.0 - off + 1e-6)
    results: list[StageResult] = []
    x = start
    for name in stages:
        c, off, integral = tm.objectives[name]
        # start from the better of the previous stage's point and the initial start, if still feasible
        starts = [p for p in (x, start) if p is not None and model.max_violation(p) <= 1e-9]
        x = min(starts, key=lambda p: float(c @ p)) if starts else x
        sol = solve(model.with_objective(c, off, integral), solver, start=x, progress=progress)
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
    return results
