"""The ads insights sync without Dagster: accounts → Graph API pulls → `ad_performance`.

`sync_ad_performance` reads every configured ad account's insights for a range of
account-local dates at the four levels (reach and frequency are not additive, so each level
is fetched rather than summed), including deleted and archived objects, streams them into a
temporary table and then replaces that range in `ad_performance` in one short transaction
(see `everreach.ads.load`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from everreach.ads.load import CHUNK_ROWS, AccountWindow, LoadStats, replace_ad_performance
from everreach.ads.settings import AdsSettings, normalize_account_id
from everreach.ads.transform import (
    LEVEL_FIELDS,
    LEVELS,
    AccountContext,
    ConversionRule,
    copy_line,
    to_record,
)
from everreach.meta import GraphClient
from everreach.meta.client import relaxed_gc
from everreach.meta.throttle import ScopeUsage
from everreach.parallel import map_each
from everreach.read_ahead import read_ahead
from everreach.settings import named_token

#: effective_status values Meta accepts in a filter, per object level. Filtering on all of
#: them is what makes Meta include DELETED and ARCHIVED objects (and keep their spend).
CAMPAIGN_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "IN_PROCESS", "WITH_ISSUES"]
ADSET_STATUSES = CAMPAIGN_STATUSES + ["CAMPAIGN_PAUSED"]
AD_STATUSES = ADSET_STATUSES + [
    "ADSET_PAUSED",
    "DISAPPROVED",
    "PENDING_REVIEW",
    "PREAPPROVED",
    "PENDING_BILLING_INFO",
]
STATUS_FILTER: dict[str, tuple[str, list[str]]] = {
    "account": ("ad.effective_status", AD_STATUSES),
    "campaign": ("campaign.effective_status", CAMPAIGN_STATUSES),
    "adset": ("adset.effective_status", ADSET_STATUSES),
    "ad": ("ad.effective_status", AD_STATUSES),
}
ACCOUNT_FIELDS = "account_id,name,currency,timezone_name,account_status"


#: Progress callback: (ad account id, level — None for a skipped account —, rows fetched).
StepCallback = Callable[[str, str | None, int], None]


@dataclass(frozen=True)
class AdAccount:
    """An ad account to sync and where its token comes from."""

    account_id: str  # without act_
    token_env_var: str | None = None

    @property
    def node_id(self) -> str:
        """The Graph node id (`act_<id>`)."""
        return f"act_{self.account_id}"


@dataclass(frozen=True)
class AccountInfo:
    """An ad account as Meta describes it."""

    account_id: str
    name: str | None
    currency: str | None
    timezone: str | None
    account_status: int | None

    def local_today(self, now: datetime | None = None) -> date:
        """Today in the account's time zone (UTC when Meta gave none)."""
        now = now or datetime.now(UTC)
        try:
            tz = ZoneInfo(self.timezone) if self.timezone else UTC
        except (ZoneInfoNotFoundError, ValueError):
            tz = UTC
        return now.astimezone(tz).date()


@dataclass
class SyncResult:
    """What a sync did: per-account info and windows, load stats, API usage."""

    accounts: list[AccountInfo] = field(default_factory=list)
    windows: list[AccountWindow] = field(default_factory=list)
    load: LoadStats = field(default_factory=LoadStats)
    api: dict[str, float] = field(default_factory=dict)
    #: Usage Meta reported per account (peak percent, throttling errors, waits).
    usage: dict[str, ScopeUsage] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows written."""
        return self.load.rows

    @property
    def spend_by_currency(self) -> dict[str, Decimal]:
        """Account-level spend written, by currency."""
        return self.load.spend_by_currency


def configured_accounts(conn: psycopg.Connection, settings: AdsSettings) -> list[AdAccount]:
    """Enabled `meta_platform_config` ad accounts, plus `META_AD_ACCOUNT_IDS` (deduplicated)."""
    rows = conn.execute(
        "select external_id, token_env_var from meta_platform_config "
        "where platform = 'ad_account' and enabled order by id"
    ).fetchall()
    found: dict[str, AdAccount] = {}
    for external_id, token_env_var in rows:
        account_id = normalize_account_id(external_id, "meta_platform_config.external_id")
        found.setdefault(account_id, AdAccount(account_id, token_env_var))
    for account_id in settings.account_ids:
        found.setdefault(account_id, AdAccount(account_id))
    return list(found.values())


def account_token(account: AdAccount, env: Mapping[str, str] | None = None) -> str | None:
    """The account's own token (from the variable `token_env_var` names), or None for the
    client's default token. A named but unset variable is a setting error."""
    return named_token(account.token_env_var, f"ad account act_{account.account_id}", env)


def fetch_account_info(client: GraphClient, account: AdAccount, token: str | None) -> AccountInfo:
    """Name, currency, time zone and status of an ad account."""
    body = client.get(account.node_id, {"fields": ACCOUNT_FIELDS}, token=token)
    status = body.get("account_status")
    return AccountInfo(
        account.account_id,
        body.get("name"),
        body.get("currency"),
        body.get("timezone_name"),
        int(status) if status is not None else None,
    )


def account_window(
    info: AccountInfo, since: date, until: date, now: datetime | None = None
) -> AccountWindow | None:
    """`since..until` cut at the account's local today (never ask about its future)."""
    until = min(until, info.local_today(now))
    if until < since:
        return None
    return AccountWindow(info.account_id, since, until)


def insights_params(
    level: str, since: date, until: date, settings: AdsSettings, limit: int
) -> dict[str, Any]:
    """The insights request of one level: daily rows, every status, all windows."""
    field_name, statuses = STATUS_FILTER[level]
    return {
        "level": level,
        "fields": ",".join(LEVEL_FIELDS[level]),
        "time_range": {"since": since.isoformat(), "until": until.isoformat()},
        "time_increment": 1,
        "action_attribution_windows": list(settings.requested_windows),
        "filtering": [{"field": field_name, "operator": "IN", "value": statuses}],
        "limit": limit,
    }


def list_campaigns(
    client: GraphClient, account: AdAccount, token: str | None
) -> Iterator[tuple[str, str, str | None]]:
    """(meta campaign id, account id, name) of every campaign, deleted/archived included."""
    for row in client.paginate(
        f"{account.node_id}/campaigns",
        {"fields": "id,name", "effective_status": CAMPAIGN_STATUSES, "limit": 500},
        token=token,
    ):
        yield str(row["id"]), account.account_id, row.get("name")


def sync_ad_performance(
    client: GraphClient,
    conn: psycopg.Connection,
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
) -> SyncResult:
    """Replace `since..until` (account-local dates) of `ad_performance` for `accounts`.

    Every account's token and description are checked before anything is written, so a
    bad token fails fast; a failure during the stream leaves `ad_performance` untouched. An
    account without delivery, a paused account, or days without data give zero rows.

    Up to `parallel_accounts` accounts are read at once, each by one worker that runs its
    four levels one after another through a client scoped to the account (so a throttled
    account pauses alone while the others go on); their rows interleave into the one
    COPY stream, so the load stays a single transaction. With 1, accounts are read one
    after another, in order.

    `log` gets a line per account × level fetched; `on_step` (for progress) is called after
    each of them, and once with level None for an account whose window is skipped. Both
    are called from the worker threads.
    """
    log = log or (lambda _msg: None)
    step = on_step or (lambda _account, _level, _rows: None)
    rule = ConversionRule.of(settings.conversion_action_types, settings.attribution_windows)
    result = SyncResult()
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
            step(account.account_id, None, 0)
            continue
        plan.append((account, token, info, window))
    result.windows = [w for *_, w in plan]
    listed = map_each(
        lambda entry: list(list_campaigns(clients[entry[0].account_id], entry[0], entry[1])),
        plan,
        workers=parallel_accounts,
    )
    campaigns = [c for per_account in listed for c in per_account]

    def account_lines(
        account: AdAccount, token: str | None, info: AccountInfo, window: AccountWindow
    ) -> Iterator[str]:
        # Runs in the account's worker thread: fetch, parse and shape into COPY text there,
        # so the rows keep coming while Postgres inserts the previous chunk.
        account_client = clients[account.account_id]
        context = AccountContext(info.account_id, info.currency, info.timezone)
        for level in LEVELS:
            params = insights_params(level, window.since, window.until, settings, page_limit)
            count = 0
            for row in account_client.insights(account.node_id, params, token=token):
                count += 1
                yield copy_line(to_record(row, level, context, rule, window.since, window.until))
            log(f"act_{account.account_id} {level}: {count} rows ({window.since}..{window.until})")
            step(account.account_id, level, count)

    sources = [functools.partial(account_lines, *entry) for entry in plan]
    # Read ahead about a stage chunk of shaped rows (a few MB of COPY text), so a chunk's
    # INSERT … SELECT never stalls the API stream.
    depth = max(4, CHUNK_ROWS // page_limit)
    # Millions of short-lived row dicts: collect cycles less often while they stream.
    with relaxed_gc():
        result.load = replace_ad_performance(
            conn,
            result.windows,
            read_ahead(
                sources, workers=parallel_accounts, batch=page_limit, depth=depth, name="ads"
            ),
            {},
            campaigns=campaigns,
            text=True,
        )
    result.api = client.metrics.as_dict()
    usage = client.throttle.usage()
    result.usage = {a.account_id: usage[a.node_id] for a in accounts if a.node_id in usage}
    return result


def plan_window(
    partition_start: date,
    partition_end: date,
    lookback_days: int,
) -> tuple[date, date]:
    """The dates a run re-reads: its partitions plus `lookback_days` before the first."""
    return partition_start - timedelta(days=lookback_days), partition_end


__all__ = [
    "AccountInfo",
    "AdAccount",
    "StepCallback",
    "SyncResult",
    "account_token",
    "account_window",
    "configured_accounts",
    "fetch_account_info",
    "insights_params",
    "list_campaigns",
    "plan_window",
    "sync_ad_performance",
]
