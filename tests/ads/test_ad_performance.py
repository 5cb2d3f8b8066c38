"""`ad_performance` end to end: Dagster assets → real HTTP sandbox → real Postgres."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from ads_helpers import (
    SMALL,
    account_ids,
    client_for,
    configure_accounts,
    entity_of,
    resources_for,
    sandbox_rows,
    snapshot,
)
from dagster import DagsterInstance, materialize

from everreach.ads.settings import AdsSettings
from everreach.ads.sync import AdAccount, sync_ad_performance
from everreach.meta import TokenInvalidError
from everreach.sandbox.testing import RunningSandbox, running_sandbox
from everreach_pipelines.defs.ads.assets import ad_objects, ad_performance

LEVELS = ("account", "campaign", "adset", "ad")
YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def _run(
    handle: RunningSandbox,
    database_url: str,
    partition: date,
    *,
    token: str = "ads-test-token",
    objects: bool = True,
    raise_on_error: bool = True,
):
    assets = [ad_objects, ad_performance] if objects else [ad_performance]
    return materialize(
        assets,
        resources=resources_for(handle, database_url, token),
        partition_key=partition.isoformat(),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def _expected(handle: RunningSandbox, ids: list[str], since: date, until: date) -> dict:
    """(account, level, entity, date) → (spend, impressions, reach) as the sandbox reports."""
    out = {}
    for account_id in ids:
        for level in LEVELS:
            for row in sandbox_rows(handle, account_id, level, since, until):
                key = (
                    account_id,
                    level,
                    entity_of(level, row),
                    date.fromisoformat(row["date_start"]),
                )
                out[key] = (Decimal(row["spend"]), int(row["impressions"]), int(row["reach"]))
    return out


def _stored(db: psycopg.Connection) -> dict:
    rows = db.execute(
        "select ad_account_id, level, entity_id, date, spend, impressions, reach "
        "from ad_performance"
    ).fetchall()
    return {(a, lv, e, d): (s, i, r) for a, lv, e, d, s, i, r in rows}


def test_partition_materializes_exactly_the_sandbox_rows_and_rerun_changes_nothing(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "3")
    ids = account_ids(ads_sandbox)
    configure_accounts(db, ids)
    partition = YESTERDAY - timedelta(days=1)
    result = _run(ads_sandbox, database_url, partition)
    assert result.success
    expected = _expected(ads_sandbox, ids, partition - timedelta(days=3), partition)
    assert expected, "the sandbox delivers in this window"
    assert _stored(db) == expected
    # The disabled third account has no delivery: zero rows, no error.
    assert not [k for k in expected if k[0] == ids[2]]
    # Metadata and checks come out of the materialization itself.
    mat = result.asset_materializations_for_node("ad_performance")[0]
    assert mat.metadata["rows"].value == len(expected)
    assert mat.metadata["accounts"].value == 3
    assert mat.metadata["api_calls"].value > 0
    assert "| account | campaign |" in mat.metadata["preview"].value
    account_spend = sum(v[0] for k, v in expected.items() if k[1] == "account")
    assert Decimal(str(mat.metadata["spend_total"].value)) == account_spend
    assert all(c.passed for c in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == 3
    # Every campaign/adset/ad row resolves to an EverReach campaign; campaign rows carry it.
    assert (
        db.execute(
            "select count(*) from ad_performance ap left join campaign c "
            "on c.campaign_id = ap.parent_campaign_id where ap.level <> 'account' "
            "and c.meta_campaign_id is distinct from ap.meta_campaign_id"
        ).fetchone()[0]
        == 0
    )
    assert (
        db.execute(
            "select count(*) from ad_performance where level = 'campaign' "
            "and campaign_id is distinct from parent_campaign_id"
        ).fetchone()[0]
        == 0
    )

    before = snapshot(db)
    assert _run(ads_sandbox, database_url, partition, objects=False).success
    assert snapshot(db) == before


def test_deleted_and_archived_ads_keep_their_spend(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "5")
    ids = account_ids(ads_sandbox)
    configure_accounts(db, ids)
    assert _run(ads_sandbox, database_url, YESTERDAY).success
    state = ads_sandbox.sandbox.domains["ads"]
    hidden = [
        ad["id"]
        for acct in state.accounts.values()
        if acct.delivering
        for ad in acct.ads
        if ad["effective_status"] in ("DELETED", "ARCHIVED")
    ]
    assert hidden, "seed 7 has deleted/archived ads"
    spend = db.execute(
        "select sum(spend) from ad_performance where level = 'ad' and entity_id = any(%s)",
        (hidden,),
    ).fetchone()[0]
    assert spend and spend > 0
    assert db.execute(
        "select count(*) from meta_ad where effective_status in ('DELETED', 'ARCHIVED')"
    ).fetchone()[0] >= len(hidden)


def test_revised_day_inside_lookback_is_replaced_outside_is_kept(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "2")
    ids = account_ids(ads_sandbox)[:2]
    configure_accounts(db, ids)
    p1 = YESTERDAY - timedelta(days=6)
    assert _run(ads_sandbox, database_url, p1).success  # window p1-2 .. p1
    before = _stored(db)
    conv_q = (
        "select ad_account_id, level, entity_id, date, conversions from ad_performance "
        "where date = %s"
    )
    inside_before = db.execute(conv_q, (p1 - timedelta(days=1),)).fetchall()
    # Meta keeps attributing conversions to recent days: move the sandbox two days on.
    ads_sandbox.sandbox.advance(days=2)
    p2 = p1 + timedelta(days=1)
    assert _run(ads_sandbox, database_url, p2, objects=False).success  # window p1-1 .. p2
    after = _stored(db)
    outside = p1 - timedelta(days=2)
    revised = _expected(ads_sandbox, ids, p1 - timedelta(days=1), p2)
    for key, value in revised.items():
        assert after[key] == value
    kept = {k: v for k, v in before.items() if k[3] == outside}
    assert kept and all(after[k] == v for k, v in kept.items())
    # The day outside the window really was revised on the sandbox: we kept the old numbers.
    conv_before = db.execute(
        "select sum(conversions) from ad_performance where level = 'account' and date = %s",
        (outside,),
    ).fetchone()[0]
    now_on_sandbox = sum(
        Decimal(a.get("7d_click", "0")) + Decimal(a.get("1d_view", "0"))
        for acc in ids
        for r in sandbox_rows(ads_sandbox, acc, "account", outside, outside)
        for a in r.get("actions", [])
        if a["action_type"] == "omni_purchase"
    )
    assert now_on_sandbox > conv_before
    # Inside the window the revised conversions replaced the old ones.
    inside_after = db.execute(conv_q, (p1 - timedelta(days=1),)).fetchall()
    assert len(inside_after) == len(inside_before)
    assert sum(r[4] for r in inside_after) > sum(r[4] for r in inside_before)


def test_transient_faults_give_the_same_table(db: psycopg.Connection) -> None:
    settings = AdsSettings(lookback_days=3)
    since, until = YESTERDAY - timedelta(days=4), YESTERDAY
    with running_sandbox(**SMALL) as clean:
        ids = account_ids(clean)
        sync_ad_performance(
            client_for(clean), db, [AdAccount(i) for i in ids], since, until, settings
        )
    fault_free = snapshot(db)
    db.execute("truncate ad_performance")
    faults = {
        "error_rate": {2: 0.15, 613: 0.05, 80000: 0.05},
        "async_fail_once": True,
        "throttle_burst_every": 25,
        "throttle_burst_length": 2,
        "throttle_regain_minutes": 0,
    }
    with running_sandbox(**SMALL, **faults) as faulty:
        client = client_for(faulty)
        result = sync_ad_performance(
            client, db, [AdAccount(i) for i in ids], since, until, settings
        )
        assert faulty.sandbox.stats["faults"] > 0
    assert result.api["retries"] > 0 and result.api["async_restarts"] > 0
    assert snapshot(db) == fault_free


def test_expired_token_mid_run_leaves_the_table_as_it_was(
    db: psycopg.Connection, ads_sandbox: RunningSandbox
) -> None:
    ids = account_ids(ads_sandbox)[:2]
    settings = AdsSettings(lookback_days=3)
    accounts = [AdAccount(i) for i in ids]
    sync_ad_performance(
        client_for(ads_sandbox), db, accounts, YESTERDAY - timedelta(days=3), YESTERDAY, settings
    )
    before = snapshot(db)
    # Revise the numbers, then let the token expire after part of the stream was written.
    ads_sandbox.sandbox.advance(days=1)
    client = client_for(ads_sandbox)
    streamed = 0
    real_insights = client.insights

    def expiring_insights(*args, **kwargs):
        nonlocal streamed
        for row in real_insights(*args, **kwargs):
            streamed += 1
            if streamed == 40:
                ads_sandbox.sandbox.config.expired_tokens.add("ads-test-token")
            yield row

    client.insights = expiring_insights  # type: ignore[method-assign]
    with pytest.raises(TokenInvalidError) as info:
        sync_ad_performance(
            client, db, accounts, YESTERDAY - timedelta(days=3), YESTERDAY, settings
        )
    assert streamed >= 40
    assert "190" in str(info.value) and "access token" in str(info.value).lower()
    assert snapshot(db) == before


def test_expired_token_fails_the_dagster_run_with_the_clear_message(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "0")
    with running_sandbox(**SMALL, expired_tokens={"old-token"}) as handle:
        configure_accounts(db, account_ids(handle))
        result = _run(
            handle, database_url, YESTERDAY, token="old-token", objects=False, raise_on_error=False
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    text = str(failure.event_specific_data.error)
    assert "code 190" in text and "Session has expired" in text and "old-token" not in text
    assert db.execute("select count(*) from ad_performance").fetchone()[0] == 0


def test_accounts_in_different_time_zones_and_currencies(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "2")
    state = ads_sandbox.sandbox.domains["ads"]
    ids = account_ids(ads_sandbox)[:2]
    # One from the config table, one from the environment.
    configure_accounts(db, ids[:1])
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", f"act_{ids[1]}")
    assert _run(ads_sandbox, database_url, YESTERDAY).success
    got = db.execute(
        "select ad_account_id, account_currency, account_timezone, min(date), "
        "max(date), count(*) from ad_performance group by 1, 2, 3 order by 1"
    ).fetchall()
    assert [(g[0], g[1], g[2]) for g in got] == [
        (i, state.accounts[i].currency, state.accounts[i].timezone_name) for i in ids
    ]
    assert {g[1] for g in got} == {"USD", "EUR"}
    for account_id, *_rest, first, last, _ in got:
        acct = state.accounts[account_id]
        local_today = datetime.now(UTC).astimezone(acct.tz).date()
        assert last <= min(YESTERDAY, local_today - timedelta(days=1))
        assert first == YESTERDAY - timedelta(days=2)
    # Each account's numbers are its own, in its own currency.
    for account_id in ids:
        rows = sandbox_rows(
            ads_sandbox, account_id, "account", YESTERDAY - timedelta(days=2), YESTERDAY
        )
        stored = db.execute(
            "select sum(spend) from ad_performance where level = 'account' and ad_account_id = %s",
            (account_id,),
        ).fetchone()[0]
        assert stored == sum(Decimal(r["spend"]) for r in rows)


def test_dashboard_roas_query_counts_each_campaign_day_once(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "10")
    ids = account_ids(ads_sandbox)
    configure_accounts(db, ids)
    assert _run(ads_sandbox, database_url, YESTERDAY).success
    got = db.execute(
        """
        SELECT c.name as campaign_name, SUM(ap.spend) as total_spend,
          SUM(ap.conversions) as total_conversions,
          (SUM(ap.conversion_value) / NULLIF(SUM(ap.spend), 0)) as roas
        FROM campaign c JOIN ad_performance ap ON ap.campaign_id = c.campaign_id
        WHERE ap.date >= NOW() - INTERVAL '30 days' GROUP BY c.name
        """
    ).fetchall()
    expected: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for account_id in ids:
        for row in sandbox_rows(
            ads_sandbox, account_id, "campaign", YESTERDAY - timedelta(days=10), YESTERDAY
        ):
            e = expected[row["campaign_name"]]
            e[0] += Decimal(row["spend"])
            for key, idx in (("actions", 1), ("action_values", 2)):
                for a in row.get(key, []):
                    if a["action_type"] == "omni_purchase":
                        e[idx] += Decimal(a.get("7d_click", "0")) + Decimal(a.get("1d_view", "0"))
    assert {name for name, *_ in got} == set(expected)
    for name, spend, conversions, roas in got:
        exp_spend, exp_conv, exp_value = expected[name]
        assert spend == exp_spend and conversions == exp_conv
        assert roas == pytest.approx(exp_value / exp_spend)
    assert sum(e[1] for e in expected.values()) > 0


def test_campaigns_are_upserted_and_renamed(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "0")
    ids = account_ids(ads_sandbox)
    configure_accounts(db, ids)
    db.execute("insert into campaign (name) values ('an app campaign')")
    assert _run(ads_sandbox, database_url, YESTERDAY).success
    state = ads_sandbox.sandbox.domains["ads"]
    all_campaigns = [c for a in state.accounts.values() for c in a.campaigns]
    assert db.execute(
        "select count(*) from campaign where meta_campaign_id is not null"
    ).fetchone()[0] == len(all_campaigns)
    renamed = all_campaigns[0]
    renamed["name"] = "Renamed on Meta"
    result = _run(ads_sandbox, database_url, YESTERDAY)
    mats = {
        m.asset_key.to_user_string(): m
        for m in result.asset_materializations_for_node("ad_objects")
    }
    assert mats["campaign"].metadata["renamed"].value == 1
    assert mats["campaign"].metadata["created"].value == 0
    assert (
        db.execute(
            "select name from campaign where meta_campaign_id = %s", (renamed["id"],)
        ).fetchone()[0]
        == "Renamed on Meta"
    )
    assert db.execute("select count(*) from campaign").fetchone()[0] == len(all_campaigns) + 1


def test_days_without_data_succeed_with_zero_rows(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "1")
    configure_accounts(db, account_ids(ads_sandbox))
    before_delivery = YESTERDAY - timedelta(days=SMALL["days"] + 5)
    result = _run(ads_sandbox, database_url, before_delivery, objects=False)
    assert result.success
    mat = result.asset_materializations_for_node("ad_performance")[0]
    assert mat.metadata["rows"].value == 0
    assert db.execute("select count(*) from ad_performance").fetchone()[0] == 0
