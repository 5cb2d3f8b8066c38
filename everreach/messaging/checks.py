"""Health of the raw webhook log, as plain SQL (the Dagster asset and its checks call these):
counts by status, what stayed unapplied too long, and the last 24 hours hour by hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

_LOG_STATS = """
select
    count(*),
    count(*) filter (where status = 'applied'),
    count(*) filter (where status = 'failed'),
    count(*) filter (where status = 'pending'),
    count(*) filter (where status = 'ignored'),
    count(*) filter (where status in ('pending', 'failed') and received_at < %s),
    min(received_at) filter (where status in ('pending', 'failed')),
    max(received_at)
from meta_webhook_event
"""

# Per hour since the start (received_at index): events, and the p50 / p99 of
# applied_at − received_at in seconds over the applied ones. The null-hour row (grouping
# set ()) carries the totals.
_HOURLY = """
select
    date_trunc('hour', received_at) as hour,
    count(*),
    percentile_cont(0.5) within group (order by extract(epoch from applied_at - received_at))
        filter (where applied_at is not null),
    percentile_cont(0.99) within group (order by extract(epoch from applied_at - received_at))
        filter (where applied_at is not null)
from meta_webhook_event
where received_at >= %s
group by grouping sets ((date_trunc('hour', received_at)), ())
order by 1 nulls last
"""


@dataclass(frozen=True)
class HourOfWebhooks:
    """One hour of the log: events received, and the apply lag p50/p99 (seconds) of the
    applied ones (None when none was applied)."""

    hour: datetime
    events: int
    lag_p50: float | None
    lag_p99: float | None


@dataclass(frozen=True)
class WebhookLogStats:
    """The log at a glance; `stale` counts events failed or pending since before the cutoff."""

    total: int
    applied: int
    failed: int
    pending: int
    ignored: int
    stale: int
    oldest_unapplied: datetime | None
    newest_received: datetime | None
    hours: list[HourOfWebhooks]
    lag_p50: float | None
    lag_p99: float | None


def webhook_log_stats(
    conn: psycopg.Connection, now: datetime, *, unapplied_after: timedelta, hours: int = 24
) -> WebhookLogStats:
    """Counts by status, events unapplied for longer than `unapplied_after`, and the last
    `hours` hours per hour with the apply lag over the whole period."""
    row = conn.execute(_LOG_STATS, (now - unapplied_after,)).fetchone()
    hourly = conn.execute(_HOURLY, (now - timedelta(hours=hours),)).fetchall()
    totals = [r for r in hourly if r[0] is None]
    p50, p99 = (totals[0][2], totals[0][3]) if totals else (None, None)
    total, applied, failed, pending, ignored, stale, oldest, newest = row
    return WebhookLogStats(
        total=total,
        applied=applied,
        failed=failed,
        pending=pending,
        ignored=ignored,
        stale=stale,
        oldest_unapplied=oldest,
        newest_received=newest,
        hours=[
            HourOfWebhooks(h, n, None if a is None else float(a), None if b is None else float(b))
            for h, n, a, b in hourly
            if h is not None
        ],
        lag_p50=None if p50 is None else float(p50),
        lag_p99=None if p99 is None else float(p99),
    )


__all__ = ["HourOfWebhooks", "WebhookLogStats", "webhook_log_stats"]
