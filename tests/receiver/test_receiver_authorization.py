"""Who may send, and for whom CAPI events may be queued.

An ordinary app user's token proves who the user is, not that they may message contacts as
the business: only the app backend's service role or a messaging agent may send; every
stored outbound message records who sent it. The CAPI intake takes an end user's token for
that user's own events only, and a service-role token for any user.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from receiver_helpers import Rig

from webhook_receiver.conversions import PATH as CAPI_PATH
from webhook_receiver.send import MESSENGER_PATH, WHATSAPP_PATH


def _inbound(rig: Rig, platform: str, contact: str) -> None:
    f, at = rig.factory, rig.sandbox.sandbox.now() - timedelta(minutes=5)
    if platform == "whatsapp":
        rig.post(f.whatsapp_body(messages=[f.wa_message(contact, at)]))
    else:
        rig.post(f.messaging_body(platform, [f.text_message(platform, contact, at)]))


def _post(rig: Rig, path: str, body: dict, token: str):
    return rig.client.post(
        rig.receiver.base_url + path, json=body, headers={"authorization": f"Bearer {token}"}
    )


def _sends(rig: Rig) -> list[dict]:
    return [r for r in rig.sandbox.sandbox.received if r["edge"] == "messages"]


@pytest.mark.parametrize(
    ("claims", "missing"),
    [
        ({"role": "authenticated", "app_metadata": {}}, "'authenticated'"),
        ({"role": None, "app_metadata": None}, "no role"),
        # user_metadata is editable by the user: a claim there proves nothing
        (
            {
                "role": "authenticated",
                "app_metadata": {},
                "user_metadata": {"messaging_agent": True},
            },
            "app_metadata.messaging_agent",
        ),
        ({"role": "authenticated", "app_metadata": {"messaging_agent": "yes"}}, "= true"),
    ],
)
def test_customer_token_gets_403_on_both_send_endpoints(
    rig: Rig, claims: dict, missing: str
) -> None:
    psid, wa_id = rig.state.contacts["messenger"][0], rig.state.contacts["whatsapp"][0]
    _inbound(rig, "messenger", psid)
    _inbound(rig, "whatsapp", wa_id)
    token = rig.token(sub=str(uuid.uuid4()), **claims)
    before = len(_sends(rig))
    for path, body in (
        (MESSENGER_PATH, {"recipient_id": psid, "text": "hi"}),
        (WHATSAPP_PATH, {"to": wa_id, "type": "text", "text": "hi"}),
    ):
        answer = _post(rig, path, body, token)
        assert answer.status_code == 403, answer.text
        detail = answer.json()["detail"]
        assert answer.json()["error"] == "forbidden" and "service_role" in detail
        assert missing in detail and "app_metadata.messaging_agent" in detail
    assert len(_sends(rig)) == before  # Meta was never called
    assert rig.scalar("select count(*) from conversation_message where direction = 'outbound'") == 0


def test_service_role_and_agent_tokens_send_and_every_send_records_its_sender(rig: Rig) -> None:
    psid, igsid = rig.state.contacts["messenger"][1], rig.state.contacts["instagram"][1]
    wa_id = rig.state.contacts["whatsapp"][1]
    for platform, contact in (("messenger", psid), ("instagram", igsid), ("whatsapp", wa_id)):
        _inbound(rig, platform, contact)
    backend = rig.token(sub=None, role="service_role", app_metadata=None)
    backend_user = rig.token(sub="worker-7", role="service_role", app_metadata=None)
    agent = rig.token(sub="agent-42")  # an app user whose app_metadata marks them an agent
    sends = [
        (MESSENGER_PATH, {"recipient_id": psid, "text": "from the backend"}, backend),
        (MESSENGER_PATH, {"platform": "instagram", "recipient_id": igsid, "text": "x"}, agent),
        (WHATSAPP_PATH, {"to": wa_id, "type": "text", "text": "from an agent"}, agent),
        (WHATSAPP_PATH, {"to": wa_id, "type": "text", "text": "from a worker"}, backend_user),
    ]
    for path, body, token in sends:
        answer = _post(rig, path, body, token)
        assert answer.status_code == 200, answer.text
    rows = rig.db.execute(
        "select platform, text, sent_via, sent_by, sent_by_role from conversation_message "
        "where direction = 'outbound' order by created_at, text"
    ).fetchall()
    assert sorted(rows) == sorted(
        [
            ("messenger", "from the backend", "api", "service_role", "service_role"),
            ("instagram", "x", "api", "agent-42", "agent"),
            ("whatsapp", "from an agent", "api", "agent-42", "agent"),
            ("whatsapp", "from a worker", "api", "worker-7", "service_role"),
        ]
    )
    # Instagram went through the Page linked to the account, as Meta's spec requires.
    ig_calls = [r for r in _sends(rig) if igsid in str(r["params"].get("recipient"))]
    assert [r["node_id"] for r in ig_calls] == [rig.state.page_id]


def test_refused_send_and_echo_first_still_record_who_sent(rig: Rig) -> None:
    psid = rig.state.contacts["messenger"][2]
    _inbound(rig, "messenger", psid)
    rig.sandbox.sandbox.domains["messaging"].last_inbound.clear()  # Meta refuses (10/2018278)
    refused = _post(rig, MESSENGER_PATH, {"recipient_id": psid, "text": "late"}, rig.token())
    assert refused.status_code == 422
    assert rig.one(
        "select status, sent_via, sent_by, sent_by_role from conversation_message "
        "where direction = 'outbound'"
    ) == ("failed", "api", "agent-1", "agent")
    # An echo of a send made elsewhere (a person in Meta's inbox, or another app).
    f = rig.factory
    rig.post(f.messaging_body("messenger", [f.echo("messenger", psid, rig.sandbox.sandbox.now())]))
    assert rig.one("select sent_via, sent_by from conversation_message where is_echo") == (
        "echo",
        f"app:{rig.sandbox.sandbox.config.app_id}",
    )


def test_capi_intake_end_user_own_events_only_service_role_any_user(rig: Rig) -> None:
    alice, bob = (
        rig.db.execute("insert into auth.users (email) values (%s) returning id", (e,)).fetchone()[
            0
        ]
        for e in ("alice@example.com", "bob@example.com")
    )
    event = {
        "pixel_id": "1234567890",
        "event_name": "Purchase",
        "email": "x@example.com",
        "value": 5,
        "currency": "EUR",
    }
    as_alice = rig.token(sub=str(alice), app_metadata=None)
    for body in (
        {**event, "event_id": "e1", "user_id": str(bob)},
        [{**event, "event_id": "e2"}, {**event, "event_id": "e3", "user_id": str(bob)}],
    ):
        answer = _post(rig, CAPI_PATH, body, as_alice)
        assert answer.status_code == 403, answer.text
        assert "for another user" in answer.json()["detail"]
    assert rig.scalar("select count(*) from meta_conversion_event") == 0
    own = _post(rig, CAPI_PATH, {**event, "event_id": "e4", "user_id": str(alice)}, as_alice)
    implicit = _post(rig, CAPI_PATH, {**event, "event_id": "e5"}, as_alice)
    assert own.status_code == implicit.status_code == 202
    backend = rig.token(sub=None, role="service_role", app_metadata=None)
    batch = [{**event, "event_id": "e6", "user_id": str(bob)}, {**event, "event_id": "e7"}]
    answer = _post(rig, CAPI_PATH, batch, backend)
    assert answer.status_code == 202, answer.text
    owners = dict(rig.db.execute("select event_id, user_id from meta_conversion_event").fetchall())
    assert owners == {"e4": alice, "e5": alice, "e6": bob, "e7": None}
