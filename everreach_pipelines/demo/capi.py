"""The CAPI part of ``everreach demo``: the Python door with a few example conversions (test
mode), then the population's own conversions picked up from ``user_event`` and delivered.

The examples go through :func:`everreach.capi.intake.enqueue_conversions`, as the app's
code would send them (recorded as a materialization of ``meta_conversion_event``); pickup
and delivery are the capi assets, materialized through Dagster in the demo's instance.
Against the sandbox the population's conversions go as real events (nothing there counts
anyway), so the marts show how much of what happened Meta was told; against real Meta
everything is sent in test mode. A re-run replaces the examples an earlier run queued (and
the copies their delivery logged).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from dagster import materialize

from everreach.capi.delivery import DeliveryReport
from everreach.capi.intake import enqueue_conversions
from everreach.capi.settings import CapiSettings
from everreach.sandbox.capi import DEFAULT_PIXEL_ID
from everreach.warehouse.database import connect
from everreach_pipelines.defs.capi.assets import (
    capi_event_batches,
    capi_user_event_conversions,
    meta_conversion_event,
)
from everreach_pipelines.demo.instance import QUIET_CONSOLE, demo_instance, record_tables
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

#: Test code used when META_CAPI_TEST_EVENT_CODE is not set: demo events never count.
DEMO_TEST_EVENT_CODE = "TEST_EVERREACH_DEMO"


class DemoContext(Protocol):
    """What ``everreach demo`` hands each domain."""

    database_url: str
    sandbox_base_url: str | None
    graph_client_kwargs: dict[str, Any]

    def log(self, msg: str) -> None: ...


def demo_conversions(now: dt.datetime, run_tag: str) -> list[dict[str, Any]]:
    """A realistic handful: web purchases with browser ids, a lead, a phone sale, a signup."""
    t = int(now.timestamp())
    ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"
    return [
        {
            "event_name": "Purchase",
            "event_id": f"demo-{run_tag}-order-1001",
            "event_time": t - 3600,
            "action_source": "website",
            "event_source_url": "https://shop.example.com/checkout/thank-you",
            "email": "Avery.Jordan@example.com",
            "phone": "+1 (415) 555-0134",
            "first_name": "Avery",
            "last_name": "Jordan",
            "city": "San Francisco",
            "state": "California",
            "zip": "94107-1234",
            "country": "US",
            "client_ip_address": "203.0.113.24",
            "client_user_agent": ua,
            "fbp": "fb.1.1732600000000.1098115397",
            "value": 129.00,
            "currency": "USD",
            "custom_data": {
                "content_ids": ["sku-42", "sku-7"],
                "content_type": "product",
                "num_items": 2,
            },
        },
        {
            "event_name": "Purchase",
            "event_id": f"demo-{run_tag}-order-1002",
            "event_time": t - 1800,
            "action_source": "website",
            "event_source_url": "https://shop.example.com/checkout/thank-you",
            "email": "mina.okafor@example.org",
            "country": "GB",
            "zip": "SW1A 1AA",
            "client_user_agent": ua,
            "fbc": "fb.1.1732600000000.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk",
            "value": 54.90,
            "currency": "GBP",
        },
        {
            "event_name": "Lead",
            "event_id": f"demo-{run_tag}-lead-77",
            "event_time": t - 900,
            "action_source": "system_generated",
            "email": "Luis.Ortega@example.com",
            "first_name": "Luis",
            "last_name": "Ortega-Núñez",
            "date_of_birth": "3/14/1986",
            "gender": "male",
            "lead_id": "1234567890123456",
        },
        {
            "event_name": "Purchase",
            "event_id": f"demo-{run_tag}-phone-5",
            "event_time": t - 600,
            "action_source": "phone_call",
            "phone": "(212) 555-0187",
            "external_id": "crm-5521",
            "value": 300,
            "currency": "USD",
        },
        {
            "event_name": "CompleteRegistration",
            "event_id": f"demo-{run_tag}-signup-9",
            "event_time": t - 120,
            "action_source": "website",
            "event_source_url": "https://app.example.com/signup",
            "client_user_agent": ua,
            "email": "new.user@example.com",
        },
    ]


def remove_previous_examples(conn: Any, pixel_id: str) -> None:
    """Delete the example conversions an earlier demo run queued and the copies their
    delivery logged into ``user_event`` (each run's examples carry that run's tag)."""
    conn.execute(
        "delete from user_event where source = 'capi' and etype like 'meta\\_conversion\\_%%' "
        "and props ->> 'pixel_id' = %s and props ->> 'event_id' like 'demo-%%'",
        (pixel_id,),
    )
    conn.execute(
        "delete from meta_conversion_event where pixel_id = %s and source = 'function' "
        "and event_id like 'demo-%%'",
        (pixel_id,),
    )


def run_demo(ctx: DemoContext) -> list[str]:
    """Queue the example conversions (test mode) and the population's conversions of the last
    7 days, deliver them (to the sandbox, or to Meta in test mode); summary lines."""
    configured = CapiSettings.from_env()
    pixel_id = configured.pixel_id
    if not pixel_id:
        if not ctx.sandbox_base_url:
            # Real Meta and no pixel configured: there is nowhere sensible to send to.
            line = "CAPI: skipped (set META_PIXEL_ID to send the demo conversions in test mode)"
            ctx.log(line)
            return [line]
        pixel_id = DEFAULT_PIXEL_ID
    code = configured.test_event_code or DEMO_TEST_EVENT_CODE
    settings = configured.model_copy(update={"pixel_id": pixel_id, "test_event_code": code})
    # the population's conversions: real events for the sandbox, test mode for Meta
    global_code = configured.test_event_code or (
        None if ctx.sandbox_base_url else DEMO_TEST_EVENT_CODE
    )
    now = dt.datetime.now(dt.UTC)
    payloads = demo_conversions(now, now.strftime("%Y%m%d%H%M%S"))
    with connect(ctx.database_url, autocommit=True) as conn:
        remove_previous_examples(conn, pixel_id)
        queued = enqueue_conversions(conn, payloads, settings=settings)
        # The app retrying its call must not double count: resubmit the same events.
        again = enqueue_conversions(conn, payloads, settings=settings)
    picked, report = _pick_up_and_deliver(ctx, pixel_id, global_code)
    with connect(ctx.database_url) as conn:
        logged = conn.execute(
            "select count(*) from user_event where etype like 'meta_conversion_%%' "
            "and props->>'pixel_id' = %s",
            (pixel_id,),
        ).fetchone()[0]
    record_tables(
        ctx, {meta_conversion_event.key: len(queued.queued) + picked}, stage="conversions API"
    )
    mode = f"test mode {global_code}" if global_code else "as real events (the sandbox)"
    return [
        f"CAPI: {len(queued.queued)} demo conversions queued (PII hashed), "
        f"resubmission → {len(again.duplicates)} duplicates, "
        f"{picked} picked up from user_event",
        f"CAPI: pixel {pixel_id}, examples in test mode {code}, the population's conversions "
        f"{mode}: {report.summary()}",
        f"CAPI: {logged} meta_conversion_* events in user_event for this pixel",
    ]


def _pick_up_and_deliver(
    ctx: DemoContext, pixel_id: str, test_event_code: str | None
) -> tuple[int, DeliveryReport]:
    """Materialize the capi assets (pickup from ``user_event``, then delivery of everything
    pending for `pixel_id`) in the demo's instance; the events picked up and the delivery's
    report, rebuilt from the materialization's metadata."""
    meta_kwargs = {
        k: v
        for k, v in ctx.graph_client_kwargs.items()
        if k in MetaGraphResource.model_fields and v is not None
    }
    for_pixel = {"pixel_id": pixel_id, "test_event_code": test_event_code or ""}
    result = materialize(
        [capi_user_event_conversions, capi_event_batches],
        resources={
            "warehouse": WarehouseResource(database_url=ctx.database_url),
            "meta": MetaGraphResource(**meta_kwargs),
        },
        instance=demo_instance(ctx),
        run_config={
            **QUIET_CONSOLE,
            "ops": {
                capi_user_event_conversions.op.name: {"config": for_pixel},
                capi_event_batches.op.name: {"config": for_pixel},
            },
        },
    )
    pickup = result.asset_materializations_for_node(capi_user_event_conversions.op.name)[0]
    delivery = result.asset_materializations_for_node(capi_event_batches.op.name)[0].metadata
    report = DeliveryReport(
        requests=delivery["requests"].value,
        sent=delivery["sent"].value,
        rejected_local=delivery["rejected_local"].value,
        rejected_meta=delivery["rejected_by_meta"].value,
        failed=delivery["failed"].value,
        deferred=delivery["deferred"].value,
        retries=delivery["retries"].value,
        bisections=delivery["bisections"].value,
    )
    return pickup.metadata["queued"].value, report
