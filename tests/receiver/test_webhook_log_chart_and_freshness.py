"""The webhook log asset's volume / apply lag chart, and its freshness check."""

from __future__ import annotations

import base64

import dagster as dg
import psycopg

from everreach_pipelines.defs.messaging import defs
from everreach_pipelines.defs.messaging.assets import meta_webhook_event
from everreach_pipelines.defs.messaging.charts import CHART_VOLUME_AND_LAG
from everreach_pipelines.defs.messaging.checks import meta_webhook_event_freshness
from everreach_pipelines.resources.warehouse import WarehouseResource

IMAGE_PREFIX = "data:image/png;base64,"


def _insert(db: psycopg.Connection, received_ago: str, lag: str | None) -> None:
    """One stored webhook received `received_ago` (an interval) ago, applied `lag` later."""
    db.execute(
        "insert into meta_webhook_event (object_type, raw_body, body_sha256, status, "
        "received_at, applied_at) values ('page', '\\x7b7d', 'x', %s, "
        "now() - %s::interval, now() - %s::interval + %s::interval)",
        ("applied" if lag else "pending", received_ago, received_ago, lag),
    )


def _materialize(database_url: str) -> dict:
    result = dg.materialize(
        [meta_webhook_event], resources={"warehouse": WarehouseResource(database_url=database_url)}
    )
    assert result.success
    return result.asset_materializations_for_node("meta_webhook_event")[0].metadata


def test_volume_and_lag_chart_over_the_last_24_hours(
    db: psycopg.Connection, database_url: str
) -> None:
    for hours_ago in (1, 1, 1, 3, 5):
        _insert(db, f"{hours_ago} hours", "200 milliseconds")
    _insert(db, "2 hours", "10 seconds")
    _insert(db, "30 minutes", None)  # pending: counted, no lag
    _insert(db, "3 days", "1 hour")  # outside the 24 h
    md = _materialize(database_url)
    chart = md[CHART_VOLUME_AND_LAG].value
    assert chart.startswith("![") and IMAGE_PREFIX in chart
    png = base64.b64decode(chart.split(IMAGE_PREFIX, 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG")
    assert md["apply_lag_p50_seconds_24h"].value == 0.2
    assert 9 < md["apply_lag_p99_seconds_24h"].value <= 10
    assert md["events"].value == 8


def test_no_recent_webhooks_no_chart(db: psycopg.Connection, database_url: str) -> None:
    md = _materialize(database_url)
    assert CHART_VOLUME_AND_LAG not in md and "apply_lag_p50_seconds_24h" not in md
    _insert(db, "3 days", "1 second")
    md = _materialize(database_url)
    assert md["events"].value == 1 and CHART_VOLUME_AND_LAG not in md


def test_freshness_check(db: psycopg.Connection, database_url: str) -> None:
    warehouse = WarehouseResource(database_url=database_url)
    empty = meta_webhook_event_freshness(warehouse=warehouse)
    assert not empty.passed and empty.severity == dg.AssetCheckSeverity.WARN
    _insert(db, "25 hours", "1 second")
    stale = meta_webhook_event_freshness(warehouse=warehouse)
    assert not stale.passed and stale.metadata["age_hours"].value >= 25
    _insert(db, "1 hour", "1 second")
    assert meta_webhook_event_freshness(warehouse=warehouse).passed
    merged = dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": warehouse}))
    keys = merged.get_repository_def().asset_graph.asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey("meta_webhook_event"), "fresh_within_24_hours") in keys
