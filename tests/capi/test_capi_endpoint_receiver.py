"""The intake endpoint mounted in the real receiver app, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import psycopg

from everreach.messaging.settings import ReceiverSettings
from webhook_receiver.conversions import PATH
from webhook_receiver.testing import running_receiver

SECRET = "receiver-jwt-secret-for-tests-0123456789"


def test_issue_example_through_the_receiver(
    database_url: str, db: psycopg.Connection, monkeypatch: Any
) -> None:
    monkeypatch.setenv("META_PIXEL_ID", "700000000000001")
    monkeypatch.delenv("META_CAPI_TEST_EVENT_CODE", raising=False)
    settings = ReceiverSettings.from_env(
        app_secret="app-secret",
        database_url=database_url,
        jwt_secret=SECRET,
        pool_min_size=1,
        pool_max_size=2,
    )
    token = jwt.encode(
        {"sub": "3f1c2b9e-0000-4000-8000-00000000abcd", "exp": int(time.time()) + 300},
        SECRET,
        algorithm="HS256",
    )
    body = {
        "event_name": "Purchase",
        "email": "user@example.com",
        "value": 29.99,
        "currency": "USD",
        "test_event_code": "TEST12345",
    }
    with running_receiver(settings) as rx, httpx.Client(base_url=rx.base_url) as http:
        ok = http.post(PATH, json=body, headers={"Authorization": f"Bearer {token}"})
        again = http.post(PATH, json=body, headers={"Authorization": f"Bearer {token}"})
        missing = http.post(PATH, json=body)
    assert ok.status_code == 202 and ok.json()["queued"] == 1
    assert again.json()["duplicates"] == 1
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    row = db.execute(
        "select pixel_id, is_test, status, source from meta_conversion_event"
    ).fetchone()
    assert row == ("700000000000001", True, "pending", "api")
