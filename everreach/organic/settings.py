"""Organic sync settings: the first partition, the schedule and the snapshot cadence."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field, field_validator

from everreach.settings import EverReachSettings, cron_expression, setting

PositiveDays = Annotated[int, Field(ge=1)]


class OrganicSettings(EverReachSettings):
    """The organic sync's knobs; a bad value fails naming its variable."""

    start_date: date = setting(
        "EVERREACH_ORGANIC_START_DATE",
        date(2025, 1, 1),
        "First daily partition of the organic assets.",
        expected="YYYY-MM-DD",
    )
    schedule: str = setting(
        "EVERREACH_ORGANIC_SCHEDULE",
        "30 3 * * *",
        "Cron (UTC) of the daily organic sync.",
        expected="five fields, e.g. '30 3 * * *'",
    )
    recent_days: PositiveDays = setting(
        "EVERREACH_ORGANIC_RECENT_DAYS",
        14,
        "Posts younger than this get an insights snapshot every day.",
        expected="a whole number ≥ 1",
    )
    old_post_refresh_days: PositiveDays = setting(
        "EVERREACH_ORGANIC_OLD_POST_REFRESH_DAYS",
        7,
        "Older posts get a snapshot once every this many days.",
        expected="a whole number ≥ 1",
    )

    _schedule = field_validator("schedule")(cron_expression)
