"""``run_demo`` queues the demo conversions in test mode and the sandbox accepts them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from everreach_pipelines.demo.capi import DEMO_TEST_EVENT_CODE, run_demo


@dataclass
class Ctx:
    database_url: str
    sandbox_base_url: str | None
    graph_client_kwargs: dict[str, Any]
    messages: list[str] = field(default_factory=list)

    def log(self, msg: str) -> None:
        self.messages.append(msg)


def test_demo_sends_test_conversions(
    database_url: str, db: psycopg.Connection, sandbox: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("META_PIXEL_ID", raising=False)
    monkeypatch.delenv("META_CAPI_TEST_EVENT_CODE", raising=False)
    ctx = Ctx(
        database_url,
        sandbox.base_url,
        {"access_token": "sandbox-token", "base_url": sandbox.base_url},
    )
    lines = run_demo(ctx)
    assert len(lines) == 3 and "5 demo conversions queued" in lines[0]
    assert "5 duplicates" in lines[0] and "5 sent" in lines[1]
    received = sandbox.sandbox.capi_received
    assert len(received) == 5
    assert {r["test_event_code"] for r in received} == {DEMO_TEST_EVENT_CODE}
    assert db.execute(
        "select bool_and(is_test), count(*) from meta_conversion_event where status = 'sent'"
    ).fetchone() == (True, 5)


def test_demo_against_real_meta_needs_a_pixel(database_url: str, monkeypatch: Any) -> None:
    monkeypatch.delenv("META_PIXEL_ID", raising=False)
    ctx = Ctx(database_url, None, {"access_token": "t", "base_url": "http://127.0.0.1:9"})
    assert run_demo(ctx) == [
        "CAPI: skipped (set META_PIXEL_ID to send the demo conversions in test mode)"
    ]
