"""The dbt project as Dagster assets: incremental models per daily partition, the rest whole.

Both run `dbt build` (models, then their data tests, which Dagster shows as asset checks)
against the warehouse the `warehouse` resource names, through the `EVERREACH_PG_*` variables
the project's profile reads.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from dagster import AssetExecutionContext, AssetKey, BackfillPolicy, Config, Output
from dagster_dbt import DbtCliResource, dbt_assets
from pydantic import Field

from everreach_pipelines.defs.dbt.charts import (
    CHART_MODEL_NAME,
    SIGNAL_MODEL_NAME,
    daily_meta_vs_first_party,
    daily_spend_and_revenue,
    roas_charts,
    signal_charts,
)
from everreach_pipelines.defs.dbt.partitions import marts_daily_partitions
from everreach_pipelines.defs.dbt.project import (
    dbt_cli_env,
    dbt_executable,
    dbt_project,
    ensure_manifest,
    patched_environ,
    window_env,
)
from everreach_pipelines.defs.dbt.translator import EverReachDbtTranslator
from everreach_pipelines.resources.warehouse import WarehouseResource

# The incremental models, and the `touchpoints` mart: a view of the incremental
# `int_touchpoints_identified`, it shows that table's daily partitions.
INCREMENTAL_SELECTOR = "config.materialized:incremental touchpoints"


class IncrementalBuildConfig(Config):
    """Run config of the incremental models (the launchpad's *Config* tab)."""

    full_refresh: bool = Field(
        default=False,
        description=(
            "Rebuild the incremental models from every raw row (dbt --full-refresh) instead of "
            "the partition window: after events were deleted from user_event or after the "
            "changes the dbt README lists as not handled incrementally."
        ),
    )


translator = EverReachDbtTranslator()
manifest_path = ensure_manifest()


def _stream_build(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    dbt = DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())
    # the dbt subprocess inherits os.environ: point it at the warehouse only for this run
    with patched_environ({**dbt_cli_env(warehouse.url()), **(extra_env or {})}):
        # "buildable": a test runs when all its parents are built in this run or upstream of
        # it, so a relationship test into a model of the other dbt asset waits for that one
        args = ["build", "--indirect-selection", "buildable", *extra_args]
        yield from _with_charts(context, warehouse, dbt.cli(args, context=context).stream())


def _roas_charts(conn: psycopg.Connection, today: date) -> dict[str, Any]:
    end, rows = daily_spend_and_revenue(conn, today)
    return roas_charts(rows, end)


def _signal_charts(conn: psycopg.Connection, today: date) -> dict[str, Any]:
    end, rows = daily_meta_vs_first_party(conn, today)
    return signal_charts(rows, end)


#: The marts whose materialization carries charts, and what draws them (from the marts just
#: built).
CHARTS: dict[str, Callable[[psycopg.Connection, date], dict[str, Any]]] = {
    CHART_MODEL_NAME: _roas_charts,
    SIGNAL_MODEL_NAME: _signal_charts,
}


def _with_charts(
    context: AssetExecutionContext, warehouse: WarehouseResource, events: Iterable[Any]
) -> Iterator[Any]:
    """dbt's events, with the charts of `CHARTS` added to the metadata of their marts (the
    spend vs attributed revenue of `campaign_attribution_roas`, the Meta-reported vs
    attributed vs delivered conversions of `meta_vs_first_party_daily`). A chart that cannot
    be drawn is logged, never a reason to fail the build."""
    drawers = {AssetKey(["marts", name]): (name, draw) for name, draw in CHARTS.items()}
    for event in events:
        if isinstance(event, Output):
            key = context.asset_key_for_output(event.output_name)
            if key in drawers:
                name, draw = drawers[key]
                try:
                    with warehouse.connect() as conn:
                        charts = draw(conn, datetime.now(UTC).date())
                except psycopg.Error as exc:
                    context.log.warning(f"{name}: no chart ({exc.__class__.__name__})")
                    charts = {}
                if charts:
                    event = event.with_metadata({**event.metadata, **charts})
        yield event


@dbt_assets(
    manifest=manifest_path,
    select=INCREMENTAL_SELECTOR,
    dagster_dbt_translator=translator,
    partitions_def=marts_daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    name="marts_incremental_dbt_models",
)
def marts_incremental_dbt_models(
    context: AssetExecutionContext, warehouse: WarehouseResource, config: IncrementalBuildConfig
) -> Iterator[Any]:
    """Incremental dbt models (touchpoints, journeys, attribution, daily ads facts).

    The partition window goes to dbt as the EVERREACH_DBT_MIN_DATE / _MAX_DATE environment
    variables (`window_env`; not `--vars`, which would force a full re-parse every day): the
    models re-read rows written from the window start minus the late-arrival lookback, so a
    day's run also picks up events that arrived late for earlier days. A backfill of many
    days runs once. With `full_refresh` (launchpad config), dbt rebuilds them from scratch.
    """
    window = context.partition_time_window
    yield from _stream_build(
        context,
        warehouse,
        extra_args=["--full-refresh"] if config.full_refresh else [],
        extra_env=window_env(window.start, window.end),
    )


@dbt_assets(
    manifest=manifest_path,
    exclude=INCREMENTAL_SELECTOR,
    dagster_dbt_translator=translator,
    name="marts_dbt_models",
)
def marts_dbt_models(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    """Staging views, intermediate tables and the rebuilt-each-run marts (campaign rollups and
    ROAS, conversations, organic), with their data tests as asset checks."""
    yield from _stream_build(context, warehouse)
