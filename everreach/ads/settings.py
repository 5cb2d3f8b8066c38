"""Settings of the ads sync, read from the environment (a bad value names its variable).

| variable | default | meaning |
| --- | --- | --- |
| `META_AD_ACCOUNT_IDS` | – | comma list of ad accounts, added to `meta_platform_config` |
| `EVERREACH_ADS_START_DATE` | 2024-01-01 | first daily partition (YYYY-MM-DD) |
| `EVERREACH_ADS_LOOKBACK_DAYS` | 28 | days before the partition re-read each run (0..28) |
| `EVERREACH_ADS_SCHEDULE` | `0 4 * * *` | cron of the daily sync (UTC) |
| `EVERREACH_ADS_CONVERSION_ACTION_TYPES` | `omni_purchase` | action types summed into `conversions` |
| `EVERREACH_ADS_ATTRIBUTION_WINDOWS` | `7d_click,1d_view` | windows summed into `conversions` |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from everreach.settings import SettingError, get_setting

DEFAULT_START_DATE = date(2024, 1, 1)
DEFAULT_LOOKBACK_DAYS = 28
#: Meta keeps revising a day for 28 days; re-reading further back only costs calls.
MAX_LOOKBACK_DAYS = 28
DEFAULT_SCHEDULE = "0 4 * * *"
DEFAULT_ACTION_TYPES: tuple[str, ...] = ("omni_purchase",)
#: Meta's default attribution setting: 7-day click plus 1-day view.
DEFAULT_WINDOWS: tuple[str, ...] = ("7d_click", "1d_view")
#: Windows requested on every pull so `actions` keeps them all for later re-derivation.
#: (7d_view and 28d_view stopped being returned on 2026-01-12.)
REQUESTED_WINDOWS: tuple[str, ...] = ("1d_click", "7d_click", "28d_click", "1d_view")
CLICK_WINDOWS = ("1d_click", "7d_click", "28d_click")
VIEW_WINDOWS = ("1d_view",)

#: Action types that count the same conversion more than once: an `omni_*` / aggregate
#: type includes its channel-specific types. Picking two from one family double counts.
OVERLAPPING_ACTION_TYPES: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "omni_purchase",
            "purchase",
            "offsite_conversion.fb_pixel_purchase",
            "onsite_web_purchase",
            "onsite_web_app_purchase",
            "web_in_store_purchase",
            "app_custom_event.fb_mobile_purchase",
            "onsite_conversion.purchase",
        }
    ),
    frozenset(
        {
            "lead",
            "omni_lead",
            "offsite_conversion.fb_pixel_lead",
            "onsite_conversion.lead_grouped",
            "leadgen_grouped",
            "onsite_web_lead",
        }
    ),
    frozenset(
        {
            "omni_complete_registration",
            "complete_registration",
            "offsite_conversion.fb_pixel_complete_registration",
            "app_custom_event.fb_mobile_complete_registration",
        }
    ),
    frozenset(
        {
            "omni_add_to_cart",
            "add_to_cart",
            "offsite_conversion.fb_pixel_add_to_cart",
            "app_custom_event.fb_mobile_add_to_cart",
            "onsite_web_add_to_cart",
        }
    ),
    frozenset(
        {
            "omni_initiated_checkout",
            "initiate_checkout",
            "offsite_conversion.fb_pixel_initiate_checkout",
            "app_custom_event.fb_mobile_initiated_checkout",
        }
    ),
    frozenset({"link_click", "inline_link_click"}),
)

_ACCOUNT_ID = re.compile(r"^(act_)?(\d{1,20})$")
_ACTION_TYPE = re.compile(r"^[a-z0-9_.:\-]+$")
_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z]+$")


@dataclass(frozen=True)
class AdsSettings:
    """The ads sync's settings (see the module docstring for variables and defaults)."""

    account_ids: tuple[str, ...] = ()
    start_date: date = DEFAULT_START_DATE
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    schedule: str = DEFAULT_SCHEDULE
    conversion_action_types: tuple[str, ...] = DEFAULT_ACTION_TYPES
    attribution_windows: tuple[str, ...] = DEFAULT_WINDOWS

    @property
    def requested_windows(self) -> tuple[str, ...]:
        """Attribution windows to request from Meta (all reported ones, plus configured)."""
        extra = tuple(
            w for w in self.attribution_windows if w not in REQUESTED_WINDOWS and w != "default"
        )
        return REQUESTED_WINDOWS + extra


def normalize_account_id(raw: str, setting: str = "META_AD_ACCOUNT_IDS") -> str:
    """`act_123` or `123` → `123` (the form stored in `ad_performance.ad_account_id`)."""
    match = _ACCOUNT_ID.match(raw.strip())
    if not match:
        raise SettingError(
            setting,
            f"{raw!r} is not an ad account id",
            "numeric ids, optionally prefixed with act_, comma separated",
        )
    return match.group(2)


def parse_account_ids(value: str | None, setting: str = "META_AD_ACCOUNT_IDS") -> tuple[str, ...]:
    """A comma list of ad account ids, normalized and de-duplicated (order kept)."""
    if not value:
        return ()
    seen: dict[str, None] = {}
    for part in value.split(","):
        if part.strip():
            seen[normalize_account_id(part, setting)] = None
    return tuple(seen)


def parse_lookback(value: str | None, setting: str = "EVERREACH_ADS_LOOKBACK_DAYS") -> int:
    """Lookback days, 0..28."""
    if value is None:
        return DEFAULT_LOOKBACK_DAYS
    if not value.isdigit():
        raise SettingError(setting, f"{value!r} is not a whole number of days", "0 to 28")
    days = int(value)
    if days > MAX_LOOKBACK_DAYS:
        raise SettingError(setting, f"{days} is above Meta's 28-day revision window", "0 to 28")
    return days


def parse_start_date(value: str | None, setting: str = "EVERREACH_ADS_START_DATE") -> date:
    """The first partition date (Meta keeps insights for 37 months)."""
    if value is None:
        return DEFAULT_START_DATE
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise SettingError(setting, f"{value!r} is not a date", "YYYY-MM-DD") from exc


def parse_cron(value: str | None, setting: str = "EVERREACH_ADS_SCHEDULE") -> str:
    """A five-field cron expression (validated by Dagster's own cron parser when present)."""
    if value is None:
        return DEFAULT_SCHEDULE
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise SettingError(
            setting, f"{value!r} is not a cron expression", "five fields, e.g. '0 4 * * *'"
        )
    try:
        from dagster._utils.schedules import is_valid_cron_string
    except ImportError:  # pragma: no cover - Dagster is optional for this module
        return " ".join(fields)
    if not is_valid_cron_string(" ".join(fields)):
        raise SettingError(
            setting, f"{value!r} is not a valid cron expression", "five fields, e.g. '0 4 * * *'"
        )
    return " ".join(fields)


def parse_action_types(
    value: str | None, setting: str = "EVERREACH_ADS_CONVERSION_ACTION_TYPES"
) -> tuple[str, ...]:
    """Conversion action types; two from one overlapping family are refused."""
    if value is None:
        return DEFAULT_ACTION_TYPES
    types = tuple(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))
    if not types:
        raise SettingError(setting, "is empty", "a comma list of Meta action types")
    for t in types:
        if not _ACTION_TYPE.match(t):
            raise SettingError(
                setting,
                f"{t!r} is not a Meta action type",
                "e.g. omni_purchase or offsite_conversion.fb_pixel_purchase",
            )
    for family in OVERLAPPING_ACTION_TYPES:
        clash = sorted(family.intersection(types))
        if len(clash) > 1:
            raise SettingError(
                setting,
                f"{', '.join(clash)} count the same conversions (summing them double counts)",
                "one action type per family",
            )
    return types


def parse_windows(
    value: str | None, setting: str = "EVERREACH_ADS_ATTRIBUTION_WINDOWS"
) -> tuple[str, ...]:
    """Attribution windows: at most one click and one view window, or `default` alone."""
    if value is None:
        return DEFAULT_WINDOWS
    windows = tuple(dict.fromkeys(w.strip() for w in value.split(",") if w.strip()))
    expected = "default, or one of 1d_click/7d_click/28d_click plus optionally 1d_view"
    if not windows:
        raise SettingError(setting, "is empty", expected)
    if "default" in windows:
        if len(windows) > 1:
            raise SettingError(
                setting,
                "'default' already is Meta's attribution setting; "
                "combining it with other windows double counts",
                expected,
            )
        return windows
    for w in windows:
        if w not in CLICK_WINDOWS + VIEW_WINDOWS:
            raise SettingError(setting, f"{w!r} is not a window Meta returns", expected)
    # Click windows nest (1d ⊂ 7d ⊂ 28d): two of them would count a conversion twice.
    if sum(w in CLICK_WINDOWS for w in windows) > 1:
        raise SettingError(
            setting, "click windows nest (1d_click is inside 7d_click); pick one", expected
        )
    return windows


def load_ads_settings(env: Mapping[str, str] | None = None) -> AdsSettings:
    """Read every ads setting from `env` (default: the process environment)."""
    return AdsSettings(
        account_ids=parse_account_ids(get_setting("META_AD_ACCOUNT_IDS", env)),
        start_date=parse_start_date(get_setting("EVERREACH_ADS_START_DATE", env)),
        lookback_days=parse_lookback(get_setting("EVERREACH_ADS_LOOKBACK_DAYS", env)),
        schedule=parse_cron(get_setting("EVERREACH_ADS_SCHEDULE", env)),
        conversion_action_types=parse_action_types(
            get_setting("EVERREACH_ADS_CONVERSION_ACTION_TYPES", env)
        ),
        attribution_windows=parse_windows(get_setting("EVERREACH_ADS_ATTRIBUTION_WINDOWS", env)),
    )
