"""Sandbox domain: the send APIs and a signed webhook emitter for Messenger, IG, WhatsApp.

Send APIs (answers shaped like Meta's):

* ``POST /{page-id}/messages`` with ``recipient``, ``messaging_type`` (RESPONSE | UPDATE |
  MESSAGE_TAG + ``tag``) and ``message`` → ``{"recipient_id", "message_id"}``, for Messenger
  PSIDs and for the IGSIDs of the Instagram account linked to the Page: as Meta's spec
  says, Instagram Messaging with a Facebook login goes through the Page (``IGUser`` has no
  ``messages`` edge on graph.facebook.com, so ``POST /{ig-account-id}/messages`` is refused
  like any unsupported operation, 100/33). ``GET /{page-id}?fields=instagram_business_account``
  names the linked account. Outside the 24-hour window (and outside 7 days for
  ``HUMAN_AGENT``) → code 10, subcode 2018278; retired tags → code 100.
* ``POST /{phone-number-id}/messages`` → ``{"messaging_product", "contacts", "messages":
  [{"id"}]}``; a non-template outside the 24-hour window → code 131047.

Windows are timed from the inbound messages *this sandbox emitted* (user messages,
postbacks, reactions, referrals), on the sandbox clock.

Webhook emitter: :class:`WebhookFactory` builds Meta-shaped bodies of every family
(messages with attachments/quick replies/story replies, postbacks, reactions, referrals
from Click-to-Messenger and Click-to-WhatsApp ads, echoes, edits, unsends, deliveries with
watermarks, reads, WhatsApp statuses incl. failed with error codes, pricing), serialized
like Meta's (non-ASCII as ``\\uXXXX``, ``/`` as ``\\/``) and signed with
``X-Hub-Signature-256`` keyed by ``config.app_secret``. :func:`emit_burst` posts a mixed
burst — including duplicate deliveries, re-batched events and out-of-order statuses — to a
target URL at a chosen rate; ``POST /_sandbox/webhooks/emit`` does the same over HTTP.
Targets must be loopback addresses: the sandbox never sends traffic elsewhere.

Knobs in ``config.extra``: ``messaging_contacts`` (contacts per platform, default 20).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from everreach.sandbox.core import Sandbox

#: Used to sign webhooks when the sandbox config has no app secret.
DEFAULT_APP_SECRET = "everreach-sandbox-app-secret"
STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
_RETIRED_TAGS = frozenset({"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"})
_NAMES = [
    "Zoë Álvarez",
    "Björn Ødegaard",
    "Renée Dubois",
    "Łukasz Wiśniewski",
    "Chloé Martin",
    "Søren Kierkegaard",
    "Ana Núñez",
    "Hiro Tanaka",
    "Amélie Poulain",
    "José Ramírez",
]
_TEXTS = [
    "Hi! Is this still available? 😊",
    "¿Cuánto cuesta el envío?",
    "Merci beaucoup!",
    "Can I change my order?",
    "Ich hätte gern mehr Infos",
    "Where's my package? 📦",
    "Thanks, that's perfect",
    "Do you ship to Zürich?",
]


def app_secret(sandbox: Sandbox) -> str:
    """The secret webhooks are signed with (``config.app_secret`` or the sandbox default)."""
    return sandbox.config.app_secret or DEFAULT_APP_SECRET


@dataclass
class MessagingState:
    """Seeded accounts and contacts, plus what the sandbox sent and emitted."""

    page_id: str
    ig_account_id: str
    phone_number_id: str
    waba_id: str
    contacts: dict[str, list[str]]  # platform → contact ids
    #: (platform, business id, contact) → Meta timestamp of the last user action emitted
    last_inbound: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    #: messages the send API accepted: dicts with platform, business_id, contact, id, at
    sent: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def business_id(self, platform: str) -> str:
        """The business account id of a platform's threads."""
        return {
            "messenger": self.page_id,
            "instagram": self.ig_account_id,
            "whatsapp": self.phone_number_id,
        }[platform]

    def next_id(self) -> int:
        """A sandbox-unique sequence number (for message ids)."""
        with self.lock:
            self.counter += 1
            return self.counter


def register(sandbox: Sandbox) -> None:
    """Seed a page, an IG account, a WhatsApp number and their contacts; register nodes."""
    rng = sandbox.rng("messaging")
    count = int(sandbox.config.extra.get("messaging_contacts", 20))
    state = MessagingState(
        page_id=str(110_000_000_000_000 + rng.randrange(10**9)),
        ig_account_id=str(17_841_400_000_000_000 + rng.randrange(10**9)),
        phone_number_id=str(106_000_000_000_000 + rng.randrange(10**9)),
        waba_id=str(102_000_000_000_000 + rng.randrange(10**9)),
        contacts={
            "messenger": [
                str(24_000_000_000_000_000 + rng.randrange(10**12)) for _ in range(count)
            ],
            "instagram": [
                str(17_000_000_000_000_000 + rng.randrange(10**12)) for _ in range(count)
            ],
            "whatsapp": [
                f"{rng.choice(['1', '44', '49', '33'])}{rng.randrange(10**9, 10**10)}"
                for _ in range(count)
            ],
        },
    )
    sandbox.domains["messaging"] = state
    module = sys.modules[__name__]
    sandbox.register_node(state.page_id, "page", module)
    sandbox.register_node(state.ig_account_id, "instagram_account", module)
    sandbox.register_node(state.phone_number_id, "whatsapp_phone_number", module)


def _state(sandbox: Sandbox) -> MessagingState:
    return sandbox.domains["messaging"]


def record_inbound(sandbox: Sandbox, platform: str, contact: str, at: datetime) -> None:
    """Note a user action (opens/extends the contact's windows in the send API)."""
    state = _state(sandbox)
    key = (platform, state.business_id(platform), contact)
    with state.lock:
        if key not in state.last_inbound or state.last_inbound[key] < at:
            state.last_inbound[key] = at


# ---------------------------------------------------------------------------- send API
def handle(
    request: Request, sandbox: Sandbox, node_id: str, kind: str, edge: str | None
) -> Response:
    """``POST /{node}/messages``; other calls on these nodes answer the node's fields."""
    state = _state(sandbox)
    params = request.state.params
    if edge is None and request.method == "GET":
        body: dict[str, Any] = {"id": node_id, "name": f"Sandbox {kind}"}
        fields = str(params.get("fields") or "")
        if kind == "page" and "instagram_business_account" in fields.split(","):
            body["instagram_business_account"] = {"id": state.ig_account_id}
        return sandbox.json_response(body)
    # Only the Page and the phone number have a `messages` edge: an Instagram account's
    # messages are sent through its Page.
    if edge != "messages" or request.method != "POST" or kind == "instagram_account":
        return sandbox.unknown_node_response(f"{node_id}/{edge}", request.method)
    if kind == "whatsapp_phone_number":
        return _send_whatsapp(sandbox, state, node_id, params)
    recipient = _param_json(params, "recipient")
    recipient_id = str(recipient.get("id")) if isinstance(recipient, dict) else ""
    if recipient_id in state.contacts["instagram"]:
        return _send_messenger(sandbox, state, state.ig_account_id, "instagram", params)
    return _send_messenger(sandbox, state, node_id, "messenger", params)


def _param_json(params: dict, name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _send_messenger(
    sandbox: Sandbox, state: MessagingState, node_id: str, platform: str, params: dict
) -> Response:
    recipient = _param_json(params, "recipient")
    message = _param_json(params, "message")
    if not isinstance(recipient, dict) or not recipient.get("id"):
        return sandbox.error_response(
            100, "(#100) The parameter recipient is required", type="OAuthException"
        )
    if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
        return sandbox.error_response(
            100, "(#100) param message must be non-empty", type="OAuthException"
        )
    text = message.get("text")
    if isinstance(text, str) and len(text) > 2000:
        return sandbox.error_response(
            100,
            "(#100) Length of param message[text] must be less than or equal to 2000",
            type="OAuthException",
        )
    if len(message.get("quick_replies") or []) > 13:
        return sandbox.error_response(
            100,
            "(#100) param message[quick_replies] must have at most 13 elements",
            type="OAuthException",
        )
    contact = str(recipient["id"])
    if contact not in state.contacts[platform]:
        return sandbox.error_response(
            100, "(#100) No matching user found", subcode=2018001, type="OAuthException"
        )
    messaging_type = params.get("messaging_type", "RESPONSE")
    tag = params.get("tag")
    if messaging_type == "MESSAGE_TAG" and tag in _RETIRED_TAGS:
        return sandbox.error_response(
            100, f"(#100) Tag {tag} is no longer supported", type="OAuthException"
        )
    last = state.last_inbound.get((platform, node_id, contact))
    now = sandbox.now()
    allowed = last is not None and (
        now < last + STANDARD_WINDOW
        or (
            messaging_type == "MESSAGE_TAG"
            and tag == "HUMAN_AGENT"
            and now < last + HUMAN_AGENT_WINDOW
        )
    )
    if not allowed:
        return sandbox.error_response(
            10,
            "(#10) This message is sent outside of allowed window. Learn more about the "
            "new policy here: https://developers.facebook.com/docs/messenger-platform/policy-"
            "overview",
            subcode=2018278,
            type="OAuthException",
        )
    mid = f"m_sbx{state.next_id():08d}{hashlib.sha1(contact.encode()).hexdigest()[:12]}"
    with state.lock:
        state.sent.append(
            {"platform": platform, "business_id": node_id, "contact": contact, "id": mid, "at": now}
        )
    return sandbox.json_response({"recipient_id": contact, "message_id": mid})


def _send_whatsapp(sandbox: Sandbox, state: MessagingState, node_id: str, params: dict) -> Response:
    if params.get("messaging_product") != "whatsapp":
        return sandbox.error_response(
            100, "(#100) The parameter messaging_product is required.", type="OAuthException"
        )
    to = "".join(ch for ch in str(params.get("to") or "") if ch.isdigit())
    kind = params.get("type", "text")
    if not to:
        return sandbox.error_response(
            100, "(#100) The parameter to is required.", type="OAuthException"
        )
    if kind == "template":
        template = _param_json(params, "template")
        if not isinstance(template, dict) or not template.get("name"):
            return sandbox.error_response(
                132000,
                "(#132000) Number of parameters does not match the expected number of params",
                type="OAuthException",
            )
    else:
        last = state.last_inbound.get(("whatsapp", node_id, to))
        if last is None or sandbox.now() >= last + STANDARD_WINDOW:
            body = sandbox.error_body(131047, "Re-engagement message", type="OAuthException")
            body["error"]["error_data"] = {
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed "
                "since the customer last replied to this number.",
            }
            sandbox.stats["error_131047"] += 1
            return sandbox.json_response(body, status=400)
    wamid = "wamid.HBgL" + hashlib.sha256(f"{to}:{state.next_id()}".encode()).hexdigest()[:40]
    with state.lock:
        state.sent.append(
            {
                "platform": "whatsapp",
                "business_id": node_id,
                "contact": to,
                "id": wamid,
                "at": sandbox.now(),
            }
        )
    return sandbox.json_response(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": str(params.get("to")), "wa_id": to}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }
    )


# ---------------------------------------------------------------------------- webhooks
def serialize(body: dict[str, Any]) -> bytes:
    """JSON the way Meta sends it: compact, non-ASCII as ``\\uXXXX``, ``/`` as ``\\/``."""
    return (
        json.dumps(body, ensure_ascii=True, separators=(",", ":"))
        .replace("/", "\\/")
        .encode("ascii")
    )


def sign(secret: str, raw: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value for ``raw``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class WebhookFactory:
    """Builds Meta-shaped webhook bodies (and records inbound activity for the send API)."""

    def __init__(self, sandbox: Sandbox, seed: int = 0) -> None:
        self.sandbox = sandbox
        self.state = _state(sandbox)
        self.rng = random.Random(seed)
        self.seed = seed

    def _mid(self, platform: str) -> str:
        n = self.state.next_id()
        tag = hashlib.sha1(f"{self.seed}:{n}".encode()).hexdigest()[:16]
        if platform == "whatsapp":
            return f"wamid.HBgL{tag}{n:06d}"
        return f"m_{platform[:2]}{tag}{n:06d}"

    # --- Messenger / Instagram -------------------------------------------------------
    def messaging_body(self, platform: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """A ``page``/``instagram`` body with one entry holding ``events``."""
        biz = self.state.business_id(platform)
        at = max((e.get("timestamp", 0) for e in events), default=0)
        return {
            "object": "page" if platform == "messenger" else "instagram",
            "entry": [{"id": biz, "time": at, "messaging": events}],
        }

    def user_event(
        self, platform: str, contact: str, at: datetime, **content: Any
    ) -> dict[str, Any]:
        """A ``messaging[]`` event from the user (records the inbound activity)."""
        biz = self.state.business_id(platform)
        if any(k in content for k in ("message", "postback", "reaction", "referral")):
            message = content.get("message")
            if not (isinstance(message, dict) and message.get("is_deleted")):
                record_inbound(self.sandbox, platform, contact, at)
        return {
            "sender": {"id": contact},
            "recipient": {"id": biz},
            "timestamp": _ms(at),
            **content,
        }

    def text_message(
        self, platform: str, contact: str, at: datetime, text: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A user's text message (``extra`` goes into ``message``)."""
        message = {"mid": self._mid(platform), "text": text or self.rng.choice(_TEXTS), **extra}
        return self.user_event(platform, contact, at, message=message)

    def attachment_message(
        self, platform: str, contact: str, at: datetime, kind: str = "image"
    ) -> dict[str, Any]:
        """A message with one attachment (image, video, audio, file, location, …)."""
        payload = (
            {"coordinates": {"lat": 47.37, "long": 8.54}}
            if kind == "location"
            else {"url": f"https://scontent.xx.fbcdn.net/v/{kind}/{self.rng.randrange(10**9)}"}
        )
        return self.user_event(
            platform,
            contact,
            at,
            message={
                "mid": self._mid(platform),
                "attachments": [{"type": kind, "payload": payload}],
            },
        )

    def ctm_referral_message(
        self, platform: str, contact: str, at: datetime, ad_id: str, text: str = "I saw your ad!"
    ) -> dict[str, Any]:
        """The first message of a Click-to-Messenger ad conversation."""
        referral = {
            "ref": "",
            "ad_id": ad_id,
            "source": "ADS",
            "type": "OPEN_THREAD",
            "ads_context_data": {
                "ad_title": "Winter sale",
                "photo_url": "https://example.com/ad.jpg",
                "post_id": f"{self.state.page_id}_{ad_id}",
            },
        }
        return self.user_event(
            platform,
            contact,
            at,
            referral=referral,
            message={"mid": self._mid(platform), "text": text},
        )

    def echo(
        self,
        platform: str,
        contact: str,
        at: datetime,
        mid: str | None = None,
        text: str = "Thanks for reaching out!",
    ) -> dict[str, Any]:
        """The business's own send, echoed back (``is_echo``)."""
        biz = self.state.business_id(platform)
        return {
            "sender": {"id": biz},
            "recipient": {"id": contact},
            "timestamp": _ms(at),
            "message": {
                "mid": mid or self._mid(platform),
                "is_echo": True,
                "app_id": int(self.sandbox.config.app_id),
                "text": text,
            },
        }

    def delivery(
        self, platform: str, contact: str, watermark: datetime, mids: list[str] | None = None
    ) -> dict[str, Any]:
        """A delivery receipt: everything sent before ``watermark`` was delivered."""
        delivery: dict[str, Any] = {"watermark": _ms(watermark)}
        if mids:
            delivery["mids"] = mids
        return {
            "sender": {"id": contact},
            "recipient": {"id": self.state.business_id(platform)},
            "delivery": delivery,
        }

    def read(
        self, platform: str, contact: str, at: datetime, watermark: datetime
    ) -> dict[str, Any]:
        """A read receipt with a watermark."""
        return {
            "sender": {"id": contact},
            "recipient": {"id": self.state.business_id(platform)},
            "timestamp": _ms(at),
            "read": {"watermark": _ms(watermark)},
        }

    # --- WhatsApp -------------------------------------------------------------------
    def whatsapp_body(
        self,
        messages: list[dict[str, Any]] | None = None,
        statuses: list[dict[str, Any]] | None = None,
        contacts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A ``whatsapp_business_account`` body with one change."""
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": "15550001234",
                "phone_number_id": self.state.phone_number_id,
            },
        }
        if contacts:
            value["contacts"] = contacts
        if messages:
            value["messages"] = messages
        if statuses:
            value["statuses"] = statuses
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": self.state.waba_id, "changes": [{"value": value, "field": "messages"}]}
            ],
        }

    def wa_message(
        self,
        wa_id: str,
        at: datetime,
        kind: str = "text",
        referral: dict[str, Any] | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        """A user's WhatsApp message of ``kind`` (records the inbound activity)."""
        record_inbound(self.sandbox, "whatsapp", wa_id, at)
        message: dict[str, Any] = {
            "from": wa_id,
            "id": self._mid("whatsapp"),
            "timestamp": str(int(at.timestamp())),
            "type": kind,
        }
        if kind == "text":
            message["text"] = {"body": content.get("text") or self.rng.choice(_TEXTS)}
        elif kind in ("image", "video", "audio", "document", "sticker"):
            message[kind] = {
                "id": str(self.rng.randrange(10**15)),
                "mime_type": "image/jpeg",
                "sha256": hashlib.sha256(str(at).encode()).hexdigest(),
            }
        elif kind == "location":
            message["location"] = {"latitude": 52.52, "longitude": 13.4, "name": "Café Kö"}
        elif kind == "interactive":
            message["interactive"] = {
                "type": "button_reply",
                "button_reply": {"id": "yes", "title": "Yes please"},
            }
        elif kind == "button":
            message["button"] = {"payload": "STOP", "text": "Stop promotions"}
        elif kind == "reaction":
            message["reaction"] = {"message_id": content.get("target", ""), "emoji": "👍"}
        elif kind == "contacts":
            message["contacts"] = [{"name": {"formatted_name": "Ana Núñez"}}]
        elif kind == "unsupported":
            message["errors"] = [{"code": 131051, "title": "Message type unknown"}]
        if referral is not None:
            message["referral"] = referral
        return message

    def ctwa_referral(self, ad_id: str) -> dict[str, Any]:
        """A Click-to-WhatsApp ad referral block."""
        return {
            "source_url": f"https://fb.me/{ad_id}",
            "source_id": ad_id,
            "source_type": "ad",
            "headline": "Winter sale",
            "body": "Chat with us",
            "media_type": "image",
            "image_url": "https://example.com/ad.jpg",
            "ctwa_clid": "ARA" + hashlib.sha1(ad_id.encode()).hexdigest()[:24],
        }

    def wa_contact(self, wa_id: str) -> dict[str, Any]:
        """A ``contacts[]`` item with the user's profile name."""
        name = _NAMES[int(hashlib.sha1(wa_id.encode()).hexdigest(), 16) % len(_NAMES)]
        return {"profile": {"name": name}, "wa_id": wa_id}

    def wa_status(
        self, wamid: str, wa_id: str, status: str, at: datetime, error_code: int | None = None
    ) -> dict[str, Any]:
        """A status (sent/delivered/read/failed) with conversation and pricing."""
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(at.timestamp())),
            "recipient_id": wa_id,
        }
        if status in ("sent", "delivered"):
            item["conversation"] = {
                "id": hashlib.md5(wa_id.encode()).hexdigest(),
                "origin": {"type": "service"},
            }
            item["pricing"] = {
                "billable": True,
                "pricing_model": "PMP",
                "category": "service",
                "type": "regular",
            }
        if status == "failed":
            code = error_code or 131047
            item["errors"] = [
                {
                    "code": code,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "error_data": {
                        "details": "Message failed to send because "
                        "more than 24 hours have passed since the "
                        "customer last replied to this number."
                    },
                }
            ]
        return item


def build_burst(
    sandbox: Sandbox, count: int, seed: int = 0, end: datetime | None = None
) -> list[bytes]:
    """``count`` serialized webhook bodies: a realistic, shuffled mix of every family.

    Conversations are spread over the hour before ``end`` (default: the sandbox clock);
    about 5 % of bodies are exact duplicates and some events are re-batched in another
    body, as Meta does; statuses are shuffled so they arrive out of order.
    """
    factory = WebhookFactory(sandbox, seed)
    rng = factory.rng
    state = factory.state
    end = end or sandbox.now()
    bodies: list[dict[str, Any]] = []

    def moment() -> datetime:
        return end - timedelta(seconds=rng.uniform(60, 3600))

    while len(bodies) < count:
        platform = rng.choice(["messenger", "instagram", "whatsapp"])
        contact = rng.choice(state.contacts[platform])
        at = moment()
        if platform == "whatsapp":
            referral = (
                factory.ctwa_referral(str(120_000 + rng.randrange(50)))
                if rng.random() < 0.2
                else None
            )
            kind = rng.choice(
                [
                    "text",
                    "text",
                    "text",
                    "image",
                    "location",
                    "interactive",
                    "button",
                    "document",
                    "audio",
                    "contacts",
                ]
            )
            inbound = factory.wa_message(contact, at, kind, referral=referral)
            bodies.append(
                factory.whatsapp_body(messages=[inbound], contacts=[factory.wa_contact(contact)])
            )
            if rng.random() < 0.2:
                bodies.append(
                    factory.whatsapp_body(
                        messages=[
                            factory.wa_message(
                                contact, at + timedelta(seconds=5), "reaction", target=inbound["id"]
                            )
                        ]
                    )
                )
            # The business replies; its statuses arrive shuffled, sometimes failed.
            wamid = factory._mid("whatsapp")
            statuses = ["sent", "delivered", "read"][: rng.randint(1, 3)]
            if rng.random() < 0.1:
                statuses.append("failed")
            rng.shuffle(statuses)
            for n, status in enumerate(statuses):
                bodies.append(
                    factory.whatsapp_body(
                        statuses=[
                            factory.wa_status(
                                wamid, contact, status, at + timedelta(seconds=30 + n)
                            )
                        ]
                    )
                )
            continue
        events: list[dict[str, Any]] = []
        roll = rng.random()
        if roll < 0.15 and platform == "messenger":
            events.append(
                factory.ctm_referral_message(
                    platform, contact, at, str(120_000 + rng.randrange(50))
                )
            )
        elif roll < 0.3:
            events.append(
                factory.attachment_message(
                    platform,
                    contact,
                    at,
                    rng.choice(
                        ["image", "video", "audio", "file"]
                        if platform == "messenger"
                        else ["image", "story_mention", "share"]
                    ),
                )
            )
        elif roll < 0.38:
            events.append(
                factory.text_message(platform, contact, at, "Yes", quick_reply={"payload": "YES"})
            )
        elif roll < 0.45 and platform == "messenger":
            events.append(
                factory.user_event(
                    platform,
                    contact,
                    at,
                    postback={
                        "mid": factory._mid(platform),
                        "title": "Get Started",
                        "payload": "GET_STARTED",
                    },
                )
            )
        elif roll < 0.5 and platform == "instagram":
            events.append(
                factory.text_message(
                    platform,
                    contact,
                    at,
                    "Love this!",
                    reply_to={"story": {"url": "https://lookaside.fbsbx.com/s/1", "id": "1799"}},
                )
            )
        else:
            events.append(factory.text_message(platform, contact, at))
        first_mid = events[0].get("message", {}).get("mid") or events[0].get("postback", {}).get(
            "mid"
        )
        bodies.append(factory.messaging_body(platform, events))
        # The page answers (echo), the user receives and reads it.
        reply_at = at + timedelta(seconds=20)
        echo = factory.echo(platform, contact, reply_at)
        receipts = [echo]
        if platform == "messenger":
            receipts.append(
                factory.delivery(
                    platform, contact, reply_at + timedelta(seconds=1), [echo["message"]["mid"]]
                )
            )
        receipts.append(
            factory.read(
                platform, contact, reply_at + timedelta(seconds=40), reply_at + timedelta(seconds=2)
            )
        )
        if rng.random() < 0.2 and first_mid:
            receipts.append(
                factory.user_event(
                    platform,
                    contact,
                    reply_at + timedelta(seconds=50),
                    reaction={
                        "mid": echo["message"]["mid"],
                        "action": "react",
                        "reaction": "love",
                        "emoji": "❤",
                    },
                )
            )
        rng.shuffle(receipts)  # receipts before the echo they acknowledge: out of order
        for receipt in receipts:
            bodies.append(factory.messaging_body(platform, [receipt]))
        if platform == "instagram" and rng.random() < 0.1 and "message" in events[0]:
            # The user unsends the message (may arrive before it: the shuffle decides).
            bodies.append(
                factory.messaging_body(
                    platform,
                    [
                        {
                            "sender": {"id": contact},
                            "recipient": {"id": state.ig_account_id},
                            "timestamp": _ms(at + timedelta(seconds=60)),
                            "message": {"mid": events[0]["message"]["mid"], "is_deleted": True},
                        }
                    ],
                )
            )
        if rng.random() < 0.1:
            # The same user message re-batched together with a later one.
            later = factory.text_message(platform, contact, at + timedelta(seconds=90))
            bodies.append(factory.messaging_body(platform, [events[0], later]))
    bodies = bodies[:count]
    raws = [serialize(b) for b in bodies]
    duplicates = [raws[rng.randrange(len(raws))] for _ in range(max(count // 20, 0))]
    raws = raws[: count - len(duplicates)] + duplicates
    rng.shuffle(raws)
    return raws


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox only emits webhooks to loopback targets, not {host!r}")


def post_bodies(
    sandbox: Sandbox,
    target_url: str,
    bodies: list[bytes],
    rate: float | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """POST signed ``bodies`` to ``target_url`` (at most ``rate`` per second)."""
    _check_loopback(target_url)
    secret = app_secret(sandbox)
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    with httpx.Client(timeout=timeout) as client:
        for n, raw in enumerate(bodies):
            if rate:
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            try:
                response = client.post(
                    target_url,
                    content=raw,
                    headers={
                        "content-type": "application/json",
                        "x-hub-signature-256": sign(secret, raw),
                        "user-agent": "facebookexternalua",
                    },
                )
                statuses[response.status_code] += 1
            except httpx.HTTPError:
                statuses[0] += 1
    return {
        "sent": len(bodies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(time.perf_counter() - started, 3),
    }


def emit_burst(
    sandbox: Sandbox, target_url: str, count: int = 200, rate: float | None = None, seed: int = 0
) -> dict[str, Any]:
    """Build a mixed burst of ``count`` signed webhooks and POST them to ``target_url``."""
    return post_bodies(sandbox, target_url, build_burst(sandbox, count, seed), rate)


def extra_routes(sandbox: Sandbox) -> list[Route]:
    """``POST /_sandbox/webhooks/emit`` ``{"target_url", "count", "rate", "seed"}``."""
    from starlette.concurrency import run_in_threadpool

    async def emit(request: Request) -> Response:
        try:
            params = orjson.loads(await request.body() or b"{}")
            target = str(params["target_url"])
            _check_loopback(target)
            count = int(params.get("count", 200))
            rate = float(params["rate"]) if params.get("rate") else None
            seed = int(params.get("seed", 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return sandbox.json_response(
                {"error": str(exc) or "target_url is required"}, status=400
            )
        result = await run_in_threadpool(emit_burst, sandbox, target, count, rate, seed)
        return sandbox.json_response(result)

    return [Route("/_sandbox/webhooks/emit", emit, methods=["POST"])]
