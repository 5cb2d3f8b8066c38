"""Benchmark: breakdown insights from the sandbox into their table, end to end.

    .venv/bin/python bench/bench_breakdowns.py [--family placement] [--rows 1000000]
                                               [--database-url URL]

Starts the sandbox in a subprocess on 127.0.0.1 (one ad account, 10 campaigns × 10 ad sets ×
10 ads, as many days as --rows needs for the family: placement has about 72 rows per ad and
day, age × gender 23, country 4 …), creates a throw-away database on the server of
--database-url (default EVERREACH_BENCH_DATABASE_URL, DATABASE_URL, else the embedded
Postgres), and measures in one run:

1. end to end: `everreach.ads.breakdowns.sync_family` — async report runs over HTTP, paging,
   parsing, shaping into COPY text in the read-ahead thread, COPY into the family's table
   inside the transaction that deleted the window, commit;
2. the limit: a raw `COPY` of the very same rows (exported to a file first) into the same,
   emptied table — same primary key and index.

As in `bench_ads.py`, the sandbox stands in for Meta, whose servers do not share this
machine's cores: a warm-up pass (timed and printed, not part of the figure) makes it render
and cache every page once. The ratio (1) / (2) is the figure. The load average is printed
with the figures: the machine is shared, only ratios measured in one run compare.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from everreach.ads.breakdowns import Family, family_named, request_params, sync_family
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import AdAccount
from everreach.meta import GraphClient
from everreach.read_ahead import prefetch
from everreach.warehouse import database, migrate

CAMPAIGNS, ADSETS, ADS = 10, 10, 10
ACCOUNT_ID = "100000000007001"  # the sandbox's first account for seed 7
#: Rows per ad and day each family yields on the sandbox (cells with impressions).
ROWS_PER_AD_DAY = {"age_gender": 23, "country": 4, "region": 20, "placement": 72, "actions": 4}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sandbox(days: int, cache_mb: int) -> tuple[subprocess.Popen, str]:
    """The sandbox CLI in its own process (its own core and GIL), ready to answer."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "everreach.sandbox.cli",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--accounts",
            "1",
            "--campaigns",
            str(CAMPAIGNS),
            "--adsets",
            str(ADSETS),
            "--ads",
            str(ADS),
            "--days",
            str(days),
            # Hold every rendered page: after the warm-up the sandbox serves cached JSON, as
            # Meta's servers would, instead of spending this machine's cores on it.
            "--extra",
            f'{{"ads_render_cache_mb": {cache_mb}, "ads_cache_mb": 512}}',
        ],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_sandbox/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the sandbox did not start")


def _window(days: int) -> tuple:
    # Whole days in the account's time zone (Los Angeles, behind UTC): end two days back.
    until = datetime.now(UTC).date() - timedelta(days=2)
    return until - timedelta(days=days - 1), until


def fetch_only(base: str, family: Family, days: int) -> tuple[int, float]:
    """The same requests, rows parsed and dropped (warms the sandbox's page cache)."""
    client = GraphClient("bench-token", base_url=base, poll_interval=0.05, page_limit=2000)
    since, until = _window(days)
    params = request_params(family, since, until, AdsSettings(), 2000)
    started = time.perf_counter()
    rows = sum(1 for _ in prefetch(client.insights(f"act_{ACCOUNT_ID}", params), batch=2000))
    return rows, time.perf_counter() - started


def run_sync(url: str, base: str, family: Family, days: int) -> tuple[int, float]:
    """The family's sync for `days` days; returns (rows written, seconds)."""
    client = GraphClient("bench-token", base_url=base, poll_interval=0.05, page_limit=2000)
    since, until = _window(days)
    with psycopg.connect(url) as conn:
        conn.execute(f"truncate {family.table}")
        conn.commit()
        started = time.perf_counter()
        result = sync_family(
            client, conn, family, [AdAccount(ACCOUNT_ID)], since, until, AdsSettings(),
            page_limit=2000,
        )  # fmt: skip
        return result.rows, time.perf_counter() - started


def raw_copy(url: str, family: Family) -> tuple[int, float]:
    """Export the family's rows to a file, empty the table, time COPY of the file back in."""
    columns = ", ".join(family.columns)
    with tempfile.TemporaryDirectory() as tmp, psycopg.connect(url) as conn:
        path = Path(tmp) / "rows.copy"
        with (
            path.open("wb") as out,
            conn.cursor().copy(f"copy (select {columns} from {family.table}) to stdout") as copy,
        ):
            for chunk in copy:
                out.write(chunk)
        conn.execute(f"truncate {family.table}")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur, path.open("rb") as src:
            with cur.copy(f"copy {family.table} ({columns}) from stdin") as copy:
                while chunk := src.read(1 << 20):
                    copy.write(chunk)
            conn.commit()
            elapsed = time.perf_counter() - started
            rows = cur.execute(f"select count(*) from {family.table}").fetchone()[0]
    return rows, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="placement", choices=sorted(ROWS_PER_AD_DAY))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("EVERREACH_BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL"),
    )
    args = parser.parse_args()
    family = family_named(args.family)
    ads = CAMPAIGNS * ADSETS * ADS
    days = max(1, -(-args.rows // (ads * ROWS_PER_AD_DAY[family.name])))
    server = args.database_url or database.start_embedded()
    name = f"everreach_bench_breakdowns_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database.ensure_database(database.with_database(server, "postgres"), name)
    proc, base = start_sandbox(days + 3, cache_mb=max(512, args.rows // 1000))
    try:
        migrate.upgrade(url)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        _, cold_s = fetch_only(base, family, days)  # warm-up: the sandbox renders once
        fetched, fetch_s = fetch_only(base, family, days)
        rows, e2e_s = run_sync(url, base, family, days)
        copied, copy_s = raw_copy(url, family)
        assert copied == rows, (copied, rows)
        e2e_rate, copy_rate = rows / e2e_s, rows / copy_s
        print(
            f"family {family.name} → {family.table}: {rows:,} rows "
            f"({days} days × {ads:,} ads, breakdowns "
            f"{', '.join(family.breakdowns or family.action_breakdowns)})"
        )
        print(f"end to end  sandbox → {family.table}: {e2e_s:7.1f} s  {e2e_rate:10,.0f} rows/s")
        print(f"raw COPY    same rows → {family.table}: {copy_s:7.1f} s  {copy_rate:10,.0f} rows/s")
        print(f"ratio: {e2e_rate / copy_rate:.2f}")
        print(
            f"warm-up: sandbox rendering every page (cold) → parsed insight rows: {cold_s:6.1f} s"
            f"  {fetched / cold_s:10,.0f} rows/s"
        )
        print(
            f"source alone: sandbox (warm) → parsed insight rows, no database: {fetch_s:6.1f} s"
            f"  {fetched / fetch_s:10,.0f} rows/s"
        )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        with psycopg.connect(database.with_database(server, "postgres"), autocommit=True) as c:
            c.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (name,),
            )
            c.execute(f'drop database if exists "{name}"')


if __name__ == "__main__":
    main()
