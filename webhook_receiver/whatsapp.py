"""WhatsApp Cloud API (``object: whatsapp_business_account``) webhook events.

``entry[].changes[]`` with ``field: messages`` carry ``value.metadata.phone_number_id``
(the business account of the thread), ``contacts[]`` (profile names), ``messages[]``
(``id`` = wamid, ``from`` = wa_id, ``timestamp`` in seconds as a string, one of many
types, Click-to-WhatsApp ``referral``) and ``statuses[]`` (sent / delivered / read /
played / failed with ``errors[]``, ``conversation`` and ``pricing``).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncCursor

from webhook_receiver.messenger import EventCounts, _dict, _list
from webhook_receiver.store import (
    RECEIPT_TYPES,
    MessageRow,
    Receipt,
    Referral,
    apply_referral,
    get_or_create_thread,
    insert_message,
    record_receipt,
    require_id,
    text_or_none,
    ts_from_seconds,
)

_MESSAGE_TYPES = frozenset(
    {
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "system",
        "unsupported",
        "request_welcome",
    }
)


async def apply_whatsapp_body(
    cur: AsyncCursor, body: dict[str, Any], webhook_event_id: int | None
) -> EventCounts:
    """Apply every message and status of every change of every entry."""
    counts = EventCounts()
    for entry in _list(body.get("entry"), "entry"):
        entry = _dict(entry, "entry[]")
        counts.entries += 1
        for change in _list(entry.get("changes"), "entry.changes"):
            change = _dict(change, "changes[]")
            if change.get("field") != "messages":
                counts.ignored += 1  # template quality, account updates, …
                continue
            value = _dict(change.get("value"), "changes.value")
            metadata = _dict(value.get("metadata"), "value.metadata")
            phone_number_id = require_id(
                metadata.get("phone_number_id"), "metadata.phone_number_id"
            )
            names = {}
            for contact in _list(value.get("contacts"), "value.contacts"):
                contact = _dict(contact, "contacts[]")
                profile = contact.get("profile")
                if isinstance(profile, dict) and contact.get("wa_id") is not None:
                    names[str(contact["wa_id"])] = text_or_none(profile.get("name"), 256)
            for message in _list(value.get("messages"), "value.messages"):
                counts.events += 1
                await _message(
                    cur, phone_number_id, _dict(message, "messages[]"), names, webhook_event_id
                )
            for status in _list(value.get("statuses"), "value.statuses"):
                counts.events += 1
                if not await _status(
                    cur, phone_number_id, _dict(status, "statuses[]"), webhook_event_id
                ):
                    counts.ignored += 1
    return counts


async def _message(
    cur: AsyncCursor,
    phone_number_id: str,
    message: dict[str, Any],
    names: dict[str, str | None],
    webhook_event_id: int | None,
) -> None:
    wa_id = require_id(message.get("from"), "messages.from")
    wamid = require_id(message.get("id"), "messages.id")
    at = ts_from_seconds(message.get("timestamp"))
    thread_id = await get_or_create_thread(
        cur, "whatsapp", phone_number_id, wa_id, names.get(wa_id)
    )
    referral_raw = message.get("referral")
    if isinstance(referral_raw, dict):
        # Before the insert: the trigger copies the thread's user into `whatsapp_received`.
        await apply_referral(
            cur,
            thread_id,
            "whatsapp",
            wa_id,
            Referral(
                occurred_at=at,
                source=text_or_none(referral_raw.get("source_type"), 64),
                ad_id=(
                    str(referral_raw["source_id"])
                    if isinstance(referral_raw.get("source_id"), int | str)
                    and referral_raw.get("source_type") == "ad"
                    else None
                ),
                ctwa_clid=text_or_none(referral_raw.get("ctwa_clid"), 512),
                source_url=text_or_none(referral_raw.get("source_url"), 2048),
                raw=referral_raw,
            ),
        )
    kind = str(message.get("type"))
    message_type = kind if kind in _MESSAGE_TYPES else "other"
    text = None
    body = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind == "text":
        text = text_or_none(body.get("body"))
    elif kind == "button":
        text = text_or_none(body.get("text"))
    elif kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or {}
        text = text_or_none(reply.get("title")) if isinstance(reply, dict) else None
    elif kind in ("image", "video", "document"):
        text = text_or_none(body.get("caption"))
    payload: dict[str, Any] = {}
    if body and kind != "text":
        payload[kind] = body
    for key in ("context", "referral", "errors"):
        if key in message:
            payload[key] = message[key]
    context = message.get("context")
    reply_to = text_or_none(context.get("id")) if isinstance(context, dict) else None
    if kind == "reaction":
        reply_to = text_or_none(body.get("message_id")) or reply_to
    await insert_message(
        cur,
        MessageRow(
            thread_id=thread_id,
            platform="whatsapp",
            platform_message_id=wamid,
            direction="inbound",
            message_type=message_type,
            sent_at=at,
            text=text,
            payload=payload,
            reply_to=reply_to,
            webhook_event_id=webhook_event_id,
        ),
        business_id=phone_number_id,
        contact_id=wa_id,
        want_id=False,
    )


async def _status(
    cur: AsyncCursor, phone_number_id: str, status: dict[str, Any], webhook_event_id: int | None
) -> bool:
    kind = status.get("status")
    if not isinstance(kind, str) or kind not in RECEIPT_TYPES:
        return False  # e.g. a status type Meta adds later: counted as ignored
    wamid = require_id(status.get("id"), "statuses.id")
    at = ts_from_seconds(status.get("timestamp"))
    recipient = status.get("recipient_id")
    errors = status.get("errors")
    first_error = (
        errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    )
    details = first_error.get("error_data")
    conversation = (
        status.get("conversation") if isinstance(status.get("conversation"), dict) else {}
    )
    origin = conversation.get("origin")
    code = first_error.get("code")
    await record_receipt(
        cur,
        Receipt(
            platform="whatsapp",
            event_type=kind,
            occurred_at=at,
            business_id=phone_number_id,
            contact_id=str(recipient) if isinstance(recipient, int | str) else None,
            platform_message_id=wamid,
            error_code=code
            if isinstance(code, int) and not isinstance(code, bool) and abs(code) < 2**31
            else None,
            error_title=text_or_none(first_error.get("title"), 512),
            error_message=text_or_none(
                (details.get("details") if isinstance(details, dict) else None)
                or first_error.get("message"),
                2048,
            ),
            conversation_id=text_or_none(conversation.get("id"), 256),
            conversation_origin=text_or_none(origin.get("type"), 64)
            if isinstance(origin, dict)
            else None,
            pricing=status.get("pricing") if isinstance(status.get("pricing"), dict) else None,
            raw=status,
            webhook_event_id=webhook_event_id,
        ),
    )
    return True
