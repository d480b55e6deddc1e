"""Options and loaders shared by several commands."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object on stdout.")


def load_inputs(network: str, data: str):
    """Read and validate a spec and a data set that must fit it."""
    from bnnmilp.data import load_data
    from bnnmilp.spec import load_spec

    spec = load_spec(network)
    ds = load_data(data)
    ds.check_fits(spec.network.n_inputs, spec.network.n_outputs)
    return spec, ds
