"""Breakdown insights and creatives end to end: Dagster assets → HTTP sandbox → Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from ads_helpers import account_ids, client_for, configure_accounts, resources_for
from dagster import DagsterInstance, materialize

from everreach.ads.breakdowns import ALL_FAMILIES, FAMILIES, request_params, sync_family
from everreach.ads.creatives import sync_creatives
from everreach.ads.objects import sync_ad_objects
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import AdAccount
from everreach.meta import TokenInvalidError
from everreach.sandbox.breakdowns import check_combination
from everreach.sandbox.testing import RunningSandbox
from everreach_pipelines.defs.ads.assets import ad_objects, ad_performance
from everreach_pipelines.defs.ads.breakdowns import breakdown_assets
from everreach_pipelines.defs.ads.creatives import ad_creatives

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def _materialize(handle: RunningSandbox, database_url: str, partition: date, assets: list):
    return materialize(
        assets,
        resources=resources_for(handle, database_url),
        partition_key=partition.isoformat(),
        instance=DagsterInstance.ephemeral(),
    )


def _sums(db: psycopg.Connection, table: str) -> dict:
    return {
        (a, d, ad): (s, i, c, r)
        for a, d, ad, s, i, c, r in db.execute(
            f"select ad_account_id, date, ad_id, sum(spend), sum(impressions), sum(clicks), "
            f"sum(reach) from {table} group by 1, 2, 3"
        ).fetchall()
    }


def test_every_family_loads_and_adds_up_to_ad_performance(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "2")
    configure_accounts(db, account_ids(ads_sandbox))
    result = _materialize(
        ads_sandbox,
        database_url,
        YESTERDAY - timedelta(days=3),
        [ad_objects, ad_performance, ad_creatives, *breakdown_assets],
    )
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["adds_up_to_ad_performance"].passed
    assert all(c.passed for c in result.get_asset_check_evaluations())
    unbroken = {
        (a, d, ad): (s, i, c, r)
        for a, d, ad, s, i, c, r in db.execute(
            "select ad_account_id, date, entity_id, spend, impressions, clicks, reach "
            "from ad_performance where level = 'ad' and impressions > 0"
        ).fetchall()
    }
    assert unbroken
    for family in FAMILIES:
        sums = _sums(db, family.table)
        assert set(sums) == set(unbroken), family.name
        reach_above = 0
        for key, (spend, imps, clicks, reach) in sums.items():
            assert (spend, imps, clicks) == unbroken[key][:3], (family.name, key)
            reach_above += reach > unbroken[key][3]
        # Reach is per breakdown value: summed over values it overcounts people.
        assert reach_above > len(sums) * 0.9, family.name
        mat = result.asset_materializations_for_node(family.table)[0]
        assert (
            mat.metadata["rows"].value
            == db.execute(f"select count(*) from {family.table}").fetchone()[0]
        )
        assert "| " + family.breakdowns[0] in mat.metadata["preview"].value
    # Conversions by action type and destination add up to ad_performance's conversions.
    conversions = dict(
        db.execute(
            "select entity_id || date::text, conversions from ad_performance where level = 'ad'"
        ).fetchall()
    )
    by_action = dict(
        db.execute(
            "select ad_id || date::text, sum(conversions) from ad_insights_actions "
            "where is_conversion group by 1"
        ).fetchall()
    )
    assert by_action and all(conversions[k] == v for k, v in by_action.items())
    assert all(v == 0 for k, v in conversions.items() if k not in by_action)
    targets = dict(
        db.execute(
            "select action_type, array_agg(distinct action_target_id) from ad_insights_actions "
            "group by 1"
        ).fetchall()
    )
    assert targets["link_click"] == ["700000000000001"]  # the pixel of the sandbox's site
    assert targets["omni_purchase"] == [""]  # web conversions: Meta gives no target
    # Creatives: every ad's creative is known; the parsed UTMs are there.
    assert (
        db.execute(
            "select count(*) from meta_ad a left join meta_ad_creative c using (creative_id) "
            "where c.creative_id is null"
        ).fetchone()[0]
        == 0
    )
    assert (
        db.execute("select count(*) from meta_ad_creative where utm_source is not null").fetchone()[
            0
        ]
        > 0
    )


def test_lookback_replaces_atomically_and_a_failure_leaves_the_table(
    db: psycopg.Connection, ads_sandbox: RunningSandbox
) -> None:
    ids = account_ids(ads_sandbox)
    accounts = [AdAccount(i) for i in ids[:2]]
    settings = AdsSettings()
    family = FAMILIES[0]
    since, until = YESTERDAY - timedelta(days=4), YESTERDAY
    first = sync_family(client_for(ads_sandbox), db, family, accounts, since, until, settings)
    assert first.rows > 0
    before = db.execute(f"select * from {family.table} order by 1, 2, 3, 6, 7").fetchall()
    # A day later the young days have matured: a re-run replaces them, nothing duplicates.
    ads_sandbox.sandbox.advance(days=1)
    again = sync_family(client_for(ads_sandbox), db, family, accounts, since, until, settings)
    assert again.load.deleted == first.rows
    after = db.execute(f"select * from {family.table} order by 1, 2, 3, 6, 7").fetchall()
    assert after != before
    assert (
        db.execute(
            f"select count(*) - count(distinct (ad_account_id, date, ad_id, age, gender)) "
            f"from {family.table}"
        ).fetchone()[0]
        == 0
    )
    # The token expires while the report streams: the table keeps exactly the old rows.
    ads_sandbox.sandbox.config.expired_tokens = {"ads-test-token"}
    with pytest.raises(TokenInvalidError):
        sync_family(client_for(ads_sandbox), db, family, accounts, since, until, settings)
    assert db.execute(f"select * from {family.table} order by 1, 2, 3, 6, 7").fetchall() == after


def test_only_valid_combinations_are_requested(ads_sandbox: RunningSandbox) -> None:
    """Every family is one of Meta's combinations (the sandbox implements Meta's rules), and
    a sync of every family gets no error from the sandbox."""
    for family in ALL_FAMILIES:
        check_combination(list(family.action_breakdowns) or ["action_type"], family.breakdowns)
    sandbox = ads_sandbox.sandbox
    client = client_for(ads_sandbox)
    account = AdAccount(account_ids(ads_sandbox)[0])
    for family in ALL_FAMILIES:
        day = YESTERDAY - timedelta(days=2)  # a complete day in every time zone
        params = request_params(family, day, day, AdsSettings(), 500)
        assert list(client.insights(account.node_id, params))
    errors = {k: v for k, v in sandbox.stats.items() if k.startswith("error_")}
    assert errors == {}


def test_creatives_are_refreshed_and_deleted_ones_kept(
    db: psycopg.Connection, ads_sandbox: RunningSandbox
) -> None:
    ids = account_ids(ads_sandbox)
    accounts = [AdAccount(i) for i in ids]
    client = client_for(ads_sandbox)
    sync_ad_objects(client, db, accounts)
    first = sync_creatives(client, db, accounts)
    assert first.listed > 0 and first.read_by_id > 0  # some are deleted: read by id
    state = ads_sandbox.sandbox.domains["ads"]
    statuses = dict(db.execute("select creative_id, status from meta_ad_creative").fetchall())
    assert "DELETED" in statuses.values()
    # One live creative is deleted on Meta, another vanishes for good (unreadable).
    live = sorted(c for c, s in statuses.items() if s == "ACTIVE")
    state.creatives[live[0]][1]["status"] = "DELETED"
    gone = live[1]
    acct, creative = state.creatives.pop(gone)
    acct.creatives.remove(creative)
    ads_sandbox.sandbox._nodes.pop(gone)  # no such object any more: Meta's 100/33
    second = sync_creatives(client, db, accounts)
    assert second.unreadable == [gone]
    after = dict(db.execute("select creative_id, status from meta_ad_creative").fetchall())
    assert set(after) == set(statuses)  # nothing deleted
    assert after[live[0]] == "DELETED" and after[gone] == "ACTIVE"  # last known status
    row = db.execute(
        "select landing_url, utm_source, url_params from meta_ad_creative "
        "where landing_url like '%%campaign.name%%' limit 1"
    ).fetchone()
    assert row is not None and row[1] == "facebook" and row[2]["utm_content"] == ["{{ad.name}}"]


def test_each_table_is_keyed_by_its_familys_grain(db: psycopg.Connection) -> None:
    """The migration's primary keys and the families' specs say the same grain, and the
    families' columns are the tables' columns."""
    for family in ALL_FAMILIES:
        key = db.execute(
            "select array_agg(a.attname order by k.ord) from pg_index i "
            "cross join unnest(i.indkey) with ordinality as k (attnum, ord) "
            "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum "
            "where i.indrelid = %s::regclass and i.indisprimary",
            (family.table,),
        ).fetchone()[0]
        assert tuple(key) == family.key, family.table
        columns = {
            r[0]
            for r in db.execute(
                "select column_name from information_schema.columns where table_name = %s",
                (family.table,),
            ).fetchall()
        }
        assert set(family.columns) == columns - {"fetched_at"}, family.table


def test_accounts_read_in_parallel_give_the_same_rows(
    db: psycopg.Connection, ads_sandbox: RunningSandbox
) -> None:
    accounts = [AdAccount(i) for i in account_ids(ads_sandbox)]
    family = FAMILIES[1]
    since, until = YESTERDAY - timedelta(days=3), YESTERDAY
    query = f"select * from {family.table} order by 1, 2, 3, 6"
    one = sync_family(client_for(ads_sandbox), db, family, accounts, since, until, AdsSettings())
    sequential = [r[:-1] for r in db.execute(query).fetchall()]  # without fetched_at
    both = sync_family(
        client_for(ads_sandbox),
        db,
        family,
        accounts,
        since,
        until,
        AdsSettings(),
        parallel_accounts=2,
    )
    assert both.rows == one.rows > 0
    assert [r[:-1] for r in db.execute(query).fetchall()] == sequential
