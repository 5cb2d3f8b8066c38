"""Messenger (``object: page``) and Instagram (``object: instagram``) webhook events.

Both platforms send ``entry[].messaging[]`` (and Messenger's handover protocol sends
``entry[].standby[]`` while another app owns the thread) with the same event shapes:
``message`` (text, attachments, quick replies, replies, story replies, ``is_echo`` for the
business's own sends, ``is_deleted`` for an Instagram unsend), ``message_edit``,
``delivery`` (``mids`` optional, ``watermark``), ``read`` (``watermark``, or ``mid`` on
Instagram), ``postback``, ``reaction`` and ``referral``. Timestamps are milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncCursor

from webhook_receiver.store import (
    MessageRow,
    PayloadError,
    Receipt,
    Referral,
    apply_referral,
    get_or_create_thread,
    insert_message,
    record_receipt,
    require_id,
    text_or_none,
    touch_window,
    ts_from_millis,
)

_ATTACHMENT_TYPES = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "file": "file",
    "template": "template",
    "fallback": "fallback",
    "location": "location",
    "sticker": "sticker",
    "story_mention": "story_mention",
    "share": "share",
    "ig_reel": "share",
    "reel": "share",
    "ig_post": "share",
    "animated_image_share": "share",
}
# Payload keys worth keeping on a message (the text has its own column).
_KEEP_KEYS = (
    "attachments",
    "quick_reply",
    "reply_to",
    "sticker_id",
    "is_unsupported",
    "commands",
    "referral",
)


@dataclass
class EventCounts:
    """What applying one webhook body did."""

    entries: int = 0
    events: int = 0
    ignored: int = 0


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{what} must be an array")
    return value


async def apply_messaging_body(
    cur: AsyncCursor, body: dict[str, Any], webhook_event_id: int | None
) -> EventCounts:
    """Apply every event of every entry of a ``page`` or ``instagram`` webhook body."""
    platform = "messenger" if body.get("object") == "page" else "instagram"
    counts = EventCounts()
    for entry in _list(body.get("entry"), "entry"):
        entry = _dict(entry, "entry[]")
        counts.entries += 1
        business_id = require_id(entry.get("id"), "entry.id")
        for key in ("messaging", "standby"):
            for event in _list(entry.get(key), f"entry.{key}"):
                counts.events += 1
                applied = await apply_messaging_event(
                    cur,
                    platform,
                    business_id,
                    _dict(event, f"{key}[]"),
                    webhook_event_id,
                    standby=key == "standby",
                )
                if not applied:
                    counts.ignored += 1
        # Instagram comments/mentions arrive as `changes`: not conversations; counted only.
        counts.ignored += len(_list(entry.get("changes"), "entry.changes"))
    return counts


async def apply_messaging_event(
    cur: AsyncCursor,
    platform: str,
    business_id: str,
    event: dict[str, Any],
    webhook_event_id: int | None,
    *,
    standby: bool = False,
) -> bool:
    """Apply one ``messaging[]`` event; returns False for event kinds we do not store."""
    sender = require_id(_dict(event.get("sender"), "sender").get("id"), "sender.id")
    recipient = require_id(_dict(event.get("recipient"), "recipient").get("id"), "recipient.id")
    timestamp = event.get("timestamp")
    if timestamp is None and isinstance(event.get("delivery"), dict):
        # Meta's delivery events may carry no timestamp: the watermark is the best clock.
        timestamp = event["delivery"].get("watermark")
    at = ts_from_millis(timestamp)
    if "message" in event:
        return await _message(
            cur,
            platform,
            business_id,
            sender,
            recipient,
            at,
            _dict(event["message"], "message"),
            event,
            webhook_event_id,
            standby,
        )
    # Every other kind comes from the user: the contact is the sender.
    contact = sender
    if "delivery" in event or "read" in event:
        kind = "delivery" if "delivery" in event else "read"
        await _receipt(
            cur,
            platform,
            business_id,
            contact,
            at,
            _dict(event[kind], kind),
            "delivered" if kind == "delivery" else "read",
            webhook_event_id,
        )
        return True
    thread_id = await get_or_create_thread(cur, platform, business_id, contact)
    if "postback" in event:
        postback = _dict(event["postback"], "postback")
        if isinstance(postback.get("referral"), dict):
            await apply_referral(
                cur, thread_id, platform, contact, _referral(postback["referral"], at)
            )
        mid = (
            text_or_none(postback.get("mid")) or f"postback:{contact}:{int(at.timestamp() * 1000)}"
        )
        await insert_message(
            cur,
            MessageRow(
                thread_id=thread_id,
                platform=platform,
                platform_message_id=mid,
                direction="inbound",
                message_type="postback",
                sent_at=at,
                text=text_or_none(postback.get("title")),
                payload=_payload({"postback": postback}, standby),
                webhook_event_id=webhook_event_id,
            ),
            business_id=business_id,
            contact_id=contact,
            want_id=False,
        )
        return True
    if "reaction" in event:
        reaction = _dict(event["reaction"], "reaction")
        target = text_or_none(reaction.get("mid")) or ""
        action = text_or_none(reaction.get("action")) or "react"
        await insert_message(
            cur,
            MessageRow(
                thread_id=thread_id,
                platform=platform,
                platform_message_id=f"reaction:{contact}:{target}:{action}:"
                f"{int(at.timestamp() * 1000)}",
                direction="inbound",
                message_type="reaction",
                sent_at=at,
                payload=_payload({"reaction": reaction}, standby),
                reply_to=target or None,
                webhook_event_id=webhook_event_id,
            ),
            business_id=business_id,
            contact_id=contact,
            want_id=False,
        )
        return True
    if "referral" in event:
        await apply_referral(
            cur, thread_id, platform, contact, _referral(_dict(event["referral"], "referral"), at)
        )
        await touch_window(cur, thread_id, at, "referral")
        return True
    if "message_edit" in event:
        edit = _dict(event["message_edit"], "message_edit")
        mid = require_id(edit.get("mid"), "message_edit.mid")
        await cur.execute(
            "select edited_at from conversation_message "
            "where platform = %s and platform_message_id = %s",
            (platform, mid),
        )
        found = await cur.fetchone()
        if found is None:
            # The edit overtook its message: fail this body so it is kept with the reason,
            # and `webhooks replay --failed-only` (hourly schedule) applies it later.
            raise PayloadError("message_edit for a message not received yet")
        if found[0] is None or found[0] <= at:  # an older edit never overwrites a newer one
            await cur.execute(
                "update conversation_message set text = %s, edited_at = %s, "
                "updated_at = now() where platform = %s and platform_message_id = %s",
                (text_or_none(edit.get("text")), at, platform, mid),
            )
        return True
    return False


async def _message(
    cur: AsyncCursor,
    platform: str,
    business_id: str,
    sender: str,
    recipient: str,
    at: Any,
    message: dict[str, Any],
    event: dict[str, Any],
    webhook_event_id: int | None,
    standby: bool,
) -> bool:
    is_echo = bool(message.get("is_echo"))
    # An echo is the business's own send: the contact is the recipient, and it is outbound.
    contact = recipient if is_echo else sender
    thread_id = await get_or_create_thread(cur, platform, business_id, contact)
    mid = require_id(message.get("mid"), "message.mid")
    if message.get("is_deleted"):
        await record_receipt(
            cur,
            Receipt(
                platform=platform,
                event_type="deleted",
                occurred_at=at,
                business_id=business_id,
                contact_id=contact,
                platform_message_id=mid,
                raw={"message": message},
                webhook_event_id=webhook_event_id,
            ),
        )
        return True
    referral_raw = event.get("referral") or message.get("referral")
    if isinstance(referral_raw, dict) and not is_echo:
        # Before the message insert: the trigger logs `<platform>_received` with the
        # thread's user, which the referral's `ref` may just have linked.
        await apply_referral(cur, thread_id, platform, contact, _referral(referral_raw, at))
    message_type, text = _classify(message)
    payload = {k: message[k] for k in _KEEP_KEYS if k in message}
    if isinstance(event.get("referral"), dict):
        payload["referral"] = event["referral"]
    reply_to = message.get("reply_to")
    await insert_message(
        cur,
        MessageRow(
            thread_id=thread_id,
            platform=platform,
            platform_message_id=mid,
            direction="outbound" if is_echo else "inbound",
            message_type=message_type,
            sent_at=at,
            text=text,
            payload=_payload(payload, standby),
            reply_to=text_or_none(reply_to.get("mid")) if isinstance(reply_to, dict) else None,
            is_echo=is_echo,
            status="sent" if is_echo else "received",
            webhook_event_id=webhook_event_id,
        ),
        business_id=business_id,
        contact_id=contact,
        want_id=False,
    )
    return True


def _classify(message: dict[str, Any]) -> tuple[str, str | None]:
    text = text_or_none(message.get("text"))
    reply_to = message.get("reply_to")
    if isinstance(reply_to, dict) and isinstance(reply_to.get("story"), dict):
        return "story_reply", text
    if isinstance(message.get("quick_reply"), dict):
        return "quick_reply", text
    attachments = message.get("attachments")
    if isinstance(attachments, list) and attachments:
        first = attachments[0] if isinstance(attachments[0], dict) else {}
        return _ATTACHMENT_TYPES.get(str(first.get("type")), "other"), text
    if "sticker_id" in message:
        return "sticker", text
    if text is not None:
        return "text", text
    if message.get("is_unsupported"):
        return "unsupported", None
    return "other", None


def _referral(raw: dict[str, Any], at: Any) -> Referral:
    if not isinstance(raw, dict):
        raise PayloadError("referral must be an object")
    ads_context = (
        raw.get("ads_context_data") if isinstance(raw.get("ads_context_data"), dict) else {}
    )
    ad_id = raw.get("ad_id")
    return Referral(
        occurred_at=at,
        source=text_or_none(raw.get("source"), 64),
        ad_id=str(ad_id) if isinstance(ad_id, int | str) and ad_id != "" else None,
        ref=text_or_none(raw.get("ref"), 512),
        source_url=text_or_none(
            raw.get("referer_uri") or raw.get("source_url") or ads_context.get("photo_url"), 2048
        ),
        raw=raw,
    )


async def _receipt(
    cur: AsyncCursor,
    platform: str,
    business_id: str,
    contact: str,
    at: Any,
    receipt: dict[str, Any],
    event_type: str,
    webhook_event_id: int | None,
) -> None:

    async def record(mid: str) -> None:
        await record_receipt(
            cur,
            Receipt(
                platform=platform,
                event_type=event_type,
                occurred_at=at,
                business_id=business_id,
                contact_id=contact,
                platform_message_id=mid,
                raw=receipt,
                webhook_event_id=webhook_event_id,
            ),
        )

    mids = _list(receipt.get("mids"), f"{event_type}.mids")
    for mid in mids:
        await record(require_id(mid, "mids[]"))
    if "mid" in receipt:  # Instagram's read names the last message read
        mid = require_id(receipt.get("mid"), f"{event_type}.mid")
        await record(mid)
        # …and everything the business sent before it is read too.
        await cur.execute(
            "select sent_at from conversation_message where platform = %s "
            "and platform_message_id = %s",
            (platform, mid),
        )
        row = await cur.fetchone()
        if row is not None:
            await record_receipt(
                cur,
                Receipt(
                    platform=platform,
                    event_type=event_type,
                    occurred_at=at,
                    business_id=business_id,
                    contact_id=contact,
                    watermark=row[0],
                    raw=receipt,
                    webhook_event_id=webhook_event_id,
                ),
            )
    if receipt.get("watermark") is not None:
        await record_receipt(
            cur,
            Receipt(
                platform=platform,
                event_type=event_type,
                occurred_at=at,
                business_id=business_id,
                contact_id=contact,
                watermark=ts_from_millis(receipt["watermark"]),
                raw=receipt,
                webhook_event_id=webhook_event_id,
            ),
        )
    elif not mids and "mid" not in receipt:
        raise PayloadError(f"{event_type} has neither watermark nor mids")


def _payload(payload: dict[str, Any], standby: bool) -> dict[str, Any]:
    if standby:
        payload = {**payload, "standby": True}
    return payload
