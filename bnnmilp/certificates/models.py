"""Which model a certificate is about: an MPS/LP file, or a run folder's training MILP rebuilt from its data."""

from __future__ import annotations

from pathlib import Path

from bnnmilp.errors import InputError
from bnnmilp.model import StandardModel


def is_model_file(target: str | Path) -> bool:
    """An MPS or LP file (by extension), or standard input (``-``: a model, never a run folder)."""
    return str(target) == "-" or Path(target).suffix.lower() in (".mps", ".lp")


def load_target(target: str, data: str | None) -> tuple[StandardModel, float | None, object]:
    """(model, an attainable objective value if known, the training model or None)."""
    if is_model_file(target):
        from bnnmilp.backends.highs import read

        return read(target), None, None
    if data is None:
        raise InputError(None, "DATA", "a run folder needs its training data to rebuild the MILP")
    from bnnmilp import formulations
    from bnnmilp.data import load_data
    from bnnmilp.runs import load_weights

    wf = load_weights(target, ensemble=False)
    ds = load_data(data)
    ds.check_fits(wf.spec.network.n_inputs, wf.spec.network.n_outputs)
    tm = formulations.get("theorem1").build(wf.spec, ds.features, ds.targets(wf.spec.network.n_outputs))
    tl = wf.doc.get("training_loss") or {}
    eps_ok = (wf.doc.get("margin") or {}).get("epsilon_feasible", False)
    # the recorded loss is attainable in the MILP only by a network meeting the epsilon margin
    cutoff = float(tl["value"]) if eps_ok and isinstance(tl.get("value"), int) else None
    return tm.model, cutoff, tm
