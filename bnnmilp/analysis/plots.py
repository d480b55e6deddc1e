"""Figures (matplotlib, an optional dependency imported lazily): the format follows the file's extension.

Every figure has labelled axes, a colour bar or a legend where colours or marks carry meaning, and a
layout that keeps titles and labels inside the picture (constrained layout, tight bounding box).
Text stays text in SVG, so a figure can be searched and checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("png", "svg", "pdf")


def plot_format(path: str | Path) -> str:
    """png, svg or pdf from the extension (standard output: png); anything else is bad input."""
    from bnnmilp.errors import InputError

    if str(path) == "-":
        return "png"
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise InputError(str(path), None, f"unknown picture format {ext!r}: use a .png, .svg or .pdf file")
    return ext


def pyplot() -> Any:
    from bnnmilp.errors import BnnMilpError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BnnMilpError("plots need matplotlib: pip install 'bnnmilp[plot]'") from None
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text
    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` atomically in the format of ``path``'s extension, then close it."""
    from bnnmilp.io.yamlio import atomic_write

    fmt = plot_format(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight"))
    finally:
        pyplot().close(fig)
    return Path(path)


def heatmaps(path: str | Path, S: np.ndarray, labels: Sequence[int], title: str, what: str) -> Path:
    """One square heat map per row of S (d0 = n * n features), on one symmetric colour scale with a colour
    bar; each panel titled with its sample and label."""
    plt = pyplot()
    m, d0 = S.shape
    side = round(d0**0.5)
    cols = min(10, m)
    rows = -(-m // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols + 1.2, 1.6 * rows + 0.8), squeeze=False,
                             layout="constrained")
    lim = float(np.abs(S).max()) or 1.0
    image = None
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < m:
            image = ax.imshow(S[i].reshape(side, side), cmap="coolwarm", vmin=-lim, vmax=lim)
            ax.set_title(f"sample {i}, label {labels[i]}", fontsize=7)
        else:
            ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=what)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def value_function(path: str | Path, betas: Sequence[float], z: Sequence[float | None], F: Any, row: str) -> Path:
    """z(b) along one row's right-hand side, and the dual function F of a tree where given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    ax.plot(betas, [v if v is not None else float("nan") for v in z], "o-", label="value function z(b)")
    if F is not None:
        fine = np.linspace(betas[0], betas[-1], 400)
        ax.plot(fine, [F(b) for b in fine], "-", label=f"dual function F of the tree at b0 = {F.b0:g}")
        ax.axvline(F.b0, color="grey", lw=0.5)
    ax.set_xlabel(f"right-hand side b of row {row}")
    ax.set_ylabel("optimal value (minimisation)")
    ax.set_title(f"Value function along row {row}")
    ax.legend()
    return save(fig, path)


def accuracy_against_time(path: str | Path, points: Sequence[tuple[float, float, str]]) -> Path:
    """Test accuracy against training time, every point labelled with its configuration."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    ax.scatter([p[0] for p in points], [100 * p[1] for p in points])
    for t, acc, name in points:
        ax.annotate(name, (t, 100 * acc), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test exact-match accuracy (%)")
    ax.set_title("Sweep: accuracy against training time")
    return save(fig, path)


def image_shape(source: dict[str, Any] | None, d0: int) -> tuple[int, ...] | None:
    """How the d0 inputs form an image: an imported model's input shape (H, W; C, H, W; or H, W, C, with C 1
    or 3) or, for any network, a square of side sqrt(d0); None when they do not."""
    shape = list((source or {}).get("input_shape") or [])
    if len(shape) == 2 or (len(shape) == 3 and (shape[0] in (1, 3) or shape[-1] in (1, 3))):
        return tuple(int(s) for s in shape)
    side = round(d0**0.5)
    return (side, side) if side * side == d0 and side > 1 else None


def _as_image(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A flattened input (C order) as H x W or H x W x 3, channels last."""
    img = x.reshape(shape)
    if img.ndim == 3:
        img = np.moveaxis(img, 0, -1) if shape[0] in (1, 3) and shape[-1] not in (1, 3) else img
        img = img[..., 0] if img.shape[-1] == 1 else img
    return img


COUNTEREXAMPLES_SHOWN = 12


def counterexamples(path: str | Path, originals: np.ndarray, perturbed: np.ndarray, titles: Sequence[str],
                    shape: tuple[int, ...]) -> Path:
    """One row per counterexample (at most COUNTEREXAMPLES_SHOWN): the original input, the counterexample,
    and the change x' - x on a symmetric colour scale (unchanged pixels white), with a colour bar."""
    plt = pyplot()
    n = min(len(originals), COUNTEREXAMPLES_SHOWN)
    fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.1 * n + 0.6), squeeze=False, layout="constrained")
    lo, hi = float(min(originals[:n].min(), perturbed[:n].min())), float(max(originals[:n].max(),
                                                                              perturbed[:n].max()))
    span = (hi - lo) or 1.0
    change = perturbed[:n] - originals[:n]
    lim = float(np.abs(change).max()) or 1.0
    image = None
    for i in range(n):
        for j, (x, name) in enumerate(((originals[i], "original"), (perturbed[i], "counterexample"))):
            img = _as_image(x, shape)
            ax = axes[i, j]
            if img.ndim == 3:
                ax.imshow((img - lo) / span)
            else:
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(f"{titles[i]}: {name}", fontsize=7)
        diff = _as_image(change[i], shape)
        diff = diff.sum(axis=-1) if diff.ndim == 3 else diff
        image = axes[i, 2].imshow(diff, cmap="coolwarm", vmin=-lim, vmax=lim)
        axes[i, 2].set_title(f"changed: {int(np.count_nonzero(change[i]))} inputs", fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(image, ax=axes[:, 2].tolist(), shrink=0.8, label="x' - x")
    fig.suptitle(f"Counterexamples ({n} of {len(originals)} shown)", fontsize=10)
    return save(fig, path)
