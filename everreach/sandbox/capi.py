"""Sandbox domain: the Conversions API ``POST /{pixel-id}/events``.

Validates a request the way Meta does — one bad event fails the whole request, which is
what makes batching hard in the real world and worth testing here:

* ``data`` is a JSON array of 1..1000 server events;
* each event has ``event_name``, an integer ``event_time`` at most 7 days old (and not in
  the future), a known ``action_source``, and a ``user_data`` object;
* website events carry ``event_source_url`` and ``user_data.client_user_agent``;
* customer-information fields (``em``, ``ph``, …) are SHA-256 hex, else code 100 with
  subcode 2804016 (unhashed PII);
* ``Purchase`` needs ``custom_data.value`` and ``custom_data.currency``.

The error names the event's index (``data[3]``) in ``error_user_msg``. A valid request
answers ``{"events_received", "messages", "fbtrace_id"}``. Everything accepted is kept
in ``sandbox.capi_received`` (dicts with ``pixel_id``, ``event``, ``test_event_code``)
so tests can inspect it. Knobs in ``config.extra``: ``pixels`` (list of pixel ids).
Tests can make the next N calls fail transiently with ``fail_next(sandbox, n)``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from everreach.sandbox.core import Sandbox

#: The pixel every sandbox has unless ``config.extra["pixels"]`` lists others.
DEFAULT_PIXEL_ID = "700000000000001"

_ACTION_SOURCES = frozenset(
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
_HASHED = ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id")
_HEX = frozenset("0123456789abcdef")
_MAX_EVENTS = 1000
_MAX_AGE = timedelta(days=7)


@dataclass
class CapiState:
    """What the CAPI domain keeps on the sandbox."""

    pixels: list[str]
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    fail_next: int = 0
    fail_code: int = 2
    lock: threading.Lock = field(default_factory=threading.Lock)


def register(sandbox: Sandbox) -> None:
    """Register the configured pixels (``config.extra["pixels"]``) as ``pixel`` nodes."""
    import sys

    pixels = [str(p) for p in sandbox.config.extra.get("pixels") or [DEFAULT_PIXEL_ID]]
    state = CapiState(pixels=pixels)
    sandbox.domains["capi"] = state
    sandbox.capi_received = state.received  # type: ignore[attr-defined]
    module = sys.modules[__name__]
    for pixel_id in pixels:
        sandbox.register_node(pixel_id, "pixel", module)


def fail_next(sandbox: Sandbox, count: int, code: int = 2) -> None:
    """Make the next ``count`` CAPI calls fail with a transient error ``code`` (1, 2, 613…)."""
    state: CapiState = sandbox.domains["capi"]
    with state.lock:
        state.fail_next = count
        state.fail_code = code


def _bad_event(
    sandbox: Sandbox,
    index: int,
    problem: str,
    *,
    subcode: int = 2804001,
    title: str = "Invalid parameter",
) -> Response:
    return sandbox.error_response(
        100,
        "Invalid parameter",
        subcode=subcode,
        type="OAuthException",
        user_title=title,
        user_msg=f"data[{index}]: {problem}",
    )


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


def _event_problem(event: Any, now_ts: float) -> tuple[str, int, str] | None:
    """(problem, subcode, title) for the first reason Meta would refuse ``event``."""
    if not isinstance(event, dict):
        return "each event must be an object", 2804001, "Invalid parameter"
    if not isinstance(event.get("event_name"), str) or not event["event_name"]:
        return "event_name is required", 2804002, "Missing event name"
    event_time = event.get("event_time")
    if isinstance(event_time, bool) or not isinstance(event_time, int):
        return "event_time must be an integer unix timestamp", 2804003, "Invalid event time"
    if event_time < now_ts - _MAX_AGE.total_seconds():
        return (
            (
                "The timestamp for this event is too far in the past. Events need to be "
                "sent within 7 days of when they occurred."
            ),
            2804004,
            "Event Timestamp Too Old",
        )
    if event_time > now_ts + 600:
        return "The timestamp for this event is in the future.", 2804005, "Event In Future"
    source = event.get("action_source")
    if source not in _ACTION_SOURCES:
        return "action_source is missing or not supported", 2804006, "Invalid action_source"
    user_data = event.get("user_data")
    if not isinstance(user_data, dict) or not user_data:
        return "user_data is required", 2804007, "Missing user_data"
    for key in _HASHED:
        value = user_data.get(key)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        if not all(_is_hash(v) for v in values):
            return (
                (
                    f"user_data.{key} must be hashed with SHA-256 (unhashed personal data "
                    "is not accepted)"
                ),
                2804016,
                "Unhashed PII",
            )
    if source == "website":
        if not event.get("event_source_url"):
            return (
                "event_source_url is required for website events",
                2804008,
                "Missing event_source_url",
            )
        if not user_data.get("client_user_agent"):
            return (
                "client_user_agent is required for website events",
                2804009,
                "Missing client_user_agent",
            )
    if source == "business_messaging" and event.get("messaging_channel") not in (
        "messenger",
        "whatsapp",
        "instagram",
    ):
        return (
            "messaging_channel is required for business_messaging events",
            2804010,
            "Missing messaging_channel",
        )
    custom = event.get("custom_data") or {}
    if not isinstance(custom, dict):
        return "custom_data must be an object", 2804001, "Invalid parameter"
    currency = custom.get("currency")
    if currency is not None and (
        not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha()
    ):
        return "currency must be a 3-letter ISO 4217 code", 2804011, "Invalid currency"
    if event["event_name"] == "Purchase" and (custom.get("value") is None or currency is None):
        return (
            "Purchase events require custom_data.value and custom_data.currency",
            2804019,
            "Missing value or currency",
        )
    return None


def handle(
    request: Request, sandbox: Sandbox, node_id: str, kind: str, edge: str | None
) -> Response:
    """``GET /{pixel}`` (the pixel node) and ``POST /{pixel}/events``."""
    state: CapiState = sandbox.domains["capi"]
    if edge is None and request.method == "GET":
        return sandbox.json_response({"id": node_id, "name": f"Sandbox pixel {node_id}"})
    if edge != "events" or request.method != "POST":
        return sandbox.unknown_node_response(f"{node_id}/{edge}", request.method)
    with state.lock:
        state.requests += 1
        failing = state.fail_next > 0
        if failing:
            state.fail_next -= 1
    if failing:
        sandbox.stats["capi_faults"] += 1
        return sandbox.error_response(
            state.fail_code,
            "An unexpected error has occurred. Please retry your request later.",
            status=503 if state.fail_code == 2 else 500,
            is_transient=True,
        )

    params = request.state.params
    raw = params.get("data")
    if raw is None or raw == "":
        return sandbox.error_response(100, "(#100) The parameter data is required")
    try:
        data = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        return sandbox.error_response(100, "(#100) param data must be an array.")
    if not isinstance(data, list) or not data:
        return sandbox.error_response(100, "(#100) param data must be an array.")
    if len(data) > _MAX_EVENTS:
        return sandbox.error_response(
            100, f"(#100) param data must be an array of maximum size {_MAX_EVENTS}"
        )
    now_ts = sandbox.now().timestamp()
    for index, event in enumerate(data):
        problem = _event_problem(event, now_ts)
        if problem is not None:
            text, subcode, title = problem
            sandbox.stats["capi_rejected_requests"] += 1
            return _bad_event(sandbox, index, text, subcode=subcode, title=title)
    code = params.get("test_event_code") or None
    with state.lock:
        for event in data:
            state.received.append({"pixel_id": node_id, "event": event, "test_event_code": code})
    sandbox.stats["capi_events"] += len(data)
    return sandbox.json_response(
        {"events_received": len(data), "messages": [], "fbtrace_id": sandbox.new_fbtrace_id()}
    )


def extra_routes(sandbox: Sandbox) -> list[Route]:
    """``GET /_sandbox/capi/received``: what the sandbox accepted (for demos and tests)."""

    async def received(request: Request) -> Response:
        state: CapiState = sandbox.domains["capi"]
        pixel = request.query_params.get("pixel_id")
        with state.lock:
            rows = [r for r in state.received if pixel is None or r["pixel_id"] == pixel]
        return sandbox.json_response({"count": len(rows), "data": rows[-1000:]})

    return [Route("/_sandbox/capi/received", received, methods=["GET"])]
