"""Small pictures and tables for asset metadata (shown in the Dagster UI).

Where Dagster 1.13's UI shows markdown metadata: the asset's Overview → "Metadata" table
(latest materialization), the Events tab and each partition's detail render a markdown
value inline when it is shorter than 1000 characters, and as a "[Show Markdown]" link
opening a dialog otherwise; run logs always show the link. Its sanitizer keeps `data:`
image sources (and no CSP rule blocks them), so pictures travel inside the event —
nothing is written to disk or served, no host is involved.

Hence two pictures per chart:

- `chart_markdown`: the full matplotlib chart (Agg backend, no display needed) as a
  base64 PNG data-URI image, tens of KB: one click away behind "[Show Markdown]".
- `sparkline_markdown`: a tiny SVG sparkline plus a one-line caption, kept under the
  inline limit, so the Overview's metadata table shows a picture without a click.

Both return None when there is nothing to draw: callers then add no metadata entry.
`markdown_table` is the shared markdown preview table.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from dagster import MetadataValue

#: Figure width in inches and dots per inch: ~600 px wide, a few tens of KB per chart.
WIDTH_INCHES = 6.4
PANEL_HEIGHT_INCHES = 2.3
DPI = 90

#: The Dagster UI renders markdown metadata inline below this many characters
#: (MetadataEntry.tsx, `expandSmallValues`); longer values become a "[Show Markdown]" link.
UI_INLINE_MARKDOWN_LIMIT = 1000
SPARK_WIDTH, SPARK_HEIGHT = 300, 56
#: Named colours (no `#` to escape) and what the caption calls them, series by series.
SPARK_COLOURS = (("steelblue", "blue"), ("darkorange", "orange"), ("seagreen", "green"))
#: Sparkline caption line pointing at the full chart: callers put its `…_chart` entry right
#: after the sparkline's, so the link is the next row of the metadata table.
FULL_CHART_HINT = "full chart: [Show Markdown] below"


@dataclass(frozen=True)
class Series:
    """One line (or bar series) of a panel: `points` are (x, y) pairs, x dates/times."""

    label: str
    points: Sequence[tuple[Any, float | None]]
    kind: str = "line"  # "line" or "bar"
    linestyle: str = "-"


@dataclass(frozen=True)
class Panel:
    """One axes of a chart; the panels of a chart are stacked and share nothing."""

    title: str
    series: Sequence[Series] = field(default_factory=list)
    ylabel: str = ""


def _has_points(panels: Sequence[Panel]) -> bool:
    return any(s.points for p in panels for s in p.series)


def chart_png(title: str, panels: Sequence[Panel]) -> bytes:
    """The chart as PNG bytes (stacked panels, one legend each)."""
    # The Agg canvas directly, no pyplot: no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [p for p in panels if any(s.points for s in p.series)]
    fig = Figure(figsize=(WIDTH_INCHES, PANEL_HEIGHT_INCHES * max(len(panels), 1) + 0.4))
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(max(len(panels), 1), 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=False):
        bars = [s for s in panel.series if s.kind == "bar"]
        for s in panel.series:
            xs = [x for x, _ in s.points]
            ys = [float(y) if y is not None else float("nan") for _, y in s.points]
            if s.kind == "bar":
                width = _bar_width(xs) / max(len(bars), 1)
                ax.bar(xs, ys, width=width, label=s.label, alpha=0.8)
            else:
                ax.plot(xs, ys, s.linestyle, label=s.label, linewidth=1.4, marker=".")
        ax.set_title(panel.title, fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(panel.series) > 1 or panel.series[0].label:
            ax.legend(fontsize=7, loc="upper left", ncols=min(len(panel.series), 4))
        for label in ax.get_xticklabels():
            label.set_rotation(30)
            label.set_horizontalalignment("right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.set_dpi(DPI)
    canvas.draw()
    # A 64-colour palette PNG: a third of the RGBA size, indistinguishable for line charts.
    from PIL import Image

    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    buf = io.BytesIO()
    image.convert("RGB").quantize(colors=64).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _bar_width(xs: Sequence[Any]) -> float:
    """Bar width in axis units: 0.8 of the smallest step between x values (days for dates;
    matplotlib counts dates in days, so an hourly series gets 1/24 × 0.8)."""
    from matplotlib.dates import date2num

    try:
        nums = sorted(set(date2num(list(xs))))
    except (TypeError, ValueError):
        return 0.8
    steps = [b - a for a, b in zip(nums, nums[1:], strict=False) if b > a]
    return 0.8 * (min(steps) if steps else 1.0)


def png_markdown(title: str, png: bytes) -> MetadataValue:
    """`![title](data:image/png;base64,…)` as markdown metadata."""
    alt = title.replace("[", "(").replace("]", ")")
    data = base64.b64encode(png).decode("ascii")
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def chart_markdown(title: str, panels: Sequence[Panel]) -> MetadataValue | None:
    """The chart as markdown metadata, or None when no series has a point."""
    if not _has_points(panels):
        return None
    return png_markdown(title, chart_png(title, panels))


def _x_number(x: Any) -> float:
    """A sortable number for an x value (dates and datetimes as POSIX seconds)."""
    if isinstance(x, datetime):
        return (x if x.tzinfo else x.replace(tzinfo=UTC)).timestamp()
    if isinstance(x, date):
        return datetime(x.year, x.month, x.day, tzinfo=UTC).timestamp()
    return float(x)


def _thin(points: Sequence[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    """At most `most` points, evenly picked, first and last kept."""
    if len(points) <= most:
        return list(points)
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def sparkline_svg(series: Sequence[Series], *, shared_scale: bool = True, most: int = 40) -> str:
    """A minimal SVG: one polyline per series (at most three), no axes or text. With
    `shared_scale` all series share one y range starting at zero (same unit: their sizes
    compare); else each spans its own min..max (different units or sizes: trends show)."""
    lines = []
    cleaned = [
        sorted((_x_number(x), float(y)) for x, y in s.points if y is not None)
        for s in series[: len(SPARK_COLOURS)]
    ]
    xs = [x for pts in cleaned for x, _ in pts]
    if not xs:
        return ""
    x0, x1 = min(xs), max(xs)
    all_ys = [y for pts in cleaned for _, y in pts]
    pad = 3
    for (colour, _), pts in zip(SPARK_COLOURS, cleaned, strict=False):
        if not pts:
            continue
        ys = [*all_ys, 0.0] if shared_scale else [y for _, y in pts]
        y0, y1 = min(ys), max(ys)
        coords = []
        for x, y in _thin(pts, most):
            px = pad + (x - x0) / ((x1 - x0) or 1) * (SPARK_WIDTH - 2 * pad)
            py = SPARK_HEIGHT - pad - (y - y0) / ((y1 - y0) or 1) * (SPARK_HEIGHT - 2 * pad)
            coords.append(f"{px:.0f},{py:.0f}")
        lines.append(
            f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' "
            f"points='{','.join(coords)}'/>"
        )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{SPARK_WIDTH}' height='{SPARK_HEIGHT}'>"
        f"<rect width='100%' height='100%' fill='white' stroke='lightgray'/>"
        + "".join(lines)
        + "</svg>"
    )


def sparkline_markdown(
    title: str, series: Sequence[Series], *, caption: Sequence[str] = (), shared_scale: bool = True
) -> MetadataValue | None:
    """An inline sparkline: `![title](data:image/svg+xml,…)`, then one short line per
    series (its colour, label and last value) and the `caption` lines, under
    UI_INLINE_MARKDOWN_LIMIT characters (fewer points are drawn until it fits). The UI's
    metadata cell is narrow and does not wrap: keep caption lines under ~40 characters.
    None when no series has a point or it cannot fit."""
    series = [s for s in series if any(y is not None for _, y in s.points)][: len(SPARK_COLOURS)]
    if not series:
        return None
    alt = title.replace("[", "(").replace("]", ")")
    legend = [
        f"{name}: {s.label}, last {_short(_last(s))}"
        for s, (_, name) in zip(series, SPARK_COLOURS, strict=False)
    ]
    text = "  \n".join([*legend, *caption])  # two spaces + newline: a markdown line break
    for most in (60, 40, 30, 20, 12):
        svg = sparkline_svg(series, shared_scale=shared_scale, most=most)
        src = "data:image/svg+xml," + quote(svg, safe=",/:;='.-")
        md = f"![{alt}]({src})\n\n{text}"
        if len(md) < UI_INLINE_MARKDOWN_LIMIT:
            return MetadataValue.md(md)
    return None


def _last(s: Series) -> float:
    """The value at the latest x."""
    return float(max((_x_number(x), y) for x, y in s.points if y is not None)[1])


def _short(value: float) -> str:
    """1234567 → 1.23M, 12345.6 → 12.3k, 12.34 → 12.3."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def markdown_table(rows: Sequence[Mapping[str, Any]], *, empty: str = "(no rows)") -> str:
    """A markdown table of `rows` (columns from the first row's keys; `|` escaped)."""
    if not rows:
        return empty
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += [
        "| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in cols) + " |" for r in rows
    ]
    return "\n".join(lines)


__all__ = [
    "FULL_CHART_HINT",
    "Panel",
    "Series",
    "chart_markdown",
    "chart_png",
    "markdown_table",
    "png_markdown",
    "sparkline_markdown",
    "sparkline_svg",
]
