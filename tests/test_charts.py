"""The shared chart and table helpers for asset metadata."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta

from dagster import MarkdownMetadataValue, MetadataValue

from everreach_pipelines.charts import Panel, Series, chart_markdown, markdown_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE = re.compile(r"^!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)$")


def png_of(value: MetadataValue) -> bytes:
    """The PNG bytes embedded in a chart's markdown (asserts the data-URI shape)."""
    match = IMAGE.match(value.value)
    assert match, value.value[:120]
    return base64.b64decode(match.group(2), validate=True)


def test_chart_markdown_embeds_a_small_valid_png() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    value = chart_markdown(
        "spend [USD] vs value",
        [
            Panel(
                "USD",
                [
                    Series("spend", [(d, 10.0 + i) for i, d in enumerate(days)]),
                    Series("value", [(d, 30.0 - i) for i, d in enumerate(days)], linestyle="--"),
                ],
                ylabel="USD",
            ),
            Panel(
                "hourly",
                [
                    Series(
                        "events",
                        [(datetime(2026, 11, 1, h, tzinfo=UTC), h) for h in range(24)],
                        kind="bar",
                    )
                ],
            ),
        ],
    )
    assert isinstance(value, MarkdownMetadataValue)
    png = png_of(value)
    assert png.startswith(PNG_SIGNATURE)
    assert 2_000 < len(png) < 60_000
    # Width × height from the IHDR chunk: a compact picture.
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert 400 <= width <= 800 and 150 <= height <= 700
    assert IMAGE.match(value.value).group(1) == "spend (USD) vs value"


def test_no_points_means_no_chart() -> None:
    assert chart_markdown("empty", []) is None
    assert chart_markdown("empty", [Panel("p", [Series("a", [])])]) is None


def test_markdown_table_escapes_pipes_and_handles_no_rows() -> None:
    assert markdown_table([]) == "(no rows)"
    table = markdown_table([{"a": 1, "b": "x|y"}, {"a": 2, "b": None}])
    assert table.splitlines() == ["| a | b |", "| --- | --- |", "| 1 | x/y |", "| 2 | None |"]
