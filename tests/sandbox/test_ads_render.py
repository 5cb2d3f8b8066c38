"""The sandbox's fast insights renderer (`InsightsQuery.json_slice`) serves exactly the rows
of the reference renderer (`InsightsQuery[start:stop]`), byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest

from everreach.sandbox.ads import parse_insights
from everreach.sandbox.core import Sandbox, SandboxConfig

ALL = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
FULL = (
    "account_id,account_name,account_currency,campaign_id,campaign_name,adset_id,"
    "adset_name,ad_id,ad_name,objective,date_start,date_stop,spend,impressions,reach,"
    "frequency,clicks,inline_link_clicks,ctr,cpc,cpm,actions,action_values"
)


@pytest.fixture(scope="module")
def state():
    sandbox = Sandbox(
        SandboxConfig(
            seed=11,
            accounts=3,
            campaigns_per_account=3,
            adsets_per_campaign=2,
            ads_per_adset=3,
            days=40,
            now=datetime(2026, 3, 15, 10, tzinfo=UTC),
        )
    )
    sandbox.load_domains()
    return sandbox.domains["ads"]


@pytest.mark.parametrize("level", ["account", "campaign", "adset", "ad"])
@pytest.mark.parametrize(
    "fields,windows",
    [
        (FULL, ["1d_click", "7d_click", "28d_click", "1d_view"]),
        (FULL, None),
        (
            "actions,ad_name,spend,campaign_id,frequency,ad_name",
            ["28d_click", "7d_view", "28d_click"],
        ),
        ("action_values,objective,cpm,ctr,cpc,reach", ["1d_view"]),
        (None, None),
    ],
)
@pytest.mark.parametrize("increment", ["1", "7", "all_days"])
def test_json_slice_equals_reference_rows(state, level, fields, windows, increment):
    time_range = {"since": "2026-01-25", "until": "2026-03-16"}  # before start .. after today
    for acct in state.accounts.values():
        today = state.sandbox.now().astimezone(acct.tz).date()
        params = {
            "level": level,
            "time_increment": increment,
            "time_range": json.dumps(time_range),
            "filtering": json.dumps(
                [{"field": "ad.effective_status", "operator": "IN", "value": ALL}]
            ),
        }
        if fields:
            params["fields"] = fields
        if windows:
            params["action_attribution_windows"] = json.dumps(windows)
        query = parse_insights(state, params, acct, None, today)
        total = len(query)
        for start, stop in [(0, total), (0, 7), (5, 40), (total - 3, total + 5), (13, 13)]:
            expected = orjson.dumps(query[start:stop])
            assert b"[" + query.json_slice(start, stop) + b"]" == expected


BREAKDOWN_CASES = [
    {"breakdowns": ["age", "gender"]},
    {"breakdowns": ["country"], "sort": ["spend_descending"]},
    {"breakdowns": ["region"]},
    {"breakdowns": ["publisher_platform", "platform_position", "impression_device"]},
    {"breakdowns": ["hourly_stats_aggregated_by_audience_time_zone"]},
    {"breakdowns": ["product_id", "age"]},
    {"breakdowns": ["body_asset"]},
    {"action_breakdowns": ["action_type", "action_target_id", "action_destination"]},
    {"action_breakdowns": ["action_device"], "breakdowns": ["publisher_platform"]},
    {"action_breakdowns": ["action_carousel_card_id", "action_carousel_card_name"]},
    {"action_breakdowns": ["action_reaction"]},
    {"sort": ["impressions_ascending"]},
]
EXTRA = (
    "cpp,unique_clicks,outbound_clicks,cost_per_action_type,purchase_roas,video_play_actions,"
    "video_play_curve_actions,results,quality_ranking,created_time,place_page_name"
)


#: Cases also rendered with the extra (derived) fields: one per rendering path, the
#: large-cell breakdowns without them to keep the suite fast.
WITH_EXTRA = [0, 4, 6, 7, 8, 11]


@pytest.mark.parametrize("level", ["account", "ad"])
@pytest.mark.parametrize(
    "case, extra_fields",
    [(c, False) for c in BREAKDOWN_CASES] + [(BREAKDOWN_CASES[i], True) for i in WITH_EXTRA],
    ids=lambda c: ";".join(map(str, c.values())) if isinstance(c, dict) else str(c),
)
def test_json_slice_equals_reference_rows_with_breakdowns(state, level, case, extra_fields):
    time_range = {"since": "2026-03-09", "until": "2026-03-16"}  # a matured and a young week
    for acct in state.accounts.values():
        today = state.sandbox.now().astimezone(acct.tz).date()
        fields = FULL + ("," + EXTRA if extra_fields else "")
        if "hourly_stats_aggregated_by_audience_time_zone" in case.get("breakdowns", []):
            fields = fields.replace("video_play_actions,video_play_curve_actions,", "")
        params = {
            "level": level,
            "time_increment": "1",
            "fields": fields,
            "time_range": json.dumps(time_range),
            "action_attribution_windows": json.dumps(["1d_click", "7d_click", "1d_view"]),
            **{k: json.dumps(v) for k, v in case.items()},
        }
        query = parse_insights(state, params, acct, None, today)
        total = len(query)
        for start, stop in [(0, total), (0, 7), (5, 40), (total - 3, total + 5), (13, 13)]:
            expected = orjson.dumps(query[start:stop])
            assert b"[" + query.json_slice(start, stop) + b"]" == expected
