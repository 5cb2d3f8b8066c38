"""Re-apply stored raw webhooks (``everreach webhooks replay`` and the Dagster job).

Applying is idempotent, so replaying the whole log — once or twice — changes nothing
that the first application did not already do; replaying ``--failed-only`` picks up
bodies that failed (e.g. a message edit that arrived before its message, or a bug fixed
since). Each body is applied in its own transaction, oldest first.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import orjson
import psycopg

from webhook_receiver.rawlog import (
    APPLY_SESSION_OPTIONS,
    Outcome,
    apply_in_savepoint,
    record_outcomes,
)

_DEADLOCK_ATTEMPTS = 3  # a replay racing the live receiver can lose a deadlock


async def replay_events_async(
    database_url: str, *, since: datetime | None = None, failed_only: bool = False, chunk: int = 200
) -> dict[str, int]:
    """Re-apply stored webhooks; returns counts by resulting status (plus ``replayed``)."""
    counts: Counter[str] = Counter()
    last_id = 0
    async with await psycopg.AsyncConnection.connect(
        database_url, options=APPLY_SESSION_OPTIONS
    ) as conn:
        while True:
            cur = await conn.execute(
                "select id, raw_body from meta_webhook_event "
                "where id > %s and (%s::timestamptz is null or received_at >= %s) "
                "and (not %s or status = 'failed') order by id limit %s",
                (last_id, since, since, failed_only, chunk),
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
    return dict(counts)


def replay_events(
    database_url: str, *, since: datetime | None = None, failed_only: bool = False
) -> dict[str, int]:
    """Synchronous wrapper of :func:`replay_events_async` (CLI, Dagster op)."""
    return asyncio.run(replay_events_async(database_url, since=since, failed_only=failed_only))
