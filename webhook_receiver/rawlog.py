"""The raw webhook log (``meta_webhook_event``) and the group-commit writer.

Design choice — store and apply in the **same transaction**, many webhooks per commit:

* A request walks its verified body once into typed events (:mod:`everreach.messaging`),
  puts it on a queue and waits. A writer task takes everything queued (up to
  ``max_batch``) and, in one transaction and one call (``messaging_apply``), inserts the
  raw rows with their final status, takes the batch's advisory locks and applies every
  body set-based (one statement per table), then commits. Every waiting request answers
  200. One round trip and one WAL flush serve the whole batch, which is what lets the
  receiver approach the no-database request rate while still answering 200 only after the
  event is durable. A writer never waits for a batch to fill: with keep-alive clients
  (Meta, a load generator) two groups of requests settle in, one read and walked in
  Python while the other is applied by Postgres, so both cores work (see
  :class:`EventWriter`). Several writers overlap their batches (and their WAL flushes);
  the up-front locks keep them from deadlocking.
* If any statement fails, the whole transaction rolls back and the batch is redone on the
  slow path: raw rows inserted ``pending``, each body applied alone in a savepoint (see
  :mod:`everreach.messaging.webhook_log`). A body that cannot be applied is stored with
  ``status='failed'`` and the error: it is answered 200 (Meta would retry it forever) and
  ``everreach webhooks replay --failed-only`` re-applies it.
* If the database is unavailable the transaction fails, nothing of the batch is
  committed, and every request of the batch answers 503 so Meta retries it.
* ``deferred`` mode commits only the raw rows before the 200 and applies them right after
  with the same fast/slow paths; at most ``max_queued_events`` wait in memory, the rest
  (and anything a crash left ``pending``) is applied by the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from everreach.messaging.apply import apply_bodies
from everreach.messaging.webhook_log import (
    APPLY_SESSION_OPTIONS,
    Outcome,
    StoredBody,
    apply_each,
    apply_stored_batch,
    one_statement,
    record_outcomes,
    retry_losers,
)

__all__ = [
    "APPLY_SESSION_OPTIONS",
    "EventWriter",
    "Outcome",
    "RawEvent",
    "WriterUnavailable",
    "apply_stored",
    "batch_keys",
    "insert_raw",
    "kept_headers",
    "store_and_apply",
    "store_only",
]

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
_KEPT_RAW = frozenset(name.encode() for name in KEPT_HEADERS)


def kept_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The kept headers of an ASGI request's raw header list (names lower-case, as ASGI
    gives them; the first of repeated headers wins). One pass over the list: looking each
    name up in Starlette's ``Headers`` scans the list once per name."""
    kept: dict[str, str] = {}
    for name, value in raw:
        if name in _KEPT_RAW:
            kept.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return kept


@dataclass
class RawEvent:
    """A verified webhook body waiting to be stored, walked once into events."""

    body: bytes
    signature: str | None
    headers: dict[str, str]
    received_at: datetime
    stored: StoredBody = field(repr=False)

    @classmethod
    def from_request(
        cls, body: bytes, headers: Mapping[str, str], received_at: datetime | None = None
    ) -> RawEvent:
        """Parse and walk the body (a body that is not JSON is still kept, as ``ignored``).
        ``headers``: the request's kept headers (:func:`kept_headers`), stored as given."""
        received_at = received_at or datetime.now(UTC)
        return cls(
            body=body,
            signature=headers.get("x-hub-signature-256"),
            headers=dict(headers),
            received_at=received_at,
            stored=StoredBody.from_raw(body, received_at),
        )

    @property
    def object_type(self) -> str | None:
        """``object`` of the body when it is a short plain string."""
        return self.stored.object_type


def batch_keys(events: list[RawEvent]) -> tuple[set[tuple[str, str, str]], set[str]]:
    """What a batch touches: its conversations, and the advisory locks its events take
    (both derived from the bodies' typed events)."""
    threads: set[tuple[str, str, str]] = set()
    locks: set[str] = set()
    for event in events:
        parsed = event.stored.parsed
        if parsed is None:
            continue
        threads.update((t.platform, t.business_id, t.contact_id) for t in parsed.threads())
        locks.update(parsed.lock_keys())
    return threads, locks


def raw_rows(events: list[RawEvent], *, final: bool) -> list[dict[str, Any]]:
    """The raw rows of ``events`` for ``messaging_apply`` (their bodies go beside the
    document, as ``raw_bodies``: see :func:`raw_bodies`).

    ``final``: with the status the walk gave them (the fast path commits their application
    in the same transaction); otherwise ``pending``, to be applied and recorded.
    """
    rows = []
    for n, e in enumerate(events):
        s = e.stored
        parsed = s.parsed
        rows.append(
            {
                "obj": e.object_type,
                "sha": hashlib.sha256(e.body).hexdigest(),
                "sig": e.signature,
                "headers": e.headers,
                "at": e.received_at,
                "status": s.status if final else "pending",
                "error": s.error if final else None,
                "attempts": 1 if final else 0,
                "entries": parsed.entries if final and parsed is not None else None,
                "items": parsed.items if final and parsed is not None else None,
                "o": n,
            }
        )
    return rows


def raw_bodies(events: list[RawEvent]) -> list[bytes]:
    """The bodies of :func:`raw_rows`, in the same order (sent as a binary ``bytea[]``)."""
    return [e.body for e in events]


async def insert_raw(cur: AsyncCursor, events: list[RawEvent]) -> list[int]:
    """Insert the raw rows as ``pending`` in one statement; their ids, in order."""
    ids = await apply_bodies(
        cur, [], raw=raw_rows(events, final=False), raw_bodies=raw_bodies(events)
    )
    assert ids is not None and len(ids) == len(events)
    return ids


def _bodies(events: list[RawEvent], ids: list[int]) -> list[StoredBody]:
    out = []
    for event, event_id in zip(events, ids, strict=True):
        event.stored.webhook_event_id = event_id
        out.append(event.stored)
    return out


async def apply_stored(
    conn: AsyncConnection, cur: AsyncCursor, events: list[RawEvent], ids: list[int]
) -> list[Outcome]:
    """The slow path: apply stored bodies, each in a savepoint, and record their outcomes."""
    return await apply_each(conn, cur, _bodies(events, ids))


async def store_and_apply(conn: AsyncConnection, events: list[RawEvent]) -> list[Outcome]:
    """Insert raw rows, apply each body, record outcomes — one transaction, one commit.

    Fast path: one statement (raw rows with their final status, the batch's locks, every
    table): on the writer's autocommit connection, one round trip. If it fails, nothing of
    it is committed and the batch is redone with one savepoint per body. A body that lost a
    deadlock is re-applied alone after the batch committed (its raw row is durable by
    then); after a few rounds it is stored as failed.
    """
    ids: list[int] | None = None
    try:
        async with one_statement(conn), conn.cursor() as cur:
            ids = await apply_bodies(
                cur,
                ((e.stored.parsed, n) for n, e in enumerate(events) if e.stored.parsed is not None),
                raw=raw_rows(events, final=True),
                raw_bodies=raw_bodies(events),
            )
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 — redone body by body below
        if conn.broken or conn.closed:
            raise  # the database is gone: 503 for the whole batch
    if ids is not None:
        return [b.outcome() for b in _bodies(events, ids)]
    async with conn.transaction(), conn.cursor() as cur:
        ids = await insert_raw(cur, events)
        outcomes = await apply_stored(conn, cur, events, ids)
    return await retry_losers(conn, _bodies(events, ids), outcomes)


async def apply_committed(
    conn: AsyncConnection, events: list[RawEvent], ids: list[int]
) -> list[Outcome]:
    """Apply bodies whose raw rows are already committed (deferred mode, the sweep)."""
    return await apply_stored_batch(conn, _bodies(events, ids))


async def store_only(conn: AsyncConnection, events: list[RawEvent]) -> list[Outcome]:
    """Insert raw rows as ``pending`` — one statement, one commit (deferred apply)."""
    async with one_statement(conn), conn.cursor() as cur:
        ids = await insert_raw(cur, events)
    return [Outcome(event_id, "pending") for event_id in ids]


class WriterUnavailable(RuntimeError):
    """The writer is stopped (the app is shutting down)."""


class _HeldConnection:
    """A pool connection a writer task keeps, in autocommit mode: no checkout, check or
    BEGIN/COMMIT round trips per batch. Given back (and replaced) when it breaks."""

    def __init__(self, pool: AsyncConnectionPool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.conn: AsyncConnection | None = None

    async def get(self) -> AsyncConnection:
        if self.conn is not None and (self.conn.broken or self.conn.closed):
            await self.release()
        if self.conn is None:
            conn = await self.pool.getconn(timeout=self.timeout)
            try:
                await conn.set_autocommit(True)
            except BaseException:
                await self.pool.putconn(conn)
                raise
            self.conn = conn
        return self.conn

    async def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if not (conn.broken or conn.closed):
            with contextlib.suppress(psycopg.Error):
                await conn.set_autocommit(False)
        await self.pool.putconn(conn)


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
        # Both modes: what a crash left pending (deferred: stored, not applied yet; inline: a
        # body waiting for its deadlock retry) is applied on start and then every sweep.
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
        self._queue.put_nowait((event, fut))  # unbounded: never waits
        return await fut

    async def _run(self) -> None:
        held = _HeldConnection(self.pool, self.connection_timeout)
        try:
            while True:
                batch = [await self._queue.get()]
                # Whatever queued up while the previous commit ran joins this one. No wait
                # for more: a group-commit delay (tried: 1 ms) keeps the requests of the
                # next group out of the loop until it fires, so Python and Postgres take
                # turns instead of working at once (0.18 of the no-database rate instead
                # of 0.29-0.34 on an idle two-core machine; docs/benchmarks.md).
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                live = [(e, f) for e, f in batch if not f.done()]  # skip requests timed out
                if live:
                    await self._write(held, live)
        finally:
            await held.release()

    async def _write(
        self, held: _HeldConnection, live: list[tuple[RawEvent, asyncio.Future[Outcome]]]
    ) -> None:
        try:
            events = [e for e, _ in live]
            conn = await held.get()
            if self.apply_mode == "inline":
                outcomes = await store_and_apply(conn, events)
            else:
                outcomes = await store_only(conn, events)
                if self._queued_events + len(events) <= self.max_queued_events:
                    self._queued_events += len(events)
                    self._applier.put_nowait((events, [o.webhook_event_id for o in outcomes]))
                else:
                    # Applying lags far behind: do not hold more bodies in memory; the rows
                    # are durable and `pending`, the sweep applies them.
                    if not self.left_to_sweep:
                        log.warning(
                            "deferred apply is behind; leaving batches pending for the sweep"
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
            return
        self.batches += 1
        self.stored += len(live)
        for (_, fut), outcome in zip(live, outcomes, strict=True):
            if not fut.done():
                fut.set_result(outcome)

    async def _apply_loop(self) -> None:
        """Deferred mode: apply committed batches right after their 200 was sent."""
        held = _HeldConnection(self.pool, self.connection_timeout)
        try:
            while True:
                events, ids = await self._applier.get()
                while not self._applier.empty() and len(ids) < self.max_batch * 4:
                    more_events, more_ids = self._applier.get_nowait()
                    events, ids = events + more_events, ids + more_ids
                self._queued_events -= len(ids)
                try:
                    await apply_committed(await held.get(), events, ids)
                    self.applied += len(ids)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — rows stay pending; the sweep retries
                    log.warning(
                        "deferred apply of %d events failed: %s", len(ids), type(exc).__name__
                    )
        finally:
            await held.release()

    async def _sweep_loop(self) -> None:
        """Apply rows left pending (a crash, a failed apply batch): at once those received
        before this writer started (none of them is in flight here), then every
        ``sweep_seconds`` those older than that."""
        started = datetime.now(UTC)
        first = True
        while True:
            try:
                if first:
                    swept = await self.sweep_pending(received_before=started)
                    if swept:
                        log.info("applied %d webhooks a previous run left pending", swept)
                else:
                    await self.sweep_pending(older_than_seconds=self.sweep_seconds)
                first = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — try again next round
                log.warning("pending sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(0.5 if first else self.sweep_seconds)

    async def sweep_pending(
        self,
        older_than_seconds: float = 0.0,
        chunk: int = 500,
        received_before: datetime | None = None,
    ) -> int:
        """Apply ``pending`` rows received more than ``older_than_seconds`` ago (or before
        ``received_before``)."""
        done = 0
        while True:
            async with (
                self.pool.connection(timeout=self.connection_timeout) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                # SKIP LOCKED: several receivers (or workers) can sweep at once.
                await cur.execute(
                    "select id, raw_body, received_at from meta_webhook_event "
                    "where status = 'pending' "
                    "and received_at < coalesce(%s, now() - make_interval(secs => %s)) "
                    "order by id limit %s for update skip locked",
                    (received_before, older_than_seconds, chunk),
                )
                rows = await cur.fetchall()
                if not rows:
                    return done
                events = [RawEvent.from_request(bytes(raw), {}, at) for _, raw, at in rows]
                bodies = _bodies(events, [row[0] for row in rows])
                try:
                    async with conn.transaction():  # set-based first, as a savepoint
                        await apply_bodies(
                            cur, [(b.parsed, b.webhook_event_id) for b in bodies if b.parsed]
                        )
                        await record_outcomes(cur, [b.outcome() for b in bodies])
                except (psycopg.Error, ValueError, TypeError) as exc:
                    if conn.broken or isinstance(exc, psycopg.OperationalError):
                        raise
                    await apply_each(conn, cur, bodies)  # body by body, each in a savepoint
            done += len(rows)
