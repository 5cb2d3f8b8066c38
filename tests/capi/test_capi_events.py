"""Building and validating server events (pure: no database, no network)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from everreach.capi.events import (
    EventValidationError,
    build_event,
    delivery_problem,
    server_event,
)

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def build(**payload: object):
    return build_event(payload, default_pixel_id="123", now=NOW)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_event_time_forms() -> None:
    base = {"event_name": "Lead", "email": "a@example.com"}
    assert build(**base, event_time=1795000000).event_time == dt.datetime.fromtimestamp(
        1795000000, dt.UTC
    )
    assert build(**base, event_time="2026-11-26T10:00:00Z").event_time == NOW.replace(hour=10)
    assert build(**base, event_time="1795000000").event_time.year == 2026
    assert build(**base).event_time == NOW  # default: now
    with pytest.raises(EventValidationError, match="^event_time: looks like milliseconds"):
        build(**base, event_time=1795000000000)
    with pytest.raises(EventValidationError, match="^event_time: is in the future"):
        build(**base, event_time=int((NOW + dt.timedelta(hours=1)).timestamp()))


def test_event_id_is_kept_or_derived_deterministically() -> None:
    base = {"event_name": "Lead", "email": "a@example.com", "event_time": 1795000000}
    assert build(**base, event_id="abc").event_id == "abc"
    first, second = build(**base).event_id, build(**{**base, "email": " A@Example.com"}).event_id
    assert first == second and first.startswith("er_")  # same person, same event
    assert build(**{**base, "event_time": 1795000001}).event_id != first
    assert build(**base, value=1, currency="usd").event_id != first
    no_time = {"event_name": "Lead", "email": "a@example.com"}
    assert build(**no_time).event_id == build(**no_time).event_id


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {
                "event_name": "Lead",
                "action_source": "website",
                "email": "a@example.com",
                "client_user_agent": "UA",
            },
            "event_source_url",
        ),
        (
            {
                "event_name": "Lead",
                "event_source_url": "https://x.example",
                "email": "a@example.com",
            },
            "client_user_agent",
        ),
        ({"event_name": "Lead", "event_source_url": "ftp://x.example"}, "event_source_url"),
        ({"event_name": "Lead", "action_source": "app", "email": "a@example.com"}, "action_source"),
        (
            {"event_name": "Lead", "action_source": "business_messaging", "email": "a@example.com"},
            "messaging_channel",
        ),
        (
            {
                "event_name": "Lead",
                "action_source": "business_messaging",
                "messaging_channel": "whatsapp",
                "email": "a@example.com",
            },
            "ctwa_clid",
        ),
        (
            {"event_name": "Lead", "messaging_channel": "messenger", "email": "a@example.com"},
            "messaging_channel",
        ),
        ({"event_name": "Lead"}, "user_data"),
        ({"event_name": "Lead", "email": "a@example.com", "value": 3}, "currency"),
        ({"event_name": "Purchase", "email": "a@example.com", "currency": "USD"}, "value"),
        ({"event_name": "Bad Name!", "email": "a@example.com"}, "event_name"),
        ({"event_name": "Lead", "email": "a@example.com", "pixel_id": "px"}, "pixel_id"),
        ({"event_name": "Lead", "email": "a@example.com", "custom_data": []}, "custom_data"),
        (
            {"event_name": "Lead", "user_data": {"em": "a@example.com", "phone_number": "1"}},
            "user_data.phone_number",
        ),
    ],
)
def test_validation_per_action_source(payload: dict, field: str) -> None:
    with pytest.raises(EventValidationError) as info:
        build(**payload)
    assert info.value.field == field


def test_business_messaging_and_website_events_are_valid() -> None:
    wa = build(
        event_name="Purchase",
        action_source="business_messaging",
        messaging_channel="whatsapp",
        ctwa_clid="ARAkLk-x",
        value=5,
        currency="BRL",
        phone="+55 11 91234 5678",
    )
    assert wa.user_data["ctwa_clid"] == "ARAkLk-x" and wa.messaging_channel == "whatsapp"
    web = build(
        event_name="ViewContent",
        event_source_url="https://shop.example/p",
        client_user_agent="UA",
        fbp="fb.1.2.3",
    )
    assert web.action_source == "website"
    assert server_event(web.__dict__)["event_source_url"] == "https://shop.example/p"


def test_user_data_keys_win_over_flat_aliases_and_user_id_is_external_id() -> None:
    event = build_event(
        {
            "event_name": "Lead",
            "email": "flat@example.com",
            "user_data": {"em": "nested@example.com"},
        },
        default_pixel_id="1",
        user_id="4C1E4B1C-0000-4000-8000-000000000001",
        now=NOW,
    )
    assert event.user_data["em"] == sha("nested@example.com")
    assert event.user_data["external_id"] == sha("4c1e4b1c-0000-4000-8000-000000000001")


def test_test_event_code_per_event_beats_global() -> None:
    base = {"event_name": "Lead", "email": "a@example.com"}
    assert (
        build_event(base, default_pixel_id="1", test_event_code="G", now=NOW).test_event_code == "G"
    )
    assert (
        build_event(
            {**base, "test_event_code": "E"}, default_pixel_id="1", test_event_code="G", now=NOW
        ).test_event_code
        == "E"
    )
    assert build_event(base, default_pixel_id="1", now=NOW).is_test is False


def test_delivery_problem() -> None:
    row = server_event(build(event_name="Lead", email="a@example.com").__dict__)
    stored = {**row, "event_time": NOW - dt.timedelta(days=6)}
    assert delivery_problem(stored, NOW) is None
    assert "7 days" in delivery_problem({**stored, "event_time": NOW - dt.timedelta(days=8)}, NOW)
    assert delivery_problem({**stored, "user_data": {"em": "a@example.com"}}, NOW) == (
        "user_data.em is not hashed"
    )
    assert delivery_problem({**stored, "event_id": ""}, NOW) == "event_id is missing"
