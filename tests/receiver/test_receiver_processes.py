"""Real receiver processes: two on one database, and one killed with SIGKILL mid-batch.

* Two receivers getting the same deliveries at the same time (Meta retries, a load
  balancer) store every message exactly once, and end in exactly the state of applying the
  bodies once, one at a time.
* A receiver killed with SIGKILL while batches are in flight: every body it answered 200
  for is applied once it restarts (deferred mode: the 200 comes before the apply).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from receiver_helpers import APP_SECRET

from everreach.messaging.webhook_log import APPLY_SESSION_OPTIONS, StoredBody
from everreach.sandbox.core import Sandbox, SandboxConfig
from everreach.sandbox.messaging import build_burst, sign
from webhook_receiver import rawlog
from webhook_receiver.rawlog import RawEvent

pytestmark = pytest.mark.slow

_SNAPSHOT = {
    "conversation_thread": "platform, business_account_id, contact_id, contact_name, referral, "
    "first_message_at, last_message_at, last_inbound_at, last_outbound_at",
    "conversation_message": "platform, platform_message_id, direction, message_type, text, "
    "is_echo, is_deleted, status, status_rank, delivered_at, read_at, failed_at, sent_at",
    "message_delivery_event": "dedup_key, occurred_at, watermark, message_id is not null",
    "messaging_policy_window": "window_type, opened_at, last_user_activity_at, expires_at, "
    "opened_by",
    "user_event": "etype, props - 'thread_id' - 'conversation_message_id', occurred_at",
}


def _snapshot(db: psycopg.Connection) -> dict[str, list[str]]:
    return {
        table: sorted(repr(r) for r in db.execute(f"select {cols} from {table}").fetchall())
        for table, cols in _SNAPSHOT.items()
    }


def _bodies(count: int, seed: int) -> list[bytes]:
    sandbox = Sandbox(
        SandboxConfig(app_secret=APP_SECRET, accounts=1, days=1, extra={"messaging_contacts": 30})
    )
    sandbox.load_domains()
    return build_burst(sandbox, count, seed=seed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _receiver(database_url: str, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`everreach receiver` in its own process group; yields (webhook URL, process)."""
    port = _free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": database_url,
        "META_APP_SECRET": APP_SECRET,
        **env,
    }
    everreach = Path(sys.executable).with_name("everreach")
    proc = subprocess.Popen(
        [str(everreach), "receiver", "--host", "127.0.0.1", "--port", str(port)],
        env=environ,
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "receiver did not start"
            time.sleep(0.1)
        yield base + "/api/webhooks/meta", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


async def _post_all(
    targets: list[tuple[str, bytes]], concurrency: int, answered: dict[str, int] | None = None
) -> list[int]:
    """POST each (url, body) signed, at most ``concurrency`` at once; statuses (0: no
    answer). ``answered`` counts 200s as they come (by body sha256)."""
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2)

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(url: str, raw: bytes) -> int:
            async with semaphore:
                try:
                    response = await client.post(
                        url,
                        content=raw,
                        headers={"x-hub-signature-256": sign(APP_SECRET, raw)},
                    )
                except httpx.HTTPError:
                    return 0
                if answered is not None and response.status_code == 200:
                    key = hashlib.sha256(raw).hexdigest()
                    answered[key] = answered.get(key, 0) + 1
                return response.status_code

        return await asyncio.gather(*(one(url, raw) for url, raw in targets))


def _apply_one_at_a_time(database_url: str, bodies: list[bytes]) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(
            database_url, options=APPLY_SESSION_OPTIONS
        ) as conn:
            for raw in bodies:
                await rawlog.store_and_apply(conn, [RawEvent.from_request(raw, {})])

    asyncio.run(run())


def test_two_receivers_same_deliveries_every_message_exactly_once(
    db: psycopg.Connection, database_url: str
) -> None:
    bodies = _bodies(400, seed=21)
    _apply_one_at_a_time(database_url, bodies)  # the reference: once, in order
    reference = _snapshot(db)
    assert len(reference["conversation_message"]) > 150
    db.execute(
        "truncate meta_webhook_event, conversation_thread, conversation_message, "
        "message_delivery_event, messaging_policy_window, user_event, "
        "messaging_observed_event cascade"
    )
    with (
        _receiver(database_url, EVERREACH_RECEIVER_WRITERS="2") as (a, _),
        _receiver(database_url, EVERREACH_RECEIVER_WRITERS="2") as (b, _),
    ):
        targets = [(url, raw) for raw in bodies for url in (a, b)]
        random.Random(5).shuffle(targets)
        statuses = asyncio.run(_post_all(targets, concurrency=48))
    assert statuses == [200] * len(targets)
    assert db.execute(
        "select count(*), count(*) filter (where status = 'applied') from meta_webhook_event"
    ).fetchone() == (2 * len(bodies), 2 * len(bodies))
    pmids = [r[0] for r in db.execute("select platform_message_id from conversation_message")]
    assert len(pmids) == len(set(pmids))
    logged = db.execute(
        "select count(*) from user_event where etype like '%%_received' or etype like '%%_sent'"
    ).fetchone()[0]
    assert logged == len(pmids)  # every message logged once
    assert _snapshot(db) == reference


def test_sigkill_mid_batch_then_restart_applies_every_acknowledged_body(
    db: psycopg.Connection, database_url: str
) -> None:
    bodies = _bodies(800, seed=22)
    answered: dict[str, int] = {}
    env = {"EVERREACH_RECEIVER_APPLY_MODE": "deferred"}
    with _receiver(database_url, **env) as (url, proc):

        async def burst_then_kill() -> None:
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
                # Hold the advisory locks the bodies' apply takes: the receiver stores and
                # answers 200 but cannot apply, so the kill surely lands between the two.
                keys = set().union(
                    *(
                        StoredBody.from_raw(raw, datetime.now(UTC)).parsed.lock_keys()
                        for raw in bodies
                    )
                )
                await c.execute(
                    "select count(pg_advisory_lock(hashtextextended(k, 0))) "
                    "from unnest(%s::text[]) as k",
                    (sorted(keys),),
                )
                sending = asyncio.ensure_future(
                    _post_all([(url, raw) for raw in bodies], concurrency=32, answered=answered)
                )
                while sum(answered.values()) < 300:
                    assert not sending.done()
                    await asyncio.sleep(0.005)
                os.killpg(proc.pid, signal.SIGKILL)  # mid-stream, batches stored, not applied
                await sending

        asyncio.run(burst_then_kill())
        proc.wait(timeout=10)
    acknowledged = set(answered)
    assert sum(answered.values()) >= 300  # answered 200 before the kill …
    assert len(acknowledged) < len({hashlib.sha256(b).hexdigest() for b in bodies})  # … not all
    stored = dict(db.execute("select body_sha256, status from meta_webhook_event").fetchall())
    assert acknowledged <= set(stored)  # nothing acknowledged is lost
    left_pending = sum(1 for sha in acknowledged if stored[sha] == "pending")
    assert left_pending > 0  # the kill landed between 200s and their apply
    with _receiver(database_url, **env):
        deadline = time.monotonic() + 30
        while db.execute(
            "select count(*) from meta_webhook_event where status = 'pending'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the restarted receiver did not apply the rest"
            time.sleep(0.1)
    applied = dict(db.execute("select body_sha256, status from meta_webhook_event").fetchall())
    assert all(applied[sha] == "applied" for sha in acknowledged)
    # Each acknowledged message is stored once.
    pmids = [r[0] for r in db.execute("select platform_message_id from conversation_message")]
    assert len(pmids) == len(set(pmids))
    logged = db.execute(
        "select count(*) from user_event where etype like '%%_received' or etype like '%%_sent'"
    ).fetchone()[0]
    assert logged == len(pmids)
