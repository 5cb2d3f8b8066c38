"""Settings of the ads sync: which accounts, which days, and what counts as a conversion."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from everreach.settings import EverReachSettings, Invalid, SettingError, cron_expression, setting

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
_WINDOWS_EXPECTED = "default, or one of 1d_click/7d_click/28d_click plus optionally 1d_view"


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


def comma_list(value: object) -> object:
    """``"a, b,,a"`` → ``("a", "b")``: stripped, empty items dropped, first occurrence kept."""
    if isinstance(value, str):
        return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    return value


CommaList = Annotated[tuple[str, ...], BeforeValidator(comma_list)]


class AdsSettings(EverReachSettings):
    """The ads sync's settings; a bad value fails naming its variable."""

    account_ids: CommaList = setting(
        "META_AD_ACCOUNT_IDS",
        (),
        "Comma list of ad account ids to sync, in addition to `meta_platform_config`.",
        expected="numeric ids, optionally prefixed with act_, comma separated",
    )
    start_date: date = setting(
        "EVERREACH_ADS_START_DATE",
        DEFAULT_START_DATE,
        "First daily partition of the ads assets.",
        expected="YYYY-MM-DD",
    )
    lookback_days: Annotated[int, Field(ge=0, le=MAX_LOOKBACK_DAYS)] = setting(
        "EVERREACH_ADS_LOOKBACK_DAYS",
        DEFAULT_LOOKBACK_DAYS,
        "Days before each partition re-read and replaced (Meta revises 28 days; 0..28).",
        expected="0 to 28 (Meta revises a day for 28 days)",
    )
    schedule: str = setting(
        "EVERREACH_ADS_SCHEDULE",
        DEFAULT_SCHEDULE,
        "Cron (UTC) of the daily ads sync.",
        expected="five fields, e.g. '0 4 * * *'",
    )
    conversion_action_types: CommaList = setting(
        "EVERREACH_ADS_CONVERSION_ACTION_TYPES",
        DEFAULT_ACTION_TYPES,
        "Action types summed into conversions/conversion_value (one non-overlapping tier).",
        expected="a comma list of Meta action types, one per family",
    )
    attribution_windows: CommaList = setting(
        "EVERREACH_ADS_ATTRIBUTION_WINDOWS",
        DEFAULT_WINDOWS,
        "Attribution windows requested and summed for conversions.",
        expected=_WINDOWS_EXPECTED,
    )

    @property
    def requested_windows(self) -> tuple[str, ...]:
        """Attribution windows to request from Meta (all reported ones, plus configured)."""
        extra = tuple(
            w for w in self.attribution_windows if w not in REQUESTED_WINDOWS and w != "default"
        )
        return REQUESTED_WINDOWS + extra

    @field_validator("account_ids")
    @classmethod
    def _account_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalize_account_id(i) for i in ids))

    _schedule = field_validator("schedule")(cron_expression)

    @field_validator("conversion_action_types")
    @classmethod
    def _action_types(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        if not types:
            raise Invalid("is empty", "a comma list of Meta action types")
        for t in types:
            if not _ACTION_TYPE.match(t):
                raise Invalid(
                    f"{t!r} is not a Meta action type",
                    "e.g. omni_purchase or offsite_conversion.fb_pixel_purchase",
                )
        for family in OVERLAPPING_ACTION_TYPES:
            clash = sorted(family.intersection(types))
            if len(clash) > 1:
                raise Invalid(
                    f"{', '.join(clash)} count the same conversions (summing them double counts)",
                    "one action type per family",
                )
        return types

    @field_validator("attribution_windows")
    @classmethod
    def _windows(cls, windows: tuple[str, ...]) -> tuple[str, ...]:
        if not windows:
            raise Invalid("is empty", _WINDOWS_EXPECTED)
        if "default" in windows:
            if len(windows) > 1:
                raise Invalid(
                    "'default' already is Meta's attribution setting; "
                    "combining it with other windows double counts",
                    _WINDOWS_EXPECTED,
                )
            return windows
        for w in windows:
            if w not in CLICK_WINDOWS + VIEW_WINDOWS:
                raise Invalid(f"{w!r} is not a window Meta returns", _WINDOWS_EXPECTED)
        # Click windows nest (1d ⊂ 7d ⊂ 28d): two of them would count a conversion twice.
        if sum(w in CLICK_WINDOWS for w in windows) > 1:
            raise Invalid(
                "click windows nest (1d_click is inside 7d_click); pick one", _WINDOWS_EXPECTED
            )
        return windows
