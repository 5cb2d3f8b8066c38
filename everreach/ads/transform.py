"""Meta insights rows → `ad_performance` tuples, and the conversions derivation.

Meta answers numbers as strings ("12.34"); they are passed to COPY unchanged (Postgres
parses them exactly), so no float rounding happens on the way. `actions` and
`action_values` are kept whole as jsonb; `conversions` / `conversion_value` are derived
from the configured action types and attribution windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson

LEVELS: tuple[str, ...] = ("account", "campaign", "adset", "ad")

#: Insights fields requested at each level (ids and names of the level and its parents).
_COMMON_FIELDS = (
    "account_id",
    "account_currency",
    "date_start",
    "date_stop",
    "spend",
    "impressions",
    "reach",
    "frequency",
    "clicks",
    "inline_link_clicks",
    "ctr",
    "cpc",
    "cpm",
    "actions",
    "action_values",
)
LEVEL_FIELDS: dict[str, tuple[str, ...]] = {
    "account": ("account_name", *_COMMON_FIELDS),
    "campaign": ("campaign_id", "campaign_name", *_COMMON_FIELDS),
    "adset": ("campaign_id", "campaign_name", "adset_id", "adset_name", *_COMMON_FIELDS),
    "ad": ("campaign_id", "campaign_name", "adset_id", "ad_id", "ad_name", *_COMMON_FIELDS),
}

#: Columns written to `ad_performance`, in the order `to_record` produces them.
AD_PERFORMANCE_COLUMNS: tuple[str, ...] = (
    "date",
    "ad_account_id",
    "level",
    "entity_id",
    "entity_name",
    "campaign_id",
    "parent_campaign_id",
    "meta_campaign_id",
    "meta_adset_id",
    "meta_ad_id",
    "account_currency",
    "account_timezone",
    "spend",
    "impressions",
    "reach",
    "frequency",
    "clicks",
    "link_clicks",
    "ctr",
    "cpc",
    "cpm",
    "actions",
    "action_values",
    "conversions",
    "conversion_value",
)
# Positions used by the loader to fill in the EverReach campaign uuids.
IDX_CAMPAIGN_ID = AD_PERFORMANCE_COLUMNS.index("campaign_id")
IDX_PARENT_CAMPAIGN_ID = AD_PERFORMANCE_COLUMNS.index("parent_campaign_id")
IDX_META_CAMPAIGN_ID = AD_PERFORMANCE_COLUMNS.index("meta_campaign_id")
IDX_SPEND = AD_PERFORMANCE_COLUMNS.index("spend")
IDX_ENTITY_NAME = AD_PERFORMANCE_COLUMNS.index("entity_name")

_ZERO = Decimal(0)


class InsightRowError(ValueError):
    """An insights row that cannot be stored as Meta documents it (bad date, missing id)."""


@dataclass(frozen=True)
class ConversionRule:
    """Which `actions` entries count as conversions (one tier of types, disjoint windows)."""

    action_types: frozenset[str]
    windows: tuple[str, ...]

    @classmethod
    def of(cls, action_types: Iterable[str], windows: Iterable[str]) -> ConversionRule:
        """Build a rule; `windows == ("default",)` means Meta's `value` (the account's setting)."""
        return cls(frozenset(action_types), tuple(windows))

    def total(self, entries: Any) -> Decimal:
        """Sum of the configured windows over the configured action types in `entries`."""
        if not entries:
            return _ZERO
        total = _ZERO
        types = self.action_types
        # Meta's `value` (the account's setting) or the configured windows; a window with
        # nothing attributed is absent from the entry (Meta omits it).
        keys = ("value",) if self.windows == ("default",) else self.windows
        for entry in entries:
            if type(entry) is not dict and not isinstance(entry, dict):
                continue
            if entry.get("action_type") not in types:
                continue
            for key in keys:
                value = entry.get(key)
                if value:
                    total += _decimal(value)
        return total


def _decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return _ZERO
    try:
        return Decimal(value if type(value) is str else str(value))
    except InvalidOperation as exc:
        raise InsightRowError(f"not a number: {value!r}") from exc


@dataclass(frozen=True)
class AccountContext:
    """What every row of one ad account carries: id, currency, time zone."""

    account_id: str  # without act_
    currency: str | None
    timezone: str | None


@lru_cache(maxsize=4096)
def _day(text: Any) -> date:
    """`date_start` as a date (a sync sees a few hundred distinct days: parsed once each)."""
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise InsightRowError(f"bad date_start {text!r}") from exc


def _json(value: Any) -> str:
    if not value:
        return "[]"
    return orjson.dumps(value).decode()


def to_record(
    row: Mapping[str, Any],
    level: str,
    account: AccountContext,
    rule: ConversionRule,
    since: date,
    until: date,
) -> list[Any]:
    """One `ad_performance` row (in `AD_PERFORMANCE_COLUMNS` order) from a Meta insights row.

    The EverReach campaign uuids (`campaign_id`, `parent_campaign_id`) are left None here;
    the loader resolves them from `meta_campaign_id`. Raises `InsightRowError` for a row
    that is not one account-local day inside `since..until` (it would escape the window
    the load replaces).
    """
    day = row.get("date_start")
    if day is None or row.get("date_stop", day) != day:
        raise InsightRowError(f"insights row is not daily: {day!r}..{row.get('date_stop')!r}")
    if type(day) is not str:
        raise InsightRowError(f"bad date_start {day!r}")
    row_date = _day(day)
    if not since <= row_date <= until:
        raise InsightRowError(f"insights row for {day} outside the requested {since}..{until}")
    meta_campaign = row.get("campaign_id")
    meta_adset = row.get("adset_id")
    meta_ad = row.get("ad_id")
    if level == "account":
        entity_id, entity_name = account.account_id, row.get("account_name")
        meta_campaign = meta_adset = meta_ad = None
    elif level == "campaign":
        entity_id, entity_name = meta_campaign, row.get("campaign_name")
        meta_adset = meta_ad = None
    elif level == "adset":
        entity_id, entity_name = meta_adset, row.get("adset_name")
        meta_ad = None
    elif level == "ad":
        entity_id, entity_name = meta_ad, row.get("ad_name")
    else:
        raise InsightRowError(f"unknown level {level!r}")
    if not entity_id or (level != "account" and not meta_campaign):
        raise InsightRowError(f"{level}-level insights row without its ids: {dict(row)!r}")
    actions = row.get("actions")
    action_values = row.get("action_values")
    return [
        row_date,
        account.account_id,
        level,
        entity_id,
        entity_name,
        None,
        None,
        meta_campaign,
        meta_adset,
        meta_ad,
        row.get("account_currency") or account.currency,
        account.timezone,
        row.get("spend") or "0",
        row.get("impressions") or "0",
        row.get("reach"),
        row.get("frequency"),
        row.get("clicks"),
        row.get("inline_link_clicks"),
        row.get("ctr"),
        row.get("cpc"),
        row.get("cpm"),
        _json(actions),
        _json(action_values),
        rule.total(actions),
        rule.total(action_values),
    ]


# --------------------------------------------------------------------------- COPY text
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_line(rec: list[Any]) -> str:
    """One `to_record` record as a line of COPY text format (tab-separated, `\\N` for null),
    the same text `psycopg`'s `write_row` sends, built without per-value adapters.

    Fast path: join, then escape only when a backslash (other than the null markers), tab
    or line break occurs anywhere in the row.
    """
    # str(date) is its ISO form; Decimals and ints print as Postgres reads them.
    line = "\t".join([v if type(v) is str else ("\\N" if v is None else str(v)) for v in rec])
    if (
        line.count("\\") != rec.count(None)
        or line.count("\t") != len(rec) - 1
        or "\n" in line
        or "\r" in line
    ):
        line = "\t".join("\\N" if v is None else str(v).translate(_COPY_ESCAPES) for v in rec)
    return line + "\n"
