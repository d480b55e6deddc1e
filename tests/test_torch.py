"""bnnmilp.torch.MilpLayer: shapes, batches equal single solves, gradients against finite differences, shared
inputs, dtype and device round trips, a model read from a file."""

from __future__ import annotations

import itertools
from fractions import Fraction

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


# ---- WorstMargin: a BNN's worst-case margin over a box --------------------------------------------------------
def _worst_by_enumeration(w, lam, v, x0, eps) -> Fraction:
    """min over x in [x0 - eps, x0 + eps] of min over the bits a tie allows of v u, for one input: every point
    where a neuron's bit can change and a point between each pair of them, in rationals."""
    w, lam, v = ([Fraction(float(t)) for t in a] for a in (w, lam, v))
    lo, hi = Fraction(float(x0)) - Fraction(float(eps)), Fraction(float(x0)) + Fraction(float(eps))
    pts = sorted({lo, hi, *(l / wk for wk, l in zip(w, lam) if wk != 0 and lo <= l / wk <= hi)})
    pts += [(p + q) / 2 for p, q in itertools.pairwise(pts)]
    best = None
    for x in pts:
        total = Fraction(0)
        for wk, lk, vk in zip(w, lam, v):
            g = wk * x - lk
            total += min(vk, 0) if g == 0 else (vk if g > 0 else 0)
        best = total if best is None else min(best, total)
    return best


def test_worst_margin_equals_enumeration_on_one_input() -> None:
    from bnnmilp.torch import WorstMargin

    rng = np.random.default_rng(3)
    H, K, B = 5, 3, 40
    wm = WorstMargin(1, H, 0.5, workers=2)
    for _ in range(3):
        W, lam = rng.normal(size=(H, 1)), rng.normal(size=H)
        V, mu = rng.normal(size=(K, H)), rng.normal(size=K)
        X = rng.uniform(-2, 2, (B, 1))
        y = rng.integers(0, K, B)
        r = (y + 1 + rng.integers(0, K - 1, B)) % K
        t = [torch.tensor(a) for a in (W, lam, V, mu, X)]
        z = wm(*t, torch.tensor(y), torch.tensor(r))
        for i in range(B):
            exact = _worst_by_enumeration(W[:, 0], lam, V[y[i]] - V[r[i]], X[i, 0], 0.5)
            exact -= Fraction(float(mu[y[i]])) - Fraction(float(mu[r[i]]))
            assert z[i].item() == pytest.approx(float(exact), abs=1e-9)


def test_worst_margin_decides_robustness_as_the_verifier_does(repo_root) -> None:
    """z > 0 for every rival iff bnnmilp's exact robustness query answers robust (continuous inputs, the
    unclipped box), on a digits-sized network with random weights."""
    from bnnmilp.data import load_data
    from bnnmilp.network import Network
    from bnnmilp.torch import WorstMargin
    from bnnmilp.verification.robustness.robust import RobustOptions, verify_argmax_sample

    rng = np.random.default_rng(1)
    data = load_data(repo_root / "samples/digits_k2.yaml")
    X = data.features.astype(float)
    H, n = 8, X.shape[1]
    grid = lambda a: np.round(a * 1024) / 1024  # noqa: E731  (differences of classes exact: the verifier's rule)
    W, lam = grid(rng.normal(size=(H, n)) / 8), grid(rng.normal(size=H) * 4)
    V, mu = grid(rng.normal(size=(10, H))), grid(rng.normal(size=10) / 4)
    net = Network([W, V], [lam, mu])
    pred = net.argmax_predictions(X)  # against the network's own class: some images robust, some not
    eps = 0.25
    y = np.repeat(pred, 9)
    r = np.array([k for c in pred for k in range(10) if k != c])
    wm = WorstMargin(n, H, eps, workers=2)
    z = wm(*(torch.tensor(a) for a in (W, lam, V, mu, np.repeat(X, 9, axis=0))), torch.tensor(y),
           torch.tensor(r)).reshape(len(pred), 9)
    opts = RobustOptions(eps=eps, output="argmax", time_limit=30)
    answers = [verify_argmax_sample(net, X[i], int(pred[i]), i, opts).answer for i in range(len(pred))]
    assert sorted(set(answers)) == ["not_robust", "robust"]
    assert [bool((z[i] > 0).all()) for i in range(len(pred))] == [a == "robust" for a in answers]


def test_worst_margin_gradients() -> None:
    """dz/dV is the worst pattern's (finite differences agree away from kinks), dz/dmu the offset's, and the
    rows' weights get 0: z is piecewise constant in them."""
    from bnnmilp.torch import WorstMargin

    rng = np.random.default_rng(5)
    H, K, n, B = 6, 4, 3, 12
    W, lam = rng.normal(size=(H, n)), rng.normal(size=H)
    V, mu = rng.normal(size=(K, H)), rng.normal(size=K)
    X = rng.uniform(-1, 1, (B, n))
    y = rng.integers(0, K, B)
    r = (y + 1 + rng.integers(0, K - 1, B)) % K
    wm = WorstMargin(n, H, 0.3, workers=2)
    t = [torch.tensor(a, requires_grad=True) for a in (W, lam, V, mu)]
    z, u = wm(*t, torch.tensor(X), torch.tensor(y), torch.tensor(r), solution=True)
    z.sum().backward()
    assert float(t[0].grad.abs().sum()) == 0.0 and float(t[1].grad.abs().sum()) == 0.0
    expect_v = np.zeros((K, H))
    np.add.at(expect_v, y, u.numpy())
    np.add.at(expect_v, r, -u.numpy())
    assert np.array_equal(t[2].grad.numpy(), expect_v)
    assert np.array_equal(t[3].grad.numpy(), np.bincount(r, minlength=K) - np.bincount(y, minlength=K))
    h = 1e-7
    for k, j in [(0, 0), (1, 2), (3, 5)]:
        Vh = V.copy()
        Vh[k, j] += h
        zh = wm(*(torch.tensor(a) for a in (W, lam, Vh, mu, X)), torch.tensor(y), torch.tensor(r))
        assert float((zh - z.detach()).sum()) / h == pytest.approx(expect_v[k, j], abs=1e-5)
