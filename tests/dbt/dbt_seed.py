"""Hand-written raw data for the dbt tests, with the facts the tests check by hand.

Reference time T = 2026-10-01 12:00 UTC. Users and what happens to them:

- u1: ad click on campaign A (T-10d, `meta_campaign_id`), ad click on campaign B (T-5d, UTM
  `utm_campaign` = B's Meta id), a WhatsApp message from a number equal to u1's phone (T-2d,
  the thread has no user: stitched by phone), purchase 100 at T, purchase 20 at T+1h.
- u2: Click-to-Messenger referral on an ad of campaign B at T-40d (outside the 28-day window),
  then a Messenger message at T-1d whose referral names an ad of campaign A, in a thread whose
  m.me `ref` is u2's id (stitched by ref); purchase 50 at T. The page replies 10 min later
  (standard window) and again 30 h later (human-agent window).
- u3: ad clicks on A (T-3d) and B (T-1d); a `lead` without value at T; a CAPI Purchase of 10 at
  T+2h logged without user id, whose CAPI `external_id` is the SHA-256 of u3's id.
- u4: purchase 30 at T with no touch at all (unattributed); its CAPI copy (from the app event)
  is not a second conversion.
- u5: three clicks on campaign A (T-3d, T-2d, T-1d), purchase 60 at T.
- an anonymous Messenger contact: inbound at T-5d 10:00 and 10:05, reply at 10:20; inbound at
  T-5d 11:00 answered only at T-3d (window expired unanswered, reply in the human-agent window).

Conversions API queue (pixel px1, every event on T's UTC date), besides u3's and u4's events:
u1's first purchase and u5's purchase queued from the app events and accepted (their copies
logged in user_event), u2's purchase rejected, u1's second purchase still pending, and a test
event accepted. Match keys sent: u1's purchase em, ph, external_id, fbc; u5's em, fbp, client IP
and user agent; u3's CAPI purchase external_id; u4's none (see `CAPI_KEYS`).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

T = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)

U1 = uuid.UUID("00000000-0000-4000-8000-000000000001")
U2 = uuid.UUID("00000000-0000-4000-8000-000000000002")
U3 = uuid.UUID("00000000-0000-4000-8000-000000000003")
U4 = uuid.UUID("00000000-0000-4000-8000-000000000004")
U5 = uuid.UUID("00000000-0000-4000-8000-000000000005")
CAMPAIGN_A = uuid.UUID("0000000a-0000-4000-8000-00000000000a")
CAMPAIGN_B = uuid.UUID("0000000b-0000-4000-8000-00000000000b")
META_A, META_B = "120000000000000001", "120000000000000002"
AD_A, AD_B = "230000000000000001", "230000000000000002"
PAGE, WABA_PHONE = "page_1", "phone_1"

# Match keys of the events Meta accepted (test events aside), by the conversion they deliver.
CAPI_KEYS = {
    "u1_purchase_1": {"em", "ph", "external_id", "fbc"},
    "u5_purchase": {"em", "fbp", "ip_ua"},
    "u3_capi": {"external_id"},
    "u4_purchase": set(),
}
# Meta-reported campaign-level totals seeded below (two days each).
SPEND = {CAMPAIGN_A: 100.0 + 50.0, CAMPAIGN_B: 80.0 + 20.0}
META_VALUE = {CAMPAIGN_A: 300.0 + 60.0, CAMPAIGN_B: 40.0 + 10.0}


def _event(
    cur: psycopg.Cursor, user_id, etype: str, at: datetime, props: dict, source: str = "app"
) -> int:
    cur.execute(
        "insert into user_event (user_id, etype, source, props, occurred_at) "
        "values (%s, %s, %s, %s, %s) returning id",
        (user_id, etype, source, Jsonb(props), at),
    )
    return cur.fetchone()[0]


def _thread(cur: psycopg.Cursor, platform: str, account: str, contact: str, **cols) -> uuid.UUID:
    names = ["platform", "business_account_id", "contact_id", *cols]
    cur.execute(
        f"insert into conversation_thread ({', '.join(names)}) "
        f"values ({', '.join(['%s'] * len(names))}) returning thread_id",
        (platform, account, contact, *cols.values()),
    )
    return cur.fetchone()[0]


def _message(
    cur: psycopg.Cursor,
    thread_id,
    platform: str,
    direction: str,
    at: datetime,
    mid: str,
    payload: dict | None = None,
) -> None:
    cur.execute(
        "insert into conversation_message (thread_id, platform, platform_message_id, direction, "
        "message_type, text, payload, status, sent_at) values (%s, %s, %s, %s, 'text', 'hi', %s, %s, %s)",
        (
            thread_id,
            platform,
            mid,
            direction,
            Jsonb(payload or {}),
            "received" if direction == "inbound" else "sent",
            at,
        ),
    )


def truncate_raw_tables(conn: psycopg.Connection) -> None:
    """Empty every table of `public` and `auth` (the migrations record excepted)."""
    tables = conn.execute(
        "select quote_ident(schemaname) || '.' || quote_ident(tablename) from pg_tables "
        "where schemaname in ('public', 'auth') and tablename <> 'everreach_schema_migrations'"
    ).fetchall()
    conn.execute("truncate " + ", ".join(t[0] for t in tables) + " restart identity cascade")


def seed(conn: psycopg.Connection) -> dict:
    """Insert the scenario above; returns ids the tests need."""
    with conn.cursor() as cur:
        cur.executemany(
            "insert into auth.users (id, email, phone) values (%s, %s, %s)",
            [
                (U1, "u1@example.com", "+1 (650) 555-1212"),
                (U2, "u2@example.com", None),
                (U3, "u3@example.com", "+44 20 7946 0000"),
                (U4, "u4@example.com", None),
                (U5, "u5@example.com", None),
            ],
        )
        cur.executemany(
            "insert into campaign (campaign_id, name, meta_campaign_id, meta_ad_account_id, source) "
            "values (%s, %s, %s, 'act_1', 'meta')",
            [(CAMPAIGN_A, "Campaign A", META_A), (CAMPAIGN_B, "Campaign B", META_B)],
        )
        cur.executemany(
            "insert into meta_ad (ad_id, ad_account_id, campaign_id, adset_id, name) "
            "values (%s, '1', %s, %s, %s)",
            [(AD_A, META_A, "as_a", "Ad A"), (AD_B, META_B, "as_b", "Ad B")],
        )
        perf = []
        for day, (a_spend, a_value, b_spend, b_value) in {
            date(2026, 9, 29): (100, 300, 80, 40),
            date(2026, 9, 30): (50, 60, 20, 10),
        }.items():
            perf.append(
                (
                    day,
                    "account",
                    "1",
                    None,
                    None,
                    None,
                    a_spend + b_spend,
                    5000,
                    4000,
                    120,
                    0,
                    a_value + b_value,
                )
            )
            for cid, meta, ad, spend, value in (
                (CAMPAIGN_A, META_A, AD_A, a_spend, a_value),
                (CAMPAIGN_B, META_B, AD_B, b_spend, b_value),
            ):
                perf.append(
                    (day, "campaign", meta, cid, cid, meta, spend, 2500, 2000, 60, 3, value)
                )
                perf.append(
                    (
                        day,
                        "adset",
                        "as_" + meta[-1],
                        None,
                        cid,
                        meta,
                        spend,
                        2500,
                        2000,
                        60,
                        3,
                        value,
                    )
                )
                perf.append((day, "ad", ad, None, cid, meta, spend, 2500, 1900, 60, 3, value))
        cur.executemany(
            "insert into ad_performance (date, ad_account_id, level, entity_id, campaign_id, "
            "parent_campaign_id, meta_campaign_id, spend, impressions, reach, clicks, conversions, "
            "conversion_value, account_currency, meta_ad_id) "
            "values (%s, '1', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'USD', "
            "case when %s = 'ad' then %s end)",
            [(*row, row[1], row[2]) for row in perf],
        )

        ids: dict = {}
        # u1
        ids["u1_click_a"] = _event(
            cur, U1, "ad_click", T - 10 * DAY, {"meta_campaign_id": META_A, "fbclid": "x1"}
        )
        ids["u1_click_b"] = _event(
            cur, U1, "ad_click", T - 5 * DAY, {"utm_source": "facebook", "utm_campaign": META_B}
        )
        wa = _thread(cur, "whatsapp", WABA_PHONE, "16505551212")
        _message(cur, wa, "whatsapp", "inbound", T - 2 * DAY, "wamid.u1")
        ids["u1_purchase_1"] = _event(
            cur, U1, "purchase", T, {"value": "100.00", "currency": "usd", "order_id": "o1"}
        )
        ids["u1_purchase_2"] = _event(
            cur, U1, "purchase", T + timedelta(hours=1), {"value": 20, "currency": "USD"}
        )
        # u2
        m2 = _thread(
            cur,
            "messenger",
            PAGE,
            "psid_u2",
            referral_ref=str(U2),
            referral_source="ADS",
            referral_ad_id=AD_A,
        )
        _event(
            cur,
            None,
            "ad_referral",
            T - 40 * DAY,
            {"meta_ad_id": AD_B, "thread_id": str(m2), "ref": str(U2)},
            source="messenger",
        )
        _message(
            cur,
            m2,
            "messenger",
            "inbound",
            T - DAY,
            "mid.u2.1",
            {"referral": {"ad_id": AD_A, "ref": str(U2), "source": "ADS"}},
        )
        _message(cur, m2, "messenger", "outbound", T - DAY + timedelta(minutes=10), "mid.u2.2")
        _message(cur, m2, "messenger", "outbound", T - DAY + timedelta(hours=30), "mid.u2.3")
        ids["u2_purchase"] = _event(cur, U2, "purchase", T, {"value": "50", "currency": "USD"})
        # u3
        _event(cur, U3, "ad_click", T - 3 * DAY, {"meta_ad_id": AD_A})
        _event(cur, U3, "ad_click", T - DAY, {"meta_campaign_id": META_B})
        ids["u3_lead"] = _event(cur, U3, "lead", T, {})
        sha = hashlib.sha256(str(U3).encode()).hexdigest()
        cur.execute(
            "insert into meta_conversion_event (pixel_id, event_name, event_id, event_time, "
            "action_source, user_data, value, currency, status, source) values "
            "('px1', 'Purchase', 'e-u3', %s, 'website', %s, 10, 'USD', 'sent', 'api')",
            (T + timedelta(hours=2), Jsonb({"external_id": [sha]})),
        )
        ids["u3_capi"] = _event(
            cur,
            None,
            "meta_conversion_Purchase",
            T + timedelta(hours=2),
            {"event_id": "e-u3", "pixel_id": "px1", "value": 10, "currency": "USD"},
            source="capi",
        )
        # u4
        ids["u4_purchase"] = _event(cur, U4, "purchase", T, {"value": 30, "currency": "USD"})
        cur.execute(
            "insert into meta_conversion_event (pixel_id, event_name, event_id, event_time, "
            "action_source, user_id, value, currency, status, source, source_event_ref) values "
            "('px1', 'Purchase', 'e-u4', %s, 'website', %s, 30, 'USD', 'sent', 'user_event', %s)",
            (T, U4, str(ids["u4_purchase"])),
        )
        _event(
            cur,
            U4,
            "meta_conversion_Purchase",
            T,
            {"event_id": "e-u4", "pixel_id": "px1", "value": 30, "currency": "USD"},
            source="capi",
        )
        # u5
        for days in (3, 2, 1):
            _event(cur, U5, "ad_click", T - days * DAY, {"meta_campaign_id": META_A})
        ids["u5_purchase"] = _event(cur, U5, "purchase", T, {"value": 60, "currency": "USD"})
        # the Conversions API queue's other events (see the module docstring)
        hashed = "a" * 64
        for name, event_id, status, user_data in (
            (
                "u1_purchase_1",
                "e-u1-1",
                "sent",
                {"em": hashed, "ph": hashed, "external_id": hashed, "fbc": "fb.1.1.x1"},
            ),
            (
                "u5_purchase",
                "e-u5",
                "sent",
                {
                    "em": hashed,
                    "fbp": "fb.1.1.2",
                    "client_ip_address": "203.0.113.5",
                    "client_user_agent": "Mozilla/5.0",
                },
            ),
            ("u2_purchase", "e-u2", "rejected", {"em": hashed}),
            ("u1_purchase_2", "e-u1-2", "pending", {"em": hashed}),
        ):
            cur.execute(
                "insert into meta_conversion_event (pixel_id, event_name, event_id, event_time, "
                "action_source, user_data, status, source, source_event_ref) values "
                "('px1', 'Purchase', %s, %s, 'system_generated', %s, %s, 'user_event', %s)",
                (event_id, T, Jsonb(user_data), status, str(ids[name])),
            )
            if status == "sent":
                _event(
                    cur,
                    None,
                    "meta_conversion_Purchase",
                    T,
                    {"event_id": event_id, "pixel_id": "px1"},
                    source="capi",
                )
        cur.execute(
            "insert into meta_conversion_event (pixel_id, event_name, event_id, event_time, "
            "action_source, user_data, status, source, test_event_code, is_test) values "
            "('px1', 'Lead', 'e-test', %s, 'system_generated', %s, 'sent', 'api', 'TEST1', true)",
            (T, Jsonb({"em": hashed})),
        )
        # anonymous contact
        anon = _thread(cur, "messenger", PAGE, "psid_anon")
        base = (T - 5 * DAY).replace(hour=10)
        _message(cur, anon, "messenger", "inbound", base, "mid.a.1")
        _message(cur, anon, "messenger", "inbound", base + timedelta(minutes=5), "mid.a.2")
        _message(cur, anon, "messenger", "outbound", base + timedelta(minutes=20), "mid.a.3")
        _message(cur, anon, "messenger", "inbound", base + timedelta(hours=1), "mid.a.4")
        _message(cur, anon, "messenger", "outbound", T - 3 * DAY, "mid.a.5")
        ids.update(wa_thread=wa, u2_thread=m2, anon_thread=anon)

        # organic: one post with three lifetime snapshots; one account's day metrics
        cur.execute(
            "insert into social_media_post (platform, post_id, account_id, media_type, posted_at) "
            "values ('instagram', 'p1', 'ig1', 'IMAGE', %s)",
            (T - 3 * DAY,),
        )
        cur.executemany(
            "insert into social_post_insights (platform, post_id, snapshot_date, metric, value) "
            "values ('instagram', 'p1', %s, 'views', %s)",
            [(date(2026, 9, 28), 100), (date(2026, 9, 29), 160), (date(2026, 9, 30), 175)],
        )
        cur.executemany(
            "insert into social_account_insights (platform, account_id, date, metric, period, value) "
            "values ('instagram', 'ig1', %s, %s, 'day', %s)",
            [
                (date(2026, 9, 30), "follower_count", 12),
                (date(2026, 9, 30), "reach", 900),
                (date(2026, 9, 30), "views", 1500),
            ],
        )
    return ids
