"""Daily partitions and run config of the organic assets."""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import Config, DailyPartitionsDefinition
from pydantic import Field

from everreach.organic.settings import OrganicSettings

#: Read once when definitions load, so a bad value fails the code location naming its
#: variable (EVERREACH_ORGANIC_START_DATE, EVERREACH_ORGANIC_SCHEDULE, …).
ORGANIC_SETTINGS = OrganicSettings.from_env()

#: One partition per UTC day from EVERREACH_ORGANIC_START_DATE to yesterday.
organic_daily_partitions = DailyPartitionsDefinition(
    start_date=ORGANIC_SETTINGS.start_date.isoformat(), end_offset=0
)


class OrganicSyncConfig(Config):
    """Run config of the organic assets."""

    as_of: str = Field(
        default="",
        description="When the lifetime counters are observed (ISO timestamp, UTC if naive). "
        "Empty: now. The demo sets it to the sandbox clock it moved.",
    )

    def observed_at(self) -> datetime:
        """The observation time (aware, UTC)."""
        if not self.as_of:
            return datetime.now(UTC)
        value = datetime.fromisoformat(self.as_of)
        return value if value.tzinfo else value.replace(tzinfo=UTC)
