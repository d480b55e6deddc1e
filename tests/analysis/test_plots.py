"""Figures: what they show (text in SVG, colours in PNG), the format from the extension, unknown ones refused."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("matplotlib")

from bnnmilp.analysis import plots
from bnnmilp.cli import main
from bnnmilp.errors import InputError


def test_heat_maps_have_a_colour_bar_titles_and_colour(tmp_path):
    rng = np.random.default_rng(0)
    S = rng.normal(size=(3, 16)) * (rng.random((3, 16)) < 0.5)
    svg = plots.heatmaps(tmp_path / "h.svg", S, [4, 7, 1], "d(loss)/d(pixel)", "sensitivity").read_text()
    for text in ("sample 0, label 4", "sample 2, label 1", "d(loss)/d(pixel)", "sensitivity"):
        assert text in svg
    from PIL import Image

    png = np.asarray(Image.open(plots.heatmaps(tmp_path / "h.png", S, [4, 7, 1], "t", "s")).convert("RGB"), int)
    red = (png[:, :, 0] - png[:, :, 2] > 60).sum()
    blue = (png[:, :, 2] - png[:, :, 0] > 60).sum()
    assert red > 50 and blue > 50  # both signs drawn in colour, not a flat grey
    assert plots.heatmaps(tmp_path / "h.pdf", S, [4, 7, 1], "t", "s").read_bytes()[:4] == b"%PDF"


def test_value_function_and_sweep_plots_label_what_they_show(tmp_path):
    class Dual:
        b0 = 0.5

        def __call__(self, b):
            return abs(b) / 2

    svg = plots.value_function(tmp_path / "v.svg", [-1.0, 0.0, 1.0], [1.0, 0.0, 0.5], Dual(), "b").read_text()
    for text in ("right-hand side b of row b", "optimal value (minimisation)", "value function z(b)",
                 "dual function F of the tree at b0 = 0.5"):
        assert text in svg
    svg = plots.accuracy_against_time(tmp_path / "s.svg", [(1.0, 0.5, "k=1, seed=0"), (2.0, 0.7, "k=2, seed=0")]
                                      ).read_text()
    for text in ("k=1, seed=0", "k=2, seed=0", "training time (s)", "test exact-match accuracy (%)"):
        assert text in svg


def test_unknown_picture_formats_are_refused_before_any_work(repo_root, tmp_path):
    with pytest.raises(InputError, match="jpg"):
        plots.plot_format(tmp_path / "x.jpg")
    r = CliRunner().invoke(main, ["value-function", str(repo_root / "samples/guzelsoy_ralphs.lp"), "--row", "b",
                                  "--from", "-1", "--to", "1", "--plot", str(tmp_path / "x.jpg")])
    assert r.exit_code == 2 and "unknown picture format 'jpg'" in r.stderr and not (tmp_path / "x.jpg").exists()
