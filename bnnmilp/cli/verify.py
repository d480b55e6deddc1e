from __future__ import annotations

import click

from bnnmilp.cli.common import (
    NONNEGATIVE,
    OUTPUT_DIR,
    OUTPUT_FILE,
    PARALLEL,
    PLOT_FILE,
    POSITIVE,
    json_option,
    load_box_option,
    one_stdout,
    parse_bounds,
    scheduler_option,
)


@click.command("verify")
@click.argument("weights", type=click.Path())
@click.argument("data", required=False, type=click.Path(dir_okay=False))
@click.option("--certificate", "proof", type=click.Path(dir_okay=False), is_flag=False, flag_value="",
              help="Check a proof file (from `bnnmilp certify` or `bnnmilp bound`) in exact arithmetic; WEIGHTS "
                   "may then be an MPS/LP file, or for a decomposition bound a spec file. Without a value: "
                   "WEIGHTS/proof.json.")
@click.option("--robust", is_flag=True, help="Verify robustness of each sample instead of the training claims.")
@click.option("--vnnlib", "query", type=click.Path(dir_okay=False),
              help="Answer a VNN-LIB query (2.0, or 1.0 as VNN-COMP wrote them) on WEIGHTS, an ONNX model: sat "
                   "(with the satisfying assignment), unsat, unknown or timed-out on stdout; --time-limit bounds "
                   "the whole answer. Exit status 0 unsat, 1 sat, 3 unknown or timed-out.")
@click.option("--eps", type=NONNEGATIVE,
              help="Perturbation radius E (with --min-eps: the largest radius searched).")
@click.option("--norm", type=click.Choice(["inf", "1"]), default="inf", show_default=True)
@click.option("--domain", type=click.Choice(["continuous", "integer"]), default="continuous", show_default=True,
              help="integer: only integer inputs (e.g. pixel values) count as perturbations.")
@click.option("--bounds", help="Input domain LO:HI (e.g. 0:16 for the digits).")
@click.option("--box", type=click.Path(dir_okay=False),
              help="Per-feature input bounds: a YAML or NPZ file with lower and upper (one number per feature).")
@click.option("--engine", type=click.Choice(["auto", "enum", "sat", "milp"]), default="auto", show_default=True,
              help="enum: exhaustive enumeration of the first-layer bits the ball can flip (integer inputs, a "
                   "threshold input layer); sat: a SAT encoding of the bit-level layers (python-sat, UNSAT "
                   "confirmed by a second solver); milp: HiGHS; auto: enum where small, else a quick search, "
                   "sat, branch and bound, milp.")
@click.option("--against", type=click.Choice(["prediction", "label"]), default="prediction", show_default=True,
              help="A perturbation counts when the output bits differ from the network's own or the label's.")
@click.option("--min-eps", is_flag=True, help="Find the smallest perturbation that changes the output bits.")
@click.option("--time-limit", type=POSITIVE, default=60.0, show_default=True,
              help="Seconds per sample query.")
@click.option("--workers", type=PARALLEL, default=1, show_default=True,
              help="--robust: queries on this many local processes (or Dask workers with --scheduler local).")
@click.option("--split", type=PARALLEL, default=1, show_default=True,
              help="--robust: share each query's exhaustive enumeration among this many processes on this machine "
                   "(one hard query, e.g. --min-eps on one image, on several cores; forked, so Linux only, else "
                   "one process). Multiplies with --workers.")
@scheduler_option("--robust: run the queries on Dask: 'local' starts a LocalCluster, tcp://HOST:PORT joins a "
                  "cluster started with `dask scheduler` and `dask worker` (pip install 'bnnmilp[dask]'; workers "
                  "read WEIGHTS and DATA by their absolute paths).")
@click.option("-o", "--output", "out_dir", callback=OUTPUT_DIR, type=click.Path(file_okay=False),
              help="--robust: write each query's result to OUTPUT/jobs/KEY.json as it finishes and the report to "
                   "OUTPUT/robustness.json; a rerun with the same OUTPUT skips finished queries (resumes).")
@click.option("--out", "out_alias", callback=OUTPUT_DIR, type=click.Path(file_okay=False), hidden=True)
@click.option("--no-prune", is_flag=True, help="Skip interval-arithmetic pruning (every sample gets a MILP).")
@click.option("--reuse-model", is_flag=True, help="One MILP for all samples (needs --bounds), changed by bounds per "
                                                  "sample, instead of a model built per sample.")
@click.option("--counterexamples", callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="Write counterexamples as a data YAML ('-': standard output).")
@click.option("--plot", callback=PLOT_FILE, type=click.Path(dir_okay=False),
              help="--robust on image inputs: draw each counterexample (original, perturbed, the change) into a "
                   ".png, .svg or .pdf file (needs matplotlib: pip install 'bnnmilp[plot]').")
@json_option
def command(weights: str, data: str | None, proof: str | None, robust: bool, query: str | None, eps: float | None,
            norm: str,
            domain: str, bounds: str | None, box: str | None, engine: str, against: str, min_eps: bool,
            time_limit: float, workers: int, split: int, scheduler: str | None, out_dir: str | None,
            out_alias: str | None,
            no_prune: bool, reuse_model: bool, counterexamples: str | None, plot: str | None, as_json: bool) -> None:
    """Check the claims of WEIGHTS (a weights.yaml or a run folder) on DATA, in exact arithmetic.

    WEIGHTS or DATA may be '-' (standard input).

    Without --robust: recomputes the forward pass with rational arithmetic where floating point cannot
    decide a bit, and checks that weights and thresholds lie in their domain, DATA is the training data
    (sha256), the recorded training loss equals the exact loss, the solver's bound does not exceed it,
    and the recorded smallest margin slack is exact.

    With --certificate [PROOF]: checks a branch-and-bound proof (bnnmilp certify) against the exact
    model (an MPS/LP file, or the training MILP rebuilt from a run folder and DATA): the tree covers
    every integer point and every leaf's bound, recomputed in rationals, reaches the claimed bound. A
    composite proof (bnnmilp bound) is checked against WEIGHTS' spec (a spec file will do) and DATA:
    its groups partition DATA and each group's proof checks on that group's own training MILP.

    With --robust --eps E: for each sample, is there an input x' with ||x' - x|| <= E (within --bounds and
    --box, integer with --domain integer) whose output bits differ (argmax outputs: some class k scores
    at least the reference class, ties count)? Answers robust, not_robust (with a counterexample replayed
    through the exact forward pass) or unknown (time limit), one CSV line per sample on stdout. The step
    rule a >= lambda is the semantics: no slack on the verifier's side. With integer inputs and a
    threshold input layer (imported BNNs), an exhaustive enumeration of the first-layer bits the ball can
    flip decides most queries in milliseconds; 'robust' from it is a proof without a solver. Each sample
    is one job: --workers and --scheduler spread them, -o OUT keeps every result and resumes an interrupted run.

    \b
    Examples:
      bnnmilp verify runs/k1 samples/digits_k1.yaml
      bnnmilp verify runs/k1 samples/digits_test.yaml --robust --eps 1 --domain integer --bounds 0:16
      bnnmilp verify rot.npz samples/rot8.npz --robust --eps 2 --norm 1 --domain integer --bounds 0:255
      bnnmilp verify rot.npz samples/rot8.npz --robust --eps 1 --domain integer --bounds 0:255 \\
          --workers 2 -o robust_out
      bnnmilp verify rot.npz samples/rot8.npz --robust --min-eps --norm 1 --domain integer \\
          --bounds 0:255 --split 2 --time-limit 600
      bnnmilp verify runs/k1 samples/digits_test.yaml --robust --eps 1 --domain integer --bounds 0:16 \\
          --counterexamples - | bnnmilp predict runs/k1 -
      bnnmilp verify samples/conv_bnn.onnx --vnnlib samples/conv_bnn.vnnlib --time-limit 60

    Exit status 0 when every claim holds (or, with --robust, every sample is robust), 1 otherwise,
    2 on bad input.
    """
    from bnnmilp.cli import terminal
    from bnnmilp.data import load_data
    from bnnmilp.errors import InputError
    from bnnmilp.io.runs import load_weights

    if out_dir and out_alias:
        raise InputError(None, "--output and --out",
                         "give one of them, not both (--out is the older spelling of --output)")
    out_dir = out_dir or out_alias

    if proof is not None:
        _certificate(weights, data, proof or None, as_json)
        return
    if query is not None:
        _vnnlib(weights, query, time_limit, as_json)
        return
    if data is None:
        raise InputError(None, "DATA", "missing: verify WEIGHTS DATA (or MODEL.mps --certificate PROOF)")
    wf = load_weights(weights)
    ds = load_data(data)
    from bnnmilp.network.ensemble import EnsembleFile

    drawing = _drawing(plot, wf, robust or min_eps)
    if isinstance(wf, EnsembleFile):
        if box is not None or engine == "enum" or split > 1:
            from bnnmilp.errors import InputError

            raise InputError(wf.path, "--box" if box is not None else "--engine" if engine == "enum" else "--split",
                             "one network (per-feature boxes and enumeration are not available for ensembles)")
        if robust or min_eps:
            run = Runner(weights, data, workers, scheduler, out_dir)
            _robust_ensemble(wf, ds, eps, norm, domain, parse_bounds(bounds), against, time_limit, engine, run,
                             as_json, drawing)
        else:
            _verify_ensemble(wf, ds, as_json)
        return
    if robust or min_eps:
        one_stdout(as_json, counterexamples=counterexamples)
        _robust(wf, ds, eps, norm, domain, parse_bounds(bounds), box, engine, against, min_eps, time_limit, split,
                Runner(weights, data, workers, scheduler, out_dir), not no_prune, reuse_model, counterexamples, as_json,
                drawing)
        return
    from bnnmilp.verification.checkers.claims import verify_weights
    from bnnmilp.verification.proofs.run_proofs import proof_check

    report = verify_weights(wf, ds, proof_check)
    if as_json:
        terminal.emit_json(report)
    else:
        mark = {True: "[green]ok[/]", False: "[red]FALSE[/]", None: "[dim]n/a[/]"}
        for c in report["checks"]:
            terminal.status(f"{mark[c['ok']]:>14}  {c['name']:<7} {c['detail']}")
        terminal.status(f"exact {report['loss']} loss {report['exact_loss']}, accuracy {report['accuracy']:.4f}, "
                           f"min slack {report['min_slack_float']:.6g}")
        terminal.status("[green]all claims hold[/]" if report["ok"] else "[red]a claim is false[/]")
    if not report["ok"]:
        raise SystemExit(1)


def _vnnlib(model: str, query: str, time_limit: float, as_json: bool) -> None:
    """The answer on stdout as the VNN-LIB standard prints it (or as JSON), notes on stderr."""
    import sys

    from bnnmilp.cli import terminal
    from bnnmilp.errors import EXIT_SOLVER
    from bnnmilp.io.vnnlib import read_query
    from bnnmilp.verification.robustness.vnnlib import answer_within, assignment_block

    q = read_query(query)
    ans = answer_within(q, model, time_limit)
    if as_json:
        terminal.emit_json({"query": query, "model": model, **ans.to_dict()})
    else:
        for note in ans.notes:
            terminal.status(note, markup=False)
        terminal.status(f"{ans.result} by {ans.method or 'none'} in {ans.time_s:.2f} s")
        sys.stdout.write(f"{ans.result}\n" + (assignment_block(q, ans) if ans.result == "sat" else ""))
    if ans.result != "unsat":
        raise SystemExit(1 if ans.result == "sat" else EXIT_SOLVER)


def robust_row(r) -> dict:
    """One line of verify --robust's CSV on stdout."""
    return {"index": r.index, "answer": r.answer, "method": r.method,
            "distance": "" if r.distance is None else r.distance,
            "min_eps_bound": "" if r.min_eps_bound is None else f"{r.min_eps_bound:g}", "time_s": f"{r.time_s:.3f}",
            "note": r.note + (f"; {r.float_check}" if r.float_check else "")}


class Runner:
    """Runs one robustness query per sample as jobs (``robust.query_jobs`` on ``jobs.execute``): in this process,
    on --workers processes or on Dask; results per query in OUT/jobs (resumable) or in a temporary folder."""

    def __init__(self, weights: str, data: str, workers: int, scheduler: str | None, out: str | None) -> None:
        self.weights, self.data, self.workers, self.scheduler, self.out = weights, data, workers, scheduler, out

    def __call__(self, n: int, opts, box: str | None = None) -> list:
        import tempfile
        from pathlib import Path

        from bnnmilp.cli import terminal
        from bnnmilp.errors import DataError
        from bnnmilp.execution.jobs import execute
        from bnnmilp.io.yamlio import is_stdio, read_input, sniff, write_bytes_atomic
        from bnnmilp.verification.robustness.robust import from_record, query_jobs

        with tempfile.TemporaryDirectory(prefix="bnnmilp_verify_") as tmp, terminal.sample_progress(n) as advance:
            data = self.data
            if is_stdio(data):  # workers read files: standard input is kept as one
                data = str(Path(self.out or tmp) / f"stdin_data.{sniff(data)}")
                write_bytes_atomic(data, read_input(self.data, DataError))
            jobs = query_jobs(self.weights, data, n, opts, box)
            records = execute(jobs, self.out or tmp, workers=self.workers, scheduler=self.scheduler,
                              on_done=advance)
        return [from_record(r, i) for i, r in enumerate(records)]

    def report(self, doc: dict) -> None:
        """OUT/robustness.json: what --json prints."""
        if self.out:
            from pathlib import Path

            from bnnmilp.io.yamlio import write_json_atomic

            write_json_atomic(Path(self.out) / "robustness.json", doc)


def _drawing(plot: str | None, wf, robust: bool) -> tuple[str, tuple[int, ...]] | None:
    """--plot's file and the image shape of the inputs, checked before any query: (path, shape) or None."""
    if plot is None:
        return None
    from bnnmilp.analysis.plots import image_shape, pyplot
    from bnnmilp.errors import InputError
    from bnnmilp.network.ensemble import EnsembleFile

    if not robust:
        raise InputError(None, "--plot", "draws the counterexamples of --robust (or --min-eps)")
    first = wf.members[0] if isinstance(wf, EnsembleFile) else wf
    d0 = first.spec.network.n_inputs
    shape = image_shape(first.doc.get("source"), d0)
    if shape is None:
        raise InputError(wf.path, "--plot", f"inputs that form an image; these are {d0} features (not a square, "
                                            "and no input shape recorded)")
    pyplot()  # matplotlib missing: say so now, not after the queries
    return plot, shape


def _draw(drawing: tuple[str, tuple[int, ...]] | None, ds, results) -> None:
    import numpy as np

    from bnnmilp.analysis.plots import counterexamples
    from bnnmilp.cli import terminal

    cxs = [r for r in results if r.counterexample is not None]
    if drawing is None:
        return
    if not cxs:
        terminal.status(f"no counterexample to draw: {drawing[0]} not written")
        return
    counterexamples(drawing[0], ds.features[[r.index for r in cxs]], np.array([r.counterexample for r in cxs]),
                    [f"sample {r.index}" for r in cxs], drawing[1])
    terminal.status(f"counterexamples drawn in {drawing[0]}")


def _robust(wf, ds, eps, norm, domain, bounds, box, engine, against, min_eps, time_limit, split, run: Runner, prune,
            reuse, cx_path, as_json, drawing=None):
    from bnnmilp.cli import terminal
    from bnnmilp.errors import InputError
    from bnnmilp.io.yamlio import write_yaml_atomic
    from bnnmilp.network import predictions
    from bnnmilp.verification.robustness.robust import RobustOptions, summary

    if eps is None and not (min_eps and bounds is not None):
        raise InputError(None, "--eps", "expected a radius (or --min-eps with --bounds)")
    if wf.spec.network.output == "argmax" and (reuse or (min_eps and domain != "integer")):
        raise InputError(wf.path, "network.output", "bits: --reuse-model, and --min-eps on real inputs, need step "
                                                    "outputs (for an argmax output, give --eps or --domain integer)")
    ds.check_fits(wf.spec.network.n_inputs, wf.spec.network.n_outputs)
    per_feature = load_box_option(box, wf.spec.network.n_inputs)
    opts = RobustOptions(eps=eps, norm=norm, domain=domain, bounds=bounds, against=against, min_eps=min_eps,
                         time_limit=time_limit, prune=prune, reuse=reuse, output=wf.spec.network.output,
                         engine=engine, box=per_feature, split=split)
    results = run(ds.n_samples, opts, box)
    if "source" in wf.doc and wf.spec.network.output == "argmax":  # imported: also the model's own float semantics
        from bnnmilp.io.importers import float_predictions
        from bnnmilp.verification.robustness.robust import check_in_float

        check_in_float(results, lambda X: float_predictions(wf.doc["source"], X))
    pred = predictions(wf.network, ds.features, wf.spec.network.output)
    summ = summary(results, ds.labels, pred)
    cxs = [r for r in results if r.counterexample is not None]
    if cx_path:
        write_yaml_atomic(cx_path, {"meta": {"counterexamples_of": ds.path, "eps": eps, "norm": norm,
                                             "domain": domain, "samples": [r.index for r in cxs]},
                                    "features": [r.counterexample for r in cxs],
                                    "labels": [int(ds.labels[r.index]) for r in cxs]})
    doc = {"options": {"eps": eps, "norm": norm, "domain": domain, "bounds": bounds, "box": box, "engine": engine,
                       "against": against, "min_eps": min_eps}, "summary": summ,
           "results": [r.to_dict() for r in results]}
    run.report(doc)
    if as_json:
        terminal.emit_json(doc)
    else:
        if cx_path != "-":  # stdout carries one table: the counterexamples, when they go there
            terminal.emit_csv([robust_row(r) for r in results])
        terminal.table("robustness", [(k, v) for k, v in summ.items()])
    _draw(drawing, ds, results)
    if summ["robust"] != summ["samples"]:
        raise SystemExit(1)


def _certificate(target: str, data: str | None, proof: str | None, as_json: bool) -> None:
    import time
    from pathlib import Path

    from bnnmilp.cli import terminal
    from bnnmilp.errors import InputError
    from bnnmilp.io.yamlio import fraction_str
    from bnnmilp.verification.proofs.models import is_model_file
    from bnnmilp.verification.proofs.proof import read_proof
    from bnnmilp.verification.reports import check_proof

    if proof is None:
        if is_model_file(target):
            raise InputError(None, "--certificate", "expected the proof file for a model file")
        proof = str(Path(target) / "proof.json")
    doc = read_proof(proof)
    t0 = time.perf_counter()
    rep = check_proof(target, data, doc)
    dt = time.perf_counter() - t0
    claim = None if rep.claim is None else fraction_str(rep.claim)
    out = {"proof": proof, "ok": rep.ok, "claimed_bound": doc.get("claimed_bound"), "claim_proven": claim,
           "leaves": rep.leaves,
           "weakest_leaf_bound": None if rep.weakest_leaf_bound is None else float(rep.weakest_leaf_bound),
           "check_time_s": round(dt, 4), "errors": rep.errors[:20]}
    if as_json:
        terminal.emit_json(out)
    elif rep.ok and doc.get("format") == "bnnmilp-composite-proof":
        terminal.status(f"[green]proof holds[/]: no network meeting the epsilon margin on every sample has "
                        f"training loss below {claim} ({_groups_line(doc['groups'], rep.leaves)}, checked exactly in "
                        f"{dt:.3f}s)")
    elif rep.ok:
        terminal.status(f"[green]proof holds[/]: no feasible point has objective below {claim} "
                           f"({rep.leaves} leaves checked exactly in {dt:.3f}s)")
    else:
        for e in rep.errors[:20]:
            terminal.status(f"[red]FALSE[/] {proof}: {e}")
    if not rep.ok:
        raise SystemExit(1)


def _verify_ensemble(ens, ds, as_json: bool) -> None:
    import numpy as np

    from bnnmilp.cli import terminal
    from bnnmilp.training.ensemble import member_data
    from bnnmilp.verification.checkers.claims import verify_weights

    reports = []
    for m, (a, b) in zip(ens.members, ens.classes, strict=True):
        rep = verify_weights(m, member_data(ds, a, b))
        rep["weights"] = f"{ens.path}: members {a}_{b}"
        reports.append({"classes": [a, b], **rep})
    ok = all(r["ok"] for r in reports)
    acc = float(np.mean(ens.predict(ds.features) == ds.labels))
    out = {"ensemble": ens.path, "members": len(reports), "ok": ok, "accuracy": acc,
           "failed_members": [r["classes"] for r in reports if not r["ok"]], "reports": reports}
    if as_json:
        terminal.emit_json(out)
    else:
        terminal.status(f"{len(reports)} members: " + ("[green]all claims hold[/]" if ok else
                           f"[red]claims false in {out['failed_members']}[/]") + f"; vote accuracy {acc:.4f}")
    if not ok:
        raise SystemExit(1)


def _robust_ensemble(ens, ds, eps, norm, domain, bounds, against, time_limit, engine, run: Runner, as_json,
                     drawing=None) -> None:
    from bnnmilp.cli import terminal
    from bnnmilp.errors import InputError
    from bnnmilp.verification.robustness.robust import RobustOptions, summary

    if eps is None:
        raise InputError(None, "--eps", "expected a radius (--min-eps is not available for ensembles)")
    opts = RobustOptions(eps=eps, norm=norm, domain=domain, bounds=bounds, against=against, time_limit=time_limit,
                         engine=engine)
    results = run(ds.n_samples, opts)
    summ = summary(results, ds.labels, ens.predict(ds.features))
    doc = {"ensemble": ens.path, "summary": summ, "results": [r.to_dict() for r in results]}
    run.report(doc)
    if as_json:
        terminal.emit_json(doc)
    else:
        terminal.emit_csv([robust_row(r) for r in results])
        terminal.table("ensemble robustness", list(summ.items()))
    _draw(drawing, ds, results)
    if summ["robust"] != summ["samples"]:
        raise SystemExit(1)


def _groups_line(groups: list, leaves: int) -> str:
    """How a composite proof's groups were proven: '4 groups partition the data: 4 by branch and bound (37
    leaves)' or '1 group: the capacity bound'."""
    from bnnmilp.verification.proofs.capacity import is_capacity

    cap = sum(1 for g in groups if is_capacity(g["proof"]))
    n = len(groups)
    parts = [f"{n} group{'s' if n != 1 else ''} partition{'' if n != 1 else 's'} the data"]
    if cap:
        parts.append(f"{cap} by the capacity bound")
    if n - cap:
        parts.append(f"{n - cap} by branch and bound ({leaves} leaves)")
    return "; ".join(parts)
