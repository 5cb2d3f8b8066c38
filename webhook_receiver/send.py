"""Send endpoints: ``POST /api/v1/integrations/messenger/send`` (Messenger and Instagram)
and ``POST /api/v1/integrations/whatsapp/send``.

The route authenticates the bearer token, authorises it (only the app backend's service
role or a messaging agent may send: 403 otherwise, naming what is missing), reads the JSON
body and hands it to the send service (:mod:`everreach.messaging.send`: window checks, the
Graph API call, storing the message with who sent it).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from everreach.messaging.send import Sender, SendRefused, SendService
from everreach.messaging.settings import ReceiverSettings
from everreach.settings import secret_value
from webhook_receiver.auth import (
    AuthError,
    Forbidden,
    authorize_send,
    forbidden_response,
    unauthorized_response,
    verify_bearer,
)

__all__ = ["MESSENGER_PATH", "WHATSAPP_PATH", "routes"]

log = logging.getLogger(__name__)

MESSENGER_PATH = "/api/v1/integrations/messenger/send"
WHATSAPP_PATH = "/api/v1/integrations/whatsapp/send"
_MAX_BODY = 256 * 1024


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise SendRefused(413, "too_large", "request body is too large")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SendRefused(400, "invalid_json", "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise SendRefused(400, "invalid_body", "body must be a JSON object")
    return payload


def _sender(request: Request) -> Sender:
    settings: ReceiverSettings = request.app.state.settings
    claims = verify_bearer(
        request, secret_value(settings.jwt_secret) or "", service_roles=settings.service_roles
    )
    subject, role = authorize_send(claims, settings.service_roles, settings.agent_claim)
    return Sender(subject, role)


async def _send(request: Request, platform: str) -> Response:
    try:
        sender = _sender(request)
    except AuthError as exc:
        return unauthorized_response(exc)
    except Forbidden as exc:
        log.info("%s send refused: forbidden", platform)
        return forbidden_response(exc)
    service: SendService = request.app.state.sender
    try:
        payload = await _json_body(request)
        if platform == "whatsapp":
            answer = await service.send_whatsapp(payload, sender)
        else:
            answer = await service.send_messenger(payload, sender)
    except SendRefused as refused:
        log.info("%s send refused: %s", platform, refused.body["error"])
        return JSONResponse(refused.body, status_code=refused.status)
    log.info("%s send accepted", platform, extra={"window": answer.get("window")})
    return JSONResponse(answer)


async def send_messenger(request: Request) -> Response:
    """Send a Messenger or Instagram message within the policy window."""
    return await _send(request, "messenger")


async def send_whatsapp(request: Request) -> Response:
    """Send a WhatsApp text (inside 24 h) or template (any time)."""
    return await _send(request, "whatsapp")


def routes() -> list[Route]:
    """The two send endpoints."""
    return [
        Route(MESSENGER_PATH, send_messenger, methods=["POST"]),
        Route(WHATSAPP_PATH, send_whatsapp, methods=["POST"]),
    ]
