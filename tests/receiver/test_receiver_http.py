"""Handshake, signature check, size limit, settings — over real HTTP."""

from __future__ import annotations

import json
import socket
import time

import psycopg
import pytest
from receiver_helpers import APP_SECRET, VERIFY_TOKEN, Rig

from everreach.messaging.settings import ReceiverSettings
from everreach.sandbox.messaging import serialize, sign
from everreach.settings import SettingError


def _handshake(rig: Rig, token: str, mode: str = "subscribe"):
    return rig.client.get(
        rig.receiver.webhook_url,
        params={"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"},
    )


def test_handshake_right_wrong_and_empty_token(rig: Rig) -> None:
    ok = _handshake(rig, VERIFY_TOKEN)
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert _handshake(rig, "nope").status_code == 403
    assert _handshake(rig, "").status_code == 403
    assert _handshake(rig, VERIFY_TOKEN, mode="unsubscribe").status_code == 403


def test_empty_configured_token_never_matches(rig: Rig) -> None:
    rig.receiver.app.state.settings = ReceiverSettings(
        app_secret=APP_SECRET, database_url="x", verify_token=None
    )
    try:
        assert _handshake(rig, "").status_code == 403
    finally:
        rig.receiver.app.state.settings = rig.receiver.settings


def test_refuses_to_start_without_app_secret() -> None:
    with pytest.raises(SettingError, match="META_APP_SECRET"):
        ReceiverSettings.from_env({"DATABASE_URL": "postgresql://u@127.0.0.1:5432/d"})


def test_signature_missing_wrong_right_and_reserialized(rig: Rig) -> None:
    state = rig.state
    body = rig.factory.messaging_body(
        "messenger",
        [
            rig.factory.text_message(
                "messenger",
                state.contacts["messenger"][0],
                rig.sandbox.sandbox.now(),
                "Grüße 😊 https://x.y/z",
            )
        ],
    )
    raw = serialize(body)
    assert b"\\u00fc" in raw and b"\\/" in raw  # escaped like Meta's
    assert rig.post_raw(raw, signature=None).status_code == 401
    assert rig.post_raw(raw, signature="sha256=" + "0" * 64).status_code == 403
    assert rig.post_raw(raw, signature="sha1=abc").status_code == 403
    # Same JSON, re-serialized after signing: the bytes differ, so the signature fails.
    reserialized = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    assert rig.post_raw(reserialized, signature=sign(APP_SECRET, raw)).status_code == 403
    assert rig.scalar("select count(*) from meta_webhook_event") == 0
    response = rig.post_raw(raw)
    assert response.status_code == 200 and response.text == "EVENT_RECEIVED"
    stored, obj, status, headers = rig.one(
        "select raw_body, object_type, status, headers from meta_webhook_event"
    )
    assert bytes(stored) == raw and obj == "page" and status == "applied"
    assert headers["x-hub-signature-256"] == sign(APP_SECRET, raw)


def test_kept_headers_are_stored_and_credentials_never(rig: Rig) -> None:
    raw = serialize(rig.factory.messaging_body("messenger", []))
    response = rig.client.post(
        rig.receiver.webhook_url,
        content=raw,
        headers=[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", sign(APP_SECRET, raw)),
            ("Authorization", "Bearer not-for-the-log"),
            ("Cookie", "session=not-for-the-log"),
            ("X-Request-Id", "first"),
            ("X-Request-Id", "second"),
            ("User-Agent", "facebookexternalua"),
        ],
    )
    assert response.status_code == 200
    (headers,) = rig.one("select headers from meta_webhook_event")
    assert headers == {
        "content-type": "application/json",
        "content-length": str(len(raw)),
        "x-hub-signature-256": sign(APP_SECRET, raw),
        "x-request-id": "first",  # a repeated header: the first, as Starlette's get()
        "user-agent": "facebookexternalua",
    }


def test_request_deadline_408_for_a_trickled_body_503_for_a_stuck_commit(
    rig: Rig, database_url: str
) -> None:
    settings = rig.receiver.settings
    rig.receiver.app.state.settings = settings.model_copy(update={"request_timeout_seconds": 0.5})
    try:
        # A body that never finishes arriving: 408 at the deadline, not a held connection.
        with socket.create_connection(("127.0.0.1", rig.receiver.port), timeout=5) as sock:
            sock.sendall(
                b"POST /api/webhooks/meta HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"obj'
            )
            started = time.monotonic()
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - started < 3
        # A batch that cannot commit in time (its table locked): 503, so Meta retries.
        raw = serialize(rig.factory.messaging_body("messenger", []))
        with psycopg.connect(database_url) as blocker:
            blocker.execute("lock table meta_webhook_event in access exclusive mode")
            started = time.monotonic()
            response = rig.post_raw(raw)
            assert response.status_code == 503 and response.headers["retry-after"] == "5"
            assert time.monotonic() - started < 3
        # Meta's retry after the lock is gone is stored. The stuck batch commits once the
        # lock goes, before the retry's batch (one writer): the body is stored twice, both
        # rows applied — applying is idempotent, the 503 cost one raw row.
        assert rig.post_raw(raw).status_code == 200
        statuses = [r[0] for r in rig.db.execute("select status from meta_webhook_event")]
        assert statuses == ["applied", "applied"]
    finally:
        rig.receiver.app.state.settings = settings


def test_body_limit_3mb_accepted_and_oversize_413(rig: Rig) -> None:
    state = rig.state
    at = rig.sandbox.sandbox.now()
    big_text = "x" * (3 * 1024 * 1024)
    body = rig.factory.messaging_body(
        "messenger",
        [
            rig.factory.text_message(
                "messenger", state.contacts["messenger"][1], at, big_text[:1900]
            )
        ],
    )
    body["padding"] = big_text  # unknown keys are kept in the raw log and ignored
    raw = serialize(body)
    assert len(raw) > 3 * 1024 * 1024
    assert rig.post_raw(raw).status_code == 200
    huge = b"{" + b" " * (rig.receiver.settings.max_body_bytes + 10) + b"}"
    assert rig.post_raw(huge).status_code == 413
    assert rig.scalar("select count(*) from meta_webhook_event") == 1


def test_unknown_and_malformed_bodies_are_kept_and_acknowledged(rig: Rig) -> None:
    for raw in (
        b"not json",
        b"[1,2]",
        b'{"object":"user","entry":[]}',
        b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{}}]}]}',
    ):
        assert rig.post_raw(raw).status_code == 200
    rows = rig.db.execute(
        "select status, error is not null from meta_webhook_event order by id"
    ).fetchall()
    assert rows == [("ignored", True), ("ignored", True), ("ignored", True), ("failed", True)]


def test_json_logs_carry_ids_not_message_text(rig: Rig, caplog) -> None:
    import logging

    from webhook_receiver.logs import JsonFormatter

    wa_id = rig.state.contacts["whatsapp"][0]
    body = rig.factory.whatsapp_body(
        messages=[rig.factory.wa_message(wa_id, rig.sandbox.sandbox.now(), text="secret words")]
    )
    with caplog.at_level(logging.INFO, logger="webhook_receiver"):
        rig.post(body)
    lines = [JsonFormatter().format(r) for r in caplog.records]
    stored = [json.loads(line) for line in lines if "webhook stored" in line]
    assert stored and stored[0]["object"] == "whatsapp_business_account"
    assert stored[0]["status"] == "applied" and stored[0]["events"] == 1
    assert not any("secret words" in line or wa_id in line for line in lines)
