"""The raw webhook log (``meta_webhook_event``) and the group-commit writer.

Design choice — store and apply in the **same transaction**, many webhooks per commit:

* A request puts its verified body on a queue and waits. A writer task takes everything
  queued (up to ``max_batch``), and in one transaction inserts the raw rows, applies the
  bodies, records each body's outcome, and commits once. Then every waiting request
  answers 200. One WAL flush serves the whole batch, which is what lets the receiver
  approach the no-database request rate while still answering 200 only after the event
  is durable.
* Fast path (almost every batch): psycopg **pipeline mode** and no savepoints. The
  batch's existing threads are looked up in one statement and its advisory locks taken
  in one statement (fixed order); every statement whose result is not needed (locks,
  receipts, status updates, most message inserts, window touches) is sent without
  waiting, so a batch costs about one round trip per Instagram message / echo instead of
  one per statement (6–10 per webhook before).
* If any body of the batch fails (Python or SQL error), the whole transaction rolls back
  and the batch is redone on the slow path: no pipeline, one savepoint per body. A body
  that cannot be applied (malformed, or a data error) rolls back to its savepoint and is
  stored with ``status='failed'`` and the error: it is answered 200 (Meta would retry it
  forever) and ``everreach webhooks replay --failed-only`` re-applies it.
* If the database is unavailable the transaction fails, nothing of the batch is
  committed, and every request of the batch answers 503 so Meta retries it.
* A body that lost a deadlock is re-applied alone, in a fresh transaction, after its
  batch committed; if it keeps losing it is stored as failed (replay applies it).
* ``deferred`` mode commits only the raw rows before the 200 and applies them right after
  with the same fast/slow paths; at most ``max_queued_events`` wait in memory, the rest
  (and anything a crash left ``pending``) is applied by the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from webhook_receiver.messenger import EventCounts, apply_messaging_body
from webhook_receiver.store import (
    PayloadError,
    message_key,
    prefetch_threads,
    prelock,
    thread_cache,
    thread_key,
)
from webhook_receiver.whatsapp import apply_whatsapp_body

log = logging.getLogger(__name__)

#: Request headers worth keeping beside the raw body (never Authorization or cookies).
KEPT_HEADERS = (
    "content-type",
    "content-length",
    "user-agent",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
)
_DEADLOCK_RETRIES = 3
#: Session options for every connection that applies webhooks: a lock wait longer than
#: this fails (and the body is retried) instead of stalling a batch — observed under
#: heavy contention, where a lock cycle stayed undetected for minutes.
APPLY_SESSION_OPTIONS = "-c lock_timeout=5s"


@dataclass
class RawEvent:
    """A verified webhook body waiting to be stored."""

    body: bytes
    signature: str | None
    headers: dict[str, str]
    parsed: Any = None
    parse_error: str | None = None

    @classmethod
    def from_request(cls, body: bytes, headers: Mapping[str, str]) -> RawEvent:
        """Parse the body (a body that is not JSON is still kept, as ``ignored``)."""
        kept = {k: v for k in KEPT_HEADERS if (v := headers.get(k)) is not None}
        try:
            parsed = orjson.loads(body)
            error = None
        except orjson.JSONDecodeError:
            parsed, error = None, "body is not valid JSON"
        return cls(
            body=body,
            signature=headers.get("x-hub-signature-256"),
            headers=kept,
            parsed=parsed,
            parse_error=error,
        )

    @property
    def object_type(self) -> str | None:
        """``object`` of the body when it is a short plain string."""
        if isinstance(self.parsed, dict):
            value = self.parsed.get("object")
            if isinstance(value, str) and len(value) <= 64 and "\x00" not in value:
                return value
        return None


@dataclass
class Outcome:
    """What happened to one stored body."""

    webhook_event_id: int
    status: str  # applied | failed | ignored
    error: str | None = None
    entries: int | None = None
    events: int | None = None


def _id(value: Any) -> str | None:
    """An id as :func:`~webhook_receiver.store.require_id` reads it; None when odd."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 256 and "\x00" not in value:
        return value
    return None


def batch_keys(events: list[RawEvent]) -> tuple[set[tuple[str, str, str]], set[str]]:
    """What a batch may touch: its threads, and the advisory locks its events take.

    Both are used up front, in one statement each, instead of one round trip per event:
    the existing threads are looked up (read only, so a superset is harmless) and the
    locks taken in a fixed order (a superset only serializes a little more; a key missed
    here is simply locked when its event is applied). A body shaped oddly contributes
    what it can; applying it decides what happens to it.
    """
    threads: set[tuple[str, str, str]] = set()
    locks: set[str] = set()
    for event in events:
        body = event.parsed
        if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
            continue
        obj = body.get("object")
        for entry in body["entry"]:
            if not isinstance(entry, dict):
                continue
            if obj in ("page", "instagram"):
                platform = "messenger" if obj == "page" else "instagram"
                business = _id(entry.get("id"))
                if business is not None:
                    _messaging_keys(platform, business, entry, threads, locks)
            elif obj == "whatsapp_business_account":
                _whatsapp_keys(entry, threads, locks)
    return threads, locks


def _messaging_keys(
    platform: str,
    business: str,
    entry: dict[str, Any],
    threads: set[tuple[str, str, str]],
    locks: set[str],
) -> None:
    for kind in ("messaging", "standby"):
        items = entry.get(kind)
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            sender = item.get("sender")
            sender = _id(sender.get("id")) if isinstance(sender, dict) else None
            recipient = item.get("recipient")
            recipient = _id(recipient.get("id")) if isinstance(recipient, dict) else None
            for contact in (sender, recipient):
                if contact is not None:
                    threads.add((platform, business, contact))
            message = item.get("message")
            if isinstance(message, dict):
                mid = _id(message.get("mid"))
                echo = bool(message.get("is_echo"))
                if mid is not None and (
                    echo or platform == "instagram" or message.get("is_deleted")
                ):
                    locks.add(message_key(platform, mid))
                if echo and recipient is not None:
                    locks.add(thread_key(platform, business, recipient))
            for receipt_kind in ("delivery", "read"):
                receipt = item.get(receipt_kind)
                if not isinstance(receipt, dict):
                    continue
                mids = receipt.get("mids")
                for mid in [*(mids if isinstance(mids, list) else ()), receipt.get("mid")]:
                    if (mid := _id(mid)) is not None:
                        locks.add(message_key(platform, mid))
                if sender is not None:
                    locks.add(thread_key(platform, business, sender))


def _whatsapp_keys(
    entry: dict[str, Any], threads: set[tuple[str, str, str]], locks: set[str]
) -> None:
    changes = entry.get("changes")
    for change in changes if isinstance(changes, list) else ():
        value = change.get("value") if isinstance(change, dict) else None
        if not isinstance(value, dict) or not isinstance(value.get("metadata"), dict):
            continue
        business = _id(value["metadata"].get("phone_number_id"))
        messages = value.get("messages")
        for message in messages if isinstance(messages, list) else ():
            contact = _id(message.get("from")) if isinstance(message, dict) else None
            if business is not None and contact is not None:
                threads.add(("whatsapp", business, contact))
        statuses = value.get("statuses")
        for status in statuses if isinstance(statuses, list) else ():
            wamid = _id(status.get("id")) if isinstance(status, dict) else None
            if wamid is not None:
                locks.add(message_key("whatsapp", wamid))


async def apply_body(
    cur: AsyncCursor, parsed: Any, webhook_event_id: int | None
) -> tuple[str, EventCounts | None, str | None]:
    """Dispatch a parsed body to its platform; returns (status, counts, error)."""
    if not isinstance(parsed, dict):
        return "ignored", None, "body is not a JSON object"
    obj = parsed.get("object")
    if obj in ("page", "instagram"):
        counts = await apply_messaging_body(cur, parsed, webhook_event_id)
    elif obj == "whatsapp_business_account":
        counts = await apply_whatsapp_body(cur, parsed, webhook_event_id)
    else:
        return "ignored", None, "unknown object type"
    return "applied", counts, None


async def apply_in_savepoint(
    conn: AsyncConnection, cur: AsyncCursor, parsed: Any, webhook_event_id: int
) -> Outcome:
    """Apply one body inside a savepoint: a failure undoes only this body.

    Outcome ``retry`` means the body lost a deadlock: retrying inside the same transaction
    would meet the same cycle (its earlier locks are still held), so the caller retries it
    in a fresh transaction.
    """
    try:
        async with conn.transaction():
            status, counts, error = await apply_body(cur, parsed, webhook_event_id)
        return Outcome(
            webhook_event_id,
            status,
            error,
            counts.entries if counts else None,
            counts.events if counts else None,
        )
    except (
        psycopg.errors.DeadlockDetected,
        psycopg.errors.SerializationFailure,
        psycopg.errors.LockNotAvailable,
    ) as exc:
        return Outcome(webhook_event_id, "retry", f"concurrency: {exc.sqlstate}")
    except psycopg.OperationalError as exc:
        if conn.broken or conn.closed:
            raise  # the database is gone: the whole batch fails (→ 5xx, Meta retries)
        # e.g. a program limit (54xxx) hit by this body's content: not availability.
        return Outcome(webhook_event_id, "failed", _describe(exc))
    except (
        PayloadError,
        psycopg.Error,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        OverflowError,
        AssertionError,
    ) as exc:
        # Not the database's availability: this body cannot be applied as it is.
        return Outcome(webhook_event_id, "failed", _describe(exc))


def _describe(exc: BaseException) -> str:
    # Error text is stored, never logged at info: it may quote message content.
    if isinstance(exc, psycopg.Error):
        return f"{type(exc).__name__} ({exc.sqlstate}): {str(exc).splitlines()[0][:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


_INSERT_RAW = """
insert into meta_webhook_event (object_type, raw_body, body_sha256, signature, headers)
values (%s, %s, %s, %s, %s) returning id
"""

_RECORD_OUTCOMES = """
update meta_webhook_event e set
    status = v.status, error = v.error, attempts = e.attempts + 1,
    applied_at = case when v.status = 'applied' then now() else e.applied_at end,
    entry_count = coalesce(v.entries, e.entry_count),
    event_count = coalesce(v.events, e.event_count)
from unnest(%s::bigint[], %s::text[], %s::text[], %s::int[], %s::int[])
    as v(id, status, error, entries, events)
where e.id = v.id
"""


async def record_outcomes(cur: AsyncCursor, outcomes: list[Outcome]) -> None:
    """Write the outcome of every body in one statement."""
    await cur.execute(
        _RECORD_OUTCOMES,
        (
            [o.webhook_event_id for o in outcomes],
            ["pending" if o.status == "retry" else o.status for o in outcomes],
            [o.error for o in outcomes],
            [o.entries for o in outcomes],
            [o.events for o in outcomes],
        ),
    )


async def insert_raw(cur: AsyncCursor, events: list[RawEvent]) -> list[int]:
    """Insert the raw rows (status ``pending``) in one pipelined statement; their ids."""
    await cur.executemany(
        _INSERT_RAW,
        [
            (
                e.object_type,
                e.body,
                hashlib.sha256(e.body).hexdigest(),
                e.signature,
                Jsonb(e.headers),
            )
            for e in events
        ],
        returning=True,
    )
    ids: list[int] = []
    while True:
        row = await cur.fetchone()
        assert row is not None
        ids.append(row[0])
        if not cur.nextset():
            break
    return ids


async def apply_stored(
    conn: AsyncConnection, cur: AsyncCursor, events: list[RawEvent], ids: list[int]
) -> list[Outcome]:
    """Apply stored bodies (each in a savepoint) and record their outcomes."""
    outcomes = []
    for event, event_id in zip(events, ids, strict=True):
        if event.parse_error is not None:
            outcomes.append(Outcome(event_id, "ignored", event.parse_error))
        else:
            outcomes.append(await apply_in_savepoint(conn, cur, event.parsed, event_id))
    await record_outcomes(cur, outcomes)
    return outcomes


async def _apply_without_savepoints(
    cur: AsyncCursor, events: list[RawEvent], ids: list[int]
) -> list[Outcome]:
    outcomes = []
    for event, event_id in zip(events, ids, strict=True):
        if event.parse_error is not None:
            outcomes.append(Outcome(event_id, "ignored", event.parse_error))
            continue
        status, counts, error = await apply_body(cur, event.parsed, event_id)
        outcomes.append(
            Outcome(
                event_id,
                status,
                error,
                counts.entries if counts else None,
                counts.events if counts else None,
            )
        )
    await record_outcomes(cur, outcomes)
    return outcomes


async def store_and_apply(conn: AsyncConnection, events: list[RawEvent]) -> list[Outcome]:
    """Insert raw rows, apply each body, record outcomes — one transaction, one commit.

    Tried first without savepoints, in pipeline mode; if any body fails, the transaction
    is rolled back and the batch redone with one savepoint per body. A body that lost a
    deadlock is re-applied alone, after the batch committed (its raw row is durable by
    then); after a few rounds it is stored as failed, for replay.
    """
    return await _apply_batch(conn, events, None)


async def apply_committed(
    conn: AsyncConnection, events: list[RawEvent], ids: list[int]
) -> list[Outcome]:
    """Apply bodies whose raw rows are already committed (deferred mode, the sweep)."""
    return await _apply_batch(conn, events, ids)


async def _apply_batch(
    conn: AsyncConnection, events: list[RawEvent], ids: list[int] | None
) -> list[Outcome]:
    try:
        # Fast path: no savepoints, and pipeline mode — a statement whose result is not
        # needed (locks, receipts, status updates, most message inserts) is sent without
        # waiting, so a batch costs a few round trips per body instead of one per
        # statement. Almost every batch applies cleanly; when one body fails (Python or
        # SQL error), the whole transaction rolls back and the batch is redone below with
        # savepoints and without pipelining, so each body's error is its own.
        with thread_cache():
            async with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                fast_ids = ids if ids is not None else await insert_raw(cur, events)
                threads, locks = batch_keys(events)
                await prelock(cur, locks)
                await prefetch_threads(cur, threads)
                return await _apply_without_savepoints(cur, events, fast_ids)
    except asyncio.CancelledError:
        raise
    except Exception:
        if conn.broken or conn.closed:
            raise  # the database is gone: 503 for the whole batch
    async with conn.transaction(), conn.cursor() as cur:
        if ids is None:
            ids = await insert_raw(cur, events)
        outcomes = await apply_stored(conn, cur, events, ids)
    for round_ in range(_DEADLOCK_RETRIES):
        retry = [n for n, o in enumerate(outcomes) if o.status == "retry"]
        if not retry:
            break
        log.info("re-applying %d bodies after a deadlock (round %d)", len(retry), round_ + 1)
        for n in retry:
            async with conn.transaction(), conn.cursor() as cur:
                outcomes[n] = (await apply_stored(conn, cur, [events[n]], [ids[n]]))[0]
    for n, outcome in enumerate(outcomes):
        if outcome.status == "retry":
            outcomes[n] = Outcome(outcome.webhook_event_id, "failed", outcome.error)
            async with conn.transaction(), conn.cursor() as cur:
                await record_outcomes(cur, [outcomes[n]])
    return outcomes


async def store_only(conn: AsyncConnection, events: list[RawEvent]) -> list[Outcome]:
    """Insert raw rows as ``pending`` — one transaction, one commit (deferred apply)."""
    async with conn.transaction(), conn.cursor() as cur:
        ids = await insert_raw(cur, events)
    return [Outcome(event_id, "pending") for event_id in ids]


class WriterUnavailable(RuntimeError):
    """The writer is stopped (the app is shutting down)."""


class EventWriter:
    """Group commit: batches concurrent webhooks into shared transactions."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        max_batch: int = 64,
        writers: int = 1,
        connection_timeout: float = 5.0,
        apply_mode: str = "inline",
        sweep_seconds: float = 30.0,
        max_queued_events: int = 20_000,
    ) -> None:
        if apply_mode not in ("inline", "deferred"):
            raise ValueError(f"apply_mode must be inline or deferred, not {apply_mode!r}")
        self.pool = pool
        self.apply_mode = apply_mode
        self.sweep_seconds = sweep_seconds
        self._applier: asyncio.Queue[tuple[list[RawEvent], list[int]]] = asyncio.Queue()
        #: Deferred mode: bodies waiting to be applied in memory, at most; beyond that
        #: they stay ``pending`` in the table for the sweep (bounded memory under overload).
        self.max_queued_events = max_queued_events
        self._queued_events = 0
        self.left_to_sweep = 0
        self.applied = 0
        self.max_batch = max_batch
        self.writers = writers
        self.connection_timeout = connection_timeout
        self._queue: asyncio.Queue[tuple[RawEvent, asyncio.Future[Outcome]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.stored = 0

    def start(self) -> None:
        """Start the writer tasks on the running loop."""
        for n in range(self.writers):
            self._tasks.append(asyncio.create_task(self._run(), name=f"webhook-writer-{n}"))
        if self.apply_mode == "deferred":
            self._tasks.append(asyncio.create_task(self._apply_loop(), name="webhook-applier"))
            self._tasks.append(asyncio.create_task(self._sweep_loop(), name="webhook-sweeper"))

    async def stop(self) -> None:
        """Stop the writers; requests still queued get :class:`WriterUnavailable` (→ 503)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(WriterUnavailable("receiver is shutting down"))

    async def submit(self, event: RawEvent) -> Outcome:
        """Queue one body and wait until it is committed (raises when it could not be)."""
        if not self._tasks:
            raise WriterUnavailable("receiver is not running")
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((event, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Whatever queued up while the previous commit ran joins this one.
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(e, f) for e, f in batch if not f.done()]  # skip requests that timed out
            if not live:
                continue
            try:
                events = [e for e, _ in live]
                async with self.pool.connection(timeout=self.connection_timeout) as conn:
                    if self.apply_mode == "inline":
                        outcomes = await store_and_apply(conn, events)
                    else:
                        outcomes = await store_only(conn, events)
                        if self._queued_events + len(events) <= self.max_queued_events:
                            self._queued_events += len(events)
                            self._applier.put_nowait(
                                (events, [o.webhook_event_id for o in outcomes])
                            )
                        else:
                            # Applying lags far behind: do not hold more bodies in memory;
                            # the rows are durable and `pending`, the sweep applies them.
                            if not self.left_to_sweep:
                                log.warning(
                                    "deferred apply is behind; leaving batches "
                                    "pending for the sweep"
                                )
                            self.left_to_sweep += len(events)
            except asyncio.CancelledError:
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(WriterUnavailable("receiver is shutting down"))
                raise
            except Exception as exc:  # noqa: BLE001 — every waiting request must get an answer
                log.warning("webhook batch of %d not stored: %s", len(live), type(exc).__name__)
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.stored += len(live)
            for (_, fut), outcome in zip(live, outcomes, strict=True):
                if not fut.done():
                    fut.set_result(outcome)

    async def _apply_loop(self) -> None:
        """Deferred mode: apply committed batches right after their 200 was sent."""
        while True:
            events, ids = await self._applier.get()
            while not self._applier.empty() and len(ids) < self.max_batch * 4:
                more_events, more_ids = self._applier.get_nowait()
                events, ids = events + more_events, ids + more_ids
            self._queued_events -= len(ids)
            try:
                async with self.pool.connection(timeout=self.connection_timeout) as conn:
                    await apply_committed(conn, events, ids)
                self.applied += len(ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — rows stay pending; the sweep retries
                log.warning("deferred apply of %d events failed: %s", len(ids), type(exc).__name__)

    async def _sweep_loop(self) -> None:
        """Deferred mode: apply rows left pending (a crash, a failed apply batch)."""
        while True:
            try:
                await self.sweep_pending(older_than_seconds=self.sweep_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — try again next round
                log.warning("pending sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(self.sweep_seconds)

    async def sweep_pending(self, older_than_seconds: float = 0.0, chunk: int = 500) -> int:
        """Apply ``pending`` rows received more than ``older_than_seconds`` ago."""
        done = 0
        while True:
            async with (
                self.pool.connection(timeout=self.connection_timeout) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                # SKIP LOCKED: several receivers (or workers) can sweep at once.
                await cur.execute(
                    "select id, raw_body from meta_webhook_event where status = 'pending' "
                    "and received_at < now() - make_interval(secs => %s) order by id "
                    "limit %s for update skip locked",
                    (older_than_seconds, chunk),
                )
                rows = await cur.fetchall()
                if not rows:
                    return done
                events = [RawEvent.from_request(bytes(raw), {}) for _, raw in rows]
                await apply_stored(conn, cur, events, [row[0] for row in rows])
            done += len(rows)
