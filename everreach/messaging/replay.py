"""Re-apply stored raw webhooks (``everreach webhooks replay`` and the Dagster replay job).

Applying is idempotent, so replaying the whole log — once or twice — changes nothing that
the first application did not already do; replaying ``--failed-only`` picks up bodies that
failed (e.g. a Messenger edit that arrived before its message, or a bug fixed since).
Bodies are applied oldest first, a chunk per transaction (set-based, like the receiver);
a body that fails is redone alone so that only it stays failed.

Progress (events done of the selection, rate, ETA) goes to `log` every few seconds:
stderr by default (the CLI), `context.log.info` in the Dagster job.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import psycopg

from everreach.messaging.webhook_log import APPLY_SESSION_OPTIONS, StoredBody, apply_stored_batch
from everreach.progress import Progress, Sink, stderr_sink

__all__ = ["replay_events", "replay_events_async"]

_SELECTION = (
    "(%(since)s::timestamptz is null or received_at >= %(since)s) "
    "and (not %(failed_only)s or status = 'failed')"
)


async def replay_events_async(
    database_url: str,
    *,
    since: datetime | None = None,
    failed_only: bool = False,
    chunk: int = 200,
    log: Sink | None = stderr_sink,
) -> dict[str, int]:
    """Re-apply stored webhooks; returns counts by resulting status (plus ``replayed``).
    Progress lines go to `log` (None: silent)."""
    counts: Counter[str] = Counter()
    last_id = 0
    selection = {"since": since, "failed_only": failed_only}
    async with await psycopg.AsyncConnection.connect(
        database_url, options=APPLY_SESSION_OPTIONS
    ) as conn:
        # The total as of the start (events arriving meanwhile may add a few).
        cur = await conn.execute(
            f"select count(*) from meta_webhook_event where {_SELECTION}", selection
        )
        (total,) = await cur.fetchone()
        await conn.commit()
        progress = Progress("webhook replay", total=total, unit="events", sink=log)
        if log is not None:
            log(
                f"webhook replay: {total:,} stored event(s) selected"
                + (" (failed only)" if failed_only else "")
                + (f" received since {since.isoformat()}" if since else "")
            )
        while True:
            cur = await conn.execute(
                f"select id, raw_body, received_at from meta_webhook_event "
                f"where id > %(last_id)s and {_SELECTION} order by id limit %(chunk)s",
                {**selection, "last_id": last_id, "chunk": chunk},
            )
            rows = await cur.fetchall()
            await conn.commit()
            if not rows:
                break
            bodies = []
            for event_id, raw, received_at in rows:
                body = StoredBody.from_raw(bytes(raw), received_at)
                body.webhook_event_id = event_id
                bodies.append(body)
            last_id = rows[-1][0]
            for outcome in await apply_stored_batch(conn, bodies):
                counts[outcome.status] += 1
                counts["replayed"] += 1
                progress.advance(note=_status_note(counts))
        if total or counts:
            progress.finish(_status_note(counts))
    return dict(counts)


def _status_note(counts: Counter[str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(counts.items()) if k != "replayed")


def replay_events(
    database_url: str,
    *,
    since: datetime | None = None,
    failed_only: bool = False,
    log: Sink | None = stderr_sink,
) -> dict[str, int]:
    """Synchronous wrapper of :func:`replay_events_async` (CLI, Dagster op)."""
    return asyncio.run(
        replay_events_async(database_url, since=since, failed_only=failed_only, log=log)
    )
