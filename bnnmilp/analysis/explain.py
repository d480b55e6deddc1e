"""Sensitivity of a trained BNN's optimal training loss to every input feature of every training sample.

The data enter the training MILP as matrix coefficients: x_ij multiplies W^1_kj in the rows on_i_1_k and
off_i_1_k. With the optimal solution's weights W* and the proving leaf's multipliers y, the chain rule
through dz/dA_rc = -y_r x*_c gives

    dz/dx_ij = - sum_k W*_kj (y[on_i_1_k] + y[off_i_1_k]).

An element of the conservative Jacobian (see ``diff.py``); zero almost everywhere where the loss is flat.
"""

from __future__ import annotations

import numpy as np

from bnnmilp.analysis.diff import ValueAndGrad, value_and_grad
from bnnmilp.formulations.theorem1 import TrainingModel


def input_sensitivity(tm: TrainingModel, time_limit: float | None = None) -> tuple[np.ndarray, ValueAndGrad]:
    """(dz/dX of shape (m, d0), the value-and-gradient record)."""
    vg = value_and_grad(tm.model, time_limit=time_limit, priority=tm.branching_priority())
    W = vg.x[tm.weights(1)]  # (d1, d0)
    on, off = tm.model.row_blocks["on1"], tm.model.row_blocks["off1"]
    y_on = vg.y[on.indices]  # (m, d1)
    y_off = vg.y[off.indices]
    return -(y_on + y_off) @ W, vg
