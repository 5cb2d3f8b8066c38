"""Benchmark: organic posts and insight rows per second, sandbox → Postgres, ≥ 10,000 media.

Run by hand (not part of the tests):

    EVERREACH_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/bench_organic.py --media 10000

It serves a seeded sandbox on 127.0.0.1 with ``--media`` Instagram media over two accounts
(plus live stories) and ``--fb-posts`` Page posts, creates a private database on the
server (dropped at the end), and runs one first-time daily sync of posts + lifetime
insight snapshots (the worst case: every media is new and due). It prints throughput
beside the limit it is measured against and the ratio:

* rows/s against a raw binary COPY of the very rows the sync wrote (posts and insight
  rows of that platform) into copies of the same tables (same keys and indexes) in the
  same Postgres, timed in the same run — the database-side ceiling for these rows;
* Graph calls per media against the minimum of 1 (Meta has no multi-media insights call
  that keeps per-item errors); HTTP requests per media show what batching saves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from everreach.meta.client import GraphClient
from everreach.organic import sync
from everreach.organic.fetch import OrganicGraph
from everreach.sandbox.core import SandboxConfig
from everreach.sandbox.testing import running_sandbox
from everreach.warehouse import database, migrate
from everreach.warehouse.settings import WarehouseSettings

MIN_CALLS_PER_MEDIA = 1.0
TABLES = ("social_media_post", "social_post_insights")


def raw_copy_seconds(conn: psycopg.Connection, platform: str) -> tuple[int, float]:
    """Rows and seconds of a binary COPY of ``platform``'s rows into empty twins of the
    tables (LIKE … INCLUDING ALL: same primary keys and indexes)."""
    rows = 0
    elapsed = 0.0
    for table in TABLES:
        twin = f"bench_copy_{table}"
        conn.execute(f"drop table if exists {twin}")
        conn.execute(f"create table {twin} (like {table} including all)")
        with conn.cursor() as cur:
            with cur.copy(
                f"copy (select * from {table} where platform = %s) to stdout (format binary)",
                (platform,),
            ) as out:
                data = b"".join(bytes(chunk) for chunk in out)
            started = time.perf_counter()
            with conn.transaction(), cur.copy(f"copy {twin} from stdin (format binary)") as sink:
                sink.write(data)
            elapsed += time.perf_counter() - started
            rows += conn.execute(f"select count(*) from {twin}").fetchone()[0]
        conn.execute(f"drop table {twin}")
    return rows, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=int, default=10_000, help="Instagram media in total")
    parser.add_argument("--fb-posts", type=int, default=1_000, help="Page posts in total")
    parser.add_argument(
        "--database-url",
        default=None,
        help="server URL (default EVERREACH_TEST_DATABASE_URL / DATABASE_URL)",
    )
    args = parser.parse_args()
    settings = WarehouseSettings.from_env()
    server = (
        args.database_url
        or settings.test_database_url
        or settings.database_url
        or database.start_embedded()
    )
    server = database.with_database(server, "postgres")
    name = f"everreach_bench_organic_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(server, name)
    try:
        migrate.upgrade(url)
        return _run(url, args)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def _run(url: str, args: argparse.Namespace) -> int:
    print(f"load average at start: {os.getloadavg()}")
    now = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)
    config = SandboxConfig(
        seed=5,
        accounts=1,
        campaigns_per_account=1,
        adsets_per_campaign=1,
        ads_per_adset=1,
        days=1,
        now=now,
        extra={
            "ig_accounts": 2,
            "ig_media_per_account": args.media // 2,
            "ig_stories_per_day": 3,
            "fb_pages": 2,
            "fb_posts_per_page": args.fb_posts // 2,
            "organic_days": 365,
        },
    )
    day = (now - timedelta(days=1)).date()
    with running_sandbox(config) as sb, psycopg.connect(url, autocommit=True) as conn:
        state = sb.sandbox.domains["organic"]
        for acct in state.ig_accounts.values():
            conn.execute(
                "insert into meta_platform_config (platform, external_id) "
                "values ('instagram_account', %s)",
                (acct.id,),
            )
        for page in state.pages.values():
            conn.execute(
                "insert into meta_platform_config (platform, external_id) "
                "values ('facebook_page', %s)",
                (page.id,),
            )
        print(
            f"sandbox: {sum(len(a.media) for a in state.ig_accounts.values()):,} IG media, "
            f"{sum(len(p.posts) for p in state.pages.values()):,} Page posts"
        )
        for platform, cfg in (("instagram", "instagram_account"), ("facebook", "facebook_page")):
            graph = OrganicGraph(GraphClient("bench-user-token", base_url=sb.base_url))
            accounts = sync.load_accounts(conn, cfg)
            started = time.perf_counter()
            report = sync.sync_posts(
                conn, graph, platform, accounts, day, now, recent_days=14, old_post_refresh_days=7
            )
            elapsed = time.perf_counter() - started
            items = report.snapshot_posts + sum(report.skipped.values())
            rows = report.rows + report.posts
            calls = graph.stats.graph_calls / max(items, 1)
            http = graph.stats.http_requests / max(items, 1)
            print(
                f"\n{platform}: {report.posts:,} posts, {report.rows:,} insight rows, "
                f"{sum(report.skipped.values()):,} skipped {dict(report.skipped)} "
                f"in {elapsed:.2f} s"
            )
            print(f"  posts/s          {report.posts / elapsed:>10,.0f}")
            print(f"  insight rows/s   {report.rows / elapsed:>10,.0f}")
            copied, copy_seconds = raw_copy_seconds(conn, platform)
            limit = copied / copy_seconds
            print(
                f"  all rows/s       {rows / elapsed:>10,.0f}   limit (raw COPY of the same "
                f"{copied:,} rows) {limit:,.0f}   ratio {rows / elapsed / limit:.2f}"
            )
            print(
                f"  Graph calls/media {calls:>9.3f}   minimum {MIN_CALLS_PER_MEDIA:.0f}   "
                f"ratio {calls / MIN_CALLS_PER_MEDIA:.3f}"
            )
            print(
                f"  HTTP requests/media {http:>7.3f}   (batch API, 50 per request; "
                f"{graph.stats.http_requests:,} requests for {graph.stats.graph_calls:,} "
                "calls)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
