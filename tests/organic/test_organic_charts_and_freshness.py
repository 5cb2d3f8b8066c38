"""`social_account_insights` carries its follower trend chart; the organic freshness checks."""

from __future__ import annotations

import base64

import dagster as dg
from organic_helpers import DAY, OrganicEnv

from everreach_pipelines.defs.organic import defs
from everreach_pipelines.defs.organic.assets import social_account_insights
from everreach_pipelines.defs.organic.charts import CHART_FOLLOWER_TREND
from everreach_pipelines.defs.organic.checks import FRESHNESS_CHECKS
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

IMAGE_PREFIX = "data:image/png;base64,"
EXPECTED_CHECKS = {
    ("social_media_post", "fresh_within_7_days"),
    ("social_post_insights", "fresh_within_30_hours"),
    ("social_account_insights", "fresh_within_30_hours"),
}


def _run(env: OrganicEnv, database_url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [social_account_insights],
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "meta": MetaGraphResource(
                base_url=env.sb.base_url, access_token="user-token", max_retries=1
            ),
        },
        partition_key=DAY.isoformat(),
        run_config={
            "ops": {"social_account_insights": {"config": {"as_of": env.as_of().isoformat()}}}
        },
        instance=dg.DagsterInstance.ephemeral(),
    )


def _checks(database_url: str) -> dict[str, dg.AssetCheckResult]:
    warehouse = WarehouseResource(database_url=database_url)
    out = {}
    for check in FRESHNESS_CHECKS:
        (key,) = check.check_keys
        out[key.asset_key.to_user_string()] = check(warehouse=warehouse)
    return out


def test_follower_chart_when_rows_exist(organic: OrganicEnv, database_url: str) -> None:
    result = _run(organic, database_url)
    assert result.success
    md = result.asset_materializations_for_node("social_account_insights")[0].metadata
    assert md["rows"].value > 0
    chart = md[CHART_FOLLOWER_TREND].value
    assert chart.startswith("![follower trend ") and IMAGE_PREFIX in chart
    png = base64.b64decode(chart.split(IMAGE_PREFIX, 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG")


def test_no_accounts_no_chart(organic: OrganicEnv, database_url: str) -> None:
    organic.conn.execute("delete from meta_platform_config")
    result = _run(organic, database_url)
    assert result.success
    md = result.asset_materializations_for_node("social_account_insights")[0].metadata
    assert md["rows"].value == 0 and CHART_FOLLOWER_TREND not in md


def test_freshness_checks(organic: OrganicEnv, database_url: str) -> None:
    conn = organic.conn
    # Empty tables: every check warns.
    checks = _checks(database_url)
    assert set(checks) == {asset for asset, _ in EXPECTED_CHECKS}
    assert not any(c.passed for c in checks.values())
    assert {c.severity for c in checks.values()} == {dg.AssetCheckSeverity.WARN}
    assert checks["social_media_post"].metadata["last_updated_at"].value == "never"

    conn.execute(
        "insert into social_media_post (platform, post_id, account_id, posted_at) "
        "values ('instagram', 'p1', 'a1', now() - interval '3 days')"
    )
    conn.execute(
        "insert into social_post_insights (platform, post_id, snapshot_date, metric, value) "
        "values ('instagram', 'p1', current_date - 1, 'views', 5)"
    )
    conn.execute(
        "insert into social_account_insights (platform, account_id, date, metric, value) "
        "values ('instagram', 'a1', current_date - 1, 'follower_count', 5)"
    )
    checks = _checks(database_url)
    assert all(c.passed for c in checks.values()), checks

    # Old rows only (the recent-date lookup finds nothing; the full scan does).
    conn.execute("update social_media_post set updated_at = now() - interval '8 days'")
    conn.execute(
        "update social_post_insights set snapshot_date = current_date - 20, "
        "fetched_at = now() - interval '31 hours'"
    )
    conn.execute("update social_account_insights set fetched_at = now() - interval '31 hours'")
    checks = _checks(database_url)
    assert not any(c.passed for c in checks.values())
    assert checks["social_post_insights"].metadata["age_hours"].value >= 31
    assert checks["social_media_post"].metadata["age_hours"].value >= 8 * 24


def test_freshness_checks_are_registered_and_in_the_daily_job() -> None:
    merged = dg.Definitions.merge(
        defs,
        dg.Definitions(
            resources={
                "warehouse": WarehouseResource(database_url="postgresql://u@127.0.0.1:1/x"),
                "meta": MetaGraphResource(),
            }
        ),
    )

    def names(keys) -> set[tuple[str, str]]:
        return {(k.asset_key.to_user_string(), k.name) for k in keys}

    assert EXPECTED_CHECKS <= names(merged.get_repository_def().asset_graph.asset_check_keys)
    job = merged.resolve_job_def("organic_daily_sync")
    assert EXPECTED_CHECKS <= names(job.asset_layer.asset_graph.asset_check_keys)
