"""The messaging core beyond the corpus: triggers for anyone's rows, windows in any order,
reconciliation of edits and identities that arrive before what they name."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid

import psycopg
import pytest
from messaging_helpers import Poster

from everreach.messaging.parse import meta_time, parse_body

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def _thread(db: psycopg.Connection, platform: str = "messenger", user_id=None) -> uuid.UUID:
    return db.execute(
        "insert into conversation_thread (platform, business_account_id, contact_id, user_id) "
        "values (%s, 'biz', %s, %s) returning thread_id",
        (platform, uuid.uuid4().hex[:10], user_id),
    ).fetchone()[0]


def test_one_plain_insert_of_many_rows_runs_the_triggers_for_every_row(db: psycopg.Connection):
    """log_message_as_event / update_thread_timestamp keep their behaviour for rows written
    by anyone else — here one INSERT statement with rows for two threads."""
    user = db.execute("insert into auth.users (email) values ('u@example.com') returning id")
    user = user.fetchone()[0]
    a, b = _thread(db, "messenger", user), _thread(db, "whatsapp")
    db.execute(
        "insert into conversation_message (thread_id, platform, platform_message_id, direction,"
        " message_type, status, sent_at) values "
        "(%s, 'messenger', 'm1', 'inbound', 'text', 'received', %s),"
        "(%s, 'messenger', 'm2', 'outbound', 'text', 'sent', %s),"
        "(%s, 'messenger', 'm3', 'inbound', 'text', 'received', %s),"
        "(%s, 'whatsapp', 'w1', 'inbound', 'text', 'received', %s),"
        "(%s, 'whatsapp', 'w2', 'outbound', 'text', 'failed', %s)",
        (a, T0, a, T0 + dt.timedelta(hours=1), a, T0 - dt.timedelta(hours=2), b, T0, b, T0),
    )
    events = db.execute(
        "select user_id, etype, props ->> 'message_id', occurred_at from user_event "
        "order by props ->> 'message_id'"
    ).fetchall()
    assert events == [
        (user, "messenger_received", "m1", T0),
        (user, "messenger_sent", "m2", T0 + dt.timedelta(hours=1)),
        (user, "messenger_received", "m3", T0 - dt.timedelta(hours=2)),
        (None, "whatsapp_received", "w1", T0),
    ]  # a send Meta refused is not an event
    assert db.execute(
        "select first_message_at, last_message_at, last_inbound_at, last_outbound_at "
        "from conversation_thread where thread_id = %s",
        (a,),
    ).fetchone() == (
        T0 - dt.timedelta(hours=2),
        T0 + dt.timedelta(hours=1),
        T0,
        T0 + dt.timedelta(hours=1),
    )
    windows = db.execute(
        "select window_type, opened_at, last_user_activity_at, expires_at from "
        "messaging_policy_window where thread_id = %s order by 1",
        (a,),
    ).fetchall()
    assert windows == [
        ("human_agent", T0 - dt.timedelta(hours=2), T0, T0 + dt.timedelta(days=7)),
        ("standard", T0 - dt.timedelta(hours=2), T0, T0 + dt.timedelta(hours=24)),
    ]


_ACTIVITY = [
    T0,
    T0 + dt.timedelta(hours=20),
    T0 + dt.timedelta(hours=60),
    T0 + dt.timedelta(days=3),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_windows_end_the_same_whatever_order_user_actions_arrive_in(
    db: psycopg.Connection, order: tuple[int, ...]
) -> None:
    thread = _thread(db)
    for n in order:
        db.execute("select touch_messaging_window(%s, %s, %s)", (thread, _ACTIVITY[n], "message"))
    rows = db.execute(
        "select window_type, opened_at, last_user_activity_at, expires_at "
        "from messaging_policy_window order by 1"
    ).fetchall()
    last = _ACTIVITY[-1]
    # standard: the 60 h action starts the chain (the gap before it is over 24 h)
    # human_agent: every action is within 7 days of the previous one
    assert rows == [
        ("human_agent", T0, last, last + dt.timedelta(days=7)),
        ("standard", _ACTIVITY[2], last, last + dt.timedelta(hours=24)),
    ], order


def _ig_body(event: dict, business: str = "17841400000000001") -> bytes:
    return json.dumps(
        {"object": "instagram", "entry": [{"id": business, "time": 1, "messaging": [event]}]}
    ).encode()


def test_instagram_edit_before_its_message_is_applied_when_the_message_arrives(
    poster: Poster, db: psycopg.Connection
) -> None:
    ms = int(T0.timestamp() * 1000)
    edit = {
        "sender": {"id": "u1"},
        "recipient": {"id": "17841400000000001"},
        "timestamp": ms + 5000,
        "message_edit": {"mid": "ig_mid_1", "text": "fixed text", "num_edit": 1},
    }
    message = {
        "sender": {"id": "u1"},
        "recipient": {"id": "17841400000000001"},
        "timestamp": ms,
        "message": {"mid": "ig_mid_1", "text": "typo txet"},
    }
    assert poster.post(_ig_body(edit)).status_code == 200
    assert db.execute("select status from meta_webhook_event").fetchone() == ("applied",)
    assert poster.post(_ig_body(message)).status_code == 200
    assert db.execute("select text, edited_at from conversation_message").fetchone() == (
        "fixed text",
        T0 + dt.timedelta(seconds=5),
    )


def test_prior_message_ties_a_plugin_identity_to_the_psid(poster: Poster, db: psycopg.Connection):
    page = "111899832631525"
    optin = {
        "recipient": {"id": page},
        "timestamp": int(T0.timestamp() * 1000),
        "optin": {"ref": "checkout", "user_ref": "ref-77"},
    }
    reply = {
        "sender": {"id": "psid-9"},
        "recipient": {"id": page},
        "timestamp": int(T0.timestamp() * 1000) + 60_000,
        "message": {"mid": "m_reply", "text": "yes"},
        "prior_message": {"source": "checkbox_plugin", "identifier": "ref-77"},
    }
    for event in (optin, reply):
        body = {"object": "page", "entry": [{"id": page, "time": 1, "messaging": [event]}]}
        assert poster.post(json.dumps(body).encode()).status_code == 200
    assert db.execute(
        "select user_ref, contact_id, first_seen_at, tied_at from messaging_user_ref"
    ).fetchone() == ("ref-77", "psid-9", T0, T0 + dt.timedelta(minutes=1))


def test_a_psid_optin_opens_the_windows(poster: Poster, db: psycopg.Connection) -> None:
    body = {
        "object": "page",
        "entry": [
            {
                "id": "p1",
                "time": 1,
                "messaging": [
                    {
                        "sender": {"id": "psid-1"},
                        "recipient": {"id": "p1"},
                        "timestamp": int(T0.timestamp() * 1000),
                        "optin": {"ref": "newsletter"},
                    }
                ],
            }
        ],
    }
    assert poster.post(json.dumps(body).encode()).status_code == 200
    assert db.execute(
        "select distinct opened_by, last_user_activity_at from messaging_policy_window"
    ).fetchall() == [("optin", T0)]
    assert db.execute("select kind, contact_id from messaging_observed_event").fetchone() == (
        "optin",
        "psid-1",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1527459824, dt.datetime(2018, 5, 27, 22, 23, 44, tzinfo=dt.UTC)),  # seconds (Meta samples)
        ("1527459824", dt.datetime(2018, 5, 27, 22, 23, 44, tzinfo=dt.UTC)),
        (1527459824000, dt.datetime(2018, 5, 27, 22, 23, 44, tzinfo=dt.UTC)),  # milliseconds
        (0, None),  # Meta's deliveries: "timestamp": 0
        (None, None),
    ],
)
def test_messenger_timestamps(value: object, expected: dt.datetime | None) -> None:
    assert meta_time(value) == expected


def test_one_walk_gives_every_event_its_locks_and_thread() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": "pn"},
                            "messages": [
                                {
                                    "from": "c1",
                                    "id": "w1",
                                    "timestamp": "1700000000",
                                    "type": "text",
                                    "text": {"body": "hi"},
                                }
                            ],
                            "statuses": [
                                {
                                    "id": "w0",
                                    "status": "read",
                                    "timestamp": "1700000001",
                                    "recipient_id": "c1",
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    parsed = parse_body(body, T0)
    assert [type(e).__name__ for e in parsed.events] == ["Message", "Status"]
    assert {(t.platform, t.business_id, t.contact_id) for t in parsed.threads()} == {
        ("whatsapp", "pn", "c1")
    }
    assert parsed.lock_keys() == {"thread:whatsapp:pn:c1", "msg:whatsapp:w1", "msg:whatsapp:w0"}
    assert (parsed.entries, parsed.items) == (1, 2)
