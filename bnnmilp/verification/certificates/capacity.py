"""The capacity proof (JSON, format ``bnnmilp-capacity-proof``, version 1): a lower bound on the training loss
of a group of samples from the width of the network's narrowest hidden layer alone, whatever the weights.

    {"format": "bnnmilp-capacity-proof", "version": 1,
     "claimed_bound": 14.0, "claimed_bound_exact": "14",
     "layer": 1, "width": 2, "codes": 4,                   # the narrowest hidden layer: at most 2^width codes
     "cost": "hamming",                                    # hamming | error (see below)
     "blocks": [[0], [1], [2], [3, 4, 5, 6, 7, 8, 9]]}     # labels in each block of a partition that attains it
                                                           # (informative)

Why it holds. Let l be a hidden step layer of width w. A sample's output is a function of its activation
code u^l in {0,1}^w: every later layer is a fixed function of the layer before it (in the MILP too:
u^{l+1}_k = 1 forces a^{l+1}_k >= lambda and u^{l+1}_k = 0 forces a^{l+1}_k <= lambda - epsilon, and two
samples with the same u^l have the same a^{l+1}, so they get the same u^{l+1}). So the samples fall into at
most K = 2^w blocks B_1..B_K, and all samples in a block get one output o_b. The loss is then at least

    min over partitions of the samples into at most K blocks  sum_b  min over outputs o  sum_{i in B_b} loss(o, y^i),

which ignores everything else about the network (any o is allowed; that only lowers the minimum). The cost
of a block is a minimum of linear functions of how many samples of each target it holds, hence concave, so
the minimum over fractional assignments is at a vertex, where every target's samples sit in one block: it
suffices to partition the T distinct targets into at most K blocks. A block with c_j samples whose target
bit j is 1 among S samples costs

    hamming:  sum_j min(c_j, S - c_j)        (o_j = the majority bit)
    error:    S - max_t n_t                  (at most one target is met; argmax outputs: one class wins)

The checker recomputes this minimum from the spec (the layer widths, the loss, the output rule) and the group's
targets by dynamic programming over subsets of targets, in integers, and accepts any claim up to it. It
needs no solver and no floating point; at most ``MAX_TARGETS`` distinct targets (3^T subset pairs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bnnmilp.verification.certificates.check import CheckReport, _MalformedError, rational

if TYPE_CHECKING:
    from bnnmilp.data import Dataset
    from bnnmilp.spec import Spec

FORMAT = "bnnmilp-capacity-proof"
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


def capacity_proof(spec: Spec, ds: Dataset, samples: list[int]) -> dict[str, Any] | None:
    """The capacity proof of the group's bound (None where the bound does not apply or is 0)."""
    found = capacity(spec, ds, samples)
    if found is None or found[0] == 0:
        return None
    value, facts = found
    return {"format": FORMAT, "version": 1, "claimed_bound": float(value), "claimed_bound_exact": str(value),
            **facts}


def is_capacity(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def check_capacity(spec: Spec, ds: Dataset, samples: list[int], doc: dict[str, Any]) -> CheckReport:
    """Recompute the group's capacity bound from the spec and the data and compare the claim; never raises."""
    rep = CheckReport(ok=False)
    try:
        if not is_capacity(doc) or doc.get("version") != 1:
            rep.errors.append(f"not a {FORMAT} version 1 document")
        else:
            claim = rational(doc["claimed_bound_exact"], "claimed_bound_exact")
            found = capacity(spec, ds, samples)
            if found is None:
                rep.errors.append("the capacity bound does not apply (no hidden layer, or more than "
                                  f"{MAX_TARGETS} distinct targets)")
            elif claim > found[0]:
                rep.errors.append(f"claimed_bound_exact {claim} exceeds the capacity bound {found[0]} of "
                                  f"{found[1]['codes']} codes (layer {found[1]['layer']})")
            elif rational(doc["claimed_bound"], "claimed_bound") > claim:
                rep.errors.append("claimed_bound exceeds claimed_bound_exact")
            else:
                rep.claim = claim
    except _MalformedError as exc:
        rep.errors.append(str(exc))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        rep.errors.append(f"malformed capacity proof ({type(exc).__name__}: {exc})")
    rep.ok = not rep.errors
    return rep
