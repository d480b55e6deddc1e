from __future__ import annotations

import click

from bnnmilp.cli.common import json_option


@click.command("verify")
@click.argument("weights", type=click.Path())
@click.argument("data", type=click.Path(dir_okay=False))
@json_option
def command(weights: str, data: str, as_json: bool) -> None:
    """Check every claim of WEIGHTS (a weights.yaml or a run folder) on DATA, in exact arithmetic.

    Recomputes the forward pass with rational arithmetic where floating point
    cannot decide a bit, and checks: weights and thresholds lie in their
    domain; DATA is the training data (sha256); the recorded training loss
    equals the exact loss; the solver's bound does not exceed it; the
    recorded smallest margin slack is exact.

    Exit status 0 when every claim holds, 1 when one is false, 2 on bad input.
    """
    from bnnmilp.cli import terminal
    from bnnmilp.data import load_data
    from bnnmilp.runs import load_weights
    from bnnmilp.verify import verify_weights

    wf = load_weights(weights)
    ds = load_data(data)
    report = verify_weights(wf, ds)
    if as_json:
        terminal.emit_json(report)
    else:
        mark = {True: "[green]ok[/]", False: "[red]FALSE[/]", None: "[dim]n/a[/]"}
        for c in report["checks"]:
            terminal.err.print(f"{mark[c['ok']]:>14}  {c['name']:<7} {c['detail']}")
        terminal.err.print(f"exact {report['loss']} loss {report['exact_loss']}, accuracy {report['accuracy']:.4f}, "
                           f"min slack {report['min_slack_float']:.6g}")
        terminal.err.print("[green]all claims hold[/]" if report["ok"] else "[red]a claim is false[/]")
    if not report["ok"]:
        raise SystemExit(1)
