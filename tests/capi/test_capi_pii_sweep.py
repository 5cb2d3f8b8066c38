"""No clear-text PII reaches any table, any log line, or Meta — through every intake door."""

from __future__ import annotations

import logging
import time
from typing import Any

import jwt
import orjson
import psycopg
import pytest
from capi_helpers import SETTINGS
from starlette.testclient import TestClient
from test_capi_endpoint import SECRET, make_app

from everreach.capi.delivery import deliver_pending
from everreach.capi.events import EventValidationError
from everreach.capi.intake import enqueue_conversions
from everreach.capi.pickup import pick_up_user_events
from webhook_receiver.conversions import PATH

# One person per door, so a leak can be traced to its door.
API_PERSON = {
    "email": "Zoe.Tester-API@Example.org",
    "phone": "+1 (415) 555-0199",
    "first_name": "Zoëlle",
    "last_name": "Tëster-Smithson",
    "city": "San Francisco",
    "state": "California",
    "zip": "94107-1234",
    "country": "United States",
    "date_of_birth": "1988-07-04",
    "gender": "female",
    "external_id": "CRM-778899",
}
FUNCTION_PERSON = {
    "email": "Marius.Function@Example.net",
    "phone": "020 7946 0321",
    "first_name": "Marius",
    "last_name": "O'Callaghan",
    "city": "Kingston upon Thames",
    "state": "Surrey",
    "zip": "KT1 1EU",
    "country": "GB",
    "date_of_birth": "14/03/1975",
    "gender": "M",
    "external_id": "crm-445566",
}
USER_EVENT_PERSON = {"email": "Pickup.Person@Example.com", "phone": "(212) 555-0142"}


def needles() -> set[str]:
    """Raw inputs and their normalized forms (≥ 5 characters: shorter ones like 'us' or
    'f' occur everywhere and are unsearchable; their hashing is covered field by field)."""
    out: set[str] = set()
    for person in (API_PERSON, FUNCTION_PERSON, USER_EVENT_PERSON):
        for key, raw in person.items():
            if key in ("gender", "country"):
                continue
            out.add(raw.lower())
    out |= {
        "14155550199",
        "4155550199",
        "zoëlle",
        "tëstersmithson",
        "sanfrancisco",
        "california",
        "94107",
        "19880704",
        "442079460321",
        "07946 0321",
        "ocallaghan",
        "o'callaghan",
        "kingstonuponthames",
        "kt11eu",
        "19750314",
        "12125550142",
        "2125550142",
        "zoe.tester-api@example.org",
        "marius.function@example.net",
        "pickup.person@example.com",
        "united states",
    }
    return {n for n in out if len(n) >= 5}


def text_columns(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return conn.execute("""
        select table_schema, table_name, column_name from information_schema.columns
        where table_schema in ('public', 'auth')
          and data_type in ('text', 'character varying', 'character', 'jsonb', 'json')
          and not (table_schema = 'auth' and table_name = 'users')  -- the app's own table
        order by 1, 2, 3""").fetchall()


def find_leaks(conn: psycopg.Connection) -> list[str]:
    leaks = []
    for schema, table, column in text_columns(conn):
        for needle in sorted(needles()):
            hit = conn.execute(
                f'select count(*) from "{schema}"."{table}" '
                f'where strpos(lower("{column}"::text), %s) > 0',
                (needle,),
            ).fetchone()[0]
            if hit:
                leaks.append(f"{schema}.{table}.{column} holds {needle!r}")
    return leaks


def test_no_clear_text_pii_anywhere(
    database_url: str,
    db: psycopg.Connection,
    sandbox: Any,
    graph: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    now = int(time.time()) - 60
    # Door 1: the HTTP endpoint, flat keys plus a Meta-style user_data event.
    tok = jwt.encode(
        {"sub": "7d0b4a5e-0000-4000-8000-000000000001", "exp": int(time.time()) + 600},
        SECRET,
        algorithm="HS256",
    )
    with TestClient(make_app(database_url)) as client:
        resp = client.post(
            PATH,
            headers={"Authorization": f"Bearer {tok}"},
            json=[
                {
                    "event_name": "Purchase",
                    "value": 12.5,
                    "currency": "USD",
                    "event_time": now,
                    **API_PERSON,
                },
                {
                    "event_name": "Lead",
                    "event_time": now,
                    "user_data": {
                        "em": API_PERSON["email"],
                        "ph": API_PERSON["phone"],
                        "fn": API_PERSON["first_name"],
                        "ct": API_PERSON["city"],
                    },
                },
            ],
        )
        assert resp.status_code == 202, resp.text
        # A refused body must not echo what it refused, nor log it.
        bad = client.post(
            PATH,
            headers={"Authorization": f"Bearer {tok}"},
            json={**API_PERSON, "event_name": "Lead", "email": "Zoe at home"},
        )
        assert bad.status_code == 422 and "Zoe at home" not in bad.text
    # Door 2: the Python function; an invalid one raises without the value.
    enqueue_conversions(
        db, {"event_name": "Lead", "event_time": now, **FUNCTION_PERSON}, settings=SETTINGS
    )
    with pytest.raises(EventValidationError) as info:
        enqueue_conversions(
            db,
            {"event_name": "Lead", **FUNCTION_PERSON, "date_of_birth": "the ides of March"},
            settings=SETTINGS,
        )
    assert "ides" not in str(info.value)
    # Door 3: user_event conversions, email and phone from auth.users.
    user_id = db.execute(
        "insert into auth.users (email, phone) values (%s, %s) returning id",
        (USER_EVENT_PERSON["email"], USER_EVENT_PERSON["phone"]),
    ).fetchone()[0]
    db.execute(
        "insert into user_event (user_id, etype, props) values "
        '(%s, \'purchase\', \'{"value": 3, "currency": "USD"}\')',
        (user_id,),
    )
    assert pick_up_user_events(db, settings=SETTINGS).queued == 1
    # Delivery (user_event gets meta_conversion_* rows; Meta gets the events).
    report = deliver_pending(db, graph)
    assert report.sent == 4

    assert not find_leaks(db)
    # The sweep itself can see a leak: plant one and look again.
    db.execute(
        "insert into user_event (etype, props) values ('canary', %s::jsonb)",
        (orjson.dumps({"note": API_PERSON["email"]}).decode(),),
    )
    assert find_leaks(db) == [f"public.user_event.props holds {API_PERSON['email'].lower()!r}"]
    db.execute("delete from user_event where etype = 'canary'")
    assert db.execute("select count(*) from meta_conversion_event").fetchone()[0] == 4

    sent_to_meta = str([r["event"] for r in sandbox.sandbox.capi_received]).lower()
    assert not [n for n in needles() if n in sent_to_meta]

    logged = "\n".join(r.getMessage() for r in caplog.records).lower()
    assert not [n for n in needles() if n in logged]
