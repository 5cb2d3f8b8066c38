"""Backfill of many ad accounts on the realistic sandbox: accounts in parallel vs one after another.

    .venv/bin/python bench/bench_backfill.py [--accounts 20] [--days 400] [--time-scale 0.05]
        [--parallel 8] [--airbyte-python /path/to/airbyte-venv/bin/python] [--database-url URL]

The sandbox runs in its own process with the realistic profile (Meta-like latency, async
report runs of 10-120 s growing with their size, per-account business-use-case usage and
Meta's throttling errors when a budget is exceeded), every duration multiplied by
``--time-scale`` so that a backfill that takes Meta hours takes minutes here. The same factor
scales every contender's own waits (report-run polling, back-off, slow-down), so the
comparison is the one a real backfill would show.

Each contender gets a fresh sandbox (the same seed, so the same data and empty usage
windows) and reads ``--accounts`` ad accounts × ``--days`` days at account, campaign, ad set
and ad level into ``ad_performance`` (a throw-away database on the server of
``--database-url``, default DATABASE_URL or the embedded Postgres):

1. ``parallel``: ``everreach.ads.sync.sync_ad_performance`` with ``--parallel`` accounts at
   once (one worker per account, a client scoped per account);
2. ``one after another``: the same with one account at a time — the baseline;
3. with ``--airbyte-python``: Airbyte's ``source-facebook-marketing`` (its default
   ``ads_insights`` stream: ad level, daily) reading the same accounts and days to /dev/null
   through ``bench/airbyte_facebook_marketing.py``, as the peer figure. It starts one report
   run per account and day (up to 100 in flight per account, accounts one after another),
   so 400 days are 8,000 runs: compare it on fewer ``--days`` (with ``--skip-baseline``).

It prints each contender's wall time, rows, throttling errors (as the sandbox counted them,
by code) and the peak usage per account, then the ratio of the baseline's wall time to the
parallel one beside the goal (≥ 4×, with 0 throttling errors: the profile throttles only
a client that exceeds an account's budget). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg

from everreach.ads.settings import AdsSettings
from everreach.ads.sync import AdAccount, sync_ad_performance
from everreach.meta import GraphClient
from everreach.warehouse import database, migrate

GOAL_RATIO = 4.0
ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 when the process
    is not on this machine, e.g. a remote Postgres)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sandbox:
    """A realistic sandbox in its own process."""

    proc: subprocess.Popen
    base_url: str

    def usage(self) -> dict:
        return httpx.get(f"{self.base_url}/_sandbox/usage", timeout=10).json()

    def accounts(self) -> list[str]:
        body = httpx.get(
            f"{self.base_url}/v25.0/me/adaccounts",
            params={"access_token": "bench-token", "fields": "account_id", "limit": 500},
            timeout=30,
        ).json()
        return [str(a["account_id"]) for a in body["data"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_sandbox(args: argparse.Namespace) -> Sandbox:
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
            "--seed",
            "7",
            "--profile",
            "realistic",
            "--time-scale",
            str(args.time_scale),
            "--accounts",
            str(args.accounts),
            "--campaigns",
            str(args.campaigns),
            "--adsets",
            str(args.adsets),
            "--ads",
            str(args.ads),
            "--days",
            str(args.days + 1),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_sandbox/health", timeout=1).status_code == 200:
                return Sandbox(proc, base)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the sandbox did not start")


@dataclass
class Outcome:
    """What one contender did."""

    name: str
    seconds: float
    rows: int
    throttled_by_code: dict[str, int] = field(default_factory=dict)
    peak_pct_by_account: dict[str, int] = field(default_factory=dict)
    app_peak_pct: float = 0.0
    note: str = ""
    #: CPU seconds spent by the contender, the sandbox and (ours) the Postgres backend.
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def throttled(self) -> int:
        return sum(self.throttled_by_code.values())


def _peaks(usage: dict) -> dict[str, int]:
    """Highest business-use-case percent per account (any use case) from /_sandbox/usage."""
    out: dict[str, int] = {}
    for account, entry in usage.get("accounts", {}).items():
        peaks = [v.get("peak_pct", 0) for v in entry.values() if isinstance(v, dict)]
        peaks.append(entry.get("score_peak_pct", 0))
        out[account] = int(max(peaks, default=0))
    return out


def run_everreach(args: argparse.Namespace, url: str, workers: int, name: str) -> Outcome:
    """Our sync with `workers` accounts at once, on a fresh sandbox."""
    sandbox = start_sandbox(args)
    try:
        ids = sandbox.accounts()[: args.accounts]
        scale = args.time_scale
        # The client's own waits scaled like the sandbox's durations (Meta's defaults × scale).
        client = GraphClient(
            "bench-token",
            base_url=sandbox.base_url,
            poll_interval=2.0 * scale,
            poll_interval_max=30.0 * scale,
            backoff_base=1.0 * scale,
            backoff_max=60.0 * scale,
            throttle_slowdown_max=30.0 * scale,
            page_limit=500,
        )
        until = date.today() - timedelta(days=1)
        since = until - timedelta(days=args.days - 1)
        with psycopg.connect(url) as conn:
            conn.execute("truncate ad_performance")
            conn.commit()
            pids = {
                "client": os.getpid(),
                "sandbox": sandbox.proc.pid,
                "Postgres": conn.info.backend_pid,
            }
            before = {k: cpu_seconds(p) for k, p in pids.items()}
            started = time.perf_counter()
            result = sync_ad_performance(
                client,
                conn,
                [AdAccount(i) for i in ids],
                since,
                until,
                AdsSettings(lookback_days=0),
                parallel_accounts=workers,
            )
            seconds = time.perf_counter() - started
            cpu = {k: cpu_seconds(p) - before[k] for k, p in pids.items()}
        usage = sandbox.usage()
        return Outcome(
            name,
            seconds,
            result.rows,
            {k: int(v) for k, v in usage.get("throttled", {}).items()},
            _peaks(usage),
            float(usage.get("app_peak_pct", 0)),
            note=f"client: {int(result.api.get('calls', 0)):,} calls, "
            f"{int(result.api.get('async_jobs', 0))} report runs, "
            f"{int(result.api.get('throttle_waits', 0))} slow-down waits "
            f"({result.api.get('throttle_wait_seconds', 0):.1f} s)",
            cpu=cpu,
        )
    finally:
        sandbox.stop()


def run_airbyte(args: argparse.Namespace) -> Outcome:
    """Airbyte's source-facebook-marketing, default ads_insights stream, to /dev/null."""
    sandbox = start_sandbox(args)
    try:
        ids = sandbox.accounts()[: args.accounts]
        until = date.today() - timedelta(days=1)
        since = until - timedelta(days=args.days - 1)
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "config.json")
            config.write_text(
                json.dumps(
                    {
                        "account_ids": ids,
                        "credentials": {"auth_type": "Service", "access_token": "bench-token"},
                        "access_token": "bench-token",
                        "start_date": f"{since.isoformat()}T00:00:00Z",
                        "end_date": f"{until.isoformat()}T23:59:59Z",
                        "insights_lookback_window": 1,
                    }
                )
            )
            catalog = Path(tmp, "catalog.json")
            discovered = subprocess.run(
                [
                    args.airbyte_python,
                    str(ROOT / "bench" / "airbyte_facebook_marketing.py"),
                    "--graph-url",
                    sandbox.base_url,
                    "--",
                    "discover",
                    "--config",
                    str(config),
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            streams = [
                json.loads(line)["catalog"]["streams"]
                for line in discovered.stdout.splitlines()
                if line.startswith("{") and '"CATALOG"' in line
            ]
            if not streams:
                raise RuntimeError(f"airbyte discover failed:\n{discovered.stderr[-2000:]}")
            stream = next(s for s in streams[0] if s["name"] == "ads_insights")
            catalog.write_text(
                json.dumps(
                    {
                        "streams": [
                            {
                                "stream": stream,
                                "sync_mode": "incremental",
                                "destination_sync_mode": "append",
                                "cursor_field": stream.get("default_cursor_field") or [],
                            }
                        ]
                    }
                )
            )
            sandbox_cpu = cpu_seconds(sandbox.proc.pid)
            started = time.perf_counter()
            rows = 0
            errors: list[str] = []
            with subprocess.Popen(
                [
                    args.airbyte_python,
                    str(ROOT / "bench" / "airbyte_facebook_marketing.py"),
                    "--graph-url",
                    sandbox.base_url,
                    "--time-scale",
                    str(args.time_scale),
                    "--",
                    "read",
                    "--config",
                    str(config),
                    "--catalog",
                    str(catalog),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            ) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith('{"type": "RECORD"') or line.startswith('{"type":"RECORD"'):
                        rows += 1
                    elif '"level": "ERROR"' in line or '"level":"ERROR"' in line:
                        errors.append(line[:300])
            seconds = time.perf_counter() - started
            cpu = {"sandbox": cpu_seconds(sandbox.proc.pid) - sandbox_cpu}
        usage = sandbox.usage()
        return Outcome(
            "Airbyte source-facebook-marketing (ads_insights)",
            seconds,
            rows,
            {k: int(v) for k, v in usage.get("throttled", {}).items()},
            _peaks(usage),
            float(usage.get("app_peak_pct", 0)),
            note=f"exit {proc.returncode}, {len(errors)} error lines"
            + (f": {errors[0]}" if errors else ""),
            cpu=cpu,
        )
    finally:
        sandbox.stop()


def report(outcome: Outcome) -> None:
    peaks = outcome.peak_pct_by_account
    top = max(peaks.values(), default=0)
    print(
        f"{outcome.name:<52} {outcome.seconds:8.1f} s  {outcome.rows:>9,} rows  "
        f"throttling errors {outcome.throttled} {outcome.throttled_by_code or ''}"
    )
    print(
        f"{'':<52} peak usage per account: max {top} %, "
        f"median {sorted(peaks.values())[len(peaks) // 2] if peaks else 0} %; "
        f"app {outcome.app_peak_pct:.0f} %"
    )
    print(f"{'':<52} {json.dumps(peaks, sort_keys=True)}")
    if outcome.note:
        print(f"{'':<52} {outcome.note}")
    if outcome.cpu:
        spent = ", ".join(f"{k} {v:.1f} s" for k, v in outcome.cpu.items())
        print(f"{'':<52} CPU: {spent}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--campaigns", type=int, default=3)
    parser.add_argument("--adsets", type=int, default=3)
    parser.add_argument("--ads", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--parallel", type=int, default=8, help="accounts at once")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--airbyte-python", help="the interpreter of a venv with Airbyte's connector"
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL"), help="server for a scratch db"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when redirected to a file

    server = args.database_url or database.start_embedded()
    name = f"everreach_bench_backfill_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database.ensure_database(database.with_database(server, "postgres"), name)
    print(f"load average before: {os.getloadavg()} (2-core machine shared with other work)")
    print(
        f"{args.accounts} ad accounts × {args.days} days, "
        f"{args.campaigns}×{args.adsets}×{args.ads} ads per account, realistic profile at "
        f"time scale {args.time_scale} (every contender's durations and waits × the same factor)"
    )
    baseline: Outcome | None = None
    peer: Outcome | None = None
    try:
        migrate.upgrade(url)
        parallel = run_everreach(
            args, url, args.parallel, f"EverReach, {args.parallel} accounts at once"
        )
        report(parallel)
        if not args.skip_baseline:
            baseline = run_everreach(args, url, 1, "EverReach, one account after another")
            report(baseline)
        if args.airbyte_python:
            peer = run_airbyte(args)
            report(peer)
    finally:
        with psycopg.connect(database.with_database(server, "postgres"), autocommit=True) as c:
            c.execute(f'drop database if exists "{name}" with (force)')
    if baseline is not None:
        ratio = baseline.seconds / parallel.seconds
        print(
            f"one after another / parallel: {ratio:.2f}× (goal ≥ {GOAL_RATIO:.0f}×), "
            f"throttling errors {parallel.throttled} (goal 0)"
        )
    if peer is not None:
        print(f"{peer.name} / EverReach parallel: {peer.seconds / parallel.seconds:.2f}×")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
