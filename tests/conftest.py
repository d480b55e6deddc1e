from __future__ import annotations

import numpy as np
import pytest

from bnnmilp.data import Dataset
from bnnmilp.spec import parse_spec


@pytest.fixture(autouse=True, scope="session")
def _own_model_cache(tmp_path_factory):
    """Imported models are cached in a folder of this test run, not in the user's ~/.cache (subprocesses
    inherit the variable)."""
    import os

    old = os.environ.get("BNNMILP_CACHE_DIR")
    os.environ["BNNMILP_CACHE_DIR"] = str(tmp_path_factory.mktemp("model_cache"))
    yield
    if old is None:
        os.environ.pop("BNNMILP_CACHE_DIR", None)
    else:
        os.environ["BNNMILP_CACHE_DIR"] = old


def grid_instance(seed: int, layers: list[int], m: int, grid: int = 8) -> Dataset:
    """Random inputs on a grid of 1/grid in [-1, 1] (dyadic: float arithmetic is exact) and random labels."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-grid, grid + 1, size=(m, layers[0])) / grid
    n_classes = 2 if layers[-1] == 1 else layers[-1]
    y = rng.integers(0, n_classes, size=m)
    return Dataset(X.astype(np.float64), y.astype(np.int64), f"grid-{seed}")


def make_spec(layers, weights="continuous", thresholds="learned", loss="hamming", eps=0.0625, big_m="tight",
              polish="min", time_limit=60.0, solver="highs", method="milp"):
    """A spec for the MILP's tests: the paper's method unless another is asked for (the default is lns)."""
    return parse_spec({
        "network": {"layers": list(layers), "weights": weights, "thresholds": thresholds},
        "training": {"loss": loss, "epsilon": eps, "big_m": big_m, "polish": polish, "method": method},
        "solver": {"name": solver, "time_limit": time_limit, "mip_gap": 0.0, "threads": 1},
    })


@pytest.fixture(scope="session")
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def gr(repo_root):
    """The Guzelsoy-Ralphs value-function example as a standard-form model."""
    from bnnmilp.milp.backends import highs

    return highs.read(repo_root / "samples/guzelsoy_ralphs.lp")


def wait_until_solving(proc) -> str:
    """Read a training process's stderr (plain progress) until the solver has started; returns what was read.
    Signal tests wait for this event instead of sleeping for a while."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "solving stage" in line:
            break
    return "".join(seen)
