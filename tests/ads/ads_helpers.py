"""Helpers for the ads tests: Dagster resources against the sandbox, and an independent
reader of what the sandbox holds (plain HTTP, not the project's client)."""

from __future__ import annotations

import json
from datetime import date

import httpx
import psycopg

from everreach.meta import GraphClient
from everreach.sandbox.testing import RunningSandbox
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

TOKEN = "ads-test-token"
ALL_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "CAMPAIGN_PAUSED", "ADSET_PAUSED"]
#: Columns compared between runs (everything but the surrogate id and fetched_at).
SNAPSHOT_COLUMNS = (
    "date, ad_account_id, level, entity_id, entity_name, campaign_id, parent_campaign_id, "
    "meta_campaign_id, meta_adset_id, meta_ad_id, account_currency, account_timezone, spend, "
    "impressions, reach, frequency, clicks, link_clicks, ctr, cpc, cpm, actions, "
    "action_values, conversions, conversion_value"
)
SMALL = {
    "accounts": 3,
    "campaigns_per_account": 2,
    "adsets_per_campaign": 2,
    "ads_per_adset": 2,
    "days": 40,
    "async_polls_to_complete": 1,
}


def account_ids(handle: RunningSandbox) -> list[str]:
    """The sandbox's ad account ids (without act_), in creation order."""
    return list(handle.sandbox.domains["ads"].accounts)


def client_for(handle: RunningSandbox, **kwargs: object) -> GraphClient:
    """A GraphClient against the sandbox with test-speed polling, backoff and slow-down
    (the sandbox reports 100 % usage during a throttle burst)."""
    return GraphClient(
        TOKEN,
        base_url=handle.base_url,
        poll_interval=0.01,
        backoff_base=0.001,
        backoff_max=0.01,
        throttle_slowdown_max=0.01,
        **kwargs,
    )  # type: ignore[arg-type]


def resources_for(
    handle: RunningSandbox, database_url: str, token: str = TOKEN
) -> dict[str, object]:
    """Dagster resources bound to the test database and the sandbox."""
    return {
        "warehouse": WarehouseResource(database_url=database_url),
        "meta": MetaGraphResource(access_token=token, base_url=handle.base_url, poll_interval=0.01),
    }


def configure_accounts(
    db: psycopg.Connection, ids: list[str], token_env_vars: dict[str, str] | None = None
) -> None:
    """Rows in meta_platform_config for `ids` (with an optional per-account token variable)."""
    for account_id in ids:
        db.execute(
            "insert into meta_platform_config (platform, external_id, token_env_var) "
            "values ('ad_account', %s, %s)",
            (account_id, (token_env_vars or {}).get(account_id)),
        )


def snapshot(db: psycopg.Connection) -> list[tuple]:
    """The whole of ad_performance, ordered, without id and fetched_at."""
    return db.execute(
        f"select {SNAPSHOT_COLUMNS} from ad_performance "
        "order by ad_account_id, level, entity_id, date"
    ).fetchall()


def sandbox_rows(
    handle: RunningSandbox, account_id: str, level: str, since: date, until: date
) -> list[dict]:
    """What the sandbox reports for one level and range, read with plain synchronous GETs."""
    field = {"account": "ad", "campaign": "campaign", "adset": "adset", "ad": "ad"}[level]
    params = {
        "access_token": TOKEN,
        "level": level,
        "time_increment": "1",
        "limit": "1000",
        "fields": "account_id,campaign_id,campaign_name,adset_id,ad_id,spend,impressions,"
        "reach,clicks,inline_link_clicks,actions,action_values,account_currency",
        "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}),
        "action_attribution_windows": json.dumps(["1d_click", "7d_click", "28d_click", "1d_view"]),
        "filtering": json.dumps(
            [{"field": f"{field}.effective_status", "operator": "IN", "value": ALL_STATUSES}]
        ),
    }
    url = handle.url(f"act_{account_id}/insights")
    rows: list[dict] = []
    with httpx.Client(timeout=30) as http:
        resp = http.get(url, params=params)
        while True:
            resp.raise_for_status()
            body = resp.json()
            rows.extend(body["data"])
            nxt = body.get("paging", {}).get("next")
            if not nxt:
                return rows
            resp = http.get(nxt)


def entity_of(level: str, row: dict) -> str:
    """The Meta id a sandbox row is about at `level`."""
    return row["account_id"] if level == "account" else row[f"{level}_id"]
