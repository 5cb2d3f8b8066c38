"""Delivery of pending events to the sandbox's ``/{pixel}/events`` over real HTTP."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from capi_helpers import PIXEL, purchase, queue

from everreach.capi.delivery import DeliveryConfig, deliver_pending, pending_count
from everreach.meta.errors import TokenInvalidError
from everreach.sandbox import capi as sandbox_capi


def statuses(db: psycopg.Connection) -> dict[str, int]:
    return dict(
        db.execute("select status, count(*) from meta_conversion_event group by 1").fetchall()
    )


def test_2500_pending_events_go_in_3_requests(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    queue(db, [purchase(i) for i in range(2500)])
    assert pending_count(db) == 2500
    report = deliver_pending(db, graph)
    assert report.requests == 3
    assert report.sent == 2500
    assert sandbox.sandbox.domains["capi"].requests == 3
    assert len(sandbox.sandbox.capi_received) == 2500
    assert statuses(db) == {"sent": 2500}
    logged = db.execute(
        "select count(*), count(distinct props->>'event_id') from user_event "
        "where etype = 'meta_conversion_Purchase'"
    ).fetchone()
    assert logged == (2500, 2500)
    row = db.execute(
        "select attempts, fbtrace_id, meta_response, sent_at is not null "
        "from meta_conversion_event limit 1"
    ).fetchone()
    assert row[0] == 1 and row[1] and row[2]["events_received"] in (1000, 500) and row[3]


def test_batch_size_setting(db: psycopg.Connection, sandbox: Any, graph: Any) -> None:
    queue(db, [purchase(i) for i in range(25)])
    report = deliver_pending(db, graph, config=DeliveryConfig(batch_size=10))
    assert (report.requests, report.sent) == (3, 25)


def test_resubmission_is_sent_once(db: psycopg.Connection, sandbox: Any, graph: Any) -> None:
    queue(db, [purchase(1), purchase(2)])
    deliver_pending(db, graph)
    queue(db, [purchase(1), purchase(2)])  # the app retries its call
    again = deliver_pending(db, graph)
    assert again.requests == 0
    sent_ids = [r["event"]["event_id"] for r in sandbox.sandbox.capi_received]
    assert sorted(sent_ids) == ["order-1", "order-2"]
    assert db.execute("select count(*) from user_event").fetchone()[0] == 2


def test_one_bad_event_is_isolated_by_bisection(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    queue(db, [purchase(i) for i in range(16)])
    # A row whose email is 64 characters but not hex passes our local shape check;
    # Meta refuses the whole request for it (unhashed PII).
    db.execute(
        "update meta_conversion_event set user_data = jsonb_set(user_data, '{em}', "
        "to_jsonb(repeat('z', 64))) where event_id = 'order-11'"
    )
    report = deliver_pending(db, graph)
    assert report.sent == 15 and report.rejected_meta == 1
    assert report.bisections >= 4
    assert statuses(db) == {"sent": 15, "rejected": 1}
    bad = db.execute(
        "select error_message, fbtrace_id, meta_response, attempts "
        "from meta_conversion_event where status = 'rejected'"
    ).fetchone()
    assert "Unhashed PII" in bad[0] and "2804016" in bad[0]
    assert bad[1] and bad[2]["error"]["error_subcode"] == 2804016
    assert bad[3] == 5  # the whole batch, then one request per level of the bisection
    received = {r["event"]["event_id"] for r in sandbox.sandbox.capi_received}
    assert "order-11" not in received and len(received) == 15


def test_event_older_than_7_days_is_rejected_locally(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    # queued while fresh (the intake refuses stale events), then left waiting past Meta's limit
    queue(db, [purchase(1), purchase(2)])
    db.execute(
        "update meta_conversion_event set event_time = now() - interval '8 days' "
        "where event_id = 'order-2'"
    )
    report = deliver_pending(db, graph)
    assert (report.sent, report.rejected_local, report.requests) == (1, 1, 1)
    row = db.execute(
        "select status, error_message, attempts from meta_conversion_event "
        "where event_id = 'order-2'"
    ).fetchone()
    assert row[0] == "rejected" and "7 days" in row[1] and row[2] == 0
    assert [r["event"]["event_id"] for r in sandbox.sandbox.capi_received] == ["order-1"]


def test_transient_faults_are_retried(db: psycopg.Connection, sandbox: Any, graph: Any) -> None:
    queue(db, [purchase(i) for i in range(3)])
    sandbox_capi.fail_next(sandbox.sandbox, 2)  # two 503s, then success
    report = deliver_pending(db, graph)
    assert report.sent == 3
    assert sandbox.sandbox.stats["capi_faults"] == 2
    assert graph.metrics.retries == 2
    attempts = {r[0] for r in db.execute("select attempts from meta_conversion_event")}
    assert attempts == {3}


def test_persistent_outage_leaves_events_pending_then_failed(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    graph.max_retries = 0
    queue(db, [purchase(i) for i in range(2)])
    sandbox_capi.fail_next(sandbox.sandbox, 100)
    config = DeliveryConfig(retries=1, max_attempts=3)
    first = deliver_pending(db, graph, config=config)
    assert (first.sent, first.deferred, first.retries) == (0, 2, 1)
    row = db.execute(
        "select status, attempts, error_message from meta_conversion_event limit 1"
    ).fetchone()
    assert row[0] == "pending" and row[1] == 2 and "transient" in row[2]
    second = deliver_pending(db, graph, config=config)
    assert second.failed == 2
    assert statuses(db) == {"failed": 2}
    assert sandbox.sandbox.capi_received == []


def test_global_test_mode_sends_with_the_code_and_flags(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    queue(db, [purchase(1), purchase(2, test_event_code="TEST777")])
    report = deliver_pending(db, graph, config=DeliveryConfig(test_event_code="GLOBAL1"))
    assert report.requests == 2  # the test code is per request: one per code
    codes = sorted(r["test_event_code"] for r in sandbox.sandbox.capi_received)
    assert codes == ["GLOBAL1", "GLOBAL1"]
    assert db.execute("select bool_and(is_test) from meta_conversion_event").fetchone()[0]
    props = db.execute("select bool_and((props->>'test')::boolean) from user_event").fetchone()
    assert props[0] is True


def test_per_event_test_code_is_sent_separately(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    queue(db, [purchase(1), purchase(2, test_event_code="TEST777")])
    report = deliver_pending(db, graph)
    assert report.requests == 2
    by_id = {r["event"]["event_id"]: r["test_event_code"] for r in sandbox.sandbox.capi_received}
    assert by_id == {"order-1": None, "order-2": "TEST777"}
    flags = dict(db.execute("select event_id, is_test from meta_conversion_event").fetchall())
    assert flags == {"order-1": False, "order-2": True}


def test_sent_event_logged_once_with_user_id(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    user_id = db.execute(
        "insert into auth.users (email) values ('u@example.com') returning id"
    ).fetchone()[0]
    queue(db, [purchase(1)], user_id=str(user_id))
    deliver_pending(db, graph)
    deliver_pending(db, graph)
    rows = db.execute(
        "select user_id, etype, source, props, occurred_at from user_event"
    ).fetchall()
    assert len(rows) == 1
    uid, etype, source, props, _ = rows[0]
    assert (uid, etype, source) == (user_id, "meta_conversion_Purchase", "capi")
    assert props == {
        "event_id": "order-1",
        "pixel_id": PIXEL,
        "value": 11.0,
        "currency": "USD",
        "test": False,
    }


def test_bad_token_stops_the_run_and_sends_nothing(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    sandbox.sandbox.config.valid_tokens = {"the-only-good-token"}
    queue(db, [purchase(1)])
    with pytest.raises(TokenInvalidError):
        deliver_pending(db, graph)
    assert statuses(db) == {"pending": 1}


def test_what_the_sandbox_receives_is_metas_server_event(
    db: psycopg.Connection, sandbox: Any, graph: Any
) -> None:
    queue(
        db, [purchase(7, custom_data={"content_ids": ["sku-1"]}, client_ip_address="203.0.113.9")]
    )
    deliver_pending(db, graph)
    event = sandbox.sandbox.capi_received[0]["event"]
    assert set(event) == {
        "event_name",
        "event_time",
        "event_id",
        "action_source",
        "user_data",
        "custom_data",
    }
    assert event["custom_data"] == {"content_ids": ["sku-1"], "value": 17.0, "currency": "USD"}
    assert event["user_data"]["client_ip_address"] == "203.0.113.9"
    assert len(event["user_data"]["em"]) == 64


def test_refuses_a_connection_in_a_transaction(database_url: str, graph: Any) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(ValueError, match="autocommit"):
        deliver_pending(conn, graph)
