"""``POST /api/v1/integrations/meta/conversions``: the HTTP door to the Conversions API.

Authenticated with the app's user JWT (``sub`` = user id). The body is one event or a
list (at most 1000) in the seed's flat format or with Meta's ``user_data``; personal data
is hashed by :mod:`everreach.capi` before anything is stored or logged. Answers
``202`` with per-event ``queued``/``duplicate``; ``401`` for a bad token; ``422``
naming the field for a malformed body. Delivery to Meta happens later, in Dagster.
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from everreach.capi.events import EventValidationError
from everreach.capi.intake import build_events, enqueue_events_async
from everreach.settings import secret_value
from webhook_receiver.auth import AuthError, unauthorized_response, verify_bearer

__all__ = ["PATH", "conversions_endpoint", "routes"]

log = logging.getLogger(__name__)

PATH = "/api/v1/integrations/meta/conversions"
MAX_BODY_BYTES = 2 * 1024 * 1024  # 1000 events with generous custom_data


def _unprocessable(field: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_event", "field": field, "detail": detail}, status_code=422
    )


async def conversions_endpoint(request: Request) -> Response:
    """Validate, hash and queue conversion events for the authenticated user."""
    settings = request.app.state.settings
    try:
        claims = verify_bearer(request, secret_value(settings.jwt_secret) or "")
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
        events = build_events(payload, settings=settings.capi, user_id=claims["sub"], source="api")
    except EventValidationError as exc:
        log.info("capi intake refused an event: field %s", exc.field)
        return _unprocessable(exc.field, str(exc))
    async with request.app.state.pool.connection() as conn:
        result = await enqueue_events_async(conn, events)
    return JSONResponse(result.as_dict(), status_code=202)


def routes() -> list[Route]:
    """The CAPI intake route, mounted by ``webhook_receiver.app.create_app``."""
    return [Route(PATH, conversions_endpoint, methods=["POST"])]
