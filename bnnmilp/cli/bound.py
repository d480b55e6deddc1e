from __future__ import annotations

import click

from bnnmilp.cli.common import OUTPUT_DIR, OUTPUT_FILE, PARALLEL, POSITIVE, json_option, one_stdout, scheduler_option


class GroupsType(click.ParamType):
    """'auto' or a group size (an integer of at least 1)."""

    name = "auto|SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "auto":
            return value
        try:
            size = int(value)
        except ValueError:
            self.fail(f"expected 'auto' or a group size (an integer >= 1), got {value!r}", param, ctx)
        if size < 1:
            self.fail(f"expected 'auto' or a group size (an integer >= 1), got {value!r}", param, ctx)
        return size


@click.command("bound")
@click.argument("network", type=click.Path(exists=True, allow_dash=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="The composite proof (JSON; '-': standard output).")
@click.option("--groups", type=GroupsType(), default="auto", show_default=True,
              help="auto: groups that hold as many different labels as they can (half the number of classes), "
                   "then larger groups (one sample more; twice the size while every optimum is 0) while "
                   "--time-limit allows and every group is proven, keeping the partition that proves most; "
                   "SIZE: groups of that size, one round.")
@click.option("--time-limit", type=POSITIVE, default=300.0, show_default=True,
              help="Seconds for the whole bound.")
@click.option("--group-time-limit", type=POSITIVE, default=30.0, show_default=True,
              help="Seconds for each group's HiGHS solve and for its proof, at most.")
@click.option("--vipr", "vipr_dir", callback=OUTPUT_DIR, type=click.Path(file_okay=False),
              help="Also write each group's proof as DIR/group_<i>.vipr (VIPR, for viprchk).")
@click.option("--workers", type=PARALLEL, default=1, show_default=True,
              help="Groups proven on this many local processes (or Dask workers with --scheduler local).")
@scheduler_option("Prove the groups on Dask: 'local' starts a LocalCluster, tcp://HOST:PORT joins a cluster "
                  "started with `dask scheduler` and `dask worker` (pip install 'bnnmilp[dask]').")
@click.option("--stop-after", type=click.Choice(["capacity"]), default=None,
              help="capacity: where the capacity bound is positive, write it and prove no group (it takes "
                   "milliseconds; the groups take up to --time-limit). Where it is 0 the groups are proven.")
@json_option
def command(network: str, data: str, output: str, groups: str | int, time_limit: float, group_time_limit: float,
            vipr_dir: str | None, workers: int, scheduler: str | None, stop_after: str | None, as_json: bool) -> None:
    """Prove a lower bound on the training loss of NETWORK on DATA by decomposition, with a checkable proof.

    NETWORK is a spec YAML (no weights are needed for a lower bound) or a run folder (its recorded
    spec; its network's exact loss is then set against the bound: `run` in the JSON, with the gap, and
    `optimal` where the bound reaches it). The training loss is a sum over samples, so the optima of the
    training MILPs of the groups of any partition of DATA add up to a lower bound on the whole MILP's
    optimum. Each group's optimum is found by HiGHS and proven by bnnmilp's branch and bound; the proof
    file holds the partition and every group's proof, and is checked in exact arithmetic before it is
    written. Check it again with `bnnmilp verify NETWORK DATA --certificate PROOF`. Where loss 0 is
    unattainable (narrow networks, noisy labels), this proves bounds that the whole MILP's relaxation
    (bound 0) does not.

    Before the groups, the capacity bound of the whole data is computed (instant, no solver): through a
    hidden layer of width w a network has at most 2^w different outputs, whatever its weights, so where
    there are more labels the cheapest way to share outputs costs at least that much. The larger of the two
    bounds is written ("by" in the JSON).

    \b
    Examples:
      bnnmilp bound samples/narrow.yaml samples/digits_k2.yaml -o bound.json
      bnnmilp bound samples/narrow.yaml samples/digits_k2.yaml -o bound.json --groups 5 --workers 2 --json
      bnnmilp bound samples/narrow.yaml samples/digits_k2.yaml -o - | gzip > bound.json.gz
      bnnmilp verify samples/narrow.yaml samples/digits_k2.yaml --certificate bound.json

    Exit status 0 when the proof is written, 2 on bad input, 3 when no group could be proven.
    """
    import tempfile
    from pathlib import Path

    from bnnmilp.cli import terminal
    from bnnmilp.data import load_data
    from bnnmilp.errors import DataError
    from bnnmilp.io.yamlio import (
        check_output_path,
        fraction_str,
        is_stdio,
        read_input,
        sniff,
        write_bytes_atomic,
        write_json_atomic,
    )
    from bnnmilp.verification.proofs.decomposition import decomposition_bound, in_process, job_runner
    from bnnmilp.verification.reports import against_bound, spec_of, weights_of

    one_stdout(as_json, output=output)
    check_output_path(output)
    spec = spec_of(network)
    ds = load_data(data)
    ds.check_fits(spec.network.n_inputs, spec.network.n_outputs)
    with tempfile.TemporaryDirectory(prefix="bnnmilp_bound_") as tmp:
        path = data
        if (workers > 1 or scheduler) and is_stdio(data):  # workers read files: standard input is kept as one
            path = str(Path(tmp) / f"stdin_data.{sniff(data)}")
            write_bytes_atomic(path, read_input(data, DataError))

        def run(groups: list[list[int]], limit: float):  # one progress bar per round
            with terminal.sample_progress(len(groups), "groups") as advance:
                sym = not vipr_dir  # VIPR has no rule for symmetry rows
                inner = job_runner(spec, path, tmp, workers, scheduler, on_done=advance, symmetry=sym) \
                    if workers > 1 or scheduler else in_process(spec, ds, on_group=advance, symmetry=sym)
                return inner(groups, limit)

        res = decomposition_bound(spec, ds, groups, time_limit, group_time_limit, run,
                                  parallel=workers if (workers > 1 or scheduler) else 1,
                                  on_round=lambda h: terminal.status(_round_line(h)),
                                  stop_after_capacity=stop_after == "capacity")
    write_json_atomic(output, res.proof)
    from bnnmilp.verification.proofs.capacity import is_capacity

    if vipr_dir:
        from bnnmilp.verification.proofs.composite import group_model
        from bnnmilp.verification.proofs.vipr import write_vipr

        for i, g in enumerate(res.proof["groups"]):
            if is_capacity(g["proof"]):  # a capacity proof has no MILP derivation
                terminal.status(f"group {i}: a capacity proof, no VIPR file (verify checks it)")
                continue
            write_vipr(Path(vipr_dir) / f"group_{i}.vipr", group_model(spec, ds, g["samples"]), g["proof"])
    out = {"bound": fraction_str(res.bound), "bound_float": float(res.bound), "proven": True, "proof": output,
           "scope": "every network meeting the epsilon margin on every sample (the training MILP's optimum)",
           "groups": [{"samples": g.samples, "claim": fraction_str(g.claim), "kind": g.kind,  # capacity | milp
                       "highs_status": None if g.kind == "capacity" else g.status,  # HiGHS ran only on milp
                       "highs_optimum": g.optimum, "time_s": g.time_s, "nodes": g.nodes} for g in res.groups],
           "by": res.by, "rounds": res.rounds, "time_s": res.time_s}
    out["interrupted"] = res.interrupted
    wf = weights_of(network)
    if wf is not None:  # a run: its network against the bound
        out["run"] = against_bound(wf, ds, res.bound)
    if as_json:
        terminal.emit_json(out)
    else:
        terminal.status(f"[green]proven[/]: training loss >= {out['bound']} ({len(res.groups)} groups, checked "
                        f"exactly; {res.time_s:.1f}s); proof written to {output}" + (
                            " (interrupted: the best finished round's partition)" if res.interrupted else ""))
        if wf is not None:
            r = out["run"]
            terminal.status(f"the run's exact loss is {r['exact_loss']}: " + (
                ("optimal" if r["optimal"] else f"at most {r['gap']} above the optimum") if r["meets_margin"] else
                "its network misses the epsilon margin somewhere, and the bound covers only networks that meet it"))
    if res.interrupted:
        from bnnmilp.cli import exit_code_of_interrupt

        raise SystemExit(exit_code_of_interrupt())


def _round_line(h: dict) -> str:
    if h["round"] == "capacity":
        return (f"capacity: bound {h['bound']:g} ({h['codes']} codes through the narrowest hidden layer; "
                f"{h['time_s']:.2f}s)")
    return (f"round {h['round']}: bound {h['bound']:g} from {h['groups']} groups of {h['group_size']} "
            f"({h['time_s']:.1f}s)")
