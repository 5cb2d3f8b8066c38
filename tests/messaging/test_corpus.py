"""Every real Meta webhook body of ``../shared/meta_payloads`` is applied, with what it carries.

The bodies come from other open-source projects' fixtures and Meta's documentation, byte for
byte (see PROVENANCE.md there). Each body is posted, signed, to a live receiver:

1. alone, on an emptied database, and checked against what the body itself says — a small
   oracle below (independent of the receiver's walk) plus explicit checks for the quirks:
   raw row applied; each wamid/mid stored once with the right direction; each status/receipt
   recorded with its error code and pricing; referral ids in ``user_event`` or on the
   thread; windows timed from Meta's timestamps; account events kept as observed events;
2. all together, as one group-committed batch;
3. all again, concurrently: nothing changes but the raw log.

No body of this corpus stays ``failed``: a body that cannot be applied for a reason Meta's
documentation confirms would be listed in ``DOCUMENTED_FAILURES`` with that reason.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from messaging_helpers import CORPUS, Poster, corpus_files

from everreach.messaging.webhook_log import APPLY_SESSION_OPTIONS
from webhook_receiver import rawlog
from webhook_receiver.rawlog import RawEvent

#: file → why it may stay failed (Meta's documentation says so). None in this corpus.
DOCUMENTED_FAILURES: dict[str, str] = {}

_ENVELOPE = {"sender", "recipient", "timestamp", "seq", "prior_message"}


def _files() -> list[Path]:
    try:
        return corpus_files()
    except pytest.skip.Exception:
        return []


def _id(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def _meta_time(value: Any) -> datetime | None:
    """Messenger/Instagram: ms (Meta's samples use seconds; below 1e11 is seconds)."""
    if value in (None, "", 0, "0"):
        return None
    number = float(value)
    return datetime.fromtimestamp(number if number < 1e11 else number / 1000, UTC)


def _wa_time(value: Any) -> datetime | None:
    return None if value in (None, "", 0, "0") else datetime.fromtimestamp(float(value), UTC)


@dataclass
class Expected:
    """What a body carries, read straight from it."""

    #: (platform, mid/wamid) → direction; None as the id for events Meta gives no id
    messages: list[tuple[str, str | None, str]] = field(default_factory=list)
    #: dedup key → (error code, pricing)
    receipts: dict[str, tuple[int | None, dict | None]] = field(default_factory=dict)
    referral_ids: set[str] = field(default_factory=set)
    #: (platform, business, contact) → latest user action (Meta's clock)
    activity: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    observed: Counter[str] = field(default_factory=Counter)

    def act(self, key: tuple[str, str, str], at: datetime) -> None:
        self.activity[key] = max(at, self.activity.get(key, at))

    def message(self, platform: str, pmid: str | None, direction: str) -> None:
        if pmid is None or all(m[1] != pmid for m in self.messages if m[0] == platform):
            self.messages.append((platform, pmid, direction))


def _referral_ids(referral: dict) -> set[str]:
    keys = ("ad_id", "ref", "source_id", "ctwa_clid")
    return {str(referral[k]) for k in keys if referral.get(k) not in (None, "")}


def oracle(body: dict) -> Expected:
    """Read a Meta webhook body the way Meta documents it."""
    exp = Expected()
    if body["object"] == "whatsapp_business_account":
        for entry in body["entry"]:
            for change in entry["changes"]:
                _whatsapp(exp, change["field"], change["value"])
        return exp
    platform = "messenger" if body["object"] == "page" else "instagram"
    for entry in body["entry"]:
        biz = str(entry["id"])
        events = entry.get("messaging", []) + entry.get("standby", [])
        for change in entry.get("changes", []):
            if change["field"] == "messages" and "message" in change["value"]:
                events.append(change["value"])
            else:
                exp.observed[change["field"]] += 1
        for event in events:
            at = _meta_time(event.get("timestamp")) or _meta_time(entry.get("time"))
            sender = (event.get("sender") or {}).get("id")
            contact = (platform, biz, sender)
            if "message" in event:
                message = event["message"]
                for referral in (event.get("referral"), message.get("referral")):
                    if referral:
                        exp.referral_ids |= _referral_ids(referral)
                if message.get("is_echo"):
                    exp.message(platform, message["mid"], "outbound")
                elif message.get("is_deleted"):
                    exp.receipts[f"{platform}:deleted:{message['mid']}"] = (None, None)
                else:
                    exp.message(platform, message["mid"], "inbound")
                    exp.act(contact, at)
            elif "postback" in event:
                postback = event["postback"]
                exp.referral_ids |= _referral_ids(postback.get("referral") or {})
                if sender:
                    exp.message(platform, postback.get("mid"), "inbound")
                    exp.act(contact, at)
                else:
                    exp.observed["postback"] += 1
            elif "referral" in event:
                exp.referral_ids |= _referral_ids(event["referral"])
                exp.act(contact, at)
            elif "delivery" in event or "read" in event:
                kind = "delivery" if "delivery" in event else "read"
                receipt, etype = event[kind], "delivered" if kind == "delivery" else "read"
                for mid in receipt.get("mids", []) + ([receipt["mid"]] if "mid" in receipt else []):
                    exp.receipts[f"{platform}:{etype}:{mid}"] = (None, None)
                if "watermark" in receipt:
                    exp.receipts[f"{platform}:{etype}:wm:{biz}:{sender}:{receipt['watermark']}"] = (
                        None,
                        None,
                    )
            else:
                kind = next(k for k in event if k not in _ENVELOPE)
                exp.observed[kind.replace("-", "_")] += 1
    return exp


def _whatsapp(exp: Expected, field_name: str, value: dict) -> None:
    phone = value.get("metadata", {}).get("phone_number_id")
    if field_name == "smb_message_echoes":
        for echo in value["message_echoes"]:
            exp.message("whatsapp", echo["id"], "outbound")
        return
    if field_name != "messages":
        lists = [k for k, v in value.items() if isinstance(v, list) and k != "contacts"]
        for key in lists or [None]:
            kind = field_name if key in (None, field_name) else f"{field_name}.{key}"
            exp.observed[kind] += len(value[key]) if key else 1
        return
    for message in value.get("messages", []):
        kind = message["type"]
        if kind == "revoke":
            original = message["revoke"]["original_message_id"]
            exp.receipts[f"whatsapp:deleted:{original}"] = (None, None)
        elif kind == "edit":
            exp.observed["message_edit"] += 1
        else:
            first = all(m[1] != message["id"] for m in exp.messages)
            exp.message("whatsapp", message["id"], "inbound")
            if kind != "system" and first:  # a wamid delivered twice is one message
                exp.act(("whatsapp", phone, message["from"]), _wa_time(message["timestamp"]))
            exp.referral_ids |= _referral_ids(message.get("referral") or {})
    for status in value.get("statuses", []):
        errors = status.get("errors") or [{}]
        exp.receipts[f"whatsapp:{status['status']}:{status['id']}"] = (
            errors[0].get("code"),
            status.get("pricing"),
        )
    if value.get("errors"):
        exp.observed["errors"] += 1


def check(db: psycopg.Connection, body: dict, exp: Expected) -> None:
    """The database holds what ``exp`` says (one body applied alone on an emptied database)."""
    rows = db.execute(
        "select platform, platform_message_id, direction from conversation_message"
    ).fetchall()
    assert len(rows) == len(exp.messages), (rows, exp.messages)
    for platform, pmid, direction in exp.messages:
        if pmid is not None:
            assert [r[2] for r in rows if r[:2] == (platform, pmid)] == [direction], pmid
    for key, (code, pricing) in exp.receipts.items():
        found = db.execute(
            "select error_code, pricing from message_delivery_event where dedup_key = %s", (key,)
        ).fetchall()
        assert found == [(code, pricing)], key
    stored = (
        db.execute(
            "select coalesce(string_agg(props::text, ' '), '') from user_event "
            "where etype = 'ad_referral'"
        ).fetchone()[0]
        + db.execute(
            "select coalesce(string_agg(referral::text, ' '), '') from conversation_thread"
        ).fetchone()[0]
    )
    for ref in exp.referral_ids:
        assert json.dumps(ref)[1:-1] in stored, ref
    for (platform, biz, contact), at in exp.activity.items():
        windows = dict(
            db.execute(
                "select w.window_type, w.last_user_activity_at from messaging_policy_window w "
                "join conversation_thread t using (thread_id) where t.platform = %s "
                "and t.business_account_id = %s and t.contact_id = %s",
                (platform, biz, contact),
            ).fetchall()
        )
        expected_types = {"standard"} | ({"human_agent"} if platform != "whatsapp" else set())
        assert set(windows) == expected_types and set(windows.values()) == {at}, (contact, at)
    if not exp.activity:
        assert db.execute("select count(*) from messaging_policy_window").fetchone()[0] == 0
    kinds = Counter(
        dict(db.execute("select kind, count(*) from messaging_observed_event group by 1"))
    )
    assert kinds == exp.observed, (kinds, exp.observed)
    logged = db.execute(
        "select count(*) from user_event where etype like '%%_received' or etype like '%%_sent'"
    ).fetchone()[0]
    assert logged == len(exp.messages)  # every stored message logged once


# ---------------------------------------------------------------------------- the quirks
def _one(db: psycopg.Connection, sql: str, *params: object) -> tuple:
    rows = db.execute(sql, params).fetchall()
    assert len(rows) == 1, (sql, rows)
    return rows[0]


def _observed(db: psycopg.Connection, kind: str) -> tuple:
    return _one(
        db,
        "select business_account_id, contact_id, user_ref, external_id, occurred_at, thread_id "
        "from messaging_observed_event where kind = %s",
        kind,
    )


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _optin_without_sender(db: psycopg.Connection) -> None:
    # Checkbox plugin: no sender, only a user_ref → on the Page and the identity.
    assert _observed(db, "optin")[:3] == ("111899832631525", None, "1234")
    assert _one(db, "select business_account_id, user_ref, contact_id from messaging_user_ref") == (
        "111899832631525",
        "1234",
        None,
    )
    assert db.execute("select count(*) from conversation_thread").fetchone()[0] == 0


def _delivery_timestamp_zero(db: psycopg.Connection) -> None:
    # "timestamp": 0 → the entry's time.
    times = {r[0] for r in db.execute("select occurred_at from message_delivery_event")}
    assert times == {_ms(1472028396029)}


def _delivery_without_timestamp(db: psycopg.Connection) -> None:
    times = {r[0] for r in db.execute("select occurred_at from message_delivery_event")}
    assert times == {_ms(1480279487271)}


def _user_ref_postback(db: psycopg.Connection) -> None:
    assert _observed(db, "postback")[:3] == ("PAGE-ID", None, "USER-REF-ID")
    assert _one(db, "select user_ref from messaging_user_ref") == ("USER-REF-ID",)
    props = _one(db, "select props from user_event where etype = 'ad_referral'")[0]
    assert (props["ref"], props["user_ref"]) == ("USER-DEFINED-REFERRAL-PARAM", "USER-REF-ID")


def _smb_echo(db: psycopg.Connection) -> None:
    # A message the business sent from the WhatsApp Business app: outbound on the contact's
    # thread, recorded as sent from the business app.
    assert _one(
        db,
        "select t.contact_id, m.direction, m.is_echo, m.sent_via, m.text "
        "from conversation_message m join conversation_thread t using (thread_id)",
    ) == ("<WHATSAPP_USER_PHONE_NUMBER>", "outbound", True, "business_app", "Test message")
    assert db.execute("select count(*) from messaging_policy_window").fetchone()[0] == 0


def _revoke(db: psycopg.Connection) -> None:
    # The original is marked deleted (when it arrives); the revoke is never a message.
    assert db.execute("select count(*) from conversation_message").fetchone()[0] == 0
    assert _one(
        db, "select event_type, platform_message_id, message_id from message_delivery_event"
    ) == ("deleted", "<ORIGINAL_WHATSAPP_MESSAGE_ID>", None)


def _edit_never_received(db: psycopg.Connection) -> None:
    # Instagram edits messages this app never received: an edit event, not a failure.
    business, contact, _, mid, at, _ = _observed(db, "message_edit")
    assert (business, contact) == ("17841434534061820", "2182294425935229")
    assert mid.startswith("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDM0NTM0MDYxODIw")
    assert at == _ms(1780396616736)


def _whatsapp_edit(db: psycopg.Connection) -> None:
    assert db.execute("select count(*) from conversation_message").fetchone()[0] == 0
    external = _observed(db, "message_edit")[3]
    assert external == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="


def _dashboard_test(db: psycopg.Connection) -> None:
    # The App Dashboard's "Test" button (`changes`, seconds string): a real message.
    assert _one(
        db,
        "select t.business_account_id, t.contact_id, m.text, m.sent_at "
        "from conversation_message m join conversation_thread t using (thread_id)",
    ) == ("0", "12334", "random_text", datetime.fromtimestamp(1527459824, UTC))


def _seen_without_sender(db: psycopg.Connection) -> None:
    event_type, contact, at = _one(
        db, "select event_type, contact_id, occurred_at from message_delivery_event"
    )
    assert (event_type, contact, at) == ("read", None, _ms(1784200184302))


def _call(db: psycopg.Connection) -> None:
    business, contact, _, external, at, _ = _observed(db, "calls")
    assert (business, contact, external) == ("743897493242", "972987654321", "wacid.xxxx=")
    assert at == datetime.fromtimestamp(1752583107, UTC)


def _template_status(db: psycopg.Connection) -> None:
    business, _, _, external, at, _ = _observed(db, "message_template_status_update")
    assert (business, external) == ("102290129340398", "1689556908129832")
    assert at == datetime.fromtimestamp(1751247548, UTC)


def _preferences(db: psycopg.Connection) -> None:
    assert _observed(db, "user_preferences")[:2] == ("106540352242922", "16505551234")


def _system(db: psycopg.Connection) -> None:
    # A system notice is a typed message row, and not the user writing (no window).
    assert _one(db, "select message_type, direction from conversation_message") == (
        "system",
        "inbound",
    )


def _group_status(db: psycopg.Connection) -> None:
    raw = _one(db, "select raw from message_delivery_event")[0]
    assert raw["recipient_type"] == "group"


def _played(db: psycopg.Connection) -> None:
    assert _one(db, "select event_type from message_delivery_event") == ("played",)


def _app_roles(db: psycopg.Connection) -> None:
    assert _observed(db, "app_roles")[:2] == ("1691462197845448", None)


def _policy(db: psycopg.Connection) -> None:
    assert _observed(db, "policy_enforcement")[:2] == ("1691462197845448", None)


def _ctwa(db: psycopg.Connection) -> None:
    props = _one(db, "select props from user_event where etype = 'ad_referral'")[0]
    assert props["meta_ad_id"] == "120226305854810726" and props["is_ad"] is True
    assert _one(db, "select referral_ad_id, contact_name from conversation_thread") == (
        "120226305854810726",
        "Sheena Nelson",
    )


SPECIAL = {
    "botman/optin_user_ref_no_sender.json": _optin_without_sender,
    "botman/delivery_no_timestamp.json": _delivery_without_timestamp,
    "fbmq/delivery_timestamp_zero.json": _delivery_timestamp_zero,
    "fbmq/app_roles_no_sender.json": _app_roles,
    "fbmq/policy_enforcement_no_sender.json": _policy,
    "meta_docs/messenger_postback_user_ref_with_referral.json": _user_ref_postback,
    "meta_docs/whatsapp_ctwa_referral_text.json": _ctwa,
    "pywa/outgoing_message__text.json": _smb_echo,
    "pywa/deleted_message__revoke.json": _revoke,
    "pywa/edited_message__image.json": _whatsapp_edit,
    "ig_capture/message_edit_num_edit_0.json": _edit_never_received,
    "ig_capture/dashboard_test_messages_in_changes.json": _dashboard_test,
    "ig_capture/messaging_seen_no_sender.json": _seen_without_sender,
    "pywa/call_connect__user_initiated.json": _call,
    "pywa/template_status_update__approved.json": _template_status,
    "pywa/user_marketing_preferences__signup.json": _preferences,
    "pywa/system__identity_change.json": _system,
    "pywa/system__phone_number_change.json": _system,
    "pywa/message_status__group.json": _group_status,
    "pywa/message_status__played.json": _played,
}


@pytest.mark.parametrize("path", _files(), ids=_id)
def test_each_body_alone_is_applied_with_what_it_carries(
    poster: Poster, db: psycopg.Connection, path: Path
) -> None:
    raw = path.read_bytes()
    assert poster.post(raw).status_code == 200
    status, error = db.execute("select status, error from meta_webhook_event").fetchone()
    if _id(path) in DOCUMENTED_FAILURES:
        assert status == "failed", DOCUMENTED_FAILURES[_id(path)]
        return
    assert (status, error) == ("applied", None)
    check(db, json.loads(raw), oracle(json.loads(raw)))
    if _id(path) in SPECIAL:
        SPECIAL[_id(path)](db)


def test_corpus_has_no_unexplained_files() -> None:
    files = corpus_files()
    on_disk = {p for p in CORPUS.rglob("*.json") if p.name != "manifest.json"}
    assert set(files) == on_disk and len(files) == 60
    assert set(SPECIAL) <= {_id(p) for p in files}


_SNAPSHOT = {
    "conversation_thread": "platform, business_account_id, contact_id, contact_name, referral, "
    "user_id, first_message_at, last_message_at, last_inbound_at, last_outbound_at",
    "conversation_message": "platform, platform_message_id, direction, message_type, text, "
    "payload, is_echo, is_deleted, edited_at, status, status_rank, error_code, delivered_at, "
    "read_at, failed_at, sent_at, sent_via",
    "message_delivery_event": "dedup_key, platform_message_id, occurred_at, watermark, error_code, "
    "pricing, message_id is not null",
    "messaging_policy_window": "window_type, opened_at, last_user_activity_at, expires_at, opened_by",
    "messaging_observed_event": "dedup_key, kind, occurred_at, payload",
    "messaging_user_ref": "business_account_id, user_ref, contact_id, first_seen_at, last_seen_at",
    "user_event": "etype, source, props - 'thread_id' - 'conversation_message_id', occurred_at",
}


def _snapshot(db: psycopg.Connection) -> dict[str, list[str]]:
    return {
        table: sorted(repr(r) for r in db.execute(f"select {cols} from {table}").fetchall())
        for table, cols in _SNAPSHOT.items()
    }


def test_all_together_then_all_again_concurrently(
    poster: Poster, db: psycopg.Connection, database_url: str
) -> None:
    files = corpus_files()
    raws = [p.read_bytes() for p in files]

    async def one_batch() -> list[rawlog.Outcome]:
        async with await psycopg.AsyncConnection.connect(
            database_url, options=APPLY_SESSION_OPTIONS
        ) as conn:
            return await rawlog.store_and_apply(conn, [RawEvent.from_request(r, {}) for r in raws])

    outcomes = asyncio.run(one_batch())
    assert [o.status for o in outcomes] == ["applied"] * len(raws)
    expected: set[tuple[str, str]] = set()
    inbound_unnamed = 0
    for raw in raws:
        for platform, pmid, _ in oracle(json.loads(raw)).messages:
            if pmid is None:
                inbound_unnamed += 1
            else:
                expected.add((platform, pmid))
    stored = db.execute("select platform, platform_message_id from conversation_message").fetchall()
    assert len(stored) == len(set(stored)) == len(expected) + inbound_unnamed
    assert expected <= set(stored)
    before = _snapshot(db)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: poster.post(r).status_code, raws))
    assert answers == [200] * len(raws)
    assert db.execute(
        "select count(*), count(*) filter (where status = 'applied') from meta_webhook_event"
    ).fetchone() == (2 * len(raws), 2 * len(raws))
    assert _snapshot(db) == before


def test_revoke_and_edit_apply_to_a_stored_message_in_either_order(
    poster: Poster, db: psycopg.Connection
) -> None:
    """WhatsApp revoke / edit and Instagram unsend mark the original, before or after it."""
    text = (CORPUS / "pywa/message__text.json").read_bytes()
    original = json.loads(text)["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    revoke = (
        (CORPUS / "pywa/deleted_message__revoke.json")
        .read_bytes()
        .replace(b"<ORIGINAL_WHATSAPP_MESSAGE_ID>", original.encode())
    )
    assert poster.post(revoke).status_code == 200  # before its message
    assert poster.post(text).status_code == 200
    assert _one(db, "select is_deleted, text from conversation_message") == (True, "Body Text")
    edit = json.loads((CORPUS / "pywa/edited_message__image.json").read_bytes())
    edit_value = edit["entry"][0]["changes"][0]["value"]["messages"][0]
    edit_value["edit"]["original_message_id"] = original
    edit_value["timestamp"] = str(int(datetime.now(UTC).timestamp()))
    assert poster.post(json.dumps(edit).encode()).status_code == 200  # after its message
    assert _one(db, "select text, edited_at is not null from conversation_message") == (
        "Updated image caption",
        True,
    )
    assert db.execute("select count(*) from conversation_message").fetchone()[0] == 1
    assert (
        db.execute("select count(*) from user_event where etype = 'whatsapp_received'").fetchone()[
            0
        ]
        == 1
    )
    assert _one(
        db, "select max(expires_at) - max(last_user_activity_at) from messaging_policy_window"
    ) == (timedelta(hours=24),)
