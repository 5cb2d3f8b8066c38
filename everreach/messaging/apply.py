"""Set-based apply: a batch of parsed webhook bodies → one statement per table.

:class:`BatchPlan` turns the events of many bodies (a group-committed batch, a replay chunk,
one send) into one JSON document with a section of rows per table, and
:func:`apply_bodies` hands it (with the raw rows' bodies, when it inserts them, as a
binary ``bytea[]``) to the database function ``messaging_apply(batch, bodies)``
(migration 0005, redefined by 0007), which writes each section with one
``INSERT … SELECT FROM jsonb_to_recordset(…)`` or ``UPDATE … FROM …``: one call per
batch, one round trip in pipeline mode. The statement-level triggers on ``conversation_message`` log ``user_event``
rows, keep thread timestamps and open windows for every inserted row at once.

Idempotent and independent of arrival order, because Meta delivers at least once, batched
and unordered:

* messages are unique per ``(platform, platform_message_id)``: a duplicate inserts nothing
  and the triggers, which see inserted rows only, log nothing;
* receipts are unique per ``dedup_key``; one that arrives before its message is kept with
  ``message_id`` null and attached when the message arrives; a message's status is derived
  from its receipts (rank only moves forward, ``failed`` sticks, the earliest time wins);
* a thread keeps its earliest referral and the profile name of Meta's newest event; the
  newest edit of a message wins;
* windows merge Meta's timestamps in any order (see ``touch_messaging_windows``).

Two transactions touching the same conversation or message id serialize on advisory locks
that the batch takes up front, in one statement and a fixed order: a receipt is never
written unmatched by one transaction while another inserts its message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncCursor

from everreach.messaging.model import (
    STATUS_RANK,
    AccountEvent,
    Edit,
    Event,
    Message,
    Optin,
    ParsedBody,
    Receipt,
    Referral,
    ThreadKey,
    UserRefSeen,
)

__all__ = ["BatchPlan", "apply_bodies"]


_APPLY = "select messaging_apply(%s::jsonb)"
#: The same with the raw rows' bodies as a bytea[] (binary) beside the document.
_APPLY_BODIES = "select messaging_apply(%s::jsonb, %b::bytea[])"


# ---------------------------------------------------------------------------- the plan
def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@dataclass
class BatchPlan:
    """The rows a batch writes, table by table (built from events, then executed)."""

    lock_keys: set[str] = field(default_factory=set)
    #: thread → (profile name, Meta's time of the event that carried it)
    threads: dict[ThreadKey, tuple[str, datetime] | None] = field(default_factory=dict)
    user_refs: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    referrals: dict[ThreadKey, Referral] = field(default_factory=dict)
    user_links: list[dict[str, Any]] = field(default_factory=list)
    ad_referrals: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    refused_sends: list[dict[str, Any]] = field(default_factory=list)
    touches: list[dict[str, Any]] = field(default_factory=list)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    derived_watermarks: list[dict[str, Any]] = field(default_factory=list)
    watermarks: list[dict[str, Any]] = field(default_factory=list)
    status_pmids: set[tuple[str, str]] = field(default_factory=set)
    new_pmids: list[dict[str, str]] = field(default_factory=list)
    new_outbound: list[dict[str, str]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    required_edits: set[tuple[str, str]] = field(default_factory=set)
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, bodies: Iterable[tuple[ParsedBody, int | None]]) -> BatchPlan:
        """The plan of ``bodies`` (each with the id of its raw row), in their order."""
        plan = cls()
        for parsed, event_id in bodies:
            for event in parsed.events:
                plan.add(event, event_id)
        return plan

    def add(self, event: Event, event_id: int | None) -> None:
        """Add one event's rows."""
        self.lock_keys.update(event.lock_keys())
        if isinstance(event, Message):
            self._message(event, event_id)
        elif isinstance(event, Receipt):
            self._receipt(event, event_id)
        elif isinstance(event, Referral):
            self._referral(event)
        elif isinstance(event, UserRefSeen):
            self._user_ref(event)
        elif isinstance(event, AccountEvent):
            self._observed(event, event_id)

    # -- builders
    def _thread(self, key: ThreadKey, name: str | None = None, at: datetime | None = None) -> None:
        known = self.threads.get(key)
        if name is not None and at is not None:
            if known is None or (at, name) > (known[1], known[0]):
                self.threads[key] = (name, at)
        elif key not in self.threads:
            self.threads[key] = None

    def _message(self, m: Message, event_id: int | None) -> None:
        self._thread(m.thread, m.contact_name, m.at)
        pmid = m.platform_message_id
        row = {
            "id": m.message_id,
            "p": m.platform,
            "b": m.business_id,
            "c": m.contact_id,
            "pmid": pmid,
            "dir": m.direction,
            "type": m.message_type,
            "text": m.text,
            "payload": m.payload,
            "reply_to": m.reply_to,
            "echo": m.is_echo,
            "status": m.status,
            "rank": STATUS_RANK.get(m.status, 0),
            "code": m.error_code,
            "msg": m.error_message,
            "mtype": m.messaging_type,
            "tag": m.message_tag,
            "win": m.window_used,
            "at": m.at,
            "ev": event_id,
            "via": m.sent_via,
            "by": m.sent_by,
            "role": m.sent_by_role,
        }
        if pmid is None:
            row["o"] = len(self.messages) + len(self.refused_sends)
            self.refused_sends.append(row)
            return
        key = (m.platform, pmid)
        if key in self.messages:
            return  # the first delivery of a mid wins, as applying one at a time would
        row["o"] = len(self.messages) + len(self.refused_sends)
        self.messages[key] = row
        ref = {"p": m.platform, "pmid": pmid}
        self.new_pmids.append(ref)
        if m.direction == "outbound":
            self.new_outbound.append(ref)

    def _receipt(self, r: Receipt, event_id: int | None) -> None:
        if r.platform_message_id is not None:
            self.status_pmids.add((r.platform, r.platform_message_id))
            if r.implies_watermark:
                self.derived_watermarks.append(
                    {
                        "p": r.platform,
                        "type": r.event_type,
                        "pmid": r.platform_message_id,
                        "at": r.at,
                        "raw": r.raw,
                        "ev": event_id,
                        "o": len(self.derived_watermarks),
                    }
                )
        elif r.contact_id is not None and r.watermark is not None:
            self.watermarks.append(
                {
                    "p": r.platform,
                    "b": r.business_id,
                    "c": r.contact_id,
                    "type": r.event_type,
                    "wm": r.watermark,
                    "at": r.at,
                }
            )
        key = r.dedup_key
        if key in self.receipts:
            return
        self.receipts[key] = {
            "p": r.platform,
            "type": r.event_type,
            "pmid": r.platform_message_id,
            "b": r.business_id,
            "c": r.contact_id,
            "wm": r.watermark,
            "at": r.at,
            "code": r.error_code,
            "title": r.error_title,
            "msg": r.error_message,
            "conv": r.conversation_id,
            "origin": r.conversation_origin,
            "pricing": r.pricing,
            "raw": r.raw,
            "ev": event_id,
            "dedup": key,
            "o": len(self.receipts),
        }

    def _referral(self, r: Referral) -> None:
        thread = r.thread
        if thread is not None:
            self._thread(thread)
            known = self.referrals.get(thread)
            if known is None or r.at < known.at:
                self.referrals[thread] = r
            user_id = _uuid_or_none(r.ref)
            if user_id is not None:
                self.user_links.append(
                    {
                        "p": r.platform,
                        "b": r.business_id,
                        "c": r.contact_id,
                        "user_id": user_id,
                        "o": len(self.user_links),
                    }
                )
            if r.touches_window:
                self.touches.append(
                    {
                        "p": r.platform,
                        "b": r.business_id,
                        "c": r.contact_id,
                        "at": r.at,
                        "reason": "referral",
                    }
                )
        key = r.key
        if key not in self.ad_referrals:
            props = {
                "referral_key": key,
                "platform": r.platform,
                "meta_ad_id": r.ad_id,
                "ctwa_clid": r.ctwa_clid,
                "source_url": r.source_url,
                "referral_source": r.source,
                "ref": r.ref,
                "user_ref": r.user_ref,
                "business_account_id": r.business_id if r.contact_id is None else None,
                "is_ad": r.is_ad,
            }
            self.ad_referrals[key] = {
                "p": r.platform,
                "b": r.business_id,
                "c": r.contact_id,
                "key": key,
                "props": {k: v for k, v in props.items() if v is not None},
                "at": r.at,
                "o": len(self.ad_referrals),
            }

    def _user_ref(self, u: UserRefSeen) -> None:
        key = (u.platform, u.business_id, u.user_ref)
        known = self.user_refs.get(key)
        if known is None:
            self.user_refs[key] = {
                "p": u.platform,
                "b": u.business_id,
                "ref": u.user_ref,
                "c": u.contact_id,
                "first_at": u.at,
                "last_at": u.at,
                "tied_at": u.at if u.contact_id else None,
            }
            return
        known["first_at"] = min(known["first_at"], u.at)
        known["last_at"] = max(known["last_at"], u.at)
        if known["c"] is None and u.contact_id is not None:
            known["c"], known["tied_at"] = u.contact_id, u.at

    def _observed(self, e: AccountEvent, event_id: int | None) -> None:
        if isinstance(e, Optin) and e.contact_id is not None:
            self._thread(ThreadKey(e.platform, e.business_id, e.contact_id))
            self.touches.append(
                {
                    "p": e.platform,
                    "b": e.business_id,
                    "c": e.contact_id,
                    "at": e.at,
                    "reason": "optin",
                }
            )
        if isinstance(e, Edit) and e.external_id is not None:
            self.edits.append(
                {
                    "p": e.platform,
                    "pmid": e.external_id,
                    "text": e.text,
                    "at": e.at,
                    "o": len(self.edits),
                }
            )
            if e.must_exist:
                self.required_edits.add((e.platform, e.external_id))
        if e.dedup_key in self.observed:
            return
        self.observed[e.dedup_key] = {
            "p": e.platform,
            "kind": e.kind,
            "b": e.business_id,
            "c": e.contact_id,
            "ref": e.user_ref,
            "ext": e.external_id,
            "at": e.at,
            "payload": e.payload,
            "ev": event_id,
            "dedup": e.dedup_key,
            "o": len(self.observed),
        }

    # -- the document
    def document(
        self,
        raw: list[dict[str, Any]] | None = None,
        *,
        outcomes: list[dict[str, Any]] | None = None,
        lock: bool = True,
    ) -> str:
        """The batch as ``messaging_apply``'s JSON document (``raw``: rows to insert first,
        which the events then name by position; ``outcomes``: statuses of stored rows)."""
        doc: dict[str, Any] = {}
        if raw is not None:
            doc["raw"] = raw
        if outcomes:
            doc["outcomes"] = outcomes
        if lock and self.lock_keys:
            doc["locks"] = sorted(self.lock_keys)
        if self.threads:
            rows = [
                {
                    "p": k.platform,
                    "b": k.business_id,
                    "c": k.contact_id,
                    "name": named[0] if named else None,
                    "at": named[1] if named else None,
                }
                for k, named in self.threads.items()
            ]
            doc["threads"] = rows
            renames = [r for r in rows if r["name"] is not None]
            if renames:
                doc["renames"] = renames
        if self.user_refs:
            doc["user_refs"] = list(self.user_refs.values())
        if self.referrals:
            rows = []
            for thread, r in self.referrals.items():
                stored = dict(r.raw)
                stored["occurred_at"] = r.at.isoformat()
                rows.append(
                    {
                        "p": thread.platform,
                        "b": thread.business_id,
                        "c": thread.contact_id,
                        "source": r.source,
                        "ad_id": r.ad_id,
                        "ref": r.ref,
                        "clid": r.ctwa_clid,
                        "raw": stored,
                        "at": r.at,
                    }
                )
            doc["referrals"] = rows
        if self.user_links:
            doc["user_links"] = self.user_links
        if self.ad_referrals:
            doc["ad_referrals"] = list(self.ad_referrals.values())
        if self.messages or self.refused_sends:
            doc["messages"] = [*self.messages.values(), *self.refused_sends]
        if self.touches:
            doc["touches"] = self.touches
        if self.receipts:
            doc["receipts"] = list(self.receipts.values())
        if self.derived_watermarks:
            doc["derived"] = self.derived_watermarks
        if self.new_pmids:
            doc["new_pmids"] = self.new_pmids
        if self.status_pmids:
            doc["named"] = [{"p": p, "pmid": m} for p, m in self.status_pmids]
        if self.watermarks:
            doc["watermarks"] = self.watermarks
        if self.new_outbound:
            doc["new_outbound"] = self.new_outbound
        if self.edits:
            doc["edits"] = self.edits
        if self.required_edits:
            doc["required_edits"] = [{"p": p, "pmid": m} for p, m in self.required_edits]
        if self.observed:
            doc["observed"] = list(self.observed.values())
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode()


async def apply_bodies(
    cur: AsyncCursor,
    bodies: Iterable[tuple[ParsedBody, int | None]],
    *,
    raw: list[dict[str, Any]] | None = None,
    raw_bodies: list[bytes] | None = None,
    outcomes: list[dict[str, Any]] | None = None,
) -> list[int]:
    """Apply parsed bodies set-based, in one statement; each comes with the id of its raw
    row — or, with ``raw`` (rows to insert first, their bytes in ``raw_bodies`` in the
    same order), its position in ``raw``. ``outcomes`` are recorded in the same
    statement. Returns the ids of the rows ``raw`` inserted.

    On a connection in autocommit mode the statement is its own transaction: the whole
    batch is committed in one round trip.
    """
    if raw and (raw_bodies is None or len(raw_bodies) != len(raw)):
        raise ValueError("raw rows need their bodies: one raw_bodies entry per raw row")
    plan = BatchPlan.build(bodies)
    document = plan.document(raw, outcomes=outcomes)
    if raw_bodies is None:
        cur = await cur.execute(_APPLY, (document,))
    else:
        cur = await cur.execute(_APPLY_BODIES, (document, raw_bodies))
    row = await cur.fetchone()
    return list(row[0] or []) if row is not None else []
