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
2^w <= C it can meet the capacity bound (``verification.certificates.capacity``), which then proves it
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
from bnnmilp.spec import Spec

BEAM = 32  # partial code assignments kept per hidden unit
MAX_CLASSES = 12  # every bipartition is tried up to here (2^(C-1) - 1 LPs); random ones beyond
SAMPLED = 1023  # bipartitions tried beyond MAX_CLASSES
MAX_CODE_BITS = 62  # classes and code bits are held in int64 masks
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


def usable_cuts(X: np.ndarray, cls: np.ndarray, n_classes: int, spec: Spec, seed: int = 0,
                deadline: float | None = None) -> list[Cut]:
    """Every bipartition of the classes (class C-1 on the silent side) separable with margin epsilon / 2,
    the larger margins first; random bipartitions beyond MAX_CLASSES classes."""
    full = (1 << (n_classes - 1)) - 1
    if n_classes <= MAX_CLASSES:
        masks = list(range(1, full + 1))
    else:
        rng = np.random.default_rng(seed)
        masks = sorted({int(m) for m in rng.integers(1, full + 1, size=SAMPLED)})
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


def _group_cost(members: np.ndarray, counts: np.ndarray, T: np.ndarray, loss: str) -> tuple[int, np.ndarray, int]:
    """The cost of one group of classes sharing a code, its output row (the best of 0 and its targets), and
    its cost with output 0."""
    cands = np.vstack([np.zeros((1, T.shape[1]), T.dtype), T[members]])
    diff = np.abs(cands[:, None, :] - T[members][None, :, :])
    per = diff.sum(axis=2) if loss == "hamming" else (diff.sum(axis=2) > 0)
    cost = per @ counts[members]
    best = int(np.argmin(cost))
    return int(cost[best]), cands[best], int(cost[0])


def group_costs(codes: np.ndarray, counts: np.ndarray, T: np.ndarray, loss: str, left: int = 0,
                zero_code: bool = False) -> tuple[int, np.ndarray]:
    """The cost of a code assignment (codes[c] per class) and each class's output row. With ``left`` units
    still to choose, the cost hoped for instead: each group split by them into 2^left - 1 single classes
    (the most numerous) and one group of the rest, as if every bipartition were separable. ``zero_code``:
    one group must output 0 (a shared output threshold where every code is taken: the zero code gives
    every output unit the pre-activation 0, so they all fire or none does), the one where that costs least."""
    total, extra, silent = 0, None, None
    out = np.zeros_like(T)
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        if left:
            members = members[np.argsort(-counts[members], kind="stable")][(1 << left) - 1:]
            if members.size == 0:
                continue
        cost, row, cost0 = _group_cost(members, counts, T, loss)
        total += cost
        out[members] = row
        if extra is None or cost0 - cost < extra:
            extra, silent = cost0 - cost, members
    if zero_code and extra:
        total += extra
        out[silent] = 0
    return total, out


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


def choose_codes(cuts: list[Cut], width: int, counts: np.ndarray, T: np.ndarray, spec: Spec
                 ) -> tuple[list[Cut], np.ndarray] | None:
    """A beam search for at most ``width`` cuts whose codes cost least: states ranked by the cost hoped for
    with the units left, then with one more unit, then the cost as they stand, then the order found (the
    larger margins first in ``cuts``); it stops at the first state that costs 0 (more units add nothing)."""
    n_classes, loss = len(counts), spec.training.loss
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
                exact = group_costs(codes, counts, T, loss, 0, _zero_code(spec, codes, step + 1))[0]
                if exact == 0:  # more units would add nothing
                    return [cuts[j] for j in key], _codes(cuts, key, n_classes)
                one = group_costs(codes, counts, T, loss, 1)[0] if left else exact
                hoped = group_costs(codes, counts, T, loss, left)[0] if left > 1 else one
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
    X = data.features.astype(np.float64)
    T_all = data.targets(spec.network.n_outputs).astype(np.int64)
    classes, first, cls = np.unique(data.labels, return_index=True, return_inverse=True)
    T = T_all[first]  # one target row per class (targets are a function of the label)
    counts = np.bincount(cls, minlength=len(classes))
    width = spec.network.layers[1]
    if not 2 <= len(classes) <= MAX_CODE_BITS:
        raise SpecError(None, "training.warm_start", f"codes needs 2 to {MAX_CODE_BITS} classes in the data; "
                                                      f"got {len(classes)}")
    cuts = usable_cuts(X, cls, len(classes), spec, spec.training.seed, deadline)
    picked = choose_codes(cuts, min(width, len(cuts), MAX_CODE_BITS), counts, T, spec)
    if picked is None:
        raise SpecError(None, "training.warm_start", "codes found no bipartition of the classes that the "
                                                      "first layer can separate with the epsilon margin")
    units, codes = picked
    _, outputs = group_costs(codes, counts, T, spec.training.loss, zero_code=_zero_code(spec, codes, len(units)))
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
