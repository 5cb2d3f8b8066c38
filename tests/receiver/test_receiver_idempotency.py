"""Duplicates, re-batching, replay of the whole log, and policy windows at exact instants."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from receiver_helpers import Rig

from everreach.messaging.cli import webhooks
from everreach.messaging.replay import replay_events
from everreach.sandbox.messaging import build_burst

# Every table the apply writes, with the columns that must not change on a replay
# (bookkeeping such as updated_at/attempts/applied_at is allowed to move).
SNAPSHOT = {
    "conversation_thread": "platform, business_account_id, contact_id, contact_name, user_id, "
    "referral_source, referral_ad_id, referral_ref, ctwa_clid, referral,"
    " first_message_at, last_message_at, last_inbound_at, "
    "last_outbound_at",
    "conversation_message": "platform, platform_message_id, direction, message_type, text, "
    "payload, is_echo, is_deleted, status, status_rank, error_code, "
    "delivered_at, read_at, failed_at, sent_at, edited_at",
    "message_delivery_event": "dedup_key, message_id, occurred_at, watermark, error_code",
    "messaging_policy_window": "thread_id, window_type, opened_at, last_user_activity_at, "
    "expires_at, opened_by",
    "user_event": "user_id, etype, source, props, occurred_at",
}


def snapshot(rig: Rig) -> dict[str, list[tuple]]:
    """Every row of every applied table (ordered), for before/after comparison."""
    return {
        table: sorted(map(repr, rig.db.execute(f"select {cols} from {table}").fetchall()))
        for table, cols in SNAPSHOT.items()
    }


def test_duplicate_and_rebatched_deliveries_give_one_message(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = rig.state.contacts["messenger"][0]
    first = f.text_message("messenger", psid, now - timedelta(minutes=2), "once")
    second = f.text_message("messenger", psid, now - timedelta(minutes=1), "twice")
    body = f.messaging_body("messenger", [first])
    rig.post(body)
    rig.post(body)  # the same bytes again (Meta retried)
    rebatched = f.messaging_body("messenger", [second])
    rebatched["entry"].append({"id": rig.state.page_id, "time": 1, "messaging": [first]})
    rig.post(rebatched)  # the first event again, in another entry of another batch
    assert rig.scalar("select count(*) from meta_webhook_event") == 3
    assert rig.scalar("select count(*) from conversation_message") == 2
    assert rig.scalar("select count(*) from user_event where etype = 'messenger_received'") == 2


def test_replaying_the_whole_log_twice_changes_nothing(rig: Rig) -> None:
    for raw in build_burst(rig.sandbox.sandbox, 120, seed=5):
        assert rig.post_raw(raw).status_code == 200
    assert rig.scalar("select count(*) from meta_webhook_event where status <> 'applied'") == 0
    before = snapshot(rig)
    assert sum(len(v) for v in before.values()) > 200
    url = rig.receiver.settings.database_url
    assert replay_events(url) == {"applied": 120, "replayed": 120}
    assert snapshot(rig) == before
    result = CliRunner().invoke(webhooks, ["replay"], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "applied=120" in result.output
    assert snapshot(rig) == before
    assert rig.scalar("select min(attempts) from meta_webhook_event") == 3


def test_failed_event_is_kept_and_replayed_after_the_fix(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = rig.state.contacts["messenger"][1]
    bad = f.messaging_body("messenger", [f.text_message("messenger", psid, now, "hi")])
    bad["entry"][0]["messaging"][0]["timestamp"] = "yesterday"
    rig.post(bad)
    assert rig.one("select status, error like '%%timestamp%%' from meta_webhook_event") == (
        "failed",
        True,
    )
    # An operator repairs the stored body (as a code fix would make it applicable).
    rig.db.execute(
        "update meta_webhook_event set raw_body = convert_to(replace("
        "convert_from(raw_body, 'UTF8'), '\"yesterday\"', %s), 'UTF8')",
        (str(int(now.timestamp() * 1000)),),
    )
    counts = replay_events(rig.receiver.settings.database_url, failed_only=True)
    assert counts == {"applied": 1, "replayed": 1}
    assert rig.scalar("select count(*) from conversation_message") == 1
    assert replay_events(rig.receiver.settings.database_url, failed_only=True) == {}


def test_windows_open_extend_and_expire_at_the_right_instants(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = rig.state.contacts["messenger"][2]
    t1 = now - timedelta(days=3)
    t2 = t1 + timedelta(hours=5)
    # The later message arrives first: the earlier one must not shorten the window.
    rig.post(f.messaging_body("messenger", [f.text_message("messenger", psid, t2, "b")]))
    rig.post(f.messaging_body("messenger", [f.text_message("messenger", psid, t1, "a")]))
    thread = rig.scalar("select thread_id from conversation_thread")

    def open_at(kind: str, at) -> bool:
        return rig.scalar("select is_in_messaging_window(%s, %s, %s)", thread, kind, at)

    assert open_at("standard", t1) and open_at("standard", t2 + timedelta(hours=23, minutes=59))
    assert not open_at("standard", t2 + timedelta(hours=24))
    assert open_at("human_agent", t2 + timedelta(days=6, hours=23))
    assert not open_at("human_agent", t2 + timedelta(days=7))
    assert not rig.scalar("select is_in_messaging_window(%s)", thread)  # now: 3 days later
    # A postback now reopens both windows from Meta's timestamp.
    rig.post(
        f.messaging_body(
            "messenger",
            [f.user_event("messenger", psid, now, postback={"title": "Menu", "payload": "MENU"})],
        )
    )
    assert rig.scalar("select is_in_messaging_window(%s)", thread)
    opened, by = rig.one(
        "select opened_at, opened_by from messaging_policy_window where window_type = 'standard'"
    )
    assert by == "postback" and abs((opened - now).total_seconds()) < 0.01


def test_edit_before_its_message_is_failed_then_replayed(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    psid = rig.state.contacts["messenger"][3]
    original = f.text_message("messenger", psid, now - timedelta(minutes=3), "helo")
    mid = original["message"]["mid"]
    rig.post(
        f.messaging_body(
            "messenger",
            [
                {
                    "sender": {"id": psid},
                    "recipient": {"id": rig.state.page_id},
                    "timestamp": int((now - timedelta(minutes=2)).timestamp() * 1000),
                    "message_edit": {"mid": mid, "text": "hello", "num_edit": 1},
                }
            ],
        )
    )
    assert rig.scalar("select status from meta_webhook_event") == "failed"
    rig.post(f.messaging_body("messenger", [original]))
    assert replay_events(rig.receiver.settings.database_url, failed_only=True) == {
        "applied": 1,
        "replayed": 1,
    }
    assert rig.scalar("select text from conversation_message") == "hello"
