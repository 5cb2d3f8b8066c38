"""Object reads and lists conform to Meta's own spec (``../shared/meta_specs``).

The oracle is Meta's machine-readable Marketing API spec (graph_types.json: node types,
fields → type, edges and their params; enums.json: enum values) and the hand-kept
graph_conventions.json (Graph-wide params, list envelope). The tests skip, saying why,
when those files are not next to the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from everreach.sandbox import ads_spec
from everreach.sandbox.testing import RunningSandbox

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "meta_specs"
TOKEN = {"access_token": "sandbox-token"}
ALL_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")
SERVED = ["AdAccount", "Campaign", "AdSet", "Ad", "AdCreative"]


def _load(name: str) -> Any:
    path = SPECS / name
    if not path.exists():
        pytest.skip(f"Meta's specs are not at {SPECS} (../shared/meta_specs next to the repo)")
    return json.loads(path.read_text("utf-8"))


@pytest.fixture(scope="module")
def graph_types() -> dict:
    return _load("graph_types.json")


@pytest.fixture(scope="module")
def enums() -> dict:
    return _load("enums.json")


def first_account(sb: RunningSandbox) -> str:
    return requests.get(sb.url("me/adaccounts"), params=TOKEN).json()["data"][0]["id"]


def one_of(sb: RunningSandbox, http: requests.Session, edge: str, acct: str) -> str:
    params = (
        {**TOKEN, "effective_status": json.dumps(ALL_STATUSES)} if edge != "adcreatives" else TOKEN
    )
    return http.get(sb.url(f"{acct}/{edge}"), params=params).json()["data"][0]["id"]


def conforms(value: Any, type_name: str, graph_types: dict, enums: dict) -> bool:
    """Whether ``value`` is a value of Meta's ``type_name``."""
    if type_name.startswith("list<") and type_name.endswith(">"):
        inner = type_name[5:-1]
        return isinstance(value, list) and all(
            conforms(v, inner, graph_types, enums) for v in value
        )
    if type_name == "Object":  # the codegen's "any JSON value"
        return True
    if type_name.startswith("map"):
        return isinstance(value, dict)
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name in ("int", "unsigned int"):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (type_name == "int" or value >= 0)
        )
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "datetime":
        return isinstance(value, str) and bool(TIME.match(value))
    if type_name in enums:
        return value in enums[type_name]
    if type_name in graph_types:  # an object: its members must be its fields, typed
        fields = graph_types[type_name].get("fields", {})
        return isinstance(value, dict) and all(
            k in fields and conforms(v, fields[k], graph_types, enums) for k, v in value.items()
        )
    return isinstance(value, dict)  # object types the spec does not detail


# ----------------------------------------------------------------------------- drift
def test_sandbox_spec_extract_matches_metas_spec(graph_types: dict, enums: dict):
    conventions = _load("graph_conventions.json")
    for node_type, fields in ads_spec.FIELDS.items():
        assert fields == graph_types[node_type]["fields"], node_type
        gets = {a["endpoint"]: a for a in graph_types[node_type]["apis"] if a["method"] == "GET"}
        assert ads_spec.NODE_PARAMS[node_type] == gets[None]["params"], node_type
        assert set(ads_spec.EDGES[node_type]) == {e for e in gets if e}, node_type
    for key, (returns, params) in ads_spec.EDGE_PARAMS.items():
        node_type, edge = key.split(".")
        api = next(
            a
            for a in graph_types[node_type]["apis"]
            if a["method"] == "GET" and a["endpoint"] == edge
        )
        assert (returns, params) == (api["return"], api["params"]), key
    for name, values in ads_spec.ENUMS.items():
        assert list(values) == enums[name], name
    assert list(ads_spec.GRAPH_WIDE_PARAMS) == conventions["graph_wide_params"]["any"]
    assert list(ads_spec.LIST_EDGE_PARAMS) == conventions["graph_wide_params"]["list_edges"]


# ----------------------------------------------------------------------------- every field
@pytest.mark.parametrize("node_type", SERVED)
def test_every_spec_field_is_accepted_on_reads_and_lists_with_typed_values(
    node_type: str, sb: RunningSandbox, http: requests.Session, graph_types: dict, enums: dict
):
    acct = first_account(sb)
    fields = graph_types[node_type]["fields"]
    everything = ",".join(fields)
    edge = {"Campaign": "campaigns", "AdSet": "adsets", "Ad": "ads", "AdCreative": "adcreatives"}
    if node_type == "AdAccount":
        lists = [("me/adaccounts", {})]
        reads = [acct]
    else:
        filt = {} if node_type == "AdCreative" else {"effective_status": json.dumps(ALL_STATUSES)}
        lists = [(f"{acct}/{edge[node_type]}", filt)]
        reads = [one_of(sb, http, edge[node_type], acct)]
    answered: set[str] = set()
    for path, extra in lists:
        resp = http.get(sb.url(path), params={**TOKEN, **extra, "fields": everything, "limit": 100})
        assert resp.status_code == 200, resp.text
        rows = resp.json()["data"]
        assert rows
        for row in rows:
            for name, value in row.items():
                assert name in fields
                assert conforms(value, fields[name], graph_types, enums), (name, value)
            answered |= row.keys()
    for node in reads:
        resp = http.get(sb.url(node), params={**TOKEN, "fields": everything})
        assert resp.status_code == 200, resp.text
        row = resp.json()
        for name, value in row.items():
            assert conforms(value, fields[name], graph_types, enums), (name, value)
        # one field at a time answers the same value as all at once
        for name in list(row)[:12]:
            single = http.get(sb.url(node), params={**TOKEN, "fields": name}).json()
            assert single[name] == row[name]
    # every bool is answered; what a typical object of the type has is there
    assert {n for n, t in fields.items() if t == "bool"} <= answered
    typical = {
        "AdAccount": {
            "account_id",
            "name",
            "currency",
            "timezone_name",
            "account_status",
            "amount_spent",
            "business",
            "created_time",
            "age",
            "spend_cap",
        },
        "Campaign": {
            "name",
            "status",
            "configured_status",
            "effective_status",
            "objective",
            "bid_strategy",
            "buying_type",
            "special_ad_categories",
            "created_time",
            "updated_time",
            "start_time",
            "account_id",
            "budget_remaining",
        },
        "AdSet": {
            "campaign_id",
            "campaign",
            "targeting",
            "billing_event",
            "optimization_goal",
            "bid_strategy",
            "daily_budget",
            "start_time",
            "attribution_spec",
        },
        "Ad": {
            "adset_id",
            "campaign_id",
            "creative",
            "bid_type",
            "tracking_specs",
            "configured_status",
            "conversion_specs",
        },
        "AdCreative": {
            "name",
            "object_story_spec",
            "url_tags",
            "call_to_action_type",
            "object_type",
            "status",
            "thumbnail_url",
            "image_url",
            "body",
            "title",
            "effective_object_story_id",
            "actor_id",
        },
    }[node_type]
    assert typical <= answered, typical - answered


def test_fields_the_issue_named_are_served_on_lists(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    status = {"effective_status": json.dumps(ALL_STATUSES)}
    for edge, fields in (
        ("campaigns", "adlabels,stop_time"),
        ("adsets", "end_time,adlabels"),
        ("ads", "bid_type,creative,adlabels"),
    ):
        resp = http.get(sb.url(f"{acct}/{edge}"), params={**TOKEN, **status, "fields": fields})
        assert resp.status_code == 200, resp.text
    ads = http.get(
        sb.url(f"{acct}/ads"), params={**TOKEN, "fields": "bid_type,creative{id,name,url_tags}"}
    ).json()["data"]
    assert ads and all(a["bid_type"] == "ABSOLUTE_OCPM" for a in ads)
    # url_tags is left out where a creative has none, as Meta does
    assert all({"id", "name"} <= a["creative"].keys() <= {"id", "name", "url_tags"} for a in ads)


# ----------------------------------------------------------------------------- unknown names
def test_unknown_fields_are_refused_with_metas_error_everywhere(
    sb: RunningSandbox, http: requests.Session
):
    acct = first_account(sb)
    campaign = one_of(sb, http, "campaigns", acct)
    adset = one_of(sb, http, "adsets", acct)
    ad = one_of(sb, http, "ads", acct)
    creative = one_of(sb, http, "adcreatives", acct)
    run_id = http.post(sb.url(f"{acct}/insights"), data={**TOKEN, "level": "account"}).json()[
        "report_run_id"
    ]
    cases = [
        (acct, "AdAccount"),
        ("me/adaccounts", "AdAccount"),
        (campaign, "Campaign"),
        (f"{acct}/campaigns", "Campaign"),
        (adset, "AdSet"),
        (f"{campaign}/adsets", "AdSet"),
        (f"{acct}/adsets", "AdSet"),
        (ad, "Ad"),
        (f"{adset}/ads", "Ad"),
        (f"{acct}/ads", "Ad"),
        (creative, "AdCreative"),
        (f"{acct}/adcreatives", "AdCreative"),
        (f"{ad}/adcreatives", "AdCreative"),
        (run_id, "AdReportRun"),
        ("me", "User"),
    ]
    for path, node_type in cases:
        resp = http.get(sb.url(path), params={**TOKEN, "fields": "id,no_such_field"})
        assert resp.status_code == 400, path
        err = resp.json()["error"]
        assert err["code"] == 100 and err["type"] == "OAuthException"
        assert err["message"] == (
            f"(#100) Tried accessing nonexisting field (no_such_field) on node type ({node_type})"
        )
    # inside an expansion, the referenced type's fields count
    resp = http.get(sb.url(f"{acct}/ads"), params={**TOKEN, "fields": "creative{nope}"})
    assert "nonexisting field (nope) on node type (AdCreative)" in resp.json()["error"]["message"]
    # an edge Meta does not have is a nonexisting field too; one Meta has and the sandbox
    # does not serve is Meta's "does not support this operation"
    resp = http.get(sb.url(f"{campaign}/no_such_edge"), params=TOKEN)
    assert resp.json()["error"]["message"].endswith("(no_such_edge) on node type (Campaign)")
    resp = http.get(sb.url(f"{campaign}/copies"), params=TOKEN)
    assert (resp.json()["error"]["code"], resp.json()["error"]["error_subcode"]) == (100, 33)


def test_unknown_parameters_are_refused_not_ignored(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    campaign = one_of(sb, http, "campaigns", acct)
    for path in (acct, f"{acct}/campaigns", campaign, f"{campaign}/adsets", "me/adaccounts"):
        resp = http.get(sb.url(path), params={**TOKEN, "fields": "id", "efective_status": "x"})
        assert resp.status_code == 400, path
        err = resp.json()["error"]
        assert err["code"] == 100 and "efective_status" in err["message"]
    # Graph-wide parameters and each endpoint's own are accepted
    ok = {
        "pretty": "0",
        "locale": "en_US",
        "suppress_http_code": "0",
        "appsecret_time": "1700000000",
        "debug": "all",
    }
    assert http.get(sb.url(acct), params={**TOKEN, **ok}).status_code == 200
    listed = {
        "limit": 2,
        "date_preset": "last_7d",
        "is_completed": "false",
        "time_range": json.dumps({"since": "2026-03-01", "until": "2026-03-02"}),
        "summary": "true",
    }
    resp = http.get(sb.url(f"{acct}/campaigns"), params={**TOKEN, **listed})
    assert resp.status_code == 200, resp.text
    # values are checked against the spec's enums and types
    bad = [
        {"date_preset": "last_8_days"},
        {"effective_status": json.dumps(["ACTIVE", "SLEEPING"])},
        {"is_completed": "maybe"},
        {"time_range": json.dumps({"since": "March"})},
        {"filtering": json.dumps([{"field": "campaign.id", "operator": "LIKE", "value": 1}])},
        {"filtering": json.dumps([{"field": "campaign.color", "operator": "EQUAL", "value": 1}])},
    ]
    for params in bad:
        resp = http.get(sb.url(f"{acct}/campaigns"), params={**TOKEN, **params})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == 100, params
    err = http.get(
        sb.url(f"{acct}/campaigns"), params={**TOKEN, "effective_status": '["SLEEPING"]'}
    ).json()["error"]
    assert err["message"].startswith("(#100) Param effective_status[0] must be one of {ACTIVE,")


# ----------------------------------------------------------------------------- list params
def test_list_filtering_summary_and_updated_since(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    everything = {
        **TOKEN,
        "fields": "id,updated_time,campaign_id",
        "limit": 100,
        "effective_status": json.dumps(ALL_STATUSES),
        "date_format": "U",
    }
    ads = http.get(sb.url(f"{acct}/ads"), params=everything).json()["data"]
    assert all(isinstance(a["updated_time"], int) for a in ads)  # date_format=U
    cut = sorted(a["updated_time"] for a in ads)[len(ads) // 2]
    newer = http.get(
        sb.url(f"{acct}/ads"),
        params={
            **everything,
            "filtering": json.dumps(
                [{"field": "ad.updated_time", "operator": "GREATER_THAN", "value": cut}]
            ),
        },
    ).json()["data"]
    # a filter on anything but the status keeps Meta's default: no DELETED/ARCHIVED
    visible = http.get(
        sb.url(f"{acct}/ads"),
        params={
            **TOKEN,
            "fields": "effective_status,updated_time",
            "date_format": "U",
            "limit": 100,
        },
    ).json()["data"]
    assert {a["id"] for a in newer} == {a["id"] for a in visible if a["updated_time"] > cut}
    since = http.get(sb.url(f"{acct}/ads"), params={**everything, "updated_since": cut}).json()
    assert {a["id"] for a in since["data"]} == {a["id"] for a in ads if a["updated_time"] > cut}
    campaign_id = ads[0]["campaign_id"]
    by_campaign = http.get(
        sb.url(f"{acct}/ads"),
        params={
            **everything,
            "filtering": json.dumps(
                [
                    {"field": "campaign.id", "operator": "IN", "value": [campaign_id]},
                    {"field": "ad.effective_status", "operator": "IN", "value": ALL_STATUSES},
                ]
            ),
        },
    ).json()["data"]
    assert by_campaign and all(a["campaign_id"] == campaign_id for a in by_campaign)
    assert len(by_campaign) == len([a for a in ads if a["campaign_id"] == campaign_id])
    summary = http.get(sb.url(f"{acct}/ads"), params={**everything, "limit": 2, "summary": "true"})
    body = summary.json()
    assert body["summary"] == {"total_count": len(ads)} and len(body["data"]) == 2


# ----------------------------------------------------------------------------- creatives
def test_creatives_on_every_edge_and_expanded_on_ads(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    fields = "id,name,url_tags,object_story_spec,call_to_action_type,link_url,status"
    listed = http.get(
        sb.url(f"{acct}/adcreatives"), params={**TOKEN, "fields": fields, "limit": 100}
    ).json()["data"]
    ads = http.get(
        sb.url(f"{acct}/ads"),
        params={
            **TOKEN,
            "fields": "adset_id,creative{id,link_url,status}",
            "effective_status": json.dumps(ALL_STATUSES),
            "limit": 100,
        },
    ).json()["data"]
    assert listed and all(c["status"] != "DELETED" for c in listed)
    assert {c["id"] for c in listed} <= {a["creative"]["id"] for a in ads}
    for c in listed:
        assert c["link_url"].startswith("https://")
        one = http.get(sb.url(c["id"]), params={**TOKEN, "fields": fields}).json()
        assert one == c
    ad = ads[0]
    own = http.get(sb.url(f"{ad['id']}/adcreatives"), params={**TOKEN, "fields": "id"}).json()
    assert [c["id"] for c in own["data"]] == [ad["creative"]["id"]]
    in_adset = http.get(sb.url(f"{ad['adset_id']}/adcreatives"), params=TOKEN).json()["data"]
    live_in_adset = {
        a["creative"]["id"]
        for a in ads
        if a["adset_id"] == ad["adset_id"] and a["creative"]["status"] != "DELETED"
    }
    assert {c["id"] for c in in_adset} == live_in_adset


def test_edge_expanded_inside_fields(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    adset = one_of(sb, http, "adsets", acct)
    body = http.get(sb.url(adset), params={**TOKEN, "fields": "name,ads.limit(1){id,name}"}).json()
    assert len(body["ads"]["data"]) <= 1
    assert all(set(a) == {"id", "name"} for a in body["ads"]["data"])


# ----------------------------------------------------------------------------- paths
def test_trailing_slash_answers_like_the_node(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    campaign = one_of(sb, http, "campaigns", acct)
    for node in (acct, campaign):
        plain = http.get(sb.url(node), params={**TOKEN, "fields": "id,name"}, allow_redirects=False)
        slash = http.get(
            sb.url(node) + "/", params={**TOKEN, "fields": "id,name"}, allow_redirects=False
        )
        assert slash.status_code == 200 and slash.json() == plain.json()


def test_report_run_status_fields(sb: RunningSandbox, http: requests.Session):
    acct = first_account(sb)
    params = {
        "level": "account",
        "time_range": json.dumps({"since": "2026-03-01", "until": "2026-03-05"}),
    }
    run_id = http.post(sb.url(f"{acct}/insights"), data={**TOKEN, **params}).json()["report_run_id"]
    full = http.get(sb.url(run_id), params=TOKEN).json()
    assert full["date_start"] == "2026-03-01" and full["date_stop"] == "2026-03-05"
    picked = http.get(
        sb.url(run_id), params={**TOKEN, "fields": "async_status,date_start,date_stop"}
    ).json()
    assert set(picked) == {"id", "async_status", "date_start", "date_stop"}
    assert isinstance(picked["date_start"], str) and isinstance(picked["date_stop"], str)
