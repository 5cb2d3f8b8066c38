"""Organic sync settings, read from the environment (bad values name the variable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from everreach.settings import SettingError, get_setting

DEFAULT_START_DATE = "2025-01-01"
DEFAULT_SCHEDULE = "30 3 * * *"
DEFAULT_RECENT_DAYS = 14
DEFAULT_OLD_POST_REFRESH_DAYS = 7

#: (name, default, purpose) — for the README table.
ORGANIC_SETTINGS: tuple[tuple[str, str, str], ...] = (
    (
        "EVERREACH_ORGANIC_START_DATE",
        DEFAULT_START_DATE,
        "First daily partition of the organic assets (YYYY-MM-DD).",
    ),
    (
        "EVERREACH_ORGANIC_SCHEDULE",
        DEFAULT_SCHEDULE,
        "Cron (UTC) of the daily organic sync (yesterday's partition).",
    ),
    (
        "EVERREACH_ORGANIC_RECENT_DAYS",
        str(DEFAULT_RECENT_DAYS),
        "Posts younger than this many days get an insights snapshot every day.",
    ),
    (
        "EVERREACH_ORGANIC_OLD_POST_REFRESH_DAYS",
        str(DEFAULT_OLD_POST_REFRESH_DAYS),
        "Older posts get a snapshot once every this many days.",
    ),
)


@dataclass(frozen=True)
class OrganicSettings:
    """The organic sync's knobs."""

    start_date: date
    schedule: str
    recent_days: int
    old_post_refresh_days: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OrganicSettings:
        """Read and validate every ``EVERREACH_ORGANIC_*`` setting."""
        raw_start = get_setting("EVERREACH_ORGANIC_START_DATE", env) or DEFAULT_START_DATE
        try:
            start = date.fromisoformat(raw_start)
        except ValueError as exc:
            raise SettingError(
                "EVERREACH_ORGANIC_START_DATE", f"not a date: {raw_start!r}", "YYYY-MM-DD"
            ) from exc
        schedule = get_setting("EVERREACH_ORGANIC_SCHEDULE", env) or DEFAULT_SCHEDULE
        if not _valid_cron(schedule):
            raise SettingError(
                "EVERREACH_ORGANIC_SCHEDULE",
                f"not a cron expression: {schedule!r}",
                "five fields, e.g. '30 3 * * *'",
            )
        return cls(
            start,
            schedule,
            _positive_int("EVERREACH_ORGANIC_RECENT_DAYS", DEFAULT_RECENT_DAYS, env),
            _positive_int(
                "EVERREACH_ORGANIC_OLD_POST_REFRESH_DAYS", DEFAULT_OLD_POST_REFRESH_DAYS, env
            ),
        )


def _positive_int(name: str, default: int, env: Mapping[str, str] | None) -> int:
    raw = get_setting(name, env)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingError(name, f"not an integer: {raw!r}", "a whole number ≥ 1") from exc
    if value < 1:
        raise SettingError(name, f"must be at least 1, got {value}", "a whole number ≥ 1")
    return value


def _valid_cron(expr: str) -> bool:
    try:
        from dagster._utils.schedules import is_valid_cron_string
    except ImportError:  # Dagster absent: a shape check keeps everreach Dagster-free
        return len(expr.split()) == 5
    return is_valid_cron_string(expr)
