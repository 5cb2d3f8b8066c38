"""``POST /api/v1/integrations/meta/conversions``: the HTTP door to the Conversions API.

Authenticated with the app's JWT. An end user's token (``sub`` = user id) queues events
for that user only; the app backend's service-role token (``EVERREACH_RECEIVER_SERVICE_ROLES``)
may name any user with an event's ``user_id``. The body is one event or a list (at most
1000) in the seed's flat format or with Meta's ``user_data``; personal data is hashed by
:mod:`everreach.capi` before anything is stored or logged. Answers ``202`` with per-event
``queued``/``duplicate``; ``401`` for a bad token; ``403`` for an event of another user;
``422`` naming the field for a malformed body (`event_time` for an event older than Meta's
7-day limit or in the future). Delivery to Meta happens later, in Dagster.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from everreach.capi.events import ConversionEvent, EventValidationError
from everreach.capi.intake import build_events, enqueue_events_async
from everreach.messaging.settings import DEFAULT_SERVICE_ROLES
from everreach.settings import secret_value
from webhook_receiver.auth import (
    AuthError,
    Forbidden,
    forbidden_response,
    is_service,
    unauthorized_response,
    verify_bearer,
)

__all__ = ["PATH", "conversions_endpoint", "routes"]

log = logging.getLogger(__name__)

PATH = "/api/v1/integrations/meta/conversions"
MAX_BODY_BYTES = 2 * 1024 * 1024  # 1000 events with generous custom_data


def _unprocessable(field: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_event", "field": field, "detail": detail}, status_code=422
    )


def _event_users(
    payload: dict | list, claims: dict[str, Any], service: bool
) -> list[tuple[dict[str, Any], str | None]]:
    """Each event with the user it is for; :class:`Forbidden` when an end user's token names
    another user (only the app backend may queue events for any user)."""
    single = isinstance(payload, dict)
    items = [payload] if single else payload
    subject = claims.get("sub")
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "user_id" not in item:
            out.append((item, subject))
            continue
        event = dict(item)
        user_id = event.pop("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise EventValidationError(
                "user_id" if single else f"[{index}].user_id", "must be a string"
            )
        if not service and user_id is not None and user_id != subject:
            where = "the event" if single else f"event [{index}]"
            raise Forbidden(
                f"{where} is for another user: an end user's token may queue conversion "
                "events for that user only (the app backend's service-role token may name "
                "any user)"
            )
        out.append((event, user_id))
    return out


def _build(
    items: list[tuple[dict[str, Any], str | None]], settings: Any, single: bool
) -> list[ConversionEvent]:
    if len({user for _, user in items}) <= 1:
        payload = items[0][0] if single else [event for event, _ in items]
        return build_events(payload, settings=settings.capi, user_id=items[0][1], source="api")
    events = []
    for index, (event, user) in enumerate(items):
        try:
            events += build_events(event, settings=settings.capi, user_id=user, source="api")
        except EventValidationError as exc:
            raise EventValidationError(f"[{index}].{exc.field}", exc.problem) from None
    return events


async def conversions_endpoint(request: Request) -> Response:
    """Validate, hash and queue conversion events (an end user's token: its own only)."""
    settings = request.app.state.settings
    service_roles = getattr(settings, "service_roles", DEFAULT_SERVICE_ROLES)
    try:
        claims = verify_bearer(
            request, secret_value(settings.jwt_secret) or "", service_roles=service_roles
        )
    except AuthError as exc:
        return unauthorized_response(exc)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse({"error": "too_large", "detail": "body exceeds 2 MB"}, status_code=413)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # The parser's message can quote the body, which may hold PII: keep it out.
        return _unprocessable("body", "body is not valid JSON")
    if not isinstance(payload, dict | list):
        return _unprocessable("body", "body must be an event object or a list of them")
    try:
        items = _event_users(payload, claims, is_service(claims, service_roles))
        if not items:
            raise EventValidationError("body", "contains no events")
        events = _build(items, settings, isinstance(payload, dict))
    except Forbidden as exc:
        log.info("capi intake refused: an event for another user")
        return forbidden_response(exc)
    except EventValidationError as exc:
        log.info("capi intake refused an event: field %s", exc.field)
        return _unprocessable(exc.field, str(exc))
    async with request.app.state.pool.connection() as conn:
        result = await enqueue_events_async(conn, events)
    return JSONResponse(result.as_dict(), status_code=202)


def routes() -> list[Route]:
    """The CAPI intake route, mounted by ``webhook_receiver.app.create_app``."""
    return [Route(PATH, conversions_endpoint, methods=["POST"])]
