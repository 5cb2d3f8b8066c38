"""The sandbox's ``POST /{pixel}/events`` validates like Meta (over real HTTP)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import requests

from everreach.sandbox.capi import DEFAULT_PIXEL_ID

H = "a" * 64


def ok_event(**over: Any) -> dict[str, Any]:
    return {
        "event_name": "Lead",
        "event_time": int(time.time()) - 60,
        "action_source": "other",
        "user_data": {"em": H},
        **over,
    }


def post(sandbox: Any, data: Any, pixel: str = DEFAULT_PIXEL_ID, **extra: str):
    body = {"data": orjson.dumps(data).decode(), "access_token": "t", **extra}
    return requests.post(sandbox.url(f"{pixel}/events"), data=body, timeout=10)


def test_accepts_valid_events_and_keeps_them(sandbox: Any) -> None:
    resp = post(sandbox, [ok_event(), ok_event(event_id="x")], test_event_code="TEST1")
    assert resp.status_code == 200
    body = resp.json()
    assert body["events_received"] == 2 and body["messages"] == [] and body["fbtrace_id"]
    assert [r["test_event_code"] for r in sandbox.sandbox.capi_received] == ["TEST1"] * 2
    listed = requests.get(f"{sandbox.base_url}/_sandbox/capi/received", timeout=10).json()
    assert listed["count"] == 2


@pytest.mark.parametrize(
    ("event", "subcode", "text"),
    [
        ({"event_time": int(time.time()) - 8 * 86400}, 2804004, "too far in the past"),
        ({"user_data": {"em": "someone@example.com"}}, 2804016, "user_data.em must be hashed"),
        ({"user_data": {"ph": ["12345"]}}, 2804016, "user_data.ph"),
        (
            {"action_source": "website", "event_source_url": "https://x.example"},
            2804009,
            "client_user_agent",
        ),
        (
            {"action_source": "website", "user_data": {"em": H, "client_user_agent": "UA"}},
            2804008,
            "event_source_url",
        ),
        ({"event_name": "Purchase"}, 2804019, "value"),
        ({"event_time": "yesterday"}, 2804003, "integer"),
        ({"action_source": "carrier_pigeon"}, 2804006, "action_source"),
        ({"user_data": {}}, 2804007, "user_data"),
    ],
)
def test_one_bad_event_fails_the_request_naming_its_index(
    sandbox: Any, event: dict, subcode: int, text: str
) -> None:
    resp = post(sandbox, [ok_event(), ok_event(), ok_event(**event)])
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["code"] == 100 and err["error_subcode"] == subcode
    assert err["error_user_msg"].startswith("data[2]: ") and text in err["error_user_msg"]
    assert sandbox.sandbox.capi_received == []


def test_more_than_1000_events_is_refused(sandbox: Any) -> None:
    resp = post(sandbox, [ok_event()] * 1001)
    assert resp.status_code == 400 and "1000" in resp.json()["error"]["message"]


def test_unknown_pixel_and_pixel_node(sandbox: Any) -> None:
    assert post(sandbox, [ok_event()], pixel="999").json()["error"]["error_subcode"] == 33
    node = requests.get(sandbox.url(DEFAULT_PIXEL_ID), params={"access_token": "t"}, timeout=10)
    assert node.json()["id"] == DEFAULT_PIXEL_ID


def test_configured_pixels() -> None:
    from everreach.sandbox.testing import running_sandbox

    with running_sandbox(extra={"pixels": ["111", "222"]}) as sb:
        assert post(sb, [ok_event()], pixel="222").json()["events_received"] == 1
        assert post(sb, [ok_event()], pixel=DEFAULT_PIXEL_ID).status_code == 400
