"""Theorem 1 of Aspman, Korpas & Marecek (AAAI 2024), after Bah & Kurtz: BNN training as a MILP.

Network widths d_0 = n, ..., d_L; samples i = 1..m with inputs x^i and target
bits y^i. Variables: weights W^l_kj in [-1, 1] (integer for ternary; for
binary, w = 2 z - 1 with z binary), thresholds lambda_l (one per layer,
per neuron, or fixed 0), activations u^{i,l}_k in {0,1}, and for l >= 2 the
products s^{i,l}_kj = W^l_kj u^{i,l-1}_j.

Pre-activation minus threshold, with bounds lo <= . <= hi (``bounds.py``):
    g^{i,1}_k = sum_j x^i_j W^1_kj - lambda_1          (linear in W: x is data)
    g^{i,l}_k = sum_j s^{i,l}_kj - lambda_l            (l >= 2)
Step activation with margin epsilon (the strict side of a >= lambda made a row):
    g >= lo (1 - u)                                   u = 1  =>  a >= lambda
    g <= -epsilon + (hi + epsilon) u                  u = 0  =>  a <= lambda - epsilon
Exact products (u binary, |w| <= 1):
    -u <= s <= u,   w - (1 - u) <= s <= w + (1 - u)
Loss, linear in the output bits u^{i,L}:
    hamming: sum_i sum_j y^i_j + (1 - 2 y^i_j) u^{i,L}_j
    error:   sum_i e_i,  e_i >= u^{i,L}_j (y_j = 0),  e_i >= 1 - u^{i,L}_j (y_j = 1),  e_i binary

Optional columns for lexicographic objectives (``objectives.py``):
    margin (Icarte et al. 2019): mu_lk in [0, C] per neuron, in the step rows
        g >= mu_lk - (C - lo)(1 - u)                       u = 1  =>  a - lambda >= mu
        g <= -epsilon - mu_lk + (hi + epsilon + C) u       u = 0  =>  a - lambda <= -epsilon - mu
      objective: max sum_lk mu_lk (each margin capped at C = ``margin_cap``)
    min_weight: nz_lkj binary, -nz <= w <= nz; objective: min sum nz (fewest nonzero weights)

Kept samples (the large-neighbourhood search, ``heuristics/lns.py``): samples whose bits u are fixed
contribute no variables, only the rows of ``pattern_rows`` (the step rows with u as data, linear in W).

Strengthenings that keep the optimum (tested against brute force):
    symmetry: order      sum_i u^{i,l}_k >= sum_i u^{i,l}_{k+1} for hidden layers l < L: the neurons of a
                         hidden layer are interchangeable (permute W^l's rows, their thresholds and
                         W^{l+1}'s columns together), so some optimum has descending activation counts
    fix_unused           W^1_kj = 0 (binary: +1) for inputs j that are 0 in every sample: they multiply
                         nothing (Icarte et al. fix such pixels too)
    epsilon: auto        epsilon = 1 for integer data and discrete weights: pre-activations are integers,
                         and any threshold can be replaced by ceil(lambda) without changing a bit, so
                         a <= lambda - 1 is exactly a < lambda
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from bnnmilp.formulations.bounds import WeightBox, full_box, lp_bounds, preactivation_bounds
from bnnmilp.formulations.registry import register
from bnnmilp.milp.model import INF, ModelBuilder, StandardModel
from bnnmilp.network import Network
from bnnmilp.spec import Spec


@dataclass
class TrainingModel:
    """The MILP plus what is needed to map its solutions back to networks."""

    spec: Spec
    model: StandardModel
    X: np.ndarray
    Y: np.ndarray
    objectives: dict[str, tuple[np.ndarray, float, bool]] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return self.spec.network.depth

    # ---- typed handles: the model's columns and rows by what they are, never by block-name strings ----
    def weights(self, l: int) -> np.ndarray:
        """Columns of W^l, shape (d_l, d_(l-1))."""
        return self.model.cols(f"w{l}")

    def all_weights(self) -> np.ndarray:
        """Columns of every weight, flat."""
        return np.concatenate([self.weights(l).ravel() for l in range(1, self.depth + 1)])

    def thresholds(self, l: int) -> np.ndarray | None:
        """Columns of lambda^l, one per neuron (the same column repeated when shared); None for zero."""
        key = f"lam{l}"
        if key not in self.model.col_blocks:
            return None
        return np.broadcast_to(self.model.cols(key), (self.spec.network.layers[l],))

    def bits(self, l: int) -> np.ndarray | None:
        """Columns of the activations u^{i,l}, shape (m, d_l); None for an argmax output layer."""
        return self.model.cols(f"u{l}") if f"u{l}" in self.model.col_blocks else None

    def margins(self, l: int | None = None) -> np.ndarray:
        """Columns of the per-neuron margins mu (of layer l, or of every layer), flat; empty without them."""
        keys = [f"mu{l}"] if l is not None else [f"mu{k}" for k in range(1, self.depth + 1)]
        found = [self.model.cols(k).ravel() for k in keys if k in self.model.col_blocks]
        return np.concatenate(found) if found else np.zeros(0, np.int64)

    def step_rows(self, l: int) -> np.ndarray | None:
        """The rows g >= lo (1 - u) of layer l, shape (m, d_l); None where the layer has no step (argmax)."""
        return self.model.row_blocks[f"on{l}"].indices if f"on{l}" in self.model.row_blocks else None

    def branching_priority(self) -> np.ndarray:
        """Weights first (fixing them decides every bit), then activations layer by layer, then the rest."""
        pr = np.full(self.model.n_cols, 10.0 * (self.depth + 2))
        for key, block in self.model.col_blocks.items():
            if key[0] in "wz" and key[1:].isdigit():
                pr[block.indices.ravel()] = 0.0
            elif key[0] == "u" and key[1:].isdigit():
                pr[block.indices.ravel()] = 10.0 * int(key[1:])
        return pr

    def unit_swaps(self) -> tuple[list[np.ndarray], np.ndarray]:
        """(permutations, order): per hidden layer l and unit k, the column permutation that swaps units k
        and k + 1 (rows of W^l and of its z and nz columns, their thresholds, margins and products s^{i,l}, the
        activations u^{i,l}, the columns of W^{l+1}, z^{l+1}, nz^{l+1} and the products s^{i,l+1}), as sigma with
        sigma[j] the column that j becomes; and the hidden activations unit by unit, u^{.,l}_0, u^{.,l}_1,
        ..., the lexicographic order of symmetry handling. Candidates only: the proof engine keeps those
        that are automorphisms of the model (``proofs/symmetry.py``), and the checker tests them again."""
        blocks = self.model.col_blocks
        swaps: list[np.ndarray] = []
        order: list[np.ndarray] = []
        for l in range(1, self.depth):
            d = self.spec.network.layers[l]
            if self.bits(l) is None:
                continue
            order.append(self.bits(l).T.ravel())
            axes = [*((f"{p}{l}", 0) for p in ("w", "z", "nz", "lam", "mu")), (f"u{l}", 1), (f"s{l}", 1),
                    *((f"{p}{l + 1}", 1) for p in ("w", "z", "nz")), (f"s{l + 1}", 2)]
            for k in range(d - 1):
                sigma = np.arange(self.model.n_cols)
                for key, axis in axes:
                    if key not in blocks or len(blocks[key].shape) <= axis or blocks[key].shape[axis] != d:
                        continue
                    idx = blocks[key].indices
                    swapped = idx.copy()
                    a, b = [slice(None)] * idx.ndim, [slice(None)] * idx.ndim
                    a[axis], b[axis] = k, k + 1
                    swapped[tuple(a)], swapped[tuple(b)] = idx[tuple(b)], idx[tuple(a)]
                    sigma[idx.ravel()] = swapped.ravel()
                swaps.append(sigma)
        return swaps, (np.concatenate(order) if order else np.zeros(0, np.int64))

    def network_from(self, x: np.ndarray) -> Network:
        """The network encoded in a solution vector (discrete weights rounded to their domain)."""
        layers = range(1, self.depth + 1)
        return network_at(x, self.spec, {l: self.weights(l) for l in layers}, {l: self.thresholds(l) for l in layers})

    def pattern_from(self, x: np.ndarray) -> list[np.ndarray]:
        """The activation bits u^{i,l} of a solution, rounded: the pattern the solver claims."""
        hidden = [np.round(x[u]).astype(np.int8) for u in map(self.bits, range(1, self.depth + 1)) if u is not None]
        if self.spec.network.output == "argmax":  # the output layer's "pattern": the class each correct sample wins
            return [*hidden, (self.Y * (1 - np.round(x[self.model.cols("e")]))[:, None]).astype(np.int8)]
        return hidden

    def canonical(self, net: Network) -> Network:
        """The same function in the form the strengthenings expect: hidden neurons sorted by descending
        activation count (``symmetry: order``), weights of unused inputs at their fixed value."""
        ws, ts = [w.copy() for w in net.weights], [t.copy() for t in net.thresholds]
        if self.spec.training.symmetry == "order":
            bits = Network(ws, ts).forward(self.X)
            for l in range(self.depth - 1):
                order = np.argsort(-bits[l].sum(axis=0), kind="stable")
                ws[l], ts[l] = ws[l][order], ts[l][order]
                ws[l + 1] = ws[l + 1][:, order]
                bits = Network(ws, ts).forward(self.X)
        w1 = self.model.cols("w1")
        fixed = self.model.col_lower[w1] == self.model.col_upper[w1]
        ws[0] = np.where(fixed, self.model.col_lower[w1], ws[0])
        return Network(ws, ts)

    def solution_from(self, net: Network, tol: float = 1e-9) -> np.ndarray | None:
        """The MILP point of a network, or None when the network violates the epsilon margin somewhere."""
        net = self.canonical(net)
        x = np.zeros(self.model.n_cols)
        bits = net.forward(self.X)
        prev = None
        for l in range(1, self.depth + 1):
            W = net.weights[l - 1]
            x[self.weights(l)] = W
            if f"z{l}" in self.model.col_blocks:
                x[self.model.cols(f"z{l}")] = (W + 1) / 2
            tc = self.thresholds(l)
            if tc is not None:
                x[tc] = net.thresholds[l - 1]
            if self.bits(l) is not None:
                x[self.bits(l)] = bits[l - 1]
            if prev is not None:
                x[self.model.cols(f"s{l}")] = W[None, :, :] * prev[:, None, :]
            prev = bits[l - 1]
        if self.spec.network.output == "argmax":  # e_i = 0 where the sample is correct by a margin epsilon
            x[self.model.cols("e")] = net.score_margins(self.X, self.Y.argmax(axis=1), bits) < \
                self.spec.training.epsilon + tol
        elif "e" in self.model.col_blocks:
            x[self.model.cols("e")] = np.any(bits[-1] != self.Y, axis=1)
        inp = self.X
        for l in range(1, self.depth + 1):  # each neuron's margin: its smallest slack, capped; nz: w != 0
            if f"nz{l}" in self.model.col_blocks:
                x[self.model.cols(f"nz{l}")] = net.weights[l - 1] != 0
            if f"mu{l}" in self.model.col_blocks:
                g = inp @ net.weights[l - 1].T - net.thresholds[l - 1]
                slack = np.where(bits[l - 1] == 1, g, -g - self.spec.training.epsilon).min(axis=0)
                mu = np.clip(slack - 1e-9 * (1 + np.abs(slack)), 0.0, self.spec.training.margin_cap)
                x[self.model.cols(f"mu{l}")] = mu
            inp = bits[l - 1].astype(np.float64)
        return x if self.model.max_violation(x) <= tol else None


def network_at(x: np.ndarray, spec: Spec, W: dict, lam: dict) -> Network:
    """The network at a point x of a model with weight columns ``W[l]`` and threshold columns ``lam[l]`` (None:
    zero thresholds): values clipped to [-1, 1] (solver tolerance), discrete weights rounded to their domain."""
    ws, ts = [], []
    for l in range(1, spec.network.depth + 1):
        w = np.clip(x[W[l]], -1.0, 1.0)
        ws.append((np.round(w) if spec.network.weights != "continuous" else w) + 0.0)
        ts.append(np.zeros(spec.network.layers[l]) if lam[l] is None else np.clip(x[lam[l]], -1.0, 1.0) + 0.0)
    return Network(ws, ts)


def add_thresholds(b: ModelBuilder, mode: str, l: int, d: int) -> np.ndarray | None:
    """Threshold columns of layer l, one per neuron (the same column repeated when shared); None for zero."""
    if mode == "learned":
        return np.broadcast_to(b.add_vars(f"lam{l}", (), -1.0, 1.0, fmt=f"lam_{l}"), (d,))
    if mode == "per_neuron":
        return b.add_vars(f"lam{l}", (d,), -1.0, 1.0, fmt=f"lam_{l}_{{0}}")
    return None


def threshold_terms(lam: np.ndarray | None, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The -lambda term of every (sample, neuron) row as (cols, coefs) of shape (m, d, 1); zero-coefficient
    placeholders (dropped when the model is built) for fixed zero thresholds."""
    if lam is None:
        return np.zeros((m, d, 1), np.int64), np.zeros((m, d, 1))
    return np.broadcast_to(lam[None, :, None], (m, d, 1)), np.full((m, d, 1), -1.0)


def pattern_rows(b: ModelBuilder, spec: Spec, X: np.ndarray, pattern: list[np.ndarray], W: dict, lam: dict,
                 prefix: str = "g", slack: str | np.ndarray | None = None, floor: float = 0.0,
                 units: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """The rows that make the weights realise a fixed activation ``pattern`` on inputs X (linear in W: the
    bits are data), with the epsilon margin:

        a^{i,l}_k - lambda_l >= t          where u^{i,l}_k = 1
        a^{i,l}_k - lambda_l <= -eps - t   where u^{i,l}_k = 0,    a^{i,1} = W^1 x^i,  a^{i,l} = W^l u^{i,l-1}

    and, for an argmax output layer, s_y - s_k >= eps + t for every sample that wins its class y (``pattern``'s
    last entry one-hot; zero rows add nothing). ``slack``: None (t = 0), a column (one t for all rows),
    ``row`` or ``neuron`` (new columns t >= ``floor``, per row or per neuron). ``units``: per layer, the units
    whose rows are written (a boolean mask; the others' weights are fixed, so their rows are constants).
    Returns the new slack columns.
    Used by polishing (the pattern of every sample) and by the large-neighbourhood search (kept samples)."""
    net = spec.network
    eps = spec.training.epsilon
    m = X.shape[0]
    slacks: list[np.ndarray] = []
    for l in range(1, net.depth + 1):
        d, dp = net.layers[l], net.layers[l - 1]
        inp = X if l == 1 else pattern[l - 2].astype(np.float64)
        if units is not None and not units[l - 1].any():
            continue
        if l == net.depth and net.output == "argmax":
            slacks.append(_score_rows(b, spec, inp, pattern[-1], W[l], lam[l], slack, floor, f"{prefix}score"))
            continue
        u = pattern[l - 1].astype(np.float64)
        a_cols = np.broadcast_to(W[l][None, :, :], (m, d, dp))
        a_coef = np.broadcast_to(inp[:, None, :], (m, d, dp))
        lam_cols, lam_coef = threshold_terms(lam[l], m, d)
        sign = np.where(u == 1, -1.0, 1.0)  # t enters as -t on bit-1 rows, +t on bit-0 rows
        if slack is None or isinstance(slack, np.ndarray):
            t = np.zeros((m, d), np.int64) if slack is None else np.broadcast_to(slack, (m, d))
            sign = sign if slack is not None else np.zeros((m, d))
        elif slack == "row":
            t = b.add_vars(f"t{l}", (m, d), floor, INF)
            slacks.append(t.ravel())
        else:
            tn = b.add_vars(f"t{l}", (d,), floor, INF)
            slacks.append(tn)
            t = np.broadcast_to(tn[None, :], (m, d))
        cols = np.concatenate([a_cols, lam_cols, t[:, :, None]], axis=2)
        coefs = np.concatenate([a_coef, lam_coef, sign[:, :, None]], axis=2)
        lower, upper = np.where(u == 1, 0.0, -INF), np.where(u == 1, INF, -eps)
        if units is not None and not units[l - 1].all():
            k = np.flatnonzero(units[l - 1])
            cols, coefs, lower, upper = cols[:, k], coefs[:, k], lower[:, k], upper[:, k]
        b.add_rows(f"{prefix}{l}", lower.shape, cols, coefs, lower, upper)
    return slacks


def _score_rows(b: ModelBuilder, spec: Spec, H: np.ndarray, wins: np.ndarray, W: np.ndarray, lam: np.ndarray | None,
                slack: str | np.ndarray | None, floor: float, name: str) -> np.ndarray:
    """Argmax output rows s_y - s_k >= epsilon + t for every sample that wins its class y (``wins`` one-hot)
    and rival k; t as in :func:`pattern_rows`. Returns the new slack columns."""
    i, y = np.nonzero(wins)
    d, dp = W.shape
    if y.size == 0:  # no sample to keep correct
        return np.zeros(0, np.int64)
    rival = np.array([[k for k in range(d) if k != c] for c in y], dtype=np.int64).reshape(len(y), d - 1)
    n = len(y)
    new = np.zeros(0, np.int64)
    if slack is None or isinstance(slack, np.ndarray):
        tcols = np.broadcast_to(np.zeros((), np.int64) if slack is None else slack, (n, d - 1))
    elif slack == "row":
        new = b.add_vars(f"{name}_t", (n, d - 1), floor, INF).reshape(n, d - 1)
        tcols = new
    else:
        new = b.add_vars(f"{name}_t", (d,), floor, INF)
        tcols = np.broadcast_to(new[y][:, None], (n, d - 1))
    h = np.broadcast_to(H[i][:, None, :], (n, d - 1, dp))
    cols = [np.broadcast_to(W[y][:, None, :], (n, d - 1, dp)), W[rival], tcols[:, :, None]]
    coefs = [h, -h, np.full((n, d - 1, 1), 0.0 if slack is None else -1.0)]
    if spec.network.thresholds == "per_neuron":
        cols += [np.broadcast_to(lam[y][:, None, None], (n, d - 1, 1)), lam[rival][:, :, None]]
        coefs += [np.full((n, d - 1, 1), -1.0), np.full((n, d - 1, 1), 1.0)]
    b.add_rows(name, (n, d - 1), np.concatenate(cols, 2), np.concatenate(coefs, 2), spec.training.epsilon, INF)
    return new.ravel()


def _argmax_rows(b: ModelBuilder, Y: np.ndarray, a_cols: np.ndarray, a_coef: np.ndarray, lam: np.ndarray | None,
                 mode: str, lo: np.ndarray, hi: np.ndarray, eps: float) -> np.ndarray:
    """Score rows of an argmax output layer; returns the error indicators e.

    s^i_k = a^{i,L}_k - lambda_k;  s^i_y - s^i_k >= epsilon - M_ik e_i  for every k != y = y^i,
    M_ik = hi_ik - lo_iy + epsilon (the bounds of a - lambda), e_i binary: the sample is classified
    correctly, by a margin epsilon, unless it is counted as an error.
    """
    m, d, dp = a_cols.shape
    E = b.add_vars("e", (m,), 0.0, 1.0, True)
    y = Y.argmax(axis=1)
    rival = np.array([[k for k in range(d) if k != yi] for yi in y]).reshape(m, d - 1)
    rows = np.arange(m)[:, None]
    col_y = np.broadcast_to(a_cols[rows[:, 0], y][:, None, :], (m, d - 1, dp))
    coef_y = np.broadcast_to(a_coef[rows[:, 0], y][:, None, :], (m, d - 1, dp))
    parts_c = [col_y, a_cols[rows, rival], np.broadcast_to(E[:, None, None], (m, d - 1, 1))]
    big = hi[rows, rival] - lo[rows[:, 0], y][:, None] + eps
    parts_v = [coef_y, -a_coef[rows, rival], big[:, :, None]]
    if mode == "per_neuron":  # - lambda_y + lambda_k (a shared threshold cancels)
        parts_c += [np.broadcast_to(lam[y][:, None, None], (m, d - 1, 1)), lam[rival][:, :, None]]
        parts_v += [np.full((m, d - 1, 1), -1.0), np.full((m, d - 1, 1), 1.0)]
    b.add_rows("score", (m, d - 1), np.concatenate(parts_c, axis=2), np.concatenate(parts_v, axis=2), eps, INF,
               fmt="score_{0}_{1}")
    return E


def check_size(spec: Spec, m: int) -> None:
    """Refuse, before any array is allocated, a MILP whose nonzeros exceed the element limit: about 2 per
    first-layer weight and sample (two big-M rows) and 14 per later-layer product s and sample (four
    linearisation rows, the sums)."""
    from bnnmilp.errors import SpecError
    from bnnmilp.limits import too_many

    layers = spec.network.layers
    nonzeros = 2 * m * layers[0] * layers[1] + 14 * m * sum(a * b for a, b in itertools.pairwise(layers[1:]))
    msg = too_many(nonzeros, f"the training MILP of {m:,} samples and layers {list(layers)} (its nonzeros)")
    if msg:
        raise SpecError(spec.path, "network.layers", f"{msg}; fewer samples per MILP (training.method: lns or ste) "
                                                     "or narrower layers")


@register("theorem1")
class Theorem1:
    """The paper's formulation (see the module docstring for the equations)."""

    def build(self, spec: Spec, X: np.ndarray, Y: np.ndarray, box: WeightBox | None = None,
              kept: tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None] | None = None) -> TrainingModel:
        """The MILP; ``box`` restricts the weights (a trust region) and the big-M values with them.

        ``kept = (X_K, pattern_K, units)``: further samples whose activation pattern is fixed (the
        large-neighbourhood search: only X's samples are free), as linear rows (:func:`pattern_rows`, for the
        given units only), outside the objective."""
        net, tr = spec.network, spec.training
        m = X.shape[0]
        check_size(spec, m)
        if tr.epsilon_auto and (net.weights == "continuous" or not np.all(np.round(X) == X)):
            from bnnmilp.errors import SpecError

            raise SpecError(spec.path, "training.epsilon", "auto needs integer data and binary or ternary weights")
        eps = tr.epsilon
        b = ModelBuilder("bnnmilp_train")
        W, lam = {}, {}
        weight_box = full_box(net) if box is None else [(np.maximum(lo, -1.0), np.minimum(hi, 1.0)) for lo, hi in box]
        for l in range(1, net.depth + 1):
            d, dp = net.layers[l], net.layers[l - 1]
            integer = net.weights != "continuous"
            w_lo, w_hi = weight_box[l - 1]
            if l == 1 and tr.fix_unused:
                unused = np.all(X == 0, axis=0)
                w_lo[:, unused] = 1.0 if net.weights == "binary" else 0.0
                w_hi[:, unused] = w_lo[:, unused]
            W[l] = b.add_vars(f"w{l}", (d, dp), w_lo, w_hi, integer, fmt=f"w_{l}_{{0}}_{{1}}")
            lam[l] = add_thresholds(b, net.thresholds, l, d)
        argmax = net.output == "argmax"
        steps = net.depth - 1 if argmax else net.depth  # layers with step activations
        U, S = {}, {}
        for l in range(1, steps + 1):
            U[l] = b.add_vars(f"u{l}", (m, net.layers[l]), 0.0, 1.0, True, fmt=f"u_{{0}}_{l}_{{1}}")
        for l in range(2, net.depth + 1):
            S[l] = b.add_vars(f"s{l}", (m, net.layers[l], net.layers[l - 1]), -1.0, 1.0,
                              fmt=f"s_{{0}}_{l}_{{1}}_{{2}}")
        Z = {}
        if net.weights == "binary":
            for l in range(1, net.depth + 1):
                Z[l] = b.add_vars(f"z{l}", W[l].shape, 0.0, 1.0, True, fmt=f"z_{l}_{{0}}_{{1}}")
        E = b.add_vars("e", (m,), 0.0, 1.0, True) if tr.loss == "error" and not argmax else None
        cap = tr.margin_cap if "margin" in tr.objective else 0.0
        MU = {l: b.add_vars(f"mu{l}", (net.layers[l],), 0.0, cap, fmt=f"mu_{l}_{{0}}")
              for l in range(1, steps + 1)} if cap else {}
        NZ = {l: b.add_vars(f"nz{l}", W[l].shape, 0.0, 1.0, True, fmt=f"nz_{l}_{{0}}_{{1}}")
              for l in range(1, net.depth + 1)} if "min_weight" in tr.objective else {}

        bounds = preactivation_bounds(net, X, "tight" if tr.big_m == "lp" else tr.big_m, weight_box)
        if tr.big_m == "lp":  # tighten by LP over the relaxation of the interval-bound model
            first = self.build(replace(spec, training=replace(tr, big_m="tight")), X, Y, box)
            bounds = lp_bounds(first, bounds)
        for l in range(1, net.depth + 1):
            d, dp = net.layers[l], net.layers[l - 1]
            lo, hi = bounds[l - 1]
            lo, hi = lo - cap, hi + cap  # room for the margin variable (cap = 0 without it)
            if l == 1:
                a_cols = np.broadcast_to(W[1][None, :, :], (m, d, dp))
                a_coef = np.broadcast_to(X[:, None, :], (m, d, dp))
            else:
                a_cols, a_coef = np.broadcast_arrays(S[l], np.ones((1, 1, dp)))
            if l > steps:  # the argmax output layer: score rows instead of step rows
                E = _argmax_rows(b, Y, a_cols, a_coef, lam[l], net.thresholds, lo, hi, eps)
            else:
                _step_rows(b, l, a_cols, a_coef, lam[l], U[l], MU.get(l), lo, hi, eps)
            if l >= 2:
                _mccormick_rows(b, l, S[l], U[l - 1], W[l])
        if kept is not None and kept[0].shape[0]:
            pattern_rows(b, spec, kept[0], kept[1], W, lam, prefix="keep", units=kept[2])
        _side_rows(b, spec, m, U, W, NZ, Z)
        model = _set_loss(b, net, Y, U, E, argmax).build(objective_integral=True)
        return TrainingModel(spec, model, X, Y, _objectives(model, MU, NZ))


def _step_rows(b: ModelBuilder, l: int, a_cols: np.ndarray, a_coef: np.ndarray, lam: np.ndarray, U: np.ndarray,
               mu: np.ndarray | None, lo: np.ndarray, hi: np.ndarray, eps: float) -> None:
    """u = [a - lambda >= 0] per sample and unit by big-M rows (a - lambda >= lo (1 - u), and <= -eps off),
    with the unit's margin mu where the margin objective asks for one."""
    m, d = U.shape
    lam_cols, lam_coef = threshold_terms(lam, m, d)
    mu_cols = np.broadcast_to(mu[None, :, None] if mu is not None else np.zeros((1, d, 1), np.int64), (m, d, 1))
    mu_coef = np.full((m, d, 1), 1.0 if mu is not None else 0.0)
    cols = np.concatenate([a_cols, lam_cols, U[:, :, None], mu_cols], axis=2)
    fmt = f"{{}}_{{{{0}}}}_{l}_{{{{1}}}}"
    b.add_rows(f"on{l}", (m, d), cols, np.concatenate([a_coef, lam_coef, lo[:, :, None], -mu_coef], axis=2), lo, INF,
               fmt=fmt.format("on"))
    b.add_rows(f"off{l}", (m, d), cols,
               np.concatenate([a_coef, lam_coef, -(hi + eps)[:, :, None], mu_coef], axis=2), -INF, -eps,
               fmt=fmt.format("off"))


def _mccormick_rows(b: ModelBuilder, l: int, s: np.ndarray, u_prev: np.ndarray, W: np.ndarray) -> None:
    """s = w u_prev exactly for u_prev in {0, 1} and w in [-1, 1]: McCormick's four rows."""
    up = np.broadcast_to(u_prev[:, None, :], s.shape)
    w = np.broadcast_to(W[None, :, :], s.shape)
    f = f"{{}}_{{{{0}}}}_{l}_{{{{1}}}}_{{{{2}}}}"
    b.add_rows(f"mc1_{l}", s.shape, np.stack([s, up], -1), np.array([1.0, -1.0]), -INF, 0.0, fmt=f.format("mca"))
    b.add_rows(f"mc2_{l}", s.shape, np.stack([s, up], -1), np.array([1.0, 1.0]), 0.0, INF, fmt=f.format("mcb"))
    b.add_rows(f"mc3_{l}", s.shape, np.stack([s, w, up], -1), np.array([1.0, -1.0, -1.0]), -1.0, INF,
               fmt=f.format("mcc"))
    b.add_rows(f"mc4_{l}", s.shape, np.stack([s, w, up], -1), np.array([1.0, -1.0, 1.0]), -INF, 1.0,
               fmt=f.format("mcd"))


def _side_rows(b: ModelBuilder, spec: Spec, m: int, U: dict, W: dict, NZ: dict, Z: dict) -> None:
    """Symmetry-breaking order of hidden units, non-zero indicators of weights, and binary weights w = 2z - 1."""
    net = spec.network
    if spec.training.symmetry == "order":
        for l in range(1, net.depth):
            d = net.layers[l]
            if d > 1:
                cols = np.concatenate([U[l][:, :-1].T, U[l][:, 1:].T], axis=1)  # (d - 1, 2m)
                coef = np.concatenate([np.ones((d - 1, m)), -np.ones((d - 1, m))], axis=1)
                b.add_rows(f"sym{l}", (d - 1,), cols, coef, 0.0, INF, fmt=f"sym_{l}_{{0}}")
    for l, nz in NZ.items():
        b.add_rows(f"nzlo{l}", nz.shape, np.stack([W[l], nz], -1), np.array([1.0, 1.0]), 0.0, INF,
                   fmt=f"nzlo_{l}_{{0}}_{{1}}")
        b.add_rows(f"nzup{l}", nz.shape, np.stack([W[l], nz], -1), np.array([1.0, -1.0]), -INF, 0.0,
                   fmt=f"nzup_{l}_{{0}}_{{1}}")
    for l, z in Z.items():
        b.add_rows(f"bin{l}", z.shape, np.stack([W[l], z], -1), np.array([1.0, -2.0]), -1.0, -1.0,
                   fmt=f"bin_{l}_{{0}}_{{1}}")


def _set_loss(b: ModelBuilder, net, Y: np.ndarray, U: dict, E: np.ndarray | None, argmax: bool) -> ModelBuilder:
    """The training loss as the objective: errors E (argmax, or the error loss with its rows), or the Hamming
    loss sum |u_L - y| = sum (1 - 2y) u_L + sum y."""
    L, m = net.depth, Y.shape[0]
    y = Y.astype(np.float64)
    if argmax:
        b.set_objective(E, 1.0)
    elif E is None:
        b.set_objective(U[L], 1.0 - 2.0 * y, offset=float(y.sum()))
    else:
        dL = net.layers[L]
        cols = np.stack([np.broadcast_to(E[:, None], (m, dL)), U[L]], -1)
        b.add_rows("err", (m, dL), cols, np.stack([np.ones_like(y), 2.0 * y - 1.0], -1), y, INF, fmt="err_{0}_{1}")
        b.set_objective(E, 1.0)
    return b


def _objectives(model: StandardModel, MU: dict, NZ: dict) -> dict:
    """The lexicographic stages' objectives: the loss, the summed margins (maximised), the non-zero weights."""
    objectives = {"loss": (model.c, model.offset, True)}
    if MU:
        c = np.zeros(model.n_cols)
        c[np.concatenate([v.ravel() for v in MU.values()])] = -1.0  # maximise the summed margins
        objectives["margin"] = (c, 0.0, False)
    if NZ:
        c = np.zeros(model.n_cols)
        c[np.concatenate([v.ravel() for v in NZ.values()])] = 1.0
        objectives["min_weight"] = (c, 0.0, True)
    return objectives
