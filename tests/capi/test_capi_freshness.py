"""The freshness check of `capi_event_batches` (newest created_at / last_attempt_at)."""

from __future__ import annotations

import dagster as dg
import psycopg

from everreach_pipelines.defs.capi import defs
from everreach_pipelines.defs.capi.checks import capi_event_batches_freshness
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource


def _insert(db: psycopg.Connection, event_id: str, created_ago: str, attempted_ago: str | None):
    db.execute(
        "insert into meta_conversion_event (pixel_id, event_name, event_id, event_time, "
        "action_source, created_at, last_attempt_at) values ('1', 'Purchase', %s, now(), "
        "'website', now() - %s::interval, now() - %s::interval)",
        (event_id, created_ago, attempted_ago),
    )


def test_freshness_from_created_or_attempted(db: psycopg.Connection, database_url: str) -> None:
    warehouse = WarehouseResource(database_url=database_url)
    empty = capi_event_batches_freshness(warehouse=warehouse)
    assert not empty.passed and empty.severity == dg.AssetCheckSeverity.WARN
    assert empty.metadata["last_activity_at"].value == "never"
    _insert(db, "old", "5 days", None)
    stale = capi_event_batches_freshness(warehouse=warehouse)
    assert not stale.passed and stale.metadata["age_hours"].value >= 5 * 24
    # An old event retried recently counts as activity.
    db.execute("update meta_conversion_event set last_attempt_at = now() - interval '1 hour'")
    assert capi_event_batches_freshness(warehouse=warehouse).passed
    db.execute("update meta_conversion_event set last_attempt_at = now() - interval '3 days'")
    assert not capi_event_batches_freshness(warehouse=warehouse).passed
    _insert(db, "new", "10 minutes", None)
    fresh = capi_event_batches_freshness(warehouse=warehouse)
    assert fresh.passed and fresh.metadata["max_age_hours"].value == 48


def test_freshness_check_is_registered() -> None:
    merged = dg.Definitions.merge(
        defs,
        dg.Definitions(
            resources={
                "warehouse": WarehouseResource(database_url="postgresql://u@127.0.0.1:1/x"),
                "meta": MetaGraphResource(),
            }
        ),
    )
    keys = merged.get_repository_def().asset_graph.asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey("capi_event_batches"), "fresh_within_48_hours") in keys
