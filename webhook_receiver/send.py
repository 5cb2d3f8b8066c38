"""Send endpoints: reply to a contact through Meta, inside the policy window.

``POST /api/v1/integrations/messenger/send`` (Messenger and Instagram) and
``POST /api/v1/integrations/whatsapp/send``, authenticated with the app's user JWT.

The window is checked before calling Meta (from ``messaging_policy_window``, timed by
Meta's event timestamps): inside 24 h → ``RESPONSE``; inside 7 days with
``human_agent: true`` → ``MESSAGE_TAG`` + ``HUMAN_AGENT``; WhatsApp outside 24 h →
templates only; otherwise 422 saying which window closed when and what is allowed.
Meta can still refuse (its clock, its rules): its errors are mapped to clear answers.
The outbound message is stored (the trigger logs it to ``user_event``); statuses that
arrive later — or arrived already — attach to it by its platform id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from everreach.messaging.settings import ReceiverSettings
from everreach.meta.errors import (
    GraphAPIError,
    GraphConfigurationError,
    PolicyWindowError,
    TransientGraphError,
    classify,
)
from everreach.settings import env_value, secret_value
from webhook_receiver.auth import AuthError, unauthorized_response, verify_bearer
from webhook_receiver.store import MessageRow, get_or_create_thread, insert_message

log = logging.getLogger(__name__)

MESSENGER_PATH = "/api/v1/integrations/messenger/send"
WHATSAPP_PATH = "/api/v1/integrations/whatsapp/send"
MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13
_MAX_BODY = 256 * 1024
_CONFIG_PLATFORM = {
    "messenger": "facebook_page",
    "instagram": "instagram_account",
    "whatsapp": "whatsapp_phone_number",
}


class SendRefused(Exception):
    """A send the receiver answers itself with ``status`` and a JSON body."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"error": error, "detail": detail, **extra}

    def response(self) -> JSONResponse:
        """The JSON answer."""
        return JSONResponse(self.body, status_code=self.status)


@dataclass
class WindowState:
    """The thread's windows at ``now`` (None: never opened)."""

    now: datetime
    standard_expires: datetime | None
    human_expires: datetime | None
    last_user_activity: datetime | None

    @property
    def standard_open(self) -> bool:
        """Is the 24-hour window open now?"""
        return self.standard_expires is not None and self.now < self.standard_expires

    @property
    def human_open(self) -> bool:
        """Is the 7-day HUMAN_AGENT window open now?"""
        return self.human_expires is not None and self.now < self.human_expires


async def window_state(conn: AsyncConnection, thread_id: uuid.UUID) -> WindowState:
    """Read the thread's windows, with the database's clock as "now"."""
    cur = await conn.execute(
        "select now(), "
        "max(expires_at) filter (where window_type = 'standard'), "
        "max(expires_at) filter (where window_type = 'human_agent'), "
        "max(last_user_activity_at) "
        "from messaging_policy_window where thread_id = %s",
        (thread_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return WindowState(*row)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def choose_messenger_window(
    state: WindowState, *, human_agent: bool, platform: str
) -> tuple[str, str | None, str]:
    """(messaging_type, tag, window_used) for a Messenger/IG send, or raise 422."""
    if state.standard_open:
        return "RESPONSE", None, "standard"
    if human_agent and state.human_open:
        return "MESSAGE_TAG", "HUMAN_AGENT", "human_agent"
    if state.standard_expires is None:
        raise SendRefused(
            422,
            "window_closed",
            f"This {platform} contact has never written to the business: a "
            "reply is allowed only within 24 hours of the user's message.",
            standard_window_closed_at=None,
            human_agent_window_closed_at=None,
        )
    if state.human_open:
        detail = (
            f"The 24-hour standard window closed at {_iso(state.standard_expires)}. "
            f"The 7-day HUMAN_AGENT window is open until {_iso(state.human_expires)}: "
            'resend with "human_agent": true if a person wrote this reply.'
        )
    else:
        detail = (
            f"The 24-hour standard window closed at {_iso(state.standard_expires)} and "
            f"the 7-day HUMAN_AGENT window closed at {_iso(state.human_expires)}. "
            "Nothing can be sent until the user writes again."
        )
    raise SendRefused(
        422,
        "window_closed",
        detail,
        standard_window_closed_at=_iso(state.standard_expires),
        human_agent_window_closed_at=_iso(state.human_expires),
        human_agent_allowed=state.human_open,
    )


def choose_whatsapp_window(state: WindowState, *, is_template: bool) -> str:
    """window_used for a WhatsApp send, or raise 422 (free-form outside 24 h)."""
    if state.standard_open:
        return "standard"
    if is_template:
        return "template"
    closed = _iso(state.standard_expires)
    detail = (
        "The 24-hour customer-service window "
        + (f"closed at {closed}" if closed else "was never opened (no message from this contact)")
        + ': only an approved template ("type": "template") can be sent now; '
        "the window reopens when the customer replies."
    )
    raise SendRefused(
        422, "window_closed", detail, customer_service_window_closed_at=closed, allowed=["template"]
    )


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


def _authenticate(request: Request) -> dict[str, Any]:
    settings: ReceiverSettings = request.app.state.settings
    return verify_bearer(request, secret_value(settings.jwt_secret) or "")


async def _find_thread(
    conn: AsyncConnection, platform: str, contact_id: str, business_id: str | None
) -> tuple[uuid.UUID, str] | None:
    query = (
        "select thread_id, business_account_id from conversation_thread "
        "where platform = %s and contact_id = %s"
    )
    params: list[Any] = [platform, contact_id]
    if business_id:
        query += " and business_account_id = %s"
        params.append(business_id)
    cur = await conn.execute(query + " limit 2", params)
    rows = await cur.fetchall()
    if len(rows) > 1:
        raise SendRefused(
            422,
            "ambiguous_recipient",
            'this contact talks to several business accounts: pass "business_account_id"',
        )
    return (rows[0][0], rows[0][1]) if rows else None


async def _access_token(
    conn: AsyncConnection, settings: ReceiverSettings, platform: str, business_id: str
) -> str:
    # The platform config names the *environment variable* holding the token, never the
    # token itself.
    cur = await conn.execute(
        "select token_env_var from meta_platform_config where platform = %s "
        "and external_id = %s and enabled",
        (_CONFIG_PLATFORM[platform], business_id),
    )
    row = await cur.fetchone()
    named = env_value(row[0]) if row and row[0] else None
    if named:
        return named
    if settings.graph.access_token is not None:
        return settings.graph.access_token.get_secret_value()
    raise SendRefused(
        503,
        "not_configured",
        f"no access token for {platform} account {business_id}: set "
        "META_ACCESS_TOKEN or the variable named in meta_platform_config",
    )


async def _call_meta(
    request: Request, business_id: str, token: str, payload: dict[str, Any]
) -> dict[str, Any]:
    settings: ReceiverSettings = request.app.state.settings
    http: httpx.AsyncClient = request.app.state.http
    url = f"{settings.graph.base_url}/{settings.graph.api_version}/{business_id}/messages"
    proof = hmac.new(
        settings.app_secret.get_secret_value().encode(), token.encode(), hashlib.sha256
    ).hexdigest()
    try:
        response = await http.post(
            url, json=payload, params={"access_token": token, "appsecret_proof": proof}
        )
    except httpx.TimeoutException:
        raise SendRefused(
            504,
            "meta_timeout",
            "Meta did not answer in time; the message "
            "may or may not have been sent — check before resending",
        ) from None
    except httpx.HTTPError as exc:
        raise SendRefused(
            502, "meta_unreachable", f"could not reach the Graph API ({type(exc).__name__})"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict) and "error" not in body:
        return body
    raise classify(response.status_code, body)


def _map_graph_error(error: GraphAPIError) -> SendRefused:
    """Meta's error as an answer the caller can act on."""
    meta = {
        "code": error.code,
        "subcode": error.subcode,
        "fbtrace_id": error.fbtrace_id,
        "message": error.message,
    }
    if isinstance(error, PolicyWindowError):
        return SendRefused(
            422,
            "window_closed",
            f"Meta refused the message: it is outside the allowed messaging window. {error.action}",
            meta=meta,
        )
    if isinstance(error, GraphConfigurationError):
        return SendRefused(
            502,
            "meta_configuration",
            f"Meta refused our credentials or permissions. {error.action}",
            meta=meta,
        )
    if isinstance(error, TransientGraphError):
        return SendRefused(
            503,
            "meta_unavailable",
            "Meta is rate limiting or temporarily failing; retry later.",
            meta=meta,
        )
    return SendRefused(
        400, "meta_rejected", f"Meta rejected the message: {error.message}", meta=meta
    )


async def _store_outbound(
    request: Request, row: MessageRow, business_id: str, contact_id: str
) -> uuid.UUID:
    async with (
        request.app.state.pool.connection() as conn,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        message_id, _ = await insert_message(
            cur, row, business_id=business_id, contact_id=contact_id
        )
        if row.platform_message_id is not None and row.status != "failed":
            # An echo may have stored this mid first: keep what only the send knows.
            await cur.execute(
                "update conversation_message set messaging_type = coalesce(messaging_type, "
                "%s), message_tag = coalesce(message_tag, %s), window_used = "
                "coalesce(window_used, %s) where message_id = %s",
                (row.messaging_type, row.message_tag, row.window_used, message_id),
            )
    return message_id


def _validate_messenger(payload: dict[str, Any]) -> tuple[str, str, dict[str, Any], bool]:
    platform = payload.get("platform", "messenger")
    if platform not in ("messenger", "instagram"):
        raise SendRefused(
            422, "invalid_field", "platform must be messenger or instagram", field="platform"
        )
    recipient = payload.get("recipient_id")
    if isinstance(recipient, int) and not isinstance(recipient, bool):
        recipient = str(recipient)
    if not isinstance(recipient, str) or not recipient.strip():
        raise SendRefused(422, "invalid_field", "recipient_id is required", field="recipient_id")
    kinds = [k for k in ("text", "image_url", "template") if payload.get(k) is not None]
    if len(kinds) != 1:
        raise SendRefused(
            422,
            "invalid_field",
            "exactly one of text, image_url, template is required",
            field="text",
        )
    message: dict[str, Any] = {}
    if kinds[0] == "text":
        text = payload["text"]
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise SendRefused(
                422, "invalid_field", f"text must be 1..{MAX_TEXT} characters", field="text"
            )
        message["text"] = text
    elif kinds[0] == "image_url":
        url = payload["image_url"]
        if not isinstance(url, str) or not re.match(r"^https?://", url):
            raise SendRefused(
                422, "invalid_field", "image_url must be an http(s) URL", field="image_url"
            )
        message["attachment"] = {"type": "image", "payload": {"url": url, "is_reusable": True}}
    else:
        template = payload["template"]
        if not isinstance(template, dict):
            raise SendRefused(422, "invalid_field", "template must be an object", field="template")
        message["attachment"] = {"type": "template", "payload": template}
    quick_replies = payload.get("quick_replies")
    if quick_replies is not None:
        if (
            not isinstance(quick_replies, list)
            or len(quick_replies) > MAX_QUICK_REPLIES
            or not all(isinstance(q, dict) for q in quick_replies)
        ):
            raise SendRefused(
                422,
                "invalid_field",
                f"quick_replies must be a list of at most {MAX_QUICK_REPLIES} objects",
                field="quick_replies",
            )
        message["quick_replies"] = [
            {
                "content_type": q.get("content_type", "text"),
                **{k: v for k, v in q.items() if k != "content_type"},
            }
            for q in quick_replies
        ]
    human_agent = payload.get("human_agent", False)
    if not isinstance(human_agent, bool):
        raise SendRefused(
            422, "invalid_field", "human_agent must be true or false", field="human_agent"
        )
    return platform, recipient.strip(), message, human_agent


async def send_messenger(request: Request) -> Response:
    """Send a Messenger or Instagram message within the policy window."""
    try:
        claims = _authenticate(request)
    except AuthError as exc:
        return unauthorized_response(exc)
    try:
        payload = await _json_body(request)
        platform, recipient, message, human_agent = _validate_messenger(payload)
        business_hint = payload.get("business_account_id") or payload.get("page_id")
        pool = request.app.state.pool
        async with pool.connection() as conn:
            found = await _find_thread(
                conn, platform, recipient, str(business_hint) if business_hint else None
            )
            if found is None:
                raise SendRefused(
                    422,
                    "window_closed",
                    f"no conversation with this {platform} recipient: a "
                    "business can only reply after the user writes first.",
                )
            thread_id, business_id = found
            state = await window_state(conn, thread_id)
            messaging_type, tag, window_used = choose_messenger_window(
                state, human_agent=human_agent, platform=platform
            )
            token = await _access_token(conn, request.app.state.settings, platform, business_id)
        graph_payload: dict[str, Any] = {
            "recipient": {"id": recipient},
            "messaging_type": messaging_type,
            "message": message,
        }
        if tag:
            graph_payload["tag"] = tag
        row = MessageRow(
            thread_id=thread_id,
            platform=platform,
            platform_message_id=None,
            direction="outbound",
            message_type="text"
            if "text" in message
            else ("image" if message["attachment"]["type"] == "image" else "template"),
            sent_at=state.now,
            text=message.get("text"),
            payload={"message": message, "sent_by": claims["sub"]},
            messaging_type=messaging_type,
            message_tag=tag,
            window_used=window_used,
            status="sent",
        )
        try:
            answer = await _call_meta(request, business_id, token, graph_payload)
        except GraphAPIError as exc:
            row.status, row.error_code, row.error_message = "failed", exc.code, exc.message
            await _store_outbound(request, row, business_id, recipient)
            raise _map_graph_error(exc) from None
        mid = answer.get("message_id")
        row.platform_message_id = str(mid) if mid else None
        message_id = await _store_outbound(request, row, business_id, recipient)
    except SendRefused as refused:
        log.info("messenger send refused: %s", refused.body["error"])
        return refused.response()
    log.info(
        "messenger send accepted", extra={"platform": platform, "messaging_type": messaging_type}
    )
    return JSONResponse(
        {
            "message_id": str(message_id),
            "platform_message_id": mid,
            "thread_id": str(thread_id),
            "messaging_type": messaging_type,
            "tag": tag,
            "window": window_used,
        }
    )


async def send_whatsapp(request: Request) -> Response:
    """Send a WhatsApp text (inside 24 h) or template (any time)."""
    try:
        claims = _authenticate(request)
    except AuthError as exc:
        return unauthorized_response(exc)
    try:
        payload = await _json_body(request)
        to = re.sub(r"\D", "", str(payload.get("to") or ""))
        if not 6 <= len(to) <= 20:
            raise SendRefused(422, "invalid_field", "to must be a phone number / wa_id", field="to")
        kind = payload.get("type", "text")
        graph_payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": kind,
        }
        text: str | None = None
        if kind == "text":
            raw = payload.get("text")
            text = raw.get("body") if isinstance(raw, dict) else raw
            if not isinstance(text, str) or not text.strip() or len(text) > 4096:
                raise SendRefused(
                    422, "invalid_field", "text must be 1..4096 characters", field="text"
                )
            graph_payload["text"] = {"body": text}
        elif kind == "template":
            template = payload.get("template")
            language = template.get("language") if isinstance(template, dict) else None
            if (
                not isinstance(template, dict)
                or not isinstance(template.get("name"), str)
                or not isinstance(language, dict)
                or not isinstance(language.get("code"), str)
            ):
                raise SendRefused(
                    422, "invalid_field", "template needs name and language.code", field="template"
                )
            graph_payload["template"] = {
                k: template[k] for k in ("name", "language", "components") if k in template
            }
        else:
            raise SendRefused(422, "invalid_field", "type must be text or template", field="type")
        business_hint = payload.get("phone_number_id") or payload.get("business_account_id")
        async with request.app.state.pool.connection() as conn:
            found = await _find_thread(
                conn, "whatsapp", to, str(business_hint) if business_hint else None
            )
            if found is not None:
                thread_id, business_id = found
                state = await window_state(conn, thread_id)
            else:
                business_id = (
                    str(business_hint) if business_hint else await _single_phone_number(conn)
                )
                state = WindowState(
                    (await (await conn.execute("select now()")).fetchone())[0], None, None, None
                )
                thread_id = None
            window_used = choose_whatsapp_window(state, is_template=kind == "template")
            token = await _access_token(conn, request.app.state.settings, "whatsapp", business_id)
            if thread_id is None:  # a template may start a conversation
                async with conn.transaction(), conn.cursor() as cur:
                    thread_id = await get_or_create_thread(cur, "whatsapp", business_id, to)
        row = MessageRow(
            thread_id=thread_id,
            platform="whatsapp",
            platform_message_id=None,
            direction="outbound",
            message_type=kind,
            sent_at=state.now,
            text=text,
            payload={"template": graph_payload.get("template"), "sent_by": claims["sub"]}
            if kind == "template"
            else {"sent_by": claims["sub"]},
            window_used=window_used,
            status="pending",
        )
        try:
            answer = await _call_meta(request, business_id, token, graph_payload)
        except GraphAPIError as exc:
            row.status, row.error_code, row.error_message = "failed", exc.code, exc.message
            await _store_outbound(request, row, business_id, to)
            raise _map_graph_error(exc) from None
        messages = answer.get("messages")
        wamid = (
            messages[0].get("id")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict)
            else None
        )
        row.platform_message_id = str(wamid) if wamid else None
        message_id = await _store_outbound(request, row, business_id, to)
    except SendRefused as refused:
        log.info("whatsapp send refused: %s", refused.body["error"])
        return refused.response()
    log.info("whatsapp send accepted", extra={"type": kind, "window": window_used})
    return JSONResponse(
        {
            "message_id": str(message_id),
            "platform_message_id": wamid,
            "thread_id": str(thread_id),
            "window": window_used,
        }
    )


async def _single_phone_number(conn: AsyncConnection) -> str:
    cur = await conn.execute(
        "select external_id from meta_platform_config "
        "where platform = 'whatsapp_phone_number' and enabled limit 2"
    )
    rows = await cur.fetchall()
    if len(rows) != 1:
        raise SendRefused(
            422,
            "invalid_field",
            'no conversation with this number yet: pass "phone_number_id"',
            field="phone_number_id",
        )
    return rows[0][0]


def routes() -> list[Route]:
    """The two send endpoints."""
    return [
        Route(MESSENGER_PATH, send_messenger, methods=["POST"]),
        Route(WHATSAPP_PATH, send_whatsapp, methods=["POST"]),
    ]
