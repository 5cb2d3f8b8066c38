"""`ad_performance` carries its spend vs conversion value chart; the ads freshness checks."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from ads_helpers import account_ids, configure_accounts, resources_for

from everreach.sandbox.testing import RunningSandbox
from everreach_pipelines.defs.ads import defs
from everreach_pipelines.defs.ads.assets import ad_objects, ad_performance
from everreach_pipelines.defs.ads.charts import CHART_SPEND_VS_VALUE
from everreach_pipelines.defs.ads.checks import ad_object_freshness, ad_performance_freshness
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

PARTITION = datetime.now(UTC).date() - timedelta(days=2)
IMAGE_PREFIX = "data:image/png;base64,"


def _run(handle: RunningSandbox, database_url: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ad_objects, ad_performance],
        resources=resources_for(handle, database_url),
        partition_key=PARTITION.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
    )


def _checks(database_url: str) -> dict[str, dg.AssetCheckResult]:
    """Each ads freshness check invoked directly against the test database."""
    warehouse = WarehouseResource(database_url=database_url)
    out = {}
    for check in [ad_performance_freshness, *ad_object_freshness]:
        (key,) = check.check_keys
        out[f"{key.asset_key.to_user_string()}:{key.name}"] = check(warehouse=warehouse)
    return out


def test_chart_of_the_window_when_rows_exist(
    db: psycopg.Connection,
    database_url: str,
    ads_sandbox: RunningSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "2")
    configure_accounts(db, account_ids(ads_sandbox))
    result = _run(ads_sandbox, database_url)
    assert result.success
    md = result.asset_materializations_for_node("ad_performance")[0].metadata
    assert md["rows"].value > 0
    chart = md[CHART_SPEND_VS_VALUE].value
    assert chart.startswith("![") and IMAGE_PREFIX in chart
    png = base64.b64decode(chart.split(IMAGE_PREFIX, 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG") and len(png) < 80_000

    # Just written: every ads freshness check passes.
    checks = _checks(database_url)
    assert set(checks) == {
        "ad_performance:fresh_within_30_hours",
        "meta_ad_campaign:fresh_within_30_hours",
        "meta_ad_set:fresh_within_30_hours",
        "meta_ad:fresh_within_30_hours",
    }
    assert all(c.passed for c in checks.values()), checks

    # Two days without a sync: every one warns.
    for table, column in [
        ("ad_performance", "fetched_at"),
        ("meta_ad_campaign", "synced_at"),
        ("meta_ad_set", "synced_at"),
        ("meta_ad", "synced_at"),
    ]:
        db.execute(f"update {table} set {column} = {column} - interval '2 days'")
    checks = _checks(database_url)
    assert not any(c.passed for c in checks.values())
    assert {c.severity for c in checks.values()} == {dg.AssetCheckSeverity.WARN}
    assert checks["meta_ad:fresh_within_30_hours"].metadata["age_hours"].value >= 48
    assert checks["ad_performance:fresh_within_30_hours"].metadata["age_hours"].value >= 48


def test_no_rows_no_chart_and_empty_tables_are_not_fresh(
    db: psycopg.Connection, database_url: str, ads_sandbox: RunningSandbox
) -> None:
    # No account configured: the run succeeds with zero rows and no chart entry.
    result = _run(ads_sandbox, database_url)
    assert result.success
    md = result.asset_materializations_for_node("ad_performance")[0].metadata
    assert md["rows"].value == 0 and CHART_SPEND_VS_VALUE not in md
    checks = _checks(database_url)
    assert len(checks) == 4 and not any(c.passed for c in checks.values())


def _names(keys) -> set[tuple[str, str]]:
    return {(k.asset_key.to_user_string(), k.name) for k in keys}


def test_freshness_checks_are_registered_and_run_in_the_daily_job() -> None:
    merged = dg.Definitions.merge(
        defs,
        dg.Definitions(
            resources={
                "warehouse": WarehouseResource(database_url="postgresql://u@127.0.0.1:1/x"),
                "meta": MetaGraphResource(),
            }
        ),
    )
    expected = {
        ("ad_performance", "fresh_within_30_hours"),
        ("meta_ad_campaign", "fresh_within_30_hours"),
        ("meta_ad_set", "fresh_within_30_hours"),
        ("meta_ad", "fresh_within_30_hours"),
    }
    assert expected <= _names(merged.get_repository_def().asset_graph.asset_check_keys)
    job = merged.resolve_job_def("ads_daily_sync")
    assert expected <= _names(job.asset_layer.asset_graph.asset_check_keys)
