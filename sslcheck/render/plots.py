"""The report's plots: one function per plot, each drawing a `Result`'s arrays into a new Figure.

No pyplot (no global figure registry, no interactive backend): every Figure gets an Agg canvas, so
plotting works headless and never touches pyplot state. Every function returns its Figure, and the
artists that carry data have a `gid` naming the array they show, so a test can read a plot back:
`line_data(fig, "za.eigenvalues")` is exactly `diagnostics.za.eigenvalues` of `scores.json`.

Output is deterministic: fixed seeds (the per-batch jitter), `svg.hashsalt` for SVG ids, glyphs as
paths, and no dates or software versions in the PNG / SVG metadata (`figure_bytes`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sslcheck.render.sections import batch_text
from sslcheck.result import LossResult, Result

MAX_HEATMAP = 256  # cross-correlation cells per side; larger D is block-averaged down to this
COSINE_BINS = np.linspace(-1.0, 1.0, 81)
MAX_POINTS = 400  # per-batch values drawn as points per panel (the box and range always show all)
PANEL_COLUMNS = 4
WIDTH_IN, DPI = 11.0, 110  # 1210 px wide PNGs: sharp at 1200 px, one panel per row still readable
VIEW_COLOR = {"za": "C0", "zb": "C1"}
RC: Any = {  # matplotlib types rcParams keys as Literals: Any spares a cast per call
    "font.size": 10,
    "axes.titlesize": 10,
    "figure.titlesize": 12,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 9,
    "svg.hashsalt": "sslcheck",
    "svg.fonttype": "path",
}
METADATA: dict[str, dict[str, Any]] = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}

# Report order: file stem -> (title, what the plot shows: the caption in report.html / report.md).
PLOTS: dict[str, tuple[str, str]] = {
    "spectrum": (
        "Covariance spectrum",
        "Covariance eigenvalues of each view, descending (log scale). A healthy spectrum decays slowly; "
        "a cliff after r eigenvalues means the embeddings span only about r dimensions.",
    ),
    "spectrum_loglog": (
        "Spectrum decay and alpha-ReQ fit",
        "The same eigenvalues on log-log axes with the alpha-ReQ power-law fit λ_k ≈ C·k^-α over the "
        "fitted range of k (dashed).",
    ),
    "dimension_std": (
        "Per-dimension standard deviation",
        "Per-dimension standard deviation, sorted descending, with the VICReg variance hinge γ and the "
        "1/√D level that unit-norm rows spread evenly over all dimensions would show.",
    ),
    "cross_correlation": (
        "Cross-correlation of the views",
        "Correlation of every za dimension with every zb dimension on a fixed [-1, 1] colour scale. "
        "Barlow Twins drives it to the identity: a dark red diagonal, a pale rest.",
    ),
    "cosines": (
        "Positive vs random pair cosines",
        "Cosine similarity of positive pairs (the two views of one sample) and of random pairs (views of "
        "different samples). Healthy: positives near 1, random pairs near 0, little overlap.",
    ),
    "per_batch_losses": (
        "Per-batch loss terms",
        "Per-batch values of each loss term: points are batches, the bar spans min..max, the box the "
        "quartiles, ◆ the mean; the dashed line is the whole-set value.",
    ),
}


@dataclass(frozen=True)
class PlotContext:
    """The settings every plot title carries."""

    n: int
    d: int
    batch_size: int
    flavor: str
    dtype: str
    drop_last: bool = True

    @classmethod
    def of(cls, result: Result) -> PlotContext:
        s = result.settings
        return cls(result.n, result.d, int(s["batch_size"]), str(s["flavor"]), str(s["dtype"]), bool(s["drop_last"]))

    def line(self, batches: bool = False) -> str:
        text = f"N = {self.n}, D = {self.d}"
        if batches:
            text += f", {batch_text(self.n, self.batch_size, self.drop_last)}"
        return f"{text}, flavor {self.flavor}, {self.dtype}"


@contextmanager
def plot_style() -> Iterator[None]:
    """The report's matplotlib settings, scoped (never changes the caller's rcParams)."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(
    height_in: float, width_in: float = WIDTH_IN, top_in: float = 0.75, left_in: float = 0.85, right_in: float = 0.15
) -> Figure:
    """A Figure on an Agg canvas with fixed margins in inches (a layout engine would re-measure the
    text on every save: 3x the time of drawing these figures)."""
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=left_in / width_in, right=1 - right_in / width_in, bottom=0.6 / height_in, top=1 - top_in / height_in
    )
    return fig


def figure_bytes(fig: Figure, fmt: Literal["png", "svg"]) -> bytes:
    """The figure as PNG or SVG bytes, the same bytes for the same figure (no dates, fixed ids)."""
    buf = io.BytesIO()
    with plot_style():
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=METADATA[fmt])
    return buf.getvalue()


def line_data(fig: Figure, gid: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the line with this gid, in any axes of `fig` (for tests and checks)."""
    for ax in fig.axes:
        for line in ax.lines:
            if line.get_gid() == gid:
                return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    raise KeyError(gid)


def _titles(fig: Figure, ax: Axes, title: str, context: str) -> None:
    fig.suptitle(title, fontweight="bold", y=1 - 0.1 / fig.get_figheight(), va="top")
    ax.set_title(context, fontsize=9, color="0.3")


def _ranks(d: int) -> np.ndarray:
    return np.arange(1, d + 1, dtype=np.float64)


def _log_y(ax: Axes, arrays: Mapping[str, np.ndarray]) -> None:
    """Log y where some eigenvalue is positive; else (zero covariance) say so on a linear axis."""
    if any(np.any(arrays[f"{view}.eigenvalues"] > 0) for view in ("za", "zb")):
        ax.set_yscale("log", nonpositive="mask")
    else:
        ax.text(
            0.5,
            0.5,
            "every eigenvalue is 0: constant embeddings",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="C3",
        )


def spectrum_plot(arrays: Mapping[str, np.ndarray], ctx: PlotContext) -> Figure:
    """Covariance eigenvalues lambda_k of za and zb against k, log y; zero eigenvalues are not drawn
    (the title counts them). Lines: gid `za.eigenvalues`, `zb.eigenvalues`."""
    fig = new_figure(5.0)
    ax = fig.add_subplot()
    zeros = []
    for view in ("za", "zb"):
        eig = arrays[f"{view}.eigenvalues"]
        ax.plot(_ranks(eig.size), eig, ".-", ms=3, lw=1, color=VIEW_COLOR[view], label=view, gid=f"{view}.eigenvalues")
        zeros.append(int(np.sum(eig <= 0)))
    _log_y(ax, arrays)
    ax.set_xlabel("k (eigenvalue rank)")
    ax.set_ylabel("covariance eigenvalue λ_k")
    ax.legend()
    note = f"; λ = 0 not shown (za {zeros[0]}, zb {zeros[1]} of {ctx.d})" if any(zeros) else ""
    _titles(fig, ax, "Covariance spectrum (whole set, log scale)", ctx.line() + note)
    return fig


def spectrum_loglog_plot(arrays: Mapping[str, np.ndarray], ctx: PlotContext) -> Figure:
    """log lambda_k against log k with the alpha-ReQ fit ln lambda_k = intercept - alpha ln k over its k.
    Lines: gid `za.eigenvalues`, `za.alpha_req_fit` (absent where alpha is undefined), same for zb."""
    fig = new_figure(5.0)
    ax = fig.add_subplot()
    for view in ("za", "zb"):
        eig, color = arrays[f"{view}.eigenvalues"], VIEW_COLOR[view]
        ax.plot(_ranks(eig.size), eig, ".", ms=4, color=color, label=f"{view} λ_k", gid=f"{view}.eigenvalues")
        k = arrays[f"{view}.alpha_req_k"]
        intercept, alpha = arrays[f"{view}.alpha_req_fit"]
        if k.size and math.isfinite(alpha):
            ax.plot(
                k,
                np.exp(intercept - alpha * np.log(k)),
                "--",
                lw=1.5,
                color=color,
                label=f"{view} fit α = {alpha:.3g} (k = {int(k[0])}..{int(k[-1])})",
                gid=f"{view}.alpha_req_fit",
            )
        else:
            ax.plot([], [], " ", label=f"{view}: alpha-ReQ undefined (< 3 nonzero eigenvalues)")
    ax.set_xscale("log")
    _log_y(ax, arrays)
    ax.set_xlabel("k (log)")
    ax.set_ylabel("λ_k (log)")
    ax.legend()
    _titles(fig, ax, "Spectrum decay with the alpha-ReQ fit (whole set, log-log)", ctx.line())
    return fig


def dimension_std_plot(arrays: Mapping[str, np.ndarray], ctx: PlotContext, gamma: float | None = None) -> Figure:
    """Per-dimension std (ddof 1) of each view sorted descending, with the VICReg hinge gamma (the
    variance term penalises std below it; 1 when vicreg is not selected) and 1/sqrt(D), the
    per-dimension std of unit-norm rows spread evenly over all D dimensions (compare `l2_std`).
    Lines: gid `za.std_sorted`, `zb.std_sorted`, `vicreg_gamma`, `inverse_sqrt_d`."""
    fig = new_figure(5.0)
    ax = fig.add_subplot()
    for view in ("za", "zb"):
        std = np.sort(arrays[f"{view}.std"])[::-1]
        ax.plot(_ranks(std.size), std, ".-", ms=3, lw=1, color=VIEW_COLOR[view], label=view, gid=f"{view}.std_sorted")
    hinge = 1.0 if gamma is None else gamma
    source = "vicreg gamma" if gamma is not None else "default; vicreg not selected"
    ax.axhline(hinge, ls="--", color="0.2", lw=1, label=f"VICReg hinge γ = {hinge:g} ({source})", gid="vicreg_gamma")
    level = 1.0 / math.sqrt(ctx.d)
    ax.axhline(
        level, ls=":", color="C3", lw=1.5, label=f"1/√D = {level:.3g} (unit-norm isotropic rows)", gid="inverse_sqrt_d"
    )
    top = max(hinge, level, *(float(np.max(arrays[f"{v}.std"], initial=0.0)) for v in ("za", "zb")))
    ax.set_ylim(0, 1.35 * top)  # headroom: the legend sits above the lines
    ax.set_xlabel("dimension, sorted by std")
    ax.set_ylabel("std (ddof 1)")
    ax.legend()
    _titles(fig, ax, "Per-dimension standard deviation (whole set, sorted)", ctx.line())
    return fig


def block_average(matrix: np.ndarray, max_side: int = MAX_HEATMAP) -> tuple[np.ndarray, int]:
    """`matrix` [R, C] averaged over f x f blocks, f = ceil(max(R, C) / max_side) (the last blocks
    may be smaller); returns (averaged, f), f = 1 leaves it unchanged. Averages keep the [-1, 1]
    range and show every entry, where striding would drop all but one in f^2."""
    f = max(1, math.ceil(max(matrix.shape) / max_side))
    if f == 1:
        return matrix, 1
    rows, cols = np.arange(0, matrix.shape[0], f), np.arange(0, matrix.shape[1], f)
    sums = np.add.reduceat(np.add.reduceat(matrix, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, matrix.shape[0])), np.diff(np.append(cols, matrix.shape[1])))
    return sums / counts, f


def cross_correlation_plot(arrays: Mapping[str, np.ndarray], ctx: PlotContext) -> Figure:
    """The D x D za-zb cross-correlation as a heatmap on a fixed [-1, 1] scale, block-averaged when
    D > 256. Image: gid `pair.cross_correlation` (the drawn, possibly averaged, matrix)."""
    corr, f = block_average(arrays["pair.cross_correlation"])
    fig = new_figure(6.6, 7.6, top_in=0.95, right_in=1.0)
    ax = fig.add_subplot()
    d_rows, d_cols = arrays["pair.cross_correlation"].shape
    image = ax.imshow(
        corr,
        cmap="RdBu_r",
        vmin=-1.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(0, d_cols, d_rows, 0),
        gid="pair.cross_correlation",
    )
    ax.grid(False)
    ax.set_xlabel("zb dimension")
    ax.set_ylabel("za dimension")
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, label="correlation")
    shown = (
        f"block-averaged over {f} x {f} dimensions ({corr.shape[0]} x {corr.shape[1]} cells)"
        if f > 1
        else "every dimension shown"
    )
    diagonal = float(np.mean(np.diag(arrays["pair.cross_correlation"])))
    _titles(fig, ax, "za-zb cross-correlation (whole set)", f"{ctx.line()}\n{shown}; mean diagonal {diagonal:.3g}")
    return fig


def cosine_plot(arrays: Mapping[str, np.ndarray], ctx: PlotContext) -> Figure:
    """Histograms of positive-pair and random-pair cosines over the diagnostics sample, on 80 fixed
    bins over [-1, 1]. Bars: gid `pair.positive_cosines`, `pair.random_cosines`."""
    fig = new_figure(5.0)
    ax = fig.add_subplot()
    pos, rnd = arrays["pair.positive_cosines"], arrays["pair.random_cosines"]
    for values, name, label, color in (
        (pos, "positive_cosines", "positive pairs (za_i, zb_i)", "C2"),
        (rnd, "random_cosines", "random pairs (za_i, zb_j)", "C7"),
    ):
        ax.hist(
            values,
            bins=COSINE_BINS.tolist(),
            histtype="stepfilled",
            alpha=0.55,
            color=color,
            edgecolor=color,
            label=f"{label}: mean {values.mean():.3g}, std {values.std():.3g}",
            gid=f"pair.{name}",
        )
    ax.set_xlim(-1, 1)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs per bin")
    ax.legend(loc="upper left")
    _titles(fig, ax, "Positive vs random pair cosines", f"{ctx.line()}; S = {pos.size} sampled pairs")
    return fig


def per_batch_plot(losses: Mapping[str, LossResult], ctx: PlotContext) -> Figure:
    """One panel per loss term: its per-batch values (points, jittered with a fixed seed; at most
    400 drawn), min..max bar, quartile box, mean, and the whole-set value (dashed). Points: gid
    `<loss>.<term>` (a collection whose x offsets are the values); whole-set line:
    `<loss>.<term>.whole_set`."""
    panels = [(name, term, loss) for name, loss in losses.items() for term in loss.per_batch_values]
    cols = max(1, min(PANEL_COLUMNS, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    height = 0.55 + 2.0 * rows
    fig = new_figure(height, top_in=0.95, left_in=0.2)
    fig.subplots_adjust(bottom=0.45 / height, hspace=0.75, wspace=0.12)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    rng = np.random.default_rng(0)
    counts = {len(loss.per_batch_values[term]) for _, term, loss in panels}
    for ax, (name, term, loss) in zip(axes, panels, strict=False):
        values = np.asarray(loss.per_batch_values[term], dtype=np.float64)
        whole = loss.whole_set.get(term)
        _batch_panel(ax, values, whole, rng, f"{name}.{term}", counted=len(counts) > 1)
        weight = loss.weights.get(term)
        ax.set_title(f"{name}.{term}" + (f" (weight {weight:g})" if weight is not None else ""))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    flavor = f"; flavor all: panels show {losses[next(iter(losses))].flavor}" if ctx.flavor == "all" and losses else ""
    fig.suptitle("Per-batch loss terms (unweighted)", fontweight="bold", y=1 - 0.1 / height, va="top")
    batches = f"; {counts.pop()} batches" if len(counts) == 1 else ""
    context = ctx.line(batches=True) + batches + flavor
    fig.text(0.5, 1 - 0.42 / height, context, ha="center", va="top", fontsize=9, color="0.3")
    return fig


def _batch_panel(
    ax: Axes, values: np.ndarray, whole: float | None, rng: np.random.Generator, gid: str, counted: bool
) -> None:
    ax.set_yticks([])
    ax.set_ylim(-1, 1)
    finite = values[np.isfinite(values)]
    if finite.size:
        q1, med, q3 = np.quantile(finite, [0.25, 0.5, 0.75])
        ax.hlines(0, finite.min(), finite.max(), color="0.35", lw=1.2, gid=f"{gid}.range")
        ax.barh(0, q3 - q1, left=q1, height=0.6, color="C0", alpha=0.25, edgecolor="C0")
        ax.vlines(med, -0.3, 0.3, color="C0", lw=1.5)
        ax.plot([finite.mean()], [0], "D", color="C0", ms=5, gid=f"{gid}.mean")
        shown = values[:MAX_POINTS]
        ax.scatter(shown, rng.uniform(-0.5, 0.5, shown.size), s=8, color="C0", alpha=0.6, lw=0, gid=gid)
        label = f"{values.size} batches" if counted else ""
        label += f" ({MAX_POINTS} drawn)" if values.size > MAX_POINTS else ""
        if label:
            ax.text(0.01, 0.97, label.strip(), ha="left", va="top", transform=ax.transAxes, fontsize=8, color="0.4")
    else:
        ax.text(0.5, 0.5, "no per-batch values", ha="center", va="center", transform=ax.transAxes, color="0.4")
    if whole is not None:
        ax.axvline(whole, ls="--", color="C3", lw=1.2, gid=f"{gid}.whole_set")
    ax.margins(x=0.08)  # points at the extremes stay whole
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))


def vicreg_gamma(result: Result) -> float | None:
    """The hinge gamma of the selected vicreg loss, None when vicreg is not selected."""
    vicreg = result.losses.get("vicreg")
    return None if vicreg is None else float(vicreg.params.get("gamma", 1.0))


def report_figures(result: Result) -> dict[str, Figure]:
    """Every report plot of `result`, keyed by file stem, in `PLOTS` order."""
    ctx = PlotContext.of(result)
    arrays = result.arrays
    with plot_style():
        return {
            "spectrum": spectrum_plot(arrays, ctx),
            "spectrum_loglog": spectrum_loglog_plot(arrays, ctx),
            "dimension_std": dimension_std_plot(arrays, ctx, vicreg_gamma(result)),
            "cross_correlation": cross_correlation_plot(arrays, ctx),
            "cosines": cosine_plot(arrays, ctx),
            "per_batch_losses": per_batch_plot(result.losses, ctx),
        }
