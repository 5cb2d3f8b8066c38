"""The organic Dagster assets, materialized in-process against the sandbox and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from organic_helpers import DAY, OrganicEnv

from everreach.organic import metrics as M
from everreach.organic.settings import OrganicSettings
from everreach.settings import SettingError
from everreach_pipelines.defs.organic import defs
from everreach_pipelines.defs.organic.assets import organic_posts, social_account_insights
from everreach_pipelines.defs.organic.schedules import organic_daily_schedule
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource


def _resources(env: OrganicEnv, database_url: str) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=database_url),
        "meta": MetaGraphResource(
            base_url=env.sb.base_url, access_token="user-token", max_retries=1
        ),
    }


def _run(env: OrganicEnv, database_url: str, assets: list, **kw) -> dg.ExecuteInProcessResult:
    config = {"as_of": env.as_of().isoformat()}
    return dg.materialize(
        assets,
        resources=_resources(env, database_url),
        partition_key=DAY.isoformat(),
        run_config={"ops": {a.op.name: {"config": config} for a in assets}},
        instance=dg.DagsterInstance.ephemeral(),
        **kw,
    )


def _metadata(result: dg.ExecuteInProcessResult, node: str, key: str) -> dict:
    for mat in result.asset_materializations_for_node(node):
        if mat.asset_key.path == [key]:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {key}")


def test_materialize_organic_assets(organic: OrganicEnv, database_url: str) -> None:
    result = _run(organic, database_url, [organic_posts, social_account_insights])
    assert result.success
    md = _metadata(result, "organic_posts", "social_post_insights")
    refused = sum(1 for a in organic.state.ig_accounts.values() for p in a.media if p.no_insights)
    assert md["skipped_by_reason"]["before_business_conversion"] > 0
    assert md["skipped"] >= refused
    assert md["rows"] > 0 and md["posts_snapshotted"] > 0
    assert 1.0 <= md["api_calls_per_post"] < 1.2
    assert md["http_requests"] < md["api_calls"] / 10
    assert "| platform |" in md["preview"]
    acct = _metadata(result, "social_account_insights", "social_account_insights")
    assert acct["rows"] > 0
    # Meta's per-account usage, as the run saw it: every configured account, no throttling.
    configured = {a.id for a in organic.state.ig_accounts.values()} | {
        p.id for p in organic.state.pages.values()
    }
    for meta in (md, acct):
        assert set(meta["peak_usage_pct_by_account"]) == configured
        assert meta["throttle_errors"] == 0 and meta["parallel_accounts"] >= 1
    checks = list(result.get_asset_check_evaluations())
    assert len(checks) == 6 and all(c.passed for c in checks)
    count = organic.conn.execute("select count(*) from social_post_insights").fetchone()[0]
    assert count == md["rows"]
    # A re-run of the same partition leaves the same rows.
    before = organic.conn.execute(
        "select * from social_post_insights order by 1, 2, 3, 4"
    ).fetchall()
    assert _run(organic, database_url, [organic_posts]).success
    after = organic.conn.execute(
        "select * from social_post_insights order by 1, 2, 3, 4"
    ).fetchall()
    assert after == before


def test_rejected_metric_fails_the_run_naming_it(
    organic: OrganicEnv, database_url: str, monkeypatch
) -> None:
    monkeypatch.setitem(
        M.INSTAGRAM_MEDIA_METRICS,
        "FEED_IMAGE",
        (*M.INSTAGRAM_MEDIA_METRICS["FEED_IMAGE"], "impressions"),
    )
    result = _run(organic, database_url, [organic_posts], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    text = str(failure.event_specific_data.error)
    assert "'impressions'" in text and "FEED_IMAGE" in text
    # Configuration errors are not retried (no point).
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def test_definitions_load_with_resources() -> None:
    full = dg.Definitions.merge(
        defs,
        dg.Definitions(resources={"meta": MetaGraphResource(), "warehouse": WarehouseResource()}),
    )
    repo = full.get_repository_def()
    keys = {k.to_user_string() for k in full.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"social_media_post", "social_post_insights", "social_account_insights"}
    assert repo.get_job("organic_daily_sync")
    for spec in (*organic_posts.specs, *social_account_insights.specs):
        assert spec.group_name == "organic" and spec.owners and spec.kinds and spec.description


def test_schedule_requests_yesterday() -> None:
    full = dg.Definitions.merge(
        defs,
        dg.Definitions(resources={"meta": MetaGraphResource(), "warehouse": WarehouseResource()}),
    )
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 20, 3, 30, tzinfo=UTC),
        repository_def=full.get_repository_def(),
    )
    request = organic_daily_schedule.evaluate_tick(context).run_requests[0]
    assert request.partition_key == "2026-11-19"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVERREACH_ORGANIC_START_DATE", "2026-13-01"),
        ("EVERREACH_ORGANIC_SCHEDULE", "every day"),
        ("EVERREACH_ORGANIC_RECENT_DAYS", "-3"),
        ("EVERREACH_ORGANIC_OLD_POST_REFRESH_DAYS", "weekly"),
    ],
)
def test_bad_settings_fail_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=name):
        OrganicSettings.from_env({name: value})


def test_demo_materializes_recent_days(organic: OrganicEnv, database_url: str) -> None:
    from datetime import date, timedelta
    from types import SimpleNamespace

    from everreach_pipelines.demo.organic import run_demo

    end = date.today()
    organic.move_to(datetime.now(UTC))  # the demo's sandbox runs on the real clock
    clock_before = organic.sb.sandbox.now()
    ctx = SimpleNamespace(
        database_url=database_url,
        sandbox_base_url=organic.sb.base_url,
        sandbox=organic.sb.sandbox,
        start_date=end - timedelta(days=3),
        end_date=end,
        graph_client_kwargs={
            "access_token": "demo-token",
            "base_url": organic.sb.base_url,
            "api_version": "v25.0",
            "app_secret": None,
        },
        log=lambda msg: None,
    )
    lines = run_demo(ctx)
    assert any(line.startswith("social_post_insights:") for line in lines)
    assert lines[-1].startswith("checks:") and "failed" not in lines[-1]
    days = organic.conn.execute(
        "select count(distinct snapshot_date), count(distinct date) "
        "from social_post_insights, social_account_insights"
    ).fetchone()
    assert days == (3, 3)  # three complete days before today
    # The demo hands the sandbox clock back where it was.
    assert abs((organic.sb.sandbox.now() - clock_before).total_seconds()) < 60
