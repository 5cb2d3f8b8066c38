"""Benchmark: insights rows per second the GraphClient pulls from the local sandbox.

The sandbox runs in its own process (``python -m everreach.sandbox.cli``) so that it does
not share the client's interpreter lock. Three numbers are measured over the same request
(level=ad, time_increment=1, all the days of every account):

* raw:   a bare ``requests`` loop that follows ``paging.next`` and reads the bytes, no
         JSON parsing, no error classification; the sandbox's serving rate, used as the
         ratio's denominator;
* sync:  ``GraphClient.insights(..., async_run=False)`` (parses, classifies, throttles);
* async: ``GraphClient.insights_many(...)`` with report runs, accounts in flight at once.

Usage: ``python bench/bench_graph_client.py --rows 1000000 [--page-limit 5000]``
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import subprocess
import sys
import time

import requests

from everreach.meta.client import GraphClient

ACCOUNTS, CAMPAIGNS, ADSETS, ADS = 2, 10, 10, 10
ALL_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
NEXT = re.compile(rb'"next":"([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sandbox(days: int, seed: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "everreach.sandbox.cli",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--seed",
        str(seed),
        "--accounts",
        str(ACCOUNTS),
        "--campaigns",
        str(CAMPAIGNS),
        "--adsets",
        str(ADSETS),
        "--ads",
        str(ADS),
        "--days",
        str(days),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/_sandbox/health", timeout=1).ok:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sandbox did not start")


def params(days: int, limit: int) -> dict:
    return {
        "level": "ad",
        "time_increment": 1,
        # Every delivered day: the sandbox delivers `days` days before its start, and
        # Meta's presets are a fixed list (last_Nd exists for a few N only).
        "date_preset": "maximum",
        "fields": [
            "account_id",
            "campaign_id",
            "adset_id",
            "ad_id",
            "spend",
            "impressions",
            "reach",
            "clicks",
            "inline_link_clicks",
            "ctr",
            "cpc",
            "cpm",
            "actions",
            "action_values",
        ],
        "action_attribution_windows": ["1d_click", "7d_click", "28d_click", "1d_view"],
        "filtering": [{"field": "ad.effective_status", "operator": "IN", "value": ALL_STATUSES}],
        "limit": limit,
    }


def raw_rate(base: str, accounts: list[str], query: dict, expected: int) -> tuple[int, float]:
    """Fetch every page with a bare loop; rows are known from the sandbox sizes."""
    from everreach.meta.client import encode_params

    session = requests.Session()
    start = time.perf_counter()
    pages = 0
    for acct in accounts:
        url: str | None = f"{base}/v25.0/{acct}/insights"
        q: dict | None = {**encode_params(query), "access_token": "bench"}
        while url:
            content = session.get(url, params=q, timeout=(5, 120)).content
            pages += 1
            match = NEXT.search(content[-4096:])
            url = match.group(1).decode().replace("\\/", "/") if match else None
            q = None
    return expected, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="insight rows to pull")
    parser.add_argument("--page-limit", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=2, help="async jobs in flight")
    args = parser.parse_args()
    per_day = ACCOUNTS * CAMPAIGNS * ADSETS * ADS
    days = max(1, math.ceil(args.rows / per_day))
    expected = per_day * days
    proc, base = start_sandbox(days, args.seed)
    try:
        client = GraphClient(
            "bench",
            base_url=base,
            page_limit=args.page_limit,
            poll_interval=0.05,
            max_concurrent_jobs=args.concurrency,
            read_timeout=300,
        )
        accounts = [a["id"] for a in client.paginate("me/adaccounts")]
        query = params(days, args.page_limit)
        print(
            f"sandbox: {ACCOUNTS} accounts x {CAMPAIGNS} campaigns x {ADSETS} adsets x "
            f"{ADS} ads x {days} days = {expected:,} rows; page limit {args.page_limit}"
        )
        # The sandbox caches generated days: the first (cold) pass warms it, and the warm
        # raw pass after the client runs is the denominator (the sandbox's serving rate).
        rows, secs = raw_rate(base, accounts, query, expected)
        print(f"raw (cold, generating) {rows:>10,} rows {secs:8.2f} s {rows / secs:>10,.0f} rows/s")
        results = {}
        for mode in ("sync", "async"):
            client = GraphClient(
                "bench",
                base_url=base,
                page_limit=args.page_limit,
                poll_interval=0.05,
                max_concurrent_jobs=args.concurrency,
                read_timeout=300,
            )
            start = time.perf_counter()
            if mode == "sync":
                n = sum(1 for a in accounts for _ in client.insights(a, query, async_run=False))
            else:
                n = sum(1 for _ in client.insights_many(accounts, query, async_run=True))
            secs = time.perf_counter() - start
            if n != expected:
                raise SystemExit(f"{mode}: got {n} rows, expected {expected}")
            m = client.metrics
            results[mode] = (n, secs, m)
        rows, secs = raw_rate(base, accounts, query, expected)
        raw = rows / secs
        print(
            f"raw (warm)             {rows:>10,} rows {secs:8.2f} s {raw:>10,.0f} rows/s"
            "  <- denominator"
        )
        for mode, (n, secs, m) in results.items():
            print(
                f"client {mode:<15} {n:>10,} rows {secs:8.2f} s {n / secs:>10,.0f} rows/s"
                f"  ratio {n / secs / raw:.2f}  (calls {m.calls}, {m.bytes / 1e6:.0f} MB, "
                f"retries {m.retries}, throttle waits {m.throttle_waits})"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
