"""The batched fast path (pipeline mode, batch-wide thread look-up and advisory locks)
ends in exactly the state of applying the same bodies one at a time, each in its own
savepoint — the reference path — including bodies that fail and push their batch onto
the savepoint path, receipts before their messages, echoes, watermarks and duplicates.
"""

from __future__ import annotations

import asyncio
import random

import orjson
import psycopg
import pytest
from psycopg import AsyncConnection

from everreach.sandbox.core import Sandbox, SandboxConfig
from everreach.sandbox.messaging import build_burst
from webhook_receiver import rawlog
from webhook_receiver.rawlog import RawEvent, batch_keys

_TABLES = (
    "meta_webhook_event, conversation_thread, conversation_message, "
    "message_delivery_event, messaging_policy_window, user_event"
)

_SNAPSHOT = {
    "threads": """
        select platform, business_account_id, contact_id, contact_name, referral_source,
               referral_ad_id, referral_ref, ctwa_clid, first_message_at, last_message_at,
               last_inbound_at, last_outbound_at
        from conversation_thread order by 1, 2, 3""",
    "messages": """
        select m.platform, m.platform_message_id, m.direction, m.message_type, m.text,
               m.payload, m.is_echo, m.is_deleted, m.edited_at, m.status, m.status_rank,
               m.error_code, m.error_message, m.sent_at, m.delivered_at, m.read_at,
               m.failed_at, t.contact_id
        from conversation_message m join conversation_thread t using (thread_id)
        order by 1, 2""",
    "receipts": """
        select d.dedup_key, d.event_type, d.platform_message_id, d.watermark, d.occurred_at,
               d.error_code, d.error_message, m.platform_message_id, t.contact_id
        from message_delivery_event d
        left join conversation_message m on m.message_id = d.message_id
        left join conversation_thread t on t.thread_id = d.thread_id
        order by 1""",
    "windows": """
        select t.platform, t.contact_id, w.window_type, w.opened_at,
               w.last_user_activity_at, w.expires_at, w.opened_by
        from messaging_policy_window w join conversation_thread t using (thread_id)
        order by 1, 2, 3""",
    "user_events": """
        select etype, source, occurred_at, props - 'thread_id' - 'conversation_message_id'
        from user_event order by 1, 3, 4::text""",
    "raw": """
        select status, coalesce(left(error, 60), ''), count(*)
        from meta_webhook_event group by 1, 2 order by 1, 2""",
}

_BAD = [
    # valid JSON, not Meta's shape: fails inside the batch and sends it down the slow path
    b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{},"timestamp":1}]}]}',
    # an edit that overtook its message: failed, kept for replay
    b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},'
    b'"recipient":{"id":"1"},"timestamp":1700000000000,'
    b'"message_edit":{"mid":"m_nowhere","text":"x"}}]}]}',
    b"not json at all",
    # NUL in ids: Postgres text cannot hold it; the batch-wide statements must not break
    b'{"object":"instagram","entry":[{"id":"1\\u0000","messaging":[{"sender":{"id":"a\\u0000"},'
    b'"recipient":{"id":"1"},"timestamp":1700000000000,"message":{"mid":"x\\u0000"}}]}]}',
]


def _bodies() -> list[bytes]:
    sandbox = Sandbox(
        SandboxConfig(app_secret="s", accounts=1, days=1, extra={"messaging_contacts": 12})
    )
    sandbox.load_domains()
    bodies = build_burst(sandbox, 500, seed=7)
    rng = random.Random(3)
    for bad in _BAD:
        bodies.insert(rng.randrange(len(bodies)), bad)
    return bodies


async def _apply(url: str, bodies: list[bytes], batched: bool) -> None:
    async with await AsyncConnection.connect(url, options=rawlog.APPLY_SESSION_OPTIONS) as conn:
        events = [RawEvent.from_request(b, {}) for b in bodies]
        if batched:
            for n in range(0, len(events), 37):
                await rawlog.store_and_apply(conn, events[n : n + 37])
        else:
            for event in events:  # the reference: one body, one savepoint, no pipeline
                async with conn.transaction(), conn.cursor() as cur:
                    ids = await rawlog.insert_raw(cur, [event])
                    await rawlog.apply_stored(conn, cur, [event], ids)


def _snapshot(db: psycopg.Connection) -> dict[str, list[tuple]]:
    return {name: db.execute(sql).fetchall() for name, sql in _SNAPSHOT.items()}


def test_batched_fast_path_matches_one_at_a_time(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = _bodies()
    asyncio.run(_apply(database_url, bodies, batched=False))
    reference = _snapshot(db)
    db.execute(f"truncate {_TABLES} restart identity cascade")
    slow_batches = []
    apply_stored = rawlog.apply_stored

    async def counting(conn, cur, events, ids):  # noqa: ANN001, ANN202
        slow_batches.append(len(events))
        return await apply_stored(conn, cur, events, ids)

    monkeypatch.setattr(rawlog, "apply_stored", counting)
    asyncio.run(_apply(database_url, bodies, batched=True))
    batched = _snapshot(db)
    batches = -(-len(bodies) // 37)
    # the bad bodies pushed their batches onto the savepoint path; the rest went fast
    assert 1 <= len([n for n in slow_batches if n > 1]) <= len(_BAD) < batches
    assert reference["messages"], "the burst stored no messages"
    assert any(r[2] == "failed" or r[0] == "failed" for r in reference["raw"])
    for name in _SNAPSHOT:
        assert batched[name] == reference[name], name


def test_batch_keys_cover_locks_and_threads_and_survive_odd_bodies() -> None:
    echo = {
        "object": "page",
        "entry": [
            {
                "id": "P",
                "messaging": [
                    {
                        "sender": {"id": "P"},
                        "recipient": {"id": "U"},
                        "timestamp": 1,
                        "message": {"mid": "m1", "is_echo": True},
                    },
                    {
                        "sender": {"id": "U"},
                        "recipient": {"id": "P"},
                        "timestamp": 2,
                        "delivery": {"mids": ["m1", 5], "watermark": 3},
                    },
                ],
            }
        ],
    }
    ig = {
        "object": "instagram",
        "entry": [
            {
                "id": 9,
                "messaging": [
                    {
                        "sender": {"id": "V"},
                        "recipient": {"id": "9"},
                        "timestamp": 1,
                        "read": {"mid": "m2"},
                    },
                    {
                        "sender": {"id": "V"},
                        "recipient": {"id": "9"},
                        "timestamp": 1,
                        "message": {"mid": "m3"},
                    },
                ],
            }
        ],
    }
    wa = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "changes": [
                    {
                        "value": {
                            "metadata": {"phone_number_id": "N"},
                            "messages": [{"from": "W", "id": "wamid.1"}],
                            "statuses": [{"id": "wamid.2", "status": "read"}],
                        }
                    }
                ]
            }
        ],
    }
    odd = [
        {
            "object": "page",
            "entry": [
                None,
                {"id": True},
                {
                    "id": "P",
                    "messaging": [1, {"sender": "x", "message": []}, {"read": {"mids": "m"}}],
                },
            ],
        },
        {"object": "whatsapp_business_account", "entry": [{"changes": [1, {"value": []}]}]},
        [],
        "x",
        None,
    ]
    events = [RawEvent.from_request(orjson.dumps(b), {}) for b in (echo, ig, wa, *odd)]
    threads, locks = batch_keys(events)
    assert {("messenger", "P", "U"), ("instagram", "9", "V"), ("whatsapp", "N", "W")} <= threads
    assert {
        "msg:messenger:m1",
        "msg:messenger:5",
        "thread:messenger:P:U",
        "msg:instagram:m2",
        "msg:instagram:m3",
        "thread:instagram:9:V",
        "msg:whatsapp:wamid.2",
    } <= locks


def test_deferred_rows_left_pending_are_swept_exactly_once(
    db: psycopg.Connection, database_url: str
) -> None:
    """A crash between the 200 and the apply (or an applier too far behind) leaves rows
    ``pending``: the sweep applies each exactly once, and a second sweep changes nothing."""
    from psycopg_pool import AsyncConnectionPool

    bodies = _bodies()[:120]

    async def run() -> tuple[int, int]:
        async with AsyncConnectionPool(
            database_url, min_size=1, max_size=2, kwargs={"options": rawlog.APPLY_SESSION_OPTIONS}
        ) as pool:
            # max_queued_events=0: nothing is applied in memory, as after a crash
            writer = rawlog.EventWriter(
                pool, apply_mode="deferred", max_queued_events=0, sweep_seconds=3600
            )
            writer.start()
            try:
                outcomes = await asyncio.gather(
                    *(writer.submit(RawEvent.from_request(b, {})) for b in bodies)
                )
            finally:
                await writer.stop()
            assert {o.status for o in outcomes} == {"pending"}
            assert writer.left_to_sweep == len(bodies)
            first = await writer.sweep_pending()
            second = await writer.sweep_pending()
            return first, second

    first, second = asyncio.run(run())
    assert (first, second) == (len(bodies), 0)
    assert (
        db.execute("select count(*) from meta_webhook_event where status = 'pending'").fetchone()[0]
        == 0
    )
    assert db.execute("select count(*) from meta_webhook_event").fetchone()[0] == len(bodies)
    got = [r[0] for r in db.execute("select platform_message_id from conversation_message")]
    assert got and len(got) == len(set(got))
    messages = db.execute("select count(*) from conversation_message").fetchone()[0]
    logged = db.execute(
        "select count(*) from user_event where etype like '%%_received' or etype like '%%_sent'"
    ).fetchone()[0]
    assert logged == messages  # every message logged once: nothing applied twice
