"""The dbt project through Dagster: definitions, source keys, checks, and a real
materialization (dbt build in a subprocess) of the hand-written scenario."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import dbt_seed as s
import psycopg
import pytest

from everreach_pipelines.defs.dbt import defs
from everreach_pipelines.defs.dbt.assets import marts_dbt_models, marts_incremental_dbt_models
from everreach_pipelines.defs.dbt.charts import (
    CHART_KEY,
    CHART_MODEL_NAME,
    SIGNAL_CHART_KEY,
    SIGNAL_MODEL_NAME,
    SIGNAL_SPARK_KEY,
    SPARK_KEY,
)
from everreach_pipelines.defs.dbt.project import DBT_PROJECT_DIR
from everreach_pipelines.resources.warehouse import WarehouseResource

RAW_KEYS = {
    "user_event",
    "ad_performance",
    "conversation_message",
    "conversation_thread",
    "campaign",
    "meta_ad",
    "meta_conversion_event",
    "social_media_post",
    "social_post_insights",
    "social_account_insights",
}


def _full() -> dg.Definitions:
    return dg.Definitions.merge(
        defs,
        dg.Definitions(
            resources={"warehouse": WarehouseResource(database_url="postgresql://x@y/z")}
        ),
    )


def _graph() -> dg.AssetGraph:
    return _full().get_repository_def().asset_graph


def test_sources_use_raw_asset_keys_and_models_are_grouped() -> None:
    graph = _graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert RAW_KEYS | {"auth/users"} <= keys
    touchpoints = graph.get(dg.AssetKey(["marts", "touchpoints"]))
    assert touchpoints.group_name == "marts_journeys" and touchpoints.owners == ["team:data"]
    assert touchpoints.partitions_def is not None
    assert (
        dg.AssetKey(["user_event"])
        in graph.get(dg.AssetKey(["staging", "stg_everreach__user_events"])).parent_keys
    )
    roas = graph.get(dg.AssetKey(["marts", "campaign_attribution_roas"]))
    assert roas.partitions_def is None and roas.group_name == "marts_attribution"
    # dbt data tests are asset checks (grain test of the credits among them)
    checks = {
        key.name
        for key in graph.asset_check_keys
        if key.asset_key == dg.AssetKey(["marts", "attribution_touch_credits"])
    }
    assert any(name.startswith("unique_combination_of_columns") for name in checks)
    assert any(name.startswith("sums_to_one") for name in checks)


def test_schedule_runs_after_the_daily_syncs() -> None:
    schedule = _full().resolve_schedule_def("marts_daily_schedule")
    assert schedule.cron_schedule == "30 6 * * *"
    assert schedule.job_name == "marts_daily_job"


@pytest.mark.slow
def test_materialize_builds_marts_and_checks(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        s.truncate_raw_tables(conn)
        ids = s.seed(conn)
    partition = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    result = dg.materialize(
        [marts_incremental_dbt_models, marts_dbt_models],
        resources={"warehouse": WarehouseResource(database_url=database_url)},
        partition_key=partition,
    )
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "marts/touchpoints",
        "marts/campaign_attribution_roas",
        "staging/stg_auth__users",
    } <= materialized
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    # the ROAS mart carries the spend vs attributed revenue pictures
    roas = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["marts", CHART_MODEL_NAME])
    )
    metadata = roas.materialization.metadata
    assert {CHART_KEY, SPARK_KEY} <= set(metadata)
    assert metadata[CHART_KEY].value.startswith("![Top campaigns")
    # what Meta sees vs what happened: Meta-reported vs attributed vs delivered, and coverage
    signal = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["marts", SIGNAL_MODEL_NAME])
    ).materialization.metadata
    assert {SIGNAL_CHART_KEY, SIGNAL_SPARK_KEY} <= set(signal)
    assert signal[SIGNAL_CHART_KEY].value.startswith("![What Meta sees vs what happened")
    with psycopg.connect(database_url) as conn:
        unattributed = conn.execute(
            "select count(*) from marts.attribution_touch_credits where conversion_event_id = %s "
            "and is_unattributed",
            (ids["u4_purchase"],),
        ).fetchone()[0]
        total = conn.execute(
            "select total_conversions from marts.attribution_summary "
            "where attribution_model = 'linear'"
        ).fetchone()[0]
    assert unattributed == 5 and total == 7


def test_full_refresh_config_rebuilds_the_incremental_models(database_url: str) -> None:
    """An event deleted from user_event stays in the incremental marts (they only read new and
    re-written rows) until a run with `full_refresh: true` rebuilds them."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        s.truncate_raw_tables(conn)
        ids = s.seed(conn)
    assets = [marts_incremental_dbt_models, marts_dbt_models]
    run = {
        "resources": {"warehouse": WarehouseResource(database_url=database_url)},
        "partition_key": (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d"),
    }
    full_refresh = {"ops": {"marts_incremental_dbt_models": {"config": {"full_refresh": True}}}}

    def touchpoints_of_u4_purchase() -> int:
        with psycopg.connect(database_url) as conn:
            return conn.execute(
                "select count(*) from marts.touchpoints where event_id = %s", (ids["u4_purchase"],)
            ).fetchone()[0]

    assert dg.materialize(assets, **run).success
    assert touchpoints_of_u4_purchase() == 1
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from user_event where id = %s", (ids["u4_purchase"],))
    assert dg.materialize(assets, **run).success
    assert touchpoints_of_u4_purchase() == 1
    assert dg.materialize(assets, **run, run_config=full_refresh).success
    assert touchpoints_of_u4_purchase() == 0
    with psycopg.connect(database_url) as conn:
        total = conn.execute(
            "select total_conversions from marts.attribution_summary "
            "where attribution_model = 'linear'"
        ).fetchone()[0]
    assert total == 6


def test_every_dbt_spec_is_in_its_layer_group_with_a_description() -> None:
    from everreach_pipelines.definitions import defs as location

    dbt_keys = {
        key
        for assets_def in (marts_dbt_models, marts_incremental_dbt_models)
        for key in assets_def.keys
    }
    specs = {spec.key: spec for spec in location.resolve_all_asset_specs()}
    groups = {specs[key].group_name for key in dbt_keys}
    areas = (DBT_PROJECT_DIR / "models" / "marts").iterdir()
    assert groups == {"staging", "intermediate"} | {f"marts_{a.name}" for a in areas if a.is_dir()}
    assert all((specs[key].description or "").strip() for key in dbt_keys)
    # the project's folder is the group: staging models in `staging`, a mart in its area
    assert specs[dg.AssetKey(["staging", "stg_meta__ad_performance"])].group_name == "staging"
    assert specs[dg.AssetKey(["marts", "conversations"])].group_name == "marts_conversations"
    # raw tables written outside Dagster are declared by their own domain, not left as stubs
    declared = {
        "user_event": "app",
        "auth/users": "app",
        "conversation_message": "messaging",
        "conversation_thread": "messaging",
        "meta_conversion_event": "capi",
    }
    assert {
        name: specs[dg.AssetKey.from_user_string(name)].group_name for name in declared
    } == declared
