"""Gradient descent through a MILP's optimal value (run: python samples/gradient_descent.py).

Tunes the right-hand side b of the Guzelsoy-Ralphs example (samples/guzelsoy_ralphs.lp) to minimise

    L(b) = z(b) + (b - 3)^2 / 2,

where z(b) = min{x1/2 + 2 x3 + x4 : x1 - 3/2 x2 + x3 - x4 = b, x1, x2 integer} is the MILP's value
function. dz/db comes from bnnmilp.analysis.diff.MilpLayer (the multiplier of the leaf proving optimality);
a backtracking line search keeps every step a descent step even across kinks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bnnmilp.analysis.diff import MilpLayer  # noqa: E402
from bnnmilp.milp.backends.highs import read  # noqa: E402


def descend(b0: float = 0.25, steps: int = 12, lr: float = 0.5) -> list[tuple[float, float, float, bool]]:
    layer = MilpLayer(read(ROOT / "samples/guzelsoy_ralphs.lp"))

    def loss(b: float) -> tuple[float, float, bool]:
        z = layer.forward(b=np.array([b]))
        g = layer.backward(1.0)
        return z + (b - 3.0) ** 2 / 2, float(g["b"][0]) + (b - 3.0), bool(g["kink"])

    b = b0
    f, g, kink = loss(b)
    history = [(b, f, g, kink)]
    for _ in range(steps):
        t = lr
        while t > 1e-4:
            nb = b - t * g
            nf, ng, nk = loss(nb)
            if nf < f - 1e-4 * t * g * g:
                break
            t /= 2
        else:
            break
        b, f, g, kink = nb, nf, ng, nk
        history.append((b, f, g, kink))
    return history


if __name__ == "__main__":
    for i, (b, f, g, kink) in enumerate(descend()):
        print(f"step {i:2d}  b = {b:8.5f}  L(b) = {f:8.5f}  dL/db = {g:8.5f}{'  (kink)' if kink else ''}")
