"""A network described layer by layer, as users of BNN libraries expect (Larq's ``models.summary``): widths,
weight domain, non-zeros, thresholds, the operations a forward pass costs and the memory the weights take."""

from __future__ import annotations

from typing import Any

import numpy as np

from bnnmilp.network import Network
from bnnmilp.network.sparse import is_sparse, values

BITS_PER_WEIGHT = {"binary": 1, "ternary": 2, "continuous": 64}  # packed bits; float64 otherwise


THRESHOLD_MODES = {"learned": "shared", "per_neuron": "per neuron", "zero": "zero"}


def layer_rows(net: Network, weights: str, output: str, thresholds: str) -> list[dict[str, Any]]:
    """One row per layer: its widths, kind, non-zero weights, thresholds and cost. On binary or ternary weights
    and 0/1 inputs a layer's non-zeros are its XNOR/popcount operations (one per stored +-1); on real weights
    or real inputs they are multiply-accumulates."""
    rows = []
    for l, (W, lam) in enumerate(zip(net.weights, net.thresholds, strict=True), start=1):
        n_out, n_in = W.shape
        stored = values(W)
        nnz = int(np.count_nonzero(stored))
        step = l < len(net.weights) or output != "argmax"
        discrete = weights in ("binary", "ternary") and l > 1  # the first layer reads the raw inputs
        distinct = np.unique(lam)
        rows.append({
            "layer": l, "inputs": n_in, "outputs": n_out, "kind": "step" if step else "argmax scores",
            "stored": "sparse" if is_sparse(W) else "dense", "nonzeros": nnz,
            "density": round(nnz / (n_in * n_out), 6) if n_in * n_out else 0.0,
            "thresholds": THRESHOLD_MODES[thresholds],
            "threshold_range": [float(distinct.min()), float(distinct.max())],
            "operations": nnz, "operation": "xnor-popcount" if discrete else "multiply-accumulate",
            "weight_bytes": (nnz if is_sparse(W) else n_in * n_out) * BITS_PER_WEIGHT[weights] / 8,
        })
    return rows


def network_summary(net: Network, weights: str, output: str, thresholds: str) -> dict[str, Any]:
    """The layers and the totals: parameters (weights and thresholds), non-zeros, operations, memory."""
    rows = layer_rows(net, weights, output, thresholds)
    params = sum(r["inputs"] * r["outputs"] + r["outputs"] for r in rows)
    return {"layers": [net.weights[0].shape[1], *(r["outputs"] for r in rows)], "weights": weights,
            "output": output, "parameters": params, "nonzeros": sum(r["nonzeros"] for r in rows),
            "operations": sum(r["operations"] for r in rows),
            "memory_bytes": sum(r["weight_bytes"] for r in rows) + sum(8 * r["outputs"] for r in rows),
            "per_layer": rows}
