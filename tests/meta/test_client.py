"""GraphClient against the sandbox over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from everreach.meta import (
    DeprecatedVersionError,
    GraphClient,
    InvalidMetricError,
    MetaSettingError,
    MissingPermissionError,
    TokenInvalidError,
    TransientGraphError,
)
from everreach.sandbox.testing import RunningSandbox, running_sandbox
from everreach.settings import SettingError

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # the same fixed clock as conftest.py

ALL_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
AD_PARAMS = {
    "level": "ad",
    "time_increment": 1,
    "time_range": {"since": "2026-02-20", "until": "2026-03-12"},
    "fields": [
        "account_id",
        "campaign_id",
        "adset_id",
        "ad_id",
        "spend",
        "impressions",
        "reach",
        "clicks",
        "actions",
        "action_values",
    ],
    "action_attribution_windows": ["1d_click", "7d_click", "28d_click", "1d_view"],
    "filtering": [{"field": "ad.effective_status", "operator": "IN", "value": ALL_STATUSES}],
}


class FakeTime:
    """A virtual clock: ``sleep`` advances it instantly, so waits cost no wall time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds

    def clock(self) -> float:
        return self.now


def make_client(sb: RunningSandbox, fake: FakeTime | None = None, **kwargs) -> GraphClient:
    fake = fake or FakeTime()
    opts = {
        "poll_interval": 0.01,
        "page_limit": 25,
        "seed": 1,
        "sleep": fake.sleep,
        "clock": fake.clock,
        **kwargs,
    }
    return GraphClient("sandbox-token", base_url=sb.base_url, **opts)


def account_ids(client: GraphClient) -> list[str]:
    return [a["id"] for a in client.paginate("me/adaccounts", {"limit": 2})]


def row_key(row: dict) -> tuple:
    return (row["date_start"], row["ad_id"])


def reference_rows(sb: RunningSandbox, acct: str, params: dict = AD_PARAMS) -> list[dict]:
    """One big page, fetched without the client's paging."""
    import json

    import requests

    query = {
        "access_token": "t",
        "limit": 5000,
        **{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in params.items()},
    }
    body = requests.get(sb.url(f"{acct}/insights"), params=query).json()
    assert "next" not in body.get("paging", {})
    return body["data"]


@pytest.fixture(scope="module")
def reference() -> Iterator[tuple[str, list[dict]]]:
    """The first account and its rows, from a fault-free sandbox with the same seed."""
    with running_sandbox(now=NOW) as clean:
        acct = account_ids(make_client(clean))[0]
        yield acct, sorted(reference_rows(clean, acct), key=row_key)


def test_paginate_returns_every_row_once(sb: RunningSandbox, reference):
    acct, expected = reference
    client = make_client(sb, page_limit=7)
    rows = list(client.insights(acct, AD_PARAMS, async_run=False))
    assert len(rows) == len(expected) == 8 * 21
    assert len({row_key(r) for r in rows}) == len(rows)
    assert sorted(rows, key=row_key) == expected
    assert client.metrics.calls == -(-len(expected) // 7)  # one call per page, no extra


def test_async_run_equals_sync(sb: RunningSandbox, reference):
    acct, expected = reference
    client = make_client(sb, page_limit=10)
    rows = list(client.insights(acct, AD_PARAMS, async_run=True))
    assert sorted(rows, key=row_key) == expected
    assert client.metrics.async_jobs == 1


@pytest.mark.parametrize(
    "sb",
    [
        {
            "error_rate": {1: 0.1, 2: 0.05, 17: 0.05},
            "throttle_burst_every": 9,
            "throttle_burst_length": 3,
        }
    ],
    indirect=True,
)
def test_faults_and_throttle_bursts_do_not_change_the_result(sb: RunningSandbox, reference):
    acct, expected = reference
    client = make_client(sb, max_retries=10, max_throttle_retries=20, page_limit=9)
    sync_rows = list(client.insights(acct, AD_PARAMS, async_run=False))
    async_rows = list(client.insights(acct, AD_PARAMS, async_run=True))
    assert sorted(sync_rows, key=row_key) == expected
    assert sorted(async_rows, key=row_key) == expected
    assert sb.sandbox.stats["faults"] > 0 and sb.sandbox.stats["throttled"] > 0
    assert client.metrics.retries >= sb.sandbox.stats["faults"]
    assert client.metrics.throttle_waits > 0


@pytest.mark.parametrize(
    "sb",
    [{"throttle_burst_every": 2, "throttle_burst_length": 1, "throttle_regain_minutes": 3}],
    indirect=True,
)
def test_time_to_regain_access_is_waited_not_failed(sb: RunningSandbox):
    fake = FakeTime()
    client = make_client(sb, fake)
    rows = list(client.paginate("me/adaccounts", {"limit": 1}))
    assert len(rows) == 3
    assert client.metrics.throttle_waits >= 1
    assert client.metrics.throttle_wait_seconds >= 180  # 3 minutes, as the header said
    assert 180 in fake.slept


@pytest.mark.parametrize("sb", [{"rate_limit_calls": 20}], indirect=True)
def test_high_usage_slows_down_before_the_limit(sb: RunningSandbox):
    client = make_client(sb, throttle_threshold=50, throttle_slowdown_max=2.0)
    for _ in range(15):
        client.get("me")
    assert client.throttle.last_usage_pct >= 50
    assert client.metrics.throttle_waits >= 1
    assert 0 < client.metrics.throttle_wait_seconds <= 15 * 2.0
    assert client.metrics.retries == 0  # it slowed down, nothing failed


def test_expired_token_fails_at_once_with_a_clear_message(sb: RunningSandbox):
    sb.sandbox.config.token_expires_at = NOW
    sb.sandbox.advance(seconds=1)
    client = make_client(sb)
    with pytest.raises(TokenInvalidError) as info:
        client.get("me/adaccounts")
    err = info.value
    assert (err.code, err.subcode) == (190, 463)
    text = str(err)
    assert "code 190" in text and "subcode 463" in text and err.fbtrace_id in text
    assert "META_ACCESS_TOKEN" in text
    assert client.metrics.calls == 1 and client.metrics.retries == 0


def test_configuration_errors_fail_fast(sb: RunningSandbox):
    client = make_client(sb)
    acct = account_ids(client)[0]
    calls = client.metrics.calls
    with pytest.raises(InvalidMetricError, match="no_such_metric"):
        list(client.insights(acct, {"fields": "spend,no_such_metric"}, async_run=False))
    with pytest.raises(DeprecatedVersionError, match="META_GRAPH_API_VERSION"):
        GraphClient("t", base_url=sb.base_url, api_version="v18.0").get(acct)
    assert client.metrics.calls == calls + 1


@pytest.mark.parametrize("sb", [{"async_fail_once": True}], indirect=True)
def test_failed_job_is_restarted_once(sb: RunningSandbox, reference):
    acct, expected = reference
    client = make_client(sb)
    rows = list(client.insights(acct, AD_PARAMS))
    assert sorted(rows, key=row_key) == expected
    assert client.metrics.async_restarts == 1 and client.metrics.async_jobs == 2
    assert client.metrics.splits == 0


@pytest.mark.parametrize("sb", [{"reduce_data_threshold": 40}], indirect=True)
@pytest.mark.parametrize("async_run", [True, False])
def test_reduce_data_splits_and_split_equals_unsplit(
    sb: RunningSandbox, async_run: bool, reference
):
    acct, expected = reference
    client = make_client(sb, max_concurrent_jobs=3)
    rows = list(client.insights(acct, AD_PARAMS, async_run=async_run))
    assert sorted(rows, key=row_key) == expected
    assert client.metrics.splits >= 1
    # the account-level daily request is split by time range, also without loss
    account_params = {
        "level": "account",
        "time_increment": 1,
        "fields": ["spend", "reach"],
        "time_range": {"since": "2026-01-15", "until": "2026-03-14"},
    }
    with running_sandbox(now=NOW) as clean:
        expected_days = reference_rows(clean, acct, account_params)
    splits = client.metrics.splits
    days = list(client.insights(acct, account_params, async_run=async_run))
    assert len(days) == 59 > 40 and client.metrics.splits > splits
    assert sorted(days, key=lambda r: r["date_start"]) == expected_days


@pytest.mark.parametrize("sb", [{"reduce_data_max_limit": 10}], indirect=True)
def test_reduce_data_on_page_size_shrinks_the_page(sb: RunningSandbox, reference):
    acct, expected = reference
    client = make_client(sb, page_limit=40)
    rows = list(client.insights(acct, AD_PARAMS))
    assert sorted(rows, key=row_key) == expected
    assert client.metrics.page_shrinks >= 1 and client.metrics.splits == 0


def test_many_jobs_in_flight(sb: RunningSandbox):
    client = make_client(sb, max_concurrent_jobs=3)
    ids = account_ids(client)
    params = {**AD_PARAMS, "level": "campaign", "fields": ["campaign_id", "spend"]}
    params.pop("filtering")
    got = list(client.insights_many(ids, params, batch_size=5))
    one_by_one = [(i, r) for i in ids for r in make_client(sb).insights(i, params)]
    assert got and sorted(got, key=repr) == sorted(one_by_one, key=repr)
    for i in ids:  # each object's rows keep their order
        assert [r for o, r in got if o == i] == [r for o, r in one_by_one if o == i]
    assert client.metrics.async_jobs == len(ids)


def test_insights_many_raises_worker_errors(sb: RunningSandbox):
    client = make_client(sb, max_concurrent_jobs=2)
    ids = account_ids(client)
    with pytest.raises(InvalidMetricError):
        list(client.insights_many(ids, {"fields": "spend,bogus"}, async_run=False))


@pytest.mark.parametrize(
    "sb",
    [
        {
            "app_secret": "s3cret",
            "require_appsecret_proof": True,
            "valid_tokens": {"user-token", "page-token"},
        }
    ],
    indirect=True,
)
def test_appsecret_proof_and_per_call_token(sb: RunningSandbox):
    client = GraphClient("user-token", base_url=sb.base_url, app_secret="s3cret")
    assert client.get("me")["id"]
    assert client.get("me", token="page-token")["id"]
    with pytest.raises(TokenInvalidError):
        client.get("me", token="someone-else")
    wrong = GraphClient("user-token", base_url=sb.base_url, app_secret="other", max_retries=0)
    with pytest.raises(Exception, match="appsecret_proof"):
        wrong.get("me")
    assert isinstance(MetaSettingError("X", "bad"), SettingError)
    for entry in sb.sandbox.received:
        assert "access_token" not in entry["params"]  # the sandbox log keeps no tokens


@pytest.mark.parametrize(
    "sb", [{"token_permissions": {"pages-only": {"pages_read_engagement"}}}], indirect=True
)
def test_missing_permission_fails_fast(sb: RunningSandbox):
    client = make_client(sb)
    acct = account_ids(client)[0]
    with pytest.raises(MissingPermissionError, match="ads_read") as info:
        client.get(acct, token="pages-only")
    assert "What to do" in str(info.value) and client.metrics.retries == 0


def test_connection_failures_are_retried_then_raised():
    fake = FakeTime()
    client = GraphClient(
        "t",
        base_url="http://127.0.0.1:9",
        max_retries=2,
        sleep=fake.sleep,
        clock=fake.clock,
        connect_timeout=0.5,
    )
    with pytest.raises(TransientGraphError, match="connection failed"):
        client.get("me")
    assert client.metrics.retries == 2 and len(fake.slept) == 2


def test_from_env_validates_and_names_the_variable(sb: RunningSandbox):
    env = {
        "META_GRAPH_API_BASE_URL": sb.base_url,
        "META_GRAPH_API_VERSION": "v25.0",
        "META_ACCESS_TOKEN": "sandbox-token",
    }
    client = GraphClient.from_env(env)
    assert client.get("me")["id"]
    assert GraphClient.from_env({}).base_url == "https://graph.facebook.com"
    for name, bad in (
        ("META_GRAPH_API_BASE_URL", "graph.facebook.com"),
        ("META_GRAPH_API_BASE_URL", "https://graph.facebook.com/v25.0"),
        ("META_GRAPH_API_VERSION", "25"),
        ("META_ACCESS_TOKEN", "abc def"),
    ):
        with pytest.raises(MetaSettingError, match=name) as info:
            GraphClient.from_env({**env, name: bad})
        if name == "META_ACCESS_TOKEN":
            assert bad not in str(info.value)  # secrets are never echoed
    with pytest.raises(TokenInvalidError, match="META_ACCESS_TOKEN"):
        GraphClient.from_env({"META_GRAPH_API_BASE_URL": sb.base_url}).get("me")


def test_resource_builds_a_client(sb: RunningSandbox):
    from everreach_pipelines.resources.meta import MetaGraphResource

    resource = MetaGraphResource(base_url=sb.base_url, access_token="sandbox-token")
    client = resource.get_client()
    assert client is resource.get_client()
    assert [a["id"] for a in client.paginate("me/adaccounts")] == account_ids(make_client(sb))
    assert "sandbox-token" not in repr(client)


def test_resource_passes_polling_backoff_and_slowdown_to_the_client():
    from everreach_pipelines.resources.meta import MetaGraphResource

    defaults = MetaGraphResource().get_client()
    assert (defaults.poll_interval, defaults.backoff_base, defaults.throttle.slowdown_max) == (
        2.0,
        1.0,
        30.0,
    )
    client = MetaGraphResource(
        poll_interval=0.05, backoff_base=0.25, throttle_slowdown_max=3.0
    ).get_client()
    assert client.poll_interval == 0.05
    assert client.backoff_base == 0.25
    assert client.throttle.slowdown_max == 3.0


def test_relaxed_gc_is_reentrant_and_restores_thresholds():
    import gc

    from everreach.meta.client import relaxed_gc

    before = gc.get_threshold()
    with relaxed_gc():
        raised = gc.get_threshold()
        assert raised[0] >= 200_000 and raised[1:] == before[1:]
        with relaxed_gc():
            assert gc.get_threshold() == raised
        assert gc.get_threshold() == raised
    assert gc.get_threshold() == before
