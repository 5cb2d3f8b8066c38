"""The database goes away mid-stream: 5xx, nothing acknowledged lost, exactly-once after."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import orjson
from receiver_helpers import APP_SECRET, PgProxy, proxied_url, receiver_settings

from everreach.sandbox.messaging import build_burst, sign
from everreach.sandbox.testing import running_sandbox
from webhook_receiver.testing import running_receiver


def _message_ids(raw: bytes) -> set[str]:
    body = orjson.loads(raw)
    ids: set[str] = set()
    for entry in body["entry"]:
        for event in entry.get("messaging", []):
            for kind in ("message", "postback"):
                if "mid" in event.get(kind, {}):
                    ids.add(event[kind]["mid"])
        for change in entry.get("changes", []):
            ids.update(m["id"] for m in change["value"].get("messages", []))
    return ids


def test_database_stopped_mid_stream_then_meta_retries(db, database_url: str) -> None:
    _, target = proxied_url(database_url, 0)
    proxy = PgProxy(target)
    url, _ = proxied_url(database_url, proxy.port)
    with (
        running_sandbox(
            app_secret=APP_SECRET, accounts=1, days=1, extra={"messaging_contacts": 4}
        ) as sb,
        running_receiver(
            receiver_settings(
                url, sb.base_url, pool_timeout_seconds=0.3, request_timeout_seconds=3.0
            )
        ) as rx,
        httpx.Client(timeout=10) as client,
    ):
        bodies = build_burst(sb.sandbox, 60, seed=11)
        acknowledged: set[str] = set()
        answers: list[int] = []
        pending = list(bodies)
        cut_at, restore_at = 20, 30

        def send(raw: bytes) -> int:
            response = client.post(
                rx.webhook_url,
                content=raw,
                headers={
                    "x-hub-signature-256": sign(APP_SECRET, raw),
                    "content-type": "application/json",
                },
            )
            if response.status_code == 200:
                acknowledged.add(hashlib.sha256(raw).hexdigest())
            return response.status_code

        # First pass: the stream, with the database cut in the middle (from another
        # thread, so the cut can land inside a transaction).
        cutter = threading.Timer(0, proxy.cut)
        retry: list[bytes] = []
        for n, raw in enumerate(pending):
            if n == cut_at:
                cutter.start()
                cutter.join()
            if n == restore_at:
                proxy.restore()
            status = send(raw)
            answers.append(status)
            assert status in (200, 503), status
            if status != 200:
                retry.append(raw)
        assert answers.count(503) >= restore_at - cut_at - 2
        # Meta retries every unacknowledged delivery until it gets a 200.
        deadline = time.monotonic() + 30
        while retry and time.monotonic() < deadline:
            retry = [raw for raw in retry if send(raw) != 200]
        assert not retry

    stored = {r[0] for r in db.execute("select body_sha256 from meta_webhook_event")}
    assert acknowledged <= stored  # nothing acknowledged is lost
    assert {hashlib.sha256(b).hexdigest() for b in bodies} <= stored
    assert (
        db.execute("select count(*) from meta_webhook_event where status <> 'applied'").fetchone()[
            0
        ]
        == 0
    )
    expected = set().union(*(_message_ids(b) for b in bodies))
    got = [
        r[0]
        for r in db.execute(
            "select platform_message_id from conversation_message "
            "where platform_message_id not like 'reaction:%%' "
            "and platform_message_id not like 'postback:%%'"
        )
    ]
    assert len(got) == len(set(got)) and set(got) == expected  # each applied exactly once
    logged = db.execute(
        "select count(*) from user_event where etype like '%%_received' or etype like '%%_sent'"
    ).fetchone()[0]
    assert logged == db.execute("select count(*) from conversation_message").fetchone()[0]


def test_deferred_apply_mode_acknowledges_then_applies_everything(db, database_url: str) -> None:
    with (
        running_sandbox(
            app_secret=APP_SECRET, accounts=1, days=1, extra={"messaging_contacts": 4}
        ) as sb,
        running_receiver(receiver_settings(database_url, sb.base_url, apply_mode="deferred")) as rx,
        httpx.Client(timeout=10) as client,
    ):
        bodies = build_burst(sb.sandbox, 50, seed=12)
        for raw in bodies:
            response = client.post(
                rx.webhook_url, content=raw, headers={"x-hub-signature-256": sign(APP_SECRET, raw)}
            )
            assert response.status_code == 200
        deadline = time.monotonic() + 15
        while (
            db.execute(
                "select count(*) from meta_webhook_event where status = 'pending'"
            ).fetchone()[0]
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    assert db.execute(
        "select count(*), count(*) filter (where status = 'applied') from meta_webhook_event"
    ).fetchone() == (50, 50)
    expected = set().union(*(_message_ids(b) for b in bodies))
    got = {r[0] for r in db.execute("select platform_message_id from conversation_message")}
    assert expected <= got
