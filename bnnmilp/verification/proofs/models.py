"""Which model a certificate is about: an MPS/LP file, or a run folder's training MILP rebuilt from its data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bnnmilp.data import Dataset
    from bnnmilp.formulations.theorem1 import TrainingModel
    from bnnmilp.io.runs import WeightsFile


def is_model_file(target: str | Path) -> bool:
    """An MPS or LP file (by extension), or standard input (``-``: a model, never a run folder)."""
    return str(target) == "-" or Path(target).suffix.lower() in (".mps", ".lp")


def training_model(wf: WeightsFile, ds: Dataset) -> tuple[TrainingModel, float | None]:
    """A run's training MILP rebuilt from its weights file's spec and the data, and the run's exact loss
    when the MILP can attain it (the network meets the epsilon margin; None otherwise)."""
    from bnnmilp import formulations

    ds.check_fits(wf.spec.network.n_inputs, wf.spec.network.n_outputs)
    tm = formulations.get("theorem1").build(wf.spec, ds.features, ds.targets(wf.spec.network.n_outputs))
    tl = wf.doc.get("training_loss") or {}
    eps_ok = (wf.doc.get("margin") or {}).get("epsilon_feasible", False)
    # the recorded loss is attainable in the MILP only by a network meeting the epsilon margin
    cutoff = float(tl["value"]) if eps_ok and isinstance(tl.get("value"), int) else None
    return tm, cutoff
