"""Set-based, idempotent loading of `ad_performance` and the `campaign` link.

`replace_ad_performance` replaces account date windows in **one transaction**:

1. create the listed campaigns `campaign` lacks, take a per-account advisory lock and
   `DELETE` each account's window;
2. stream the rows, as the Graph API answers, in chunks: each chunk is `COPY`ed into a
   session temporary table (`_ad_performance_stage`, no indexes, no WAL), then moved with one
   `INSERT … SELECT` (EverReach campaign uuids joined in from `campaign` in SQL; a campaign
   only the rows name gets its `campaign` row first) and the stage is emptied;
3. commit.

The chunks overlap the two halves of the work: while Postgres inserts a chunk (index and
foreign-key maintenance), this process keeps fetching and shaping the next rows in the
read-ahead thread. Memory stays flat whatever the row count (one chunk in the stage, a
bounded read-ahead queue).

Readers keep seeing the old rows until the commit (MVCC). Any failure — an expired token
halfway through the stream, a lost connection, a bad row — rolls the whole transaction
back, so `ad_performance` is left exactly as it was: a day is never half written, and
re-running the same window leaves the same rows. The price of the overlap is that the
transaction (and the deleted rows' locks) stays open while the API streams; writers of the
same account wait on the advisory lock anyway, readers are never blocked. When the caller
already has a transaction open, the load is a savepoint inside it (still atomic).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from everreach.ads.transform import AD_PERFORMANCE_COLUMNS, copy_line


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
    chunks: int = 0
    #: Wall seconds this connection waited for rows (API calls and shaping not yet ahead
    #: of it), and spent in the database (delete, COPY into the stage, INSERT … SELECT).
    source_wait_seconds: float = 0.0
    database_seconds: float = 0.0


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
#: Rows per stage chunk: large enough that the per-chunk statements cost nothing, small
#: enough that Postgres starts inserting early and the temp table stays in memory.
CHUNK_ROWS = 5_000
_COLUMNS = sql.SQL(", ").join(sql.Identifier(c) for c in AD_PERFORMANCE_COLUMNS)
_STAGE = sql.Identifier(STAGE_TABLE)
_STAGE_COPY_SQL = sql.SQL("copy {} ({}) from stdin").format(_STAGE, _COLUMNS)
# The staged rows with the EverReach campaign uuids filled in from `campaign`.
_INSERT_SQL = sql.SQL(
    "insert into ad_performance ({cols}) select {sel} from {stage} s "
    "left join campaign c on c.meta_campaign_id = s.meta_campaign_id"
).format(
    cols=_COLUMNS,
    stage=_STAGE,
    sel=sql.SQL(", ").join(
        sql.SQL("case when s.level = 'campaign' then c.campaign_id end")
        if col == "campaign_id"
        else sql.SQL("c.campaign_id")
        if col == "parent_campaign_id"
        else sql.SQL("s.{}").format(sql.Identifier(col))
        for col in AD_PERFORMANCE_COLUMNS
    ),
)
# Campaigns the staged rows name that `campaign` lacks (created on Meta after the listing).
_LATE_CAMPAIGNS_SQL = sql.SQL(
    """
    select s.meta_campaign_id, min(s.ad_account_id),
           min(s.entity_name) filter (where s.level = 'campaign')
    from {} s
    where s.meta_campaign_id is not null and not exists
          (select 1 from campaign c where c.meta_campaign_id = s.meta_campaign_id)
    group by s.meta_campaign_id
    """
).format(_STAGE)
_CHUNK_STATS_SQL = sql.SQL(
    "select level, ad_account_id, coalesce(account_currency, ''), count(*), "
    "sum(spend) filter (where level = 'account') from {} group by 1, 2, 3"
).format(_STAGE)


def _prepare_stage(cur: psycopg.Cursor) -> None:
    """An empty session temp table with `ad_performance`'s loaded columns (reused)."""
    cur.execute(
        sql.SQL(
            "create temporary table if not exists {} as select {} from ad_performance with no data"
        ).format(_STAGE, _COLUMNS)
    )
    cur.execute(sql.SQL("truncate {}").format(_STAGE))


def _delete_windows(cur: psycopg.Cursor, windows: Sequence[AccountWindow]) -> int:
    # Sorted, so two loads of overlapping account sets cannot deadlock.
    for account_id in sorted({w.account_id for w in windows}):
        cur.execute(
            "select pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key(account_id),)
        )
    if not windows:
        return 0
    cur.execute(
        """
        delete from ad_performance ap
        using unnest(%s::text[], %s::date[], %s::date[]) as w (account, since, until)
        where ap.ad_account_id = w.account and ap.date between w.since and w.until
        """,
        ([w.account_id for w in windows], [w.since for w in windows], [w.until for w in windows]),
    )
    return cur.rowcount


def _copy_chunk(cur: psycopg.Cursor, lines: Iterator[str], limit: int) -> tuple[int, float]:
    """COPY up to `limit` of `lines` (COPY text) into the stage; returns (rows, seconds
    spent waiting on the `lines` iterator)."""
    count = 0
    waited = 0.0
    clock = time.perf_counter
    batch: list[str] = []
    # The socket writes happen in psycopg's writer thread, beside the row shaping.
    with cur.copy(_STAGE_COPY_SQL, writer=QueuedLibpqWriter(cur)) as copy:
        while count < limit:
            started = clock()
            line = next(lines, None)
            waited += clock() - started
            if line is None:
                break
            batch.append(line)
            count += 1
            if len(batch) >= 1000:
                copy.write("".join(batch))
                batch.clear()
        if batch:
            copy.write("".join(batch))
    return count, waited


def _insert_chunk(cur: psycopg.Cursor, stats: LoadStats, campaign_ids: dict[str, str]) -> None:
    """Move the staged chunk into `ad_performance` (creating late campaigns), count it,
    and empty the stage."""
    cur.execute(_LATE_CAMPAIGNS_SQL)
    late = cur.fetchall()
    if late:
        mapping, created = ensure_campaigns(cur, late)
        campaign_ids.update(mapping)
        stats.campaigns_created += created
    cur.execute(_INSERT_SQL)
    stats.rows += cur.rowcount
    cur.execute(_CHUNK_STATS_SQL)
    for level, account, currency, n, spend in cur.fetchall():
        stats.rows_by_level[level] += n
        stats.rows_by_account[account] += n
        if spend is not None:
            total = stats.spend_by_currency.get(currency, Decimal(0))
            stats.spend_by_currency[currency] = total + Decimal(spend)
    cur.execute(sql.SQL("truncate {}").format(_STAGE))
    stats.chunks += 1


def replace_ad_performance(
    conn: psycopg.Connection,
    windows: Sequence[AccountWindow],
    records: Iterable[Sequence] | Iterable[str],
    campaign_ids: dict[str, str],
    *,
    campaigns: Iterable[tuple[str, str, str | None]] = (),
    text: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> LoadStats:
    """Replace `windows` of `ad_performance` with `records`, atomically (module docstring).

    `records` are sequences in `AD_PERFORMANCE_COLUMNS` order (see `transform.to_record`;
    `campaign_id`/`parent_campaign_id` are ignored: they are resolved from
    `meta_campaign_id` in SQL), or with `text=True` ready lines of COPY text format
    (`transform.copy_line`). They are consumed as a stream, `chunk_rows` at a time, so
    memory does not grow with their number; every record must lie in its account's window.
    `campaigns` (meta id, account, name) are ensured in `campaign` and added to
    `campaign_ids`; a Meta campaign that only the rows name (created on Meta after the
    listing) gets its `campaign` row too, named after its campaign-level row.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    stats = LoadStats()
    rows = iter(records)
    lines: Iterator[str] = rows if text else map(copy_line, rows)  # type: ignore[arg-type]
    clock = time.perf_counter
    started = clock()
    try:
        with conn.transaction(), conn.cursor() as cur:
            _prepare_stage(cur)
            mapping, created = ensure_campaigns(cur, campaigns)
            campaign_ids.update(mapping)
            stats.campaigns_created += created
            stats.deleted = _delete_windows(cur, windows)
            while True:
                count, waited = _copy_chunk(cur, lines, chunk_rows)
                stats.source_wait_seconds += waited
                if count:
                    _insert_chunk(cur, stats, campaign_ids)
                if count < chunk_rows:
                    break
    finally:
        close = getattr(rows, "close", None)
        if close is not None:  # stop a read-ahead thread at once, also after a failure
            close()
    stats.database_seconds = clock() - started - stats.source_wait_seconds
    return stats
