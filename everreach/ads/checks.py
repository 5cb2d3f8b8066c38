"""Data-quality checks on `ad_performance`, as plain SQL (Dagster asset checks call these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg


@dataclass(frozen=True)
class SpendMismatch:
    """An account-day whose ad-level spend does not add up to its account-level spend."""

    ad_account_id: str
    date: date
    account_spend: Decimal
    ad_spend: Decimal
    ad_rows: int


def duplicate_grain_keys(conn: psycopg.Connection, since: date, until: date) -> int:
    """Grain keys (account, level, entity, date) present more than once in the window."""
    row = conn.execute(
        """
        select count(*) from (
            select 1 from ad_performance where date between %s and %s
            group by ad_account_id, level, entity_id, date having count(*) > 1
        ) d
        """,
        (since, until),
    ).fetchone()
    return int(row[0]) if row else 0


def negative_spend_rows(conn: psycopg.Connection, since: date, until: date) -> int:
    """Rows with spend below zero in the window."""
    row = conn.execute(
        "select count(*) from ad_performance where date between %s and %s and spend < 0",
        (since, until),
    ).fetchone()
    return int(row[0]) if row else 0


def ad_vs_account_spend(conn: psycopg.Connection, since: date, until: date) -> list[SpendMismatch]:
    """Account-days where the sum of ad-level spend differs from account-level spend by more
    than rounding: Meta rounds each row to the cent, so n ad rows may drift n × half a cent
    (plus one cent for the account row)."""
    rows = conn.execute(
        """
        with ad as (
            select ad_account_id, date, sum(spend) as spend, count(*) as n
            from ad_performance where level = 'ad' and date between %(s)s and %(u)s
            group by 1, 2
        ), acct as (
            select ad_account_id, date, sum(spend) as spend
            from ad_performance where level = 'account' and date between %(s)s and %(u)s
            group by 1, 2
        )
        select coalesce(acct.ad_account_id, ad.ad_account_id), coalesce(acct.date, ad.date),
               coalesce(acct.spend, 0), coalesce(ad.spend, 0), coalesce(ad.n, 0)
        from acct full join ad using (ad_account_id, date)
        where abs(coalesce(acct.spend, 0) - coalesce(ad.spend, 0))
              > 0.01 + 0.005 * coalesce(ad.n, 0)
        order by 1, 2
        """,
        {"s": since, "u": until},
    ).fetchall()
    return [SpendMismatch(*r) for r in rows]


def top_campaigns(conn: psycopg.Connection, since: date, until: date, limit: int = 10) -> list:
    """The window's campaigns with the most spend: (account, campaign name, currency, spend,
    impressions, conversions, conversion value)."""
    return conn.execute(
        """
        select ad_account_id, entity_name, account_currency, sum(spend), sum(impressions),
               sum(conversions), sum(conversion_value)
        from ad_performance where level = 'campaign' and date between %s and %s
        group by 1, 2, 3 order by 4 desc limit %s
        """,
        (since, until, limit),
    ).fetchall()


def campaign_spend_by_day(conn: psycopg.Connection, since: date, until: date) -> list[tuple]:
    """(currency, date, spend, conversion value) of the window's campaign-level rows."""
    return conn.execute(
        """
        select coalesce(account_currency, '?'), date, sum(spend), sum(conversion_value)
        from ad_performance where level = 'campaign' and date between %s and %s
        group by 1, 2 order by 1, 2
        """,
        (since, until),
    ).fetchall()
