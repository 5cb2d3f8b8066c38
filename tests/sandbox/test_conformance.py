"""Sandbox answers have the shapes Meta documents (written from Meta's docs, not the code).

Sources: Graph API "Paginated Results" (developers.facebook.com/docs/graph-api/results),
"Handling Errors" (docs/graph-api/guides/error-handling), "Rate Limiting"
(docs/graph-api/overview/rate-limiting, docs/marketing-api/overview/rate-limiting),
Marketing API "Insights API" / "Asynchronous requests" and the Ad Account, Campaign,
Ad Set, Ad and Ads Insights references.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from everreach.sandbox.testing import RunningSandbox

TOKEN = {"access_token": "sandbox-token"}
ASYNC_STATUSES = {
    "Job Not Started",
    "Job Started",
    "Job Running",
    "Job Completed",
    "Job Failed",
    "Job Skipped",
}
ALL_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
DECIMAL = re.compile(r"^\d+(\.\d+)?$")


def first_account(sb: RunningSandbox) -> str:
    ids = [a["id"] for a in requests.get(sb.url("me/adaccounts"), params=TOKEN).json()["data"]]
    return ids[0]


def assert_error_shape(resp: requests.Response, code: int, subcode: int | None = None) -> dict:
    """Meta's error envelope: {"error": {message, type, code, error_subcode?, fbtrace_id}}."""
    assert resp.status_code >= 400
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    assert err["code"] == code and isinstance(err["code"], int)
    if subcode is not None:
        assert err["error_subcode"] == subcode
    assert isinstance(err["fbtrace_id"], str) and err["fbtrace_id"]
    assert isinstance(err.get("is_transient", False), bool)
    return err


# ----------------------------------------------------------------------------- paging
def test_cursor_paging_shape_and_termination(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    url = sb.url(f"{acct}/ads")
    params = {
        **TOKEN,
        "fields": "id,name",
        "limit": 3,
        "effective_status": json.dumps(ALL_STATUSES),
    }
    body = http.get(url, params=params).json()
    assert set(body) == {"data", "paging"}
    assert len(body["data"]) == 3
    cursors = body["paging"]["cursors"]
    assert isinstance(cursors["before"], str) and isinstance(cursors["after"], str)
    assert "previous" not in body["paging"]  # first page
    seen = [row["id"] for row in body["data"]]
    pages = 1
    while "next" in body["paging"]:
        nxt = body["paging"]["next"]
        assert nxt.startswith(sb.base_url + "/v25.0/")  # an absolute URL, like Meta's
        body = http.get(nxt).json()  # next links carry every parameter, token included
        pages += 1
        assert "previous" in body["paging"]
        seen += [row["id"] for row in body["data"]]
    # the last page has no "next" but still has an "after" cursor
    assert "after" in body["paging"]["cursors"]
    assert len(seen) == len(set(seen)) == 8 and pages == 3  # 2 campaigns x 2 adsets x 2 ads


def test_limit_caps_page_and_bad_cursor_is_an_error(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    resp = http.get(sb.url(f"{acct}/campaigns"), params={**TOKEN, "limit": 1})
    assert len(resp.json()["data"]) == 1
    bad = http.get(sb.url(f"{acct}/campaigns"), params={**TOKEN, "after": "!!nope!!"})
    assert_error_shape(bad, 100)


# ----------------------------------------------------------------------------- errors
def test_unknown_object_error(sb: RunningSandbox, http: requests.Session):
    err = assert_error_shape(http.get(sb.url("999999"), params=TOKEN), 100, 33)
    assert err["type"] == "GraphMethodException"
    assert "does not exist" in err["message"]


def test_missing_and_expired_tokens(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    err = assert_error_shape(http.get(sb.url(acct)), 104)
    assert err["type"] == "OAuthException"
    sb.sandbox.config.expired_tokens.add("old-token")
    resp = http.get(sb.url(acct), params={"access_token": "old-token"})
    err = assert_error_shape(resp, 190, 463)
    assert err["type"] == "OAuthException"
    assert "expired" in err["message"].lower()


def test_deprecated_version_is_2635(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    assert_error_shape(http.get(sb.url(acct, version="v17.0"), params=TOKEN), 2635)


def test_invalid_insights_field_is_code_100(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    resp = http.get(sb.url(f"{acct}/insights"), params={**TOKEN, "fields": "spend,bogus"})
    err = assert_error_shape(resp, 100)
    assert "bogus" in err["message"]


def test_appsecret_proof_checked(http: requests.Session):
    from everreach.sandbox.testing import running_sandbox

    with running_sandbox(app_secret="s3", require_appsecret_proof=True) as sb:
        acct = first_account_with(sb, http, "s3")
        assert_error_shape(http.get(sb.url(acct), params=TOKEN), 100)
        bad = http.get(sb.url(acct), params={**TOKEN, "appsecret_proof": "00"})
        assert_error_shape(bad, 100)


def first_account_with(sb: RunningSandbox, http: requests.Session, secret: str) -> str:
    import hashlib
    import hmac

    proof = hmac.new(secret.encode(), TOKEN["access_token"].encode(), hashlib.sha256).hexdigest()
    body = http.get(sb.url("me/adaccounts"), params={**TOKEN, "appsecret_proof": proof}).json()
    return body["data"][0]["id"]


# ----------------------------------------------------------------------------- headers
def test_rate_limit_headers_on_every_response(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    for resp in (
        http.get(sb.url(acct), params=TOKEN),
        http.get(sb.url(f"{acct}/insights"), params=TOKEN),
        http.get(sb.url("999999"), params=TOKEN),
    ):  # errors carry them too
        app = json.loads(resp.headers["x-app-usage"])
        assert {"call_count", "total_cputime", "total_time"} <= app.keys()
        buc = json.loads(resp.headers["x-business-use-case-usage"])
        (entries,) = buc.values()
        for entry in entries:
            assert {
                "type",
                "call_count",
                "total_cputime",
                "total_time",
                "estimated_time_to_regain_access",
            } <= entry.keys()
            assert all(isinstance(entry[k], int) for k in ("call_count", "total_time"))
    resp = http.get(sb.url(f"{acct}/insights"), params=TOKEN)
    assert "acc_id_util_pct" in json.loads(resp.headers["x-ad-account-usage"])
    throttle = json.loads(resp.headers["x-fb-ads-insights-throttle"])
    assert {"app_id_util_pct", "acc_id_util_pct"} <= throttle.keys()


@pytest.mark.parametrize("sb", [{"rate_limit_calls": 10}], indirect=True)
def test_usage_rises_with_calls(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    pcts = [
        json.loads(http.get(sb.url(acct), params=TOKEN).headers["x-app-usage"])["call_count"]
        for _ in range(5)
    ]
    assert pcts == sorted(pcts) and pcts[-1] >= 50


@pytest.mark.parametrize(
    "sb",
    [{"throttle_burst_every": 3, "throttle_burst_length": 2, "throttle_regain_minutes": 2}],
    indirect=True,
)
def test_throttle_burst_answers_80000_with_time_to_regain(
    sb: RunningSandbox, http: requests.Session
):
    answers = [http.get(sb.url("me/adaccounts"), params=TOKEN) for _ in range(6)]
    throttled = [r for r in answers if r.status_code != 200]
    assert len(throttled) == 2
    for resp in throttled:
        err = assert_error_shape(resp, 80000)
        assert err["is_transient"] is True
        buc = json.loads(resp.headers["x-business-use-case-usage"])
        entry = next(iter(buc.values()))[0]
        assert entry["estimated_time_to_regain_access"] == 2
        assert entry["call_count"] >= 100


@pytest.mark.parametrize("sb", [{"error_rate": {2: 1.0}}], indirect=True)
def test_fault_injection_uses_meta_codes(sb: RunningSandbox, http: requests.Session):
    resp = http.get(sb.url("me/adaccounts"), params=TOKEN)
    err = assert_error_shape(resp, 2)
    assert resp.status_code == 503 and err["is_transient"] is True


# ----------------------------------------------------------------------------- ads shapes
def test_ad_account_fields(sb: RunningSandbox, http: requests.Session):
    fields = "name,currency,timezone_name,timezone_offset_hours_utc,account_status"
    rows = http.get(sb.url("me/adaccounts"), params={**TOKEN, "fields": fields}).json()["data"]
    assert len(rows) == 3
    for row in rows:
        assert row["id"].startswith("act_")
        assert isinstance(row["account_status"], int)
        assert isinstance(row["timezone_offset_hours_utc"], (int, float))
        assert re.fullmatch(r"[A-Z]{3}", row["currency"])
    assert len({r["currency"] for r in rows}) >= 2
    assert len({r["timezone_name"] for r in rows}) >= 2
    one = http.get(sb.url(rows[0]["id"]), params={**TOKEN, "fields": fields}).json()
    assert one == rows[0]


def test_object_edges_fields_and_default_status_filter(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    fields = "id,name,status,effective_status,created_time,updated_time,campaign_id,adset_id"
    all_ads = http.get(
        sb.url(f"{acct}/ads"),
        params={
            **TOKEN,
            "fields": fields,
            "limit": 100,
            "filtering": json.dumps(
                [{"field": "ad.effective_status", "operator": "IN", "value": ALL_STATUSES}]
            ),
        },
    ).json()["data"]
    default = http.get(
        sb.url(f"{acct}/ads"), params={**TOKEN, "fields": fields, "limit": 100}
    ).json()["data"]
    assert {a["effective_status"] for a in default}.isdisjoint({"DELETED", "ARCHIVED"})
    assert {a["id"] for a in default} <= {a["id"] for a in all_ads}
    for ad in all_ads:
        assert set(fields.split(",")) <= ad.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", ad["created_time"])
    campaigns = http.get(
        sb.url(f"{acct}/campaigns"),
        params={**TOKEN, "fields": "id,name,objective,status,daily_budget,lifetime_budget"},
    ).json()
    for c in campaigns["data"]:
        assert c["objective"].startswith("OUTCOME_")
        budget = c.get("daily_budget") or c.get("lifetime_budget")
        assert isinstance(budget, str) and budget.isdigit()  # minor units, as a string
    # only id when no fields are asked for
    bare = http.get(sb.url(f"{acct}/campaigns"), params=TOKEN).json()["data"]
    assert all(set(c) == {"id"} for c in bare)


def test_insights_rows_are_strings_with_action_arrays(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    resp = http.get(
        sb.url(f"{acct}/insights"),
        params={
            **TOKEN,
            "level": "ad",
            "time_increment": 1,
            "time_range": json.dumps({"since": "2026-03-01", "until": "2026-03-03"}),
            "fields": "account_id,campaign_id,adset_id,ad_id,ad_name,spend,impressions,reach,"
            "frequency,clicks,inline_link_clicks,ctr,cpc,cpm,actions,action_values",
            "action_attribution_windows": json.dumps(
                ["1d_click", "7d_click", "28d_click", "1d_view"]
            ),
            "limit": 500,
        },
    )
    body = resp.json()
    assert body["data"]
    for row in body["data"]:
        assert row["date_start"] == row["date_stop"]
        for key in ("spend", "impressions", "reach", "clicks", "ctr", "cpm"):
            assert isinstance(row[key], str) and DECIMAL.match(row[key]), key
        for entry in row.get("actions", []) + row.get("action_values", []):
            assert isinstance(entry["action_type"], str)
            assert isinstance(entry["value"], str)
            assert set(entry) - {"action_type", "value"} <= {
                "1d_click",
                "7d_click",
                "28d_click",
                "1d_view",
            }
    assert any("actions" in r for r in body["data"])


def test_async_report_run_lifecycle(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    params = {
        "level": "campaign",
        "fields": "campaign_id,spend",
        "time_increment": "1",
        "time_range": json.dumps({"since": "2026-03-01", "until": "2026-03-05"}),
    }
    run = http.post(sb.url(f"{acct}/insights"), data={**TOKEN, **params}).json()
    assert set(run) == {"report_run_id"}
    run_id = run["report_run_id"]
    statuses = []
    for _ in range(10):
        status = http.get(sb.url(run_id), params=TOKEN).json()
        assert status["async_status"] in ASYNC_STATUSES
        assert isinstance(status["async_percent_completion"], int)
        statuses.append(status["async_status"])
        if status["async_status"] == "Job Completed":
            break
    assert statuses[-1] == "Job Completed"
    rows = http.get(sb.url(f"{run_id}/insights"), params={**TOKEN, "limit": 500}).json()["data"]
    sync = http.get(sb.url(f"{acct}/insights"), params={**TOKEN, **params, "limit": 500}).json()[
        "data"
    ]
    assert rows == sync and rows
