"""The Pyomo backend: the same standard-form arrays -> a Pyomo model, for files and other solvers.

Pyomo is imported lazily (it costs about half a second at start-up) and the
garbage collector is paused while building, which makes large builds several
times faster. Names come from the model's blocks (``w_1_0_3``, ``u_7_2_1``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from bnnmilp.errors import SolverError, SolverUnavailableError
from bnnmilp.milp.backends.base import Solution, SolveOptions
from bnnmilp.milp.model import StandardModel

# user-facing solver name -> (Pyomo SolverFactory name, option names for time limit, gap, threads, node limit)
SOLVERS: dict[str, tuple[str, dict[str, str]]] = {
    "scip": ("scip_direct", {"time_limit": "limits/time", "mip_gap": "limits/gap", "threads": "parallel/maxnthreads",
                             "node_limit": "limits/nodes"}),
    "cbc": ("cbc", {"time_limit": "seconds", "mip_gap": "ratioGap", "threads": "threads", "node_limit": "maxNodes"}),
    "glpk": ("glpk", {"time_limit": "tmlim", "mip_gap": "mipgap"}),
    "gurobi": ("gurobi_direct", {"time_limit": "TimeLimit", "mip_gap": "MIPGap", "threads": "Threads",
                                 "node_limit": "NodeLimit"}),
    "highs-pyomo": ("appsi_highs", {"time_limit": "time_limit", "mip_gap": "mip_rel_gap", "threads": "threads",
                                    "node_limit": "mip_max_nodes"}),
}


WHOLE_SECONDS = {"glpk"}  # glpsol's --tmlim takes an integer number of seconds


def to_pyomo(model: StandardModel) -> Any:
    """A Pyomo ConcreteModel with one named scalar variable per column and one constraint per row."""
    import pyomo.environ as pyo
    from pyomo.common.gc_manager import PauseGC
    from pyomo.core.expr.numeric_expr import LinearExpression

    m = pyo.ConcreteModel(name=model.name)
    names = model.col_names()
    lo = [None if not np.isfinite(v) else float(v) for v in model.col_lower]
    up = [None if not np.isfinite(v) else float(v) for v in model.col_upper]
    with PauseGC():
        xs = []
        for j, name in enumerate(names):
            if model.integrality[j]:
                dom = pyo.Binary if lo[j] == 0.0 and up[j] == 1.0 else pyo.Integers
            else:
                dom = pyo.Reals
            v = pyo.Var(domain=dom, bounds=(lo[j], up[j]))
            m.add_component(name, v)
            xs.append(v)
        ip, idx, val = model.indptr.tolist(), model.indices.tolist(), model.data.tolist()
        rlo, rup = model.row_lower.tolist(), model.row_upper.tolist()
        for r, name in enumerate(model.row_names()):
            s, e = ip[r], ip[r + 1]
            expr = LinearExpression(constant=0.0, linear_coefs=val[s:e], linear_vars=[xs[j] for j in idx[s:e]])
            lo_r = rlo[r] if np.isfinite(rlo[r]) else None
            up_r = rup[r] if np.isfinite(rup[r]) else None
            if lo_r is not None and lo_r == up_r:
                con = pyo.Constraint(expr=expr == lo_r)
            elif lo_r is not None and up_r is not None:
                con = pyo.Constraint(expr=pyo.inequality(lo_r, expr, up_r))
            elif lo_r is not None:
                con = pyo.Constraint(expr=expr >= lo_r)
            else:
                con = pyo.Constraint(expr=expr <= up_r)
            m.add_component(name, con)
        nz = np.flatnonzero(model.c)
        obj = LinearExpression(constant=float(model.offset), linear_coefs=model.c[nz].tolist(),
                               linear_vars=[xs[j] for j in nz])
        m.add_component("objective", pyo.Objective(expr=obj, sense=pyo.minimize))
    m._bnnmilp_vars = xs
    return m


def write(model: StandardModel, path: str | Path, fmt: str) -> None:
    """Write ``fmt`` ('mps' or 'lp') through Pyomo's writers with readable names."""
    from pyomo.opt import ProblemFormat

    m = to_pyomo(model)
    pf = {"mps": ProblemFormat.mps, "lp": ProblemFormat.cpxlp}[fmt]
    m.write(str(path), format=pf, io_options={"symbolic_solver_labels": True})


def solver_for(name: str) -> tuple[Any, dict[str, str]]:
    import pyomo.environ as pyo

    if name not in SOLVERS:
        raise SolverUnavailableError(f"unknown solver {name!r} (known: highs, {', '.join(SOLVERS)})")
    factory, opts = SOLVERS[name]
    try:
        opt = pyo.SolverFactory(factory)
        ok = opt.available(exception_flag=False)
    except Exception:
        ok = False
    if not ok:
        raise SolverUnavailableError(f"solver {name!r} (Pyomo {factory!r}) is not installed on this machine")
    return opt, opts


def solve(model: StandardModel, name: str, options: SolveOptions, start: np.ndarray | None = None) -> Solution:
    from pyomo.opt import TerminationCondition as Tc

    opt, names = solver_for(name)
    m = to_pyomo(model)
    for key in ("time_limit", "mip_gap", "threads", "node_limit"):
        val = getattr(options, key)
        if val is not None and key in names:
            if key == "time_limit" and name in WHOLE_SECONDS:
                val = max(1, math.ceil(val))
            opt.options[names[key]] = val
    if start is not None:
        for v, s in zip(m._bnnmilp_vars, start, strict=True):
            v.set_value(float(s), skip_validation=True)
    t0 = time.perf_counter()
    try:
        res = opt.solve(m, load_solutions=False, tee=False)
    except KeyboardInterrupt:
        return Solution("interrupted", None, None, None, None, 0, time.perf_counter() - t0, name, "unknown")
    except Exception as exc:
        raise SolverError(f"solver {name!r} failed: {exc}") from None
    runtime = time.perf_counter() - t0
    tc = res.solver.termination_condition
    status = {Tc.optimal: "optimal", Tc.maxTimeLimit: "time_limit", Tc.infeasible: "infeasible",
              Tc.unbounded: "unbounded", Tc.userInterrupt: "interrupted",
              Tc.infeasibleOrUnbounded: "infeasible"}.get(tc, "error")
    x = None
    if len(res.solution) > 0:
        m.solutions.load_from(res)
        x = np.array([v.value if v.value is not None else 0.0 for v in m._bnnmilp_vars], dtype=np.float64)
    obj = float(np.dot(model.c, x) + model.offset) if x is not None else None
    lb = getattr(res.problem, "lower_bound", None)
    bound = float(lb) if lb is not None and np.isfinite(float(lb)) else (obj if status == "optimal" else None)
    gap = None
    if bound is not None and obj is not None:
        gap = abs(obj - bound) / max(abs(obj), 1e-10) if obj != bound else 0.0
    version = ".".join(map(str, opt.version())) if hasattr(opt, "version") and opt.version() else "unknown"
    return Solution(status, x, obj, bound, gap, 0, runtime, name, version)
