"""The proof file (JSON, format ``bnnmilp-proof``, version 1, 2 or 3): a branch-and-bound tree with leaf multipliers.

    {"format": "bnnmilp-proof", "version": 1,
     "model_sha256": "...",            # StandardModel.fingerprint() of the exact model proven about
     "sense": "min", "objective_integral": true,
     "claimed_bound": 3.0,             # no feasible point has objective below this (a double, read exactly)
     "claimed_bound_exact": "3",       # the same claim as an exact rational "p/q" (at least claimed_bound)
     "incumbent": 3.0,                 # best objective found (informative; not part of the proof)
     "nodes": [[0, null, null, null, null], [1, 0, 17, "<=", 0.0], [2, 0, 17, ">=", 1.0], ...],
                                       # [id, parent, column, sense, bound]: the branching disjunctions;
                                       # version 3: column may be [[column, coefficient], ...], a general
                                       # disjunction pi x <= k | pi x >= k + 1 (integer pi)
     "leaves": [{"node": 1, "kind": "bound", "y": [[row, multiplier], ...]}, ...],
                                       # a multiplier is a double, or an exact rational "p/q" where the
                                       # engine had to make reduced costs vanish exactly (free columns);
                                       # version 3: "splits": [[node, z], ...], multipliers of the general
                                       # disjunctions on the leaf's path
     "derived": [[node, column, "<=" | ">=", value, row], ...],
                                       # version 2: bounds derived by propagation at a node, in order;
                                       # row -1 is the hypothesis c x + offset <= ceil(claim) - 1; a probe
                                       # has a list [[column, sense, value, row], ...] for its row: the
                                       # steps that empty the box on the other side of the integer value;
                                       # a reduced-cost fixing has {"duals": k} for its row
     "duals": [[[row, multiplier], ...], ...],   # version 2: the multipliers reduced-cost fixings use
     "symmetry": {"order": [column, ...], "generators": [{"columns": [[j, sigma_j], ...],
                  "rows": [[i, pi_i], ...], "terms": t}, ...]},
                                       # version 3: automorphisms of the model; generator g adds row
                                       # n_rows + g, sum_k 2^(t-k) (x_{m_k} - x_{sigma^-1(m_k)}) >= 0 over
                                       # the first t columns m_k of the order that it moves (symmetry.py)
     "engine": {"nodes": ..., "runtime_s": ..., "nodes_per_s": ..., "status": "optimal"}}

Leaf t proves c x + offset >= offset + sum_i y_i (row_lower_i if y_i > 0 else row_upper_i)
+ sum_j min(r_j l_j, r_j u_j), r = c - A^T y, over the box of root bounds tightened along its path (by
the branches and, in version 2, the derived bounds of every node on it; a leaf of kind "empty" has an
empty box and no multipliers). In version 3, A has the symmetry rows after the model's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnnmilp.errors import ModelFileError
from bnnmilp.io.yamlio import fraction_str, write_json_atomic
from bnnmilp.milp.model import StandardModel

if TYPE_CHECKING:  # writing a proof takes a tree from the engine; reading and checking one needs no solver
    from bnnmilp.verification.proofs.bnb import Leaf, Tree

FORMAT = "bnnmilp-proof"
COMPOSITE = "bnnmilp-composite-proof"  # a decomposition bound: one proof per group (proofs/composite.py)


def _multipliers(lf: Leaf) -> list[list]:
    if lf.exact is not None:
        return [[i, fraction_str(v)] for i, v in sorted(lf.exact.items()) if v != 0]
    return [[int(i), float(lf.y[i])] for i in lf.y.nonzero()[0]]


def _branch(branch: tuple) -> list:
    """[column, sense, value], or for a general disjunction [[[column, coefficient], ...], sense, value]."""
    col, sense, value = branch
    if not hasattr(col, "cols"):  # a column (bnb.Split is not imported here: writing a proof needs no solver)
        return [int(col), sense, value]
    return [[[int(j), int(a)] for j, a in zip(col.cols, col.coefs, strict=True)], sense, value]


def proof_doc(model: StandardModel, tree: Tree) -> dict[str, Any]:
    """The proof of a finished tree (``tree.status == "optimal"``: it has a claim)."""
    if tree.claimed_exact is None:
        raise ValueError("the tree has no claim to write")
    nodes = [[n.id, n.parent, *(_branch(n.branch) if n.branch else [None, None, None])] for n in tree.nodes]
    leaves = [{"node": lf.node, "kind": lf.kind, "y": _multipliers(lf),
               **({"splits": [[lf.node, lf.split[2]]]} if lf.split is not None else {})} for lf in tree.leaves]
    duals: list[list] = []
    index: dict[int, int] = {}  # id of a node's multiplier vector -> its place in "duals"

    def row_of(s) -> Any:
        if s.proof is not None:
            return [[p.column, p.sense, p.value, p.row] for p in s.proof]
        if s.duals is not None:
            if id(s.duals) not in index:
                index[id(s.duals)] = len(duals)
                duals.append([[int(i), float(s.duals[i])] for i in s.duals.nonzero()[0]])
            return {"duals": index[id(s.duals)]}
        return s.row

    derived = [[n.id, s.column, s.sense, s.value, row_of(s)] for n in tree.nodes for s in n.steps]
    extra = {"derived": derived, **({"duals": duals} if duals else {})} if derived else {}
    if tree.symmetry is not None:
        extra["symmetry"] = tree.symmetry.to_doc()
    return {
        "format": FORMAT, "version": 3 if tree.symmetry is not None or any(lf.split for lf in tree.leaves) else
        2 if derived else 1,
        "model_sha256": model.fingerprint(),
        "model_name": model.name,
        "sense": "min", "objective_integral": bool(model.objective_integral),
        "claimed_bound": tree.claimed_bound, "claimed_bound_exact": fraction_str(tree.claimed_exact),
        "incumbent": tree.incumbent,
        "engine": {"nodes": len(tree.nodes), "leaves": len(tree.leaves), "runtime_s": round(tree.runtime_s, 6),
                   "nodes_per_s": round(tree.nodes_per_s, 1), "status": tree.status},
        "nodes": nodes, "leaves": leaves, **extra,
    }


def trivial_proof(model: StandardModel) -> dict[str, Any] | None:
    """The root alone, with no multipliers: c x + offset >= offset + sum_j min(c_j l_j, c_j u_j) over the
    column box. For a training loss (nonnegative terms on the box) that is the bound 0, proven without
    solving an LP, which matters where the root LP of a thousand samples takes longer than the training.
    None where a column with a cost is unbounded."""
    import math
    from fractions import Fraction

    import numpy as np

    total = Fraction(float(model.offset))
    for j in np.flatnonzero(model.c):
        c, lo, up = float(model.c[j]), float(model.col_lower[j]), float(model.col_upper[j])
        if not (math.isfinite(lo) and math.isfinite(up)):
            return None
        total += min(Fraction(c) * Fraction(lo), Fraction(c) * Fraction(up))
    claim = Fraction(math.ceil(total)) if model.objective_integral else total
    return {
        "format": FORMAT, "version": 1, "model_sha256": model.fingerprint(), "model_name": model.name,
        "sense": "min", "objective_integral": bool(model.objective_integral),
        "claimed_bound": float(claim) if float(claim) <= claim else math.nextafter(float(claim), -math.inf),
        "claimed_bound_exact": fraction_str(claim), "incumbent": None,
        "engine": {"nodes": 1, "leaves": 1, "runtime_s": 0.0, "nodes_per_s": None, "status": "optimal",
                   "note": "the column box alone (no LP)"},
        "nodes": [[0, None, None, None, None]], "leaves": [{"node": 0, "kind": "bound", "y": []}],
    }


def write_proof(path: str | Path, model: StandardModel, tree: Tree) -> Path:
    return write_json_atomic(path, proof_doc(model, tree))


VERSIONS = {FORMAT: (1, 2, 3), COMPOSITE: (1,)}


def read_proof(path: str | Path) -> dict[str, Any]:
    from bnnmilp.io.yamlio import loads_json, read_input

    p = Path(path)
    doc = loads_json(read_input(p, ModelFileError), p, ModelFileError, "JSON proof")
    if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, COMPOSITE):
        raise ModelFileError(str(p), "format", f"expected {FORMAT!r} or {COMPOSITE!r}")
    version = doc.get("version")
    if isinstance(version, bool) or version not in VERSIONS[doc["format"]]:
        raise ModelFileError(str(p), "version", f"expected one of {', '.join(map(str, VERSIONS[doc['format']]))} "
                                                f"for {doc['format']}, got {version!r}")
    keys = ("model_sha256", "claimed_bound", "nodes", "leaves", "objective_integral") if doc["format"] == FORMAT \
        else ("claimed_bound", "claimed_bound_exact", "data_sha256", "groups")
    for key in keys:
        if key not in doc:
            raise ModelFileError(str(p), key, "missing required key")
    return doc
