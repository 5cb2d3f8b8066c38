"""Ads insights broken down by audience, geography and placement, and actions by destination.

One *family* per Meta breakdown request that Meta serves (`FAMILIES`): age × gender,
country, region, and publisher platform × platform position × impression device, plus the
action family (`ACTIONS`: action_type × action_target_id × action_destination). Each family
has its own table with the breakdown values as typed key columns (see migration 0006 for
why), is read at ad level (coarser levels are sums in dbt, reach excepted), and is replaced
window by window like `ad_performance`:

1. per account: `GET act_<id>` (currency, time zone) — a bad token fails before anything
   is written; the window is cut at the account's local today;
2. one transaction: a per-table, per-account advisory lock, `DELETE` of the windows, then
   the rows `COPY`'d straight into the table as the Graph API answers (fetched, parsed and
   shaped into COPY text in a read-ahead thread while Postgres writes the previous batch);
3. commit. Readers see the old rows until then; any failure (expired token halfway, a bad
   row, a lost connection) rolls back and leaves the table as it was.

Meta's rules the requests follow: only valid breakdown combinations are requested (the
families are fixed, each one of Meta's documented combinations), deleted and archived ads are
included through a filter on every effective status, and reach is stored as Meta reports it
per breakdown value — it is not additive and the marts never sum it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from everreach.ads.load import AccountWindow
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import (
    AD_STATUSES,
    AccountInfo,
    AdAccount,
    account_token,
    account_window,
    fetch_account_info,
)
from everreach.ads.transform import ConversionRule, InsightRowError, _day, _decimal, copy_line
from everreach.meta import GraphClient
from everreach.meta.client import relaxed_gc
from everreach.parallel import map_each
from everreach.read_ahead import read_ahead

#: Columns every breakdown family table has before its breakdown columns…
_HEAD = ("date", "ad_account_id", "ad_id", "adset_id", "campaign_id")
#: …and after them.
_TAIL = (
    "account_currency",
    "spend",
    "impressions",
    "reach",
    "clicks",
    "link_clicks",
    "actions",
    "action_values",
    "conversions",
    "conversion_value",
)
_INSIGHT_FIELDS = (
    "ad_id,adset_id,campaign_id,account_currency,spend,impressions,reach,clicks,"
    "inline_link_clicks,actions,action_values"
)


@dataclass(frozen=True)
class Family:
    """One breakdown request Meta serves, and the table its rows go to."""

    name: str  # asset name suffix, e.g. "age_gender"
    table: str
    breakdowns: tuple[str, ...] = ()  # Meta's breakdowns = the table's breakdown columns
    action_breakdowns: tuple[str, ...] = ()  # non-empty for the action family
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's loaded columns, in COPY order."""
        if self.action_breakdowns:
            return ACTION_COLUMNS
        return (*_HEAD, *self.breakdowns, *_TAIL)

    @property
    def key(self) -> tuple[str, ...]:
        """The table's grain (its primary key)."""
        if self.action_breakdowns:
            return ("ad_account_id", "date", "ad_id", *self.action_breakdowns)
        return ("ad_account_id", "date", "ad_id", *self.breakdowns)


FAMILIES: tuple[Family, ...] = (
    Family(
        "age_gender",
        "ad_insights_age_gender",
        ("age", "gender"),
        description="Daily ad-level insights by age bracket and gender.",
    ),
    Family(
        "country",
        "ad_insights_country",
        ("country",),
        description="Daily ad-level insights by country of the person reached.",
    ),
    Family(
        "region",
        "ad_insights_region",
        ("region",),
        description="Daily ad-level insights by region; Meta leaves web (pixel) conversions "
        "out of region rows.",
    ),
    Family(
        "placement",
        "ad_insights_placement",
        ("publisher_platform", "platform_position", "impression_device"),
        description="Daily ad-level insights by placement: publisher platform × position × "
        "impression device.",
    ),
)
ACTIONS = Family(
    "actions",
    "ad_insights_actions",
    action_breakdowns=("action_type", "action_target_id", "action_destination"),
    description="Daily ad-level actions by action type, target id and destination (the "
    "pixel or Page an action is tied to, where Meta gives it), with their values per "
    "attribution window.",
)
ALL_FAMILIES: tuple[Family, ...] = (*FAMILIES, ACTIONS)
ACTION_WINDOWS = ("1d_click", "7d_click", "28d_click", "1d_view")
ACTION_COLUMNS: tuple[str, ...] = (
    *_HEAD,
    "action_type",
    "action_target_id",
    "action_destination",
    "account_currency",
    "value",
    *(f"value_{w}" for w in ACTION_WINDOWS),
    "money",
    *(f"money_{w}" for w in ACTION_WINDOWS),
    "is_conversion",
    "conversions",
    "conversion_value",
)

#: Progress callback: (ad account id, rows fetched — None for a skipped account).
StepCallback = Callable[[str, int | None], None]


def family_named(name: str) -> Family:
    """The family called `name` (an asset name suffix)."""
    for family in ALL_FAMILIES:
        if family.name == name:
            return family
    raise KeyError(name)


def request_params(
    family: Family, since: date, until: date, settings: AdsSettings, limit: int
) -> dict[str, Any]:
    """The insights request of one family: ad level, daily, every ad status, all windows."""
    params: dict[str, Any] = {
        "level": "ad",
        "time_range": {"since": since.isoformat(), "until": until.isoformat()},
        "time_increment": 1,
        "action_attribution_windows": list(settings.requested_windows),
        "filtering": [{"field": "ad.effective_status", "operator": "IN", "value": AD_STATUSES}],
        "limit": limit,
    }
    if family.action_breakdowns:
        params["fields"] = "ad_id,adset_id,campaign_id,account_currency,actions,action_values"
        params["action_breakdowns"] = list(family.action_breakdowns)
    else:
        params["fields"] = _INSIGHT_FIELDS
        params["breakdowns"] = list(family.breakdowns)
    return params


def _ids_and_day(row: Mapping[str, Any], since: date, until: date) -> tuple[date, str, str, str]:
    day = row.get("date_start")
    if type(day) is not str or row.get("date_stop", day) != day:
        raise InsightRowError(f"insights row is not daily: {day!r}..{row.get('date_stop')!r}")
    row_date = _day(day)
    if not since <= row_date <= until:
        raise InsightRowError(f"insights row for {day} outside the requested {since}..{until}")
    ids = (row.get("ad_id"), row.get("adset_id"), row.get("campaign_id"))
    if not all(ids):
        raise InsightRowError(f"ad-level insights row without its ids: {dict(row)!r}")
    return row_date, str(ids[0]), str(ids[1]), str(ids[2])


def to_records(
    family: Family,
    row: Mapping[str, Any],
    account: AccountInfo,
    rule: ConversionRule,
    since: date,
    until: date,
) -> list[list[Any]]:
    """The table rows (in `family.columns` order) of one Meta insights row.

    A breakdown family gives one record per row; the action family one per entry of the
    row's `actions` (with the matching `action_values` entry's money). Raises
    `InsightRowError` for a row outside the window, without its ids or breakdown values.
    """
    row_date, ad_id, adset_id, campaign_id = _ids_and_day(row, since, until)
    currency = row.get("account_currency") or account.currency
    head = [row_date, account.account_id, ad_id, adset_id, campaign_id]
    if family.action_breakdowns:
        return _action_records(row, head, currency, rule)
    values = []
    for name in family.breakdowns:
        value = row.get(name)
        if value is None or value == "":
            raise InsightRowError(f"{family.name} row without its {name}: {dict(row)!r}")
        values.append(str(value))
    actions = row.get("actions")
    action_values = row.get("action_values")
    return [
        [
            *head,
            *values,
            currency,
            row.get("spend") or "0",
            row.get("impressions") or "0",
            row.get("reach"),
            row.get("clicks") or "0",
            row.get("inline_link_clicks") or "0",
            _json(actions),
            _json(action_values),
            rule.total(actions),
            rule.total(action_values),
        ]
    ]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if value else "[]"


def _entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(entry.get("action_type") or ""),
        str(entry.get("action_target_id") or ""),
        str(entry.get("action_destination") or ""),
    )


def _action_records(
    row: Mapping[str, Any], head: list[Any], currency: str | None, rule: ConversionRule
) -> list[list[Any]]:
    money = {_entry_key(e): e for e in row.get("action_values") or [] if isinstance(e, dict)}
    out: list[list[Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for entry in row.get("actions") or []:
        if not isinstance(entry, dict):
            continue
        key = _entry_key(entry)
        if not key[0]:
            raise InsightRowError(f"action entry without action_type: {entry!r}")
        if key in seen:  # one entry per key is Meta's shape; a repeat would double count
            raise InsightRowError(f"repeated action entry {key!r} in one row")
        seen.add(key)
        valued = money.get(key, {})
        # The same rule as ad_performance.conversions, entry by entry: the rows add up to it.
        conversion = key[0] in rule.action_types
        out.append(
            [
                *head,
                *key,
                currency,
                _decimal(entry.get("value")),
                *(_optional(entry.get(w)) for w in ACTION_WINDOWS),
                _optional(valued.get("value")),
                *(_optional(valued.get(w)) for w in ACTION_WINDOWS),
                conversion,
                rule.total([entry]) if conversion else Decimal(0),
                rule.total([valued]) if conversion and valued else Decimal(0),
            ]
        )
    return out


def _optional(value: Any) -> Decimal | None:
    return None if value is None or value == "" else _decimal(value)


# --------------------------------------------------------------------------- loading
@dataclass
class FamilyLoad:
    """What one family's load wrote."""

    family: str
    rows: int = 0
    deleted: int = 0
    rows_by_account: dict[str, int] = field(default_factory=dict)
    spend_by_currency: dict[str, Decimal] = field(default_factory=dict)


def lock_key(table: str, account_id: str) -> str:
    """The advisory-lock name serializing loads of one account's rows of `table`."""
    return f"everreach.{table}:{account_id}"


def replace_family(
    conn: psycopg.Connection,
    family: Family,
    windows: Sequence[AccountWindow],
    lines: Iterator[str],
) -> FamilyLoad:
    """Replace `windows` of the family's table with `lines` (COPY text), atomically.

    The lines are consumed as a stream (memory stays flat) and COPY'd straight into the
    table inside the transaction that deleted the windows; every line must lie in its
    account's window.
    """
    load = FamilyLoad(family.name)
    table = sql.Identifier(family.table)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in family.columns)
    try:
        with conn.transaction(), conn.cursor() as cur:
            # Sorted: two loads of overlapping account sets take the locks in one order.
            for account_id in sorted({w.account_id for w in windows}):
                cur.execute(
                    "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    (lock_key(family.table, account_id),),
                )
            if windows:
                cur.execute(
                    sql.SQL(
                        "delete from {} t using unnest(%s::text[], %s::date[], %s::date[]) "
                        "as w (account, since, until) "
                        "where t.ad_account_id = w.account and t.date between w.since and w.until"
                    ).format(table),
                    (
                        [w.account_id for w in windows],
                        [w.since for w in windows],
                        [w.until for w in windows],
                    ),
                )
                load.deleted = cur.rowcount
            copy_sql = sql.SQL("copy {} ({}) from stdin").format(table, columns)
            with cur.copy(copy_sql, writer=QueuedLibpqWriter(cur)) as copy:
                batch: list[str] = []
                for line in lines:
                    batch.append(line)
                    if len(batch) >= 1000:
                        copy.write("".join(batch))
                        batch.clear()
                if batch:
                    copy.write("".join(batch))
            _count(cur, family, windows, load)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:  # stop a read-ahead thread at once, also after a failure
            close()
    return load


def _count(
    cur: psycopg.Cursor, family: Family, windows: Sequence[AccountWindow], load: FamilyLoad
) -> None:
    if not windows:
        return
    # the action family's money is its conversion value
    spend = sql.SQL("sum(conversion_value)" if family.action_breakdowns else "sum(spend)")
    cur.execute(
        sql.SQL(
            "select t.ad_account_id, coalesce(t.account_currency, ''), count(*), {} from {} t "
            "join unnest(%s::text[], %s::date[], %s::date[]) as w (account, since, until) "
            "on t.ad_account_id = w.account and t.date between w.since and w.until "
            "group by 1, 2"
        ).format(spend, sql.Identifier(family.table)),
        ([w.account_id for w in windows], [w.since for w in windows], [w.until for w in windows]),
    )
    for account, currency, n, total in cur.fetchall():
        load.rows += n
        load.rows_by_account[account] = load.rows_by_account.get(account, 0) + n
        load.spend_by_currency[currency] = load.spend_by_currency.get(currency, Decimal(0)) + (
            total or Decimal(0)
        )


# --------------------------------------------------------------------------- sync
@dataclass
class BreakdownResult:
    """What one family's sync did: accounts, windows, the load, API usage."""

    family: str
    accounts: list[AccountInfo] = field(default_factory=list)
    windows: list[AccountWindow] = field(default_factory=list)
    load: FamilyLoad | None = None
    api: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows written."""
        return self.load.rows if self.load else 0


def sync_family(
    client: GraphClient,
    conn: psycopg.Connection,
    family: Family,
    accounts: Sequence[AdAccount],
    since: date,
    until: date,
    settings: AdsSettings,
    *,
    env: Mapping[str, str] | None = None,
    page_limit: int = 500,
    now: datetime | None = None,
    log: Callable[[str], None] | None = None,
    on_step: StepCallback | None = None,
    parallel_accounts: int = 1,
) -> BreakdownResult:
    """Replace `since..until` (account-local dates) of the family's table for `accounts`.

    Tokens and accounts are checked before anything is written; a failure during the
    stream leaves the table untouched. Up to `parallel_accounts` accounts are read at once,
    each through a client scoped to the account (a throttled account pauses alone), their
    rows interleaving into the one COPY, as in `sync_ad_performance`. `log` gets a line per
    account, `on_step` (progress) is called after each account (with None for one whose
    window is skipped); both are called from the worker threads.
    """
    log = log or (lambda _msg: None)
    step = on_step or (lambda _account, _rows: None)
    rule = ConversionRule.of(settings.conversion_action_types, settings.attribution_windows)
    result = BreakdownResult(family.name)
    tokens = [account_token(account, env) for account in accounts]
    clients = {a.account_id: client.scoped(a.node_id) for a in accounts}
    infos = map_each(
        lambda i: fetch_account_info(clients[accounts[i].account_id], accounts[i], tokens[i]),
        range(len(accounts)),
        workers=parallel_accounts,
    )
    plan: list[tuple[AdAccount, str | None, AccountInfo, AccountWindow]] = []
    for account, token, info in zip(accounts, tokens, infos, strict=True):
        result.accounts.append(info)
        window = account_window(info, since, until, now)
        if window is None:
            log(f"act_{account.account_id}: {since}..{until} is after its local today; skipped")
            step(account.account_id, None)
            continue
        plan.append((account, token, info, window))
    result.windows = [w for *_, w in plan]

    def account_lines(
        account: AdAccount, token: str | None, info: AccountInfo, window: AccountWindow
    ) -> Iterator[str]:
        # Runs in the account's worker thread: fetch, parse and shape into COPY text there,
        # while Postgres writes what came before.
        params = request_params(family, window.since, window.until, settings, page_limit)
        count = 0
        for row in clients[account.account_id].insights(account.node_id, params, token=token):
            for record in to_records(family, row, info, rule, window.since, window.until):
                count += 1
                yield copy_line(record)
        log(
            f"act_{account.account_id} {family.name}: {count} rows ({window.since}..{window.until})"
        )
        step(account.account_id, count)

    sources = [functools.partial(account_lines, *entry) for entry in plan]
    with relaxed_gc():
        result.load = replace_family(
            conn,
            family,
            result.windows,
            read_ahead(
                sources, workers=parallel_accounts, batch=page_limit, depth=8, name=family.name
            ),
        )
    result.api = client.metrics.as_dict()
    return result


# --------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Mismatch:
    """An ad and day whose breakdown rows do not add up to its `ad_performance` row."""

    ad_account_id: str
    date: date
    ad_id: str
    metric: str
    breakdown: Decimal
    unbroken: Decimal


def mismatches_with_ad_performance(
    conn: psycopg.Connection, family: Family, since: date, until: date, limit: int = 20
) -> list[Mismatch]:
    """Ad-days in `since..until` where the family's spend, impressions and clicks (for the
    action family: its conversions) differ from the ad-level `ad_performance` row.

    Only account-days the family table holds are compared: each table is replaced by its
    own asset, and the two may not have synced the same days yet.
    """
    table = sql.Identifier(family.table)
    if family.action_breakdowns:
        metrics: tuple[str, ...] = ("conversions",)
        sums = sql.SQL("sum(conversions) as conversions")
    else:
        metrics = ("spend", "impressions", "clicks")
        sums = sql.SQL(
            "sum(spend) as spend, sum(impressions) as impressions, sum(clicks) as clicks"
        )
    query = sql.SQL(
        """
        with b as (
            select ad_account_id, date, ad_id, {sums}
            from {table} where date between %(since)s and %(until)s group by 1, 2, 3
        ),
        days as (select distinct ad_account_id, date from b),
        p as (
            select ap.ad_account_id, ap.date, ap.entity_id as ad_id, ap.spend, ap.impressions,
                   coalesce(ap.clicks, 0) as clicks, ap.conversions
            from ad_performance ap join days using (ad_account_id, date)
            where ap.level = 'ad'
        )
        select ad_account_id, date, ad_id, {pairs}
        from b full join p using (ad_account_id, date, ad_id)
        where {differ}
        order by 1, 2, 3
        limit %(limit)s
        """
    ).format(
        sums=sums,
        table=table,
        pairs=sql.SQL(", ").join(
            sql.SQL("coalesce(b.{m}, 0), coalesce(p.{m}, 0)").format(m=sql.Identifier(m))
            for m in metrics
        ),
        differ=sql.SQL(" or ").join(
            sql.SQL("coalesce(b.{m}, 0) <> coalesce(p.{m}, 0)").format(m=sql.Identifier(m))
            for m in metrics
        ),
    )
    out: list[Mismatch] = []
    params = {"since": since, "until": until, "limit": limit}
    for account, day, ad_id, *values in conn.execute(query, params).fetchall():
        for i, metric in enumerate(metrics):
            got, want = Decimal(values[2 * i]), Decimal(values[2 * i + 1])
            if got != want:
                out.append(Mismatch(account, day, ad_id, metric, got, want))
    return out


__all__ = [
    "ACTIONS",
    "ACTION_COLUMNS",
    "ALL_FAMILIES",
    "BreakdownResult",
    "FAMILIES",
    "Family",
    "FamilyLoad",
    "Mismatch",
    "family_named",
    "mismatches_with_ad_performance",
    "replace_family",
    "request_params",
    "sync_family",
    "to_records",
]
