"""Benchmark: a WhatsApp status storm — a broadcast's statuses, as fast as the receiver takes them.

Run by hand (not in tests)::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/bench_status_storm.py --messages 33000 --statuses 100000

What it does:

1. creates a private database ``everreach_storm_<pid>`` on the server of ``DATABASE_URL``
   (else the embedded Postgres), migrates it, and drops it at the end;
2. a broadcast: ``--messages`` outbound WhatsApp messages to as many contacts, stored the
   way the send API stores them — 90 % before the storm, the last 10 % *during* it, so some
   statuses arrive before their message is known;
3. their statuses, one per signed webhook as Meta sends them: every message ``sent``, most
   ``delivered``, many ``read`` (with Meta's conversation and pricing), plus exact duplicate
   deliveries up to ``--statuses`` webhooks in all, shuffled (out of order);
4. serves the receiver (uvicorn, ``--workers``, inline apply) and sends them all with a
   lean keep-alive HTTP client at ``--concurrency``; reports the time until every status is
   applied (drain), the webhooks' p50/p99 latency, and checks every message's final status,
   ``delivered_at`` and ``read_at`` against what its statuses say;
5. the same client against the no-database baseline (the receiver's request path answering
   200 without storing) — the limit the storm rate is compared with, as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_receiver import SECRET, WEBHOOK, _free_port, _serve, _stop  # noqa: E402

from everreach.messaging.apply import apply_bodies  # noqa: E402
from everreach.messaging.model import OutboundMessage, ParsedBody  # noqa: E402
from everreach.sandbox.messaging import serialize, sign  # noqa: E402
from everreach.warehouse import database, migrate  # noqa: E402

PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
#: Seconds after the send at which Meta reports each status.
OFFSETS = {"sent": 1, "delivered": 4, "read": 40}


def broadcast(messages: int, statuses: int, seed: int) -> tuple[list, list[bytes], dict, int]:
    """(outbound messages, shuffled status webhook bodies, expected final state by wamid,
    distinct statuses)."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    outbound, items, expected = [], [], {}
    for n in range(messages):
        wamid = f"wamid.HBgLstorm{seed:02d}{n:08d}"
        to = f"49{150_000_000 + n}"
        sent_at = start + timedelta(milliseconds=20 * n)
        outbound.append((wamid, to, sent_at))
        kinds = ["sent"]
        if rng.random() < 0.97:
            kinds.append("delivered")
            if rng.random() < 0.93:
                kinds.append("read")
        times = {k: sent_at.replace(microsecond=0) + timedelta(seconds=OFFSETS[k]) for k in kinds}
        expected[wamid] = (
            kinds[-1],
            times.get("delivered", times.get("read")),
            times.get("read"),
        )
        for kind in kinds:
            items.append((wamid, to, kind, times[kind]))
    bodies = [_status_body(*item) for item in items]
    distinct = len(bodies)
    if len(bodies) > statuses:
        raise SystemExit(f"{len(bodies)} statuses already; raise --statuses or lower --messages")
    bodies += [bodies[rng.randrange(len(bodies))] for _ in range(statuses - len(bodies))]
    rng.shuffle(bodies)
    return outbound, bodies, expected, distinct


def _status_body(wamid: str, to: str, kind: str, at: datetime) -> bytes:
    status = {
        "id": wamid,
        "status": kind,
        "timestamp": str(int(at.timestamp())),
        "recipient_id": to,
    }
    if kind in ("sent", "delivered"):
        status["conversation"] = {
            "id": f"conv{to}",
            "expiration_timestamp": str(int(at.timestamp()) + 86400),
            "origin": {"type": "marketing"},
        }
        status["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "marketing"}
    return serialize(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": WABA_ID,
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": PHONE_NUMBER_ID,
                                },
                                "statuses": [status],
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }
    )


async def store_messages(url: str, outbound: list, chunk: int = 500) -> None:
    """Store outbound messages as the send API does (set-based, a chunk per transaction)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for n in range(0, len(outbound), chunk):
            events = [
                OutboundMessage(
                    platform="whatsapp",
                    business_id=PHONE_NUMBER_ID,
                    contact_id=to,
                    at=sent_at,
                    platform_message_id=wamid,
                    message_type="template",
                    status="pending",
                    window_used="template",
                    sent_by="broadcast-job",
                    sent_by_role="service_role",
                )
                for wamid, to, sent_at in outbound[n : n + chunk]
            ]
            async with conn.transaction(), conn.cursor() as cur:
                await apply_bodies(cur, [(ParsedBody(events), None)])


def _request(body: bytes) -> bytes:
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {sign(SECRET, body)}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def send_all(
    port: int, requests: list[bytes], concurrency: int, progress: list[int] | None = None
) -> tuple[list[float], dict[int, int], float]:
    """Send each request once over ``concurrency`` keep-alive connections: (latencies in
    ms, answers by status, seconds)."""
    latencies: list[float] = []
    answers: dict[int, int] = {}
    position = 0

    async def worker() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while position < len(requests):
                request = requests[position]
                position += 1
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readuntil(b"\r\n")
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - started) * 1000)
                code = int(status_line.split()[1])
                answers[code] = answers.get(code, 0) + 1
                if progress is not None:
                    progress[0] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, answers, time.perf_counter() - started


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def storm(url: str, port: int, outbound: list, bodies: list[bytes], args) -> dict:
    """Send the storm; store the last 10 % of the broadcast while it runs; wait until drained."""
    late = outbound[int(len(outbound) * 0.9) :]
    sent = [0]
    requests = [_request(b) for b in bodies]

    async def late_broadcast() -> None:
        while sent[0] < len(requests) // 5:  # a fifth of the statuses are in before them
            await asyncio.sleep(0.05)
        await store_messages(url, late)

    started = time.perf_counter()
    broadcast_task = asyncio.create_task(late_broadcast())
    latencies, answers, _ = await send_all(port, requests, args.concurrency, sent)
    await broadcast_task
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:  # drained: every stored status applied (inline mode: at once)
            cur = await conn.execute(
                "select count(*) filter (where status <> 'applied') from meta_webhook_event"
            )
            if (await cur.fetchone())[0] == 0:
                break
            await asyncio.sleep(0.05)
    return {
        "drain_s": time.perf_counter() - started,
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "answers": answers,
    }


def check(url: str, expected: dict) -> tuple[int, int, int]:
    """(messages checked, final status/time mismatches, receipts stored)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select platform_message_id, status, delivered_at, read_at from conversation_message"
        ).fetchall()
        receipts = conn.execute("select count(*) from message_delivery_event").fetchone()[0]
    found = {r[0]: tuple(r[1:]) for r in rows}
    bad = sum(1 for wamid, want in expected.items() if found.get(wamid) != want)
    return len(found), bad, receipts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=33_000)
    parser.add_argument("--statuses", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--writers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL") or database.start_embedded()
    name = f"everreach_storm_{os.getpid()}"
    url = database.ensure_database(database.with_database(server, "postgres"), name)
    migrate.upgrade(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench_storm_"))
    try:
        outbound, bodies, expected, distinct = broadcast(args.messages, args.statuses, args.seed)
        asyncio.run(store_messages(url, outbound[: int(len(outbound) * 0.9)]))
        env = {
            **os.environ,
            "META_APP_SECRET": SECRET,
            "DATABASE_URL": url,
            "PYTHONPATH": str(ROOT),
        }
        if args.writers is not None:
            env["EVERREACH_RECEIVER_WRITERS"] = str(args.writers)
        print(
            f"broadcast of {len(outbound):,} WhatsApp messages; {len(bodies):,} status webhooks "
            f"({distinct:,} distinct, {len(bodies) - distinct:,} duplicates), shuffled; 10 % of "
            f"the messages stored during the storm; {args.concurrency} connections; uvicorn "
            f"workers={args.workers}; load average before: {os.getloadavg()}"
        )
        port = _free_port()
        proc = _serve("bench_receiver:create_baseline_app", port, args.workers, env)
        try:
            base_lat, base_answers, base_s = asyncio.run(
                send_all(port, [_request(b) for b in bodies], args.concurrency)
            )
        finally:
            _stop(proc)
        port = _free_port()
        proc = _serve("webhook_receiver.app:create_app", port, args.workers, env)
        try:
            result = asyncio.run(storm(url, port, outbound, bodies, args))
        finally:
            _stop(proc)
        checked, bad, receipts = check(url, expected)
        base_rate = len(bodies) / base_s
        rate = len(bodies) / result["drain_s"]
        print(f"{'':36}{'webhooks/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'seconds':>9}")
        print(
            f"{'baseline (no database)':36}{base_rate:>11.0f}{_pct(base_lat, 0.5):>9.2f}"
            f"{_pct(base_lat, 0.99):>9.2f}{base_s:>9.1f}"
        )
        print(
            f"{'storm: stored + applied (drained)':36}{rate:>11.0f}{result['p50_ms']:>9.2f}"
            f"{result['p99_ms']:>9.2f}{result['drain_s']:>9.1f}"
        )
        print(f"ratio storm drain rate / baseline: {rate / base_rate:.2f}")
        print(
            f"answers: storm {result['answers']}, baseline {base_answers}; receipts stored "
            f"{receipts:,}; messages checked {checked:,}: final status, delivered_at and "
            f"read_at exact for {len(expected) - bad:,} of {len(expected):,}"
            f"{' -> OK' if bad == 0 else ' -> MISMATCH'}; load average after: {os.getloadavg()}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with psycopg.connect(database.with_database(server, "postgres"), autocommit=True) as c:
            c.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (name,),
            )
            c.execute(f'drop database if exists "{name}"')


if __name__ == "__main__":
    main()
