"""Pure parts: settings validation, conversions derivation, row shaping."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
import pytest

from everreach.ads.objects import budget
from everreach.ads.settings import AdsSettings
from everreach.ads.transform import (
    AD_PERFORMANCE_COLUMNS,
    AccountContext,
    ConversionRule,
    InsightRowError,
    to_record,
)
from everreach.settings import SettingError

# An insights row shaped as Meta documents it: numbers as strings, windows omitted when 0.
META_ROW = {
    "account_id": "42",
    "account_currency": "EUR",
    "campaign_id": "7",
    "campaign_name": "Spring",
    "date_start": "2026-03-29",
    "date_stop": "2026-03-29",
    "spend": "12.34",
    "impressions": "1000",
    "reach": "800",
    "frequency": "1.25",
    "clicks": "30",
    "inline_link_clicks": "20",
    "ctr": "3.000000",
    "cpc": "0.411333",
    "cpm": "12.340000",
    "actions": [
        {"action_type": "link_click", "value": "20", "1d_click": "20", "7d_click": "20"},
        {
            "action_type": "offsite_conversion.fb_pixel_purchase",
            "value": "5",
            "1d_click": "2",
            "7d_click": "4",
            "28d_click": "6",
            "1d_view": "1",
        },
        {
            "action_type": "omni_purchase",
            "value": "5",
            "1d_click": "2",
            "7d_click": "4",
            "28d_click": "6",
            "1d_view": "1",
        },
    ],
    "action_values": [
        {
            "action_type": "omni_purchase",
            "value": "250.50",
            "7d_click": "200.25",
            "28d_click": "300.00",
            "1d_view": "50.25",
        },
    ],
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EVERREACH_ADS_LOOKBACK_DAYS", "29"),
        ("EVERREACH_ADS_LOOKBACK_DAYS", "a week"),
        ("EVERREACH_ADS_START_DATE", "2026-13-01"),
        ("EVERREACH_ADS_SCHEDULE", "every day"),
        ("EVERREACH_ADS_SCHEDULE", "99 4 * * *"),
        ("META_AD_ACCOUNT_IDS", "act_1,page_2"),
        (
            "EVERREACH_ADS_CONVERSION_ACTION_TYPES",
            "omni_purchase,offsite_conversion.fb_pixel_purchase",
        ),
        ("EVERREACH_ADS_ATTRIBUTION_WINDOWS", "1d_click,7d_click"),
        ("EVERREACH_ADS_ATTRIBUTION_WINDOWS", "default,1d_view"),
        ("EVERREACH_ADS_ATTRIBUTION_WINDOWS", "7d_view"),
    ],
)
def test_bad_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingError) as info:
        AdsSettings.from_env({name: value})
    assert info.value.name == name
    assert name in str(info.value)


def test_settings_defaults_and_parsing() -> None:
    assert AdsSettings.from_env({}) == AdsSettings()
    s = AdsSettings.from_env(
        {
            "META_AD_ACCOUNT_IDS": " act_12, 34 ,act_12",
            "EVERREACH_ADS_LOOKBACK_DAYS": "0",
            "EVERREACH_ADS_ATTRIBUTION_WINDOWS": "28d_click",
        }
    )
    assert s.account_ids == ("12", "34")
    assert s.lookback_days == 0
    assert s.requested_windows == ("1d_click", "7d_click", "28d_click", "1d_view")
    assert AdsSettings().attribution_windows == ("7d_click", "1d_view")
    assert AdsSettings().conversion_action_types == ("omni_purchase",)


def test_conversions_use_one_tier_and_the_configured_windows() -> None:
    default = ConversionRule.of(["omni_purchase"], ["7d_click", "1d_view"])
    assert default.total(META_ROW["actions"]) == Decimal(5)  # 4 click + 1 view, pixel not added
    assert default.total(META_ROW["action_values"]) == Decimal("250.50")
    assert ConversionRule.of(["omni_purchase"], ["28d_click"]).total(
        META_ROW["actions"]
    ) == Decimal(6)
    assert ConversionRule.of(["omni_purchase"], ["default"]).total(META_ROW["actions"]) == Decimal(
        5
    )
    # A window Meta omitted (nothing attributed) counts as zero.
    assert ConversionRule.of(["omni_purchase"], ["1d_click"]).total(
        META_ROW["action_values"]
    ) == Decimal(0)
    assert default.total(None) == Decimal(0)


def test_to_record_keeps_meta_numbers_and_ids() -> None:
    ctx = AccountContext("42", "EUR", "Europe/Berlin")
    rule = ConversionRule.of(["omni_purchase"], ["7d_click", "1d_view"])
    rec = dict(
        zip(
            AD_PERFORMANCE_COLUMNS,
            to_record(META_ROW, "campaign", ctx, rule, date(2026, 3, 1), date(2026, 3, 31)),
            strict=True,
        )
    )
    assert rec["date"] == date(2026, 3, 29)
    assert (rec["level"], rec["entity_id"], rec["entity_name"]) == ("campaign", "7", "Spring")
    assert (rec["meta_campaign_id"], rec["meta_adset_id"], rec["meta_ad_id"]) == ("7", None, None)
    assert rec["spend"] == "12.34" and rec["ctr"] == "3.000000" and rec["link_clicks"] == "20"
    assert rec["account_timezone"] == "Europe/Berlin" and rec["account_currency"] == "EUR"
    assert rec["conversions"] == Decimal(5) and rec["conversion_value"] == Decimal("250.50")
    assert '"omni_purchase"' in rec["actions"]


def test_to_record_refuses_rows_outside_the_window() -> None:
    ctx = AccountContext("42", "EUR", "Europe/Berlin")
    rule = ConversionRule.of(["omni_purchase"], ["7d_click"])
    with pytest.raises(InsightRowError):
        to_record(META_ROW, "campaign", ctx, rule, date(2026, 3, 30), date(2026, 3, 31))
    weekly = {**META_ROW, "date_stop": "2026-04-04"}
    with pytest.raises(InsightRowError):
        to_record(weekly, "campaign", ctx, rule, date(2026, 3, 1), date(2026, 4, 30))


def test_budgets_are_converted_from_minor_units() -> None:
    assert budget("5000", "USD") == Decimal(50)
    assert budget("5000", "JPY") == Decimal(5000)
    assert budget(None, "USD") is None


def test_copy_line_is_the_text_write_row_sends(db: psycopg.Connection) -> None:
    from everreach.ads.transform import copy_line

    ctx = AccountContext("42", "EUR", "Europe/Berlin")
    rule = ConversionRule.of(["omni_purchase"], ["7d_click", "1d_view"])
    tricky = {
        **META_ROW,
        "campaign_name": 'Spring\t"sale"\\ \n€ Été \\N',
        "actions": [*META_ROW["actions"], {"action_type": 'a\\b"\t', "value": "1"}],
    }
    recs = [
        to_record(row, "campaign", ctx, rule, date(2026, 3, 1), date(2026, 3, 31))
        for row in (META_ROW, tricky, {**META_ROW, "actions": None, "reach": None})
    ]
    cols = ", ".join(AD_PERFORMANCE_COLUMNS)
    db.execute(f"create temp table a as select {cols} from ad_performance with no data")
    db.execute(f"create temp table b as select {cols} from ad_performance with no data")
    with db.cursor() as cur:
        with cur.copy(f"copy a ({cols}) from stdin") as copy:
            for rec in recs:
                copy.write_row(rec)
        with cur.copy(f"copy b ({cols}) from stdin") as copy:
            copy.write("".join(copy_line(rec) for rec in recs))
    got = db.execute(f"select {cols} from b order by reach nulls last, entity_name").fetchall()
    want = db.execute(f"select {cols} from a order by reach nulls last, entity_name").fetchall()
    assert got == want and len(got) == 3
    assert tricky["campaign_name"] in {row[4] for row in got}
