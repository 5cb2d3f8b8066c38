"""The webhook log's charts: volume per hour over the apply lag, full size and inline."""

from __future__ import annotations

import dagster as dg

from everreach.messaging.checks import HourOfWebhooks
from everreach_pipelines.charts import (
    FULL_CHART_HINT,
    Panel,
    Series,
    chart_markdown,
    sparkline_markdown,
)

#: Metadata key of the webhook volume / apply lag chart (last 24 h).
CHART_VOLUME_AND_LAG = "webhook_volume_and_apply_lag_chart"
#: Metadata key of its inline sparkline, shown on the asset's Overview.
SPARK_VOLUME_AND_LAG = "webhook_volume_and_apply_lag"


def lag_chart(hours: list[HourOfWebhooks]) -> dg.MetadataValue | None:
    """Webhooks per hour (bars) over apply lag p50/p99 per hour; None without rows."""
    return chart_markdown(
        "meta_webhook_event, last 24 h",
        [
            Panel(
                "webhooks received per hour",
                [Series("events", [(h.hour, h.events) for h in hours], kind="bar")],
            ),
            Panel(
                "apply lag (applied_at - received_at), seconds",
                [
                    Series("p50", [(h.hour, h.lag_p50) for h in hours if h.lag_p50 is not None]),
                    Series(
                        "p99",
                        [(h.hour, h.lag_p99) for h in hours if h.lag_p99 is not None],
                        linestyle="--",
                    ),
                ],
                ylabel="s",
            ),
        ],
    )


def lag_sparkline(hours: list[HourOfWebhooks]) -> dg.MetadataValue | None:
    """Events per hour and p99 apply lag, each on its own scale, small enough to show
    inline; None without rows."""
    return sparkline_markdown(
        "webhooks per hour and p99 apply lag, last 24 h",
        [
            Series("events/h", [(h.hour, h.events) for h in hours]),
            Series("p99 lag s", [(h.hour, h.lag_p99) for h in hours if h.lag_p99 is not None]),
        ],
        caption=["last 24 h, each on its own scale", FULL_CHART_HINT],
        shared_scale=False,
    )
