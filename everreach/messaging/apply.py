"""Set-based apply: a batch of parsed webhook bodies → one statement per table.

:func:`apply_bodies` turns the events of many bodies (a group-committed batch, a replay chunk,
one send) into column arrays and writes each table with one ``INSERT … SELECT FROM unnest(…)``
or ``UPDATE … FROM unnest(…)``; no statement waits for another's result, so in psycopg's
pipeline mode a whole batch is one round trip. The statement-level triggers on
``conversation_message`` log ``user_event`` rows, keep thread timestamps and open windows
for every inserted row at once.

Idempotent and (almost) order-independent, because Meta delivers at least once, batched and
unordered:

* messages are unique per ``(platform, platform_message_id)``: a duplicate inserts nothing
  and the triggers, which see inserted rows only, log nothing;
* receipts are unique per ``dedup_key``; one that arrives before its message is kept with
  ``message_id`` null and attached when the message arrives; a message's status is derived
  from its receipts (rank only moves forward, ``failed`` sticks, the earliest time wins);
* a thread keeps its earliest referral; an edit is applied when it is the newest one;
* windows merge Meta's timestamps in any order (see ``touch_messaging_windows``).

Two transactions touching the same conversation or message id serialize on advisory locks
that the batch takes up front, in one statement and a fixed order (:func:`prelock`): a
receipt is never written unmatched by one transaction while another inserts its message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
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

__all__ = ["BatchPlan", "apply_bodies", "prelock"]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_PRELOCK = (
    "select count(pg_advisory_xact_lock(h)) from (select distinct "
    "hashtextextended(k, 0) as h from unnest(%s::text[]) as k order by 1) as s"
)


async def prelock(cur: AsyncCursor, keys: Iterable[str]) -> None:
    """Take a batch's advisory locks in one statement, in a fixed (hash) order: two batches
    with overlapping keys queue instead of deadlocking."""
    ordered = sorted(set(keys))
    if ordered:
        await cur.execute(_PRELOCK, (ordered,))


# ---------------------------------------------------------------------------- statements
_INSERT_THREADS = """
insert into conversation_thread (platform, business_account_id, contact_id, contact_name,
    contact_name_at)
select k.platform, k.business, k.contact, k.name, k.name_at
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
    as k(platform, business, contact, name, name_at)
on conflict (platform, business_account_id, contact_id) do nothing
"""

# The profile name Meta sent with the newest event wins (ties: the greater name).
_RENAME_THREADS = """
update conversation_thread as t set contact_name = k.name, contact_name_at = k.name_at,
    updated_at = now()
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
    as k(platform, business, contact, name, name_at)
where t.platform = k.platform and t.business_account_id = k.business
  and t.contact_id = k.contact
  and (t.contact_name_at is null or t.contact_name_at < k.name_at
       or (t.contact_name_at = k.name_at and t.contact_name < k.name))
"""

_UPSERT_USER_REFS = """
insert into messaging_user_ref as u (platform, business_account_id, user_ref, contact_id,
    first_seen_at, last_seen_at, tied_at)
select x.platform, x.business, x.ref, x.contact, x.first_at, x.last_at,
       case when x.contact is not null then x.tied_at end
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
            %s::timestamptz[], %s::timestamptz[])
    as x(platform, business, ref, contact, first_at, last_at, tied_at)
on conflict (platform, business_account_id, user_ref) do update set
    first_seen_at = least(u.first_seen_at, excluded.first_seen_at),
    last_seen_at = greatest(u.last_seen_at, excluded.last_seen_at),
    contact_id = coalesce(u.contact_id, excluded.contact_id),
    tied_at = coalesce(u.tied_at, excluded.tied_at),
    updated_at = now()
"""

# The thread keeps its earliest referral (ties: the first one applied).
_THREAD_REFERRALS = """
update conversation_thread as t set
    referral_source = r.source, referral_ad_id = r.ad_id, referral_ref = r.ref,
    ctwa_clid = r.clid, referral = r.raw::jsonb, updated_at = now()
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::timestamptz[])
    as r(platform, business, contact, source, ad_id, ref, clid, raw, at)
where t.platform = r.platform and t.business_account_id = r.business
  and t.contact_id = r.contact
  and (t.referral is null or (t.referral ->> 'occurred_at')::timestamptz > r.at)
"""

# The EverReach app puts its user id in the m.me / ig.me `ref`: link the thread (when the
# user exists) so the triggers attribute the conversation's messages to that user.
_LINK_USERS = """
update conversation_thread as t set user_id = c.user_id, updated_at = now()
from (
    select distinct on (x.platform, x.business, x.contact)
           x.platform, x.business, x.contact, x.user_id
    from unnest(%s::text[], %s::text[], %s::text[], %s::uuid[]) with ordinality
        as x(platform, business, contact, user_id, ord)
    join auth.users as u on u.id = x.user_id
    order by x.platform, x.business, x.contact, x.ord
) as c
where t.platform = c.platform and t.business_account_id = c.business
  and t.contact_id = c.contact and t.user_id is null
"""

# user_event has no unique key of ours: the thread's (or identity's) advisory lock and
# "not exists" keep replays from logging the same referral twice.
_AD_REFERRAL_EVENTS = """
insert into user_event (user_id, etype, source, props, occurred_at)
select t.user_id, 'ad_referral', x.platform,
       x.props::jsonb || case when t.thread_id is null then '{}'::jsonb
                              else jsonb_build_object('thread_id', t.thread_id) end,
       x.at
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
    with ordinality as x(platform, business, contact, key, props, at, ord)
left join conversation_thread as t on t.platform = x.platform
    and t.business_account_id = x.business and t.contact_id = x.contact
where not exists (
    select 1 from user_event as e
    where e.etype = 'ad_referral' and e.occurred_at = x.at
      and e.props ->> 'referral_key' = x.key)
order by x.ord
"""

_INSERT_MESSAGES = """
insert into conversation_message (message_id, thread_id, platform, platform_message_id,
    direction, message_type, text, payload, reply_to_platform_message_id, is_echo, status,
    status_rank, error_code, error_message, messaging_type, message_tag, window_used,
    sent_at, failed_at, webhook_event_id, sent_via, sent_by, sent_by_role)
select coalesce(m.message_id, gen_random_uuid()), t.thread_id, m.platform, m.pmid,
       m.direction, m.type, m.text, m.payload::jsonb, m.reply_to, m.is_echo, m.status,
       m.rank, m.code, m.msg, m.messaging_type, m.tag, m.window_used, m.sent_at,
       case when m.status = 'failed' then m.sent_at end, m.event_id, m.sent_via, m.sent_by,
       m.sent_by_role
from unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[], %s::text[],
            %s::smallint[], %s::integer[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::timestamptz[], %s::bigint[], %s::text[], %s::text[], %s::text[])
    with ordinality as m(message_id, platform, business, contact, pmid, direction, type, text,
        payload, reply_to, is_echo, status, rank, code, msg, messaging_type, tag, window_used,
        sent_at, event_id, sent_via, sent_by, sent_by_role, ord)
join conversation_thread as t on t.platform = m.platform
    and t.business_account_id = m.business and t.contact_id = m.contact
order by m.ord
on conflict (platform, platform_message_id) do nothing
"""

# A user action that is not a message (a referral, a PSID's opt-in) opens the windows too.
_TOUCH_WINDOWS = """
select touch_messaging_windows(array_agg(t.thread_id), array_agg(x.at), array_agg(x.reason))
from unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[])
    as x(platform, business, contact, at, reason)
join conversation_thread as t on t.platform = x.platform
    and t.business_account_id = x.business and t.contact_id = x.contact
having count(*) > 0
"""

_INSERT_RECEIPTS = """
insert into message_delivery_event (platform, event_type, platform_message_id,
    message_id, thread_id, business_account_id, contact_id, watermark, occurred_at,
    error_code, error_title, error_message, conversation_id, conversation_origin,
    pricing, raw, webhook_event_id, dedup_key)
select r.platform, r.type, r.pmid, m.message_id, m.thread_id, r.business, r.contact, r.wm,
       r.at, r.code, r.title, r.msg, r.conv, r.origin, r.pricing::jsonb, r.raw::jsonb,
       r.event_id, r.dedup
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
            %s::timestamptz[], %s::integer[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::text[], %s::bigint[], %s::text[])
    with ordinality as r(platform, type, pmid, business, contact, wm, at, code, title, msg,
        conv, origin, pricing, raw, event_id, dedup, ord)
left join conversation_message as m on m.platform = r.platform and m.platform_message_id = r.pmid
order by r.ord
on conflict (dedup_key) do nothing
"""

# Instagram's read names the last message read: everything the business sent before it is
# read too — stored as a watermark receipt of that conversation.
_INSERT_DERIVED_WATERMARKS = """
insert into message_delivery_event (platform, event_type, business_account_id, contact_id,
    watermark, occurred_at, raw, webhook_event_id, dedup_key)
select r.platform, r.type, t.business_account_id, t.contact_id, m.sent_at, r.at,
       r.raw::jsonb, r.event_id,
       r.platform || ':' || r.type || ':wm:' || t.business_account_id || ':' || t.contact_id
           || ':' || floor(extract(epoch from m.sent_at) * 1000)::bigint
from unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::bigint[])
    with ordinality as r(platform, type, pmid, at, raw, event_id, ord)
join conversation_message as m on m.platform = r.platform and m.platform_message_id = r.pmid
join conversation_thread as t on t.thread_id = m.thread_id
order by r.ord
on conflict (dedup_key) do nothing
"""

# Receipts stored before their message arrived are attached to it now.
_ATTACH_RECEIPTS = """
update message_delivery_event as d set message_id = m.message_id, thread_id = m.thread_id
from unnest(%s::text[], %s::text[]) as x(platform, pmid)
join conversation_message as m on m.platform = x.platform and m.platform_message_id = x.pmid
where d.message_id is null and d.platform = x.platform and d.platform_message_id = x.pmid
"""

_RANK_SQL = (
    "case {0} when 'sent' then 1 when 'delivered' then 2 when 'read' then 3 "
    "when 'played' then 4 when 'failed' then 99 else 0 end"
)

_IMPROVES = (
    "({rank} > m.status_rank"
    " or ({type} in ('delivered', 'read', 'played') and {at} < coalesce(m.delivered_at, 'infinity'))"
    " or ({type} in ('read', 'played') and {at} < coalesce(m.read_at, 'infinity')))"
)

# Every touched message's status from its receipts: the ones naming it, this batch's
# watermarks of its conversation that cover it, and — for an outbound message this
# transaction inserted (created_at = now()) — every stored watermark that covers it. Rank
# only moves forward, failed sticks, the earliest time of each stage wins: the same end
# state whatever order receipts and messages arrive in.
_APPLY_STATUSES = f"""
with named as (
    select distinct x.platform, x.pmid
    from unnest(%s::text[], %s::text[]) as x(platform, pmid)
),
by_id as (
    select m.message_id, d.event_type, d.occurred_at, d.error_code,
           coalesce(d.error_message, d.error_title) as error_message
    from named as x
    join conversation_message as m on m.platform = x.platform and m.platform_message_id = x.pmid
    join message_delivery_event as d
        on d.platform = x.platform and d.platform_message_id = x.pmid
),
batch_watermarks as (
    select w.platform, w.business, w.contact, w.event_type, w.wm, w.at
    from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
                %s::timestamptz[]) as w(platform, business, contact, event_type, wm, at)
    union all
    select r.platform, t.business_account_id, t.contact_id, r.event_type, m.sent_at, r.at
    from unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[])
        as r(platform, event_type, pmid, at)
    join conversation_message as m on m.platform = r.platform and m.platform_message_id = r.pmid
    join conversation_thread as t on t.thread_id = m.thread_id
),
by_batch_watermark as (
    select m.message_id, w.event_type, w.at as occurred_at, null::integer as error_code,
           null::text as error_message
    from batch_watermarks as w
    join conversation_thread as t on t.platform = w.platform
        and t.business_account_id = w.business and t.contact_id = w.contact
    join conversation_message as m on m.thread_id = t.thread_id
        and m.direction = 'outbound' and m.sent_at <= w.wm
    where {_IMPROVES.format(rank=_RANK_SQL.format("w.event_type"), type="w.event_type", at="w.at")}
),
by_stored_watermark as (
    select m.message_id, d.event_type, d.occurred_at, null::integer as error_code,
           null::text as error_message
    from unnest(%s::text[], %s::text[]) as x(platform, pmid)
    join conversation_message as m on m.platform = x.platform and m.platform_message_id = x.pmid
        and m.direction = 'outbound' and m.created_at = now()
    join conversation_thread as t on t.thread_id = m.thread_id
    join message_delivery_event as d on d.platform = t.platform
        and d.business_account_id = t.business_account_id and d.contact_id = t.contact_id
        and d.watermark >= m.sent_at
),
agg as (
    select r.message_id,
           max({_RANK_SQL.format("r.event_type")}) as rank,
           min(r.occurred_at) filter (where r.event_type in ('delivered', 'read', 'played'))
               as delivered_at,
           min(r.occurred_at) filter (where r.event_type in ('read', 'played')) as read_at,
           min(r.occurred_at) filter (where r.event_type = 'failed') as failed_at,
           (array_agg(r.error_code order by r.occurred_at)
               filter (where r.event_type = 'failed' and r.error_code is not null))[1]
               as error_code,
           (array_agg(r.error_message order by r.occurred_at)
               filter (where r.event_type = 'failed' and r.error_message is not null))[1]
               as error_message,
           bool_or(r.event_type = 'deleted') as deleted
    from (
        select * from by_id
        union all select * from by_batch_watermark
        union all select * from by_stored_watermark
    ) as r
    group by r.message_id
)
update conversation_message as m set
    status = case when a.rank > m.status_rank then
        case a.rank when 1 then 'sent' when 2 then 'delivered' when 3 then 'read'
                    when 4 then 'played' else 'failed' end
        else m.status end,
    status_rank = greatest(m.status_rank, a.rank),
    delivered_at = least(m.delivered_at, a.delivered_at),
    read_at = least(m.read_at, a.read_at),
    failed_at = least(m.failed_at, a.failed_at),
    error_code = case when a.failed_at is not null then coalesce(m.error_code, a.error_code)
        else m.error_code end,
    error_message = case when a.failed_at is not null
        then coalesce(m.error_message, a.error_message) else m.error_message end,
    is_deleted = m.is_deleted or a.deleted,
    updated_at = now()
from agg as a
where m.message_id = a.message_id
  and (a.rank > m.status_rank
       or a.delivered_at < coalesce(m.delivered_at, 'infinity')
       or a.read_at < coalesce(m.read_at, 'infinity')
       or a.failed_at < coalesce(m.failed_at, 'infinity')
       or (a.failed_at is not null and m.error_code is null and a.error_code is not null)
       or (a.deleted and not m.is_deleted))
"""

# The newest edit of each message, from this batch or stored before the message arrived.
_APPLY_EDITS = """
with edits as (
    select distinct on (e.platform, e.pmid) e.platform, e.pmid, e.text, e.at
    from (
        select x.platform, x.pmid, x.text, x.at, x.ord
        from unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[]) with ordinality
            as x(platform, pmid, text, at, ord)
        union all
        select o.platform, o.external_id, o.payload ->> 'text', o.occurred_at, 0
        from unnest(%s::text[], %s::text[]) as n(platform, pmid)
        join messaging_observed_event as o on o.platform = n.platform
            and o.external_id = n.pmid and o.kind = 'message_edit'
    ) as e
    where e.text is not null
    order by e.platform, e.pmid, e.at desc, e.ord desc
)
update conversation_message as m set text = e.text, edited_at = e.at, updated_at = now()
from edits as e
where m.platform = e.platform and m.platform_message_id = e.pmid
  and (m.edited_at is null or m.edited_at <= e.at)
  and (m.edited_at is distinct from e.at or m.text is distinct from e.text)
"""

# A Messenger edit always follows its message: one whose message is not stored yet fails
# its body (kept with the reason; `webhooks replay --failed-only` applies it later).
_REQUIRE_EDITED = """
select messaging_fail('message_edit for a message not received yet (' || x.pmid || ')')
from unnest(%s::text[], %s::text[]) as x(platform, pmid)
where not exists (
    select 1 from conversation_message as m
    where m.platform = x.platform and m.platform_message_id = x.pmid)
limit 1
"""

_INSERT_OBSERVED = """
insert into messaging_observed_event (platform, kind, business_account_id, contact_id,
    user_ref, external_id, thread_id, occurred_at, payload, webhook_event_id, dedup_key)
select x.platform, x.kind, x.business, x.contact, x.user_ref, x.external_id, t.thread_id,
       x.at, x.payload::jsonb, x.event_id, x.dedup
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::timestamptz[], %s::text[], %s::bigint[], %s::text[])
    with ordinality as x(platform, kind, business, contact, user_ref, external_id, at,
        payload, event_id, dedup, ord)
left join conversation_thread as t on t.platform = x.platform
    and t.business_account_id = x.business and t.contact_id = x.contact
order by x.ord
on conflict (dedup_key) do nothing
"""


# ---------------------------------------------------------------------------- the plan
def _columns(rows: Sequence[tuple], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


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
    user_refs: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)
    referrals: dict[ThreadKey, Referral] = field(default_factory=dict)
    user_links: list[tuple] = field(default_factory=list)
    ad_referrals: dict[str, tuple] = field(default_factory=dict)
    messages: dict[tuple[str, str | None], tuple] = field(default_factory=dict)
    refused_sends: list[tuple] = field(default_factory=list)
    touches: list[tuple] = field(default_factory=list)
    receipts: dict[str, tuple] = field(default_factory=dict)
    derived_watermarks: list[tuple] = field(default_factory=list)
    watermarks: list[tuple] = field(default_factory=list)
    status_pmids: set[tuple[str, str]] = field(default_factory=set)
    new_pmids: list[tuple[str, str]] = field(default_factory=list)
    new_outbound: list[tuple[str, str]] = field(default_factory=list)
    edits: list[tuple] = field(default_factory=list)
    required_edits: set[tuple[str, str]] = field(default_factory=set)
    observed: dict[str, tuple] = field(default_factory=dict)

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
        row = (
            m.message_id,
            m.platform,
            m.business_id,
            m.contact_id,
            pmid,
            m.direction,
            m.message_type,
            m.text,
            _json(m.payload),
            m.reply_to,
            m.is_echo,
            m.status,
            STATUS_RANK.get(m.status, 0),
            m.error_code,
            m.error_message,
            m.messaging_type,
            m.message_tag,
            m.window_used,
            m.at,
            event_id,
            m.sent_via,
            m.sent_by,
            m.sent_by_role,
        )
        if pmid is None:
            self.refused_sends.append(row)
            return
        key = (m.platform, pmid)
        if key in self.messages:
            return  # the first delivery of a mid wins, as applying one at a time would
        self.messages[key] = row
        self.new_pmids.append(key)
        self.status_pmids.add(key)
        if m.direction == "outbound":
            self.new_outbound.append(key)

    def _receipt(self, r: Receipt, event_id: int | None) -> None:
        raw = _json(r.raw)
        if r.platform_message_id is not None:
            self.status_pmids.add((r.platform, r.platform_message_id))
            if r.implies_watermark:
                self.derived_watermarks.append(
                    (r.platform, r.event_type, r.platform_message_id, r.at, raw, event_id)
                )
        elif r.contact_id is not None and r.watermark is not None:
            self.watermarks.append(
                (r.platform, r.business_id, r.contact_id, r.event_type, r.watermark, r.at)
            )
        key = r.dedup_key
        if key in self.receipts:
            return
        self.receipts[key] = (
            r.platform,
            r.event_type,
            r.platform_message_id,
            r.business_id,
            r.contact_id,
            r.watermark,
            r.at,
            r.error_code,
            r.error_title,
            r.error_message,
            r.conversation_id,
            r.conversation_origin,
            _json(r.pricing) if r.pricing is not None else None,
            raw,
            event_id,
            key,
        )

    def _referral(self, r: Referral) -> None:
        thread = r.thread
        if thread is not None:
            self._thread(thread)
            known = self.referrals.get(thread)
            if known is None or r.at < known.at:
                self.referrals[thread] = r
            user_id = _uuid_or_none(r.ref)
            if user_id is not None:
                self.user_links.append((r.platform, r.business_id, r.contact_id, user_id))
            if r.touches_window:
                self.touches.append((r.platform, r.business_id, r.contact_id, r.at, "referral"))
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
            self.ad_referrals[key] = (
                r.platform,
                r.business_id,
                r.contact_id,
                key,
                _json({k: v for k, v in props.items() if v is not None}),
                r.at,
            )

    def _user_ref(self, u: UserRefSeen) -> None:
        key = (u.platform, u.business_id, u.user_ref)
        known = self.user_refs.get(key)
        if known is None:
            self.user_refs[key] = [u.contact_id, u.at, u.at, u.at if u.contact_id else None]
            return
        known[1] = min(known[1], u.at)
        known[2] = max(known[2], u.at)
        if known[0] is None and u.contact_id is not None:
            known[0], known[3] = u.contact_id, u.at

    def _observed(self, e: AccountEvent, event_id: int | None) -> None:
        if isinstance(e, Optin) and e.contact_id is not None:
            self._thread(ThreadKey(e.platform, e.business_id, e.contact_id))
            self.touches.append((e.platform, e.business_id, e.contact_id, e.at, "optin"))
        if isinstance(e, Edit) and e.external_id is not None:
            self.edits.append((e.platform, e.external_id, e.text, e.at))
            if e.must_exist:
                self.required_edits.add((e.platform, e.external_id))
        if e.dedup_key in self.observed:
            return
        self.observed[e.dedup_key] = (
            e.platform,
            e.kind,
            e.business_id,
            e.contact_id,
            e.user_ref,
            e.external_id,
            e.at,
            _json(e.payload),
            event_id,
            e.dedup_key,
        )

    # -- statements
    def statements(self) -> list[tuple[str, Sequence[Any]]]:
        """The batch's statements, in the order they must run."""
        out: list[tuple[str, Sequence[Any]]] = []
        if self.threads:
            rows = [
                (k.platform, k.business_id, k.contact_id, *(named or (None, None)))
                for k, named in self.threads.items()
            ]
            out.append((_INSERT_THREADS, _columns(rows, 5)))
            named_rows = [r for r in rows if r[3] is not None]
            if named_rows:
                out.append((_RENAME_THREADS, _columns(named_rows, 5)))
        if self.user_refs:
            rows = [(p, b, r, *v) for (p, b, r), v in self.user_refs.items()]
            out.append((_UPSERT_USER_REFS, _columns(rows, 7)))
        if self.referrals:
            rows = []
            for thread, r in self.referrals.items():
                raw = dict(r.raw)
                raw["occurred_at"] = r.at.isoformat()
                rows.append(
                    (
                        thread.platform,
                        thread.business_id,
                        thread.contact_id,
                        r.source,
                        r.ad_id,
                        r.ref,
                        r.ctwa_clid,
                        _json(raw),
                        r.at,
                    )
                )
            out.append((_THREAD_REFERRALS, _columns(rows, 9)))
        if self.user_links:
            out.append((_LINK_USERS, _columns(self.user_links, 4)))
        if self.ad_referrals:
            out.append((_AD_REFERRAL_EVENTS, _columns(list(self.ad_referrals.values()), 6)))
        messages = [*self.messages.values(), *self.refused_sends]
        if messages:
            out.append((_INSERT_MESSAGES, _columns(messages, 23)))
        if self.touches:
            out.append((_TOUCH_WINDOWS, _columns(self.touches, 5)))
        if self.receipts:
            out.append((_INSERT_RECEIPTS, _columns(list(self.receipts.values()), 16)))
        if self.derived_watermarks:
            out.append((_INSERT_DERIVED_WATERMARKS, _columns(self.derived_watermarks, 6)))
        if self.new_pmids:
            out.append((_ATTACH_RECEIPTS, _columns(self.new_pmids, 2)))
        if self.status_pmids or self.watermarks or self.derived_watermarks:
            derived = [(d[0], d[1], d[2], d[3]) for d in self.derived_watermarks]
            out.append(
                (
                    _APPLY_STATUSES,
                    (
                        *_columns(list(self.status_pmids), 2),
                        *_columns(self.watermarks, 6),
                        *_columns(derived, 4),
                        *_columns(self.new_outbound, 2),
                    ),
                )
            )
        if self.edits or self.new_pmids:
            out.append(
                (
                    _APPLY_EDITS,
                    (*_columns(self.edits, 4), *_columns(self.new_pmids, 2)),
                )
            )
        if self.required_edits:
            out.append((_REQUIRE_EDITED, _columns(list(self.required_edits), 2)))
        if self.observed:
            out.append((_INSERT_OBSERVED, _columns(list(self.observed.values()), 10)))
        return out


async def apply_bodies(
    cur: AsyncCursor,
    bodies: Iterable[tuple[ParsedBody, int | None]],
    *,
    lock: bool = True,
) -> BatchPlan:
    """Apply parsed bodies (each with its raw row id) set-based; returns the plan.

    ``lock=False`` when the caller already took the plan's locks (:func:`prelock`). No
    statement's result is read, so in pipeline mode the batch goes out in one piece.
    """
    plan = BatchPlan.build(bodies)
    if lock:
        await prelock(cur, plan.lock_keys)
    for sql, params in plan.statements():
        await cur.execute(sql, params)
    return plan
