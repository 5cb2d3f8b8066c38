"""WhatsApp messages, contacts, CTWA referrals and statuses in every order."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from receiver_helpers import Rig

from everreach.messaging.model import OutboundMessage
from everreach.messaging.send import store_outbound


def test_whatsapp_message_types_contacts_and_ctwa(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    wa_id = rig.state.contacts["whatsapp"][0]
    kinds = [
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "unsupported",
    ]
    messages = [
        f.wa_message(wa_id, now - timedelta(minutes=30 - k), kind) for k, kind in enumerate(kinds)
    ]
    messages[0]["referral"] = f.ctwa_referral("120440000222")
    messages.append(
        f.wa_message(wa_id, now - timedelta(minutes=5), "reaction", target=messages[0]["id"])
    )
    messages.append({**f.wa_message(wa_id, now - timedelta(minutes=4)), "type": "new_kind"})
    rig.post(f.whatsapp_body(messages=messages, contacts=[f.wa_contact(wa_id)]))
    types = [
        r[0]
        for r in rig.db.execute("select message_type from conversation_message order by sent_at")
    ]
    assert types == kinds + ["reaction", "other"]
    name, clid, ad_id, source = rig.one(
        "select contact_name, ctwa_clid, referral_ad_id, referral_source from conversation_thread"
    )
    assert name == f.wa_contact(wa_id)["profile"]["name"] and clid.startswith("ARA")
    assert (ad_id, source) == ("120440000222", "ad")
    props = rig.scalar("select props from user_event where etype = 'ad_referral'")
    assert props["ctwa_clid"] == clid and props["source_url"] == "https://fb.me/120440000222"
    # WhatsApp has the customer-service (standard) window only.
    assert rig.scalar("select array_agg(window_type) from messaging_policy_window") == ["standard"]
    assert rig.scalar("select count(*) from user_event where etype = 'whatsapp_received'") == 13


def _store_outbound(rig: Rig, wamid: str, wa_id: str) -> None:
    """Store an outbound message the way the send endpoint does (reconciling statuses)."""

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(
            rig.receiver.settings.database_url
        ) as conn:
            await store_outbound(
                conn,
                OutboundMessage(
                    platform="whatsapp",
                    business_id=rig.state.phone_number_id,
                    contact_id=wa_id,
                    platform_message_id=wamid,
                    message_type="text",
                    status="pending",
                    at=datetime.now(UTC) - timedelta(hours=1),
                ),
            )
            await conn.commit()

    asyncio.run(run())


ORDERS = list(itertools.permutations(["sent", "delivered", "read"]))


@pytest.mark.parametrize("with_failed", [False, True])
def test_statuses_in_every_order_end_in_the_right_state(rig: Rig, with_failed: bool) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    wa_id = rig.state.contacts["whatsapp"][1]
    base = now - timedelta(minutes=50)
    times = {
        "sent": base,
        "delivered": base + timedelta(seconds=2),
        "read": base + timedelta(seconds=9),
        "failed": base + timedelta(seconds=1),
    }
    orders = (
        ORDERS
        if not with_failed
        else [order[:k] + ("failed",) + order[k:] for order in ORDERS for k in (0, 3)]
    )
    expected = "failed" if with_failed else "read"
    for n, order in enumerate(orders):
        wamid = f"wamid.order{n}{'f' if with_failed else ''}"
        # Half of the cases: the statuses arrive before the send stored its wamid.
        if n % 2 == 0:
            _store_outbound(rig, wamid, wa_id)
        for status in order:
            rig.post(f.whatsapp_body(statuses=[f.wa_status(wamid, wa_id, status, times[status])]))
        if n % 2 == 1:
            _store_outbound(rig, wamid, wa_id)
        status, delivered_at, read_at, error_code = rig.one(
            "select status, delivered_at, read_at, error_code from conversation_message "
            "where platform_message_id = %s",
            wamid,
        )
        assert status == expected, order
        if with_failed:
            assert error_code == 131047
        else:
            assert (delivered_at, read_at) == (
                times["delivered"].replace(microsecond=0),
                times["read"].replace(microsecond=0),
            ), order
    unmatched = rig.scalar("select count(*) from message_delivery_event where message_id is null")
    assert unmatched == 0
    assert rig.scalar("select count(distinct dedup_key) from message_delivery_event") == len(
        orders
    ) * len(orders[0])


def test_status_conversation_and_pricing_recorded(rig: Rig) -> None:
    f, now = rig.factory, rig.sandbox.sandbox.now()
    wa_id = rig.state.contacts["whatsapp"][2]
    rig.post(f.whatsapp_body(statuses=[f.wa_status("wamid.p1", wa_id, "sent", now)]))
    conv, origin, pricing = rig.one(
        "select conversation_id, conversation_origin, pricing from message_delivery_event"
    )
    assert conv and origin == "service" and pricing["category"] == "service"
