"""The Conversions API server event: parsing a caller's payload, hashing, validation.

:func:`build_event` turns one intake payload — the seed's flat keys (``email``,
``phone``, ``value``…) and/or Meta's own ``user_data``/``custom_data`` objects — into a
:class:`ConversionEvent` whose ``user_data`` holds only hashed customer information and
the identifiers Meta needs in clear. Nothing downstream ever sees the raw PII.

:func:`delivery_problem` is the check run again just before sending (an event that
waited too long becomes too old for Meta, which would fail the whole batch).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from everreach.capi.normalize import (
    FLAT_KEY_TO_FIELD,
    HASHED_FIELDS,
    PASS_THROUGH_FIELDS,
    NormalizationError,
    normalize_user_data,
)

__all__ = [
    "ACTION_SOURCES",
    "MAX_EVENT_AGE",
    "MESSAGING_CHANNELS",
    "ConversionEvent",
    "EventValidationError",
    "build_event",
    "delivery_problem",
    "derive_event_id",
    "server_event",
]

ACTION_SOURCES = frozenset(
    {
        "website",
        "app",
        "email",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)
MESSAGING_CHANNELS = frozenset({"messenger", "whatsapp", "instagram"})
#: Meta refuses a request containing an event older than this.
MAX_EVENT_AGE = _dt.timedelta(days=7)
#: Meta refuses events from the future; allow for clock skew between servers.
MAX_CLOCK_SKEW = _dt.timedelta(minutes=10)

# Keys accepted at the top level of an intake payload. Anything else is refused:
# an unexpected key could smuggle clear-text PII into storage.
_TOP_LEVEL_KEYS = frozenset(
    {
        "pixel_id",
        "event_name",
        "event_time",
        "event_id",
        "action_source",
        "event_source_url",
        "messaging_channel",
        "value",
        "currency",
        "test_event_code",
        "custom_data",
        "user_data",
        "date_of_birth",
        "email",
        "phone",
        "first_name",
        "last_name",
        "city",
        "state",
        "zip",
        "country",
        "gender",
        "external_id",
        "client_ip_address",
        "client_user_agent",
        "fbp",
        "fbc",
        "lead_id",
        "ctwa_clid",
        "opt_out",
    }
)
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_PIXEL_ID = re.compile(r"\d{1,32}")
_TEST_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# user_data keys that, alone, let Meta match an event to a person (or a click).
_MATCH_KEYS = frozenset(HASHED_FIELDS) | frozenset(PASS_THROUGH_FIELDS)


class EventValidationError(ValueError):
    """An intake payload that cannot become a valid CAPI event.

    ``field`` names the offending key (``email``, ``event_time``, ``user_data.ph``…);
    the message never contains personal data.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class ConversionEvent:
    """One server event, ready to store in ``meta_conversion_event`` and send to Meta."""

    pixel_id: str
    event_name: str
    event_time: _dt.datetime
    event_id: str
    action_source: str
    user_data: dict[str, Any]
    custom_data: dict[str, Any] = field(default_factory=dict)
    event_source_url: str | None = None
    messaging_channel: str | None = None
    value: Decimal | None = None
    currency: str | None = None
    test_event_code: str | None = None
    user_id: str | None = None
    source: str = "function"
    source_event_ref: str | None = None

    @property
    def is_test(self) -> bool:
        """Test events are flagged so marts can leave them out."""
        return self.test_event_code is not None


def server_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """Meta's server-event object for a stored row (or a :class:`ConversionEvent` dict)."""
    event_time = row["event_time"]
    if isinstance(event_time, _dt.datetime):
        event_time = int(event_time.timestamp())
    event: dict[str, Any] = {
        "event_name": row["event_name"],
        "event_time": int(event_time),
        "event_id": row["event_id"],
        "action_source": row["action_source"],
        "user_data": row["user_data"] or {},
    }
    if row.get("event_source_url"):
        event["event_source_url"] = row["event_source_url"]
    if row.get("messaging_channel"):
        event["messaging_channel"] = row["messaging_channel"]
    custom = dict(row.get("custom_data") or {})
    if row.get("value") is not None:
        custom["value"] = float(row["value"])
    if row.get("currency"):
        custom["currency"] = row["currency"]
    if custom:
        event["custom_data"] = custom
    return event


def _text(payload: Mapping[str, Any], key: str, *, max_len: int = 2048) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventValidationError(key, "must be a string")
    value = value.strip()
    if len(value) > max_len:
        raise EventValidationError(key, f"is longer than {max_len} characters")
    return value or None


def _event_time(raw: Any, now: _dt.datetime) -> tuple[_dt.datetime, bool]:
    """(event time, whether the caller gave it)."""
    if raw is None or raw == "":
        return now.replace(microsecond=0), False
    if isinstance(raw, bool):
        raise EventValidationError("event_time", "must be unix seconds or an ISO 8601 time")
    if isinstance(raw, int | float):
        seconds = float(raw)
        if seconds > 1e11:  # milliseconds (JavaScript's Date.now()) are a common slip
            raise EventValidationError("event_time", "looks like milliseconds; send unix seconds")
        return _dt.datetime.fromtimestamp(int(seconds), _dt.UTC), True
    if isinstance(raw, str):
        text = raw.strip()
        if text.isdigit():
            return _event_time(int(text), now)
        try:
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise EventValidationError(
                "event_time", "must be unix seconds or an ISO 8601 time"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.UTC)
        return parsed.astimezone(_dt.UTC).replace(microsecond=0), True
    raise EventValidationError("event_time", "must be unix seconds or an ISO 8601 time")


def _decimal(raw: Any) -> Decimal | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise EventValidationError("value", "must be a number")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise EventValidationError("value", "must be a number") from None
    if not value.is_finite() or abs(value) >= Decimal("1e14"):
        raise EventValidationError("value", "is out of range")
    return value


def _user_data(
    payload: Mapping[str, Any], *, user_id: str | None, default_phone_country: str | None
) -> dict[str, Any]:
    """Merge flat keys and Meta's ``user_data`` object, then hash; errors name the key."""
    nested = payload.get("user_data")
    if nested is not None and not isinstance(nested, Mapping):
        raise EventValidationError("user_data", "must be an object")
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}  # user_data key → the caller's key, for error messages
    for flat_key, meta_key in FLAT_KEY_TO_FIELD.items():
        if payload.get(flat_key) not in (None, ""):
            merged[meta_key] = payload[flat_key]
            origin[meta_key] = flat_key
    for key in ("lead_id", "ctwa_clid"):
        if payload.get(key) not in (None, ""):
            merged[key] = payload[key]
            origin[key] = key
    for key, value in (nested or {}).items():
        merged[key] = value  # Meta's own keys win over the flat aliases
        origin[key] = f"user_data.{key}"
    if "external_id" not in merged and user_id:
        # The authenticated user is the best external id we have: it matches the id the
        # app sends with its browser pixel (advanced matching), hashed the same way.
        merged["external_id"] = user_id
        origin["external_id"] = "external_id"
    try:
        return normalize_user_data(merged, default_phone_country=default_phone_country)
    except NormalizationError as exc:
        raise EventValidationError(origin.get(exc.field, exc.field), exc.problem) from None


def derive_event_id(
    pixel_id: str,
    event_name: str,
    event_time: _dt.datetime | None,
    user_data: Mapping[str, Any],
    custom_data: Mapping[str, Any],
    source_event_ref: str | None = None,
) -> str:
    """A deterministic event id: the same event resubmitted gets the same id.

    Built from the already hashed user data, so no PII enters the id. When the caller
    gave no event time, the UTC date stands in for it: a resubmission the same day
    collapses, a genuinely new identical event on another day does not.
    """
    when = event_time.isoformat() if event_time else None
    material = orjson.dumps(
        [pixel_id, event_name, when, source_event_ref, user_data, custom_data],
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return "er_" + hashlib.sha256(material).hexdigest()[:32]


def build_event(
    payload: Mapping[str, Any],
    *,
    default_pixel_id: str | None = None,
    test_event_code: str | None = None,
    user_id: str | None = None,
    source: str = "function",
    source_event_ref: str | None = None,
    default_action_source: str | None = None,
    default_phone_country: str | None = "us",
    now: _dt.datetime | None = None,
    max_age: _dt.timedelta | None = None,
) -> ConversionEvent:
    """Validate one intake payload and hash its customer information.

    ``test_event_code`` is the global test mode (``META_CAPI_TEST_EVENT_CODE``); a code
    in the payload wins for that event. Raises :class:`EventValidationError` naming the
    field. The event's age is checked only when ``max_age`` is given (the intake doors
    pass :data:`MAX_EVENT_AGE`); a stored event that waited too long is caught again by
    :func:`delivery_problem` before sending.
    """
    if not isinstance(payload, Mapping):
        raise EventValidationError("body", "each event must be a JSON object")
    unknown = sorted(set(payload) - _TOP_LEVEL_KEYS)
    if unknown:
        raise EventValidationError(unknown[0], "is not a supported field")
    now = now or _dt.datetime.now(_dt.UTC)

    pixel_id = _text(payload, "pixel_id") or default_pixel_id
    if not pixel_id:
        raise EventValidationError("pixel_id", "is required (or set META_PIXEL_ID)")
    if not _PIXEL_ID.fullmatch(str(pixel_id)):
        raise EventValidationError("pixel_id", "must be digits")

    event_name = _text(payload, "event_name", max_len=100)
    if not event_name:
        raise EventValidationError("event_name", "is required")
    if not _EVENT_NAME.fullmatch(event_name):
        raise EventValidationError("event_name", "must be letters, digits and underscores")

    event_time, time_given = _event_time(payload.get("event_time"), now)
    if event_time > now + MAX_CLOCK_SKEW:
        raise EventValidationError("event_time", "is in the future")
    if max_age is not None and event_time < now - max_age:
        # one such event would fail Meta's whole batch: refuse it now, while the caller can
        # still hear it, rather than store it to be rejected at delivery
        raise EventValidationError(
            "event_time",
            f"is more than {max_age.days} days old; Meta refuses conversions older than that",
        )

    event_source_url = _text(payload, "event_source_url")
    if event_source_url and not event_source_url.startswith(("http://", "https://")):
        raise EventValidationError("event_source_url", "must be an http(s) URL")
    action_source = (
        _text(payload, "action_source", max_len=32)
        or default_action_source
        or ("website" if event_source_url else "other")
    )
    if action_source not in ACTION_SOURCES:
        raise EventValidationError(
            "action_source", "must be one of " + ", ".join(sorted(ACTION_SOURCES))
        )

    user_data = _user_data(payload, user_id=user_id, default_phone_country=default_phone_country)
    if not user_data:
        raise EventValidationError("user_data", "needs at least one customer identifier")

    messaging_channel = _text(payload, "messaging_channel", max_len=32)
    problem = _action_source_problem(action_source, event_source_url, user_data, messaging_channel)
    if problem:
        raise EventValidationError(*problem)

    custom_data = payload.get("custom_data")
    custom_data = {} if custom_data is None else custom_data
    if not isinstance(custom_data, Mapping):
        raise EventValidationError("custom_data", "must be an object")
    custom_data = dict(custom_data)
    value = _decimal(payload.get("value", custom_data.pop("value", None)))
    currency = payload.get("currency", custom_data.pop("currency", None))
    custom_data.pop("value", None)
    custom_data.pop("currency", None)
    if currency is not None:
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency.strip()):
            raise EventValidationError("currency", "must be a 3-letter ISO 4217 code")
        currency = currency.strip().upper()
    if event_name == "Purchase" and (value is None or currency is None):
        # Meta requires both for Purchase; without them the event is refused.
        raise EventValidationError(
            "value" if value is None else "currency", "is required for Purchase events"
        )
    if value is not None and currency is None:
        raise EventValidationError("currency", "is required when value is given")

    code = _text(payload, "test_event_code", max_len=64) or test_event_code
    if code is not None and not _TEST_CODE.fullmatch(code):
        raise EventValidationError("test_event_code", "must be letters and digits")

    event_id = _text(payload, "event_id", max_len=200)
    if not event_id:
        id_custom = {
            **custom_data,
            "value": str(value) if value is not None else None,
            "currency": currency,
        }
        if not time_given:
            id_custom["_day"] = event_time.date().isoformat()
        event_id = derive_event_id(
            str(pixel_id),
            event_name,
            event_time if time_given else None,
            user_data,
            id_custom,
            source_event_ref,
        )
    return ConversionEvent(
        pixel_id=str(pixel_id),
        event_name=event_name,
        event_time=event_time,
        event_id=event_id,
        action_source=action_source,
        user_data=user_data,
        custom_data=custom_data,
        event_source_url=event_source_url,
        messaging_channel=messaging_channel,
        value=value,
        currency=currency,
        test_event_code=code,
        user_id=user_id,
        source=source,
        source_event_ref=source_event_ref,
    )


def _action_source_problem(
    action_source: str,
    event_source_url: str | None,
    user_data: Mapping[str, Any],
    messaging_channel: str | None,
) -> tuple[str, str] | None:
    """Meta's per-action_source requirements: (field, problem) or None."""
    if action_source == "website":
        if not event_source_url:
            return "event_source_url", "is required for website events"
        if not user_data.get("client_user_agent"):
            return "client_user_agent", "is required for website events"
    elif action_source == "app":
        # App events need app_data (advertiser_tracking_enabled, extinfo), which
        # this intake does not carry: refuse rather than let Meta fail the batch.
        return "action_source", "app events need app_data, which this intake does not accept"
    elif action_source == "business_messaging":
        if messaging_channel not in MESSAGING_CHANNELS:
            return "messaging_channel", "must be messenger, whatsapp or instagram"
        if messaging_channel == "whatsapp" and not user_data.get("ctwa_clid"):
            return "ctwa_clid", "is required for WhatsApp business messaging events"
    if messaging_channel and action_source != "business_messaging":
        return "messaging_channel", "is only for business_messaging events"
    if not _MATCH_KEYS.intersection(user_data):
        return "user_data", "needs at least one customer identifier"
    return None


def delivery_problem(row: Mapping[str, Any], now: _dt.datetime) -> str | None:
    """Why Meta would refuse this stored event now (so it is rejected locally), or None."""
    event_time = row["event_time"]
    if event_time < now - MAX_EVENT_AGE:
        return "event_time is more than 7 days old; Meta refuses events that old"
    if event_time > now + MAX_CLOCK_SKEW:
        return "event_time is in the future"
    for key in ("event_name", "event_id", "action_source"):
        if not row.get(key):
            return f"{key} is missing"
    user_data = row.get("user_data") or {}
    if not user_data:
        return "user_data is missing"
    for key in HASHED_FIELDS:
        values = user_data.get(key)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and not (isinstance(value, str) and len(value) == 64):
                return f"user_data.{key} is not hashed"
    problem = _action_source_problem(
        row["action_source"], row.get("event_source_url"), user_data, row.get("messaging_channel")
    )
    if problem:
        return f"{problem[0]} {problem[1]}"
    return None
