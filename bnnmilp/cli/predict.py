from __future__ import annotations

import click

from bnnmilp.cli.common import OUTPUT_FILE, json_option, one_stdout


@click.command("predict")
@click.argument("weights", type=click.Path())
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("-o", "--output", callback=OUTPUT_FILE, type=click.Path(dir_okay=False),
              help="Write per-sample predictions as CSV ('-': standard output).")
@json_option
def command(weights: str, data: str, output: str | None, as_json: bool) -> None:
    """Predict the classes of DATA with WEIGHTS and report accuracy (a CSV table on stdout, or -o FILE).

    Two readings of the output bits: exact match (the bits equal the one-hot
    code of a class, else no prediction, -1) and argmax (the class with the
    largest output score a_k - lambda_k, decided exactly; ties count as wrong).
    WEIGHTS or DATA may be '-' (standard input).

    \b
    Example:
      bnnmilp predict runs/k1 - -o - < samples/digits_test.yaml | cut -d, -f3 | sort | uniq -c
    """
    import numpy as np

    from bnnmilp.cli import terminal
    from bnnmilp.data import load_data
    from bnnmilp.io.runs import load_weights
    from bnnmilp.io.yamlio import write_text_atomic
    from bnnmilp.network import exact_match_predictions
    from bnnmilp.network.ensemble import EnsembleFile

    one_stdout(as_json, output=output)
    wf = load_weights(weights)
    ds = load_data(data)
    if isinstance(wf, EnsembleFile):  # one-vs-one vote: both readings are the vote
        ds.check_fits(wf.members[0].spec.network.n_inputs, wf.n_classes)
        exact = arg = wf.predict(ds.features)
        bits = [np.eye(wf.n_classes, dtype=np.int8)[exact]]
    else:
        ds.check_fits(wf.spec.network.n_inputs, wf.spec.network.n_outputs)
        bits = wf.network.forward(ds.features)
        exact = exact_match_predictions(bits[-1])
        arg = wf.network.argmax_predictions(ds.features, bits)
    rule = "argmax" if not isinstance(wf, EnsembleFile) and wf.spec.network.output == "argmax" else "bits"
    pred = arg if rule == "argmax" else exact
    acc_exact = float(np.mean(exact == ds.labels))
    acc_arg = float(np.mean(arg == ds.labels))
    lines = ["index,label,prediction,argmax_prediction,bits"]  # prediction: by the network's output rule
    lines += [f"{i},{y},{p},{a},{''.join(map(str, b))}"
              for i, (y, p, a, b) in enumerate(zip(ds.labels, pred, arg, bits[-1], strict=True))]
    if output:
        write_text_atomic(output, "\n".join(lines) + "\n")
    result = {"samples": ds.n_samples, "output": rule, "accuracy": acc_arg if rule == "argmax" else acc_exact,
              "accuracy_exact_match": acc_exact, "accuracy_argmax": acc_arg,
              "predictions": pred.tolist(), "exact_match_predictions": exact.tolist(),
              "argmax_predictions": arg.tolist()}
    if as_json:
        terminal.emit_json(result)
    else:
        if not output:  # the table is the data: CSV on stdout
            click.echo("\n".join(lines))
        readings = [(acc_exact, "exact match"), (acc_arg, "argmax")]  # the network's own rule first
        first, other = readings[::-1] if rule == "argmax" else readings
        terminal.status(f"{ds.n_samples} samples: accuracy {first[0]:.4f} ({first[1]}), {other[0]:.4f} ({other[1]})")
