"""The typed event model: what one Meta webhook body says, per platform, as plain data.

:func:`everreach.messaging.parse.parse_body` walks a body once and produces these events;
everything else — the advisory locks a batch takes, the threads it creates, the set-based
apply, policy windows, referrals → ``user_event`` — is derived from them.

Kinds (one class each): :class:`Message` (a user's message, incl. WhatsApp system notices),
:class:`Echo` (the business's own message: Messenger/Instagram ``is_echo``, WhatsApp
``smb_message_echoes``), :class:`OutboundMessage` (a send through this API),
:class:`Reaction`, :class:`Postback`, :class:`Referral`, :class:`Optin`, :class:`Edit`,
:class:`Delete` (Instagram unsend, WhatsApp revoke), :class:`Receipt` (Messenger/Instagram
delivery and read, by mid or watermark), :class:`Status` (WhatsApp sent/delivered/read/
played/failed) and :class:`AccountEvent` (everything else Meta sends: app roles, policy
enforcement, handover, calls, template status, user preferences, fields added later).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Rank of each message status: status only moves forward; failed (99) sticks.
STATUS_RANK: dict[str, int] = {
    "received": 0,
    "pending": 0,
    "sent": 1,
    "delivered": 2,
    "read": 3,
    "played": 4,
    "failed": 99,
}
#: Receipt / status kinds stored in ``message_delivery_event``.
RECEIPT_TYPES = frozenset({"sent", "delivered", "read", "played", "failed", "deleted"})
PLATFORMS = ("messenger", "instagram", "whatsapp")


def thread_lock(platform: str, business_id: str, contact_id: str) -> str:
    """Advisory-lock key of one conversation."""
    return f"thread:{platform}:{business_id}:{contact_id}"


def message_lock(platform: str, platform_message_id: str) -> str:
    """Advisory-lock key of one message id (mid / wamid)."""
    return f"msg:{platform}:{platform_message_id}"


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """A conversation: platform × business account (Page, IG account, phone number) × contact."""

    platform: str
    business_id: str
    contact_id: str

    @property
    def lock(self) -> str:
        """Its advisory-lock key."""
        return thread_lock(self.platform, self.business_id, self.contact_id)


@dataclass(kw_only=True, slots=True)
class Event:
    """Base of every event: which platform and business account it belongs to, and when."""

    platform: str
    business_id: str
    at: datetime

    @property
    def thread(self) -> ThreadKey | None:
        """The conversation this event creates or belongs to (None: account level)."""
        return None

    def lock_keys(self) -> list[str]:
        """Advisory locks that serialize this event against concurrent writers."""
        thread = self.thread
        return [thread.lock] if thread is not None else []


@dataclass(kw_only=True, slots=True)
class Message(Event):
    """A message from the contact (or, in subclasses, to the contact), one row of
    ``conversation_message`` keyed by its mid / wamid."""

    contact_id: str
    platform_message_id: str | None
    message_type: str
    text: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None
    contact_name: str | None = None
    direction: str = "inbound"
    is_echo: bool = False
    status: str = "received"
    sent_via: str | None = None
    sent_by: str | None = None
    sent_by_role: str | None = None
    messaging_type: str | None = None
    message_tag: str | None = None
    window_used: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    #: Set by the send API so it can answer with the stored row's id.
    message_id: uuid.UUID | None = None

    @property
    def thread(self) -> ThreadKey:
        """The contact's conversation."""
        return ThreadKey(self.platform, self.business_id, self.contact_id)

    @property
    def reconciles(self) -> bool:
        """Can receipts (statuses, watermarks, an unsend, an edit) precede this message?"""
        return self.platform_message_id is not None

    def lock_keys(self) -> list[str]:
        """The thread, and the message id (a status or receipt may race it)."""
        keys = [self.thread.lock]
        if self.platform_message_id is not None:
            keys.append(message_lock(self.platform, self.platform_message_id))
        return keys


@dataclass(kw_only=True, slots=True)
class Echo(Message):
    """The business's own message, echoed back by Meta: outbound, never user activity."""

    direction: str = "outbound"
    is_echo: bool = True
    status: str = "sent"
    sent_via: str | None = "echo"


@dataclass(kw_only=True, slots=True)
class OutboundMessage(Message):
    """A message sent through this project's send API (recorded with who sent it)."""

    direction: str = "outbound"
    status: str = "sent"
    sent_via: str | None = "api"


@dataclass(kw_only=True, slots=True)
class Reaction(Message):
    """A reaction to a message (stored as a ``reaction`` message replying to its target)."""

    message_type: str = "reaction"


@dataclass(kw_only=True, slots=True)
class Postback(Message):
    """A button tap (stored as a ``postback`` message; opens the windows)."""

    message_type: str = "postback"


@dataclass(kw_only=True, slots=True)
class Referral(Event):
    """Where a conversation came from: a Click-to-Messenger/WhatsApp ad, an m.me/ig.me link.

    ``contact_id`` is None when Meta names the person by a plugin ``user_ref`` only.
    ``touches_window`` is True for a standalone referral event (a user action).
    """

    contact_id: str | None
    user_ref: str | None = None
    source: str | None = None
    ad_id: str | None = None
    ref: str | None = None
    ctwa_clid: str | None = None
    source_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    touches_window: bool = False

    @property
    def thread(self) -> ThreadKey | None:
        """The contact's conversation, when there is a contact."""
        if self.contact_id is None:
            return None
        return ThreadKey(self.platform, self.business_id, self.contact_id)

    @property
    def is_ad(self) -> bool:
        """Did an ad start this conversation?"""
        return bool(self.ad_id or self.ctwa_clid or (self.source or "").lower() in ("ads", "ad"))

    @property
    def key(self) -> str:
        """One ``ad_referral`` user_event per distinct referral."""
        who = self.contact_id if self.contact_id is not None else f"user_ref:{self.user_ref}"
        return (
            f"{self.platform}:{who}:{self.ad_id or ''}:{self.ctwa_clid or ''}:"
            f"{self.ref or ''}:{int(self.at.timestamp() * 1000)}"
        )

    def lock_keys(self) -> list[str]:
        """The thread, or the user_ref identity."""
        if self.contact_id is not None:
            return [thread_lock(self.platform, self.business_id, self.contact_id)]
        return [f"user_ref:{self.platform}:{self.business_id}:{self.user_ref}"]


@dataclass(kw_only=True, slots=True)
class UserRefSeen(Event):
    """A Messenger plugin identity (``user_ref``) was seen; ``contact_id`` ties it to a PSID."""

    user_ref: str
    contact_id: str | None = None

    def lock_keys(self) -> list[str]:
        """The identity row."""
        return [f"user_ref:{self.platform}:{self.business_id}:{self.user_ref}"]


@dataclass(kw_only=True, slots=True)
class AccountEvent(Event):
    """Anything Meta sends that is not a message or a receipt, kept as an observed event."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    contact_id: str | None = None
    user_ref: str | None = None
    external_id: str | None = None
    dedup_key: str = ""

    @property
    def observed_key(self) -> str:
        """Lock key of its observed-event row."""
        return f"observed:{self.dedup_key}"

    def lock_keys(self) -> list[str]:
        """Its own row only (it changes no conversation)."""
        return [self.observed_key]


@dataclass(kw_only=True, slots=True)
class Optin(AccountEvent):
    """A Messenger opt-in (checkbox plugin with ``user_ref``, or a PSID's opt-in, which opens
    the windows like any user action)."""

    kind: str = "optin"

    @property
    def thread(self) -> ThreadKey | None:
        """The contact's conversation, when Meta names a PSID."""
        if self.contact_id is None:
            return None
        return ThreadKey(self.platform, self.business_id, self.contact_id)

    def lock_keys(self) -> list[str]:
        """Its row, and the thread it opens a window on."""
        keys = [self.observed_key]
        if self.contact_id is not None:
            keys.append(thread_lock(self.platform, self.business_id, self.contact_id))
        return keys


@dataclass(kw_only=True, slots=True)
class Edit(AccountEvent):
    """A message edited by its author: recorded as an edit event and applied to the stored
    message (now, or when the message arrives). ``must_exist`` (Messenger): an edit whose
    message is not stored fails its body, to be replayed once the message is there."""

    kind: str = "message_edit"
    text: str | None = None
    must_exist: bool = False

    def lock_keys(self) -> list[str]:
        """Its row and the edited message."""
        keys = [self.observed_key]
        if self.external_id is not None:
            keys.append(message_lock(self.platform, self.external_id))
        return keys


@dataclass(kw_only=True, slots=True)
class Receipt(Event):
    """A receipt row of ``message_delivery_event``: applied to one message (``mid``) or to
    every outbound message up to a ``watermark``; kept unmatched until its message arrives."""

    event_type: str
    contact_id: str | None
    platform_message_id: str | None = None
    watermark: datetime | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_message: str | None = None
    conversation_id: str | None = None
    conversation_origin: str | None = None
    pricing: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    #: Instagram's ``read`` names the last message read: everything before it is read too.
    implies_watermark: bool = False

    @property
    def dedup_key(self) -> str:
        """One row per distinct receipt: by message id, else by watermark."""
        if self.platform_message_id is not None:
            return f"{self.platform}:{self.event_type}:{self.platform_message_id}"
        assert self.watermark is not None
        return (
            f"{self.platform}:{self.event_type}:wm:{self.business_id}:{self.contact_id}:"
            f"{int(self.watermark.timestamp() * 1000)}"
        )

    def lock_keys(self) -> list[str]:
        """The message it names, else the conversation its watermark covers."""
        if self.platform_message_id is not None:
            keys = [message_lock(self.platform, self.platform_message_id)]
            if self.contact_id is not None:
                keys.append(thread_lock(self.platform, self.business_id, self.contact_id))
            return keys
        if self.contact_id is not None:
            return [thread_lock(self.platform, self.business_id, self.contact_id)]
        return []


@dataclass(kw_only=True, slots=True)
class Status(Receipt):
    """A WhatsApp message status (sent / delivered / read / played / failed)."""


@dataclass(kw_only=True, slots=True)
class Delete(Receipt):
    """The author deleted a message (Instagram unsend, WhatsApp revoke): it is marked deleted,
    never stored as a new message."""

    event_type: str = "deleted"


@dataclass(slots=True)
class ParsedBody:
    """One webhook body as events, in the order Meta listed them."""

    events: list[Event]
    entries: int = 0
    #: Items in the body (messaging[] events, WhatsApp messages/statuses/…), as Meta counts.
    items: int = 0

    def lock_keys(self) -> set[str]:
        """Every advisory lock its events take."""
        keys: set[str] = set()
        for event in self.events:
            keys.update(event.lock_keys())
        return keys

    def threads(self) -> set[ThreadKey]:
        """Every conversation its events create or touch."""
        found: set[ThreadKey] = set()
        for event in self.events:
            thread = event.thread
            if thread is not None:
                found.add(thread)
        return found
