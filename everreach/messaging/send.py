"""The send service: reply to a contact through Meta, inside the policy window.

Used by the receiver's ``POST /api/v1/integrations/messenger/send`` (Messenger and
Instagram) and ``POST /api/v1/integrations/whatsapp/send``, after they authenticated and
authorised the caller (:class:`Sender`).

The window is checked before calling Meta (from ``messaging_policy_window``, timed by
Meta's event timestamps): inside 24 h → ``RESPONSE``; inside 7 days with
``human_agent: true`` → ``MESSAGE_TAG`` + ``HUMAN_AGENT``; WhatsApp outside 24 h →
templates only; otherwise 422 saying which window closed when and what is allowed.
Meta is called through the shared :class:`~everreach.meta.GraphClient`:
``POST /{page-id}/messages`` for Messenger **and Instagram** (Instagram Messaging with a
Facebook login goes through the Page linked to the Instagram account; the account node has
no ``messages`` edge), ``POST /{phone-number-id}/messages`` for WhatsApp. The token is the
one every domain uses: the variable a ``meta_platform_config`` row names
(:func:`everreach.settings.named_token`), else the client's ``META_ACCESS_TOKEN``.
Meta can still refuse (its clock, its rules): its errors are mapped to clear answers. The
outbound message is stored with who sent it (the trigger logs it to ``user_event``);
statuses that arrive later — or arrived already — attach to it by its platform id.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from everreach.messaging.apply import apply_bodies
from everreach.messaging.model import OutboundMessage, ParsedBody
from everreach.meta import GraphClient
from everreach.meta.errors import (
    GraphAPIError,
    GraphConfigurationError,
    PolicyWindowError,
    TransientGraphError,
)
from everreach.settings import SettingError, named_token

__all__ = [
    "MAX_QUICK_REPLIES",
    "MAX_TEXT",
    "SendRefused",
    "SendService",
    "Sender",
    "WindowState",
    "choose_messenger_window",
    "choose_whatsapp_window",
    "store_outbound",
]

MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13


class SendRefused(Exception):
    """A send answered without (or after) Meta, with an HTTP ``status`` and a JSON body."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"error": error, "detail": detail, **extra}


@dataclass(frozen=True)
class Sender:
    """Who sends: the token's subject and what allowed it (a service role, or ``agent``)."""

    subject: str
    role: str


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


def map_graph_error(error: GraphAPIError) -> SendRefused:
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
        if error.code is None and error.message.startswith("timed out"):
            return SendRefused(
                504,
                "meta_timeout",
                "Meta did not answer in time; the message may or may not have been sent — "
                "check before resending",
            )
        if error.code is None:
            return SendRefused(
                502, "meta_unreachable", f"could not reach the Graph API ({error.message})"
            )
        return SendRefused(
            503,
            "meta_unavailable",
            "Meta is rate limiting or temporarily failing; retry later.",
            meta=meta,
        )
    return SendRefused(
        400, "meta_rejected", f"Meta rejected the message: {error.message}", meta=meta
    )


# ---------------------------------------------------------------------------- storing
_KEEP_SEND_FIELDS = """
update conversation_message set
    messaging_type = coalesce(messaging_type, %(messaging_type)s),
    message_tag = coalesce(message_tag, %(tag)s),
    window_used = coalesce(window_used, %(window)s),
    sent_via = 'api', sent_by = %(sent_by)s, sent_by_role = %(role)s, updated_at = now()
where platform = %(platform)s and platform_message_id = %(pmid)s
  and sent_via is distinct from 'api'
"""


async def store_outbound(
    conn: AsyncConnection, message: OutboundMessage
) -> tuple[uuid.UUID, uuid.UUID]:
    """Store a message this project sent (or Meta refused); returns (message_id, thread_id).

    It goes through the same set-based apply as webhooks, so statuses or an echo that
    arrived first reconcile with it; when the echo stored the mid first, what only the send
    knows (window, messaging type, who sent it) is added to that row.
    """
    message.message_id = message.message_id or uuid.uuid4()
    async with conn.transaction(), conn.cursor() as cur:
        await apply_bodies(cur, [(ParsedBody([message]), None)])
        if message.platform_message_id is not None and message.status != "failed":
            await cur.execute(
                _KEEP_SEND_FIELDS,
                {
                    "messaging_type": message.messaging_type,
                    "tag": message.message_tag,
                    "window": message.window_used,
                    "sent_by": message.sent_by,
                    "role": message.sent_by_role,
                    "platform": message.platform,
                    "pmid": message.platform_message_id,
                },
            )
        await cur.execute(
            "select message_id, thread_id from conversation_message where message_id = %s "
            "or (platform = %s and platform_message_id = %s)",
            (message.message_id, message.platform, message.platform_message_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


# ---------------------------------------------------------------------------- requests
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


def _validate_whatsapp(payload: dict[str, Any]) -> tuple[str, str, dict[str, Any], str | None]:
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
            raise SendRefused(422, "invalid_field", "text must be 1..4096 characters", field="text")
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
    return to, kind, graph_payload, text


class SendService:
    """Sends through the Graph API and stores what was sent (one per receiver process)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        graph: GraphClient,
        executor: Executor | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.pool = pool
        self.graph = graph
        self.executor = executor
        self.env = env

    # -- lookups
    async def _find_thread(
        self, conn: AsyncConnection, platform: str, contact_id: str, business_id: str | None
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

    async def _config(
        self, conn: AsyncConnection, platform: str, external_id: str
    ) -> tuple[str | None, str | None] | None:
        """(token_env_var, parent_external_id) of an enabled config row, or None."""
        cur = await conn.execute(
            "select token_env_var, parent_external_id from meta_platform_config "
            "where platform = %s and external_id = %s and enabled",
            (platform, external_id),
        )
        row = await cur.fetchone()
        return (row[0], row[1]) if row else None

    def _token(self, variable: str | None, what: str) -> str | None:
        """The account's token (the one lookup ads and organic use), None: the client's."""
        try:
            token = named_token(variable, what, self.env)
        except SettingError as exc:
            raise SendRefused(503, "not_configured", f"{exc}") from None
        if token is None and not self.graph.access_token:
            raise SendRefused(
                503,
                "not_configured",
                f"no access token for {what}: set META_ACCESS_TOKEN or the variable named "
                "in meta_platform_config",
            )
        return token

    async def _messenger_node(
        self, conn: AsyncConnection, platform: str, business_id: str
    ) -> tuple[str, str | None]:
        """(node to POST /messages to, its token) for a Messenger Page or an IG account."""
        if platform == "messenger":
            config = await self._config(conn, "facebook_page", business_id)
            return business_id, self._token(
                config[0] if config else None, f"messenger account {business_id}"
            )
        account = await self._config(conn, "instagram_account", business_id)
        page_id = account[1] if account else None
        if not page_id:
            raise SendRefused(
                503,
                "not_configured",
                f"Instagram account {business_id} has no Facebook Page on record: Instagram "
                "messages are sent through the Page linked to the account "
                "(POST /{page-id}/messages). Add a meta_platform_config row with platform "
                f"instagram_account, external_id {business_id} and parent_external_id = "
                "the Page id.",
            )
        page = await self._config(conn, "facebook_page", page_id)
        variable = (page[0] if page else None) or account[0]  # type: ignore[index]
        return page_id, self._token(variable, f"instagram account {business_id}")

    async def _post(self, node: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        call = partial(
            self.graph.post, f"{node}/messages", body, token=token, json_body=True, idempotent=False
        )
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def _store(self, message: OutboundMessage) -> tuple[uuid.UUID, uuid.UUID]:
        async with self.pool.connection() as conn:
            return await store_outbound(conn, message)

    # -- the two sends
    async def send_messenger(self, payload: dict[str, Any], sender: Sender) -> dict[str, Any]:
        """Send a Messenger or Instagram message within the policy window."""
        platform, recipient, message, human_agent = _validate_messenger(payload)
        business_hint = payload.get("business_account_id") or payload.get("page_id")
        async with self.pool.connection() as conn:
            found = await self._find_thread(
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
            node, token = await self._messenger_node(conn, platform, business_id)
        graph_payload: dict[str, Any] = {
            "recipient": {"id": recipient},
            "messaging_type": messaging_type,
            "message": message,
        }
        if tag:
            graph_payload["tag"] = tag
        row = OutboundMessage(
            platform=platform,
            business_id=business_id,
            contact_id=recipient,
            at=state.now,
            platform_message_id=None,
            message_type="text"
            if "text" in message
            else ("image" if message["attachment"]["type"] == "image" else "template"),
            text=message.get("text"),
            payload={"message": message, "sent_by": sender.subject},
            messaging_type=messaging_type,
            message_tag=tag,
            window_used=window_used,
            sent_by=sender.subject,
            sent_by_role=sender.role,
        )
        try:
            answer = await self._post(node, token, graph_payload)
        except GraphAPIError as exc:
            row.status, row.error_code, row.error_message = "failed", exc.code, exc.message
            await self._store(row)
            raise map_graph_error(exc) from None
        mid = answer.get("message_id")
        row.platform_message_id = str(mid) if mid else None
        message_id, thread_id = await self._store(row)
        return {
            "message_id": str(message_id),
            "platform_message_id": mid,
            "thread_id": str(thread_id),
            "messaging_type": messaging_type,
            "tag": tag,
            "window": window_used,
        }

    async def send_whatsapp(self, payload: dict[str, Any], sender: Sender) -> dict[str, Any]:
        """Send a WhatsApp text (inside 24 h) or template (any time)."""
        to, kind, graph_payload, text = _validate_whatsapp(payload)
        business_hint = payload.get("phone_number_id") or payload.get("business_account_id")
        async with self.pool.connection() as conn:
            found = await self._find_thread(
                conn, "whatsapp", to, str(business_hint) if business_hint else None
            )
            if found is not None:
                business_id = found[1]
                state = await window_state(conn, found[0])
            else:
                business_id = (
                    str(business_hint) if business_hint else await self._single_phone_number(conn)
                )
                cur = await conn.execute("select now()")
                row_now = await cur.fetchone()
                assert row_now is not None
                state = WindowState(row_now[0], None, None, None)
            window_used = choose_whatsapp_window(state, is_template=kind == "template")
            config = await self._config(conn, "whatsapp_phone_number", business_id)
            token = self._token(config[0] if config else None, f"whatsapp account {business_id}")
        row = OutboundMessage(
            platform="whatsapp",
            business_id=business_id,
            contact_id=to,
            at=state.now,
            platform_message_id=None,
            message_type=kind,
            text=text,
            payload={"template": graph_payload.get("template"), "sent_by": sender.subject}
            if kind == "template"
            else {"sent_by": sender.subject},
            window_used=window_used,
            status="pending",
            sent_by=sender.subject,
            sent_by_role=sender.role,
        )
        try:
            answer = await self._post(business_id, token, graph_payload)
        except GraphAPIError as exc:
            row.status, row.error_code, row.error_message = "failed", exc.code, exc.message
            await self._store(row)
            raise map_graph_error(exc) from None
        messages = answer.get("messages")
        wamid = (
            messages[0].get("id")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict)
            else None
        )
        row.platform_message_id = str(wamid) if wamid else None
        message_id, thread_id = await self._store(row)
        return {
            "message_id": str(message_id),
            "platform_message_id": wamid,
            "thread_id": str(thread_id),
            "window": window_used,
        }

    async def _single_phone_number(self, conn: AsyncConnection) -> str:
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
