"""One-vs-one ensembles (BeMi, Bernardelli et al.): one small BNN per pair of classes, then a vote.

Member (a, b), a < b, has one output bit, trained on the samples of classes a and b with target 1 for a.
On an input, member (a, b) votes a if its bit is 1, else b. The predicted class is the one with most
votes; ties go to the lowest class index (deterministic). Members are independent jobs
(``jobs.execute``): a process pool or a Dask cluster trains them in parallel.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bnnmilp.data import Dataset
from bnnmilp.errors import WeightsError
from bnnmilp.network import Network
from bnnmilp.spec import Spec, parse_spec

FORMAT = "bnnmilp-ensemble"


def pairs(n_classes: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n_classes), 2))


def member_data(data: Dataset, a: int, b: int) -> Dataset:
    idx = np.flatnonzero((data.labels == a) | (data.labels == b))
    return Dataset(data.features[idx], (data.labels[idx] == a).astype(np.int64), data.path)


def member_spec_doc(spec: Spec) -> dict[str, Any]:
    doc = spec.to_dict()
    doc["network"]["layers"] = [*doc["network"]["layers"][:-1], 1]
    doc["network"]["output"] = "bits"  # a member is one bit (class a vs b); the vote is the ensemble's output rule
    return doc


def train_member(payload: dict[str, Any]) -> dict[str, Any]:
    """Job body: train member (a, b); returns its weights and certificate documents."""
    from bnnmilp.data import load_data
    from bnnmilp.io.runs import certificate_doc, weights_doc
    from bnnmilp.training.pipeline import train

    spec = parse_spec(payload["spec"])
    a, b = payload["classes"]
    data = member_data(load_data(payload["data"]), a, b)
    res = train(spec, data)
    out = {"status": res.status, "certificate": certificate_doc(res), "classes": [a, b]}
    out["weights"] = weights_doc(res) if res.best is not None else None
    return out


def votes(nets: list[Network], classes: list[tuple[int, int]], X: np.ndarray, n_classes: int) -> np.ndarray:
    """Vote counts (m, n_classes) from the members' exact output bits."""
    v = np.zeros((X.shape[0], n_classes), dtype=np.int64)
    for net, (a, b) in zip(nets, classes, strict=True):
        bit = net.predict_bits(X)[:, 0]
        v[:, a] += bit
        v[:, b] += 1 - bit
    return v


def vote_predictions(v: np.ndarray) -> np.ndarray:
    """argmax with ties to the lowest class index (numpy's argmax already picks the first maximum)."""
    return np.argmax(v, axis=1).astype(np.int64)


@dataclass
class EnsembleFile:
    path: str
    n_classes: int
    classes: list[tuple[int, int]]
    members: list[Any]  # runs.WeightsFile per member
    doc: dict[str, Any]

    @property
    def networks(self) -> list[Network]:
        return [m.network for m in self.members]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return vote_predictions(votes(self.networks, self.classes, X, self.n_classes))


def load_ensemble(p: Path, doc: dict[str, Any]) -> EnsembleFile:
    from bnnmilp.io.runs import WeightsFile

    members = []
    classes = []
    for i, m in enumerate(doc.get("members") or []):
        try:
            wdoc = m["weights"]
            classes.append((int(m["classes"][0]), int(m["classes"][1])))
        except (KeyError, TypeError, ValueError, IndexError):
            raise WeightsError(str(p), f"members[{i}]", "expected classes [a, b] and weights") from None
        spec = parse_spec({"network": wdoc["network"], "training": wdoc.get("training", {})}, str(p))
        net = Network.from_layers_doc(wdoc["layers"], str(p), list(spec.network.layers))
        members.append(WeightsFile(str(p), spec, net, wdoc))
    if not members:
        raise WeightsError(str(p), "members", "expected a non-empty list")
    return EnsembleFile(str(p), int(doc["n_classes"]), classes, members, doc)
