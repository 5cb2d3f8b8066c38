"""After `everreach demo`, the Dagster UI shows every asset the demo filled as materialized.

The demo's stages run as the command runs them (`STAGES`, one `DemoContext`) against the
sandbox and a fresh database, recording in one Dagster instance. Which assets the demo filled
is read from the warehouse afterwards, not listed here: every asset of the code location
whose table or view (`[name]` → `public.name`, `[schema, name]` → `schema.name`) has rows,
and every asset without a table of its own (the webhook log observation, the CAPI pickup and
delivery), which the demo runs directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from everreach.sandbox.core import SandboxConfig
from everreach.sandbox.testing import running_sandbox
from everreach_pipelines.definitions import defs
from everreach_pipelines.defs.ads.assets import ad_performance
from everreach_pipelines.defs.capi.assets import capi_event_batches, capi_user_event_conversions
from everreach_pipelines.defs.dbt.external import external_source_specs
from everreach_pipelines.defs.organic.assets import organic_posts, social_account_insights
from everreach_pipelines.demo.cli import STAGES, DemoContext
from everreach_pipelines.demo.messaging import webhook_log

pytestmark = pytest.mark.slow

DAYS = 3


def _relation(key: dg.AssetKey) -> tuple[str, str]:
    """The table or view an asset key names."""
    return ("public", key.path[0]) if len(key.path) == 1 else (key.path[0], key.path[-1])


def _filled(conn: psycopg.Connection, key: dg.AssetKey) -> bool | None:
    """Whether the key's table or view has rows; None when there is no such relation."""
    schema, name = _relation(key)
    if conn.execute("select to_regclass(%s)", (f"{schema}.{name}",)).fetchone()[0] is None:
        return None
    query = sql.SQL("select exists (select 1 from {})").format(sql.Identifier(schema, name))
    return conn.execute(query).fetchone()[0]


@pytest.fixture(scope="module")
def demo_run(database_url: str) -> Iterator[tuple[dg.DagsterInstance, list[str]]]:
    """Every demo stage over the last DAYS days, recorded in one ephemeral instance."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = conn.execute(
            "select quote_ident(schemaname) || '.' || quote_ident(tablename) from pg_tables "
            "where schemaname in ('public', 'auth') "
            "and tablename <> 'everreach_schema_migrations'"
        ).fetchall()
        conn.execute("truncate " + ", ".join(t[0] for t in tables) + " restart identity cascade")
    instance = dg.DagsterInstance.ephemeral()
    logged: list[str] = []
    end = datetime.now(UTC).date()
    with pytest.MonkeyPatch.context() as env:
        for name in ("META_ACCESS_TOKEN", "META_PIXEL_ID", "META_CAPI_TEST_EVENT_CODE"):
            env.delenv(name, raising=False)
        with running_sandbox(SandboxConfig(seed=7)) as sandbox:
            ctx = DemoContext(
                database_url=database_url,
                sandbox_base_url=sandbox.base_url,
                sandbox=sandbox.sandbox,
                graph_client_kwargs={
                    "access_token": "sandbox-demo-token",
                    "base_url": sandbox.base_url,
                    "api_version": "v25.0",
                    "app_secret": None,
                },
                start_date=end - timedelta(days=DAYS - 1),
                end_date=end,
                log=logged.append,
                instance=instance,
            )
            for stage in STAGES.values():
                stage.run_demo(ctx)
    yield instance, logged
    instance.dispose()


def test_every_asset_the_demo_filled_shows_as_materialized(
    database_url: str, demo_run: tuple[dg.DagsterInstance, list[str]]
) -> None:
    instance, _ = demo_run
    keys = defs.get_repository_def().asset_graph.get_all_asset_keys()
    with psycopg.connect(database_url) as conn:
        filled = {key: _filled(conn, key) for key in keys}
    touched = {key for key, rows in filled.items() if rows is not False}
    missing = sorted(
        key.to_user_string()
        for key in touched
        if instance.get_latest_materialization_event(key) is None
        and not instance.fetch_observations(key, limit=1).records
    )
    assert not missing, f"filled by the demo but never materialized: {missing}"

    # What the demo is there to show, so an empty warehouse cannot pass vacuously.
    promised = {spec.key for spec in external_source_specs}.union(
        *(
            asset.keys
            for asset in (
                ad_performance,
                social_account_insights,
                organic_posts,
                webhook_log,
                capi_user_event_conversions,
                capi_event_batches,
            )
        )
    )
    assert promised <= touched, sorted(k.to_user_string() for k in promised - touched)
    dbt_models = {key for key in keys if key.path[0] in ("staging", "intermediate", "marts")}
    assert dbt_models and dbt_models <= touched


def test_tables_written_outside_dagster_say_who_wrote_them(
    demo_run: tuple[dg.DagsterInstance, list[str]],
) -> None:
    instance, _ = demo_run
    for spec in external_source_specs:
        event = instance.get_latest_materialization_event(spec.key)
        assert event is not None, spec.key
        metadata = event.asset_materialization.metadata
        assert metadata["written_by"].value.startswith("everreach demo ("), spec.key
        assert metadata["rows"].value > 0, spec.key
