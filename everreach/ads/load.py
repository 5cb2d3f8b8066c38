"""Set-based, idempotent loading of `ad_performance` and the `campaign` link.

`replace_ad_performance` runs in ONE transaction: take a per-account advisory lock, delete
every row of each account's date window, then stream the fresh rows with COPY straight into
`ad_performance`. Readers keep seeing the old rows until the commit (MVCC); any failure —
an expired token halfway through, a lost connection — rolls the whole window back, so a day
is never half written. Re-running the same window leaves the same rows.

Why COPY into the target rather than a temp table + INSERT … SELECT: the window is deleted
first, so there is nothing to merge, and a second pass over a million rows (and its index
maintenance) would roughly halve the throughput measured in `bench/bench_ads.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg
from psycopg import sql

from everreach.ads.transform import (
    AD_PERFORMANCE_COLUMNS,
    IDX_CAMPAIGN_ID,
    IDX_ENTITY_NAME,
    IDX_META_CAMPAIGN_ID,
    IDX_PARENT_CAMPAIGN_ID,
    IDX_SPEND,
)

_COPY_SQL = sql.SQL("copy ad_performance ({}) from stdin").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in AD_PERFORMANCE_COLUMNS))
_LEVEL = AD_PERFORMANCE_COLUMNS.index("level")
_ACCOUNT = AD_PERFORMANCE_COLUMNS.index("ad_account_id")
_CURRENCY = AD_PERFORMANCE_COLUMNS.index("account_currency")


@dataclass(frozen=True)
class AccountWindow:
    """The account-local dates of one ad account that a load replaces (inclusive)."""

    account_id: str
    since: date
    until: date


@dataclass
class LoadStats:
    """What one `replace_ad_performance` call wrote."""

    rows: int = 0
    deleted: int = 0
    rows_by_level: Counter[str] = field(default_factory=Counter)
    rows_by_account: Counter[str] = field(default_factory=Counter)
    #: Spend of the account-level rows (the account's total), by currency.
    spend_by_currency: dict[str, Decimal] = field(default_factory=dict)
    campaigns_created: int = 0


def lock_key(account_id: str) -> str:
    """The advisory-lock name serializing loads of one account's `ad_performance` rows."""
    return f"everreach.ad_performance:{account_id}"


def ensure_campaigns(cur: psycopg.Cursor, campaigns: Iterable[tuple[str, str, str | None]],
                     ) -> tuple[dict[str, str], int]:
    """Make sure every `(meta_campaign_id, ad_account_id, name)` has a `campaign` row.

    Missing ones are inserted (source 'meta'); existing ones are left as they are (renames
    are the objects sync's job). Returns the map meta id → EverReach uuid (as text) for the
    given ids and the number of rows created.
    """
    items = {str(mid): (str(acct), name) for mid, acct, name in campaigns}
    if not items:
        return {}, 0
    # Sorted: concurrent runs insert the same keys in the same order, so they cannot deadlock.
    ids = sorted(items)
    cur.execute(
        """
        insert into campaign (name, meta_campaign_id, meta_ad_account_id, source)
        select coalesce(nullif(t.name, ''), 'Meta campaign ' || t.id), t.id, t.account, 'meta'
        from unnest(%s::text[], %s::text[], %s::text[]) as t (id, account, name)
        on conflict (meta_campaign_id) do nothing
        """,
        (ids, [items[i][0] for i in ids], [items[i][1] for i in ids]),
    )
    created = cur.rowcount if cur.rowcount and cur.rowcount > 0 else 0
    cur.execute("select meta_campaign_id, campaign_id::text from campaign "
                "where meta_campaign_id = any(%s)", (ids,))
    return dict(cur.fetchall()), created


def replace_ad_performance(conn: psycopg.Connection, windows: Sequence[AccountWindow],
                           records: Iterable[list], campaign_ids: dict[str, str],
                           *, campaigns: Iterable[tuple[str, str, str | None]] = (),
                           ) -> LoadStats:
    """Replace `windows` of `ad_performance` with `records`, atomically.

    `records` are lists in `AD_PERFORMANCE_COLUMNS` order (see `transform.to_record`),
    consumed as a stream (memory does not grow with their number); every record must lie in
    its account's window. `campaigns` (meta id, account, name) are ensured in `campaign`
    inside the same transaction and added to `campaign_ids`; a record whose Meta campaign is
    still unknown (created on Meta after the listing) is held back, its campaign created,
    and written after the stream. Everything happens inside `conn.transaction()` (a
    savepoint when the caller already has a transaction open).
    """
    stats = LoadStats()
    spend: dict[str, Decimal] = {}
    held_back: list[list] = []
    by_level = stats.rows_by_level
    by_account = stats.rows_by_account
    with conn.transaction(), conn.cursor() as cur:
        mapping, created = ensure_campaigns(cur, campaigns)
        campaign_ids.update(mapping)
        stats.campaigns_created += created
        # Sorted, so two loads of overlapping account sets cannot deadlock.
        for account_id in sorted({w.account_id for w in windows}):
            cur.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        (lock_key(account_id),))
        if windows:
            cur.execute(
                """
                delete from ad_performance ap
                using unnest(%s::text[], %s::date[], %s::date[]) as w (account, since, until)
                where ap.ad_account_id = w.account and ap.date between w.since and w.until
                """,
                ([w.account_id for w in windows], [w.since for w in windows],
                 [w.until for w in windows]),
            )
            stats.deleted = cur.rowcount
        with cur.copy(_COPY_SQL) as copy:
            for rec in records:
                meta_campaign = rec[IDX_META_CAMPAIGN_ID]
                if meta_campaign is not None:
                    uid = campaign_ids.get(meta_campaign)
                    if uid is None:
                        held_back.append(rec)
                        continue
                    rec[IDX_PARENT_CAMPAIGN_ID] = uid
                    if rec[_LEVEL] == "campaign":
                        rec[IDX_CAMPAIGN_ID] = uid
                elif rec[_LEVEL] == "account":
                    cur_code = rec[_CURRENCY] or ""
                    spend[cur_code] = spend.get(cur_code, Decimal(0)) + Decimal(rec[IDX_SPEND])
                copy.write_row(rec)
                by_level[rec[_LEVEL]] += 1
                by_account[rec[_ACCOUNT]] += 1
        if held_back:
            names = {r[IDX_META_CAMPAIGN_ID]: r[IDX_ENTITY_NAME] for r in held_back
                     if r[_LEVEL] == "campaign"}
            late = {(r[IDX_META_CAMPAIGN_ID], r[_ACCOUNT],
                     names.get(r[IDX_META_CAMPAIGN_ID])) for r in held_back}
            mapping, created = ensure_campaigns(cur, late)
            campaign_ids.update(mapping)
            stats.campaigns_created += created
            with cur.copy(_COPY_SQL) as copy:
                for rec in held_back:
                    uid = campaign_ids[rec[IDX_META_CAMPAIGN_ID]]
                    rec[IDX_PARENT_CAMPAIGN_ID] = uid
                    if rec[_LEVEL] == "campaign":
                        rec[IDX_CAMPAIGN_ID] = uid
                    copy.write_row(rec)
                    by_level[rec[_LEVEL]] += 1
                    by_account[rec[_ACCOUNT]] += 1
    stats.rows = sum(by_level.values())
    stats.spend_by_currency = spend
    return stats
