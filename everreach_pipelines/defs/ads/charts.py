"""The ads asset's pictures: the window's daily spend vs Meta-reported conversion value (a
chart per currency and an inline sparkline), and the top campaigns as a table."""

from __future__ import annotations

from datetime import date

from dagster import MetadataValue

from everreach_pipelines.charts import (
    FULL_CHART_HINT,
    Panel,
    Series,
    chart_markdown,
    sparkline_markdown,
)

#: Metadata key of the window's daily spend vs Meta-reported conversion value chart.
CHART_SPEND_VS_VALUE = "spend_vs_conversion_value_chart"
#: Metadata key of its inline sparkline (main currency), shown on the asset's Overview.
SPARK_SPEND_VS_VALUE = "spend_vs_conversion_value"


def top_campaigns_markdown(rows: list) -> str:
    """Markdown table of the rows of `everreach.ads.checks.top_campaigns`."""
    lines = [
        "| account | campaign | spend | impressions | conversions | value |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for acct, name, cur, spend, imps, conv, value in rows:
        label = (name or "").replace("|", "/")
        lines.append(
            f"| {acct} | {label} | {spend:,.2f} {cur or ''} | {imps:,} | "
            f"{conv:,.0f} | {value:,.2f} |"
        )
    return "\n".join(lines)


def spend_chart(rows: list[tuple], since: date, until: date) -> MetadataValue | None:
    """Daily spend vs Meta-reported conversion value over the window, one panel per
    currency (at most 4); None when the window has no rows."""
    by_currency: dict[str, list[tuple[date, float, float]]] = {}
    for cur, day, spend, value in rows:
        by_currency.setdefault(cur, []).append((day, float(spend), float(value)))
    panels = [
        Panel(
            title=f"{cur}: spend vs Meta-reported conversion value",
            ylabel=cur,
            series=[
                Series("spend", [(d, s) for d, s, _ in points]),
                Series("conversion value", [(d, v) for d, _, v in points], linestyle="--"),
            ],
        )
        for cur, points in sorted(by_currency.items())[:4]
    ]
    return chart_markdown(
        f"ad_performance daily spend vs conversion value {since}..{until}", panels
    )


def spend_sparkline(rows: list[tuple], since: date, until: date) -> MetadataValue | None:
    """The same two series for the currency with the most spend, small enough to show
    inline in the UI's metadata table; None when the window has no rows."""
    totals: dict[str, float] = {}
    for cur, _, spend, _ in rows:
        totals[cur] = totals.get(cur, 0.0) + float(spend)
    if not totals:
        return None
    main = max(totals, key=lambda c: totals[c])
    points = [(day, float(spend), float(value)) for cur, day, spend, value in rows if cur == main]
    return sparkline_markdown(
        f"{main} daily spend vs conversion value",
        [
            Series("spend", [(d, s) for d, s, _ in points]),
            Series("conversion value", [(d, v) for d, _, v in points]),
        ],
        caption=[f"{main} per day, {since}..{until}", FULL_CHART_HINT],
    )
