"""How many different outputs a network of given widths can give, whatever its weights, and the least
training loss of sharing them among the data's targets (the capacity bound; the reasoning and the proof
format are in ``verification.proofs.capacity``). Pure integer combinatorics: training's class codes
and the proof checker both read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bnnmilp.data import Dataset
    from bnnmilp.spec import Spec

MAX_TARGETS = 12  # the dynamic program visits about 3^T (block, rest) pairs per block count


def bottleneck(spec: Spec) -> tuple[int, int] | None:
    """(layer, width) of the narrowest hidden step layer (the first of the narrowest), or None without one."""
    hidden = spec.network.layers[1:-1]
    if not hidden:
        return None
    w = min(hidden)
    return hidden.index(w) + 1, w


def cost_kind(spec: Spec) -> str:
    return "hamming" if spec.network.output == "bits" and spec.training.loss == "hamming" else "error"


def target_counts(spec: Spec, ds: Dataset, samples: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The group's distinct labels, their target bits (one-hot, or the label for one output) and how many
    samples have each."""
    labels, counts = np.unique(ds.labels[np.asarray(samples, dtype=np.int64)], return_counts=True)
    n = spec.network.n_outputs
    targets = labels.reshape(-1, 1) if n == 1 else np.eye(n, dtype=np.int64)[labels]
    return labels, targets.astype(np.int64), counts.astype(np.int64)


def block_costs(targets: np.ndarray, counts: np.ndarray, kind: str) -> list[int]:
    """cost[mask]: the least loss of one block holding the targets in ``mask`` (bit t: target t)."""
    T = len(counts)
    masks = np.arange(1 << T, dtype=np.int64)
    member = (masks[:, None] >> np.arange(T)) & 1  # (2^T, T)
    size = member @ counts
    if kind == "hamming":
        ones = member @ (counts[:, None] * targets)  # (2^T, d): samples with bit j = 1
        cost = np.minimum(ones, size[:, None] - ones).sum(axis=1)
    else:
        cost = size - (member * counts).max(axis=1, initial=0)
    return [int(c) for c in cost]


def min_partition(cost: list[int], T: int, K: int) -> tuple[int, list[list[int]]]:
    """The least total cost of a partition of the T targets into at most K blocks, and one such partition."""
    full = (1 << T) - 1
    if T == 0:
        return 0, []
    f = list(cost)  # f[mask]: least cost of mask in at most j blocks (j = 1 here)
    choices: list[list[int]] = [[m for m in range(full + 1)]]  # the block containing mask's lowest target
    for _ in range(2, min(K, T) + 1):
        g, pick = list(f), list(range(full + 1))
        for mask in range(1, full + 1):
            low = mask & -mask
            rest = mask ^ low
            best, arg = g[mask], mask
            sub = rest
            while True:
                s = sub | low
                if s != mask:
                    v = cost[s] + f[mask ^ s]
                    if v < best:
                        best, arg = v, s
                if sub == 0:
                    break
                sub = (sub - 1) & rest
            g[mask], pick[mask] = best, arg
        f = g
        choices.append(pick)
    blocks, mask = [], full
    for pick in reversed(choices):
        if mask == 0:
            break
        s = pick[mask]
        blocks.append([t for t in range(T) if s >> t & 1])
        mask ^= s
    return f[full], blocks


def capacity(spec: Spec, ds: Dataset, samples: list[int]) -> tuple[int, dict[str, Any]] | None:
    """The capacity bound of the group and the facts behind it; None where it does not apply (no hidden layer,
    more distinct targets than ``MAX_TARGETS``)."""
    where = bottleneck(spec)
    if where is None:
        return None
    layer, width = where
    labels, targets, counts = target_counts(spec, ds, samples)
    T = len(counts)
    codes = 2 ** width
    kind = cost_kind(spec)
    if codes >= T:
        return 0, {"layer": layer, "width": width, "codes": codes, "cost": kind,
                   "blocks": [[int(c)] for c in labels]}
    if T > MAX_TARGETS:
        return None
    value, blocks = min_partition(block_costs(targets, counts, kind), T, codes)
    return value, {"layer": layer, "width": width, "codes": codes, "cost": kind,
                   "blocks": sorted([int(labels[t]) for t in b] for b in blocks)}
