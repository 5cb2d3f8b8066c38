"""Writing conversations: threads, messages, receipts, referrals (shared by every platform).

Every function here is idempotent and order-independent, because Meta delivers webhooks
at least once, batched and unordered:

* messages are unique per ``(platform, platform_message_id)`` (mid / wamid), so a
  duplicate delivery inserts nothing (and the triggers, which fire on insert, log nothing);
* receipts are unique per ``dedup_key``; a receipt for a message not stored yet is kept
  with ``message_id`` null and applied when the message arrives (:func:`insert_message`);
* message status only moves forward (``status_rank``); ``failed`` (99) sticks;
* a thread keeps the *earliest* referral, whatever order referrals arrive in.

Two transactions touching the same message or thread can race (a status and its message
in two concurrent batches). Advisory transaction locks on the message id and the thread
serialize exactly those pairs, so a receipt is never written "unmatched" by one
transaction while the other inserts the message without seeing it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

#: Rank of each status: status only moves forward; failed sticks.
STATUS_RANK: dict[str, int] = {
    "received": 0,
    "pending": 0,
    "sent": 1,
    "delivered": 2,
    "read": 3,
    "played": 4,
    "failed": 99,
}
RECEIPT_TYPES = frozenset({"sent", "delivered", "read", "played", "failed", "deleted"})
PLATFORMS = frozenset({"messenger", "instagram", "whatsapp"})

# Timestamps outside this range are malformed (and Postgres would refuse some of them).
_MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2200, 1, 1, tzinfo=UTC)


class PayloadError(ValueError):
    """A webhook body is well signed but not shaped like Meta's; kept as failed."""


def ts_from_millis(value: Any) -> datetime:
    """Meta's Messenger/Instagram timestamps (milliseconds since the epoch)."""
    return _ts(value, 1000.0)


def ts_from_seconds(value: Any) -> datetime:
    """WhatsApp's timestamps (seconds since the epoch, sent as a string)."""
    return _ts(value, 1.0)


def _ts(value: Any, divisor: float) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"timestamp must be a number, got {type(value).__name__}")
    try:
        number = float(value)
        when = datetime.fromtimestamp(number / divisor, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError("timestamp is not a valid epoch value") from exc
    if not _MIN_TS <= when < _MAX_TS:
        raise PayloadError("timestamp is out of range")
    return when


def text_or_none(value: Any, limit: int = 20_000) -> str | None:
    """A string field, cut to ``limit`` characters; anything else is None."""
    if isinstance(value, str):
        return value[:limit]
    return None


def require_id(value: Any, what: str) -> str:
    """A Meta id (string or number) as text; a missing or odd id is a payload error."""
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{what} is missing")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 256:
        return value
    raise PayloadError(f"{what} is not an id")


#: Advisory locks the current all-or-nothing transaction already holds (see
#: :func:`prelock`); ``None`` outside such a transaction.
_HELD_LOCKS: ContextVar[set[str] | None] = ContextVar("everreach_held_locks", default=None)


async def _lock(cur: AsyncCursor, key: str) -> None:
    held = _HELD_LOCKS.get()
    if held is not None and key in held:
        return  # taken for the whole batch up front (transaction-scoped: still held)
    await cur.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


def thread_key(platform: str, business_id: str, contact_id: str) -> str:
    """Advisory-lock key of one conversation."""
    return f"thread:{platform}:{business_id}:{contact_id}"


def message_key(platform: str, platform_message_id: str) -> str:
    """Advisory-lock key of one message id."""
    return f"msg:{platform}:{platform_message_id}"


async def prelock(cur: AsyncCursor, keys: set[str]) -> None:
    """Take a whole batch's advisory locks in one statement, in a fixed (hash) order.

    The fixed order also means two batches prelocking overlapping keys queue instead of
    deadlocking. Later per-event lock calls for these keys become no-ops.
    """
    held = _HELD_LOCKS.get()
    if held is None or not keys:
        return
    await cur.execute(
        "select count(pg_advisory_xact_lock(h)) from (select distinct "
        "hashtextextended(k, 0) as h from unnest(%s::text[]) as k order by 1) as s",
        (sorted(keys),),
    )
    held.update(keys)


async def lock_thread_key(
    cur: AsyncCursor, platform: str, business_id: str, contact_id: str
) -> None:
    """Serialize writers of one conversation (watermarks vs. outbound messages)."""
    await _lock(cur, thread_key(platform, business_id, contact_id))


async def lock_message_key(cur: AsyncCursor, platform: str, platform_message_id: str) -> None:
    """Serialize writers of one message id (a status vs. the message it belongs to)."""
    await _lock(cur, message_key(platform, platform_message_id))


#: Threads known to the current transaction, ``(platform, business, contact)`` →
#: ``[thread_id, contact_name]``. Set only around a batch that is applied as one unit (the
#: pipelined fast path: any failure rolls back the whole transaction and its cache), so a
#: cached thread can never be one a rolled-back savepoint took away.
_THREAD_CACHE: ContextVar[dict[tuple[str, str, str], list[Any]] | None] = ContextVar(
    "everreach_thread_cache", default=None
)


@contextlib.contextmanager
def thread_cache() -> Iterator[dict[tuple[str, str, str], list[Any]]]:
    """Cache thread lookups and track prelocked keys for one all-or-nothing transaction."""
    cache: dict[tuple[str, str, str], list[Any]] = {}
    token = _THREAD_CACHE.set(cache)
    locks = _HELD_LOCKS.set(set())
    try:
        yield cache
    finally:
        _HELD_LOCKS.reset(locks)
        _THREAD_CACHE.reset(token)


async def prefetch_threads(cur: AsyncCursor, keys: set[tuple[str, str, str]]) -> None:
    """Look up the existing threads of a whole batch in one statement (into the cache).

    ``keys`` may name more contacts than the batch will touch: this only reads.
    """
    cache = _THREAD_CACHE.get()
    if cache is None or not keys:
        return
    platforms, businesses, contacts = (list(column) for column in zip(*keys, strict=True))
    await cur.execute(
        "select t.platform, t.business_account_id, t.contact_id, t.thread_id, "
        "t.contact_name from conversation_thread t "
        "join unnest(%s::text[], %s::text[], %s::text[]) as k(platform, business, contact) "
        "on t.platform = k.platform and t.business_account_id = k.business "
        "and t.contact_id = k.contact",
        (platforms, businesses, contacts),
    )
    for platform, business, contact, thread_id, name in await cur.fetchall():
        cache[(platform, business, contact)] = [thread_id, name]


async def get_or_create_thread(
    cur: AsyncCursor,
    platform: str,
    business_id: str,
    contact_id: str,
    contact_name: str | None = None,
) -> uuid.UUID:
    """The thread of ``platform × business account × contact``, created on first contact."""
    cache = _THREAD_CACHE.get()
    cached = cache.get((platform, business_id, contact_id)) if cache is not None else None
    if cached is not None:
        row = tuple(cached)
    else:
        await cur.execute(
            "select thread_id, contact_name from conversation_thread "
            "where platform = %s and business_account_id = %s and contact_id = %s",
            (platform, business_id, contact_id),
        )
        row = await cur.fetchone()
    if row is None:
        await cur.execute(
            "insert into conversation_thread (platform, business_account_id, contact_id, "
            "contact_name) values (%s, %s, %s, %s) "
            "on conflict (platform, business_account_id, contact_id) do nothing "
            "returning thread_id, contact_name",
            (platform, business_id, contact_id, contact_name),
        )
        row = await cur.fetchone()
        if row is None:  # created concurrently by another transaction
            await cur.execute(
                "select thread_id, contact_name from conversation_thread "
                "where platform = %s and business_account_id = %s and contact_id = %s",
                (platform, business_id, contact_id),
            )
            row = await cur.fetchone()
            assert row is not None
    thread_id, known_name = row
    if contact_name and contact_name != known_name:
        await cur.execute(
            "update conversation_thread set contact_name = %s, updated_at = now() "
            "where thread_id = %s",
            (contact_name, thread_id),
        )
        known_name = contact_name
    if cache is not None:
        cache[(platform, business_id, contact_id)] = [thread_id, known_name]
    return thread_id


@dataclass
class Referral:
    """Where a conversation came from: a Click-to-Messenger/WhatsApp ad or a m.me/ig.me link."""

    occurred_at: datetime
    source: str | None = None  # ADS, SHORTLINK, ad, post, …
    ad_id: str | None = None
    ref: str | None = None  # m.me/ig.me `ref`: the EverReach user id
    ctwa_clid: str | None = None
    source_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def is_ad(self) -> bool:
        """Did an ad start this conversation?"""
        return bool(self.ad_id or self.ctwa_clid or (self.source or "").lower() in ("ads", "ad"))


async def apply_referral(
    cur: AsyncCursor, thread_id: uuid.UUID, platform: str, contact_id: str, referral: Referral
) -> None:
    """Keep the thread's earliest referral, link the EverReach user, log ``ad_referral``."""
    stored = dict(referral.raw)
    stored["occurred_at"] = referral.occurred_at.isoformat()
    await cur.execute(
        """
        update conversation_thread set
            referral_source = %(source)s, referral_ad_id = %(ad_id)s,
            referral_ref = %(ref)s, ctwa_clid = %(clid)s, referral = %(raw)s,
            updated_at = now()
        where thread_id = %(thread)s
          and (referral is null
               or (referral ->> 'occurred_at')::timestamptz > %(at)s)
        """,
        {
            "source": referral.source,
            "ad_id": referral.ad_id,
            "ref": referral.ref,
            "clid": referral.ctwa_clid,
            "raw": Jsonb(stored),
            "thread": thread_id,
            "at": referral.occurred_at,
        },
    )
    user_id = _uuid_or_none(referral.ref)
    if user_id is not None:
        # The EverReach app puts its user id in the m.me/ig.me `ref`: link the thread so
        # the triggers attribute this conversation's messages to that user.
        await cur.execute(
            "update conversation_thread set user_id = %s, updated_at = now() "
            "where thread_id = %s and user_id is null "
            "and exists (select 1 from auth.users where id = %s)",
            (user_id, thread_id, user_id),
        )
    key = (
        f"{platform}:{contact_id}:{referral.ad_id or ''}:{referral.ctwa_clid or ''}:"
        f"{referral.ref or ''}:{int(referral.occurred_at.timestamp() * 1000)}"
    )
    await _lock(cur, f"referral:{key}")
    # user_event has no unique key of ours: the lock + "not exists" keeps replays from
    # logging the same referral twice.
    await cur.execute(
        """
        insert into user_event (user_id, etype, source, props, occurred_at)
        select t.user_id, 'ad_referral', %(platform)s, %(props)s, %(at)s
        from conversation_thread t
        where t.thread_id = %(thread)s
          and not exists (select 1 from user_event e
                          where e.etype = 'ad_referral' and e.occurred_at = %(at)s
                            and e.props ->> 'referral_key' = %(key)s)
        """,
        {
            "platform": platform,
            "thread": thread_id,
            "at": referral.occurred_at,
            "key": key,
            "props": Jsonb(
                {
                    k: v
                    for k, v in {
                        "referral_key": key,
                        "thread_id": str(thread_id),
                        "platform": platform,
                        "meta_ad_id": referral.ad_id,
                        "ctwa_clid": referral.ctwa_clid,
                        "source_url": referral.source_url,
                        "referral_source": referral.source,
                        "ref": referral.ref,
                        "is_ad": referral.is_ad,
                    }.items()
                    if v is not None
                }
            ),
        },
    )


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def touch_window(cur: AsyncCursor, thread_id: uuid.UUID, at: datetime, reason: str) -> None:
    """Open/extend the thread's policy windows from a user action that is not a message."""
    await cur.execute("select touch_messaging_window(%s, %s, %s)", (thread_id, at, reason))


@dataclass
class MessageRow:
    """One message as stored in ``conversation_message``."""

    thread_id: uuid.UUID
    platform: str
    platform_message_id: str | None
    direction: str
    message_type: str
    sent_at: datetime
    text: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None
    is_echo: bool = False
    status: str = "received"
    messaging_type: str | None = None
    message_tag: str | None = None
    window_used: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    webhook_event_id: int | None = None


_INSERT_MESSAGE = """
insert into conversation_message (thread_id, platform, platform_message_id, direction,
    message_type, text, payload, reply_to_platform_message_id, is_echo, status,
    status_rank, error_code, error_message, messaging_type, message_tag, window_used,
    sent_at, failed_at, webhook_event_id)
values (%(thread)s, %(platform)s, %(pmid)s, %(direction)s, %(type)s, %(text)s, %(payload)s,
        %(reply_to)s, %(is_echo)s, %(status)s, %(rank)s, %(code)s, %(msg)s,
        %(messaging_type)s, %(tag)s, %(window)s, %(sent_at)s,
        case when %(status)s = 'failed' then %(sent_at)s end, %(event_id)s)
on conflict (platform, platform_message_id) do nothing
returning message_id
"""

# Insert + "which receipts arrived before this message", in one round trip. The select
# runs only when the insert did (the join is on its returned row); receipts by message id
# and by watermark are two index-friendly branches instead of one OR.
_INSERT_MESSAGE_RECONCILE = (
    """
with ins as ("""
    + _INSERT_MESSAGE
    + """)
select ins.message_id, r.event_type, r.occurred_at, r.error_code, r.error_message
from ins left join lateral (
    select d.event_type, d.occurred_at, d.error_code, d.error_message
    from message_delivery_event d
    where d.platform = %(platform)s and d.platform_message_id = %(pmid)s
    union all
    select d.event_type, d.occurred_at, d.error_code, d.error_message
    from message_delivery_event d
    where %(outbound)s and d.platform = %(platform)s and d.watermark is not null
      and d.business_account_id = %(biz)s and d.contact_id = %(contact)s
      and d.watermark >= %(sent_at)s
) r on true
"""
)


async def insert_message(
    cur: AsyncCursor, row: MessageRow, *, business_id: str, contact_id: str, want_id: bool = True
) -> tuple[uuid.UUID | None, bool | None]:
    """Store a message once (by platform id); returns (message_id, inserted?).

    After a new message is stored, receipts that arrived before it (WhatsApp statuses,
    Messenger watermarks, an Instagram unsend) are applied to it.

    ``want_id=False`` (the webhook path) skips waiting for the insert's result when no
    receipt can precede the message, so the statement pipelines with the next ones; it
    then returns ``(None, None)``.
    """
    # Receipts can precede a message only when it is outbound (statuses, watermarks) or an
    # Instagram message (unsend); other inbound messages skip the lock and the reconcile.
    reconcile = row.platform_message_id is not None and (
        row.direction == "outbound" or row.platform == "instagram"
    )
    if reconcile:
        await lock_message_key(cur, row.platform, row.platform_message_id)
    if row.direction == "outbound":
        await lock_thread_key(cur, row.platform, business_id, contact_id)
    params = {
        "thread": row.thread_id,
        "platform": row.platform,
        "pmid": row.platform_message_id,
        "direction": row.direction,
        "type": row.message_type,
        "text": row.text,
        "payload": Jsonb(row.payload),
        "reply_to": row.reply_to,
        "is_echo": row.is_echo,
        "status": row.status,
        "rank": STATUS_RANK.get(row.status, 0),
        "code": row.error_code,
        "msg": row.error_message,
        "messaging_type": row.messaging_type,
        "tag": row.message_tag,
        "window": row.window_used,
        "sent_at": row.sent_at,
        "event_id": row.webhook_event_id,
    }
    if reconcile:
        params.update(outbound=row.direction == "outbound", biz=business_id, contact=contact_id)
        await cur.execute(_INSERT_MESSAGE_RECONCILE, params)
        rows = await cur.fetchall()
        if rows:
            message_id = rows[0][0]
            receipts = [r[1:] for r in rows if r[1] is not None]
            for event_type, occurred_at, error_code, error_message in receipts:
                await apply_status(
                    cur, message_id, event_type, occurred_at, error_code, error_message
                )
            if receipts:
                await cur.execute(
                    "update message_delivery_event set message_id = %s, thread_id = %s "
                    "where platform = %s and platform_message_id = %s "
                    "and message_id is null",
                    (message_id, row.thread_id, row.platform, row.platform_message_id),
                )
            return message_id, True
    else:
        await cur.execute(_INSERT_MESSAGE, params)
        if not want_id:
            return None, None
        found = await cur.fetchone()
        if found is not None:
            return found[0], True
    if not want_id:
        return None, False
    await cur.execute(
        "select message_id from conversation_message "
        "where platform = %s and platform_message_id = %s",
        (row.platform, row.platform_message_id),
    )
    existing = await cur.fetchone()
    assert existing is not None
    return existing[0], False


_STATUS_SQL = """
update conversation_message set
    status = case when %(rank)s > status_rank then %(status)s else status end,
    status_rank = greatest(status_rank, %(rank)s),
    delivered_at = case when %(rank)s between 2 and 4
        then least(coalesce(delivered_at, %(at)s), %(at)s) else delivered_at end,
    read_at = case when %(rank)s between 3 and 4
        then least(coalesce(read_at, %(at)s), %(at)s) else read_at end,
    failed_at = case when %(rank)s = 99
        then least(coalesce(failed_at, %(at)s), %(at)s) else failed_at end,
    error_code = case when %(rank)s = 99 then coalesce(error_code, %(code)s) else error_code end,
    error_message = case when %(rank)s = 99 then coalesce(error_message, %(msg)s)
        else error_message end,
    is_deleted = is_deleted or %(deleted)s,
    updated_at = now()
"""


async def apply_status(
    cur: AsyncCursor,
    message_id: uuid.UUID,
    event_type: str,
    at: datetime,
    error_code: int | None = None,
    error_message: str | None = None,
) -> None:
    """Move one message's status forward (never back; failed sticks)."""
    await cur.execute(
        _STATUS_SQL + " where message_id = %(id)s",
        {
            "rank": STATUS_RANK.get(event_type, 0),
            "status": event_type,
            "at": at,
            "code": error_code,
            "msg": error_message,
            "deleted": event_type == "deleted",
            "id": message_id,
        },
    )


@dataclass
class Receipt:
    """A delivery/read receipt, a WhatsApp status, or an unsend."""

    platform: str
    event_type: str
    occurred_at: datetime
    business_id: str
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
    webhook_event_id: int | None = None

    def dedup_key(self) -> str:
        """One row per distinct receipt: by message id, else by watermark."""
        if self.platform_message_id is not None:
            return f"{self.platform}:{self.event_type}:{self.platform_message_id}"
        assert self.watermark is not None
        return (
            f"{self.platform}:{self.event_type}:wm:{self.business_id}:{self.contact_id}:"
            f"{int(self.watermark.timestamp() * 1000)}"
        )


_INSERT_RECEIPT = """
insert into message_delivery_event (platform, event_type, platform_message_id,
    message_id, thread_id, business_account_id, contact_id, watermark, occurred_at,
    error_code, error_title, error_message, conversation_id, conversation_origin,
    pricing, raw, webhook_event_id, dedup_key)
values (%(platform)s, %(type)s, %(pmid)s,
    (select m.message_id from conversation_message m
     where m.platform = %(platform)s and m.platform_message_id = %(pmid)s),
    (select m.thread_id from conversation_message m
     where m.platform = %(platform)s and m.platform_message_id = %(pmid)s),
    %(biz)s, %(contact)s, %(wm)s, %(at)s, %(code)s, %(title)s, %(msg)s, %(conv)s,
    %(origin)s, %(pricing)s, %(raw)s, %(event_id)s, %(dedup)s)
on conflict (dedup_key) do nothing
"""


async def record_receipt(cur: AsyncCursor, receipt: Receipt) -> None:
    """Store a receipt once and apply it to the message(s) it names.

    No statement here waits for a result, so in pipeline mode they all go out together:
    the receipt row looks its message up itself, and the status update names the message
    by platform id (a no-op while the message is not stored; it reconciles on arrival).
    """
    if receipt.platform_message_id is not None:
        await lock_message_key(cur, receipt.platform, receipt.platform_message_id)
    elif receipt.contact_id is not None:
        await lock_thread_key(cur, receipt.platform, receipt.business_id, receipt.contact_id)
    await cur.execute(
        _INSERT_RECEIPT,
        {
            "platform": receipt.platform,
            "type": receipt.event_type,
            "pmid": receipt.platform_message_id,
            "biz": receipt.business_id,
            "contact": receipt.contact_id,
            "wm": receipt.watermark,
            "at": receipt.occurred_at,
            "code": receipt.error_code,
            "title": receipt.error_title,
            "msg": receipt.error_message,
            "conv": receipt.conversation_id,
            "origin": receipt.conversation_origin,
            "pricing": Jsonb(receipt.pricing) if receipt.pricing is not None else None,
            "raw": Jsonb(receipt.raw),
            "event_id": receipt.webhook_event_id,
            "dedup": receipt.dedup_key(),
        },
    )
    if receipt.platform_message_id is not None:
        await cur.execute(
            _STATUS_SQL + " where platform = %(platform)s and platform_message_id = %(pmid)s",
            {
                "rank": STATUS_RANK.get(receipt.event_type, 0),
                "status": receipt.event_type,
                "at": receipt.occurred_at,
                "code": receipt.error_code,
                "msg": receipt.error_message or receipt.error_title,
                "deleted": receipt.event_type == "deleted",
                "platform": receipt.platform,
                "pmid": receipt.platform_message_id,
            },
        )
        return
    if receipt.watermark is not None and receipt.contact_id is not None:
        # Messenger: everything the page sent at or before the watermark is delivered/read.
        await cur.execute(
            _STATUS_SQL
            + """
            where message_id in (
                select m.message_id from conversation_message m
                join conversation_thread t on t.thread_id = m.thread_id
                where t.platform = %(platform)s and t.business_account_id = %(biz)s
                  and t.contact_id = %(contact)s and m.direction = 'outbound'
                  and m.sent_at <= %(wm)s and m.status_rank < %(rank)s)
            """,
            {
                "rank": STATUS_RANK[receipt.event_type],
                "status": receipt.event_type,
                "at": receipt.occurred_at,
                "code": None,
                "msg": None,
                "deleted": False,
                "platform": receipt.platform,
                "biz": receipt.business_id,
                "contact": receipt.contact_id,
                "wm": receipt.watermark,
            },
        )
