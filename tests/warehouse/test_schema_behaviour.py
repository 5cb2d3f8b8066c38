"""Tables, constraints, functions and triggers behave as the dashboards and receiver expect."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def _user(db: psycopg.Connection, phone: str | None = None) -> uuid.UUID:
    return db.execute(
        "insert into auth.users (email, phone) values (%s, %s) returning id",
        (f"{uuid.uuid4().hex[:6]}@example.com", phone),
    ).fetchone()[0]


def _thread(db: psycopg.Connection, platform: str, user_id=None) -> uuid.UUID:
    return db.execute(
        "insert into conversation_thread (platform, business_account_id, contact_id, user_id) "
        "values (%s, 'biz1', %s, %s) returning thread_id",
        (platform, uuid.uuid4().hex[:10], user_id),
    ).fetchone()[0]


def _message(db, thread, platform, direction, at, mid=None, **extra) -> uuid.UUID:
    cols = {
        "thread_id": thread,
        "platform": platform,
        "direction": direction,
        "message_type": "text",
        "text": "hello",
        "sent_at": at,
        "platform_message_id": mid or f"m_{uuid.uuid4().hex}",
        "status": "received" if direction == "inbound" else "sent",
        **extra,
    }
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    return db.execute(
        f"insert into conversation_message ({names}) values ({marks}) returning message_id",
        list(cols.values()),
    ).fetchone()[0]


def _window_open(db, thread, at, kind="standard") -> bool:
    return db.execute("select is_in_messaging_window(%s, %s, %s)", (thread, kind, at)).fetchone()[0]


@pytest.mark.parametrize("platform", ["messenger", "instagram", "whatsapp"])
def test_inbound_message_opens_windows_that_expire_on_time(db, platform):
    thread = _thread(db, platform)
    assert not _window_open(db, thread, T0)
    _message(db, thread, platform, "inbound", T0)

    assert _window_open(db, thread, T0 + dt.timedelta(hours=23, minutes=59))
    assert not _window_open(db, thread, T0 + dt.timedelta(hours=24))
    human = _window_open(db, thread, T0 + dt.timedelta(days=6, hours=23), "human_agent")
    assert human is (platform != "whatsapp")  # HUMAN_AGENT exists for Messenger/Instagram only
    assert not _window_open(db, thread, T0 + dt.timedelta(days=7), "human_agent")
    # the one-argument form answers for the standard window, now (T0 is in the past)
    assert db.execute("select is_in_messaging_window(%s)", (thread,)).fetchone()[0] is False


def test_window_extends_and_older_events_never_shorten_it(db):
    thread = _thread(db, "messenger")
    _message(db, thread, "messenger", "inbound", T0 + dt.timedelta(hours=10))
    _message(db, thread, "messenger", "inbound", T0)  # arrives late, happened earlier
    assert _window_open(db, thread, T0 + dt.timedelta(hours=33))
    assert not _window_open(db, thread, T0 + dt.timedelta(hours=34))
    # an echo (the page's own send) is not user activity
    _message(db, thread, "messenger", "outbound", T0 + dt.timedelta(hours=30), is_echo=True)
    assert not _window_open(db, thread, T0 + dt.timedelta(hours=35))


def test_window_reopens_after_it_closed(db):
    thread = _thread(db, "whatsapp")
    _message(db, thread, "whatsapp", "inbound", T0)
    later = T0 + dt.timedelta(days=3)
    _message(db, thread, "whatsapp", "inbound", later)
    opened = db.execute(
        "select opened_at from messaging_policy_window where thread_id = %s", (thread,)
    ).fetchone()[0]
    assert opened == later
    assert not _window_open(db, thread, T0 + dt.timedelta(days=2))


@pytest.mark.parametrize(
    ("platform", "etype_in", "etype_out"),
    [
        ("messenger", "messenger_received", "messenger_sent"),
        ("instagram", "instagram_dm_received", "instagram_dm_sent"),
        ("whatsapp", "whatsapp_received", "whatsapp_sent"),
    ],
)
def test_messages_are_logged_once_into_user_event(db, platform, etype_in, etype_out):
    user = _user(db)
    thread = _thread(db, platform, user)
    _message(db, thread, platform, "inbound", T0, mid="in-1")
    _message(
        db,
        thread,
        platform,
        "outbound",
        T0 + dt.timedelta(minutes=5),
        mid="out-1",
        window_used="standard",
    )
    _message(
        db, thread, platform, "outbound", T0 + dt.timedelta(minutes=6), mid=None, status="failed"
    )  # Meta refused it: not an event
    rows = db.execute(
        "select etype, props, occurred_at from user_event where user_id = %s order by occurred_at",
        (user,),
    ).fetchall()
    assert [r[0] for r in rows] == [etype_in, etype_out]
    assert rows[1][1]["message_id"] == "out-1"
    assert rows[1][1]["thread_id"] == str(thread)
    assert rows[1][1]["window"] == "standard"
    assert rows[0][2] == T0


def test_thread_timestamps_follow_messages_in_any_order(db):
    thread = _thread(db, "messenger")
    _message(db, thread, "messenger", "inbound", T0 + dt.timedelta(hours=2))
    _message(db, thread, "messenger", "inbound", T0)
    _message(db, thread, "messenger", "outbound", T0 + dt.timedelta(hours=1))
    first, last, last_in, last_out = db.execute(
        "select first_message_at, last_message_at, last_inbound_at, last_outbound_at "
        "from conversation_thread where thread_id = %s",
        (thread,),
    ).fetchone()
    assert (first, last) == (T0, T0 + dt.timedelta(hours=2))
    assert last_in == T0 + dt.timedelta(hours=2)
    assert last_out == T0 + dt.timedelta(hours=1)


def test_natural_keys_and_enumerations_are_enforced(db):
    thread = _thread(db, "whatsapp")
    _message(db, thread, "whatsapp", "inbound", T0, mid="wamid.1")
    with pytest.raises(psycopg.errors.UniqueViolation):
        _message(db, thread, "whatsapp", "inbound", T0, mid="wamid.1")
    with pytest.raises(psycopg.errors.CheckViolation):
        _message(db, thread, "whatsapp", "sideways", T0)
    with pytest.raises(psycopg.errors.UniqueViolation):
        for _ in range(2):
            db.execute(
                "insert into conversation_thread (platform, business_account_id, "
                "contact_id) values ('messenger', 'p', 'c')"
            )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "insert into meta_platform_config (platform, external_id, settings) values "
            "('ad_account', '1', '{\"access_token\": \"EAAB\"}')"
        )
    db.execute(
        "insert into meta_conversion_event (pixel_id, event_name, event_id, event_time, "
        "action_source) values ('px', 'Purchase', 'e1', now(), 'website')"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "insert into meta_conversion_event (pixel_id, event_name, event_id, "
            "event_time, action_source) values ('px', 'Purchase', 'e1', now(), 'website')"
        )


def test_dashboard_queries_run_unchanged(db):
    user = _user(db)
    campaign = db.execute(
        "insert into campaign (name, meta_campaign_id) values ('Spring', '77') "
        "returning campaign_id"
    ).fetchone()[0]
    today = dt.date.today()
    for level, entity, cid in (("campaign", "77", campaign), ("ad", "7701", None)):
        db.execute(
            "insert into ad_performance (date, ad_account_id, level, entity_id, campaign_id, "
            "parent_campaign_id, meta_campaign_id, spend, conversions, conversion_value) "
            "values (%s, '1', %s, %s, %s, %s, '77', 10, 2, 25)",
            (today, level, entity, cid, campaign),
        )
    rows = db.execute(
        """
        SELECT c.name as campaign_name, SUM(ap.spend) as total_spend, SUM(ap.conversions) as total_conversions,
          (SUM(ap.conversion_value) / NULLIF(SUM(ap.spend), 0)) as roas
        FROM campaign c JOIN ad_performance ap ON ap.campaign_id = c.campaign_id
        WHERE ap.date >= NOW() - INTERVAL '30 days' GROUP BY c.name;
        """
    ).fetchall()
    # the ad-level row does not double the campaign's spend
    assert [(r[0], float(r[1]), float(r[2]), float(r[3])) for r in rows] == [
        ("Spring", 10.0, 2.0, 2.5)
    ]

    thread = _thread(db, "instagram", user)
    _message(db, thread, "instagram", "inbound", T0)
    db.execute(
        "insert into user_event (user_id, etype, source, props, occurred_at) values "
        "(%s, 'meta_conversion_Purchase', 'capi', '{}', %s), (%s, 'page_view', 'app', '{}', %s)",
        (user, T0 + dt.timedelta(hours=1), user, T0),
    )
    rows = db.execute(
        """
        SELECT ue.occurred_at, ue.etype as event_type, ue.source, ue.props FROM user_event ue
        WHERE user_id = %s AND (ue.etype LIKE 'messenger_%%' OR ue.etype LIKE 'instagram_%%'
          OR ue.etype LIKE 'whatsapp_%%' OR ue.etype LIKE 'meta_conversion_%%') ORDER BY occurred_at DESC;
        """,
        (user,),
    ).fetchall()
    assert [r[1] for r in rows] == ["meta_conversion_Purchase", "instagram_dm_received"]
