"""The follower trend of `social_account_insights`: a chart per platform, and its inline
sparkline."""

from __future__ import annotations

from datetime import date, timedelta

from dagster import MetadataValue

from everreach.organic.metrics import FOLLOWER_METRIC
from everreach_pipelines.charts import (
    FULL_CHART_HINT,
    Panel,
    Series,
    chart_markdown,
    sparkline_markdown,
)

#: Metadata key of the follower trend chart on `social_account_insights`.
CHART_FOLLOWER_TREND = "follower_trend_chart"
#: Metadata key of its inline sparkline (first accounts), shown on the asset's Overview.
SPARK_FOLLOWER_TREND = "follower_trend"
#: The follower chart covers this many days up to the run's last day.
FOLLOWER_CHART_DAYS = 30
#: At most this many accounts are drawn (the legend stays readable).
FOLLOWER_CHART_MAX_ACCOUNTS = 8


def follower_chart(rows: list[tuple], last: date) -> MetadataValue | None:
    """One line per account (a panel per platform) from `(platform, account, date, value)`
    rows; None when there are none."""
    series: dict[str, dict[str, list[tuple[date, float | None]]]] = {}
    for platform, account, day, value in rows:
        per_platform = series.setdefault(platform, {})
        if account in per_platform or len(per_platform) < FOLLOWER_CHART_MAX_ACCOUNTS:
            per_platform.setdefault(account, []).append(
                (day, float(value) if value is not None else None)
            )
    panels = [
        Panel(
            title=f"{platform}: {FOLLOWER_METRIC[platform]} per day",
            series=[Series(account, points) for account, points in accounts.items()],
        )
        for platform, accounts in sorted(series.items())
    ]
    first = last - timedelta(days=FOLLOWER_CHART_DAYS - 1)
    return chart_markdown(f"follower trend {first}..{last}", panels)


def follower_sparkline(rows: list[tuple], last: date) -> MetadataValue | None:
    """The first three accounts' follower lines, each scaled to its own range (their sizes
    differ by orders of magnitude), small enough to show inline; None without rows."""
    series: dict[str, list[tuple[date, float | None]]] = {}
    for platform, account, day, value in rows:
        name = f"{platform} {account}"
        if name in series or len(series) < 3:
            series.setdefault(name, []).append((day, float(value) if value is not None else None))
    first = last - timedelta(days=FOLLOWER_CHART_DAYS - 1)
    return sparkline_markdown(
        "follower trend",
        [Series(name, points) for name, points in series.items()],
        caption=[
            f"{first}..{last}, each on its own scale",
            FULL_CHART_HINT,
        ],
        shared_scale=False,
    )
