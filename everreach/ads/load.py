"""Set-based, idempotent loading of `ad_performance` and the `campaign` link.

`replace_ad_performance` works in two steps:

1. **Stage** (no lock on `ad_performance`): the rows are streamed, page by page as the
   Graph API answers, through `COPY` into a session temporary table
   (`_ad_performance_stage`, no indexes, no WAL). Memory stays flat whatever the row
   count; the network calls happen here, while no row of `ad_performance` is locked.
2. **Replace**, in one short transaction: create any campaign the rows name that
   `campaign` lacks, take a per-account advisory lock, `DELETE` each account's date window,
   `INSERT … SELECT` the staged rows (the EverReach campaign uuids are joined in from
   `campaign` in SQL), commit.

Readers keep seeing the old rows until the commit (MVCC). A failure while staging — an
expired token halfway through, a lost connection — never reaches step 2, so
`ad_performance` is untouched; a failure in step 2 rolls it back. A day is never half
written, and re-running the same window leaves the same rows. When the caller already has
a transaction open, both steps are savepoints inside it (still atomic).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from everreach.ads.transform import AD_PERFORMANCE_COLUMNS


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
    #: Wall seconds of step 1 (streaming the rows into the stage table, API calls included)
    #: and of step 2 (the short delete + insert transaction).
    stage_seconds: float = 0.0
    replace_seconds: float = 0.0


def lock_key(account_id: str) -> str:
    """The advisory-lock name serializing loads of one account's `ad_performance` rows."""
    return f"everreach.ad_performance:{account_id}"


def ensure_campaigns(
    cur: psycopg.Cursor,
    campaigns: Iterable[tuple[str, str, str | None]],
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
    cur.execute(
        "select meta_campaign_id, campaign_id::text from campaign where meta_campaign_id = any(%s)",
        (ids,),
    )
    return dict(cur.fetchall()), created


STAGE_TABLE = "_ad_performance_stage"
_COLUMNS = sql.SQL(", ").join(sql.Identifier(c) for c in AD_PERFORMANCE_COLUMNS)
_STAGE_COPY_SQL = sql.SQL("copy {} ({}) from stdin").format(sql.Identifier(STAGE_TABLE), _COLUMNS)
# The staged rows with the EverReach campaign uuids filled in from `campaign`.
_INSERT_SQL = sql.SQL(
    "insert into ad_performance ({cols}) select {sel} from {stage} s "
    "left join campaign c on c.meta_campaign_id = s.meta_campaign_id"
).format(
    cols=_COLUMNS,
    stage=sql.Identifier(STAGE_TABLE),
    sel=sql.SQL(", ").join(
        sql.SQL("case when s.level = 'campaign' then c.campaign_id end")
        if col == "campaign_id"
        else sql.SQL("c.campaign_id")
        if col == "parent_campaign_id"
        else sql.SQL("s.{}").format(sql.Identifier(col))
        for col in AD_PERFORMANCE_COLUMNS
    ),
)


def _prepare_stage(cur: psycopg.Cursor) -> None:
    """An empty session temp table with `ad_performance`'s loaded columns (reused)."""
    cur.execute(
        sql.SQL(
            "create temporary table if not exists {} as select {} from ad_performance with no data"
        ).format(sql.Identifier(STAGE_TABLE), _COLUMNS)
    )
    cur.execute(sql.SQL("truncate {}").format(sql.Identifier(STAGE_TABLE)))


def stage_records(
    conn: psycopg.Connection, records: Iterable[Sequence] | Iterable[str], *, text: bool = False
) -> int:
    """Step 1: stream `records` through COPY into the session's stage table (emptied first).

    `records` are value sequences, or with `text=True` ready lines of COPY text format
    (`transform.copy_line`), written in batches. Runs in its own (lock-free) transaction
    while the rows arrive; returns the number of rows.
    """
    count = 0
    with conn.transaction(), conn.cursor() as cur:
        _prepare_stage(cur)
        # The socket writes happen in psycopg's writer thread, beside the row shaping.
        with cur.copy(_STAGE_COPY_SQL, writer=QueuedLibpqWriter(cur)) as copy:
            if text:
                batch: list[str] = []
                for line in records:
                    batch.append(line)  # type: ignore[arg-type]
                    if len(batch) >= 1000:
                        copy.write("".join(batch))
                        count += len(batch)
                        batch.clear()
                if batch:
                    copy.write("".join(batch))
                    count += len(batch)
            else:
                write = copy.write_row
                for rec in records:
                    write(rec)
                    count += 1
    return count


def replace_ad_performance(
    conn: psycopg.Connection,
    windows: Sequence[AccountWindow],
    records: Iterable[Sequence],
    campaign_ids: dict[str, str],
    *,
    campaigns: Iterable[tuple[str, str, str | None]] = (),
    text: bool = False,
) -> LoadStats:
    """Replace `windows` of `ad_performance` with `records`, atomically.

    `records` are sequences in `AD_PERFORMANCE_COLUMNS` order (see `transform.to_record`;
    `campaign_id`/`parent_campaign_id` are ignored: they are resolved from
    `meta_campaign_id` in SQL), consumed as a stream into a temporary stage table (memory
    does not grow with their number); every record must lie in its account's window.
    `campaigns` (meta id, account, name) are ensured in `campaign` and added to
    `campaign_ids`; a Meta campaign that only the rows name (created on Meta after the
    listing) gets its `campaign` row too, named after its campaign-level row. Then one
    short transaction deletes the windows and inserts the staged rows (module docstring).
    With `text=True`, `records` are COPY text lines (`transform.copy_line`) instead.
    """
    stats = LoadStats()
    campaigns = list(campaigns)
    started = time.perf_counter()
    stage_records(conn, records, text=text)  # a failure here leaves ad_performance untouched
    stats.stage_seconds = time.perf_counter() - started
    started = time.perf_counter()
    stage = sql.Identifier(STAGE_TABLE)
    try:
        with conn.transaction(), conn.cursor() as cur:
            mapping, created = ensure_campaigns(cur, campaigns)
            campaign_ids.update(mapping)
            stats.campaigns_created += created
            # Campaigns the rows name that `campaign` lacks (sorted: no deadlocks).
            cur.execute(
                sql.SQL(
                    """
                select s.meta_campaign_id, min(s.ad_account_id),
                       min(s.entity_name) filter (where s.level = 'campaign')
                from {} s
                where s.meta_campaign_id is not null and not exists
                      (select 1 from campaign c where c.meta_campaign_id = s.meta_campaign_id)
                group by s.meta_campaign_id
                """
                ).format(stage)
            )
            late = cur.fetchall()
            if late:
                mapping, created = ensure_campaigns(cur, late)
                campaign_ids.update(mapping)
                stats.campaigns_created += created
            # Sorted, so two loads of overlapping account sets cannot deadlock.
            for account_id in sorted({w.account_id for w in windows}):
                cur.execute(
                    "select pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key(account_id),)
                )
            if windows:
                cur.execute(
                    """
                    delete from ad_performance ap
                    using unnest(%s::text[], %s::date[], %s::date[])
                          as w (account, since, until)
                    where ap.ad_account_id = w.account and ap.date between w.since and w.until
                    """,
                    (
                        [w.account_id for w in windows],
                        [w.since for w in windows],
                        [w.until for w in windows],
                    ),
                )
                stats.deleted = cur.rowcount
            cur.execute(_INSERT_SQL)
            stats.rows = cur.rowcount
            cur.execute(
                sql.SQL("select level, ad_account_id, count(*) from {} group by 1, 2").format(stage)
            )
            for level, account, n in cur.fetchall():
                stats.rows_by_level[level] += n
                stats.rows_by_account[account] += n
            cur.execute(
                sql.SQL(
                    "select coalesce(account_currency, ''), sum(spend) from {} "
                    "where level = 'account' group by 1"
                ).format(stage)
            )
            stats.spend_by_currency = {code: Decimal(total) for code, total in cur.fetchall()}
        stats.replace_seconds = time.perf_counter() - started
    finally:
        if not conn.closed and conn.info.transaction_status in (
            psycopg.pq.TransactionStatus.IDLE,
            psycopg.pq.TransactionStatus.INTRANS,
        ):
            with conn.transaction():  # free the temp space (a savepoint inside a caller's)
                conn.execute(sql.SQL("truncate {}").format(stage))
    return stats
