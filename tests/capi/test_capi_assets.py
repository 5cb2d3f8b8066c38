"""The CAPI Dagster assets, sensor and schedule, materialized in-process against the sandbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import psycopg
from capi_helpers import PIXEL, purchase, queue
from orjson import dumps

from everreach_pipelines.defs.capi import defs
from everreach_pipelines.defs.capi.assets import capi_event_batches, capi_user_event_conversions
from everreach_pipelines.defs.capi.automation import capi_pending_sensor
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource


def resources(database_url: str, sandbox: Any) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(database_url=database_url),
        "meta": MetaGraphResource(
            base_url=sandbox.base_url, access_token="sandbox-token", max_retries=1
        ),
    }


def test_definitions_load() -> None:
    merged = dg.Definitions.merge(
        defs,
        dg.Definitions(
            resources={
                "warehouse": WarehouseResource(database_url="postgresql://u@127.0.0.1:1/x"),
                "meta": MetaGraphResource(),
            }
        ),
    )
    repo = merged.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} >= {
        "capi_event_batches",
        "capi_user_event_conversions",
    }
    assert repo.get_sensor_def("capi_pending_sensor")
    assert repo.get_schedule_def("capi_sweep_schedule")


def test_user_event_pickup_then_delivery(
    database_url: str, db: psycopg.Connection, sandbox: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("META_PIXEL_ID", PIXEL)
    monkeypatch.delenv("META_CAPI_TEST_EVENT_CODE", raising=False)
    user_id = db.execute(
        "insert into auth.users (email, phone) values "
        "('Shopper@Example.com', '(650) 555-0100') returning id"
    ).fetchone()[0]
    now = dt.datetime.now(dt.UTC)
    for etype, props, when in [
        (
            "purchase",
            {"value": 49.5, "currency": "eur", "order_id": "A-1", "fbclid": "IwAR0abcDEF"},
            now - dt.timedelta(hours=1),
        ),
        ("lead", {}, now - dt.timedelta(hours=2)),
        ("page_view", {}, now),  # not a conversion
        ("purchase", {"value": 5}, now),  # no currency: skipped, counted
        ("purchase", {"value": 1, "currency": "USD"}, now - dt.timedelta(days=9)),  # too old
    ]:
        db.execute(
            "insert into user_event (user_id, etype, props, occurred_at) "
            "values (%s, %s, %s::jsonb, %s)",
            (user_id, etype, dumps(props).decode(), when),
        )

    result = dg.materialize(
        [capi_user_event_conversions, capi_event_batches],
        resources=resources(database_url, sandbox),
    )
    assert result.success
    pickup = result.asset_materializations_for_node("capi_user_event_conversions")[0].metadata
    assert pickup["queued"].value == 2 and pickup["skipped_by_field"].data == {"currency": 1}
    delivery = result.asset_materializations_for_node("capi_event_batches")[0].metadata
    assert delivery["sent"].value == 2 and delivery["requests"].value == 1
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_events_rejected_by_meta": True, "no_stale_pending_events": True}

    rows = db.execute(
        "select event_name, event_id, source, user_id, user_data, currency "
        "from meta_conversion_event order by event_name desc"
    ).fetchall()
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("Purchase", "user_event", user_id),
        ("Lead", "user_event", user_id),
    ]
    assert rows[0][1] == "A-1" and rows[0][5] == "EUR"
    assert set(rows[0][4]) == {"em", "ph", "external_id", "fbc"}
    assert rows[0][4]["fbc"].endswith(".IwAR0abcDEF")  # fbclid keeps its case

    again = dg.materialize(
        [capi_user_event_conversions, capi_event_batches],
        resources=resources(database_url, sandbox),
    )
    meta = again.asset_materializations_for_node("capi_user_event_conversions")[0].metadata
    assert meta["queued"].value == 0
    assert len(sandbox.sandbox.capi_received) == 2
    logged = db.execute("select etype from user_event where source = 'capi' order by 1").fetchall()
    assert logged == [("meta_conversion_Lead",), ("meta_conversion_Purchase",)]


def test_delivery_config_test_mode_and_rejection_check(
    database_url: str, db: psycopg.Connection, sandbox: Any
) -> None:
    queue(db, [purchase(i) for i in range(4)])
    db.execute(
        "update meta_conversion_event set user_data = jsonb_set(user_data, '{em}', "
        "to_jsonb(repeat('q', 64))) where event_id = 'order-2'"
    )
    result = dg.materialize(
        [capi_event_batches],
        resources=resources(database_url, sandbox),
        run_config={
            "ops": {
                "capi_event_batches": {"config": {"test_event_code": "TESTDAG", "batch_size": 2}}
            }
        },
        selection=[capi_event_batches],
    )
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["no_events_rejected_by_meta"] is False
    assert {r["test_event_code"] for r in sandbox.sandbox.capi_received} == {"TESTDAG"}
    assert len(sandbox.sandbox.capi_received) == 3


def test_sensor_requests_a_run_only_for_new_pending_events(
    database_url: str, db: psycopg.Connection
) -> None:
    res = {"warehouse": WarehouseResource(database_url=database_url)}
    with dg.build_sensor_context(resources=res) as ctx:
        assert isinstance(capi_pending_sensor(ctx), dg.SkipReason)
    queue(db, [purchase(1)])
    with dg.build_sensor_context(resources=res) as ctx:
        first = capi_pending_sensor(ctx)
    queue(db, [purchase(2)])
    with dg.build_sensor_context(resources=res) as ctx:
        second = capi_pending_sensor(ctx)
    keys = [first.run_requests[0].run_key, second.run_requests[0].run_key]
    assert keys[0] != keys[1] and all(k.startswith("capi-pending-") for k in keys)
