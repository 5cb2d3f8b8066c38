"""Daily partitions of the incremental dbt models (the window of events loaded that day)."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

# Meta keeps 37 months of insights; the marts start where the event history starts.
marts_daily_partitions = DailyPartitionsDefinition(start_date="2024-01-01", timezone="UTC")
