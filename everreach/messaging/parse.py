"""One walk of a webhook body → typed events (:mod:`everreach.messaging.model`).

Messenger (``object: page``) and Instagram (``object: instagram``) send ``entry[].messaging[]``
(and ``standby[]`` while another app owns the thread under the handover protocol); Meta's
dashboard "Test" button and a few account notices arrive as ``entry[].changes[]``. WhatsApp
(``object: whatsapp_business_account``) sends ``entry[].changes[]`` whose ``field`` says what
``value`` holds: ``messages`` (messages and statuses), ``smb_message_echoes``, ``calls``,
``user_preferences``, ``message_template_status_update`` and more.

The walk is strict about what it needs (ids, a parsable timestamp) and lenient about the
rest: a body that lacks what an event needs raises :class:`PayloadError` (kept as ``failed``
with the reason); anything it does not know becomes an :class:`AccountEvent` (kept as an
observed event), never a failure.

Timestamps: Messenger/Instagram send milliseconds, but Meta's own samples (the dashboard
Test button, the postback reference) send seconds as a string, so a value below 10¹¹ is
read as seconds. A missing or zero timestamp (Meta's deliveries have ``"timestamp": 0`` or
none) falls back to the entry's ``time``, then (receipts) to the watermark, then to when the
webhook was received.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from everreach.messaging.model import (
    RECEIPT_TYPES,
    AccountEvent,
    Delete,
    Echo,
    Edit,
    Event,
    Message,
    Optin,
    ParsedBody,
    Postback,
    Reaction,
    Receipt,
    Referral,
    Status,
    UserRefSeen,
)

__all__ = ["IgnoredBody", "PayloadError", "parse_body"]

_MAX_TS = datetime(2200, 1, 1, tzinfo=UTC)
#: Below this a Messenger/Instagram timestamp is in seconds (10¹¹ ms is March 1973).
_SECONDS_BELOW = 1e11

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
# Message keys worth keeping on a Messenger/Instagram message (the text has its own column).
_KEEP_KEYS = (
    "attachments",
    "quick_reply",
    "reply_to",
    "sticker_id",
    "is_unsupported",
    "commands",
    "referral",
)
_WHATSAPP_TYPES = frozenset(
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
# Keys of a messaging[] event that are not its kind.
_ENVELOPE = frozenset({"sender", "recipient", "timestamp", "seq", "prior_message"})


class PayloadError(ValueError):
    """A webhook body is well signed but lacks what an event needs; kept as failed."""


class IgnoredBody(ValueError):
    """A body that is not a Meta webhook of a known object (kept as ``ignored``)."""


# ---------------------------------------------------------------------------- helpers
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


def _id(value: Any) -> str | None:
    """A Meta id (string or number) as text; None when absent or not an id."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 256 and "\x00" not in value:
        return value
    return None


def require_id(value: Any, what: str) -> str:
    """A Meta id as text; a missing or odd id is a payload error."""
    found = _id(value)
    if found is None:
        raise PayloadError(f"{what} is missing" if value is None else f"{what} is not an id")
    return found


def _text(value: Any, limit: int = 20_000) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: Any, what: str) -> float | None:
    """A timestamp's number; None for missing / zero; a payload error when malformed."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"{what} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise PayloadError(f"{what} is not a valid epoch value") from None
    if number != number or number < 0:  # NaN or negative
        raise PayloadError(f"{what} is not a valid epoch value")
    return number or None


def _datetime(seconds: float, what: str) -> datetime:
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise PayloadError(f"{what} is out of range") from None
    if when >= _MAX_TS:
        raise PayloadError(f"{what} is out of range")
    return when


def meta_time(value: Any, what: str = "timestamp") -> datetime | None:
    """A Messenger/Instagram time: milliseconds, or seconds below 10¹¹; None when missing/0."""
    number = _number(value, what)
    if number is None:
        return None
    return _datetime(number if number < _SECONDS_BELOW else number / 1000.0, what)


def whatsapp_time(value: Any, what: str = "timestamp") -> datetime | None:
    """A WhatsApp time (seconds, usually a string); None when missing/0."""
    number = _number(value, what)
    return None if number is None else _datetime(number, what)


def _digest(payload: Any) -> str:
    raw = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha1(raw).hexdigest()[:16]  # noqa: S324 - a dedup key, not security


def _account_event(
    cls: type[AccountEvent],
    *,
    platform: str,
    business_id: str,
    at: datetime,
    kind: str,
    payload: dict[str, Any],
    contact_id: str | None = None,
    user_ref: str | None = None,
    external_id: str | None = None,
    timed: bool = True,
    **extra: Any,
) -> AccountEvent:
    # `timed`: `at` is Meta's clock. When it is only the receive time, it stays out of the
    # key, or Meta's retry of the same body would be stored as a second event.
    when = int(at.timestamp() * 1000) if timed else ""
    dedup = (
        f"{platform}:{kind}:{business_id}:{contact_id or ''}:{user_ref or ''}:"
        f"{external_id or ''}:{when}:{_digest(payload)}"
    )
    return cls(
        platform=platform,
        business_id=business_id,
        at=at,
        kind=kind,
        payload=payload,
        contact_id=contact_id,
        user_ref=user_ref,
        external_id=external_id,
        dedup_key=dedup,
        **extra,
    )


# ---------------------------------------------------------------------------- entry point
def parse_body(body: Any, received_at: datetime) -> ParsedBody:
    """Every event of a parsed webhook body, in Meta's order.

    Raises :class:`IgnoredBody` for a body that is not a Meta webhook of a known object and
    :class:`PayloadError` for one that lacks what an event needs.
    """
    if not isinstance(body, dict):
        raise IgnoredBody("body is not a JSON object")
    obj = body.get("object")
    if obj in ("page", "instagram"):
        return _messaging_body(body, "messenger" if obj == "page" else "instagram", received_at)
    if obj == "whatsapp_business_account":
        return _whatsapp_body(body, received_at)
    raise IgnoredBody("unknown object type")


# ---------------------------------------------------------------------------- Messenger / IG
def _messaging_body(body: dict[str, Any], platform: str, received_at: datetime) -> ParsedBody:
    parsed = ParsedBody([])
    for entry in _list(body.get("entry"), "entry"):
        entry = _dict(entry, "entry[]")
        parsed.entries += 1
        business = require_id(entry.get("id"), "entry.id")
        entry_at = meta_time(entry.get("time"), "entry.time")
        fallback = entry_at or received_at
        for key in ("messaging", "standby"):
            for item in _list(entry.get(key), f"entry.{key}"):
                parsed.items += 1
                _messaging_event(
                    parsed.events,
                    platform,
                    business,
                    _dict(item, f"{key}[]"),
                    entry_at,
                    received_at,
                    standby=key == "standby",
                )
        for change in _list(entry.get("changes"), "entry.changes"):
            parsed.items += 1
            change = _dict(change, "changes[]")
            field = _text(change.get("field"), 100) or "change"
            value = change.get("value")
            if (
                field == "messages"
                and isinstance(value, dict)
                and any(k in value for k in ("message", "sender"))
            ):
                # The App Dashboard's "Test" button: a messaging event inside `changes`.
                _messaging_event(parsed.events, platform, business, value, entry_at, received_at)
                continue
            payload = value if isinstance(value, dict) else {"value": value}
            at = meta_time(payload.get("time") or payload.get("timestamp")) or entry_at
            parsed.events.append(
                _account_event(
                    AccountEvent,
                    platform=platform,
                    business_id=business,
                    at=at or fallback,
                    kind=field,
                    payload=payload,
                    external_id=_id(payload.get("id")),
                    timed=at is not None,
                )
            )
    return parsed


def _party(value: Any, what: str) -> tuple[str | None, str | None]:
    """(id, user_ref) of a sender/recipient; both None when Meta sent none."""
    if value is None:
        return None, None
    party = _dict(value, what)
    found = _id(party.get("id"))
    ref = _id(party.get("user_ref"))
    if found is None and ref is None:
        raise PayloadError(
            f"{what}.id is missing" if party.get("id") is None else f"{what}.id is not an id"
        )
    return found, ref


def _messaging_event(
    out: list[Event],
    platform: str,
    business: str,
    event: dict[str, Any],
    entry_at: datetime | None,
    received_at: datetime,
    *,
    standby: bool = False,
) -> None:
    sender, sender_ref = _party(event.get("sender"), "sender")
    recipient, _ = _party(event.get("recipient"), "recipient")
    at = meta_time(event.get("timestamp")) or entry_at
    receipt_kind = "delivery" if "delivery" in event else "read" if "read" in event else None
    if at is None and receipt_kind is not None and isinstance(event[receipt_kind], dict):
        # A receipt without a clock of its own: its watermark is the best one Meta gives.
        at = meta_time(event[receipt_kind].get("watermark"), f"{receipt_kind}.watermark")
    common = {"platform": platform, "business_id": business, "at": at or received_at}
    timed = at is not None
    prior = event.get("prior_message")
    if isinstance(prior, dict) and sender is not None and _id(prior.get("identifier")):
        # Meta ties a plugin identity to the PSID on the user's first message.
        out.append(
            UserRefSeen(
                **common,
                user_ref=require_id(prior["identifier"], "prior_message"),
                contact_id=sender,
            )
        )
    if "message" in event:
        _message(out, common, sender, sender_ref, recipient, event, standby, timed)
    elif receipt_kind is not None:
        _receipts(out, common, sender, _dict(event[receipt_kind], receipt_kind), receipt_kind)
    elif "postback" in event:
        postback = _dict(event["postback"], "postback")
        referral = postback.get("referral")
        if sender is None:
            _user_ref_event(out, common, sender_ref, "postback", postback, timed)
            if isinstance(referral, dict):
                out.append(_messenger_referral(common, None, sender_ref, referral))
            return
        if isinstance(referral, dict):
            out.append(_messenger_referral(common, sender, None, referral))
        mid = _id(postback.get("mid")) or f"postback:{sender}:{int(at.timestamp() * 1000)}"
        out.append(
            Postback(
                **common,
                contact_id=sender,
                platform_message_id=mid,
                text=_text(postback.get("title")),
                payload=_standby({"postback": postback}, standby),
            )
        )
    elif "reaction" in event:
        reaction = _dict(event["reaction"], "reaction")
        contact = _need(sender, "sender")
        target = _text(reaction.get("mid")) or ""
        action = _text(reaction.get("action")) or "react"
        out.append(
            Reaction(
                **common,
                contact_id=contact,
                platform_message_id=f"reaction:{contact}:{target}:{action}:"
                f"{int(at.timestamp() * 1000)}",
                payload=_standby({"reaction": reaction}, standby),
                reply_to=target or None,
            )
        )
    elif "referral" in event:
        referral = _dict(event["referral"], "referral")
        if sender is None:
            _user_ref_event(out, common, sender_ref, "referral", referral, timed)
        ref = _messenger_referral(common, sender, sender_ref, referral)
        ref.touches_window = sender is not None
        out.append(ref)
    elif "message_edit" in event:
        edit = _dict(event["message_edit"], "message_edit")
        mid = require_id(edit.get("mid"), "message_edit.mid")
        out.append(
            _account_event(
                Edit,
                **common,
                kind="message_edit",
                timed=timed,
                payload={"text": _text(edit.get("text")), "edit": edit},
                contact_id=sender,
                external_id=mid,
                text=_text(edit.get("text")),
                # Instagram edits messages this app never received as `message`; a
                # Messenger edit always follows its message, which may not be here yet.
                must_exist=platform == "messenger",
            )
        )
    elif "optin" in event:
        optin = _dict(event["optin"], "optin")
        user_ref = _id(optin.get("user_ref")) or sender_ref
        if user_ref is not None:
            out.append(UserRefSeen(**common, user_ref=user_ref, contact_id=sender))
        out.append(
            _account_event(
                Optin,
                **common,
                kind="optin",
                timed=timed,
                payload=optin,
                contact_id=sender,
                user_ref=user_ref,
            )
        )
    else:
        kinds = [k for k in event if k not in _ENVELOPE]
        kind = kinds[0] if kinds and isinstance(kinds[0], str) else "unknown"
        value = event.get(kind)
        out.append(
            _account_event(
                AccountEvent,
                **common,
                kind=kind[:100].replace("-", "_"),
                timed=timed,
                payload=value if isinstance(value, dict) else {"value": value},
                contact_id=sender,
                user_ref=sender_ref,
            )
        )


def _need(value: str | None, what: str) -> str:
    if value is None:
        raise PayloadError(f"{what} is missing")
    return value


def _standby(payload: dict[str, Any], standby: bool) -> dict[str, Any]:
    if standby:
        payload["standby"] = True
    return payload


def _user_ref_event(
    out: list[Event],
    common: dict[str, Any],
    user_ref: str | None,
    kind: str,
    payload: dict,
    timed: bool,
) -> None:
    """An event from a plugin identity (no PSID): on the Page, and on the identity."""
    user_ref = _need(user_ref, "sender")
    out.append(UserRefSeen(**common, user_ref=user_ref))
    out.append(
        _account_event(
            AccountEvent, **common, kind=kind, payload=payload, user_ref=user_ref, timed=timed
        )
    )


def _message(
    out: list[Event],
    common: dict[str, Any],
    sender: str | None,
    sender_ref: str | None,
    recipient: str | None,
    event: dict[str, Any],
    standby: bool,
    timed: bool,
) -> None:
    message = _dict(event["message"], "message")
    mid = require_id(message.get("mid"), "message.mid")
    is_echo = message.get("is_echo") is True
    if is_echo:
        contact = _need(recipient, "recipient")
    elif sender is None:
        # A chat-plugin guest (user_ref, no PSID): kept on the Page and the identity.
        _user_ref_event(out, common, sender_ref, "message", message, timed)
        return
    else:
        contact = sender
    if message.get("is_deleted") is True:
        out.append(
            Delete(**common, contact_id=contact, platform_message_id=mid, raw={"message": message})
        )
        return
    referral_raw = event.get("referral") or message.get("referral")
    if isinstance(referral_raw, dict) and not is_echo:
        out.append(_messenger_referral(common, contact, None, referral_raw))
    message_type, text = _classify(message)
    payload = {k: message[k] for k in _KEEP_KEYS if k in message}
    if isinstance(event.get("referral"), dict):
        payload["referral"] = event["referral"]
    reply_to = message.get("reply_to")
    fields: dict[str, Any] = {
        **common,
        "contact_id": contact,
        "platform_message_id": mid,
        "message_type": message_type,
        "text": text,
        "payload": _standby(payload, standby),
        "reply_to": _text(reply_to.get("mid")) if isinstance(reply_to, dict) else None,
    }
    if is_echo:
        app_id = _id(message.get("app_id"))
        out.append(Echo(**fields, sent_by=f"app:{app_id}" if app_id else None))
    else:
        out.append(Message(**fields))


def _classify(message: dict[str, Any]) -> tuple[str, str | None]:
    text = _text(message.get("text"))
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


def _messenger_referral(
    common: dict[str, Any], contact: str | None, user_ref: str | None, raw: dict[str, Any]
) -> Referral:
    ads_context = raw.get("ads_context_data")
    ads_context = ads_context if isinstance(ads_context, dict) else {}
    ad_id = raw.get("ad_id")
    return Referral(
        **common,
        contact_id=contact,
        user_ref=user_ref,
        source=_text(raw.get("source"), 64),
        ad_id=str(ad_id) if isinstance(ad_id, int | str) and ad_id != "" else None,
        ref=_text(raw.get("ref"), 512),
        source_url=_text(
            raw.get("referer_uri") or raw.get("source_url") or ads_context.get("photo_url"), 2048
        ),
        raw=raw,
    )


def _receipts(
    out: list[Event], common: dict[str, Any], contact: str | None, receipt: dict, kind: str
) -> None:
    event_type = "delivered" if kind == "delivery" else "read"
    mids = _list(receipt.get("mids"), f"{kind}.mids")
    for mid in mids:
        out.append(
            Receipt(
                **common,
                event_type=event_type,
                contact_id=contact,
                platform_message_id=require_id(mid, "mids[]"),
                raw=receipt,
            )
        )
    if "mid" in receipt:  # Instagram's read names the last message read
        out.append(
            Receipt(
                **common,
                event_type=event_type,
                contact_id=contact,
                platform_message_id=require_id(receipt.get("mid"), f"{kind}.mid"),
                raw=receipt,
                implies_watermark=True,
            )
        )
    watermark = meta_time(receipt.get("watermark"), f"{kind}.watermark")
    if watermark is not None:
        if contact is None:
            raise PayloadError(f"{kind} with a watermark needs a sender")
        out.append(
            Receipt(
                **common,
                event_type=event_type,
                contact_id=contact,
                watermark=watermark,
                raw=receipt,
            )
        )
    elif not mids and "mid" not in receipt:
        raise PayloadError(f"{kind} has neither watermark nor mids")


# ---------------------------------------------------------------------------- WhatsApp
def _whatsapp_body(body: dict[str, Any], received_at: datetime) -> ParsedBody:
    parsed = ParsedBody([])
    for entry in _list(body.get("entry"), "entry"):
        entry = _dict(entry, "entry[]")
        parsed.entries += 1
        waba = _id(entry.get("id"))
        entry_at = whatsapp_time(entry.get("time"), "entry.time")
        fallback = entry_at or received_at
        for change in _list(entry.get("changes"), "entry.changes"):
            change = _dict(change, "changes[]")
            field = change.get("field")
            value = _dict(change.get("value"), "changes.value")
            metadata = value.get("metadata")
            if field in ("messages", None) and isinstance(metadata, dict):
                phone = require_id(metadata.get("phone_number_id"), "metadata.phone_number_id")
                _whatsapp_messages(parsed, phone, value, entry_at, received_at)
            elif field == "smb_message_echoes":
                metadata = _dict(metadata, "value.metadata")
                phone = require_id(metadata.get("phone_number_id"), "metadata.phone_number_id")
                for echo in _list(value.get("message_echoes"), "value.message_echoes"):
                    parsed.items += 1
                    parsed.events.append(
                        _whatsapp_echo(phone, _dict(echo, "message_echoes[]"), fallback)
                    )
            else:
                phone = _id(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
                business = phone or waba
                if business is None:
                    raise PayloadError("entry.id is missing")
                parsed.items += _whatsapp_account(
                    parsed.events,
                    business,
                    _text(field, 100) or "change",
                    value,
                    entry_at,
                    received_at,
                )
    return parsed


def _whatsapp_messages(
    parsed: ParsedBody,
    phone: str,
    value: dict[str, Any],
    entry_at: datetime | None,
    received_at: datetime,
) -> None:
    fallback = entry_at or received_at
    names: dict[str, str | None] = {}
    for contact in _list(value.get("contacts"), "value.contacts"):
        contact = _dict(contact, "contacts[]")
        profile = contact.get("profile")
        wa_id = _id(contact.get("wa_id"))
        if isinstance(profile, dict) and wa_id is not None:
            names[wa_id] = _text(profile.get("name"), 256)
    start = len(parsed.events)
    for message in _list(value.get("messages"), "value.messages"):
        parsed.items += 1
        _whatsapp_message(parsed.events, phone, _dict(message, "messages[]"), names, fallback)
    message_times = [e.at for e in parsed.events[start:]]
    for status in _list(value.get("statuses"), "value.statuses"):
        parsed.items += 1
        parsed.events.append(_whatsapp_status(phone, _dict(status, "statuses[]"), fallback))
    errors = value.get("errors")
    if errors:
        # Errors about the notification itself (e.g. an unsupported webhook payload), timed
        # by the messages they came with.
        at = max(message_times) if message_times else entry_at
        parsed.events.append(
            _account_event(
                AccountEvent,
                platform="whatsapp",
                business_id=phone,
                at=at or received_at,
                kind="errors",
                payload={"errors": errors},
                timed=at is not None,
            )
        )


def _whatsapp_content(kind: str, body: dict[str, Any]) -> str | None:
    if kind == "text":
        return _text(body.get("body"))
    if kind == "button":
        return _text(body.get("text"))
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or body.get("nfm_reply")
        if isinstance(reply, dict):
            return _text(reply.get("title")) or _text(reply.get("body"))
        return None
    if kind in ("image", "video", "document"):
        return _text(body.get("caption"))
    if kind == "system":
        return _text(body.get("body"))
    return None


def _whatsapp_message(
    out: list[Event],
    phone: str,
    message: dict[str, Any],
    names: dict[str, str | None],
    fallback: datetime,
) -> None:
    wa_id = require_id(message.get("from"), "messages.from")
    wamid = require_id(message.get("id"), "messages.id")
    at = whatsapp_time(message.get("timestamp"), "messages.timestamp") or fallback
    kind = message.get("type")
    kind = kind if isinstance(kind, str) else "other"
    body = message.get(kind) if isinstance(message.get(kind), dict) else {}
    common = {"platform": "whatsapp", "business_id": phone, "at": at}
    if kind == "revoke":
        original = require_id(body.get("original_message_id"), "revoke.original_message_id")
        out.append(Delete(**common, contact_id=wa_id, platform_message_id=original, raw=message))
        return
    if kind == "edit":
        original = require_id(body.get("original_message_id"), "edit.original_message_id")
        inner = body.get("message") if isinstance(body.get("message"), dict) else {}
        inner_kind = inner.get("type") if isinstance(inner.get("type"), str) else ""
        inner_body = inner.get(inner_kind) if isinstance(inner.get(inner_kind), dict) else {}
        text = _whatsapp_content(inner_kind, inner_body)
        out.append(
            _account_event(
                Edit,
                **common,
                kind="message_edit",
                payload={"text": text, "edit": body, "id": wamid},
                contact_id=wa_id,
                external_id=original,
                text=text,
            )
        )
        return
    referral_raw = message.get("referral")
    if isinstance(referral_raw, dict):
        out.append(
            Referral(
                **common,
                contact_id=wa_id,
                source=_text(referral_raw.get("source_type"), 64),
                ad_id=(
                    str(referral_raw["source_id"])
                    if isinstance(referral_raw.get("source_id"), int | str)
                    and referral_raw.get("source_type") == "ad"
                    else None
                ),
                ctwa_clid=_text(referral_raw.get("ctwa_clid"), 512),
                source_url=_text(referral_raw.get("source_url"), 2048),
                raw=referral_raw,
            )
        )
    # Meta's older documentation calls an unsupported message type "unknown".
    message_type = "unsupported" if kind == "unknown" else kind
    message_type = message_type if message_type in _WHATSAPP_TYPES else "other"
    payload: dict[str, Any] = {}
    if body and kind != "text":
        payload[kind] = body
    for key in ("context", "referral", "errors", "identity"):
        if key in message:
            payload[key] = message[key]
    context = message.get("context")
    reply_to = _text(context.get("id")) if isinstance(context, dict) else None
    if kind == "reaction":
        reply_to = _text(body.get("message_id")) or reply_to
    cls = Reaction if kind == "reaction" else Message
    out.append(
        cls(
            **common,
            contact_id=wa_id,
            platform_message_id=wamid,
            message_type=message_type,
            text=_whatsapp_content(kind, body),
            payload=payload,
            reply_to=reply_to,
            contact_name=names.get(wa_id),
        )
    )


def _whatsapp_echo(phone: str, echo: dict[str, Any], fallback: datetime) -> Echo:
    """A message the business sent from the WhatsApp Business app (coexistence number)."""
    to = require_id(echo.get("to"), "message_echoes.to")
    wamid = require_id(echo.get("id"), "message_echoes.id")
    kind = echo.get("type") if isinstance(echo.get("type"), str) else "other"
    body = echo.get(kind) if isinstance(echo.get(kind), dict) else {}
    payload: dict[str, Any] = {kind: body} if body and kind != "text" else {}
    for key in ("context", "from", "to_user_id"):
        if key in echo:
            payload[key] = echo[key]
    return Echo(
        platform="whatsapp",
        business_id=phone,
        at=whatsapp_time(echo.get("timestamp"), "message_echoes.timestamp") or fallback,
        contact_id=to,
        platform_message_id=wamid,
        message_type=kind if kind in _WHATSAPP_TYPES else "other",
        text=_whatsapp_content(kind, body),
        payload=payload,
        sent_via="business_app",
    )


def _whatsapp_status(phone: str, status: dict[str, Any], fallback: datetime) -> Event:
    kind = status.get("status")
    at = whatsapp_time(status.get("timestamp"), "statuses.timestamp") or fallback
    recipient = _id(status.get("recipient_id"))
    if not isinstance(kind, str) or kind not in RECEIPT_TYPES:
        # A status kind Meta adds later: classified, kept, never failed.
        return _account_event(
            AccountEvent,
            platform="whatsapp",
            business_id=phone,
            at=at,
            kind=f"status.{_text(kind, 60) or 'unknown'}",
            payload=status,
            contact_id=recipient,
            external_id=_id(status.get("id")),
        )
    wamid = require_id(status.get("id"), "statuses.id")
    errors = status.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    details = first.get("error_data")
    code = first.get("code")
    conversation = status.get("conversation")
    conversation = conversation if isinstance(conversation, dict) else {}
    origin = conversation.get("origin")
    pricing = status.get("pricing")
    return Status(
        platform="whatsapp",
        business_id=phone,
        at=at,
        event_type=kind,
        contact_id=recipient,
        platform_message_id=wamid,
        error_code=code
        if isinstance(code, int) and not isinstance(code, bool) and abs(code) < 2**31
        else None,
        error_title=_text(first.get("title"), 512),
        error_message=_text(
            (details.get("details") if isinstance(details, dict) else None)
            or first.get("message")
            or first.get("details"),
            2048,
        ),
        conversation_id=_text(conversation.get("id"), 256),
        conversation_origin=_text(origin.get("type"), 64) if isinstance(origin, dict) else None,
        pricing=pricing if isinstance(pricing, dict) else None,
        raw=status,
    )


def _whatsapp_account(
    out: list[Event],
    business: str,
    field: str,
    value: dict[str, Any],
    entry_at: datetime | None,
    received_at: datetime,
) -> int:
    """Calls, user preferences, template status, account notices, …: one observed event per
    item of the value's list (``calls[]``, ``user_preferences[]``), else one for the value."""
    lists = [
        (key, items)
        for key, items in value.items()
        if key not in ("contacts", "metadata", "messaging_product")
        and isinstance(items, list)
        and items
        and all(isinstance(i, dict) for i in items)
    ]
    items = [(key, item) for key, group in lists for item in group] or [(None, value)]
    for key, item in items:
        contact = _id(item.get("from")) or _id(item.get("wa_id")) or _id(item.get("recipient_id"))
        external = (
            _id(item.get("id"))
            or _id(item.get("message_template_id"))
            or _id(value.get("message_template_id"))
        )
        at = whatsapp_time(item.get("timestamp"), f"{field}.timestamp") or entry_at
        kind = field if key is None or key == field else f"{field}.{key}"
        out.append(
            _account_event(
                AccountEvent,
                platform="whatsapp",
                business_id=business,
                at=at or received_at,
                kind=kind,
                payload=item,
                contact_id=contact,
                external_id=external,
                timed=at is not None,
            )
        )
    return len(items)
