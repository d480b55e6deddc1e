"""bnnmilp.torch.MilpLayer: shapes, batches equal single solves, gradients against finite differences, shared
inputs, dtype and device round trips, a model read from a file."""

from __future__ import annotations

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
