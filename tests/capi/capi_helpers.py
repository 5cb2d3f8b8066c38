"""Helpers shared by the CAPI tests: valid payloads and bulk queueing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from everreach.capi.intake import enqueue_conversions
from everreach.capi.settings import CapiSettings
from everreach.sandbox.capi import DEFAULT_PIXEL_ID

PIXEL = DEFAULT_PIXEL_ID
SETTINGS = CapiSettings(pixel_id=PIXEL)


def purchase(i: int, *, when: dt.datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A valid Purchase payload numbered ``i``."""
    when = when or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return {
        "event_name": "Purchase",
        "event_id": f"order-{i}",
        "email": f"buyer{i}@example.com",
        "value": 10 + i,
        "currency": "USD",
        "event_time": int(when.timestamp()),
        **extra,
    }


def queue(conn: psycopg.Connection, payloads: list[dict[str, Any]], **kw: Any) -> None:
    """Queue payloads 1000 at a time (the intake's per-call limit)."""
    for start in range(0, len(payloads), 1000):
        enqueue_conversions(conn, payloads[start : start + 1000], settings=SETTINGS, **kw)
