from __future__ import annotations

import click

from bnnmilp.cli.common import json_option, load_inputs


@click.command("train")
@click.argument("network", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder to write weights.yaml and certificate.json into.")
@click.option("--solver", help="highs (embedded, default) or scip, cbc, glpk, gurobi, highs-pyomo via Pyomo.")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), help="Seconds (overrides the YAML).")
@click.option("--mip-gap", type=click.FloatRange(min=0), help="Relative gap at which to stop (default 0).")
@click.option("--threads", type=click.IntRange(min=1), help="Solver threads.")
@click.option("--polish", type=click.Choice(["min", "sum", "none"]), default=None,
              help="Margin polishing of the solution (default from the YAML: min).")
@json_option
def command(network: str, data: str, run_dir: str, solver: str | None, time_limit: float | None,
            mip_gap: float | None, threads: int | None, polish: str | None, as_json: bool) -> None:
    """Train NETWORK (spec YAML) on DATA (YAML) exactly, by solving the training MILP.

    Writes RUN_DIR/weights.yaml (weights, thresholds, settings, data sha256 and
    the training loss recomputed exactly from the written weights) and
    RUN_DIR/certificate.json (solver, status, objective, bound, gap, nodes, time:
    the solver's report, not an independent proof). On a time limit or Ctrl-C
    the best network found so far is written and labelled as such.

    \b
    Example:
      bnnmilp train configs/digits.yaml samples/digits_k1.yaml -o runs/k1 --time-limit 30
    """
    from dataclasses import replace

    from bnnmilp.cli import terminal
    from bnnmilp.errors import EXIT_CLAIM_FALSE, EXIT_INTERRUPTED
    from bnnmilp.runs import write_run
    from bnnmilp.train import train

    spec, ds = load_inputs(network, data)
    spec = spec.with_solver(name=solver, time_limit=time_limit, mip_gap=mip_gap, threads=threads)
    if polish is not None:
        spec = replace(spec, training=replace(spec.training, polish=polish))
    if not as_json:
        terminal.status(f"training {list(spec.network.layers)} ({spec.network.weights} weights, "
                        f"{spec.network.thresholds} thresholds, {spec.training.loss} loss) on {ds.n_samples} "
                        f"samples with {spec.solver.name}")
    with terminal.solve_progress("solving", spec.solver.time_limit) as progress:
        res = train(spec, ds, progress=progress)
    paths = write_run(res, run_dir)
    sol, best = res.solution, res.best
    summary = {
        "status": sol.status,
        "objective": best.loss if best else None,
        "loss": spec.training.loss,
        "bound": sol.bound,
        "gap": sol.gap,
        "nodes": sol.nodes,
        "runtime_s": round(sol.runtime_s, 3),
        "solver": sol.solver,
        "solver_objective": sol.objective,
        "source": best.source if best else None,
        "min_slack": float(best.min_slack) if best else None,
        "weights": str(paths["weights"]) if "weights" in paths else None,
        "certificate": str(paths["certificate"]),
    }
    if as_json:
        terminal.emit_json(summary)
    else:
        label = "" if sol.status == "optimal" else "  (best found so far)"
        rows = [("status", sol.status),
                (f"{spec.training.loss} loss (exact)", f"{summary['objective']}{label}"),
                ("solver bound (reported)", sol.bound), ("gap (reported)", sol.gap), ("nodes", sol.nodes),
                ("time", f"{sol.runtime_s:.2f}s")]
        if best:
            rows.append(("min slack (exact)", f"{float(best.min_slack):.6g} ({best.source} weights)"))
        rows += [(k, str(v)) for k, v in paths.items()]
        terminal.table("training result", rows)
    if best is None:
        terminal.status("bnnmilp: no network found: " + ("the training problem is infeasible with these settings "
                        "(e.g. fixed thresholds and the epsilon margin)" if sol.status == "infeasible"
                        else f"solver stopped ({sol.status}) before finding one"))
        raise SystemExit(EXIT_CLAIM_FALSE)
    if sol.status == "interrupted":
        raise SystemExit(EXIT_INTERRUPTED)
