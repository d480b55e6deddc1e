"""The network/training/solver specification: YAML -> typed, validated settings.

Every schema error names the file, the key path (``network.layers[1]``) and
what was expected, so the CLI can print it as one line.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bnnmilp.errors import SpecError, unknown
from bnnmilp.io.yamlio import read_yaml
from bnnmilp.limits import MAX_MARGIN, MAX_THREADS, finite_number, shown, too_many

WEIGHT_DOMAINS = ("continuous", "binary", "ternary")
SOLVER_NAMES = ("highs", "scip", "cbc", "glpk", "gurobi", "highs-pyomo")  # highs embedded, the rest via Pyomo
THRESHOLD_MODES = ("learned", "per_neuron", "zero")
LOSSES = ("hamming", "error")
BIG_M = ("tight", "paper", "lp")
POLISH = ("auto", "min", "sum", "neuron", "none")  # auto: min after a MILP, none after STE or the search
STAGES = ("loss", "margin", "min_weight")
METHODS = ("lns", "milp", "ste", "decompose")
WARM_STARTS = ("none", "ste", "codes")
LOWER_BOUNDS = ("solver", "decomposition", "none")  # the proof train writes: of the solver's bound, also by
# decomposition (bnnmilp bound), or none
OUTPUTS = ("bits", "argmax")


def _one_of(owner: str, field_name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Option strings are checked when a spec is built, in Python as from YAML: a typo never runs a default."""
    if value not in allowed:
        raise SpecError(None, f"{owner}.{field_name}", f"one of {', '.join(allowed)}; got {value!r}")


def default_thresholds(weights: str, output: str) -> str:
    """``learned`` (one per layer, the paper's), except for argmax outputs with binary or ternary weights:
    their scores are integers and tie (a third of MNIST test images at 2 images per class, each a wrong
    answer); one threshold per class breaks the ties (MNIST [784, 16, 10], ternary, 3 seeds: 29 -> 40% at 2
    images per class, 58 -> 66% at 10). Continuous weights rarely tie: no difference measured there."""
    return "per_neuron" if output == "argmax" and weights in ("binary", "ternary") else "learned"


@dataclass(frozen=True)
class NetworkSpec:
    """Layer widths [d0, ..., dL], weight domain, threshold mode and output rule.

    ``output``: ``bits`` (the paper's: the output layer is a step layer, its bits are the prediction) or
    ``argmax`` (the output layer gives linear scores a^L - lambda^L; the class is the largest score).
    """

    layers: tuple[int, ...]
    weights: str = "continuous"
    thresholds: str = "learned"
    output: str = "bits"

    def __post_init__(self) -> None:
        _one_of("network", "weights", self.weights, WEIGHT_DOMAINS)
        _one_of("network", "thresholds", self.thresholds, THRESHOLD_MODES)
        _one_of("network", "output", self.output, OUTPUTS)

    @property
    def n_inputs(self) -> int:
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]

    @property
    def depth(self) -> int:
        return len(self.layers) - 1


@dataclass(frozen=True)
class TrainingSpec:
    """Loss, the epsilon margin that makes the strict side of the step a MILP row, big-M, objectives.

    ``objective`` is a sequence of lexicographic stages (see ``objectives.py``); ``method`` and
    ``warm_start`` choose between the MILP (``milp``, the paper's; started from STE with ``warm_start:
    ste``), the STE heuristic alone (``ste``), STE followed by a large-neighbourhood search over the MILP
    (``lns``, the default: the whole MILP from the STE start when it is small) and Icarte et al.'s per-unit
    decomposition (``decompose``); ``warm_start: codes`` starts ``lns`` or ``milp`` from the class codes of
    ``training/heuristics/codes.py`` instead of STE.
    """

    loss: str = "hamming"
    epsilon: float = 0.0625
    big_m: str = "tight"
    polish: str = "auto"
    polish_radius: float | None = None  # polished weights stay within this of the solver's
    objective: tuple[str, ...] = ("loss",)
    margin_cap: float = 4.0
    method: str = "lns"
    warm_start: str = "none"
    seed: int = 0
    trust_region: float | None = None
    trust_region_scope: str = "after_loss"  # after_loss (the loss stage stays global) | all (a local search)
    symmetry: str = "none"  # none | order: hidden neurons sorted by activation count
    fix_unused: bool = True  # fix first-layer weights of inputs that are 0 in every sample
    epsilon_auto: bool = False  # epsilon: auto = 1, exact for integer data and discrete weights
    lower_bound: str = "solver"  # the proof written beside the weights (LOWER_BOUNDS)

    def __post_init__(self) -> None:
        for name, allowed in (("loss", LOSSES), ("big_m", BIG_M), ("polish", POLISH), ("method", METHODS),
                              ("warm_start", WARM_STARTS), ("trust_region_scope", ("after_loss", "all")),
                              ("symmetry", ("none", "order")), ("lower_bound", LOWER_BOUNDS)):
            _one_of("training", name, getattr(self, name), allowed)
        for stage in self.objective:
            _one_of("training", "objective", stage, STAGES)
        if self.warm_start == "codes" and self.method == "ste":  # STE alone takes no start: say so, not ignore it
            raise SpecError(None, "training.warm_start", "codes with method lns, milp or decompose (method ste "
                                                         "trains STE alone, from no start)")


@dataclass(frozen=True)
class SolverSpec:
    """The solver (``highs`` embedded; ``scip``, ``cbc``, ``glpk``, ``gurobi``, ``highs-pyomo`` through Pyomo),
    seconds per stage (``time_limit``), the whole run's budget (``budget``), gap and threads."""

    name: str = "highs"
    time_limit: float | None = 60.0  # seconds per solver stage
    mip_gap: float = 0.0
    threads: int = 1
    budget: float | None = None  # seconds for the whole training (STE, building, every stage, polishing)
    node_limit: int | None = None  # branch-and-bound nodes per stage (a limit that does not depend on the machine)

    def __post_init__(self) -> None:
        _one_of("solver", "name", self.name, SOLVER_NAMES)
    deadline: float | None = None  # time.monotonic() when the budget runs out (set when training starts)

    def remaining(self) -> float | None:
        """What is left of the budget, in seconds (None: no budget)."""
        if self.deadline is None:
            return None
        return max(0.01, self.deadline - time.monotonic())

    def stage_limit(self) -> float | None:
        """A solve's time limit: the per-stage limit, cut to what remains of the budget."""
        left = self.remaining()
        if left is None:
            return self.time_limit
        return left if self.time_limit is None else min(self.time_limit, left)


@dataclass(frozen=True)
class Spec:
    """A whole specification: the network, how to train it, which solver.

    Attributes
    ----------
    network : NetworkSpec
    training : TrainingSpec
    solver : SolverSpec
    path : str or None
        The file it was read from.
    """

    network: NetworkSpec
    training: TrainingSpec = field(default_factory=TrainingSpec)
    solver: SolverSpec = field(default_factory=SolverSpec)
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"network": asdict(self.network), "training": asdict(self.training), "solver": asdict(self.solver)}
        d["network"]["layers"] = list(self.network.layers)
        d["training"]["objective"] = list(self.training.objective)
        if d["training"].pop("epsilon_auto"):
            d["training"]["epsilon"] = "auto"
        d["solver"].pop("deadline")  # a moment of this process, not a setting
        for key in ("budget", "node_limit"):
            if d["solver"][key] is None:
                d["solver"].pop(key)
        return d

    def with_training(self, **changes: Any) -> Spec:
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, training=replace(self.training, **changes))

    def with_solver(self, **changes: Any) -> Spec:
        """Return a copy with solver settings overridden (command-line options win over the YAML)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, solver=replace(self.solver, **changes))


class _Reader:
    """Typed access to a YAML mapping that reports errors with key paths."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def fail(self, key: str | None, expected: str) -> SpecError:
        return SpecError(self.path, key, expected)

    def section(self, doc: dict[str, Any], key: str, allowed: set[str], required: bool) -> dict[str, Any]:
        if key not in doc:
            if required:
                raise self.fail(key, "missing required section")
            return {}
        sec = doc[key]
        if not isinstance(sec, dict):
            raise self.fail(key, "expected a mapping")
        for k in sec:
            if k not in allowed:
                raise self.fail(f"{key}.{k}", unknown("key", k, allowed))
        return sec

    def choice(self, sec: dict[str, Any], prefix: str, key: str, choices: tuple[str, ...], default: str) -> str:
        v = sec.get(key, default)
        if v not in choices:
            raise self.fail(f"{prefix}.{key}", f"expected one of {', '.join(choices)}, got {v!r}")
        return v

    def number(self, sec: dict[str, Any], prefix: str, key: str, default: float | None, *,
               positive: bool = False, nonneg: bool = False, allow_null: bool = False,
               maximum: float | None = None) -> float | None:
        v = sec.get(key, default)
        if v is None and allow_null:
            return None
        if not finite_number(v):
            raise self.fail(f"{prefix}.{key}", f"expected a finite number, got {shown(v)}")
        if maximum is not None and v > maximum:
            raise self.fail(f"{prefix}.{key}", f"expected a number <= {maximum:g} (a margin or radius beyond it only "
                                               f"makes the MILP's big-M values meaningless), got {shown(v)}")
        if positive and v <= 0:
            raise self.fail(f"{prefix}.{key}", f"expected a number > 0, got {v!r}")
        if nonneg and v < 0:
            raise self.fail(f"{prefix}.{key}", f"expected a number >= 0, got {v!r}")
        return float(v)

    def integer(self, sec: dict[str, Any], prefix: str, key: str, default: int, minimum: int,
                maximum: int = 2**63 - 1) -> int:
        v = sec.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
            raise self.fail(f"{prefix}.{key}", f"expected an integer in {minimum}..{maximum}, got {shown(v)}")
        return v


def _flag(r: _Reader, sec: dict[str, Any], key: str, default: bool) -> bool:
    v = sec.get(key, default)
    if not isinstance(v, bool):
        raise r.fail(f"training.{key}", f"expected true or false, got {v!r}")
    return v


def parse_objective(value: Any, fail: Any = None) -> tuple[str, ...]:
    """``loss`` | ``margin`` | ``min_weight`` | a list of them (lexicographic stages) | ``lexicographic``.

    ``lexicographic`` is short for [loss, margin].
    """
    def bad(msg: str) -> SpecError:
        return fail("training.objective", msg) if fail else SpecError(None, "training.objective", msg)

    if value == "lexicographic":
        value = ["loss", "margin"]
    stages = [value] if isinstance(value, str) else value
    if not isinstance(stages, list) or not stages:
        raise bad("expected loss, margin, min_weight, lexicographic or a list of stages")
    for st in stages:
        if st not in STAGES:
            raise bad(f"expected stages from {', '.join(STAGES)}, got {st!r}")
    if len(set(stages)) != len(stages):
        raise bad("each stage may appear once")
    return tuple(stages)


def parse_spec(doc: dict[str, Any], path: str | None = None) -> Spec:
    """Validate a spec mapping (as read from YAML) into a :class:`Spec`.

    Parameters
    ----------
    doc : dict
        ``{"network": {"layers": [...], ...}, "training": {...}, "solver": {...}}``; only ``network.layers``
        is required (see docs/model.md's settings table for every key and its default).
    path : str, optional
        The file it came from, named in errors.

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        Naming the key path and what was expected (also a ValueError).
    """
    r = _Reader(path)
    if "network" not in doc and ({"features", "labels"} & set(doc)):
        raise r.fail(None, "this is a data file (features, labels), not a spec: the spec comes first "
                           "(bnnmilp train SPEC DATA)")
    for k in doc:
        if k not in ("network", "training", "solver"):
            raise r.fail(k, unknown("section", k, ("network", "training", "solver")))
    net = r.section(doc, "network", {"layers", "weights", "thresholds", "output"}, required=True)
    if "layers" not in net:
        raise r.fail("network.layers", "missing required key (a list of layer widths [d0, d1, ..., dL])")
    layers = net["layers"]
    if not isinstance(layers, list) or len(layers) < 2:
        raise r.fail("network.layers", "expected a list of at least two layer widths [d0, ..., dL]")
    for i, d in enumerate(layers):
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise r.fail(f"network.layers[{i}]", f"expected a positive integer, got {shown(d)}")
    msg = too_many(sum(a * b for a, b in itertools.pairwise(layers)), f"a network of widths {shown(layers)}")
    if msg:
        raise r.fail("network.layers", msg)
    weights = r.choice(net, "network", "weights", WEIGHT_DOMAINS, "continuous")
    output = r.choice(net, "network", "output", OUTPUTS, "bits")
    network = NetworkSpec(
        layers=tuple(layers), weights=weights, output=output,
        thresholds=r.choice(net, "network", "thresholds", THRESHOLD_MODES, default_thresholds(weights, output)),
    )
    if network.output == "argmax" and network.n_outputs < 2:
        raise r.fail("network.output", "argmax needs at least two outputs (one score per class)")
    tr = r.section(doc, "training", {"loss", "epsilon", "big_m", "polish", "polish_radius", "objective",
                                     "margin_cap", "method", "warm_start", "seed", "trust_region",
                                     "trust_region_scope", "symmetry", "fix_unused", "lower_bound"},
                    required=False)
    eps_auto = tr.get("epsilon") == "auto"
    if eps_auto:
        tr = {**tr, "epsilon": 1.0}
    training = TrainingSpec(
        loss=r.choice(tr, "training", "loss", LOSSES, "error" if network.output == "argmax" else "hamming"),
        epsilon=r.number(tr, "training", "epsilon", 0.0625, positive=True, maximum=MAX_MARGIN),
        big_m=r.choice(tr, "training", "big_m", BIG_M, "tight"),
        polish=r.choice(tr, "training", "polish", POLISH, "auto"),
        polish_radius=r.number(tr, "training", "polish_radius", None, positive=True, allow_null=True,
                               maximum=MAX_MARGIN),
        objective=parse_objective(tr.get("objective", "loss"), r.fail),
        margin_cap=r.number(tr, "training", "margin_cap", 4.0, positive=True, maximum=MAX_MARGIN),
        method=r.choice(tr, "training", "method", METHODS, "lns"),
        warm_start=r.choice(tr, "training", "warm_start", WARM_STARTS, "none"),
        seed=r.integer(tr, "training", "seed", 0, 0),
        trust_region=r.number(tr, "training", "trust_region", None, positive=True, allow_null=True,
                              maximum=MAX_MARGIN),
        trust_region_scope=r.choice(tr, "training", "trust_region_scope", ("after_loss", "all"), "after_loss"),
        symmetry=r.choice(tr, "training", "symmetry", ("none", "order"), "none"),
        fix_unused=_flag(r, tr, "fix_unused", True),
        epsilon_auto=eps_auto,
        lower_bound=r.choice(tr, "training", "lower_bound", LOWER_BOUNDS, "solver"),
    )
    if network.output == "argmax" and training.loss != "error":
        raise r.fail("training.loss", "error (misclassified samples) with network.output: argmax; hamming counts "
                                      "output bits, which an argmax layer does not have")
    so = r.section(doc, "solver", {"name", "time_limit", "mip_gap", "threads", "budget", "node_limit"}, required=False)
    name = so.get("name", "highs")
    if not isinstance(name, str) or name not in SOLVER_NAMES:
        raise r.fail("solver.name", f"expected one of {', '.join(SOLVER_NAMES)}; got {name!r}")
    solver = SolverSpec(
        name=name,
        budget=r.number(so, "solver", "budget", None, positive=True, allow_null=True),
        time_limit=r.number(so, "solver", "time_limit", 60.0, positive=True, allow_null=True),
        mip_gap=r.number(so, "solver", "mip_gap", 0.0, nonneg=True),
        threads=r.integer(so, "solver", "threads", 1, 1, MAX_THREADS),
        node_limit=None if so.get("node_limit") is None else r.integer(so, "solver", "node_limit", 1, 1),
    )
    return Spec(network=network, training=training, solver=solver, path=path)


def load_spec(path: str | Path) -> Spec:
    """Read a network.yaml file (``-``: standard input) and validate it with :func:`parse_spec`.

    Errors name the file as well as the key path (``network.layers[1]``) and what was expected.
    """
    return parse_spec(read_yaml(path, SpecError), str(path))
