"""Pictures of what statements compute: the k-mer spectrum with its model, a heatmap of the sets'
Jaccard indexes, the sets' principal components, Nx curves of assemblies.

Drawn with matplotlib's Agg canvas (never a display, never pyplot's global backend: a program
that embeds rayscript keeps its own), as PNG, SVG or PDF by the file's extension, 900 x 600 pixels
(9 x 6 inches at 100 dots per inch).  matplotlib and scipy are the optional extra ``rayscript[plot]``;
without them :class:`NoPlotting` says so in one sentence, and the statement still gives its numbers.
The statements give the numbers; this module only draws them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .errors import ScriptError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
WIDTH, HEIGHT, DPI = 9.0, 6.0, 100  # inches, dots per inch: 900 x 600 pixels
EXTRA = "rayscript[plot]"


class NoPlotting(ScriptError):
    """matplotlib (or scipy) is not installed: drawing needs the extra."""


def picture_format(path: str) -> str | None:
    """'png', 'svg' or 'pdf' when ``path`` names a picture by its extension (any case), else None."""
    return FORMATS.get(os.path.splitext(path)[1].lower())


def missing(what: str = "matplotlib") -> str:
    return f"drawing needs {what}, which comes with the extra {EXTRA}: pip install '{EXTRA}'"


def _figure() -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NoPlotting(missing()) from None
    return Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: str) -> None:
    """Write the picture whole, through a temporary name (a failure leaves the old file)."""
    fmt = picture_format(path) or "png"
    tmp = f"{path}.part{os.getpid()}"
    try:
        fig.savefig(tmp, format=fmt, dpi=DPI)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ScriptError(f"cannot write {path}: {exc.strerror}") from None


def _note(ax: Axes, lines: Sequence[str]) -> None:
    ax.text(0.98, 0.97, "\n".join(lines), transform=ax.transAxes, ha="right", va="top", fontsize=9,
            multialignment="left", family="monospace",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "#999"})


def spectrum(path: str, counts: npt.ArrayLike, numbers: npt.ArrayLike, title: str, notes: Sequence[str],
             threshold: int, model: Any = None) -> None:
    """The histogram on log axes, the model's curve (``model.curve``, ``model.error_tail``) where
    there is one, the threshold as a vertical line, and the estimates in a box."""
    fig = _figure()
    ax = fig.add_subplot()
    c = np.asarray(counts, np.float64)
    n = np.asarray(numbers, np.float64)
    keep = (c > 0) & (n > 0)
    c, n = c[keep], n[keep]
    ax.plot(c, n, ".", color="#1f5fa8", markersize=3, label="k-mers counted")
    if model is not None and getattr(model, "fitted", False):
        lo, hi = model.fitted_range
        x = np.arange(1, max(hi * 2, lo + 2), dtype=np.float64)
        genome = model.curve(x)
        fitted = x >= lo
        ax.plot(x[fitted], genome[fitted] + model.error_tail(x[fitted]), "-", color="#d2512b", linewidth=1.6,
                label=f"model ({'haploid' if model.ploidy == 1 else 'diploid'}), fitted from {lo}")
        ax.plot(x, genome, "--", color="#d2512b", linewidth=0.9, alpha=0.7, label="model: the genome's k-mers")
        peak = model.coverage
        for i in range(1, (model.ploidy or 1) + 1):
            ax.axvline(i * peak, color="#d2512b", linestyle=":", linewidth=0.8)
    ax.axvline(threshold, color="#2a9d5c", linestyle="-", linewidth=1.2,
               label=f"assemble's threshold (min_count={threshold})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if len(n):
        ax.set_ylim(max(0.5, float(n.min()) * 0.5), float(n.max()) * 3)
        ax.set_xlim(0.8, max(float(c.max()) * 1.2, 10.0))
    ax.set_xlabel("times a k-mer was counted")
    ax.set_ylabel("distinct k-mers")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=9)
    _note(ax, notes)
    _save(fig, path)


def cluster_order(distances: npt.NDArray[np.float64]) -> list[int]:
    """The leaves' order of an average-linkage clustering of a square distance matrix."""
    n = len(distances)
    if n < 3:
        return list(range(n))
    try:
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform
    except ImportError:
        raise NoPlotting(missing("scipy")) from None
    condensed = squareform(np.clip(distances, 0.0, None), checks=False)
    return [int(i) for i in leaves_list(linkage(condensed, method="average", optimal_ordering=True))]


def heatmap(path: str, labels: Sequence[str], matrix: npt.NDArray[np.float64], title: str) -> None:
    """A square matrix of Jaccard indexes, rows and columns in the order given, each cell written."""
    fig = _figure()
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0)
    n = len(labels)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="Jaccard index")
    ax.set_title(title)
    _save(fig, path)


def scatter(path: str, labels: Sequence[str], coords: npt.NDArray[np.float64], explained: Sequence[float],
            title: str) -> None:
    """The samples on their first two principal components, each named."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(coords[:, 0], coords[:, 1], s=60, color="#1f5fa8")
    for (x, y), label in zip(coords, labels):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=10)
    ax.axhline(0, color="#bbb", linewidth=0.8)
    ax.axvline(0, color="#bbb", linewidth=0.8)
    ax.set_xlabel(f"PC1 ({explained[0]:.1%} of the variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.1%} of the variance)")
    ax.set_title(title)
    ax.margins(0.2)
    _save(fig, path)


@dataclass
class Assembly:
    """One assembly's line of an Nx picture."""

    name: str
    lengths: npt.NDArray[np.int64]
    n50: int
    total: int
    nga50: int | None = None  # None: no reference given; 0: the aligned blocks never reach half of it


def nx_curve(lengths: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """QUAST's Nx curve as steps: for x from 0 to 100, the length of the contig at which the longest
    contigs reach x percent of the total."""
    desc = np.sort(np.asarray(lengths, np.int64))[::-1]
    if not len(desc):
        return np.zeros(2), np.zeros(2)
    reach = np.concatenate(([0.0], np.cumsum(desc) / desc.sum() * 100))
    xs = np.repeat(reach, 2)[1:-1]
    ys = np.repeat(desc.astype(np.float64), 2)
    return xs, ys


def nx(path: str, assemblies: Sequence[Assembly], title: str) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    for a in assemblies:
        xs, ys = nx_curve(a.lengths)
        legend = f"{a.name}: N50 {a.n50:,}, total {a.total:,}"
        if a.nga50 is not None:
            legend += f", NGA50 {a.nga50:,}" if a.nga50 else ", NGA50 -"
        ax.plot(xs, ys, linewidth=1.8, label=legend)
    ax.axvline(50, color="#bbb", linestyle=":", linewidth=0.8)
    ax.set_xlim(0, 100)
    ax.set_yscale("log")
    ax.set_xlabel("x (%): the longest contigs holding x% of the assembly's bases")
    ax.set_ylabel("Nx: the shortest of those contigs (bases)")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=9)
    _save(fig, path)
