from __future__ import annotations

import click

from bnnmilp.cli.common import NONNEGATIVE, OUTPUT_DIR, PARALLEL, POSITIVE, json_option, load_inputs, scheduler_option
from bnnmilp.spec import METHODS, POLISH, SOLVER_NAMES, WARM_STARTS


@click.command("train")
@click.argument("network", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "run_dir", required=True, callback=OUTPUT_DIR, type=click.Path(file_okay=False),
              help="Run folder to write weights.yaml and certificate.json into.")
@click.option("--solver", type=click.Choice(SOLVER_NAMES),
              help="highs (embedded, default) or scip, cbc, glpk, gurobi, highs-pyomo via Pyomo.")
@click.option("--time-limit", type=POSITIVE,
              help="The command's wall-clock budget in seconds: STE, building, every solver stage and polishing "
                   "share it (overrides solver.budget; with --ensemble the members share it, each taking its part "
                   "of the time left when it starts).")
@click.option("--stage-time-limit", type=POSITIVE, help="Seconds per solver stage (overrides solver.time_limit).")
@click.option("--node-limit", type=click.IntRange(min=1), default=None,
              help="Branch-and-bound nodes per solver stage (solver.node_limit): a limit that gives the same result "
                   "on every machine; the best network so far is written, labelled node_limit.")
@click.option("--mip-gap", type=NONNEGATIVE, help="Relative gap at which to stop (default 0).")
@click.option("--threads", type=PARALLEL, help="Solver threads.")
@click.option("--polish", type=click.Choice(list(POLISH)), default=None,
              help="Margin polishing of the solution: min (the smallest margin), sum (every row's), neuron "
                   "(each unit's own smallest margin), none; auto (the default): min after a MILP, none after "
                   "the STE heuristic or the large-neighbourhood search, whose networks meet the margin already.")
@click.option("--objective", help="loss | margin | min_weight | lexicographic, or stages joined by commas "
                                  "(e.g. loss,margin,min_weight).")
@click.option("--method", type=click.Choice(list(METHODS)), default=None,
              help="lns (default): the STE heuristic, then a large-neighbourhood search over the MILP that never "
                   "raises the exact loss (the whole MILP from the STE start when it has at most 400 activation "
                   "bits: then the bound is global; beyond, no bound); milp: the paper's MILP (global bound; "
                   "--warm-start ste starts it from STE); ste: the heuristic alone (a baseline); decompose: keep "
                   "the STE network's hidden activations, re-solve each unit (Icarte et al.'s hybrid).")
@click.option("--warm-start", type=click.Choice(list(WARM_STARTS)), default=None,
              help="ste: start the MILP from the STE heuristic's best network; codes: start the method (lns or "
                   "milp) from the class-code construction instead of STE (one hidden layer, continuous "
                   "weights: each hidden unit a separable bipartition of the classes, found by LPs).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the STE heuristic.")
@click.option("--ensemble", type=click.Choice(["auto", "ovo", "none"]), default="auto", show_default=True,
              help="ovo: one small BNN (one output bit) per pair of classes, majority vote (ties: lowest class); "
                   "none: one network; auto: ovo where it was measured best (three or more one-hot classes, at least "
                   "256 inputs, no --method), else one network.")
@click.option("--workers", type=PARALLEL, default=1, show_default=True,
              help="With --ensemble: members trained in parallel processes.")
@scheduler_option("With --ensemble: Dask scheduler ('local' or tcp://HOST:PORT).")
@click.option("--force", is_flag=True, help="Replace an earlier run in RUN_DIR (its weights, certificate, proofs).")
@json_option
def command(network: str, data: str, run_dir: str, solver: str | None, time_limit: float | None,
            stage_time_limit: float | None, node_limit: int | None, mip_gap: float | None, threads: int | None,
            polish: str | None, objective: str | None, method: str | None, warm_start: str | None,
            seed: int | None, ensemble: str | None, workers: int, scheduler: str | None, force: bool,
            as_json: bool) -> None:
    """Train NETWORK (spec YAML) on DATA (YAML) exactly, by solving the training MILP.

    Writes RUN_DIR/weights.yaml (weights, thresholds, settings, data sha256 and
    the training loss recomputed exactly from the written weights) and
    RUN_DIR/certificate.json (solver, status, objective, bound, gap, nodes, time:
    the solver's report, not an independent proof). On a time limit or Ctrl-C
    the best network found so far is written and labelled as such; while the solver runs, every better
    incumbent is checkpointed there. NETWORK or DATA may be '-' (standard input).

    \b
    Example:
      bnnmilp train configs/digits.yaml samples/digits_k1.yaml -o runs/k1 --time-limit 30
      bnnmilp train configs/digits.yaml - -o runs/d --json < samples/digits_k1.yaml | python -m json.tool
    """
    import json
    import time

    from bnnmilp.cli import terminal
    from bnnmilp.errors import EXIT_CLAIM_FALSE, SolverError
    from bnnmilp.io.runs import FINISHED, discard_checkpoints, owned_run_dir, write_run
    from bnnmilp.network import predictions
    from bnnmilp.training.ensemble import default_ensemble
    from bnnmilp.training.pipeline import train

    started = time.monotonic()  # the budget counts from the command's start
    spec, ds = load_inputs(network, data)
    chosen = ensemble == "auto"
    if chosen:
        ensemble = default_ensemble(spec) if method is None and data != "-" else None
    elif ensemble == "none":
        ensemble = None
    if chosen and ensemble and not as_json:
        terminal.status(f"{spec.network.weights} weights, {spec.network.n_outputs} classes, "
                        f"{spec.network.n_inputs} inputs: a one-vs-one ensemble (measured best at this scale; "
                        "--ensemble none trains one network)")
    created = click.get_current_context().with_resource(owned_run_dir(run_dir, force))  # locked to the end
    spec = _settings(spec, solver, time_limit, stage_time_limit, node_limit, mip_gap, threads, polish, objective,
                     method, warm_start, seed, started if not ensemble else None)
    if ensemble:
        _ensemble(spec, ds, data, run_dir, workers, scheduler, as_json, started)
        return
    if not as_json:
        terminal.status(f"training {list(spec.network.layers)} ({spec.network.weights} weights, "
                        f"{spec.network.thresholds} thresholds, {spec.training.loss} loss) on {ds.n_samples} "
                        f"samples with {spec.solver.name}")
    t0 = time.perf_counter()
    with terminal.solve_progress("solving", spec.solver.budget or spec.solver.time_limit) as progress:
        res = train(spec, ds, progress=progress, checkpoint=lambda r: write_run(r, run_dir), announce=terminal.note)
    if res.status not in FINISHED:
        discard_checkpoints(run_dir, created)
        raise SolverError(f"solver {res.solution.solver} failed (status {res.status}): no network written")
    paths = write_run(res, run_dir)
    if res.best is not None and res.status in ("optimal", "heuristic", "stalled", "time_limit", "node_limit"):
        _prove(spec, ds, run_dir, paths, as_json)
    cert = json.loads(paths["certificate"].read_text())
    correct = None if res.best is None else int(
        (predictions(res.best.network, ds.features, spec.network.output) == ds.labels).sum())
    summary = _summary(spec, ds, res, paths, cert, correct, time.perf_counter() - t0)
    if as_json:
        terminal.emit_json(summary)
    else:
        _print_summary(spec, ds, res, paths, summary, cert, correct)
    if res.best is None:
        terminal.status("bnnmilp: no network found: " + ("the training problem is infeasible with these settings "
                        "(e.g. fixed thresholds and the epsilon margin)" if res.status == "infeasible"
                        else f"solver stopped ({res.status}) before finding one"))
        raise SystemExit(EXIT_CLAIM_FALSE)
    if res.status == "interrupted":
        from bnnmilp.cli import exit_code_of_interrupt

        raise SystemExit(exit_code_of_interrupt())


def _settings(spec, solver, time_limit, stage_time_limit, node_limit, mip_gap, threads, polish, objective, method,
              warm_start, seed, started: float | None):
    """The spec with the command line's settings; ``started``: the command's start, when one network takes the
    whole budget (an ensemble's members share it instead)."""
    spec = spec.with_solver(name=solver, time_limit=stage_time_limit, node_limit=node_limit, mip_gap=mip_gap,
                            threads=threads)
    spec = spec.with_solver(budget=time_limit)
    if spec.solver.budget is not None and started is not None:
        spec = spec.with_solver(deadline=started + spec.solver.budget)
    obj = None
    if objective is not None:
        from bnnmilp.spec import parse_objective

        obj = parse_objective(objective if objective in ("lexicographic",) or "," not in objective
                              else objective.split(","))
    return spec.with_training(polish=polish, objective=obj, method=method, warm_start=warm_start, seed=seed)


def _prove(spec, ds, run_dir: str, paths: dict, as_json: bool) -> None:
    """RUN/proof.json within what is left of the budget (the trivial proofs take milliseconds)."""
    import time
    from pathlib import Path

    from bnnmilp.cli import terminal
    from bnnmilp.io.runs import load_weights
    from bnnmilp.verification.proofs.run_proofs import proof_seconds, write_run_proof

    share = proof_seconds(spec.solver.budget, spec.solver.time_limit)
    if spec.solver.deadline is not None:
        share = min(share, max(1.0, spec.solver.deadline - time.monotonic()))
    if not as_json and spec.training.lower_bound != "none":
        terminal.status(f"proving the bound (at most {share:.0f}s)")
    write_run_proof(run_dir, load_weights(paths["weights"]), ds, share)
    if (Path(run_dir) / "proof.json").exists():
        paths["proof"] = Path(run_dir) / "proof.json"


def _summary(spec, ds, res, paths: dict, cert: dict, correct: int | None, seconds: float) -> dict:
    """What the run did, for --json and the table: exact figures recomputed from the written network."""
    from bnnmilp.io.runs import loss_note

    best = res.best
    return {
        "status": res.status,
        "objective": best.loss if best else None,
        "loss": spec.training.loss,
        "bound": res.loss_bound,
        "gap": cert.get("gap"),
        "nodes": cert.get("nodes", 0),
        "runtime_s": round(seconds, 3),
        "times": res.timings,
        "budget": spec.solver.budget,
        "solver": res.solution.solver,
        "stages": [st.name for st in res.stages],
        "source": best.source if best else None,
        "min_slack": float(best.min_slack) if best else None,
        "training_accuracy": None if correct is None else correct / ds.n_samples,  # the output rule's, exact
        "weights": str(paths["weights"]) if "weights" in paths else None,
        "certificate": str(paths["certificate"]),
        "proof": str(paths["proof"]) if "proof" in paths else None,
        "proven_bound": cert.get("proven_bound"),
        "proven_optimal": cert.get("proven_optimal", False),
        "note": loss_note(res),
    }


def _print_summary(spec, ds, res, paths: dict, summary: dict, cert: dict, correct: int | None) -> None:
    from bnnmilp.cli import terminal

    best = res.best
    label = "" if res.status in ("optimal", "heuristic", "stalled") else "  (best found so far)"
    times = " (" + ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items()) + ")" if res.timings else ""
    rows = [("status", res.status), ("stages", ", ".join(summary["stages"]) or spec.training.method),
            ("network written by", WRITTEN_BY.get(summary["source"], summary["source"]) or "-"),
            (f"{spec.training.loss} loss (exact)", f"{summary['objective']}{label}"),
            *([("training accuracy (exact)", f"{correct}/{ds.n_samples} = {correct / ds.n_samples:.4f}")]
              if correct is not None else []),
            ("solver bound (reported)", summary["bound"] if not res.local_search else res.bound_scope),
            ("gap (reported)", summary["gap"] if not res.local_search else "-"),
            ("nodes", summary["nodes"]),
            ("time", f"{summary['runtime_s']:.2f}s" + (
                f" of a {spec.solver.budget:g}s budget" if spec.solver.budget else "") + times)]
    if best:
        rows.append(("epsilon margin (exact)", _margin_text(best, spec.training.epsilon)))
    if cert.get("proven_bound") is not None:
        rows.append(("bound (proven, exact)", f"{cert['proven_bound']} by {cert['proven_by']}" + (
            ": the loss is optimal" if cert.get("proven_optimal") else f", gap {cert['proven_gap']}")))
    rows += [(k, str(v)) for k, v in paths.items()]
    if summary["note"]:
        rows.append(("note", summary["note"]))
    terminal.table("training result", rows)


def _ensemble(spec, ds, data_path: str, run_dir: str, workers: int, scheduler: str | None, as_json: bool,
              started: float) -> None:

    import numpy as np

    from bnnmilp.cli import terminal
    from bnnmilp.errors import InputError
    from bnnmilp.io.runs import load_ensemble
    from bnnmilp.training.ensemble import ensemble_deadline, member_spec_doc, pairs, train_ensemble

    n = spec.network.n_outputs
    if n < 2:
        raise InputError(spec.path, "network.layers", "an ovo ensemble needs one output per class (dL >= 2)")
    n_jobs = len(pairs(n))
    if not as_json:
        terminal.status(f"training {n_jobs} one-vs-one members {list(member_spec_doc(spec)['network']['layers'])} "
                        f"with {workers} worker(s){' on Dask' if scheduler else ''}")
    with terminal.sample_progress(n_jobs, "jobs") as advance:
        budget = spec.solver.budget
        deadline = None if budget is None else ensemble_deadline(budget, started)
        records, paths, doc = train_ensemble(spec, data_path, run_dir, workers, scheduler, advance, deadline)
    failed = [r for r in records if not r["ok"] or not (r.get("result") or {}).get("weights")]
    statuses = {(r.get("result") or {}).get("status") for r in records}
    ens = load_ensemble(paths["weights"], doc)  # as written, not parsed again
    acc = float(np.mean(ens.predict(ds.features) == ds.labels))
    summary = {"status": "optimal" if statuses == {"optimal"} else ",".join(sorted(map(str, statuses))),
               "members": len(records), "failed": len(failed), "train_accuracy": acc,
               "weights": str(paths["weights"]), "members_dir": str(paths["members"])}
    if as_json:
        terminal.emit_json(summary)
    else:
        terminal.table("ensemble", list(summary.items()))
    if failed:
        raise SystemExit(1)


WRITTEN_BY = {"ste": "the STE heuristic", "lns": "the large-neighbourhood search", "solver": "the MILP solver",
              "polished": "margin polishing of the solver's network", "start": "the start network",
              "codes": "the class-code construction"}


def _margin_text(best, epsilon) -> str:
    """The smallest slack of the epsilon margin, said in words: the MILP's rows ask every bit-0 pre-activation
    to stay epsilon below its threshold; predictions follow the plain rule a >= lambda either way."""
    slack = float(best.min_slack)
    who = f"{best.source} weights"
    if slack >= 0:
        return f"met: smallest slack {slack:.6g} ({who})"
    return (f"missed by {-slack:.6g} ({who}): a bit 0 within epsilon {float(epsilon):g} of its threshold; "
            "predictions (a >= lambda) are unaffected")
