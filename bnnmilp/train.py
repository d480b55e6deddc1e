"""Training: spec + data -> formulation -> model -> solver -> network, with every claim recomputed exactly.

The loss bnnmilp reports is never the solver's number: it is the loss of the
written weights under the exact forward pass. The solver's bound is reported
as such (a claim about the epsilon-margin problem, not independently proven).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from bnnmilp import formulations
from bnnmilp.backends.base import ProgressFn, Solution
from bnnmilp.data import Dataset
from bnnmilp.network import Network, loss_value
from bnnmilp.polish import polish, snap_thresholds
from bnnmilp.solve import solve
from bnnmilp.spec import Spec


@dataclass
class Candidate:
    """A network with its exactly recomputed loss and margin."""

    network: Network
    source: str  # "polished", "solver", "start"
    loss: int
    min_slack: Fraction

    @property
    def epsilon_feasible(self) -> bool:
        """True when the network satisfies the training problem's epsilon margin everywhere."""
        return self.min_slack >= 0


@dataclass
class TrainResult:
    spec: Spec
    data: Dataset
    solution: Solution
    best: Candidate | None
    model_stats: dict = field(default_factory=dict)
    model_sha256: str = ""

    @property
    def status(self) -> str:
        return self.solution.status


def evaluate(spec: Spec, net: Network, data: Dataset, source: str) -> Candidate:
    Y = data.targets(spec.network.n_outputs)
    bits = net.predict_bits(data.features)
    slack, _ = net.min_slack(data.features, spec.training.epsilon)
    return Candidate(net, source, loss_value(spec.training.loss, bits, Y), slack)


def trivial_start(spec: Spec) -> Network | None:
    """W = 0, lambda = 0: every pre-activation is 0 >= 0, all bits 1; feasible unless weights are binary."""
    if spec.network.weights == "binary":
        return None
    L = spec.network.layers
    return Network([np.zeros((L[i + 1], L[i])) for i in range(len(L) - 1)], [np.zeros(d) for d in L[1:]])


def choose(cands: list[Candidate]) -> Candidate | None:
    """Prefer networks meeting the epsilon margin, then the lowest exact loss, then the larger margin."""
    if not cands:
        return None
    return min(cands, key=lambda c: (not c.epsilon_feasible, c.loss, -c.min_slack))


def train(spec: Spec, data: Dataset, progress: ProgressFn | None = None, start: Network | None = None,
          formulation: str = "theorem1") -> TrainResult:
    data.check_fits(spec.network.n_inputs, spec.network.n_outputs)
    X, Y = data.features, data.targets(spec.network.n_outputs)
    tm = formulations.get(formulation).build(spec, X, Y)
    start_net = start if start is not None else trivial_start(spec)
    x0 = tm.solution_from(start_net) if start_net is not None else None
    sol = solve(tm.model, spec.solver, start=x0, progress=progress)
    cands = []
    if start_net is not None and x0 is not None:
        cands.append(evaluate(spec, start_net, data, "start"))
    if sol.x is not None:
        raw, pattern = tm.network_from(sol.x), tm.pattern_from(sol.x)
        cands.append(evaluate(spec, snap_thresholds(spec, X, pattern, raw), data, "solver"))
        if spec.training.polish != "none":
            pol = polish(spec, X, pattern, raw, spec.training.polish)
            if pol is not None:
                cands.append(evaluate(spec, pol, data, "polished"))
    return TrainResult(spec, data, sol, choose(cands), tm.model.stats(), tm.model.fingerprint())
