"""A one-vs-one ensemble of one-bit networks (BeMi): member (a, b) votes a if its bit is 1, else b; the
predicted class has the most votes, ties to the lowest class index. Training it: ``training.ensemble``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bnnmilp.network import Network


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
    """An ensemble read from its file: the class pairs, one weights file per member, the document."""

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
