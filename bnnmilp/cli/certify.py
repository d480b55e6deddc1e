from __future__ import annotations

from pathlib import Path

import click

from bnnmilp.cli.common import OUTPUT_FILE, POSITIVE, json_option, one_stdout


@click.command("certify")
@click.argument("target", type=click.Path(exists=True, allow_dash=True))
@click.argument("data", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="Proof file (default: TARGET/proof.json for a run folder, MODEL.proof.json otherwise).")
@click.option("--format", "fmt", type=click.Choice(["json", "vipr"]), default="json", show_default=True,
              help="json: bnnmilp's proof format; vipr: a VIPR certificate for viprchk.")
@click.option("--time-limit", type=POSITIVE, default=600.0, show_default=True)
@json_option
def command(target: str, data: str | None, output: str | None, fmt: str, time_limit: float, as_json: bool) -> None:
    """Prove a lower bound on the optimum of a MILP, as a file anyone can check without trusting a solver.

    TARGET is an MPS/LP file, or a training run folder with its DATA (the training MILP is rebuilt).
    bnnmilp's own branch-and-bound over HiGHS LPs records its tree and the LP multipliers of every
    leaf, cut off at HiGHS's optimum (or the run's exact loss), so it only has to prove, not search. For a
    training run, swaps of interchangeable hidden units become symmetry rows that the checker verifies
    (proof version 3); --format vipr proves without them (VIPR has no rule for symmetry).
    Check the proof with `bnnmilp verify TARGET [DATA] --certificate PROOF`.

    \b
    Examples:
      bnnmilp certify runs/k1 samples/digits_k1.yaml
      bnnmilp certify samples/guzelsoy_ralphs.lp --format vipr -o gr.vipr
      bnnmilp certify samples/guzelsoy_ralphs.lp --format vipr -o - | gzip > gr.vipr.gz
    """
    from bnnmilp.cli import terminal
    from bnnmilp.io.yamlio import check_output_path, write_json_atomic
    from bnnmilp.verification.proofs.vipr import write_vipr
    from bnnmilp.verification.reports import certify

    one_stdout(as_json, output=output)
    output = output or default_output(target, fmt)
    one_stdout(as_json, output=output)
    check_output_path(output)
    done = certify(target, data, time_limit, vipr=fmt == "vipr")  # VIPR has no rule for symmetry rows
    model, tree, doc = done.model, done.tree, done.proof
    if fmt == "json":
        write_json_atomic(output, doc)
    else:
        write_vipr(output, model, doc)
    result = {"proof": output, "format": fmt, "claimed_bound": tree.claimed_bound,
              "claimed_bound_exact": doc["claimed_bound_exact"], "proven": True,
              "incumbent": tree.incumbent, "incumbent_from": done.incumbent_by,
              "objective_integral": bool(model.objective_integral),
              "nodes": len(tree.nodes), "leaves": len(tree.leaves), "runtime_s": round(tree.runtime_s, 3),
              "nodes_per_s": round(tree.nodes_per_s, 1),
              "size_bytes": None if output == "-" else Path(output).stat().st_size}
    if as_json:
        terminal.emit_json(result)
    else:
        terminal.table("proof written and checked exactly (check it again with bnnmilp verify --certificate)",
                       list(result.items()))


def default_output(target: str, fmt: str) -> str:
    if target == "-":
        return "-"  # a model from standard input: the proof to standard output
    from bnnmilp.verification.proofs.models import is_model_file

    if not is_model_file(target):
        return str(Path(target) / ("proof.json" if fmt == "json" else "proof.vipr"))
    return str(Path(target).with_suffix(".proof.json" if fmt == "json" else ".vipr"))
