from __future__ import annotations

import click

from bnnmilp.cli.common import OUTPUT_DIR, PARALLEL, json_option, scheduler_option


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, callback=OUTPUT_DIR, type=click.Path(file_okay=False),
              help="Results folder.")
@click.option("--workers", type=PARALLEL, default=1, show_default=True,
              help="Local worker processes (or Dask workers with --scheduler local).")
@scheduler_option("Dask: 'local' starts a LocalCluster, tcp://HOST:PORT joins a cluster "
                                  "(pip install 'bnnmilp[dask]').")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a job lost with its worker.")
@json_option
def command(sweep_file: str, output: str, workers: int, scheduler: str | None, retries: int, as_json: bool) -> None:
    """Train every point of a grid (SWEEP_FILE, YAML) as independent jobs; write a table and a plot.

    Results are written per job (OUTPUT/jobs/KEY.json, keyed by a hash of the job's inputs): a rerun
    skips finished jobs and resumes; a failing job records its error and the others go on. Writes
    OUTPUT/results.csv, results.md and plot.png (test accuracy against training time).

    \b
    Example sweep file (samples/sweep_k.yaml):
      spec: ../configs/digits.yaml
      data: ../samples/digits_k{k}.yaml
      test: ../samples/digits_test.yaml
      grid: {k: [1, 2], training.seed: [0, 1], solver.time_limit: [10]}

    \b
    Example:
      bnnmilp sweep samples/sweep_k.yaml -o out --workers 2 --json | python -m json.tool
    """
    from pathlib import Path

    from bnnmilp.cli import terminal
    from bnnmilp.execution.jobs import execute
    from bnnmilp.execution.sweep import load_sweep, plot_results, write_results

    jobs, points = load_sweep(sweep_file)
    out = Path(output)
    with terminal.sample_progress(len(jobs), "jobs") as advance:
        records = execute(jobs, out, workers=workers, scheduler=scheduler, retries=retries, on_done=advance)
    rows = write_results(out, records, points)
    png = plot_results(out, rows)
    failed = sum(1 for r in records if not r["ok"])
    summary = {"jobs": len(jobs), "cached": sum(1 for r in records if r.get("cached")), "failed": failed,
               "results": str(out / "results.csv"), "plot": str(png) if png else None}
    if as_json:
        terminal.emit_json({**summary, "rows": rows})
    else:
        terminal.table("sweep", list(summary.items()))
    if failed:
        raise SystemExit(1)
