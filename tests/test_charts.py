"""The shared chart and table helpers for asset metadata."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote

from dagster import MarkdownMetadataValue, MetadataValue

from everreach_pipelines.charts import (
    UI_INLINE_MARKDOWN_LIMIT,
    Panel,
    Series,
    chart_markdown,
    markdown_table,
    sparkline_markdown,
)

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


SPARK = re.compile(r"^!\[([^\]]*)\]\(data:image/svg\+xml,([^()\s]+)\)\n\n(.*)$", re.S)


def test_sparkline_fits_the_ui_inline_limit_and_is_valid_svg() -> None:
    days = [date(2026, 9, 1) + timedelta(days=i) for i in range(90)]
    value = sparkline_markdown(
        "EUR spend [daily] vs value",
        [
            Series("spend", [(d, 1000.0 + 13 * i) for i, d in enumerate(days)]),
            Series("conversion value", [(d, 5000.0 - 7 * i) for i, d in enumerate(days)]),
            Series("gaps", [(d, None if i % 3 else i) for i, d in enumerate(days)]),
        ],
        caption=["EUR per day", "full chart: `x_chart`"],
    )
    assert isinstance(value, MarkdownMetadataValue)
    assert len(value.value) < UI_INLINE_MARKDOWN_LIMIT  # rendered inline, not behind a link
    match = SPARK.match(value.value)
    assert match, value.value[:200]
    assert match.group(1) == "EUR spend (daily) vs value"
    svg = ET.fromstring(unquote(match.group(2)))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.get("width") == "300"
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert [line.get("stroke") for line in lines] == ["steelblue", "darkorange", "seagreen"]
    for line in lines:
        coords = [float(c) for c in line.get("points").split(",")]
        assert 2 * 8 <= len(coords) <= 2 * 60  # thinned, yet a line
        assert all(0 <= c <= 300 for c in coords[0::2]) and all(0 <= c <= 56 for c in coords[1::2])
    # one short line per series, then the caption, as markdown hard line breaks
    assert match.group(3).split("  \n") == [
        "blue: spend, last 2.16k",
        "orange: conversion value, last 4.38k",
        "green: gaps, last 87",
        "EUR per day",
        "full chart: `x_chart`",
    ]


def test_sparkline_scales_and_empty_input() -> None:
    points = [(datetime(2026, 11, 1, h, tzinfo=UTC), float(h)) for h in range(24)]
    shared = sparkline_markdown(
        "s", [Series("a", points), Series("b", [(x, y * 100) for x, y in points])]
    )
    own = sparkline_markdown(
        "s",
        [Series("a", points), Series("b", [(x, y * 100) for x, y in points])],
        shared_scale=False,
    )

    def polylines(value: MetadataValue) -> list[str]:
        svg = ET.fromstring(unquote(SPARK.match(value.value).group(2)))
        return [p.get("points") for p in svg.findall("{http://www.w3.org/2000/svg}polyline")]

    a_shared, b_shared = polylines(shared)
    a_own, b_own = polylines(own)
    assert a_own == b_own  # same shape, each filling the height
    assert a_shared != b_shared  # "a" is flat next to "b" on one scale
    assert sparkline_markdown("empty", []) is None
    assert sparkline_markdown("empty", [Series("a", [(date(2026, 1, 1), None)])]) is None


def test_marts_roas_charts_sparkline_of_main_currency_and_one_panel_per_campaign() -> None:
    from everreach_pipelines.defs.dbt.charts import CHART_KEY, SPARK_KEY, roas_charts

    today = date(2026, 11, 26)
    days = [today - timedelta(days=i) for i in range(5)]
    rows = [
        (cid, name, cur, day, spend, revenue)
        for cid, name, cur, spend, revenue in (
            ("c1", "Spring sale", "EUR", 100.0, 250.0),
            ("c2", None, "EUR", 40.0, 0.0),
            ("c3", "US launch", "USD", 20.0, 10.0),
        )
        for day in days
    ]
    charts = roas_charts(rows, today)
    assert set(charts) == {SPARK_KEY, CHART_KEY}
    spark = charts[SPARK_KEY].value
    assert len(spark) < UI_INLINE_MARKDOWN_LIMIT
    assert "EUR per day" in spark and "last 140" in spark  # EUR spend of c1 + c2 per day
    assert png_of(charts[CHART_KEY]).startswith(PNG_SIGNATURE)
    assert roas_charts([], today) == {}
