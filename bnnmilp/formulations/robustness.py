"""Robustness queries of a trained BNN as MILPs (weights are constants, the perturbed input a variable).

For a sample x with reference output bits r (the network's own output, or the one-hot label), is there
an x' in the ball B = {x' : ||x' - x|| <= E, lo <= x' <= hi} (x' integer with the integer domain) whose
output bits differ from r? Variables: x' (d0), u^l_k binary. With [L, H] bounds on g = a - lambda from
interval arithmetic over the box (``ibp_bounds``):

    layer 1: a = W^1 x' (linear: W is constant);  layers l >= 2: a = W^l u^(l-1)
    g >= L (1 - u)                         u = 1  =>  a >= lambda
    g <= -delta + (H + delta) u            u = 0  =>  a <= lambda - delta
    sum_j r_j + (1 - 2 r_j) u^L_j >= 1     the output differs from r somewhere
    L1 ball: t_j >= |x'_j - x_j|, sum_j t_j <= E;  L-infinity ball: the box itself

delta = 0 makes the MILP a relaxation of the step rule (a tie a = lambda may take either bit), so an
infeasible query proves robustness. Where a layer's inputs are integers or bits and its weights and
threshold are dyadic with small denominators, delta = their granularity g (``granularity``) makes the
row exact: a - lambda lies in g Z, so a < lambda iff a <= lambda - g. A threshold off the weights' lattice
(a learned one, say -0.2746551) is first moved up onto it (``on_lattice``: the same bits on the domain).
A counterexample is always replayed with the exact forward pass. Where a real-valued first layer has
ties, ``strict`` adds a slack s in [0, 1] to its bit-0 rows (g <= -s + (H + 1) u) and maximises s: some x'
puts every bit-0 pre-activation strictly below its threshold and changes the output iff the optimum s* > 0. With
``margin`` m > 0, rows without an exact delta demand a - lambda >= m for bit 1 and <= -m for bit 0:
every solution is then a counterexample far from solver tolerances, but infeasibility proves nothing.
With ``min_eps`` the radius is a variable rho (|x'_j - x_j| <= rho, or sum_j t_j <= rho) and the
objective is min rho. Neurons whose bit interval arithmetic fixes over the box get fixed bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bnnmilp.formulations.registry import register
from bnnmilp.milp.model import INF, ModelBuilder, StandardModel
from bnnmilp.network import Network, dot_error_bound
from bnnmilp.network.sparse import Csr, dense, elementwise, entries, is_sparse, matvec


@dataclass
class RobustnessQuery:
    network: Network
    x: np.ndarray
    reference: np.ndarray  # output bits r
    box_lo: np.ndarray
    box_hi: np.ndarray
    eps: float | None  # radius (None with min_eps and only a box)
    norm: str  # "inf" | "1"
    integer: bool
    min_eps: bool = False
    delta: tuple[float, ...] | None = None  # per layer; None: all 0
    strict: bool = False  # maximise the slack s of layer 1's strict rows (decides ties exactly)
    margin: float = 0.0  # > 0: an under-approximation, |a - lambda| >= margin on rows without exact delta
    label: int | None = None  # argmax output: is some class k != label scoring s_k >= s_label reachable?


def granularity(W: np.ndarray | Csr, lam: np.ndarray) -> float:
    """g such that W v - lambda lies in g Z for every integer vector v (doubles are dyadic), or 0 when tiny.

    With integer inputs (or bits) the strict side a < lambda is then exactly a <= lambda - g.
    """
    k = max((Fraction(float(v)).denominator.bit_length() - 1 for v in np.unique(np.concatenate([entries(W), lam]))),
            default=0)
    g = 2.0**-k
    return g if g >= 1e-6 else 0.0


def on_lattice(net: Network, integer: bool, argmax: bool = False) -> tuple[Network, tuple[float, ...]]:
    """The same function on the domain, with every step threshold on its pre-activations' lattice, and the
    per-layer deltas that make the strict rows exact (0 where a layer's inputs are real or its lattice tiny).

    Where a layer's inputs are integers or bits and its weights lie in g Z (g = ``granularity`` of the
    weights alone), a = W v lies in g Z, so a >= lambda iff a >= g ceil(lambda / g): rounding the threshold
    up to the lattice keeps every bit (g is a power of two: exact in doubles), and then a < lambda iff
    a <= lambda' - g exactly, whatever lambda's own denominator (a learned threshold such as -0.2746551
    would otherwise leave delta = 0 and ties the solver may take either way). ``argmax``: the last layer is
    a score layer, not a step, and keeps its thresholds.
    """
    weights, thresholds, deltas = list(net.weights), [t.copy() for t in net.thresholds], []
    for l, (W, lam) in enumerate(zip(net.weights, net.thresholds, strict=True)):
        exact_inputs = l > 0 or integer
        step = not (argmax and l == len(net.weights) - 1)
        g = granularity(W, np.zeros(0)) if exact_inputs else 0.0
        if g and step:
            thresholds[l] = np.ceil(lam / g) * g
            deltas.append(g)
        else:
            deltas.append(granularity(W, lam) if exact_inputs else 0.0)
    return Network(weights, thresholds), tuple(deltas)


def interval_affine(W: np.ndarray | Csr, lo: np.ndarray, hi: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rigorous enclosure of g = W v - lambda for lo <= v <= hi, widened by a floating-point error bound."""
    Wp, Wn = elementwise(W, lambda v: np.maximum(v, 0.0)), elementwise(W, lambda v: np.minimum(v, 0.0))
    g_lo = matvec(Wp, lo) + matvec(Wn, hi) - lam
    g_hi = matvec(Wp, hi) + matvec(Wn, lo) - lam
    if integer_sums(W, lo, hi):  # the sums are exact; only the subtraction of lambda rounds, never across 0
        return g_lo - 4 * _U * np.abs(g_lo), g_hi + 4 * _U * np.abs(g_hi)
    err = dot_error_bound(np.maximum(np.abs(lo), np.abs(hi))[None, :], W,
                          np.abs(g_lo) + np.abs(g_hi) + np.abs(lam))[0]
    return g_lo - err, g_hi + err


_U = 2.0**-53  # unit roundoff of binary64


def integer_sums(W: np.ndarray | Csr, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether W v is an integer below 2^52 in magnitude, computed exactly in doubles, for every v in [lo, hi]
    (integer weights on integer bounds: bits of a previous layer): a unit that ties with its threshold at 0
    then keeps its exact bound 0 (bit 1) instead of a widened interval around it."""
    if not (np.all(lo == np.round(lo)) and np.all(hi == np.round(hi))):
        return False
    row = _integer_row_sum(W)
    top = float(np.maximum(np.abs(lo), np.abs(hi)).max(initial=0.0))
    return row is not None and row * top < 2.0**52


def _integer_row_sum(W: np.ndarray | Csr) -> float | None:
    """The largest sum of |weights| of a row when every weight is an integer, else None."""
    v = entries(W)
    if not np.all(v == np.round(v)):
        return None
    return float(matvec(elementwise(W, np.abs), np.ones(W.shape[1])).max(initial=0.0))


def ibp_bounds(net: Network, box_lo: np.ndarray, box_hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, rigorous bounds [L, H] on a - lambda over the input box (bits forced where the sign is sure)."""
    out = []
    lo, hi = box_lo.astype(np.float64), box_hi.astype(np.float64)
    for W, lam in zip(net.weights, net.thresholds, strict=True):
        g_lo, g_hi = interval_affine(W, lo, hi, lam)
        out.append((g_lo, g_hi))
        lo = (g_lo >= 0).astype(np.float64)  # surely 1
        hi = (g_hi >= 0).astype(np.float64)  # possibly 1 (a tie at 0 is bit 1)
    return out


def fixed_output(net: Network, box_lo: np.ndarray, box_hi: np.ndarray) -> np.ndarray | None:
    """The output bits when interval arithmetic proves them constant over the box, else None."""
    g_lo, g_hi = ibp_bounds(net, box_lo, box_hi)[-1]
    sure1, sure0 = g_lo >= 0, g_hi < 0
    if np.all(sure1 | sure0):
        return sure1.astype(np.int8)
    return None


def lattice_bounds(L: np.ndarray, H: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """Big-M bounds rounded outwards to the lattice g Z on which a - lambda lies (g > 0): still valid, and free of
    the floating-point widening, so the rows read as integers where the network is integral."""
    if not g:
        return L, H
    return np.floor(L / g) * g, np.ceil(H / g) * g


def add_network(b: ModelBuilder, net: Network, xp: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                deltas: tuple[float, ...], margin: float = 0.0, slack: np.ndarray | None = None,
                prefix: str = "", only_free: bool = False) -> list[np.ndarray]:
    """Add the bits and step rows of one network with constant weights on input columns ``xp``.
    ``only_free``: step rows only for the units the box leaves free (a unit interval arithmetic fixes has its
    bit fixed by its bounds, and its rows hold at every point of the box): a 30x30 conv BNN at a small radius
    has thousands of units and a few dozen free ones."""
    bounds = ibp_bounds(net, lo, hi)
    U: list[np.ndarray] = []
    for l, (W, lam) in enumerate(zip(net.weights, net.thresholds, strict=True), start=1):
        g_lo, g_hi = bounds[l - 1]
        u_lo = (g_lo >= 0).astype(np.float64)
        u_hi = (g_hi >= 0).astype(np.float64)
        u = b.add_vars(f"{prefix}u{l}", (W.shape[0],), np.minimum(u_lo, u_hi), u_hi, True,
                       fmt=f"{prefix}u_{l}_{{0}}")
        rows = np.flatnonzero(u_lo != u_hi) if only_free else None
        _step_rows(b, l, W, lam, xp if l == 1 else U[-1], u, (g_lo, g_hi), deltas[l - 1], margin, slack, prefix,
                   rows)
        U.append(u)
    return U


def _step_rows(b: ModelBuilder, l: int, W, lam: np.ndarray, inp: np.ndarray, u: np.ndarray,
               bounds: tuple[np.ndarray, np.ndarray], delta: float, margin: float, slack: np.ndarray | None,
               prefix: str, rows: np.ndarray | None) -> None:
    """Layer l's rows u = 1 iff W inp >= lam (big-M from the interval ``bounds``), for every unit or ``rows``."""
    g_lo, g_hi = bounds
    L, H = lattice_bounds(np.minimum(g_lo, 0.0), np.maximum(g_hi, 0.0), delta)
    m1 = margin if (margin and not delta) else 0.0  # bit-1 margin of the under-approximation
    step = delta or margin
    tag = ""
    if rows is not None and rows.size == 0:
        return
    if rows is not None:
        W = W.take_rows(rows) if is_sparse(W) else W[rows]
        lam, u, L, H, tag = lam[rows], u[rows], L[rows], H[rows], "free"
    d = W.shape[0]
    if is_sparse(W):  # rows from the non-zeros only (short rows padded with zero coefficients)
        pc, Wr = W.padded()
        cols = np.concatenate([inp[pc], u[:, None]], axis=1)
    else:
        Wr = W
        cols = np.concatenate([np.broadcast_to(inp[None, :], W.shape), u[:, None]], axis=1)
    b.add_rows(f"{prefix}on{l}{tag}", (d,), cols, np.concatenate([Wr, (L - m1)[:, None]], axis=1), lam + L, INF,
               fmt=f"{prefix}on_{l}{'_' + tag if tag else ''}_{{0}}")
    if l == 1 and slack is not None:
        cols_s = np.concatenate([cols, np.full((d, 1), slack)], axis=1)
        b.add_rows(f"{prefix}off{l}{tag}", (d,), cols_s,
                   np.concatenate([Wr, -(H + 1.0)[:, None], np.ones((d, 1))], axis=1), -INF, lam,
                   fmt=f"{prefix}off_{l}{'_' + tag if tag else ''}_{{0}}")
    else:
        b.add_rows(f"{prefix}off{l}{tag}", (d,), cols, np.concatenate([Wr, -(H + step)[:, None]], axis=1), -INF,
                   lam - step, fmt=f"{prefix}off_{l}{'_' + tag if tag else ''}_{{0}}")


def add_rivals(b: ModelBuilder, net: Network, xp: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               deltas: tuple[float, ...], y: int, margin: float, slack: np.ndarray | None) -> None:
    """Argmax output: the step layers as usual, then z_k (k != y) binary with

        (W_k - W_y) u - (lambda_k - lambda_y) >= L_k (1 - z_k),   sum_k z_k >= 1,

    (L_k a lower bound from interval arithmetic): some class k ties or beats class y (Sakai's query). The
    differences are taken in doubles; ``robust.rival_network`` checks them exact before a verdict rests on them.
    """
    hidden = Network(net.weights[:-1], net.thresholds[:-1])
    if net.weights[:-1]:
        U = add_network(b, hidden, xp, lo, hi, deltas[:-1], margin, slack)
        inp, bounds = U[-1], ibp_bounds(hidden, lo, hi)[-1]
        in_lo, in_hi = (bounds[0] >= 0).astype(np.float64), (bounds[1] >= 0).astype(np.float64)
    else:
        inp, in_lo, in_hi = xp, lo, hi
    W, lam = dense(net.weights[-1]), net.thresholds[-1]
    rivals = [k for k in range(W.shape[0]) if k != y]
    D, dl = W[rivals] - W[y], lam[rivals] - lam[y]
    g_lo, g_hi = interval_affine(D, in_lo, in_hi, dl)
    L, _ = lattice_bounds(np.minimum(g_lo, 0.0), g_hi, granularity(D, dl) if deltas[-1] else 0.0)
    z = b.add_vars("z", (len(rivals),), 0.0, 1.0, True, fmt="z_{0}")
    cols = np.concatenate([np.broadcast_to(inp[None, :], D.shape), z[:, None]], axis=1)
    b.add_rows("beats", (len(rivals),), cols, np.concatenate([D, L[:, None]], axis=1), dl + L, INF,
               fmt="beats_{0}")
    b.add_rows("some_rival", (), z[None, :], np.ones((1, len(rivals))), 1.0, INF)


def add_ball(b: ModelBuilder, xp: np.ndarray, x: np.ndarray, norm: str, eps: float | None,
             rho: np.ndarray | None) -> None:
    """||x' - x|| <= eps (or <= rho, a variable); the L-infinity ball is already the box."""
    d0 = x.shape[0]
    if norm == "1":
        t = b.add_vars("t", (d0,), 0.0, INF)
        b.add_rows("tpos", (d0,), np.stack([t, xp], -1), np.array([1.0, -1.0]), -x, INF)
        b.add_rows("tneg", (d0,), np.stack([t, xp], -1), np.array([1.0, 1.0]), x, INF)
        if rho is not None:
            b.add_rows("radius", (), np.concatenate([t, [rho]])[None, :],
                       np.concatenate([np.ones(d0), [-1.0]])[None, :], -INF, 0.0)
        else:
            b.add_rows("radius", (), t[None, :], np.ones((1, d0)), -INF, float(eps))
    elif rho is not None:
        b.add_rows("rlo", (d0,), np.stack([xp, np.full(d0, rho)], -1), np.array([1.0, 1.0]), x, INF)
        b.add_rows("rhi", (d0,), np.stack([xp, np.full(d0, rho)], -1), np.array([1.0, -1.0]), -INF, x)


@register("robustness")
class Robustness:
    """Robustness (and minimal-perturbation) queries; see the module docstring."""

    def build(self, q: RobustnessQuery) -> StandardModel:
        net = q.network
        d0 = net.weights[0].shape[1]
        b = ModelBuilder("bnnmilp_robust")
        lo, hi = q.box_lo.astype(np.float64), q.box_hi.astype(np.float64)
        xp = b.add_vars("x", (d0,), lo, hi, q.integer)
        rho = b.add_vars("rho", (), 0.0, INF) if q.min_eps else None
        slack = b.add_vars("s", (), 0.0, 1.0) if q.strict else None
        deltas = q.delta or (0.0,) * len(net.weights)
        if q.label is not None:
            add_rivals(b, net, xp, lo, hi, deltas, q.label, q.margin, slack)
        else:
            U = add_network(b, net, xp, lo, hi, deltas, q.margin, slack)
            r = q.reference.astype(np.float64)
            b.add_rows("differ", (), U[-1][None, :], (1.0 - 2.0 * r)[None, :], 1.0 - r.sum(), INF)
        add_ball(b, xp, q.x, q.norm, q.eps, rho)
        if q.min_eps:
            b.set_objective(np.asarray(rho)[None], np.ones(1))
        elif slack is not None:
            b.set_objective(np.asarray(slack)[None], -np.ones(1))
        return b.build(objective_integral=False)


@dataclass
class ReducedQuery:
    """A robustness query over the first-layer flips a ball can reach (``verification.robustness.reach``), not over
    the input."""

    network: Network  # layer 1: the free second-layer units on the flip indicators (D^T, lambda - a0); then the rest
    feature: np.ndarray  # per flip, the input feature it changes (at most one flip per feature)
    cost: np.ndarray  # per flip, its distance |x'_j - x_j|
    eps: float
    norm: str  # "inf" | "1"
    reference: np.ndarray  # output bits r (bits outputs)
    label: int | None = None  # argmax output: some class k != label with s_k >= s_label


@register("reduced_robustness")
class ReducedRobustness:
    """The robustness MILP after reachable-bit reasoning (issue 14, item 2). With integer inputs and a threshold
    input layer, a perturbation is a choice of flips f_i in {0, 1} (each a pattern of one feature's units,
    at cost c_i); the second layer reads a = a_0 + sum_i f_i D_i, and its units that no admissible choice can
    flip are folded into the third layer's thresholds (``reach._only_free``), so only the free units get
    variables:

        sum_{i in feature j} f_i <= 1                  one pattern per feature
        sum_i c_i f_i <= E                              L1 budget (L-infinity: every reachable flip is within E)
        u^2 = [D^T f >= lambda - a_0], u^l = [W^l u^(l-1) >= lambda^l]  as in ``robustness`` (big-M from
                                                        interval arithmetic over f in [0, 1]^n, exact deltas)
        the output differs from r, or some rival class ties or beats the label.

    Every coefficient is an integer (the reduction applies only then), so each step row is exact; a solution
    maps back to x' (each chosen flip's feature at its cheapest value) and is replayed like any other.
    """

    def build(self, q: ReducedQuery) -> StandardModel:
        n = q.feature.shape[0]
        b = ModelBuilder("bnnmilp_reduced_robust")
        f = b.add_vars("f", (n,), 0.0, 1.0, True, fmt="f_{0}")
        deltas = tuple(granularity(W, lam) for W, lam in zip(q.network.weights, q.network.thresholds, strict=True))
        lo, hi = np.zeros(n), np.ones(n)
        if q.label is not None:
            add_rivals(b, q.network, f, lo, hi, deltas, q.label, 0.0, None)
        else:
            U = add_network(b, q.network, f, lo, hi, deltas)
            r = q.reference.astype(np.float64)
            b.add_rows("differ", (), U[-1][None, :], (1.0 - 2.0 * r)[None, :], 1.0 - r.sum(), INF)
        groups = [np.flatnonzero(q.feature == j) for j in np.unique(q.feature)]
        multi = [g for g in groups if g.size > 1]
        if multi:
            width = max(g.size for g in multi)
            cols = np.array([np.pad(f[g], (0, width - g.size), constant_values=f[g[0]]) for g in multi])
            coefs = np.array([np.pad(np.ones(g.size), (0, width - g.size)) for g in multi])
            b.add_rows("one_per_feature", (len(multi),), cols, coefs, -INF, 1.0)
        if q.norm == "1":
            b.add_rows("budget", (), f[None, :], q.cost[None, :], -INF, float(q.eps))
        return b.build(objective_integral=False)


@dataclass
class EnsembleQuery:
    """Does some x' in the ball make class ``rival`` beat ``reference`` in the one-vs-one vote?"""

    networks: list[Network]
    classes: list[tuple[int, int]]
    x: np.ndarray
    reference: int
    rival: int
    box_lo: np.ndarray
    box_hi: np.ndarray
    eps: float | None
    norm: str
    integer: bool
    deltas: list[tuple[float, ...]]
    margin: float = 0.0
    fixed: list[int | None] | None = None  # a member's bit where it is proven constant over the box, else None


@register("ensemble_robustness")
class EnsembleRobustness:
    """One x' shared by every member; votes v_c = sum_{(c, b)} u + sum_{(a, c)} (1 - u); the rival beats the
    reference iff v_rival - v_reference >= 1, or >= 0 when rival < reference (ties go to the lower index)."""

    def build(self, q: EnsembleQuery) -> StandardModel:
        d0 = q.networks[0].weights[0].shape[1]
        b = ModelBuilder("bnnmilp_ensemble_robust")
        lo, hi = q.box_lo.astype(np.float64), q.box_hi.astype(np.float64)
        xp = b.add_vars("x", (d0,), lo, hi, q.integer)
        cols, coefs, const = [], [], 0.0
        fixed = q.fixed or [None] * len(q.networks)
        for net, (a, c2), dl, bit in zip(q.networks, q.classes, q.deltas, fixed, strict=True):
            # member votes a with its bit u, c2 with 1 - u
            w = (a == q.rival) - (a == q.reference) - ((c2 == q.rival) - (c2 == q.reference))
            const += (c2 == q.rival) - (c2 == q.reference)
            if not w:
                continue
            if bit is not None:
                const += w * bit
                continue
            cols.append(add_network(b, net, xp, lo, hi, dl, q.margin, prefix=f"m{a}_{c2}_")[-1][0])
            coefs.append(float(w))
        if not cols:  # every member is a constant here: a row of one zero coefficient keeps the test
            cols, coefs = [xp[0]], [0.0]
        need = (0.0 if q.rival < q.reference else 1.0) - const
        b.add_rows("beats", (), np.array([cols]), np.array([coefs]), need, INF)
        add_ball(b, xp, q.x, q.norm, q.eps, None)
        return b.build(objective_integral=False)
