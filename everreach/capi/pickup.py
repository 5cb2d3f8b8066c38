"""Pick conversion rows (``purchase``, ``lead``…) out of ``user_event`` into the CAPI queue.

The app writes its conversions into ``user_event``; each one becomes a CAPI event with
``source = 'user_event'`` and ``source_event_ref = user_event.id``, so a row is picked
up once however often this runs. The user's email and phone come from ``auth.users``
(hashed on the way in), the user id becomes the hashed ``external_id``, and browser
identifiers the app recorded in ``props`` (``fbp``, ``fbc``/``fbclid``, IP, user agent,
page URL) are passed through so Meta can deduplicate against the browser pixel. An
``order_id`` in ``props`` becomes the ``event_id``, the id a pixel would use too.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from everreach.capi.events import MAX_EVENT_AGE, EventValidationError, build_event
from everreach.capi.intake import EnqueueResult, enqueue_events
from everreach.capi.settings import DEFAULT_ETYPE_EVENTS, CapiSettings, parse_etype_map

__all__ = ["DEFAULT_ETYPE_EVENTS", "PickupResult", "parse_etype_map", "pick_up_user_events"]

log = logging.getLogger(__name__)

# Props the app may record with a conversion that Meta takes as is.
_PASSTHROUGH_PROPS = (
    "fbp",
    "fbc",
    "client_ip_address",
    "client_user_agent",
    "event_source_url",
    "action_source",
    "lead_id",
    "ctwa_clid",
)


@dataclass
class PickupResult:
    """What one pickup did."""

    considered: int = 0
    queued: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # field → events skipped


_SELECT = """
select ue.id, ue.user_id, ue.etype, ue.props, ue.occurred_at, u.email, u.phone
from user_event ue
left join auth.users u on u.id = ue.user_id
where ue.etype = any(%(etypes)s)
  and ue.occurred_at >= %(since)s
  and not exists (
      select 1 from meta_conversion_event m
      where m.source = 'user_event' and m.source_event_ref = ue.id::text)
order by ue.id
limit %(limit)s
"""


def _payload(row: Mapping[str, Any], event_name: str) -> dict[str, Any]:
    props = row["props"] if isinstance(row["props"], Mapping) else {}
    payload: dict[str, Any] = {
        "event_name": event_name,
        "event_time": int(row["occurred_at"].timestamp()),
        "email": row["email"],
        "phone": row["phone"],
        "value": props.get("value"),
        "currency": props.get("currency"),
    }
    if props.get("order_id") not in (None, ""):
        payload["event_id"] = str(props["order_id"])
    for key in _PASSTHROUGH_PROPS:
        if props.get(key) not in (None, ""):
            payload[key] = str(props[key])
    if "fbc" not in payload and props.get("fbclid"):
        # Meta's fbc format: fb.<subdomain index>.<click time ms>.<fbclid> (fbclid as is).
        payload["fbc"] = f"fb.1.{int(row['occurred_at'].timestamp() * 1000)}.{props['fbclid']}"
    return {k: v for k, v in payload.items() if v is not None}


def pick_up_user_events(
    conn: psycopg.Connection,
    *,
    etype_events: Mapping[str, str] | None = None,
    settings: CapiSettings | None = None,
    limit: int = 10_000,
    now: _dt.datetime | None = None,
) -> PickupResult:
    """Queue the conversions in ``user_event`` not yet queued (at most ``limit``).

    Rows older than Meta's 7-day limit are left alone (Meta would refuse them). A bad
    email or phone in ``auth.users`` is dropped rather than blocking the event; an
    event that is still invalid (e.g. a purchase without currency) is skipped and
    counted by field.
    """
    mapping = dict(etype_events or DEFAULT_ETYPE_EVENTS)
    settings = settings or CapiSettings.from_env()
    now = now or _dt.datetime.now(_dt.UTC)
    result = PickupResult()
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _SELECT, {"etypes": list(mapping), "since": now - MAX_EVENT_AGE, "limit": limit}
        ).fetchall()
    events = []
    for row in rows:
        result.considered += 1
        payload = _payload(row, mapping[row["etype"]])
        user_id = str(row["user_id"]) if row["user_id"] else None
        for _try in range(3):  # drop at most email, then phone, when they are unusable
            try:
                events.append(
                    build_event(
                        payload,
                        default_pixel_id=settings.pixel_id,
                        test_event_code=settings.test_event_code,
                        user_id=user_id,
                        source="user_event",
                        source_event_ref=str(row["id"]),
                        now=now,
                        default_phone_country=settings.default_phone_country,
                    )
                )
                break
            except EventValidationError as exc:
                if exc.field in ("email", "phone") and exc.field in payload:
                    payload.pop(exc.field)
                    continue
                result.skipped[exc.field] += 1
                break
    enqueued: EnqueueResult = enqueue_events(conn, events) if events else EnqueueResult()
    if not conn.autocommit:
        conn.commit()
    result.queued = len(enqueued.queued)
    result.duplicates = len(enqueued.duplicates)
    if result.skipped:
        log.warning("capi pickup skipped invalid conversions by field: %s", dict(result.skipped))
    return result
