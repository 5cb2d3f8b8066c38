"""The Dagster instance a demo stage materializes into, the partitions it materializes, and
the materializations it reports for the tables it writes outside Dagster."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from dagster import AssetKey, AssetMaterialization, DagsterInstance, TimeWindowPartitionsDefinition

#: Run tags that make one run cover a range of partitions (single-run backfill policy).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def demo_instance(ctx: Any) -> DagsterInstance:
    """`ctx.instance` (the project's instance, so the UI shows the demo's runs), else a
    throw-away one that prints only INFO and above."""
    instance = getattr(ctx, "instance", None)
    if instance is not None:
        return instance
    return DagsterInstance.ephemeral(settings={"python_logs": {"python_log_level": "INFO"}})


def record_tables(ctx: Any, tables: Mapping[AssetKey, int | str], *, stage: str) -> None:
    """Report a runless materialization of each table a stage wrote outside Dagster (the app
    events, the receiver's conversations, the CAPI queue), so the UI shows those assets as
    materialized by the demo instead of *Never materialized*. `tables` maps each asset key
    to the rows the stage wrote there, or to a sentence saying what it wrote."""
    instance = demo_instance(ctx)
    for key, what in tables.items():
        metadata: dict[str, Any] = {"written_by": f"everreach demo ({stage})"}
        metadata["rows" if isinstance(what, int) else "what"] = what
        instance.report_runless_asset_event(AssetMaterialization(asset_key=key, metadata=metadata))


def partition_range(
    partitions_def: TimeWindowPartitionsDefinition, start: date, end: date
) -> tuple[str, str]:
    """`start..end` cut to the daily partitions that exist (the last one is yesterday, UTC)."""
    last = date.fromisoformat(partitions_def.get_last_partition_key())
    first = date.fromisoformat(partitions_def.get_first_partition_key())
    end = min(end, last)
    start = max(min(start, end), first)
    return start.isoformat(), end.isoformat()


def range_tags(partitions_def: TimeWindowPartitionsDefinition, start: date, end: date) -> dict:
    """The tags of one run over `start..end` (see `partition_range`)."""
    first, last = partition_range(partitions_def, start, end)
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


class _BelowWarningFromDagster(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith("dagster")


@contextlib.contextmanager
def run_output_to(path: Path) -> Iterator[None]:
    """While a demo stage runs a chatty Dagster job in-process: what the job prints (dagster-dbt
    echoes every dbt log line to stdout) goes to `path` instead of the terminal, and Dagster's
    INFO lines stay out of the terminal (the run's event log, which the UI shows, keeps them)."""
    quiet = _BelowWarningFromDagster()
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        with path.open("w", encoding="utf-8") as out, contextlib.redirect_stdout(out):
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


#: Run config that keeps a run's console logger to warnings (the event log keeps everything).
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
