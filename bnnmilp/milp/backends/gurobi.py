"""Gurobi (gurobipy, an optional extra: pip install 'bnnmilp[gurobi]') for a MILP solved many times with new
objective and right-hand-side values: the model is built once from the standard form's arrays, then only its
numbers change.

Each finite side of a row is a constraint of its own (an equality row is one), so that the side b moves is
one constraint's right-hand side. gurobipy is imported here only; pip's gurobipy carries a size-limited
licence (2,000 variables and constraints), enough for the predict-then-optimise problems of PyEPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnnmilp.errors import SolverError
from bnnmilp.milp.model import StandardModel


def gurobipy():
    """The gurobipy module, or an error that says how to install it."""
    try:
        import gurobipy as gp
    except ImportError:
        raise SolverError("the Gurobi backend needs gurobipy: pip install 'bnnmilp[gurobi]'") from None
    return gp


@dataclass
class GurobiModel:
    """A gurobipy model of a StandardModel, kept for new numbers: its variables, and per side of the rows the
    rows with a finite side and their constraints (an equality row's one constraint is on the lower side)."""

    model: object
    x: list
    lower: tuple[np.ndarray, list]  # (rows, constraints)
    upper: tuple[np.ndarray, list]

    def set_numbers(self, m: StandardModel, built: StandardModel | None = None) -> None:
        """Objective, right-hand sides and column bounds from ``m`` (same structure and A as built); with
        ``built``, the numbers already set, only those that differ from it are set."""
        g = self.model
        if built is None or m.c is not built.c:
            g.setAttr("Obj", self.x, m.c.tolist())
        if built is None or m.col_lower is not built.col_lower or m.col_upper is not built.col_upper:
            g.setAttr("LB", self.x, np.where(np.isfinite(m.col_lower), m.col_lower, -1e100).tolist())
            g.setAttr("UB", self.x, np.where(np.isfinite(m.col_upper), m.col_upper, 1e100).tolist())
        for (rows, cons), values, before in ((self.lower, m.row_lower, None if built is None else built.row_lower),
                                             (self.upper, m.row_upper, None if built is None else built.row_upper)):
            if rows.size and values is not before:
                g.setAttr("RHS", cons, values[rows].tolist())

    def solve(self, m: StandardModel, built: StandardModel | None = None) -> np.ndarray:
        """x* for ``m``'s numbers, from scratch (no start from an earlier solve: answers do not depend on order);
        ``built``: the model whose numbers were given last (those unchanged since are not set again)."""
        gp = gurobipy()
        self.set_numbers(m, built)
        self.model.reset(1)
        self.model.optimize()
        status = self.model.Status
        if status != gp.GRB.OPTIMAL:
            raise SolverError(f"Gurobi did not solve the MILP to optimality (status {status})")
        return np.asarray(self.model.getAttr("X", self.x), np.float64)


def to_gurobi(m: StandardModel, time_limit: float | None = None) -> GurobiModel:
    """The model in gurobipy, one thread, solved to optimality: gaps 0, tolerances 1e-9."""
    gp = gurobipy()
    env = gp.Env(empty=True)
    env.setParam("OutputFlag", 0)
    env.start()
    g = gp.Model("bnnmilp", env=env)
    vtype = [gp.GRB.INTEGER if b else gp.GRB.CONTINUOUS for b in m.integrality]
    x = list(g.addVars(m.n_cols, vtype=vtype).values())
    lower: dict[int, object] = {}
    upper: dict[int, object] = {}
    for i in range(m.n_rows):
        s, e = int(m.indptr[i]), int(m.indptr[i + 1])
        expr = gp.LinExpr(m.data[s:e].tolist(), [x[j] for j in m.indices[s:e]])
        lo, up = float(m.row_lower[i]), float(m.row_upper[i])
        if np.isfinite(lo) and lo == up:
            lower[i] = g.addLConstr(expr, gp.GRB.EQUAL, lo)
            continue
        if np.isfinite(lo):
            lower[i] = g.addLConstr(expr, gp.GRB.GREATER_EQUAL, lo)
        if np.isfinite(up):
            upper[i] = g.addLConstr(expr, gp.GRB.LESS_EQUAL, up)
    g.ModelSense = gp.GRB.MINIMIZE
    g.ObjCon = float(m.offset)
    for name, value in (("Threads", 1), ("MIPGap", 0.0), ("MIPGapAbs", 0.0), ("FeasibilityTol", 1e-9),
                        ("IntFeasTol", 1e-9), ("OptimalityTol", 1e-9)):
        g.setParam(name, value)
    if time_limit is not None:
        g.setParam("TimeLimit", float(time_limit))
    out = GurobiModel(g, x, *((np.array(list(side), np.int64), list(side.values())) for side in (lower, upper)))
    out.set_numbers(m)
    g.update()
    return out
