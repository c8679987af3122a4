"""Plot mapping tables: each city's curve from its local scale to the alliance scale.

Drawn with matplotlib's Agg canvas on a bare ``Figure`` (no pyplot, no display, no
global state touched), and returned as PNG bytes for the caller to write.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mappings import AllianceScale, MappingTable

__all__ = ["cjk_font", "render_curves"]

# Fonts that carry Chinese glyphs, tried in order; scale names such as 白鹭分 are
# written only when one is installed (DejaVu Sans, matplotlib's own, has none).
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
)
_MAIN_HEIGHT = 5.2  # inches
_RULER_HEIGHT = 0.36
_WIDTH = 10.5
_Z_SE = 1.96  # a 95% band under normality


def cjk_font() -> str | None:
    """The first installed font that carries Chinese glyphs, or None (matplotlib then
    draws boxes for them)."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FONTS if name in installed), None)


def _positions(table: MappingTable) -> npt.NDArray[np.float64]:
    """Each knot's position on its local scale, 0 at the lowest point and 1 at the highest."""
    local = np.array([knot[0] for knot in table.knots], dtype=np.float64)
    return np.asarray((local - local[0]) / (local[-1] - local[0]), dtype=np.float64)


def _ruler_ticks(table: MappingTable) -> tuple[list[float], list[str]]:
    """Ticks for a city's own ruler: its grades, or round numbers plus its min and max."""
    scale = table.local_scale
    if scale.labels is not None:
        return list(np.linspace(0, 1, scale.size)), list(scale.labels)
    span = scale.max - scale.min
    inner = MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]).tick_values(scale.min, scale.max)
    values = [scale.min]
    values += [v for v in inner if scale.min + 0.05 * span < v < scale.max - 0.05 * span]
    values.append(scale.max)
    return [(v - scale.min) / span for v in values], [f"{v:g}" for v in values]


def _title(table: MappingTable, with_names: bool) -> str:
    city = table.city.replace("-", " ").replace("_", " ").title()
    scale = table.local_scale
    name = scale.name if with_names or scale.name.isascii() else ""
    extent = (
        f"{scale.labels[0]}…{scale.labels[-1]}"
        if scale.labels is not None
        else f"{scale.min:g}–{scale.max:g}"
    )
    return f"{city}  {name} {extent}".replace("  ", " ", 1) if name else f"{city}  {extent}"


def _band_guides(axes: Axes, scale: AllianceScale) -> None:
    lowers = [band.lower for band in scale.bands] + [scale.max + 1]
    for index, band in enumerate(scale.bands):
        low, high = lowers[index], lowers[index + 1] - 1
        if index:
            axes.axhline(low, color="0.45", linewidth=0.8, linestyle=(0, (4, 3)), zorder=1)
        if index % 2:
            axes.axhspan(low, high + 1, color="0.93", zorder=0, linewidth=0)
        label = f"{band.name.replace('_', ' ')}\n{low}–{high}" if high - low < 120 else band.name
        if index == 0:
            label = f"{band.name}\n< {lowers[1]}"
        elif index == len(scale.bands) - 1:
            label = f"{band.name}\n≥ {low}"
        axes.text(
            1.01,
            (low + min(high, scale.max)) / 2,
            label,
            transform=axes.get_yaxis_transform(),
            va="center",
            ha="left",
            fontsize=8,
            color="0.3",
            linespacing=1.0,
        )


def render_curves(tables: Sequence[MappingTable], scale: AllianceScale) -> bytes:
    """A PNG of every table's curve against the alliance scale.

    x: position on each city's local scale (from its lowest score or grade to its
    highest), with one ruler per city underneath in its own units; y: the unrounded
    alliance equivalent (the knots, joined as the table interpolates them), shaded
    +-1.96 standard errors where the table carries them; dashed guides at the alliance
    band boundaries, named on the right.
    """
    cjk = cjk_font()
    families = ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]
    with mpl.rc_context({"font.family": families, "font.size": 9.5}):
        return _render(tables, scale, with_names=cjk is not None)


def _render(tables: Sequence[MappingTable], scale: AllianceScale, *, with_names: bool) -> bytes:
    count = len(tables)
    figure = Figure(
        figsize=(_WIDTH, _MAIN_HEIGHT + 0.55 + _RULER_HEIGHT * count), layout="constrained"
    )
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(
        count + 1, 1, height_ratios=[_MAIN_HEIGHT] + [_RULER_HEIGHT] * count, hspace=0
    )
    axes = figure.add_subplot(grid[0])
    colours = mpl.color_sequences["tab10"]

    _band_guides(axes, scale)
    for index, table in enumerate(tables):
        colour = colours[index % len(colours)]
        x = _positions(table)
        y = np.array([knot[1] for knot in table.knots])
        se = np.array([np.nan if knot[2] is None else knot[2] for knot in table.knots])
        if np.any(np.isfinite(se)):
            axes.fill_between(
                x, y - _Z_SE * se, y + _Z_SE * se, color=colour, alpha=0.22, linewidth=0, zorder=2
            )
        graded = table.local_scale.labels is not None
        axes.plot(
            x,
            y,
            color=colour,
            linewidth=1.8,
            linestyle=(0, (1.5, 1.5)) if graded else "-",
            marker="o" if graded else None,
            markersize=5,
            label=_title(table, with_names),
            zorder=3,
        )
        if graded:
            last = len(x) - 1
            for point, (position, value) in enumerate(zip(x, y, strict=True)):
                axes.annotate(
                    table.local_scale.labels[point],  # type: ignore[index]
                    (position, value),
                    xytext=(0, 7),
                    textcoords="offset points",
                    ha="left" if point == 0 else "right" if point == last else "center",
                    fontsize=8,
                    fontweight="bold",
                    color=colour,
                )

    axes.set_xlim(0, 1)
    axes.set_ylim(scale.min, scale.max)
    axes.set_yticks(np.arange(scale.min, scale.max + 1, 100))
    axes.set_xticks(np.linspace(0, 1, 11))
    axes.tick_params(axis="x", labelbottom=False, length=0)
    axes.grid(True, axis="x", color="0.88", linewidth=0.6, zorder=0)
    axes.set_ylabel(f"alliance score ({scale.min}–{scale.max})")
    figure.suptitle(
        "Mapping tables: each city's local score against the alliance scale",
        x=0.01,
        ha="left",
        fontsize=12,
        fontweight="bold",
    )
    axes.set_title(
        "equipercentile link to the alliance reference distribution (normal, "
        f"mean {scale.mean:g}, sd {scale.sd:g}); shaded: ±1.96 standard errors",
        loc="left",
        fontsize=8.5,
        color="0.35",
    )
    axes.legend(loc="upper left", frameon=True, framealpha=0.92, fontsize=9)
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)

    for index, table in enumerate(tables):
        colour = colours[index % len(colours)]
        ruler = figure.add_subplot(grid[index + 1])
        positions, labels = _ruler_ticks(table)
        ruler.set_xlim(0, 1)
        ruler.set_xticks(positions, labels)
        ruler.tick_params(axis="x", colors=colour, labelsize=8, length=3, pad=1.5)
        ruler.set_yticks([])
        for spine in ("top", "left", "right"):
            ruler.spines[spine].set_visible(False)
        ruler.spines["bottom"].set_color(colour)
        ruler.text(
            -0.012,
            0,
            _title(table, with_names).split("  ")[0],
            transform=ruler.transAxes,
            ha="right",
            va="center",
            color=colour,
            fontsize=9,
            fontweight="bold",
        )
        ruler.patch.set_alpha(0)
    figure.axes[-1].set_xlabel(
        "position on each city's own scale, from its lowest score (or grade) to its highest"
    )

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130, metadata={"Software": None})
    return buffer.getvalue()
