"""Small pictures and tables for asset metadata (shown in the Dagster UI).

`chart_markdown` renders a compact matplotlib chart (Agg backend, no display needed) and
returns a `MetadataValue.md` embedding it as a base64 data-URI image, so the picture
travels with the materialization event — nothing is written to disk or served. It
returns None when there is nothing to draw: callers then add no metadata entry.

`markdown_table` is the shared markdown preview table.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import MetadataValue

#: Figure width in inches and dots per inch: ~600 px wide, a few tens of KB per chart.
WIDTH_INCHES = 6.4
PANEL_HEIGHT_INCHES = 2.3
DPI = 90


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


__all__ = ["Panel", "Series", "chart_markdown", "chart_png", "markdown_table", "png_markdown"]
