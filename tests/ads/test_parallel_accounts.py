"""Accounts read in parallel: the same table as one after another, one request at a time per
account, several accounts at once, and the Dagster asset reports per-account usage."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from ads_helpers import SMALL, account_ids, client_for, configure_accounts, snapshot
from dagster import DagsterInstance, materialize

from everreach.ads.objects import sync_ad_objects
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import AdAccount, sync_ad_performance
from everreach.meta import GraphClient
from everreach.sandbox.testing import running_sandbox
from everreach_pipelines.defs.ads.assets import ADS_POOL, ad_performance
from everreach_pipelines.resources.meta import MetaGraphResource
from everreach_pipelines.resources.warehouse import WarehouseResource

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
SIX = {**SMALL, "accounts": 6, "latency_ms": 15.0}


class InFlight:
    """Counts requests in flight per client scope (ad account) and in all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str | None] = Counter()
        self.peak: Counter[str | None] = Counter()
        self.total = 0
        self.peak_total = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = GraphClient._request

        def tracked(client: GraphClient, *args, **kwargs):
            with self.lock:
                self.now[client.scope] += 1
                self.total += 1
                self.peak[client.scope] = max(self.peak[client.scope], self.now[client.scope])
                self.peak_total = max(self.peak_total, self.total)
            try:
                return real(client, *args, **kwargs)
            finally:
                with self.lock:
                    self.now[client.scope] -= 1
                    self.total -= 1

        monkeypatch.setattr(GraphClient, "_request", tracked)


def test_parallel_accounts_give_the_same_table_one_request_at_a_time_per_account(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AdsSettings(lookback_days=3)
    since, until = YESTERDAY - timedelta(days=6), YESTERDAY
    with running_sandbox(**SIX) as handle:
        accounts = [AdAccount(i) for i in account_ids(handle)]
        started = time.perf_counter()
        sequential = sync_ad_performance(client_for(handle), db, accounts, since, until, settings)
        sequential_seconds = time.perf_counter() - started
        one_after_another = snapshot(db)
        db.execute("truncate ad_performance")

        flight = InFlight()
        flight.install(monkeypatch)
        started = time.perf_counter()
        result = sync_ad_performance(
            client_for(handle), db, accounts, since, until, settings, parallel_accounts=6
        )
        parallel_seconds = time.perf_counter() - started
    assert snapshot(db) == one_after_another
    assert result.rows == sequential.rows > 0
    scoped = {scope: peak for scope, peak in flight.peak.items() if scope is not None}
    assert set(scoped) == {a.node_id for a in accounts}
    assert max(scoped.values()) == 1  # never two requests at once on one account
    assert flight.peak_total >= 3  # several accounts at once
    assert parallel_seconds < sequential_seconds * 0.6
    assert set(result.usage) == {a.account_id for a in accounts}
    assert all(u.calls > 0 and u.throttled == 0 for u in result.usage.values())


def test_ad_objects_listed_in_parallel_match_one_after_another(db: psycopg.Connection) -> None:
    def tables() -> list:
        return [
            db.execute(f"select * from {t} order by 1").fetchall()
            for t in ("meta_ad_campaign", "meta_ad_set", "meta_ad")
        ]

    with running_sandbox(**SIX) as handle:
        accounts = [AdAccount(i) for i in account_ids(handle)]
        first = sync_ad_objects(client_for(handle), db, accounts)
        before = [[r[:-2] for r in t] for t in tables()]  # without synced_at stamps
        second = sync_ad_objects(client_for(handle), db, accounts, parallel_accounts=4)
        after = [[r[:-2] for r in t] for t in tables()]
    assert first.rows == second.rows and after == before


def test_asset_reads_accounts_in_parallel_in_the_meta_ads_pool(
    db: psycopg.Connection, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVERREACH_ADS_LOOKBACK_DAYS", "0")
    assert ad_performance.op.pool == ADS_POOL == "meta_ads"
    with running_sandbox(**SIX) as handle:
        ids = account_ids(handle)
        configure_accounts(db, ids)
        result = materialize(
            [ad_performance],
            resources={
                "warehouse": WarehouseResource(database_url=database_url),
                "meta": MetaGraphResource(
                    access_token="ads-test-token",
                    base_url=handle.base_url,
                    poll_interval=0.01,
                    parallel_accounts=3,
                ),
            },
            partition_key=YESTERDAY.isoformat(),
            instance=DagsterInstance.ephemeral(),
        )
    assert result.success
    materialization = result.asset_materializations_for_node("ad_performance")[0]
    meta = materialization.metadata
    assert meta["parallel_accounts"].value == 3
    assert meta["throttle_errors"].value == 0
    peaks = meta["peak_usage_pct_by_account"].data
    assert set(peaks) == {f"act_{i}" for i in ids}


def test_a_throttled_account_waits_alone_and_the_backfill_resumes_to_the_same_table(
    db: psycopg.Connection,
) -> None:
    from everreach.sandbox.profile import BucBudget, LatencyModel, UsageLimits

    settings = AdsSettings(lookback_days=0)
    since, until = YESTERDAY - timedelta(days=9), YESTERDAY
    knobs = {**SMALL, "accounts": 4}
    with running_sandbox(**knobs) as clean:
        accounts = [AdAccount(i) for i in account_ids(clean)]
        sync_ad_performance(client_for(clean), db, accounts, since, until, settings)
    fault_free = snapshot(db)
    db.execute("truncate ad_performance")
    # Each account may make 12 insights calls per rolling hour (7.2 s at this scale). Our
    # client reads the usage headers and waits before reaching 100 %, so to see it resume
    # after a throttling error, another tool has just used up the first account's budget:
    # our first insights call on that account gets Meta's 80000 without warning.
    tight = UsageLimits(
        ads_insights=BucBudget(12, 0, cputime_seconds=1e6, total_time_seconds=1e6),
    )
    with running_sandbox(
        **knobs,
        profile="realistic",
        time_scale=0.002,
        latency=LatencyModel(floor_ms=0, median_ms=0, tail_probability=0, per_kb_ms=0),
        usage_limits=tight,
    ) as handle:
        noisy = accounts[0]
        with httpx.Client(timeout=10) as http:
            for _ in range(100):
                answer = http.get(
                    handle.url(f"{noisy.node_id}/insights"),
                    params={"access_token": "another-tool", "level": "account"},
                )
                if answer.status_code != 200:
                    break
        assert answer.json()["error"]["code"] == 80000
        client = client_for(handle, max_throttle_retries=50)
        result = sync_ad_performance(
            client, db, accounts, since, until, settings, parallel_accounts=4
        )
    assert snapshot(db) == fault_free  # resumed after every throttle, nothing lost or doubled
    assert result.api["throttled"] > 0
    noisy_usage = result.usage[noisy.account_id]
    assert noisy_usage.throttled == result.api["throttled"] and noisy_usage.waits > 0
    others = [u for a, u in result.usage.items() if a != noisy.account_id]
    assert all(u.throttled == 0 for u in others)
    assert client.throttle.app_pauses == 0  # the other accounts were never held
