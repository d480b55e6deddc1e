"""The worst-case score margin of a one-hidden-layer argmax BNN over an L-infinity box, as a MILP of fixed
structure whose numbers (weights, thresholds, image, class pair) change per instance.

For an image x0, its class y and a rival r, with hidden bits u_k = [W_k x - lambda_k >= 0] and scores
s = V u - mu:

    z = min  (V_y - V_r) u - (mu_y - mu_r)   over x = x0 + d, |d_j| <= eps, u binary, with per neuron k
        W_k d + L_k u_k >= L_k - g_k         u_k = 1  =>  g_k + W_k d >= 0
        W_k d - H_k u_k <= -g_k              u_k = 0  =>  g_k + W_k d <= 0

where g = W x0 - lambda and L_k < 0 < H_k bound g_k + W_k d over the box. A tie (g_k + W_k d = 0) may take
either bit, so the MILP relaxes the step rule: z > 0 proves that no x in the box makes r score at least y.
The box is not clipped to the data's range (a superset of the clipped box). Columns are d (n) then u (H);
rows are the H "on" rows then the H "off" rows, each with the n entries of d and then u_k: per-instance
values of A's non-zeros (``bnnmilp.torch.WorstMargin``) follow this order.
"""

from __future__ import annotations

import numpy as np

from bnnmilp.milp.model import INF, ModelBuilder, StandardModel


def worst_margin_model(n_inputs: int, n_hidden: int, eps: float) -> StandardModel:
    """The structure: placeholders 1 for every coefficient, bounds |d_j| <= eps, u binary."""
    mb = ModelBuilder("worst_margin")
    d = mb.add_vars("d", (n_inputs,), -eps, eps)
    u = mb.add_vars("u", (n_hidden,), 0.0, 1.0, integer=True)
    cols = np.concatenate([np.broadcast_to(d, (n_hidden, n_inputs)), u[:, None]], axis=1)
    mb.add_rows("on", (n_hidden,), cols, 1.0, -1.0, INF)
    mb.add_rows("off", (n_hidden,), cols, 1.0, -INF, 1.0)
    mb.set_objective(u, 1.0)
    return mb.build()
