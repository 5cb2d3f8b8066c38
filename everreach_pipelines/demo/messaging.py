"""The messaging part of ``everreach demo``: a webhook burst through a live receiver.

Starts the receiver on 127.0.0.1 (a free port, uvicorn in a thread, the demo's database),
has the sandbox emit a few hundred signed Meta webhooks of every family at it, and
reports what landed: received, applied, threads, messages, statuses. Then it materializes
the webhook log asset (the observation production schedules every 15 minutes) and records
the conversation tables the receiver wrote as materialized by the demo.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx
from dagster import materialize

from everreach.warehouse.database import connect
from everreach_pipelines.defs.messaging.assets import (
    conversation_message,
    conversation_thread,
    meta_webhook_event,
)
from everreach_pipelines.demo.instance import QUIET_CONSOLE, demo_instance, record_tables
from everreach_pipelines.resources.warehouse import WarehouseResource

#: Webhooks in the demo burst ("a few hundred").
DEMO_BURST = 300


class DemoContext(Protocol):
    """What ``everreach demo`` hands each domain."""

    database_url: str
    sandbox_base_url: str | None
    sandbox: Any

    def log(self, msg: str) -> None: ...


def run_demo(ctx: DemoContext, count: int = DEMO_BURST) -> list[str]:
    """Run the burst; return summary lines (received, applied, threads, messages, statuses)."""
    from everreach.messaging.settings import ReceiverSettings
    from everreach.meta.settings import GraphSettings
    from everreach.sandbox import messaging
    from webhook_receiver.testing import running_receiver

    sandbox = getattr(ctx, "sandbox", None)
    graph = GraphSettings.from_env(
        **({"base_url": ctx.sandbox_base_url} if ctx.sandbox_base_url else {})
    )
    secret = (
        messaging.app_secret(sandbox)
        if sandbox is not None
        else (graph.secret or messaging.DEFAULT_APP_SECRET)
    )
    settings = ReceiverSettings.from_env(
        app_secret=secret,
        database_url=ctx.database_url,
        graph=graph,
        pool_min_size=1,
        pool_max_size=4,
    )
    with connect(ctx.database_url) as conn:
        first_id, threads_before, messages_before = conn.execute(
            "select (select coalesce(max(id), 0) from meta_webhook_event), "
            "(select count(*) from conversation_thread), "
            "(select count(*) from conversation_message)"
        ).fetchone()
    with running_receiver(settings) as receiver:
        ctx.log(f"receiver listening on {receiver.base_url}; emitting {count} webhooks")
        if sandbox is not None:
            result = messaging.emit_burst(sandbox, receiver.webhook_url, count=count, seed=7)
        else:  # the sandbox runs in another process: use its control route
            response = httpx.post(
                f"{ctx.sandbox_base_url}/_sandbox/webhooks/emit",
                json={"target_url": receiver.webhook_url, "count": count, "seed": 7},
                timeout=300,
            )
            response.raise_for_status()
            result = response.json()
    with connect(ctx.database_url) as conn:
        received, applied, failed = conn.execute(
            "select count(*), count(*) filter (where status = 'applied'), "
            "count(*) filter (where status = 'failed') from meta_webhook_event where id > %s",
            (first_id,),
        ).fetchone()
        threads, messages, statuses, windows = conn.execute(
            "select (select count(*) from conversation_thread), "
            "(select count(*) from conversation_message), "
            "(select count(*) from message_delivery_event), "
            "(select count(*) from messaging_policy_window where expires_at > now())"
        ).fetchone()
    materialize(
        [meta_webhook_event],
        resources={"warehouse": WarehouseResource(database_url=ctx.database_url)},
        instance=demo_instance(ctx),
        run_config=QUIET_CONSOLE,
    )
    record_tables(
        ctx,
        {
            conversation_thread.key: threads - threads_before,
            conversation_message.key: messages - messages_before,
        },
        stage="webhook burst through the receiver",
    )
    ok = result["statuses"].get("200", 0)
    return [
        f"webhooks: {result['sent']} sent, {ok} answered 200, {received} stored, "
        f"{applied} applied, {failed} failed ({result['seconds']} s)",
        f"conversations: {threads} threads, {messages} messages, {statuses} receipts/statuses, "
        f"{windows} open policy windows",
    ]
