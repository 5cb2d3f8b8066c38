"""The daily partitions of `ad_performance` (keys are account-local dates)."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition

from everreach.ads.settings import AdsSettings

#: Read once when definitions load, so a bad value fails the code location naming its
#: variable (EVERREACH_ADS_START_DATE, EVERREACH_ADS_LOOKBACK_DAYS, …).
ADS_SETTINGS = AdsSettings.from_env()

#: One partition per day from EVERREACH_ADS_START_DATE to yesterday (UTC). A key is the
#: same calendar date in every ad account's own time zone.
ads_daily_partitions = DailyPartitionsDefinition(
    start_date=ADS_SETTINGS.start_date.isoformat(), end_offset=0
)
