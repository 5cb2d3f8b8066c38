"""The ads domain's Dagster definitions: they load, and they are what the design says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from dagster import AssetKey, Definitions, build_schedule_context

from everreach_pipelines.defs.ads import defs
from everreach_pipelines.defs.ads.checks import ad_performance_freshness
from everreach_pipelines.defs.ads.schedules import ads_daily_schedule
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource


def test_definitions_load_with_shared_resources() -> None:
    merged = Definitions.merge(
        defs, Definitions(resources={"warehouse": WarehouseResource(), "meta": MetaGraphResource()})
    )
    graph = merged.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"ad_performance", "meta_ad_campaign", "meta_ad_set", "meta_ad", "campaign"}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name == "ads"
        assert node.owners and node.description
    perf = graph.get(AssetKey("ad_performance"))
    assert perf.backfill_policy is not None
    assert perf.backfill_policy.max_partitions_per_run == 31
    assert perf.partitions_def is not None
    checks = {k.name for k in graph.asset_check_keys}
    assert {
        "no_duplicate_grain_keys",
        "spend_non_negative",
        "ad_spend_matches_account_spend",
        "fresh_within_30_hours",
    } <= checks
    assert merged.resolve_job_def("ads_daily_sync") is not None


def test_schedule_requests_the_last_complete_day() -> None:
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
    )
    request = ads_daily_schedule(context)
    assert request.partition_key == "2026-03-09"
    assert ads_daily_schedule.cron_schedule == "0 4 * * *"


def test_freshness_check_reads_the_table(db: psycopg.Connection, database_url: str) -> None:
    warehouse = WarehouseResource(database_url=database_url)
    assert ad_performance_freshness(warehouse=warehouse).passed is False
    db.execute(
        "insert into ad_performance (date, ad_account_id, level, entity_id) "
        "values (%s, '1', 'account', '1')",
        (date.today(),),
    )
    result = ad_performance_freshness(warehouse=warehouse)
    assert result.passed is True
    db.execute("update ad_performance set fetched_at = now() - interval '2 days'")
    assert ad_performance_freshness(warehouse=warehouse).passed is False


def test_run_demo_materializes_the_range_into_the_project_instance(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox,  # noqa: ANN001 - fixture
    tmp_path,  # noqa: ANN001 - fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uuid
    from types import SimpleNamespace

    from ads_helpers import TOKEN

    from everreach.dev import project_instance
    from everreach.warehouse.database import with_database
    from everreach_pipelines.demo.ads import run_demo

    # The demo records its runs where `everreach dev` looks (here: a private home + db).
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    # unset, so the instance's storage is `dagster_db` on the warehouse server (and the
    # variable project_instance sets is removed after the test)
    monkeypatch.delenv("EVERREACH_DAGSTER_PG_URL", raising=False)
    dagster_db = f"dagster_demo_{uuid.uuid4().hex[:8]}"
    instance = project_instance(database_url, dbname=dagster_db)

    # Nothing configured: the demo adds the token's ad accounts (me/adaccounts) first.
    end = datetime.now(UTC).date()
    ctx = SimpleNamespace(
        database_url=database_url,
        sandbox_base_url=ads_sandbox.base_url,
        sandbox=ads_sandbox.sandbox,
        start_date=end - timedelta(days=4),
        end_date=end,
        graph_client_kwargs={
            "access_token": TOKEN,
            "base_url": ads_sandbox.base_url,
            "api_version": "v25.0",
            "app_secret": None,
        },
        log=lambda _msg: None,
        instance=instance,
    )
    try:
        lines = run_demo(ctx)
        assert instance.get_latest_materialization_event(AssetKey("ad_performance"))
        assert len(instance.get_runs()) == 1
    finally:
        instance.dispose()
        with psycopg.connect(with_database(database_url, "postgres"), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{dagster_db}" with (force)')
    rows = db.execute("select count(*), min(date), max(date) from ad_performance").fetchone()
    assert rows[0] > 0
    assert rows[2] == end - timedelta(days=1)
    assert f"{rows[0]:,} rows" in lines[0]
    # ad_performance (3), each breakdown family (5) and the creatives (1)
    assert lines[-1] == "checks: 9/9 passed"
    assert (
        db.execute(
            "select count(*) from meta_platform_config where platform = 'ad_account'"
        ).fetchone()[0]
        == 3
    )
