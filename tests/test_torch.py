"""bnnmilp.torch.MilpLayer: shapes, batches equal single solves, gradients against finite differences, shared
inputs, dtype and device round trips, a model read from a file."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.analysis.test_layer import mixed

torch = pytest.importorskip("torch")
from bnnmilp.torch import MilpLayer  # noqa: E402


def test_shapes_and_batches_equal_single_solves() -> None:
    m = mixed(3)
    layer = MilpLayer(m, workers=2)
    C = torch.tensor(np.random.default_rng(0).uniform(1, 5, (5, m.n_cols)))
    z, x = layer(c=C, solution=True)
    assert z.shape == (5,) and x.shape == (5, m.n_cols) and z.dtype == torch.float64
    for i in range(5):
        zi, xi = layer(c=C[i], solution=True)
        assert zi.shape == () and zi.item() == z[i].item() and torch.equal(xi, x[i])
    assert layer(b=None).shape == ()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_match_finite_differences_and_keep_dtype(dtype) -> None:
    m = mixed(5)
    layer = MilpLayer(m, workers=1)
    b0 = np.where(np.isfinite(m.row_lower), m.row_lower, m.row_upper)
    b = torch.tensor(b0, dtype=dtype, requires_grad=True)
    c = torch.tensor(m.c, dtype=dtype, requires_grad=True)
    A = torch.tensor(m.data, dtype=dtype, requires_grad=True)
    z = layer(c=c, b=b, A=A)
    z.backward()
    assert b.grad.dtype == dtype and c.grad.dtype == dtype and A.grad.dtype == dtype
    assert b.grad.shape == (m.n_rows,) and A.grad.shape == (m.nnz,)
    from bnnmilp.analysis.layer import BatchMilp

    ref = BatchMilp(m, workers=1).solve_one(b0, m.c, m.data, True)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert np.allclose(c.grad.numpy(), ref.x, atol=tol) and np.allclose(b.grad.numpy(), ref.y, atol=tol)
    rows = np.repeat(np.arange(m.n_rows), np.diff(m.indptr))
    assert np.allclose(A.grad.numpy(), -ref.y[rows] * ref.x[m.indices], atol=tol)


def test_a_shared_input_sums_the_batchs_gradients() -> None:
    m = mixed(2)
    layer = MilpLayer(m, workers=2)
    C = torch.tensor(np.random.default_rng(1).uniform(1, 5, (4, m.n_cols)))
    b = torch.tensor(np.where(np.isfinite(m.row_lower), m.row_lower, m.row_upper), requires_grad=True)
    z = layer(c=C, b=b)
    assert layer.jump.shape == (4, m.n_rows) and layer.kink == [None] * 4
    (z * torch.arange(1.0, 5.0, dtype=torch.float64)).sum().backward()
    each = [torch.autograd.grad(layer(c=C[i], b=b), b)[0] for i in range(4)]
    assert torch.allclose(b.grad, sum((i + 1) * g for i, g in enumerate(each)))


def test_a_model_from_an_lp_file(repo_root) -> None:
    layer = MilpLayer(repo_root / "samples/guzelsoy_ralphs.lp")
    c = torch.tensor(layer.solver.model.c, requires_grad=True)
    z = layer(c=c)
    z.backward()
    assert z.item() == pytest.approx(1.0, abs=1e-8) and torch.equal(c.grad, torch.tensor(layer.solver.solve()[0].x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_round_trip() -> None:
    m = mixed(0)
    c = torch.tensor(m.c, device="cuda", requires_grad=True)
    MilpLayer(m)(c=c).backward()
    assert c.grad.device.type == "cuda"


def tiny() -> tuple:
    """min c x over x in {0, 1}^3 with x0 + x1 + x2 <= 2: enumerable."""
    from bnnmilp.milp.model import INF, ModelBuilder

    b = ModelBuilder()
    x = b.add_vars("x", (3,), 0, 1, True)
    b.add_rows("r", (), x[None, :], np.ones((1, 3)), -INF, 2.0)
    b.set_objective(x, np.ones(3))
    points = [np.array(p, float) for p in itertools.product([0, 1], repeat=3) if sum(p) <= 2]
    return b.build(), points


def argmin(c: np.ndarray, points: list) -> np.ndarray:
    return min(points, key=lambda p: float(c @ p))


def test_spo_plus_equals_its_definition_and_gradient() -> None:
    from bnnmilp.torch import spo_plus

    m, pts = tiny()
    layer = MilpLayer(m, workers=1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        c, c_hat = rng.normal(size=3), rng.normal(size=3)
        x_true = argmin(c, pts)
        ch = torch.tensor(c_hat, requires_grad=True)
        loss = spo_plus(layer, ch, torch.tensor(c), torch.tensor(x_true),
                        torch.tensor(float(c @ x_true), dtype=torch.float64))
        expected = max(float((c - 2 * c_hat) @ p) for p in pts) + 2 * float(c_hat @ x_true) - float(c @ x_true)
        assert loss.item() == pytest.approx(expected, abs=1e-9)
        loss.backward()
        assert np.allclose(ch.grad.numpy(), 2 * (x_true - argmin(2 * c_hat - c, pts)))


def test_perturbed_fenchel_young_loss_and_gradient_match_their_estimators() -> None:
    from bnnmilp.torch import perturbed_fy

    m, pts = tiny()
    layer = MilpLayer(m, workers=2)
    theta = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64, requires_grad=True)
    x_true = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    loss = perturbed_fy(layer, theta, x_true, samples=16, sigma=0.5, generator=torch.Generator().manual_seed(3))
    loss.backward()
    noise = torch.randn((16, 1, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)[:, 0]
    draws = [theta.detach().numpy() + 0.5 * z for z in noise.numpy()]
    z_mean = np.mean([min(float(d @ p) for p in pts) for d in draws])
    x_mean = np.mean([argmin(d, pts) for d in draws], axis=0)
    assert loss.item() == pytest.approx(float(theta.detach().numpy() @ x_true.numpy()) - z_mean, abs=1e-9)
    assert np.allclose(theta.grad.numpy(), x_true.numpy() - x_mean)


def test_blackbox_argmin_gives_vlastelicas_gradient() -> None:
    from bnnmilp.torch import blackbox_argmin

    m, pts = tiny()
    layer = MilpLayer(m, workers=1)
    c = torch.tensor([-1.0, -0.5, 0.2], dtype=torch.float64, requires_grad=True)
    x = blackbox_argmin(layer, c, lam=2.0)
    assert np.array_equal(x.detach().numpy(), argmin(c.detach().numpy(), pts))
    target = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    loss = ((x - target) ** 2).sum()
    loss.backward()
    g = 2 * (x.detach().numpy() - target.numpy())
    x_lam = argmin(c.detach().numpy() + 2.0 * g, pts)
    assert np.allclose(c.grad.numpy(), -(x.detach().numpy() - x_lam) / 2.0)
