"""The sandbox's insights tables agree with Meta's machine-readable spec, and the sandbox
accepts every AdsInsights field the spec lists.

The spec files are another project's data in `../shared/meta_specs/` (next to the repository);
the sandbox carries its own transcription (`everreach.sandbox.insights_spec`) so that it runs
without them. These tests catch drift between the two, and skip when the files are absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from everreach.sandbox import ads_spec, breakdowns, insights_spec
from everreach.sandbox.insights_fields import EXTRA_FIELDS
from everreach.sandbox.testing import RunningSandbox

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "meta_specs"
TOKEN = {"access_token": "sandbox-token"}
KIND = {
    "string": "s",
    "list<AdsActionStats>": "a",
    "list<Object>": "o",
    "list<AdsHistogramStats>": "h",
}
#: The insights edges and the prefix of their enum parameter types in the spec.
EDGES = {
    "AdAccount": "adaccountinsights_",
    "Campaign": "adcampaigngroupinsights_",
    "AdSet": "adcampaigninsights_",
    "Ad": "adgroupinsights_",
}


def load(name: str) -> dict:
    path = SPECS / name
    if not path.exists():
        pytest.skip(f"Meta's spec files are not next to the repository ({path} is absent)")
    return json.loads(path.read_text())


def test_fields_match_the_spec():
    spec = load("graph_types.json")["AdsInsights"]["fields"]
    assert insights_spec.FIELD_KINDS == {name: KIND[kind] for name, kind in spec.items()}
    assert set(insights_spec.REMOVED_AFTER_V19) <= set(spec)


@pytest.mark.parametrize("node", sorted(EDGES))
def test_edge_params_and_enums_match_the_spec(node: str):
    types = load("graph_types.json")
    enums = load("enums.json")
    prefix = EDGES[node]
    edges = [a for a in types[node]["apis"] if a["endpoint"] == "insights"]
    assert {a["method"] for a in edges} == {"GET", "POST"}
    for edge in edges:
        params = {k: v.replace(prefix, "") for k, v in edge["params"].items()}
        assert params == insights_spec.INSIGHTS_PARAMS
    assert tuple(enums[f"{prefix}breakdowns_enum_param"]) == insights_spec.BREAKDOWNS
    assert tuple(enums[f"{prefix}action_breakdowns_enum_param"]) == insights_spec.ACTION_BREAKDOWNS
    windows = enums[f"{prefix}action_attribution_windows_enum_param"]
    assert tuple(windows) == insights_spec.ATTRIBUTION_WINDOWS
    assert tuple(enums[f"{prefix}date_preset_enum_param"]) == insights_spec.DATE_PRESETS
    assert tuple(enums[f"{prefix}level_enum_param"]) == insights_spec.LEVELS
    times = enums[f"{prefix}action_report_time_enum_param"]
    assert tuple(times) == insights_spec.ACTION_REPORT_TIMES


def test_graph_wide_params_match_the_conventions():
    conventions = load("graph_conventions.json")["graph_wide_params"]
    assert set(insights_spec.GRAPH_WIDE_PARAMS) == set(conventions["any"])
    assert set(insights_spec.LIST_PARAMS) == set(conventions["list_edges"])


def test_adcreative_fields_match_the_spec():
    spec = load("graph_types.json")["AdCreative"]["fields"]
    assert ads_spec.FIELDS["AdCreative"] == spec


def test_every_breakdown_has_values_and_a_rule():
    for name in insights_spec.BREAKDOWNS:
        assert name in breakdowns.FAMILY_OF, f"{name} has no value table"
    combos = set().union(*breakdowns.STARRED, *breakdowns.WITHOUT_ACTIONS)
    assert set(insights_spec.BREAKDOWNS) <= combos
    covered = set(breakdowns.STAR_ACTIONS).union(*(g for g, _ in breakdowns.SPECIAL_ACTIONS))
    assert covered == set(insights_spec.ACTION_BREAKDOWNS)


def account_of(sb: RunningSandbox) -> str:
    return requests.get(sb.url("me/adaccounts"), params=TOKEN).json()["data"][0]["id"]


@pytest.mark.parametrize("level", ["account", "ad"])
def test_every_spec_field_is_accepted(sb: RunningSandbox, level: str):
    """All 200 AdsInsights fields in one request (minus the 8 Meta removed in v19): 200 OK,
    every row has the core metrics, and most extra fields have a value."""
    spec_fields = [f for f in insights_spec.FIELD_KINDS if f not in insights_spec.REMOVED_AFTER_V19]
    resp = requests.get(
        sb.url(f"{account_of(sb)}/insights"),
        params={
            **TOKEN,
            "level": level,
            "fields": ",".join(spec_fields),
            "time_range": json.dumps({"since": "2026-03-01", "until": "2026-03-02"}),
            "time_increment": 1,
            "limit": 500,
        },
    )
    assert resp.status_code == 200, resp.text
    rows = resp.json()["data"]
    assert rows
    seen = set().union(*rows)
    for row in rows:
        assert {"spend", "impressions", "reach", "clicks", "date_start", "date_stop"} <= set(row)
        for name, value in row.items():
            kind = insights_spec.FIELD_KINDS.get(name)
            if kind == "s":
                assert isinstance(value, str), name
            elif kind in ("a", "o", "h"):
                assert isinstance(value, list) and value, name
    # The sandbox models spend, delivery, clicks, conversions, video and result indicators;
    # what it has no concept of (catalogs, apps, marketing messages) is left out like Meta
    # leaves out empty fields.
    modelled = {
        "cpp", "unique_clicks", "unique_ctr", "outbound_clicks", "cost_per_action_type",
        "purchase_roas", "website_purchase_roas", "conversions", "conversion_values",
        "video_play_actions", "video_p25_watched_actions", "video_play_curve_actions",
        "cost_per_thruplay", "estimated_ad_recallers", "full_view_impressions",
        "buying_type", "attribution_setting", "created_time", "inline_post_engagement",
        "website_ctr",
    }  # fmt: skip
    assert modelled <= seen
    if level == "ad":  # what belongs to an object (its objective, rankings, creative)
        assert {
            "quality_ranking", "creative_media_type", "adset_start", "results",
            "cost_per_result", "optimization_goal", "updated_time",
        } <= seen  # fmt: skip
    assert len(seen & EXTRA_FIELDS) >= 80


def test_fields_meta_removed_in_v19_answer_metas_error(sb: RunningSandbox):
    resp = requests.get(
        sb.url(f"{account_of(sb)}/insights"),
        params={**TOKEN, "fields": "spend,age_targeting,labels,estimated_ad_recallers_lower_bound"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == (
        "(#100) age_targeting, labels, estimated_ad_recallers_lower_bound are not valid for "
        "fields param after V19.0"
    )


def test_an_unknown_field_is_still_refused(sb: RunningSandbox):
    resp = requests.get(
        sb.url(f"{account_of(sb)}/insights"), params={**TOKEN, "fields": "spend,bogus"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("(#100) bogus is not valid for fields param")


def test_derived_fields_agree_with_the_core_metrics(sb: RunningSandbox):
    (row,) = requests.get(
        sb.url(f"{account_of(sb)}/insights"),
        params={
            **TOKEN,
            "level": "account",
            "fields": "spend,impressions,reach,clicks,inline_link_clicks,cpp,unique_clicks,"
            "cost_per_inline_link_click,purchase_roas,action_values,cost_per_action_type,actions",
            "time_range": json.dumps({"since": "2026-03-01", "until": "2026-03-01"}),
        },
    ).json()["data"]
    spend = float(row["spend"])
    assert float(row["cpp"]) == pytest.approx(spend / int(row["reach"]) * 1000, rel=1e-5)
    assert int(row["unique_clicks"]) <= int(row["clicks"])
    cost = float(row["cost_per_inline_link_click"])
    assert cost == pytest.approx(spend / int(row["inline_link_clicks"]), rel=1e-5)
    value = next(a for a in row["action_values"] if a["action_type"] == "omni_purchase")
    roas = next(a for a in row["purchase_roas"] if a["action_type"] == "omni_purchase")
    assert float(roas["value"]) == pytest.approx(float(value["value"]) / spend, rel=1e-5)
    costs = {a["action_type"]: float(a["value"]) for a in row["cost_per_action_type"]}
    for action in row["actions"]:
        expected = spend / int(action["value"])
        assert costs[action["action_type"]] == pytest.approx(expected, rel=1e-5)
