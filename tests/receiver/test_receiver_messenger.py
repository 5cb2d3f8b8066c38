"""Messenger and Instagram event families, applied over real HTTP to a real Postgres."""

from __future__ import annotations

import uuid
from datetime import timedelta

from receiver_helpers import Rig


def _contact(rig: Rig, platform: str, n: int = 0) -> str:
    return rig.state.contacts[platform][n]


def test_messenger_message_kinds(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = _contact(rig, "messenger")
    events = [
        f.text_message("messenger", psid, now - timedelta(minutes=9), "hello"),
        f.attachment_message("messenger", psid, now - timedelta(minutes=8), "image"),
        f.attachment_message("messenger", psid, now - timedelta(minutes=7), "location"),
        f.text_message(
            "messenger", psid, now - timedelta(minutes=6), "Yes", quick_reply={"payload": "YES"}
        ),
        f.user_event(
            "messenger",
            psid,
            now - timedelta(minutes=5),
            postback={"mid": "m_postback_1", "title": "Get Started", "payload": "GET_STARTED"},
        ),
    ]
    rig.post(f.messaging_body("messenger", events))
    rows = rig.db.execute(
        "select message_type, direction, text, payload from conversation_message order by sent_at"
    ).fetchall()
    assert [r[0] for r in rows] == ["text", "image", "location", "quick_reply", "postback"]
    assert {r[1] for r in rows} == {"inbound"}
    assert rows[0][2] == "hello" and rows[3][3]["quick_reply"] == {"payload": "YES"}
    assert rows[1][3]["attachments"][0]["type"] == "image"
    assert rig.scalar("select count(*) from conversation_thread") == 1
    assert rig.scalar("select count(*) from user_event where etype = 'messenger_received'") == 5
    assert rig.scalar("select entry_count || '/' || event_count from meta_webhook_event") == "1/5"


def test_ctm_referral_stored_on_thread_and_logged(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = _contact(rig, "messenger", 1)
    rig.post(
        f.messaging_body(
            "messenger",
            [f.ctm_referral_message("messenger", psid, now - timedelta(minutes=3), "120330000111")],
        )
    )
    source, ad_id, referral = rig.one(
        "select referral_source, referral_ad_id, referral from conversation_thread"
    )
    assert (source, ad_id) == ("ADS", "120330000111") and referral["type"] == "OPEN_THREAD"
    props = rig.scalar("select props from user_event where etype = 'ad_referral'")
    assert props["meta_ad_id"] == "120330000111" and props["platform"] == "messenger"
    received = rig.scalar("select props from user_event where etype = 'messenger_received'")
    assert received["referral"]["ad_id"] == "120330000111"
    assert rig.scalar("select count(*) from messaging_policy_window") == 2


def test_mme_ref_links_the_everreach_user(rig: Rig) -> None:
    user_id = uuid.uuid4()
    rig.db.execute("insert into auth.users (id, email) values (%s, 'a@example.com')", (user_id,))
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = _contact(rig, "messenger", 2)
    at = now - timedelta(minutes=2)
    rig.post(
        f.messaging_body(
            "messenger",
            [
                f.user_event(
                    "messenger",
                    psid,
                    at,
                    referral={"ref": str(user_id), "source": "SHORTLINK", "type": "OPEN_THREAD"},
                )
            ],
        )
    )
    rig.post(
        f.messaging_body(
            "messenger", [f.text_message("messenger", psid, at + timedelta(seconds=5), "hi")]
        )
    )
    assert rig.one("select user_id, referral_ref from conversation_thread") == (
        user_id,
        str(user_id),
    )
    assert (
        rig.scalar("select user_id from user_event where etype = 'messenger_received'") == user_id
    )
    assert (
        rig.scalar("select opened_by from messaging_policy_window where window_type = 'standard'")
        == "referral"
    )


def test_echo_is_outbound_and_never_user_activity(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = _contact(rig, "messenger", 3)
    rig.post(f.messaging_body("messenger", [f.echo("messenger", psid, now)]))
    assert rig.one("select direction, is_echo, status from conversation_message") == (
        "outbound",
        True,
        "sent",
    )
    assert rig.scalar("select count(*) from messaging_policy_window") == 0
    assert rig.scalar("select etype from user_event") == "messenger_sent"
    assert rig.scalar("select contact_id from conversation_thread") == psid


def test_reaction_edit_and_standby(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = _contact(rig, "messenger", 4)
    first = f.text_message("messenger", psid, now - timedelta(minutes=10), "typo")
    mid = first["message"]["mid"]
    rig.post(f.messaging_body("messenger", [first]))
    rig.post(
        f.messaging_body(
            "messenger",
            [
                f.user_event(
                    "messenger",
                    psid,
                    now - timedelta(minutes=9),
                    reaction={"mid": mid, "action": "react", "reaction": "love", "emoji": "\u2764"},
                ),
                {
                    "sender": {"id": psid},
                    "recipient": {"id": rig.state.page_id},
                    "timestamp": int((now - timedelta(minutes=8)).timestamp() * 1000),
                    "message_edit": {"mid": mid, "text": "fixed", "num_edit": 1},
                },
            ],
        )
    )
    body = f.messaging_body(
        "messenger",
        [
            f.text_message(
                "messenger", psid, now - timedelta(minutes=7), "while another app owns the thread"
            )
        ],
    )
    body["entry"][0]["standby"] = body["entry"][0].pop("messaging")
    rig.post(body)
    assert rig.one(
        "select text, edited_at is not null from conversation_message "
        "where platform_message_id = %s",
        mid,
    ) == ("fixed", True)
    assert rig.one(
        "select message_type, reply_to_platform_message_id from "
        "conversation_message where message_type = 'reaction'"
    ) == ("reaction", mid)
    assert (
        rig.scalar(
            "select payload ->> 'standby' from conversation_message where text like 'while%%'"
        )
        == "true"
    )
    last = rig.scalar(
        "select last_user_activity_at from messaging_policy_window where window_type = 'standard'"
    )
    assert abs((last - (now - timedelta(minutes=7))).total_seconds()) < 0.01


def test_watermark_marks_every_outbound_at_or_before_it(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = _contact(rig, "messenger", 0)
    t0 = now - timedelta(minutes=30)
    echoes = [f.echo("messenger", psid, t0 + timedelta(minutes=k)) for k in range(3)]
    # The delivery (watermark = the 2nd echo) arrives *before* any echo: kept, reconciled.
    rig.post(
        f.messaging_body("messenger", [f.delivery("messenger", psid, t0 + timedelta(minutes=1))])
    )
    rig.post(f.messaging_body("messenger", echoes))
    states = rig.db.execute(
        "select status, delivered_at is not null from conversation_message order by sent_at"
    ).fetchall()
    assert states == [("delivered", True), ("delivered", True), ("sent", False)]
    rig.post(
        f.messaging_body("messenger", [f.read("messenger", psid, now, t0 + timedelta(minutes=2))])
    )
    assert [
        r[0] for r in rig.db.execute("select status from conversation_message order by sent_at")
    ] == ["read"] * 3
    # An older delivery watermark arriving late never moves a status back.
    rig.post(
        f.messaging_body("messenger", [f.delivery("messenger", psid, t0 + timedelta(minutes=2))])
    )
    assert [
        r[0] for r in rig.db.execute("select status from conversation_message order by sent_at")
    ] == ["read"] * 3
    assert rig.scalar("select count(*) from message_delivery_event") == 3


def test_instagram_families(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    igsid = _contact(rig, "instagram")
    story = f.text_message(
        "instagram",
        igsid,
        now - timedelta(minutes=5),
        "Love this!",
        reply_to={"story": {"url": "https://lookaside/s", "id": "17"}},
    )
    plain = f.text_message("instagram", igsid, now - timedelta(minutes=4), "to be unsent")
    mention = f.attachment_message("instagram", igsid, now - timedelta(minutes=3), "story_mention")
    unsend = {
        "sender": {"id": igsid},
        "recipient": {"id": rig.state.ig_account_id},
        "timestamp": int(now.timestamp() * 1000),
        "message": {"mid": plain["message"]["mid"], "is_deleted": True},
    }
    echo = f.echo("instagram", igsid, now - timedelta(minutes=2))
    # Unsend first (out of order), then the rest.
    rig.post(f.messaging_body("instagram", [unsend]))
    rig.post(f.messaging_body("instagram", [story, plain, mention, echo]))
    rig.post(
        f.messaging_body(
            "instagram",
            [
                f.user_event(
                    "instagram",
                    igsid,
                    now - timedelta(minutes=1),
                    reaction={"mid": echo["message"]["mid"], "action": "react", "reaction": "love"},
                ),
                {
                    "sender": {"id": igsid},
                    "recipient": {"id": rig.state.ig_account_id},
                    "timestamp": int(now.timestamp() * 1000),
                    "read": {"mid": echo["message"]["mid"]},
                },
            ],
        )
    )
    rows = dict(
        rig.db.execute(
            "select message_type, is_deleted from conversation_message "
            "where direction = 'inbound' and message_type <> 'reaction'"
        ).fetchall()
    )
    assert rows == {"story_reply": False, "text": True, "story_mention": False}
    assert rig.scalar("select status from conversation_message where is_echo") == "read"
    assert rig.scalar("select platform from conversation_thread") == "instagram"
    assert rig.scalar("select count(*) from user_event where etype = 'instagram_dm_received'") == 4
    assert rig.scalar("select count(*) from messaging_policy_window") == 2
