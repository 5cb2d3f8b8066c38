"""Ad objects (campaigns, ad sets, ads) into `meta_ad_campaign` / `meta_ad_set` / `meta_ad`,
and Meta campaigns into EverReach's `campaign` table.

Objects are listed with every effective_status (Meta hides DELETED and ARCHIVED ones by
default), staged with COPY into temporary tables and merged with one
`INSERT … ON CONFLICT DO UPDATE` per table, all in one transaction. Objects that vanish
from Meta are kept: their historical spend still points at them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg import sql

from everreach.ads.sync import (
    AD_STATUSES,
    ADSET_STATUSES,
    CAMPAIGN_STATUSES,
    AccountInfo,
    AdAccount,
    account_token,
    fetch_account_info,
)
from everreach.meta import GraphClient
from everreach.parallel import map_each
from everreach.read_ahead import read_ahead
from everreach.warehouse.bulk import copy_rows, create_temp_like

#: Currencies whose Meta "offset" is 1 (no minor unit): budgets come in whole units.
#: Every other currency's budgets come in cents (offset 100).
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"}
)

OBJECT_FIELDS: dict[str, str] = {
    "campaign": "id,name,status,effective_status,objective,daily_budget,lifetime_budget,"
    "created_time,updated_time,account_id",
    "adset": "id,name,status,effective_status,daily_budget,lifetime_budget,created_time,"
    "updated_time,campaign_id,account_id",
    "ad": "id,name,status,effective_status,created_time,updated_time,campaign_id,adset_id,"
    "account_id,creative",
}
_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # kind: (table, key column, columns)
    "campaign": (
        "meta_ad_campaign",
        "campaign_id",
        (
            "campaign_id",
            "ad_account_id",
            "name",
            "status",
            "effective_status",
            "objective",
            "daily_budget",
            "lifetime_budget",
            "created_time",
            "updated_time",
            "raw",
        ),
    ),
    "adset": (
        "meta_ad_set",
        "adset_id",
        (
            "adset_id",
            "ad_account_id",
            "campaign_id",
            "name",
            "status",
            "effective_status",
            "daily_budget",
            "lifetime_budget",
            "created_time",
            "updated_time",
            "raw",
        ),
    ),
    "ad": (
        "meta_ad",
        "ad_id",
        (
            "ad_id",
            "ad_account_id",
            "campaign_id",
            "adset_id",
            "name",
            "status",
            "effective_status",
            "created_time",
            "updated_time",
            "creative_id",
            "raw",
        ),
    ),
}
_STATUSES = {"campaign": CAMPAIGN_STATUSES, "adset": ADSET_STATUSES, "ad": AD_STATUSES}


@dataclass
class ObjectsResult:
    """Counts of one objects sync."""

    accounts: list[AccountInfo] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    campaigns_created: int = 0
    campaigns_renamed: int = 0
    api: dict[str, float] = field(default_factory=dict)


def budget(value: Any, currency: str | None) -> Decimal | None:
    """A Meta budget (minor units of the account currency, as a string) in major units."""
    if value in (None, "", "0"):
        return None if value in (None, "") else Decimal(0)
    amount = Decimal(str(value))
    return amount if (currency or "").upper() in ZERO_DECIMAL_CURRENCIES else amount / 100


def object_row(kind: str, obj: Mapping[str, Any], account_id: str, currency: str | None) -> tuple:
    """One raw-table row (in the table's column order) from a listed Meta object."""
    raw = orjson.dumps(obj).decode()
    common = (obj.get("name"), obj.get("status"), obj.get("effective_status"))
    times = (obj.get("created_time"), obj.get("updated_time"))
    if kind == "campaign":
        return (
            str(obj["id"]),
            account_id,
            *common,
            obj.get("objective"),
            budget(obj.get("daily_budget"), currency),
            budget(obj.get("lifetime_budget"), currency),
            *times,
            raw,
        )
    if kind == "adset":
        return (
            str(obj["id"]),
            account_id,
            str(obj["campaign_id"]),
            *common,
            budget(obj.get("daily_budget"), currency),
            budget(obj.get("lifetime_budget"), currency),
            *times,
            raw,
        )
    creative = obj.get("creative")
    return (
        str(obj["id"]),
        account_id,
        str(obj["campaign_id"]),
        str(obj["adset_id"]),
        *common,
        *times,
        str(creative["id"]) if isinstance(creative, dict) and creative.get("id") else None,
        raw,
    )


def _merge(cur: psycopg.Cursor, kind: str, rows: Iterable[tuple]) -> int:
    table, key, columns = _TABLES[kind]
    temp = f"stage_{table}"
    create_temp_like(cur, temp, table, columns)
    count = copy_rows(cur, temp, columns, rows)
    updates = sql.SQL(", ").join(
        sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in columns if c != key
    )
    cur.execute(
        sql.SQL(
            "insert into {table} ({cols}) select distinct on ({key}) {cols} from {temp} "
            "order by {key} on conflict ({key}) do update set {updates}, synced_at = now()"
        ).format(
            table=sql.Identifier(table),
            temp=sql.Identifier(temp),
            key=sql.Identifier(key),
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            updates=updates,
        )
    )
    return count


def upsert_meta_campaigns(cur: psycopg.Cursor, account_ids: Sequence[str]) -> tuple[int, int]:
    """Mirror `meta_ad_campaign` of `account_ids` into `campaign`: new → inserted, renamed →
    updated. Returns (inserted, updated)."""
    cur.execute(
        """
        insert into campaign (name, meta_campaign_id, meta_ad_account_id, source)
        select coalesce(nullif(m.name, ''), 'Meta campaign ' || m.campaign_id),
               m.campaign_id, m.ad_account_id, 'meta'
        from meta_ad_campaign m
        where m.ad_account_id = any(%s)
        on conflict (meta_campaign_id) do update
            set name = excluded.name, meta_ad_account_id = excluded.meta_ad_account_id,
                updated_at = now()
            where campaign.name is distinct from excluded.name
               or campaign.meta_ad_account_id is distinct from excluded.meta_ad_account_id
        returning (xmax = 0) as inserted
        """,
        (list(account_ids),),
    )
    flags = [r[0] for r in cur.fetchall()]
    inserted = sum(1 for f in flags if f)
    return inserted, len(flags) - inserted


def sync_ad_objects(
    client: GraphClient,
    conn: psycopg.Connection,
    accounts: Sequence[AdAccount],
    *,
    env: Mapping[str, str] | None = None,
    parallel_accounts: int = 1,
) -> ObjectsResult:
    """List every campaign, ad set and ad of `accounts` and merge them in one transaction.

    Up to `parallel_accounts` accounts are listed at once, each through a client scoped to
    the account (see `sync_ad_performance`)."""
    result = ObjectsResult()
    tokens = [account_token(account, env) for account in accounts]
    clients = [client.scoped(account.node_id) for account in accounts]
    infos = map_each(
        lambda i: fetch_account_info(clients[i], accounts[i], tokens[i]),
        range(len(accounts)),
        workers=parallel_accounts,
    )
    result.accounts.extend(infos)
    plan = list(zip(accounts, tokens, infos, clients, strict=True))

    def account_objects(
        kind: str, account: AdAccount, token: str | None, info: AccountInfo, scoped: GraphClient
    ) -> Iterator[tuple]:
        for obj in scoped.paginate(
            f"{account.node_id}/{kind}s",
            {"fields": OBJECT_FIELDS[kind], "effective_status": _STATUSES[kind], "limit": 500},
            token=token,
        ):
            yield object_row(kind, obj, account.account_id, info.currency)

    def listed(kind: str) -> Iterable[tuple]:
        sources = [functools.partial(account_objects, kind, *entry) for entry in plan]
        return read_ahead(sources, workers=parallel_accounts, name=f"ad-{kind}s")

    with conn.transaction(), conn.cursor() as cur:
        for kind in ("campaign", "adset", "ad"):
            result.rows[kind] = _merge(cur, kind, listed(kind))
        inserted, renamed = upsert_meta_campaigns(cur, [a.account_id for a, *_ in plan])
        result.campaigns_created, result.campaigns_renamed = inserted, renamed
    result.api = client.metrics.as_dict()
    return result
