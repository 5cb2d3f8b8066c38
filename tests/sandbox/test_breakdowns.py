"""`breakdowns` and `action_breakdowns` in the sandbox behave as Meta documents them.

Valid breakdowns add their columns and split each day so that spend, impressions and clicks
add up to the unbroken rows (reach does not); invalid names and combinations answer Meta's
own errors; unknown parameters on the insights edges are refused.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from decimal import Decimal

import pytest
import requests

from everreach.sandbox.testing import RunningSandbox

TOKEN = {"access_token": "sandbox-token"}
RANGE = {"since": "2026-03-01", "until": "2026-03-07"}
ALL_ADS = [
    {
        "field": "ad.effective_status",
        "operator": "IN",
        "value": ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"],
    }
]
FIELDS = "ad_id,spend,impressions,clicks,reach,actions,action_values"
FAMILIES = [
    ["age", "gender"],
    ["age"],
    ["country"],
    ["region"],
    ["dma"],
    ["publisher_platform", "platform_position", "impression_device"],
    ["publisher_platform"],
    ["impression_device"],
    ["device_platform"],
    ["publisher_platform", "device_platform"],
    ["product_id"],
    ["product_id", "age", "gender"],
    ["hourly_stats_aggregated_by_advertiser_time_zone"],
    ["body_asset"],
    ["image_asset", "gender"],
    ["comscore_market"],  # one value: a breakdown with a single cell
]


def account_of(sb: RunningSandbox) -> str:
    return requests.get(sb.url("me/adaccounts"), params=TOKEN).json()["data"][0]["id"]


def get(sb: RunningSandbox, acct: str, **params) -> requests.Response:
    query = {
        **TOKEN,
        "limit": 5000,
        **{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in params.items()},
    }
    return requests.get(sb.url(f"{acct}/insights"), params=query)


def rows(sb: RunningSandbox, acct: str, **params) -> list[dict]:
    out: list[dict] = []
    resp = get(sb, acct, **params)
    while True:
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out.extend(body["data"])
        nxt = body.get("paging", {}).get("next")
        if not nxt:
            return out
        resp = requests.get(nxt)


def error(resp: requests.Response) -> str:
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == 100 and err["type"] == "OAuthException"
    return err["message"]


def daily(sb: RunningSandbox, acct: str, **extra) -> list[dict]:
    return rows(
        sb,
        acct,
        level="ad",
        time_increment=1,
        time_range=RANGE,
        fields=FIELDS,
        filtering=ALL_ADS,
        **extra,
    )


def key_totals(data: list[dict]) -> dict[tuple, list]:
    totals: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0, 0, 0])
    for r in data:
        t = totals[(r["ad_id"], r["date_start"])]
        t[0] += Decimal(r["spend"])
        t[1] += int(r["impressions"])
        t[2] += int(r["clicks"])
        t[3] += int(r.get("reach", 0))
    return totals


@pytest.mark.parametrize("breakdowns", FAMILIES, ids=lambda b: "+".join(b))
def test_breakdown_rows_add_up_to_the_unbroken_day(sb: RunningSandbox, breakdowns: list[str]):
    acct = account_of(sb)
    plain = daily(sb, acct)
    broken = daily(sb, acct, breakdowns=breakdowns)
    assert broken and all(set(breakdowns) <= set(r) for r in broken)
    assert all(int(r["impressions"]) > 0 for r in broken)  # empty cells are not rows
    totals = key_totals(broken)
    above = 0
    for r in plain:
        spend, imps, clicks, reach = totals[(r["ad_id"], r["date_start"])]
        assert (spend, imps, clicks) == (
            Decimal(r["spend"]),
            int(r["impressions"]),
            int(r["clicks"]),
        )
        above += reach > int(r["reach"])
    if not breakdowns[0].startswith("hourly"):
        # reach is counted in every cell a person was seen in: never additive
        assert above > len(plain) * 0.9
    else:
        assert not any("reach" in r for r in broken)  # hourly rows carry no people counts


def test_age_alone_is_age_and_gender_summed(sb: RunningSandbox):
    acct = account_of(sb)
    by_age = {
        (r["ad_id"], r["date_start"], r["age"]): r for r in daily(sb, acct, breakdowns=["age"])
    }
    summed: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0, 0])
    for r in daily(sb, acct, breakdowns=["age", "gender"]):
        s = summed[(r["ad_id"], r["date_start"], r["age"])]
        s[0] += Decimal(r["spend"])
        s[1] += int(r["impressions"])
        s[2] += int(r["clicks"])
    assert set(summed) == set(by_age)
    for key, (spend, imps, clicks) in summed.items():
        r = by_age[key]
        assert (spend, imps, clicks) == (
            Decimal(r["spend"]),
            int(r["impressions"]),
            int(r["clicks"]),
        )


def test_breakdowns_at_higher_levels_and_async(sb: RunningSandbox):
    """Campaign-level country rows equal the ad-level rows summed, and an async report run
    answers the same rows as the synchronous call."""
    acct = account_of(sb)
    params = {
        "level": "campaign",
        "time_increment": 1,
        "time_range": RANGE,
        "fields": "campaign_id,spend,impressions,clicks",
        "breakdowns": ["country"],
        "filtering": [{"field": "campaign.effective_status", "operator": "IN",
                       "value": ALL_ADS[0]["value"]}],
    }  # fmt: skip
    sync = rows(sb, acct, **params)
    ads = rows(sb, acct, **{**params, "level": "ad", "filtering": ALL_ADS})
    summed: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])
    for r in ads:
        s = summed[(r["campaign_id"], r["date_start"], r["country"])]
        s[0] += Decimal(r["spend"])
        s[1] += int(r["impressions"])
    expected = {k: spend for k, (spend, imps) in summed.items() if imps}
    got = {(r["campaign_id"], r["date_start"], r["country"]): Decimal(r["spend"]) for r in sync}
    assert got == expected
    post = requests.post(
        sb.url(f"{acct}/insights"),
        data={**TOKEN, **{k: json.dumps(v) if isinstance(v, (dict, list)) else v
                          for k, v in params.items()}},
    ).json()  # fmt: skip
    run = post["report_run_id"]
    for _ in range(50):
        status = requests.get(sb.url(run), params=TOKEN).json()
        if status["async_status"] == "Job Completed":
            break
        time.sleep(0.01)
    run_rows = requests.get(sb.url(f"{run}/insights"), params={**TOKEN, "limit": 5000}).json()
    assert run_rows["data"] == sync


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"breakdowns": ["bogus"]},
            "(#100) breakdowns[0] must be one of the following values: ad_extension_domain, ",
        ),
        (
            {"breakdowns": ["age", "placement"]},
            "(#100) breakdowns[1] must be one of the following values: ",
        ),
        (
            {"action_breakdowns": ["action_type", "bogus"]},
            "(#100) action_breakdowns[1] must be one of the following values: ",
        ),
        (
            {"breakdowns": ["platform_position"]},
            "(#100) Current combination of data breakdown columns (action_type, "
            "platform_position) is invalid",
        ),
        (
            {"breakdowns": ["age", "country"]},
            "(#100) Current combination of data breakdown columns (action_type, age, country) "
            "is invalid",
        ),
        (
            {"breakdowns": ["media_type"]},
            "(#100) Current combination of data breakdown columns (action_type, media_type) "
            "is invalid",
        ),
        (
            {"breakdowns": ["age"], "action_breakdowns": ["action_reaction"]},
            "(#100) Current combination of data breakdown columns (action_reaction, age) is invalid",
        ),
        (
            {"action_breakdowns": ["action_device", "action_video_sound"]},
            "(#100) Current combination of data breakdown columns (action_device, "
            "action_video_sound) is invalid",
        ),
    ],
)
def test_invalid_breakdowns_answer_metas_error(sb: RunningSandbox, params: dict, message: str):
    acct = account_of(sb)
    assert error(get(sb, acct, fields="spend", **params)).startswith(message)
    # the async path refuses the same request when the report run is created
    body = {k: json.dumps(v) for k, v in params.items()}
    resp = requests.post(sb.url(f"{acct}/insights"), data={**TOKEN, "fields": "spend", **body})
    assert error(resp).startswith(message)


def test_media_breakdowns_need_empty_action_breakdowns(sb: RunningSandbox):
    acct = account_of(sb)
    data = rows(
        sb, acct, fields="spend", breakdowns=["media_type"], action_breakdowns=[], time_range=RANGE
    )
    assert {r["media_type"] for r in data} <= {"image", "video"}


def test_action_breakdowns_label_on_meta_actions(sb: RunningSandbox):
    """action_target_id / action_destination tie link clicks to the pixel and leads to the
    Page; web conversions come without them (Meta's off-Meta restriction) and every entry
    keeps its numbers."""
    acct = account_of(sb)
    plain = daily(sb, acct)
    labelled = daily(
        sb, acct, action_breakdowns=["action_type", "action_target_id", "action_destination"]
    )
    assert [r.get("actions") and len(r["actions"]) for r in labelled] == [
        r.get("actions") and len(r["actions"]) for r in plain
    ]
    seen = set()
    for r in labelled:
        for entry in r.get("actions", []):
            seen.add(entry["action_type"])
            if entry["action_type"] == "link_click":
                assert entry["action_target_id"] == "700000000000001"
                assert entry["action_destination"].endswith("Pixel")
            elif entry["action_type"] == "lead":
                assert entry["action_target_id"].startswith("108")
            else:
                assert "action_target_id" not in entry
    assert {"link_click", "omni_purchase"} <= seen


def test_action_device_splits_entries_exactly(sb: RunningSandbox):
    acct = account_of(sb)
    plain = {(r["ad_id"], r["date_start"]): r for r in daily(sb, acct)}
    for r in daily(sb, acct, action_breakdowns=["action_device"]):
        base = {
            a["action_type"]: int(a["value"])
            for a in plain[(r["ad_id"], r["date_start"])].get("actions", [])
        }
        split: dict[str, int] = defaultdict(int)
        for entry in r.get("actions", []):
            split[entry["action_type"]] += int(entry["value"])
            if entry["action_type"] in ("link_click", "lead"):  # measured on Meta
                assert entry["action_device"] in {
                    "iphone",
                    "android_smartphone",
                    "desktop",
                    "ipad",
                    "other",
                }
            else:
                assert "action_device" not in entry
        assert dict(split) == base


def test_region_and_hourly_rows_leave_out_web_conversions(sb: RunningSandbox):
    acct = account_of(sb)
    for bd in (["region"], ["dma"]):
        for r in daily(sb, acct, breakdowns=bd):
            types = {a["action_type"] for a in r.get("actions", [])}
            assert not types & {"omni_purchase", "offsite_conversion.fb_pixel_purchase"}


def test_video_fields_are_refused_with_hourly_breakdowns(sb: RunningSandbox):
    acct = account_of(sb)
    message = error(
        get(
            sb,
            acct,
            fields="impressions,video_p25_watched_actions",
            breakdowns=["hourly_stats_aggregated_by_audience_time_zone"],
        )
    )
    assert message.startswith("(#100) Current combination of data breakdown columns")


@pytest.mark.parametrize("edge", ["account", "report_run"])
def test_unknown_parameters_are_refused(sb: RunningSandbox, edge: str):
    acct = account_of(sb)
    if edge == "account":
        resp = get(sb, acct, fields="spend", breakdown="age")  # singular: a common typo
        assert "breakdown" in error(resp)
        return
    run = requests.post(sb.url(f"{acct}/insights"), data={**TOKEN, "fields": "spend"}).json()
    for _ in range(5):
        requests.get(sb.url(run["report_run_id"]), params=TOKEN)
    resp = requests.get(sb.url(f"{run['report_run_id']}/insights"), params={**TOKEN, "level": "ad"})
    assert "level" in error(resp)
    ok = requests.get(sb.url(f"{run['report_run_id']}/insights"), params={**TOKEN, "limit": 10})
    assert ok.status_code == 200


def test_known_parameters_are_honoured(sb: RunningSandbox):
    acct = account_of(sb)
    data = rows(
        sb, acct, level="ad", fields="ad_id,spend", time_range=RANGE, sort=["spend_descending"]
    )
    spends = [Decimal(r["spend"]) for r in data]
    assert spends == sorted(spends, reverse=True)
    ranges = [
        {"since": "2026-03-01", "until": "2026-03-03"},
        {"since": "2026-03-04", "until": "2026-03-07"},
    ]
    by_range = rows(sb, acct, fields="spend", time_ranges=ranges)
    assert [(r["date_start"], r["date_stop"]) for r in by_range] == [
        ("2026-03-01", "2026-03-03"),
        ("2026-03-04", "2026-03-07"),
    ]
    monthly = rows(sb, acct, fields="spend", time_increment="monthly",
                   time_range={"since": "2026-02-10", "until": "2026-03-07"})  # fmt: skip
    assert [(r["date_start"], r["date_stop"]) for r in monthly] == [
        ("2026-02-10", "2026-02-28"),
        ("2026-03-01", "2026-03-07"),
    ]
    body = get(sb, acct, level="ad", fields="spend,impressions", time_range=RANGE,
               default_summary="true", limit=3).json()  # fmt: skip
    everything = rows(sb, acct, level="ad", fields="spend,impressions", time_range=RANGE)
    assert Decimal(body["summary"]["spend"]) == sum(Decimal(r["spend"]) for r in everything)
    assert len(body["data"]) == 3
    assert error(get(sb, acct, fields="spend", date_preset="last_5d")).startswith(
        "(#100) date_preset must be one of the following values"
    )
