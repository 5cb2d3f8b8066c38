"""The sandbox's messaging module: Meta-shaped send answers/errors, the emit control route."""

from __future__ import annotations

import json
from datetime import timedelta

from receiver_helpers import Rig


def test_sandbox_send_api_answers_and_window_errors(rig: Rig) -> None:
    state, sb = rig.state, rig.sandbox
    psid, wa_id = state.contacts["messenger"][0], state.contacts["whatsapp"][0]
    url = sb.url(f"{state.page_id}/messages")
    body = {
        "recipient": json.dumps({"id": psid}),
        "messaging_type": "RESPONSE",
        "message": json.dumps({"text": "hi"}),
        "access_token": "t",
    }
    error = rig.client.post(url, data=body).json()["error"]
    assert (error["code"], error["error_subcode"]) == (10, 2018278)
    rig.factory.text_message("messenger", psid, sb.sandbox.now() - timedelta(hours=30))
    assert rig.client.post(url, data=body).json()["error"]["code"] == 10
    tagged = rig.client.post(
        url, data={**body, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    ).json()
    assert tagged["recipient_id"] == psid and tagged["message_id"].startswith("m_")
    retired = rig.client.post(
        url, data={**body, "messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE"}
    ).json()
    assert retired["error"]["code"] == 100
    wa_url = sb.url(f"{state.phone_number_id}/messages")
    wa = {"messaging_product": "whatsapp", "to": wa_id, "type": "text", "text": {"body": "hello"}}
    refused = rig.client.post(wa_url, json=wa, params={"access_token": "t"}).json()
    assert refused["error"]["code"] == 131047
    template = rig.client.post(
        wa_url,
        params={"access_token": "t"},
        json={
            **wa,
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        },
    ).json()
    assert template["messaging_product"] == "whatsapp"
    assert template["contacts"][0]["wa_id"] == wa_id
    assert template["messages"][0]["id"].startswith("wamid.")


def test_emit_control_route_posts_signed_burst_to_loopback_only(rig: Rig) -> None:
    route = rig.sandbox.base_url + "/_sandbox/webhooks/emit"
    result = rig.client.post(
        route, json={"target_url": rig.receiver.webhook_url, "count": 25, "seed": 3}, timeout=60
    ).json()
    assert result["sent"] == 25 and result["statuses"] == {"200": 25}
    assert rig.scalar("select count(*) from meta_webhook_event where status = 'applied'") == 25
    refused = rig.client.post(route, json={"target_url": "http://10.1.2.3/hook", "count": 1})
    assert refused.status_code == 400 and "loopback" in refused.text
