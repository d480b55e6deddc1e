"""A MILP's optimal value as a PyTorch layer, batched (torch is an optional extra: pip install 'bnnmilp[torch]').

    from bnnmilp.torch import MilpLayer
    layer = MilpLayer(model)              # a StandardModel, or an MPS/LP path
    z = layer(c=C)                        # C of shape (B, n): z of shape (B,)
    z, x = layer(c=C, b=Bv, solution=True)
    z.sum().backward()                    # dz/dc = x*, dz/db = y, dz/dA = -y x* (on A's non-zeros)

Each of ``c`` (n or B x n), ``b`` (m or B x m) and ``A`` (nnz or B x nnz, aligned with the model's stored
non-zeros) may be given per instance, once for all, or left out (the model's own). Instances are solved on
``workers`` threads (HiGHS and Gurobi release the GIL), by HiGHS or, with ``solver="gurobi"``, by Gurobi.
Gradients come back on the inputs' device and dtype; which side of a row b moves, and what ``exact``
changes, is in :mod:`bnnmilp.analysis.layer`. After a forward pass, ``layer.kink`` (B,) holds whether z is at
a kink (None unless ``exact=True``) and ``layer.jump`` (B, m) whether z may jump at an instance's b_i.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bnnmilp.analysis.layer import BatchMilp
from bnnmilp.milp.model import StandardModel


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().to("cpu", torch.float64).numpy()


class _MilpValue(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer: MilpLayer, c, b, A):  # type: ignore[override]
        need_y = (b is not None and b.requires_grad) or (A is not None and A.requires_grad)
        out = layer.solver.solve(_np(b), _np(c), _np(A), duals=need_y)
        ref = next(t for t in (c, b, A, layer.anchor) if t is not None)
        z = torch.tensor([s.z for s in out], dtype=ref.dtype, device=ref.device)
        x = torch.tensor(np.stack([s.x for s in out]), dtype=ref.dtype, device=ref.device)
        y = torch.tensor(np.stack([s.y for s in out]), dtype=ref.dtype, device=ref.device) if need_y else None
        layer.kink = [s.kink for s in out]
        layer.jump = np.stack([s.jump for s in out])
        ctx.batched = any(t is not None and t.dim() == 2 for t in (c, b, A))
        ctx.shapes = [None if t is None else t.dim() for t in (c, b, A)]
        ctx.save_for_backward(x, y if y is not None else torch.empty(0))
        ctx.has_y = need_y
        ctx.rows = torch.as_tensor(layer.rows, device=ref.device)
        ctx.cols = torch.as_tensor(layer.solver.model.indices, device=ref.device)
        ctx.mark_non_differentiable(x)
        return (z if ctx.batched else z[0]), (x if ctx.batched else x[0])

    @staticmethod
    def backward(ctx, gz, gx):  # type: ignore[override]
        x, y = ctx.saved_tensors
        g = gz.reshape(-1, 1)
        grads = [None, None, None]
        if ctx.needs_input_grad[1]:
            grads[0] = g * x
        if ctx.has_y and ctx.needs_input_grad[2]:
            grads[1] = g * y
        if ctx.has_y and ctx.needs_input_grad[3]:
            grads[2] = -g * y[:, ctx.rows] * x[:, ctx.cols]
        for k, dim in enumerate(ctx.shapes):
            if grads[k] is not None and dim == 1:
                grads[k] = grads[k].sum(dim=0)  # one value shared by the batch
        return (None, *grads)


class MilpLayer(torch.nn.Module):
    """z(b, c, A) = min { c x : L <= A x <= U, bounds, integrality } for a batch; see the module docstring."""

    def __init__(self, model: StandardModel | str | Path, time_limit: float | None = None,
                 workers: int | None = None, exact: bool = False, solver: str = "highs") -> None:
        super().__init__()
        if not isinstance(model, StandardModel):
            from bnnmilp.milp.backends import highs

            model = highs.read(model)
        self.solver = BatchMilp(model, time_limit, workers, exact, solver)
        self.rows = np.repeat(np.arange(model.n_rows), np.diff(model.indptr))
        self.anchor = torch.zeros(())
        self.kink: list[bool | None] = []
        self.jump = np.zeros((0, model.n_rows), bool)

    def forward(self, c: torch.Tensor | None = None, b: torch.Tensor | None = None, A: torch.Tensor | None = None,
                solution: bool = False):
        z, x = _MilpValue.apply(self, c, b, A)
        return (z, x) if solution else z


# ---- surrogate losses for the argmin (piecewise constant in c), on the same batched solver ------------------
def spo_plus(layer: MilpLayer, c_hat: torch.Tensor, c: torch.Tensor, x_true: torch.Tensor,
             z_true: torch.Tensor) -> torch.Tensor:
    """SPO+ (Elmachtoub and Grigas 2022) for min c x: max_x (c - 2 c_hat) x + 2 c_hat x*(c) - z*(c), i.e.
    -z(2 c_hat - c) + 2 c_hat . x_true - z_true, per instance; its gradient in c_hat is
    2 (x_true - x*(2 c_hat - c))."""
    return -layer(c=2 * c_hat - c) + 2 * (c_hat * x_true).sum(dim=-1) - z_true


def perturbed_fy(layer: MilpLayer, theta: torch.Tensor, x_true: torch.Tensor, samples: int = 8,
                 sigma: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The Fenchel-Young loss of the perturbed minimiser (Berthet et al. 2020) for min c x, with Gaussian noise:
    theta . x_true - E[z(theta + sigma Z)], estimated with ``samples`` draws; its gradient in theta is
    x_true - E[x*(theta + sigma Z)], the perturbed optimiser's deviation from the target."""
    batched = theta.dim() == 2
    th = theta if batched else theta[None]
    noise = torch.randn((samples, *th.shape), generator=generator, dtype=th.dtype, device=th.device)
    z = layer(c=(th[None] + sigma * noise).reshape(-1, th.shape[-1])).reshape(samples, th.shape[0])
    loss = (th * (x_true if batched else x_true[None])).sum(dim=-1) - z.mean(dim=0)
    return loss if batched else loss[0]


class _Blackbox(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer: MilpLayer, c, lam: float):  # type: ignore[override]
        _, x = layer(c=c.detach(), solution=True)
        ctx.layer, ctx.lam = layer, lam
        ctx.save_for_backward(c.detach(), x)
        return x

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        c, x = ctx.saved_tensors
        _, x_lam = ctx.layer(c=c + ctx.lam * g, solution=True)
        return None, -(x - x_lam) / ctx.lam, None


def blackbox_argmin(layer: MilpLayer, c: torch.Tensor, lam: float = 10.0) -> torch.Tensor:
    """x*(c) with the gradient of Vlastelica et al. (2020, differentiation of blackbox combinatorial solvers):
    backward solves again at c + lam * dL/dx and returns -(x*(c) - x*(c + lam dL/dx)) / lam."""
    return _Blackbox.apply(layer, c, lam)


# ---- a BNN's worst-case margin over an input box, differentiable in its weights ----------------------------
class WorstMargin(torch.nn.Module):
    """z = min over the box x0 +- eps of s_y - s_r for a one-hidden-layer argmax BNN (hidden bits
    u = [W x >= lambda], scores s = V u - mu), per instance (image, class y, rival r), through the MILP of
    :mod:`bnnmilp.formulations.margin`. z > 0 proves the rival cannot reach y's score in the box.

    Gradients: dz/dV_y = u* and dz/dV_r = -u* (the worst hidden pattern: Danskin's theorem, the value
    function's gradient in c); dz/dmu from the offset; W and lambda enter the rows (A and b), where the
    objective holds only bits, so z is piecewise constant in them: their gradient is 0 (the multipliers of
    the LP with the bits fixed), and z jumps where a hidden pattern becomes reachable or unreachable."""

    def __init__(self, n_inputs: int, n_hidden: int, eps: float, workers: int | None = None,
                 time_limit: float | None = None) -> None:
        from bnnmilp.formulations.margin import worst_margin_model

        super().__init__()
        self.n_inputs, self.n_hidden, self.eps = n_inputs, n_hidden, float(eps)
        self.layer = MilpLayer(worst_margin_model(n_inputs, n_hidden, eps), time_limit, workers)

    def forward(self, W: torch.Tensor, lam: torch.Tensor, V: torch.Tensor, mu: torch.Tensor, X: torch.Tensor,
                y: torch.Tensor, r: torch.Tensor, solution: bool = False):
        """W (H, n), lam (H,), V (K, H), mu (K,); X (B, n) images, y and r (B,) class and rival indices."""
        B, n = X.shape
        g = X @ W.T - lam  # (B, H): the pre-activations at the image, minus the thresholds
        spread = self.eps * W.abs().sum(dim=1)
        low = (torch.clamp(g - spread, max=0.0) - 1.0).detach()  # L < 0 below g + W d over the box: big-M only
        high = (torch.clamp(g + spread, min=0.0) + 1.0).detach()
        Wb = W.expand(B, *W.shape)
        A = torch.cat([torch.cat([Wb, low[..., None]], dim=2), torch.cat([Wb, -high[..., None]], dim=2)], dim=1)
        b = torch.cat([low - g, -g], dim=1)
        c = torch.cat([X.new_zeros(B, n), V[y] - V[r]], dim=1)
        z, x = self.layer(c=c, b=b, A=A.reshape(B, -1), solution=True)
        z = z - (mu[y] - mu[r])
        return (z, x[:, n:]) if solution else z
