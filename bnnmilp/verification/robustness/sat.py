"""Robustness queries of bit-level BNNs as SAT (python-sat), with cardinality encodings as Narodytska et al.
and Sakai use.

Applies to the networks ``reach`` applies to (integer inputs, a threshold input layer with one unit per
feature) whose later layers have weights in {-1, 0, +1} (the output layer: differences W_k - W_y in
{-2, 0, 2}, or {-1, 0, 1}). Variables: the bit of every first-layer unit the ball can flip (the others
are constants), and every later unit that interval arithmetic over those bits does not fix. A unit with
inputs v, weights w in {-1, +1} (constants folded) and integer threshold t is

    u  ->  sum_j [w_j = 1] v_j + [w_j = -1] (not v_j)  >=  T        (T = t + #negative weights - constants)
    not u  ->  the same sum  <=  T - 1

two cardinality constraints, each clause extended by the unit's literal. The perturbation: L-infinity is
the set of flippable bits itself; L1 is at most eps flip costs (each flip's literal repeated cost times in
one at-most constraint). The query: some rival k with s_k >= s_y (argmax; one selector per rival), or
some output bit differing from the reference. SAT gives first-layer bits, hence x' (each flipped feature at
its cheapest value), replayed exactly by the caller; UNSAT is a proof up to the solver, confirmed by a
second solver before it is reported as ``robust``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from bnnmilp.formulations.robustness import ibp_bounds
from bnnmilp.network import Network
from bnnmilp.network.sparse import dense
from bnnmilp.verification.robustness.reach import Reach

SOLVERS = ("glucose4", "minisat22")  # both can be interrupted; the second confirms an UNSAT answer


@dataclass
class SatAnswer:
    answer: str  # robust | not_robust | unknown
    counterexample: np.ndarray | None
    note: str


class TooLargeError(Exception):
    """The encoding would exceed MAX_CLAUSES: the query is left to other engines."""


MAX_CLAUSES = 3_000_000


class _Cnf:
    def __init__(self) -> None:
        self.top = 0
        self.clauses: list[list[int]] = []

    def var(self) -> int:
        self.top += 1
        return self.top

    def card(self, lits: list[int], bound: int, kind: str, guard: int | None) -> None:
        """sum(lits) >= bound (kind atleast) or <= bound (atmost), every clause extended by ``guard``."""
        from pysat.card import CardEnc, EncType

        n = len(lits)
        if len(self.clauses) + n * max(1, min(bound, n - bound, 64)) > MAX_CLAUSES:
            raise TooLargeError
        if (kind == "atleast" and bound <= 0) or (kind == "atmost" and bound >= n):
            return
        if (kind == "atleast" and bound > n) or (kind == "atmost" and bound < 0):
            self.clauses.append([guard] if guard is not None else [])
            return
        enc = (CardEnc.atleast if kind == "atleast" else CardEnc.atmost)(
            lits=lits, bound=bound, top_id=self.top, encoding=EncType.seqcounter if min(bound, n - bound) < 8
            else EncType.sortnetwrk)
        self.top = max(self.top, enc.nv)
        for c in enc.clauses:
            self.clauses.append([*c, guard] if guard is not None else list(c))


def _unit_rows(W: np.ndarray) -> bool:
    return bool(np.all(np.isin(W, (-1.0, 0.0, 1.0))))


def applicable(net: Network, reach: Reach, output: str) -> bool:
    if len(net.weights) < 2 or any(len(f.units) != 1 for f in reach.flips):
        return False
    if len({f.feature for f in reach.flips}) != len(reach.flips):  # one alternative per feature
        return False
    hidden = net.weights[1:-1] if output == "argmax" else net.weights[1:]
    if not all(_unit_rows(dense(W)) for W in hidden):
        return False
    if output == "argmax":
        W = dense(net.weights[-1])
        diffs = (W[:, None, :] - W[None, :, :]).ravel()
        return bool(np.all(np.isin(diffs, (-2.0, 0.0, 2.0))) or np.all(np.isin(diffs, (-1.0, 0.0, 1.0))))
    return True


def solve(net: Network, x: np.ndarray, reach: Reach, eps: float, norm: str, output: str, target: np.ndarray | int,
          time_limit: float | None = None) -> SatAnswer | None:
    """Is some admissible choice of first-layer flips adversarial? (see the module docstring); None where the
    encoding does not apply. ``time_limit`` covers encoding, loading and both solvers (``_Deadline``)."""
    if not applicable(net, reach, output):
        return None
    try:
        return _solve(net, x, reach, eps, norm, output, target, _Deadline(time_limit))
    except TooLargeError:
        return SatAnswer("unknown", None, f"the encoding exceeds {MAX_CLAUSES} clauses")
    except _OutOfTimeError as stop:
        return SatAnswer("unknown", None, f"time limit {stop}")


LOAD_SECONDS = 1.5e-6  # per clause, handing the encoding to a solver (Sakai's back-image network: 2.9 million
# clauses in 3.4 s); deleting the solver afterwards takes about FREE_SHARE of that
FREE_SHARE = 0.5


class _OutOfTimeError(TimeoutError):
    """The engine's time limit ran out before the solvers answered (the message says where)."""


class _Deadline:
    """The engine's time limit from its start: checked before each encoded unit and before a solver is
    loaded (at LOAD_SECONDS per clause), so that encoding and loading cannot outlast it."""

    def __init__(self, limit: float | None) -> None:
        self.at = None if limit is None else time.perf_counter() + limit

    def left(self) -> float:
        return math.inf if self.at is None else self.at - time.perf_counter()

    def check(self, what: str, need: float = 0.0) -> None:
        if self.left() <= need:
            raise _OutOfTimeError(what)


def _solve(net: Network, x: np.ndarray, reach: Reach, eps: float, norm: str, output: str, target: np.ndarray | int,
           deadline: _Deadline) -> SatAnswer:
    cnf = _Cnf()
    base = reach.base_bits.astype(np.int64)
    n1 = base.size
    lits: list[int | None] = [None] * n1  # a literal per first-layer unit that may change, else constant
    flip_of: dict[int, tuple[int, int]] = {}  # unit -> (flip index, literal meaning 'flipped')
    for i, f in enumerate(reach.flips):
        k = int(f.units[0])
        v = cnf.var()
        lits[k] = v
        flip_of[k] = (i, v if base[k] == 0 else -v)
    if norm == "1":
        repeated = []
        for _k, (i, lit) in flip_of.items():
            for _ in range(int(reach.flips[i].cost)):
                c = cnf.var()
                cnf.clauses += [[-lit, c], [lit, -c]]
                repeated.append(c)
        cnf.card(repeated, math.floor(eps), "atmost", None)
    lo = np.where([lit is None for lit in lits], base, 0).astype(np.float64)
    hi = np.where([lit is None for lit in lits], base, 1).astype(np.float64)
    layers = list(zip(net.weights[1:], net.thresholds[1:], strict=True))
    steps = layers[:-1] if output == "argmax" else layers
    bounds = _bounds(net, reach, steps, lo, hi, eps, norm)
    prev = lits
    prev_const = base
    # with an L1 budget at most K flips happen: the second layer is encoded on the flips with counters up to K
    K = min(len(reach.flips), math.floor(eps / min((f.cost for f in reach.flips), default=1.0))) \
        if norm == "1" else None
    flips_by_unit = {k: lit for k, (_, lit) in flip_of.items()}
    for depth, ((Wl, lam), (g_lo, g_hi)) in enumerate(zip(steps, bounds, strict=True)):
        W = dense(Wl)
        cur: list[int | None] = []
        const = np.zeros(W.shape[0], np.int64)
        for k in range(W.shape[0]):
            deadline.check(f"while encoding layer {depth + 2} ({cnf.top} variables, {len(cnf.clauses)} clauses "
                           "so far)")
            if g_lo[k] >= 0 or g_hi[k] < 0:  # fixed by interval arithmetic
                cur.append(None)
                const[k] = 1 if g_lo[k] >= 0 else 0
                continue
            u = cnf.var()
            cur.append(u)
            if depth == 0 and K is not None:
                _unit_on_flips(cnf, W[k], math.ceil(lam[k]), base, flips_by_unit, K, u)
            else:
                _unit(cnf, W[k], math.ceil(lam[k]), prev, prev_const, u)
        prev, prev_const = cur, const
    if output == "argmax":
        W, lam = dense(net.weights[-1]), net.thresholds[-1]
        y = int(target)
        sel = []
        for k in range(W.shape[0]):
            if k == y:
                continue
            d = W[k] - W[y]
            scale = 2.0 if np.any(np.abs(d) == 2) else 1.0
            z = cnf.var()
            sel.append(z)
            # s_k >= s_y  <=>  d u >= lam_k - lam_y  <=>  (d / scale) u >= ceil((lam_k - lam_y) / scale)
            _unit(cnf, d / scale, math.ceil((lam[k] - lam[y]) / scale), prev, prev_const, z, one_way=True)
        cnf.clauses.append(sel)
    else:
        ref = np.asarray(target)
        diff = []
        for k, u in enumerate(prev):
            if u is None:
                if prev_const[k] != ref[k]:
                    diff = None  # the output differs for every choice
                    break
                continue
            diff.append(u if ref[k] == 0 else -u)
        if diff is None:
            return SatAnswer("not_robust", x.copy(), "an output bit is fixed to differ over the ball")
        cnf.clauses.append(diff)
    return _run(cnf, x, reach, flip_of, deadline)


def _bounds(net: Network, reach: Reach, steps: list, lo: np.ndarray, hi: np.ndarray, eps: float, norm: str
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rigorous bounds on a - lambda of every encoded layer. The second layer's come from the flips themselves
    (with an L1 budget at most k = eps / cheapest cost flips: per unit the k largest changes), which fixes far
    more units than interval arithmetic over the box of first-layer bits; later layers by interval arithmetic."""
    from bnnmilp.verification.robustness.reach import _incremental

    if not steps:
        return []
    fast = _incremental(net, reach) if len(net.weights) >= 3 else None
    if fast is None:
        return ibp_bounds(Network([W for W, _ in steps], [t for _, t in steps]), lo, hi)
    from bnnmilp.verification.robustness.reach import moves

    D, a0, lam, _ = fast
    down, up = moves(D, reach)
    first = (a0 + down - lam, a0 + up - lam)  # integers: exact
    if len(steps) == 1:
        return [first]
    b_lo, b_hi = (first[0] >= 0).astype(np.float64), (first[1] >= 0).astype(np.float64)
    return [first, *ibp_bounds(Network([W for W, _ in steps[1:]], [t for _, t in steps[1:]]), b_lo, b_hi)]


def _counter(cnf: _Cnf, lits: list[int], K: int) -> list[int]:
    """Literals c_1..c_K with c_j <-> (at least j of lits are true), both directions (a sequential counter)."""
    if not lits:
        return []
    prev: list[int] = []
    for i, x in enumerate(lits):
        cur = []
        for j in range(1, min(K, i + 1) + 1):
            s = cnf.var()
            below = prev[j - 1] if j - 1 < len(prev) else None  # at least j among the first i
            lower = prev[j - 2] if j >= 2 else None  # at least j - 1 among the first i (j = 1: true)
            # s <-> below or (lower and x)
            if below is not None:
                cnf.clauses.append([-below, s])
            if lower is None:
                cnf.clauses.append([-x, s])
                cnf.clauses.append([-s, x] + ([below] if below is not None else []))
            else:
                cnf.clauses.append([-lower, -x, s])
                cnf.clauses.append([-s, lower] + ([below] if below is not None else []))
                cnf.clauses.append([-s, x] + ([below] if below is not None else []))
            cur.append(s)
        prev = cur
    return prev


def _unit_on_flips(cnf: _Cnf, w: np.ndarray, t: int, base: np.ndarray, flips: dict[int, int], K: int,
                   u: int) -> None:
    """u <-> (w . v >= t) for first-layer bits v = base with some flipped (at most K flips in all): with
    P = flips that add w_j, N = flips that subtract, w . v = w . base + P - N (weights +-1), so
    u <-> OR_a (P >= a and N <= a - need), need = t - w . base, each count a unary counter up to K."""
    need = t - round(float(w @ base))
    plus = [lit for j, lit in flips.items() if w[j] * (1 - 2 * base[j]) > 0]
    minus = [lit for j, lit in flips.items() if w[j] * (1 - 2 * base[j]) < 0]
    P, N = _counter(cnf, plus, K), _counter(cnf, minus, K)

    def at_least(c: list[int], a: int) -> int | bool:  # literal for count >= a, or a constant
        if a <= 0:
            return True
        return c[a - 1] if a - 1 < len(c) else False

    terms = []
    for a in range(max(0, need), K + 1):
        p, n = at_least(P, a), at_least(N, a - need + 1)
        if p is False or n is True:
            continue
        if p is True and n is False:
            cnf.clauses.append([u])  # always on
            return
        c = cnf.var()
        lits = [x for x in (p if p is not True else None, -n if n is not False else None) if x is not None]
        for x in lits:
            cnf.clauses.append([-c, x])
        cnf.clauses.append([c] + [-x for x in lits])
        terms.append(c)
    for c in terms:
        cnf.clauses.append([-c, u])
    cnf.clauses.append([-u, *terms])


def _unit(cnf: _Cnf, w: np.ndarray, t: int, inputs: list, consts: np.ndarray, u: int, one_way: bool = False) -> None:
    """u <-> (w . v >= t) over inputs that are literals or constants (one_way: only u -> ...)."""
    lits, offset = [], 0
    for j in np.flatnonzero(w):
        if inputs[j] is None:
            offset += int(w[j]) * int(consts[j])
        elif w[j] > 0:
            lits.append(inputs[j])
        else:
            lits.append(-inputs[j])
            offset -= 1  # -v = (not v) - 1
    need = t - offset
    cnf.card(lits, need, "atleast", -u)
    if not one_way:
        cnf.card(lits, need - 1, "atmost", u)


def _run(cnf: _Cnf, x: np.ndarray, reach: Reach, flip_of: dict, deadline: _Deadline) -> SatAnswer:
    import threading

    from pysat.solvers import Solver

    answers = []
    size = f"{cnf.top} variables, {len(cnf.clauses)} clauses"
    load = LOAD_SECONDS * len(cnf.clauses)
    free = FREE_SHARE * load  # what deleting the solver takes afterwards
    for name in SOLVERS:
        deadline.check(f"before loading {name} ({size})", load + free)
        with Solver(name=name, bootstrap_with=cnf.clauses) as s:
            left = deadline.left() - free
            if left <= 0:
                raise _OutOfTimeError(f"while loading {name} ({size})")
            timer = threading.Timer(left, s.interrupt) if math.isfinite(left) else None
            if timer:
                timer.start()
            try:
                sat = s.solve_limited(expect_interrupt=True)
            finally:
                if timer:
                    timer.cancel()
            if sat is None:
                return SatAnswer("unknown", None, f"{name}: time limit ({size})")
            if sat:
                model = {v for v in s.get_model() if v > 0}
                xp = x.copy()
                for i, lit in flip_of.values():
                    if (lit > 0 and lit in model) or (lit < 0 and -lit not in model):
                        xp[reach.flips[i].feature] = reach.flips[i].value
                return SatAnswer("not_robust", xp, f"SAT ({name}, {cnf.top} variables, {len(cnf.clauses)} clauses)")
            answers.append(name)
    return SatAnswer("robust", None, f"UNSAT by {' and '.join(answers)} ({cnf.top} variables, "
                                     f"{len(cnf.clauses)} clauses)")
