"""Send endpoints against the sandbox's send APIs: inside/outside each window."""

from __future__ import annotations

from datetime import timedelta

from receiver_helpers import Rig

from webhook_receiver.send import MESSENGER_PATH, WHATSAPP_PATH


def _inbound(rig: Rig, platform: str, contact: str, ago: timedelta) -> None:
    f = rig.factory
    at = rig.sandbox.sandbox.now() - ago
    if platform == "whatsapp":
        rig.post(f.whatsapp_body(messages=[f.wa_message(contact, at)]))
    else:
        rig.post(f.messaging_body(platform, [f.text_message(platform, contact, at)]))


def _send(rig: Rig, path: str, body: dict, token: str | None = "auto"):
    headers = (
        {}
        if token is None
        else {"authorization": f"Bearer {rig.token() if token == 'auto' else token}"}
    )
    return rig.client.post(rig.receiver.base_url + path, json=body, headers=headers)


def test_send_requires_a_valid_bearer_token(rig: Rig) -> None:
    body = {"platform": "messenger", "recipient_id": "1", "text": "hi"}
    assert _send(rig, MESSENGER_PATH, body, token=None).status_code == 401
    assert _send(rig, MESSENGER_PATH, body, token="not.a.jwt").status_code == 401
    assert (
        _send(rig, WHATSAPP_PATH, {"to": "123456789", "text": "x"}, token=None).status_code == 401
    )


def test_messenger_and_instagram_inside_and_outside_windows(rig: Rig) -> None:
    for platform in ("messenger", "instagram"):
        fresh, stale, gone = rig.state.contacts[platform][:3]
        _inbound(rig, platform, fresh, timedelta(hours=1))
        _inbound(rig, platform, stale, timedelta(days=3))
        _inbound(rig, platform, gone, timedelta(days=8))
        ok = _send(
            rig,
            MESSENGER_PATH,
            {
                "platform": platform,
                "recipient_id": fresh,
                "text": "Hello!",
                "quick_replies": [{"title": "Yes", "payload": "Y"}],
            },
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["messaging_type"] == "RESPONSE" and ok.json()["window"] == "standard"
        closed = _send(
            rig, MESSENGER_PATH, {"platform": platform, "recipient_id": stale, "text": "late"}
        )
        assert closed.status_code == 422
        assert "24-hour standard window closed at" in closed.json()["detail"]
        assert "human_agent" in closed.json()["detail"]
        tagged = _send(
            rig,
            MESSENGER_PATH,
            {
                "platform": platform,
                "recipient_id": stale,
                "text": "A person here",
                "human_agent": True,
            },
        )
        assert tagged.status_code == 200, tagged.text
        assert (tagged.json()["messaging_type"], tagged.json()["tag"]) == (
            "MESSAGE_TAG",
            "HUMAN_AGENT",
        )
        last_call = rig.sandbox.sandbox.received[-1]["params"]
        assert last_call["messaging_type"] == "MESSAGE_TAG" and last_call["tag"] == "HUMAN_AGENT"
        both = _send(
            rig,
            MESSENGER_PATH,
            {"platform": platform, "recipient_id": gone, "text": "too late", "human_agent": True},
        )
        assert both.status_code == 422
        assert "HUMAN_AGENT window closed at" in both.json()["detail"]
        unknown = _send(
            rig, MESSENGER_PATH, {"platform": platform, "recipient_id": "999", "text": "who?"}
        )
        assert unknown.status_code == 422
    rows = rig.db.execute(
        "select platform, window_used, messaging_type, message_tag, status from "
        "conversation_message where direction = 'outbound' order by created_at"
    ).fetchall()
    assert rows == [
        ("messenger", "standard", "RESPONSE", None, "sent"),
        ("messenger", "human_agent", "MESSAGE_TAG", "HUMAN_AGENT", "sent"),
        ("instagram", "standard", "RESPONSE", None, "sent"),
        ("instagram", "human_agent", "MESSAGE_TAG", "HUMAN_AGENT", "sent"),
    ]
    windows = [
        r[0]
        for r in rig.db.execute(
            "select props ->> 'window' from user_event where etype in "
            "('messenger_sent', 'instagram_dm_sent') order by occurred_at"
        )
    ]
    assert sorted(windows) == ["human_agent", "human_agent", "standard", "standard"]


def test_meta_refusal_is_mapped_and_stored_as_failed(rig: Rig) -> None:
    psid = rig.state.contacts["messenger"][4]
    _inbound(rig, "messenger", psid, timedelta(hours=2))
    # Meta's view differs from ours (it never saw that message): it refuses with 10/2018278.
    rig.sandbox.sandbox.domains["messaging"].last_inbound.clear()
    refused = _send(rig, MESSENGER_PATH, {"recipient_id": psid, "text": "hi"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["meta"]["subcode"] == 2018278
    assert rig.one(
        "select status, error_code, platform_message_id from conversation_message "
        "where direction = 'outbound'"
    ) == ("failed", 10, None)
    assert rig.scalar("select count(*) from user_event where etype = 'messenger_sent'") == 0


def test_whatsapp_text_inside_template_outside_and_statuses_attach(rig: Rig) -> None:
    fresh, stale = rig.state.contacts["whatsapp"][:2]
    _inbound(rig, "whatsapp", fresh, timedelta(hours=3))
    _inbound(rig, "whatsapp", stale, timedelta(hours=30))
    ok = _send(rig, WHATSAPP_PATH, {"to": "+" + fresh, "type": "text", "text": "Hi there"})
    assert ok.status_code == 200, ok.text
    wamid = ok.json()["platform_message_id"]
    assert wamid.startswith("wamid.") and ok.json()["window"] == "standard"
    closed = _send(rig, WHATSAPP_PATH, {"to": stale, "type": "text", "text": "late"})
    assert closed.status_code == 422 and "only an approved template" in closed.json()["detail"]
    template = {"name": "order_update", "language": {"code": "en_US"}, "components": []}
    tpl = _send(rig, WHATSAPP_PATH, {"to": stale, "type": "template", "template": template})
    assert tpl.status_code == 200 and tpl.json()["window"] == "template"
    f, now = rig.factory, rig.sandbox.sandbox.now()
    for status in ("read", "delivered"):  # out of order
        rig.post(f.whatsapp_body(statuses=[f.wa_status(wamid, fresh, status, now)]))
    assert (
        rig.scalar("select status from conversation_message where platform_message_id = %s", wamid)
        == "read"
    )
    assert rig.scalar("select count(*) from user_event where etype = 'whatsapp_sent'") == 2
    assert _send(rig, WHATSAPP_PATH, {"to": stale, "type": "image"}).status_code == 422
