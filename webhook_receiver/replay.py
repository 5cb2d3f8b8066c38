"""Re-apply stored raw webhooks (``everreach webhooks replay`` and the Dagster job).

Applying is idempotent, so replaying the whole log — once or twice — changes nothing
that the first application did not already do; replaying ``--failed-only`` picks up
bodies that failed (e.g. a message edit that arrived before its message, or a bug fixed
since). Each body is applied in its own transaction, oldest first.

Progress (events done of the selection, rate, ETA) goes to `log` every few seconds:
stderr by default (the CLI), `context.log.info` in the Dagster job.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import orjson
import psycopg

from everreach.progress import Progress, Sink, stderr_sink
from webhook_receiver.rawlog import (
    APPLY_SESSION_OPTIONS,
    Outcome,
    apply_in_savepoint,
    record_outcomes,
)

_DEADLOCK_ATTEMPTS = 3  # a replay racing the live receiver can lose a deadlock
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
                f"select id, raw_body from meta_webhook_event where id > %(last_id)s "
                f"and {_SELECTION} order by id limit %(chunk)s",
                {**selection, "last_id": last_id, "chunk": chunk},
            )
            rows = await cur.fetchall()
            await conn.commit()
            if not rows:
                break
            for event_id, raw in rows:
                last_id = event_id
                for attempt in range(_DEADLOCK_ATTEMPTS):
                    async with conn.transaction(), conn.cursor() as cur2:
                        try:
                            parsed = orjson.loads(bytes(raw))
                        except orjson.JSONDecodeError:
                            outcome = Outcome(event_id, "ignored", "body is not valid JSON")
                        else:
                            outcome = await apply_in_savepoint(conn, cur2, parsed, event_id)
                        if outcome.status == "retry" and attempt == _DEADLOCK_ATTEMPTS - 1:
                            outcome = Outcome(event_id, "failed", outcome.error)
                        await record_outcomes(cur2, [outcome])
                    if outcome.status != "retry":
                        break
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
