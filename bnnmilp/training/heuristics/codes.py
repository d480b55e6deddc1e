"""Class codes: a one-hidden-layer BNN built from linearly separable bipartitions of the classes.

Give every class c a code b_c in {0,1}^w, one bit per hidden unit. Hidden unit k then has to fire exactly on
the samples of the classes with b_ck = 1: a bipartition P_k of the classes, usable when some weights
W_k in [-1,1]^d separate it with the symmetric margin

    max delta  s.t.  W_k x_i - lambda_k >= delta   (y_i in P_k),      W_k x_i - lambda_k <= -delta   (else),
                     -1 <= W_k <= 1,  lambda_k = 0 (a shared threshold) or in [-1, 1] (per neuron),

with delta >= epsilon / 2: the threshold lambda_k + epsilon / 2 then realises the bits with the training
problem's epsilon margin, and so does the complement (-W_k, -lambda_k), so the orientation of a unit is free.

Classes that share a code share the output: for a group g of classes the output o_g is the best of 0 and
the group's target rows, at the cost sum_{c in g} n_c loss(o_g, t_c). With 2^w > C classes and distinct
codes the cost is 0. The codes are chosen by a beam search over the usable bipartitions, one unit at a
time, ranked by the cost hoped for (each group split by the units left into single classes as far as
they reach, as if every bipartition were separable); it stops at the first assignment of cost 0, and
the units it did not need repeat the first. The output unit j fires on the one code whose group
outputs bit j (if any):

    u^2_j = [ (2 b - 1) . u^1 / |b|  >=  1 - epsilon / 2 ]     fires on code b only (b != 0),

as b gives 1 and the other codes at most 1 - 1/|b|, below by epsilon where |b| <= 2 / (3 epsilon),

with W = 0 where no group outputs bit j. The zero code gives every output unit the pre-activation 0: with a
shared output threshold they all fire there or none does, so it goes to a group with o_g = 0 (or to no
class); where every code is taken, the search charges one group the cost of output 0. With per-neuron
thresholds, -sum_k u_k >= 0 fires on the zero code alone. ``pipeline.exact_start`` makes the network
meet the margin in exact arithmetic, and the pipeline takes it as the start of its method
(``training.warm_start: codes``). A construction: it proves nothing about the optimum, but where
2^w > C and the search finds separable bipartitions with distinct codes its loss is 0, and where
2^w <= C it can meet the capacity bound (``verification.proofs.capacity``), which then proves it
optimal (``pipeline`` then runs no search).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bnnmilp.data import Dataset
from bnnmilp.errors import SpecError
from bnnmilp.milp.backends import SolveOptions, highs
from bnnmilp.milp.model import ModelBuilder
from bnnmilp.network import Network
from bnnmilp.network.capacity import MAX_TARGETS, block_costs, cost_kind, target_counts
from bnnmilp.spec import Spec

BEAM = 32  # partial code assignments kept per hidden unit
LP_TOLERANCE = 1e-6  # a separating margin counts only this far above epsilon / 2 (the LP's tolerances are 1e-7)


def not_applicable(spec: Spec) -> str | None:
    """Why the construction does not apply to ``spec`` (None where it does)."""
    net = spec.network
    if net.depth != 2:
        return f"one hidden layer (layers [d, w, C]); got {list(net.layers)}"
    if net.weights != "continuous":
        return f"continuous weights; got {net.weights}"
    if net.thresholds not in ("learned", "per_neuron"):
        return f"learned or per_neuron thresholds; got {net.thresholds}"
    if net.output != "bits":
        return f"bit outputs; got {net.output}"
    return None


@dataclass(frozen=True)
class Cut:
    """A usable bipartition: ``mask`` (bit c set: class c on the firing side), the unit's weights and
    threshold realising it, and its symmetric margin."""

    mask: int
    weights: np.ndarray
    threshold: float
    margin: float


def separate(X: np.ndarray, side: np.ndarray, shared: bool, limit: float | None = None
             ) -> tuple[float, np.ndarray, float] | None:
    """The LP above for one unit: (delta, W, lambda) at its optimum, or None if the LP fails."""
    n, d = X.shape
    b = ModelBuilder("bnnmilp_codes")
    w = b.add_vars("w", (d,), -1.0, 1.0)
    lam = b.add_vars("lam", (), 0.0 if shared else -1.0, 0.0 if shared else 1.0)
    delta = b.add_vars("delta", (), -1.0, 1.0)
    cols = np.concatenate([np.broadcast_to(w, (n, d)), np.full((n, 2), [lam, delta])], axis=1)
    sign = np.where(side, 1.0, -1.0)
    coefs = np.concatenate([X * sign[:, None], -sign[:, None], -np.ones((n, 1))], axis=1)
    b.add_rows("sep", (n,), cols, coefs, 0.0, np.inf)
    b.set_objective(np.array([delta]), np.array([-1.0]))
    sol = highs.solve(b.build(), SolveOptions(time_limit=limit))
    if sol.status != "optimal" or sol.x is None:
        return None
    return float(sol.x[delta]), sol.x[w].copy(), float(sol.x[lam])


def usable_cuts(X: np.ndarray, cls: np.ndarray, n_classes: int, spec: Spec, deadline: float | None = None
                ) -> list[Cut]:
    """Every bipartition of the classes (class C-1 on the silent side) separable with margin epsilon / 2,
    the larger margins first."""
    masks = range(1, 1 << (n_classes - 1))
    shared = spec.network.thresholds == "learned"
    need = spec.training.epsilon / 2
    out = []
    for m in masks:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        side = ((m >> cls) & 1).astype(bool)
        got = separate(X, side, shared, left)
        if got is not None and got[0] >= need + LP_TOLERANCE:
            out.append(Cut(m, got[1], got[2], got[0]))
    out.sort(key=lambda c: (-c.margin, c.mask))
    return out


class Costs:
    """Per set of classes (a bit mask), the least loss of a group sharing one output: ``block`` is the
    capacity bound's block cost (``verification.proofs.capacity.block_costs``: the majority bit per output for
    Hamming loss, the most frequent class's target for the error loss; with one-hot targets output j is
    on only in the group of class j, on one code, as the output layer below realises), ``zero`` the cost
    with output 0."""

    def __init__(self, targets: np.ndarray, counts: np.ndarray, kind: str) -> None:
        n = len(counts)
        self.targets, self.counts, self.kind = targets, counts, kind
        self.block = block_costs(targets, counts, kind)
        member = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1
        miss = targets.sum(axis=1) if kind == "hamming" else (targets.sum(axis=1) > 0)
        self.zero = (member @ (counts * miss)).tolist()
        self.order = np.argsort(-counts, kind="stable").tolist()  # the most numerous classes first

    def output(self, mask: int) -> np.ndarray:
        """The output row of a group: the majority bits (Hamming) or the most frequent class's target."""
        cs = [c for c in range(len(self.counts)) if mask >> c & 1]
        if self.kind == "hamming":
            ones = self.counts[cs] @ self.targets[cs]
            return (2 * ones > self.counts[cs].sum()).astype(self.targets.dtype)
        return self.targets[cs[int(np.argmax(self.counts[cs]))]]


def _groups(codes: np.ndarray) -> list[int]:
    """The classes sharing each code, as masks."""
    by: dict[int, int] = {}
    for c, code in enumerate(codes.tolist()):
        by[code] = by.get(code, 0) | 1 << c
    return list(by.values())


def group_costs(codes: np.ndarray, costs: Costs, left: int = 0, zero_code: bool = False) -> int:
    """The cost of a code assignment (codes[c] per class). With ``left`` units still to choose, the cost
    hoped for instead: each group split by them into 2^left - 1 single classes (the most numerous) and one
    group of the rest, as if every bipartition were separable. ``zero_code``: one group must output 0 (a
    shared output threshold where every code is taken: the zero code gives every output unit the
    pre-activation 0, so they all fire or none does), the one where that costs least."""
    total, extra = 0, None
    for group in _groups(codes):
        mask = group
        if left:
            for c in [c for c in costs.order if group >> c & 1][: (1 << left) - 1]:
                mask &= ~(1 << c)
            if not mask:
                continue
        total += costs.block[mask]
        if zero_code and (extra is None or costs.zero[mask] - costs.block[mask] < extra):
            extra = costs.zero[mask] - costs.block[mask]
    return total + (extra or 0)


def outputs_of(codes: np.ndarray, costs: Costs, zero_code: bool) -> np.ndarray:
    """Each class's output row under the assignment: its group's (``Costs.output``), and 0 for the group
    ``group_costs`` silences."""
    groups = _groups(codes)
    silent = min(groups, key=lambda g: costs.zero[g] - costs.block[g]) if zero_code else None
    out = np.zeros_like(costs.targets)
    for g in groups:
        row = np.zeros_like(costs.targets[0]) if g == silent else costs.output(g)
        out[[c for c in range(len(codes)) if g >> c & 1]] = row
    return out


def _zero_code(spec: Spec, codes: np.ndarray, units: int) -> bool:
    """Whether the assignment must give one group output 0 (see ``group_costs``)."""
    return spec.network.thresholds == "learned" and np.unique(codes).size == 1 << units


def _codes(cuts: list[Cut], chosen: tuple[int, ...], n_classes: int) -> np.ndarray:
    """Each class's code under the chosen cuts (bit k: the side of cut k)."""
    cls = np.arange(n_classes)
    codes = np.zeros(n_classes, np.int64)
    for k, i in enumerate(chosen):
        codes |= ((cuts[i].mask >> cls) & 1) << k
    return codes


def choose_codes(cuts: list[Cut], width: int, costs: Costs, spec: Spec) -> tuple[list[Cut], np.ndarray] | None:
    """A beam search for at most ``width`` cuts whose codes cost least: states ranked by the cost hoped for
    with the units left, then with one more unit, then the cost as they stand, then the order found (the
    larger margins first in ``cuts``); it stops at the first state that costs 0 (more units add nothing)."""
    n_classes = len(costs.counts)
    beam: list[tuple[tuple[int, int, int, int], tuple[int, ...]]] = [((0, 0, 0, 0), ())]
    cls = np.arange(n_classes)
    for step in range(width):
        left = width - step - 1
        nxt: dict[tuple[int, ...], tuple[int, int, int, int]] = {}
        for _, chosen in beam:
            base = _codes(cuts, chosen, n_classes)
            for i in range(len(cuts)):
                key = tuple(sorted((*chosen, i)))
                if i in chosen or key in nxt:
                    continue
                codes = base | (((cuts[i].mask >> cls) & 1) << len(chosen))
                exact = group_costs(codes, costs, 0, _zero_code(spec, codes, step + 1))
                if exact == 0:  # more units would add nothing
                    return [cuts[j] for j in key], _codes(cuts, key, n_classes)
                one = group_costs(codes, costs, 1) if left else exact
                hoped = group_costs(codes, costs, left) if left > 1 else one
                nxt[key] = (hoped, one, exact, len(nxt))
        if not nxt:
            break
        beam = sorted(((score, key) for key, score in nxt.items()))[:BEAM]
    if not beam[0][1]:
        return None
    return [cuts[i] for i in beam[0][1]], _codes(cuts, beam[0][1], n_classes)


def codes_network(spec: Spec, data: Dataset, deadline: float | None = None) -> Network:
    """The class-code network for ``spec`` on ``data`` (see the module docstring); raises SpecError where
    the construction does not apply or finds no usable bipartition. At ``deadline`` (time.monotonic) it
    stops trying bipartitions and builds from those found."""
    why = not_applicable(spec)
    if why is not None:
        raise SpecError(None, "training.warm_start", f"codes needs {why}")
    labels, targets, counts = target_counts(spec, data, list(range(data.n_samples)))
    if not 2 <= len(labels) <= MAX_TARGETS:
        raise SpecError(None, "training.warm_start", f"codes needs 2 to {MAX_TARGETS} classes in the data; "
                                                      f"got {len(labels)}")
    costs = Costs(targets, counts, cost_kind(spec))
    cls = np.searchsorted(labels, data.labels)
    cuts = usable_cuts(data.features.astype(np.float64), cls, len(labels), spec, deadline)
    width = spec.network.layers[1]
    picked = choose_codes(cuts, min(width, len(cuts)), costs, spec)
    if picked is None:
        raise SpecError(None, "training.warm_start", "codes found no bipartition of the classes that the "
                                                      "first layer can separate with the epsilon margin")
    units, codes = picked
    outputs = outputs_of(codes, costs, _zero_code(spec, codes, len(units)))
    return _assemble(spec, units, codes, outputs, width)


def _assemble(spec: Spec, units: list[Cut], codes: np.ndarray, outputs: np.ndarray, width: int) -> Network:
    """The network of the chosen cuts: orientation so that a group with output 0 gets the zero code (or,
    where none has, no class does), the epsilon / 2 thresholds, and the output layer above."""
    k_used = len(units)
    taken = set(int(c) for c in codes)
    silent = [int(c) for c, o in zip(codes, outputs) if not o.any()]
    flip = silent[0] if silent else next((v for v in range(1 << k_used) if v not in taken), 0)
    codes = codes ^ flip
    eps = spec.training.epsilon
    d, n_out = spec.network.layers[0], spec.network.layers[2]
    W1, lam1 = np.zeros((width, d)), np.zeros(width)
    for k in range(width):  # units beyond the chosen ones repeat the first (the output layer ignores them)
        src = k if k < k_used else 0
        s = -1.0 if (flip >> src) & 1 else 1.0  # a shared threshold: every LP had lambda = 0, so all get eps/2
        W1[k], lam1[k] = s * units[src].weights, s * units[src].threshold + eps / 2
    W2, lam2 = np.zeros((n_out, width)), np.full(n_out, 1.0 - eps / 2)  # 1/|b| sums to 1 only up to rounding
    for j in range(n_out):
        on = np.unique(codes[outputs[:, j] == 1])
        if on.size != 1:
            continue  # W = 0: never fires
        bits = (int(on[0]) >> np.arange(k_used)) & 1
        if bits.any():
            W2[j, :k_used] = (2.0 * bits - 1.0) / bits.sum()
        elif spec.network.thresholds == "per_neuron":  # the zero code: -sum u >= 0 there only
            W2[j, :k_used], lam2[j] = -1.0, 0.0
    return Network([W1, W2], [lam1, lam2])
