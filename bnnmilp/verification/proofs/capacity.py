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

from bnnmilp.network.capacity import MAX_TARGETS, capacity
from bnnmilp.verification.checkers.proofs import CheckReport, _MalformedError, rational

if TYPE_CHECKING:
    from bnnmilp.data import Dataset
    from bnnmilp.spec import Spec

FORMAT = "bnnmilp-capacity-proof"
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
