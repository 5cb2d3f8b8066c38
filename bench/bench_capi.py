"""Benchmark the Conversions API path.

1. Normalize + hash: events/s through ``normalize_user_data`` next to the official
   ``facebook-business`` SDK's ``Normalize.normalize_field`` on the same inputs, in the
   same run (inputs the SDK accepts: alpha-2 countries, YYYYMMDD dates, no dotted phones).
   Two mixes: "us" (US events, phones written ``+1 (650) 555-1212``) and "world" (events
   from 16 countries, half the phones written internationally, half nationally with the
   country's trunk prefix, e.g. ``07400 123456`` in GB or ``8 (912) 345-67-89`` in RU).
2. End to end: events/s from ``pending`` rows to accepted by the local sandbox over HTTP
   (claim, validate, serialize, POST in batches of 1000, record outcomes, log user_event).

Usage::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/bench_capi.py --events 20000 --e2e-events 10000

The end-to-end part creates a throw-away database on that server and drops it after.
``--baseline-rev REV`` also times ``everreach/capi/normalize.py`` as it was at git
revision REV, interleaved with today's on the same inputs, so a change to normalization
is measured before and after in one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import phonenumbers

from everreach.capi.normalize import normalize_user_data

FIRST = ["Avery", "Zoë", "Luis", "Mina", "José", "Ann-Marie", "O'Neil", "Chloé", "Sam", "Lee"]
LAST = ["Jordan", "Núñez", "Okafor", "Smith", "García", "Müller", "Brown", "Nguyen"]
CITIES = ["San Francisco", "New York", "Austin", "Menlo Park", "Chicago", "St. Louis"]
STATES = ["CA", "NY", "TX", "IL", "MO", "WA"]
# Sixteen countries on six continents, with trunk prefixes 0, 8 and 06 and none.
WORLD = [
    "GB",
    "DE",
    "FR",
    "BR",
    "IN",
    "MX",
    "AU",
    "JP",
    "ES",
    "IT",
    "NL",
    "RU",
    "HU",
    "AR",
    "ZA",
    "PH",
]


def make_inputs(n: int, seed: int = 11) -> list[dict[str, str]]:
    """``n`` user_data dicts with every hashed field, in forms the SDK also accepts."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            {
                "em": f" {first}.{last}{i}@Example.com ",
                "ph": f"+1 ({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
                "fn": first,
                "ln": last,
                "ct": rng.choice(CITIES),
                "st": rng.choice(STATES),
                "zp": f"{rng.randint(10000, 99999)}",
                "country": "US",
                "db": f"19{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                "ge": rng.choice(["f", "m"]),
                "external_id": f"user-{i}",
            }
        )
    return rows


def _world_phone(rng: random.Random, region: str) -> str:
    """A mobile number of ``region`` with random last digits, written as people write it."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    nsn = phonenumbers.national_significant_number(example)
    nsn = nsn[:-4] + f"{rng.randint(0, 9999):04d}"
    number = phonenumbers.parse("+" + str(example.country_code) + nsn)
    style = rng.choice(
        [phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.NATIONAL]
    )
    return phonenumbers.format_number(number, style)


def make_world_inputs(n: int, seed: int = 13) -> list[dict[str, str]]:
    """Like :func:`make_inputs`, but events from :data:`WORLD` countries with local phones."""
    rng = random.Random(seed)
    rows = make_inputs(n, seed)
    for row in rows:
        region = rng.choice(WORLD)
        row["country"] = region
        row["ph"] = _world_phone(rng, region)
        del row["st"], row["zp"]  # US-style state and zip do not fit these countries
    return rows


def load_baseline(rev: str) -> Callable[..., Any]:
    """``normalize_user_data`` from ``everreach/capi/normalize.py`` at git revision ``rev``."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:everreach/capi/normalize.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "normalize_baseline.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("normalize_baseline", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.normalize_user_data


def bench_normalize(
    n: int, rounds: int = 3, mix: str = "us", baseline: Callable[..., Any] | None = None
) -> dict[str, float]:
    """Events/s for ours and the SDK's normalize+hash on the same ``n`` inputs.

    The inputs are cut into chunks of 500 events; each round times every contender
    (ours, the SDK, and a ``baseline`` normalize_user_data when given) on each chunk in
    turn, and a contender's figure is ``n`` over the sum of its best time per chunk. The
    machine is shared: interleaving short chunks lets every contender meet the same
    load, and the best of ``rounds`` tries per chunk is the one least disturbed by
    others. Our first round starts with a cold digest cache, like a fresh process would.
    """
    inputs = make_world_inputs(n) if mix == "world" else make_inputs(n)
    chunks = [inputs[start : start + 500] for start in range(0, n, 500)]
    try:
        from facebook_business.adobjects.serverside.normalize import Normalize
    except ImportError:
        Normalize = None
        print("facebook-business not installed: SDK comparison skipped", file=sys.stderr)

    def events(normalize: Callable[..., Any]) -> Callable[[list[dict[str, str]]], None]:
        def run(chunk: list[dict[str, str]]) -> None:
            for row in chunk:
                normalize(row)

        return run

    def sdk(chunk: list[dict[str, str]]) -> None:
        normalize_field = Normalize.normalize_field
        for row in chunk:
            for key, value in row.items():
                normalize_field(key, value)

    contenders: dict[str, Callable[[list[dict[str, str]]], None]] = {
        "ours": events(normalize_user_data)
    }
    if Normalize is not None:
        contenders["sdk"] = sdk
    if baseline is not None:
        contenders["baseline"] = events(baseline)
    best = {name: [float("inf")] * len(chunks) for name in contenders}
    for _ in range(rounds):
        for index, chunk in enumerate(chunks):
            for name, run in contenders.items():
                t0 = time.perf_counter()
                run(chunk)
                best[name][index] = min(best[name][index], time.perf_counter() - t0)
    rate = {name: n / sum(times) for name, times in best.items()}
    result = {"ours_events_per_s": rate["ours"]}
    if "sdk" in rate:
        result.update(sdk_events_per_s=rate["sdk"], speedup=rate["ours"] / rate["sdk"])
    if "baseline" in rate:
        result.update(
            baseline_events_per_s=rate["baseline"], vs_baseline=rate["ours"] / rate["baseline"]
        )
    return result


def bench_end_to_end(n: int, server_url: str) -> dict[str, Any]:
    """Events/s from pending rows to accepted by the sandbox (own database, dropped after)."""
    import psycopg

    from everreach.capi.delivery import deliver_pending
    from everreach.capi.intake import enqueue_conversions
    from everreach.capi.settings import CapiSettings
    from everreach.meta.client import GraphClient
    from everreach.sandbox.capi import DEFAULT_PIXEL_ID
    from everreach.sandbox.testing import running_sandbox
    from everreach.warehouse import database, migrate

    server = database.with_database(server_url, "postgres")
    name = f"everreach_bench_capi_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(server, name)
    try:
        migrate.upgrade(url)
        settings = CapiSettings(pixel_id=DEFAULT_PIXEL_ID)
        now = int(time.time()) - 300
        payloads = [
            {
                "event_name": "Purchase",
                "event_id": f"bench-{i}",
                "event_time": now,
                "value": 9.99,
                "currency": "USD",
                **row,
            }
            for i, row in enumerate(make_inputs(n, seed=5))
        ]
        for p in payloads:
            p["user_data"] = {
                k: p.pop(k)
                for k in list(p)
                if k
                in ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge", "external_id")
            }
        with psycopg.connect(url, autocommit=True) as conn:
            t0 = time.perf_counter()
            for start in range(0, n, 1000):
                enqueue_conversions(conn, payloads[start : start + 1000], settings=settings)
            intake_rate = n / (time.perf_counter() - t0)
            with running_sandbox() as sb:
                client = GraphClient("bench-token", base_url=sb.base_url)
                t0 = time.perf_counter()
                report = deliver_pending(conn, client)
                elapsed = time.perf_counter() - t0
        return {
            "e2e_events": report.sent,
            "e2e_requests": report.requests,
            "e2e_seconds": elapsed,
            "e2e_events_per_s": report.sent / elapsed,
            "intake_events_per_s": intake_rate,
        }
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'drop database if exists "{name}"')


def main() -> None:
    """Run both benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--e2e-events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of normalize+hash")
    parser.add_argument(
        "--baseline-rev", help="git revision whose normalize.py is timed beside today's"
    )
    args = parser.parse_args()
    baseline = load_baseline(args.baseline_rev) if args.baseline_rev else None
    print("load average (1, 5, 15 min):", os.getloadavg())
    for mix in ("us", "world"):
        figures = bench_normalize(args.events, args.rounds, mix=mix, baseline=baseline)
        for key, value in figures.items():
            print(f"normalize+hash [{mix}] {key}: {value:,.1f}")
    server = os.environ.get("DATABASE_URL") or os.environ.get("EVERREACH_TEST_DATABASE_URL")
    if not server:
        from everreach.warehouse import database

        server = database.start_embedded()
    if args.e2e_events:
        for key, value in bench_end_to_end(args.e2e_events, server).items():
            print(
                f"end-to-end {key}: {value:,.1f}"
                if isinstance(value, float)
                else f"end-to-end {key}: {value}"
            )
    print("load average (1, 5, 15 min):", os.getloadavg())


if __name__ == "__main__":
    main()
