"""bnnmilp: exact training of binarized neural networks by mixed-integer linear programming.

The public API (``bnnmilp.__all__``), from specification to proof::

    spec = bnnmilp.load_spec("configs/xor.yaml")          # or parse_spec(dict); specs validate when built
    data = bnnmilp.load_data("samples/xor.yaml")          # Dataset
    result = bnnmilp.train(spec, data)                    # TrainResult: best network, exact loss, stages
    bnnmilp.write_run(result, "runs/xor")                 # weights.yaml + certificate.json
    bnnmilp.verify_claims("runs/xor", data).ok            # every claim recomputed exactly, no solver
    proof = bnnmilp.certify("runs/xor", data)             # a lower bound, as a proof checked exactly
    bound = bnnmilp.decomposition_bound(spec, data)       # a lower bound on the training loss, by groups

Names are imported on first use, so ``import bnnmilp`` is cheap and checking claims or proofs never
imports a solver.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "1.0.0"

_EXPORTS = {
    # specification and data
    "Spec": "bnnmilp.spec", "NetworkSpec": "bnnmilp.spec", "TrainingSpec": "bnnmilp.spec",
    "SolverSpec": "bnnmilp.spec", "load_spec": "bnnmilp.spec", "parse_spec": "bnnmilp.spec",
    "Dataset": "bnnmilp.data", "load_data": "bnnmilp.data", "parse_data": "bnnmilp.data",
    "Network": "bnnmilp.network",
    # training and run files
    "train": "bnnmilp.training.pipeline", "TrainResult": "bnnmilp.training.pipeline",
    "write_run": "bnnmilp.io.runs", "load_weights": "bnnmilp.io.runs", "WeightsFile": "bnnmilp.io.runs",
    # checking claims and proofs (no solver)
    "verify_claims": "bnnmilp.verification.reports", "ClaimsReport": "bnnmilp.verification.reports",
    "check_proof": "bnnmilp.verification.reports", "certify": "bnnmilp.verification.reports",
    "Certified": "bnnmilp.verification.reports",
    # lower bounds on the training loss by decomposition (a composite proof)
    "decomposition_bound": "bnnmilp.verification.proofs.decomposition",
    "BoundResult": "bnnmilp.verification.proofs.decomposition",
    # robustness
    "verify_robust": "bnnmilp.verification.robustness.robust",
    "RobustOptions": "bnnmilp.verification.robustness.robust",
    # analysis through the MILP
    "value_function": "bnnmilp.analysis.valuefn", "dual_function": "bnnmilp.analysis.valuefn",
    "value_and_grad": "bnnmilp.analysis.diff", "MilpLayer": "bnnmilp.analysis.diff",
    # networks from and to elsewhere
    "import_network": "bnnmilp.io.importers", "export_onnx": "bnnmilp.io.exporters.onnx",
    # errors
    "BnnMilpError": "bnnmilp.errors", "SpecError": "bnnmilp.errors", "InputError": "bnnmilp.errors",
    "SolverError": "bnnmilp.errors",
}
_RENAMED = {"import_network": "import_model", "export_onnx": "write_onnx"}

__all__ = [
    "BnnMilpError",
    "BoundResult",
    "Certified",
    "ClaimsReport",
    "Dataset",
    "InputError",
    "MilpLayer",
    "Network",
    "NetworkSpec",
    "RobustOptions",
    "SolverError",
    "SolverSpec",
    "Spec",
    "SpecError",
    "TrainResult",
    "TrainingSpec",
    "WeightsFile",
    "__version__",
    "certify",
    "check_proof",
    "decomposition_bound",
    "dual_function",
    "export_onnx",
    "import_network",
    "load_data",
    "load_spec",
    "load_weights",
    "parse_data",
    "parse_spec",
    "train",
    "value_and_grad",
    "value_function",
    "verify_claims",
    "verify_robust",
    "write_run",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bnnmilp' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
