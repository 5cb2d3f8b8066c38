"""Intake: validated, hashed conversion events into ``meta_conversion_event``.

Three doors lead here: the receiver's ``POST /api/v1/integrations/meta/conversions``
(async, :func:`enqueue_events_async`), Python callers (:func:`enqueue_conversions`),
and the Dagster asset that picks conversions out of ``user_event``. All of them store
through one statement, so dedup works the same everywhere: ``(pixel_id, event_name,
event_id)`` is unique and a resubmitted event is skipped, not stored twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg

from everreach.capi.events import (
    MAX_EVENT_AGE,
    ConversionEvent,
    EventValidationError,
    build_event,
)
from everreach.capi.settings import CapiSettings

__all__ = [
    "CapiSettings",
    "EnqueueResult",
    "build_events",
    "enqueue_conversions",
    "enqueue_events",
    "enqueue_events_async",
]

log = logging.getLogger(__name__)


@dataclass
class EnqueueResult:
    """What an intake call did: ids stored now, ids that were already there."""

    queued: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body the endpoint answers with."""
        return {
            "received": len(self.queued) + len(self.duplicates),
            "queued": len(self.queued),
            "duplicates": len(self.duplicates),
            "events": [{"event_id": e, "status": "queued"} for e in self.queued]
            + [{"event_id": e, "status": "duplicate"} for e in self.duplicates],
        }


def _user_uuid(user_id: str | None) -> str | None:
    """The user id as a UUID string, or None when it is not one (e.g. a non-app subject)."""
    if not user_id:
        return None
    try:
        return str(uuid.UUID(str(user_id)))
    except ValueError:
        return None


def build_events(
    payloads: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    settings: CapiSettings | None = None,
    user_id: str | None = None,
    source: str = "function",
) -> list[ConversionEvent]:
    """Validate and hash one payload or a list of them, all-or-nothing.

    Raises :class:`EventValidationError` whose ``field`` is prefixed with the event's
    index when a list was given (``[2].email``), so a caller can find the bad event. An
    event older than Meta's limit (:data:`MAX_EVENT_AGE`) is refused as ``event_time``.
    """
    settings = settings or CapiSettings.from_env()
    single = isinstance(payloads, Mapping)
    items = [payloads] if single else list(payloads)
    if not items:
        raise EventValidationError("body", "contains no events")
    if len(items) > 1000:
        raise EventValidationError("body", "at most 1000 events per call")
    events = []
    for index, payload in enumerate(items):
        try:
            events.append(
                build_event(
                    payload,
                    default_pixel_id=settings.pixel_id,
                    test_event_code=settings.test_event_code,
                    user_id=user_id,
                    source=source,
                    default_phone_country=settings.default_phone_country,
                    max_age=MAX_EVENT_AGE,
                )
            )
        except EventValidationError as exc:
            if single:
                raise
            raise EventValidationError(f"[{index}].{exc.field}", exc.problem) from None
    return events


# One statement for any number of events: the rows travel as one jsonb array, the
# user id is kept only when it names an existing user (the FK would fail otherwise),
# and every unique key (event identity, source reference) makes a resubmission a no-op.
_INSERT = """
insert into meta_conversion_event (
    pixel_id, event_name, event_id, event_time, action_source, event_source_url,
    messaging_channel, user_id, user_data, custom_data, value, currency,
    test_event_code, is_test, source, source_event_ref)
select v.pixel_id, v.event_name, v.event_id, v.event_time, v.action_source,
       v.event_source_url, v.messaging_channel, u.id, v.user_data, v.custom_data,
       v.value, v.currency, v.test_event_code, v.test_event_code is not null,
       v.source, v.source_event_ref
from jsonb_to_recordset(%s::jsonb) as v(
    ord int, pixel_id text, event_name text, event_id text, event_time timestamptz,
    action_source text, event_source_url text, messaging_channel text, user_id uuid,
    user_data jsonb, custom_data jsonb, value numeric, currency text,
    test_event_code text, source text, source_event_ref text)
left join auth.users u on u.id = v.user_id
order by v.ord
on conflict do nothing
returning event_id
"""


def _rows_json(events: Sequence[ConversionEvent]) -> bytes:
    return orjson.dumps(
        [
            {
                "ord": i,
                "pixel_id": e.pixel_id,
                "event_name": e.event_name,
                "event_id": e.event_id,
                "event_time": e.event_time.isoformat(),
                "action_source": e.action_source,
                "event_source_url": e.event_source_url,
                "messaging_channel": e.messaging_channel,
                "user_id": _user_uuid(e.user_id),
                "user_data": e.user_data,
                "custom_data": e.custom_data,
                "value": str(e.value) if e.value is not None else None,
                "currency": e.currency,
                "test_event_code": e.test_event_code,
                "source": e.source,
                "source_event_ref": e.source_event_ref,
            }
            for i, e in enumerate(events)
        ]
    )


def _result(events: Sequence[ConversionEvent], stored: Iterable[str]) -> EnqueueResult:
    stored_ids = set(stored)
    result = EnqueueResult()
    seen: set[str] = set()
    for e in events:
        if e.event_id in stored_ids and e.event_id not in seen:
            result.queued.append(e.event_id)
        else:
            result.duplicates.append(e.event_id)
        seen.add(e.event_id)
    log.info("capi intake: %d queued, %d duplicates", len(result.queued), len(result.duplicates))
    return result


def enqueue_events(conn: psycopg.Connection, events: Sequence[ConversionEvent]) -> EnqueueResult:
    """Store already built events as ``pending``; resubmissions are skipped."""
    if not events:
        return EnqueueResult()
    with conn.cursor() as cur:
        cur.execute(_INSERT, (_rows_json(events).decode(),))
        stored = [row[0] for row in cur.fetchall()]
    return _result(events, stored)


async def enqueue_events_async(
    conn: psycopg.AsyncConnection, events: Sequence[ConversionEvent]
) -> EnqueueResult:
    """:func:`enqueue_events` on an async connection (the receiver's pool)."""
    if not events:
        return EnqueueResult()
    async with conn.cursor() as cur:
        await cur.execute(_INSERT, (_rows_json(events).decode(),))
        stored = [row[0] for row in await cur.fetchall()]
    return _result(events, stored)


def enqueue_conversions(
    conn: psycopg.Connection,
    payloads: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    settings: CapiSettings | None = None,
    user_id: str | None = None,
    source: str = "function",
) -> EnqueueResult:
    """Queue conversions for delivery: the Python door to the Conversions API.

    ``payloads`` is one event or a list, in the endpoint's body format (flat seed keys
    and/or Meta's ``user_data``). Personal data is normalized and hashed before anything
    is stored; a malformed event raises :class:`EventValidationError` and nothing is
    stored. Commits when ``conn`` is not in autocommit mode.
    """
    events = build_events(payloads, settings=settings, user_id=user_id, source=source)
    result = enqueue_events(conn, events)
    if not conn.autocommit:
        conn.commit()
    return result
