"""Applying stored webhooks (``meta_webhook_event``) and recording each body's outcome.

The receiver, its deferred applier and sweep, ``everreach webhooks replay`` and the Dagster
replay job all apply bodies through :func:`apply_stored_batch`:

* **fast path** (almost every batch): one transaction in psycopg pipeline mode — the batch's
  advisory locks, one statement per table (:mod:`everreach.messaging.apply`), the outcomes,
  the commit — a single round trip;
* **slow path**, when any statement failed: the transaction rolls back and every body is
  applied alone in its own savepoint, so only a body that cannot be applied is kept as
  ``failed`` with its error;
* a body that lost a deadlock (or a lock wait) is re-applied alone in a fresh transaction
  after its batch committed, a few times, then kept as failed for replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection, AsyncCursor

from everreach.messaging.apply import apply_bodies
from everreach.messaging.model import ParsedBody
from everreach.messaging.parse import IgnoredBody, parse_body

__all__ = [
    "APPLY_SESSION_OPTIONS",
    "Outcome",
    "StoredBody",
    "apply_each",
    "apply_stored_batch",
    "one_statement",
    "record_outcomes",
]

log = logging.getLogger(__name__)

#: Session options for every connection that applies webhooks: a lock wait longer than
#: this fails (and the body is retried) instead of stalling a batch.
APPLY_SESSION_OPTIONS = "-c lock_timeout=5s"
DEADLOCK_RETRIES = 3
_CONCURRENCY_ERRORS = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.LockNotAvailable,
)


@dataclass
class Outcome:
    """What happened to one stored body."""

    webhook_event_id: int
    status: str  # applied | failed | ignored | pending | retry (lost a deadlock)
    error: str | None = None
    entries: int | None = None
    events: int | None = None


@dataclass
class StoredBody:
    """A webhook body read once: its events, or why it cannot be applied."""

    parsed: ParsedBody | None
    status: str  # applied (parsed: ready to apply) | failed | ignored
    error: str | None = None
    webhook_event_id: int | None = None
    #: The body's ``object`` when it is a short plain string (page, instagram, …).
    object_type: str | None = None

    @classmethod
    def read(
        cls, body: Any, received_at: datetime, *, parse_error: str | None = None
    ) -> StoredBody:
        """Walk a decoded body once (``parse_error``: it was not JSON at all)."""
        if parse_error is not None:
            return cls(None, "ignored", parse_error)
        obj = body.get("object") if isinstance(body, dict) else None
        obj = obj if isinstance(obj, str) and len(obj) <= 64 and "\x00" not in obj else None
        try:
            return cls(parse_body(body, received_at), "applied", object_type=obj)
        except IgnoredBody as exc:
            return cls(None, "ignored", str(exc), object_type=obj)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            return cls(None, "failed", describe(exc), object_type=obj)

    @classmethod
    def from_raw(cls, raw: bytes, received_at: datetime) -> StoredBody:
        """Decode and walk stored raw bytes."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return cls.read(None, received_at, parse_error="body is not valid JSON")
        return cls.read(body, received_at)

    def outcome(self, status: str | None = None, error: str | None = None) -> Outcome:
        """This body's outcome (``status`` overrides the walk's)."""
        assert self.webhook_event_id is not None
        return Outcome(
            self.webhook_event_id,
            status or self.status,
            error if status is not None else self.error,
            self.parsed.entries if self.parsed is not None else None,
            self.parsed.items if self.parsed is not None else None,
        )


def describe(exc: BaseException) -> str:
    """An error as stored with a failed body (never logged at info: it may quote content)."""
    if isinstance(exc, psycopg.Error):
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"{type(exc).__name__} ({exc.sqlstate}): {first[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


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
    if not outcomes:
        return
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


async def apply_each(
    conn: AsyncConnection, cur: AsyncCursor, bodies: list[StoredBody]
) -> list[Outcome]:
    """The slow path: every body alone in a savepoint; outcomes recorded in one statement.

    Outcome ``retry`` means the body lost a deadlock: retrying inside the same transaction
    would meet the same cycle (its earlier locks are still held), so the caller retries it
    in a fresh transaction.
    """
    outcomes = [await apply_one(conn, cur, body) for body in bodies]
    await record_outcomes(cur, outcomes)
    return outcomes


async def apply_one(conn: AsyncConnection, cur: AsyncCursor, body: StoredBody) -> Outcome:
    """Apply one body inside a savepoint: a failure undoes only this body."""
    if body.parsed is None:
        return body.outcome()
    try:
        async with conn.transaction():
            await apply_bodies(cur, [(body.parsed, body.webhook_event_id)])
        return body.outcome()
    except _CONCURRENCY_ERRORS as exc:
        return body.outcome("retry", f"concurrency: {exc.sqlstate}")
    except psycopg.OperationalError as exc:
        if conn.broken or conn.closed:
            raise  # the database is gone: the whole batch fails (→ 5xx, Meta retries)
        # e.g. a program limit (54xxx) hit by this body's content: not availability.
        return body.outcome("failed", describe(exc))
    except (psycopg.Error, ValueError, TypeError, OverflowError) as exc:
        # Not the database's availability: this body cannot be applied as it is.
        return body.outcome("failed", describe(exc))


async def retry_losers(
    conn: AsyncConnection, bodies: list[StoredBody], outcomes: list[Outcome]
) -> list[Outcome]:
    """Re-apply, each alone in a fresh transaction, the bodies that lost a deadlock."""
    for round_ in range(DEADLOCK_RETRIES):
        retry = [n for n, o in enumerate(outcomes) if o.status == "retry"]
        if not retry:
            break
        log.info("re-applying %d bodies after a deadlock (round %d)", len(retry), round_ + 1)
        for n in retry:
            async with conn.transaction(), conn.cursor() as cur:
                outcomes[n] = (await apply_each(conn, cur, [bodies[n]]))[0]
    for n, outcome in enumerate(outcomes):
        if outcome.status == "retry":
            outcomes[n] = Outcome(outcome.webhook_event_id, "failed", outcome.error)
            async with conn.transaction(), conn.cursor() as cur:
                await record_outcomes(cur, [outcomes[n]])
    return outcomes


def outcome_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Outcomes as ``messaging_apply``'s ``outcomes`` section."""
    return [
        {
            "id": o.webhook_event_id,
            "status": "pending" if o.status == "retry" else o.status,
            "error": o.error,
            "entries": o.entries,
            "items": o.events,
        }
        for o in outcomes
    ]


async def apply_stored_batch(conn: AsyncConnection, bodies: list[StoredBody]) -> list[Outcome]:
    """Apply bodies whose raw rows are committed and record their outcomes: one statement
    (one transaction, one round trip on an autocommit connection), then body by body when
    it failed."""
    outcomes = [b.outcome() for b in bodies]
    try:
        async with one_statement(conn), conn.cursor() as cur:
            await apply_bodies(
                cur,
                [(b.parsed, b.webhook_event_id) for b in bodies if b.parsed is not None],
                outcomes=outcome_rows(outcomes),
            )
        return outcomes
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 — redone body by body below
        if conn.broken or conn.closed:
            raise
    async with conn.transaction(), conn.cursor() as cur:
        outcomes = await apply_each(conn, cur, bodies)
    return await retry_losers(conn, bodies, outcomes)


@contextlib.asynccontextmanager
async def one_statement(conn: AsyncConnection) -> AsyncIterator[None]:
    """A transaction for one statement: the statement's own on an autocommit connection
    (no BEGIN/COMMIT round trips), an explicit one otherwise."""
    if conn.autocommit:
        yield
    else:
        async with conn.transaction():
            yield
