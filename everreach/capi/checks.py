"""Data-quality checks on the Conversions API's reach, as plain SQL (Dagster asset checks
call these): how much of what happened Meta was told, per pixel, lately vs before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import psycopg

#: The recent period compared, and the period before it it is compared with.
RECENT_DAYS = 7
BEFORE_DAYS = 28


@dataclass(frozen=True)
class CoverageChange:
    """One pixel's CAPI coverage (accepted events / first-party conversions) in the recent
    period and the period before it; a share is None when its period had no conversions."""

    pixel_id: str
    recent: float | None
    before: float | None
    recent_conversions: int
    before_conversions: int

    def dropped_by(self) -> float | None:
        """How many points of coverage the recent period lost (None without both shares)."""
        if self.recent is None or self.before is None:
            return None
        return self.before - self.recent


def coverage_changes(
    conn: psycopg.Connection,
    today: date,
    *,
    recent_days: int = RECENT_DAYS,
    before_days: int = BEFORE_DAYS,
) -> tuple[date, list[CoverageChange]]:
    """The last day compared (today, or the newest day of `marts.meta_vs_first_party_by_pixel`
    when it is older) and, per pixel, coverage over the `recent_days` up to it vs the
    `before_days` before them."""
    newest = conn.execute(
        "select max(event_date) from marts.meta_vs_first_party_by_pixel"
    ).fetchone()[0]
    end = min(today, newest) if newest else today
    recent_start = end - timedelta(days=recent_days - 1)
    before_start = recent_start - timedelta(days=before_days)
    rows = conn.execute(
        """
        select
            pixel_id,
            sum(events_accepted) filter (where event_date >= %(recent)s),
            sum(first_party_conversions) filter (where event_date >= %(recent)s),
            sum(events_accepted) filter (where event_date < %(recent)s),
            sum(first_party_conversions) filter (where event_date < %(recent)s)
        from marts.meta_vs_first_party_by_pixel
        where event_date between %(before)s and %(end)s
        group by pixel_id
        order by pixel_id
        """,
        {"recent": recent_start, "before": before_start, "end": end},
    ).fetchall()

    def share(accepted: Decimal | None, conversions: Decimal | None) -> float | None:
        return float(accepted or 0) / float(conversions) if conversions else None

    return end, [
        CoverageChange(
            pixel_id=pixel,
            recent=share(accepted_recent, conversions_recent),
            before=share(accepted_before, conversions_before),
            recent_conversions=int(conversions_recent or 0),
            before_conversions=int(conversions_before or 0),
        )
        for pixel, accepted_recent, conversions_recent, accepted_before, conversions_before in rows
    ]


__all__ = ["BEFORE_DAYS", "RECENT_DAYS", "CoverageChange", "coverage_changes"]
