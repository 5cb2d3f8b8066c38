"""The realistic profile: Meta-like timing and rate limits, the same answers as the default.

Rate-limit semantics follow Meta's "Rate Limiting" pages (Graph API overview and Marketing
API): usage per business use case and ad account in ``x-business-use-case-usage``
(``call_count``, ``total_cputime``, ``total_time`` in percent, ``estimated_time_to_regain_access``
in minutes), the ad-account score in ``x-ad-account-usage``, the app's in ``x-app-usage``;
80000 (ads_insights), 80004 (ads_management), 17/2446079 (ad-account score), 4 (app).
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from everreach.sandbox.core import Sandbox, SandboxConfig
from everreach.sandbox.profile import AsyncJobModel, BucBudget, LatencyModel, UsageLimits
from everreach.sandbox.testing import RunningSandbox, running_sandbox

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # the same fixed clock as conftest.py
TOKEN = {"access_token": "sandbox-token"}
ALL_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
FAST = 0.0005  # time scale for tests that only compare answers: 300 ms → 0.15 ms
NO_LATENCY = LatencyModel(floor_ms=0, median_ms=0, tail_probability=0, per_kb_ms=0)


def accounts(sb: RunningSandbox, http: requests.Session) -> list[str]:
    body = http.get(sb.url("me/adaccounts"), params=TOKEN).json()
    return [a["id"] for a in body["data"]]


def buc(resp: requests.Response) -> tuple[str, dict]:
    """The one (object id, entry) of an answer's x-business-use-case-usage header."""
    ((owner, entries),) = json.loads(resp.headers["x-business-use-case-usage"]).items()
    (entry,) = entries
    return owner, entry


def insights_params(since: str, until: str, level: str = "ad") -> dict:
    return {
        "level": level,
        "fields": "account_id,campaign_id,adset_id,ad_id,ad_name,spend,impressions,reach,"
        "clicks,ctr,cpm,actions,action_values",
        "time_increment": "1",
        "time_range": json.dumps({"since": since, "until": until}),
        "action_attribution_windows": json.dumps(["1d_click", "7d_click", "28d_click", "1d_view"]),
        "filtering": json.dumps(
            [{"field": "ad.effective_status", "operator": "IN", "value": ALL_STATUSES}]
        ),
    }


def wait_done(sb: RunningSandbox, http: requests.Session, run_id: str) -> list[dict]:
    """Poll a report run to its end (moving the timing clock instead of sleeping)."""
    statuses = []
    for _ in range(200):
        status = http.get(sb.url(run_id), params=TOKEN).json()
        statuses.append(status)
        if status["async_status"] == "Job Completed":
            return statuses
        sb.sandbox.advance(seconds=5)
    raise AssertionError(f"run {run_id} never completed: {statuses[-1]}")


# ----------------------------------------------------------------------------- same answers
def test_realistic_answers_are_byte_for_byte_the_default_ones(http: requests.Session):
    """Every answer body is identical; only timing, headers and throttling may differ."""
    bodies: dict[str, list[bytes]] = {}
    for profile in ("default", "realistic"):
        with running_sandbox(now=NOW, profile=profile, time_scale=FAST) as sb:
            acct, second = accounts(sb, http)[:2]
            calls: list[tuple[str, str, dict]] = [
                ("GET", "me/adaccounts", {"fields": "name,currency,timezone_name"}),
                ("GET", acct, {"fields": "name,currency,timezone_offset_hours_utc"}),
                ("GET", f"{acct}/campaigns", {"fields": "id,name,status,objective", "limit": 1}),
                ("GET", f"{second}/adsets", {"fields": "id,name,effective_status"}),
                (
                    "GET",
                    f"{acct}/ads",
                    {"fields": "id,name,adset_id", "effective_status": json.dumps(ALL_STATUSES)},
                ),
                ("GET", f"{acct}/insights", insights_params("2026-02-01", "2026-03-10")),
                (
                    "GET",
                    f"{second}/insights",
                    {**insights_params("2026-01-20", "2026-02-10", "campaign"), "limit": 7},
                ),
                ("GET", f"{acct}/insights", {"date_preset": "last_7d"}),
                ("GET", "999999", {}),  # errors are answers too
                ("GET", f"{acct}/insights", {"fields": "spend,bogus"}),
            ]
            out = []
            for method, path, params in calls:
                resp = http.request(method, sb.url(path), params={**TOKEN, **params})
                out.append(_strip_trace(resp.content, sb.base_url))
                nxt = resp.json().get("paging", {}).get("next")
                if nxt:  # the second page too
                    out.append(_strip_trace(http.get(nxt).content, sb.base_url))
            # an async run's rows (its status answer carries timing, so only the rows count)
            post = http.post(
                sb.url(f"{acct}/insights"),
                data={**TOKEN, **insights_params("2026-01-01", "2026-03-14")},
            )
            out.append(post.content)
            run_id = post.json()["report_run_id"]
            final = wait_done(sb, http, run_id)[-1]
            assert final["date_start"] == "2026-01-01" and final["date_stop"] == "2026-03-14"
            rows = http.get(sb.url(f"{run_id}/insights"), params={**TOKEN, "limit": 500})
            out.append(rows.content.replace(sb.base_url.encode(), b"http://sandbox"))
            bodies[profile] = out
    assert len(bodies["default"]) == len(bodies["realistic"]) > 12
    for default, realistic in zip(bodies["default"], bodies["realistic"], strict=True):
        assert default == realistic


def _strip_trace(body: bytes, base_url: str) -> bytes:
    # Error bodies carry a fresh random fbtrace_id on every answer, in both profiles, and
    # paging links name the server's port; everything else must be the same bytes.
    data = json.loads(body)
    if "error" in data:
        data["error"].pop("fbtrace_id")
        return json.dumps(data).encode()
    return body.replace(base_url.encode(), b"http://sandbox")


# ----------------------------------------------------------------------------- latency
def test_latency_distribution_is_meta_like_and_seeded():
    model = LatencyModel()
    rng = random.Random(11)
    draws = sorted(model.draw(rng) for _ in range(20_000))
    q = statistics.quantiles(draws, n=100)
    assert draws[0] >= 150.0  # never faster than the floor
    assert 280 <= q[49] <= 380  # median around a third of a second
    assert 420 <= q[89] <= 650
    assert q[98] >= 750  # a tail of slow calls…
    assert max(draws) > 1_500  # …and a few very slow ones
    assert sum(d > 800 for d in draws) / len(draws) < 0.05
    # seeded: two sandboxes with the same seed draw the same latencies
    a = Sandbox(SandboxConfig(profile="realistic", seed=5))
    b = Sandbox(SandboxConfig(profile="realistic", seed=5))
    c = Sandbox(SandboxConfig(profile="realistic", seed=6))
    seq = [a.draw_latency_ms() for _ in range(50)]
    assert seq == [b.draw_latency_ms() for _ in range(50)]
    assert seq != [c.draw_latency_ms() for _ in range(50)]


def test_calls_take_the_scaled_latency(http: requests.Session):
    scale = 0.05  # 150 ms floor → 7.5 ms per call at least
    with running_sandbox(now=NOW, profile="realistic", time_scale=scale) as sb:
        acct = accounts(sb, http)[0]
        http.get(sb.url(acct), params=TOKEN)  # warm the connection
        durations = []
        for _ in range(20):
            start = time.perf_counter()
            assert http.get(sb.url(acct), params=TOKEN).status_code == 200
            durations.append(time.perf_counter() - start)
    assert min(durations) >= 0.150 * scale
    assert statistics.median(durations) >= 0.25 * scale


# ----------------------------------------------------------------------------- async runs
def test_async_run_takes_its_time_with_honest_percent(http: requests.Session):
    jobs = AsyncJobModel(min_seconds=10, max_seconds=120, jitter=0.0)
    # Real time (scale 1) without latency: the test moves the clock itself, in steps of
    # seconds, so the milliseconds its own calls take do not blur the percentages.
    with running_sandbox(
        now=NOW, profile="realistic", async_jobs=jobs, latency=NO_LATENCY, time_scale=1.0
    ) as sb:
        acct = accounts(sb, http)[0]
        small = http.post(
            sb.url(f"{acct}/insights"),
            data={**TOKEN, **insights_params("2026-03-01", "2026-03-02", "campaign")},
        ).json()["report_run_id"]
        big = http.post(
            sb.url(f"{acct}/insights"),
            data={**TOKEN, **insights_params("2026-01-15", "2026-03-14")},
        ).json()["report_run_id"]
        state = sb.sandbox.domains["ads"]
        d_small, d_big = state.jobs[small]["duration"], state.jobs[big]["duration"]
        assert 10 <= d_small < d_big <= 120  # more rows, longer run
        first = http.get(sb.url(big), params=TOKEN).json()
        assert first["async_status"] == "Job Not Started"
        assert first["async_percent_completion"] == 0
        seen = []
        step = d_big / 8
        for _ in range(7):
            sb.sandbox.advance(seconds=step)
            status = http.get(sb.url(big), params=TOKEN).json()
            seen.append(status["async_percent_completion"])
            assert status["async_status"] in ("Job Started", "Job Running")
            assert status["is_running"] is True
            rows = http.get(sb.url(f"{big}/insights"), params=TOKEN).json()
            assert rows["error"]["code"] == 2601  # no rows before the run completes
        # percent follows elapsed time: 1/8, 2/8, … of the run
        assert seen == sorted(seen)
        for i, pct in enumerate(seen, start=1):
            assert abs(pct - 100 * i / 8) <= 2
        sb.sandbox.advance(seconds=step + 0.5)  # past the end, within the finishing tail
        status = http.get(sb.url(big), params=TOKEN).json()
        assert status["async_percent_completion"] == 100
        assert status["async_status"] == "Job Running"  # 100 % is not done (as at Meta)
        sb.sandbox.advance(seconds=jobs.finishing_seconds)
        done = http.get(sb.url(big), params=TOKEN).json()
        assert done["async_status"] == "Job Completed" and done["is_running"] is False
        assert isinstance(done["date_start"], str) and isinstance(done["date_stop"], str)
        assert done["time_completed"] - done["time_ref"] == round(d_big)


def test_async_run_duration_runs_on_the_scaled_clock(http: requests.Session):
    jobs = AsyncJobModel(min_seconds=10, max_seconds=10, jitter=0.0, finishing_seconds=0)
    scale = 0.01  # a 10 s run takes 0.1 s
    with running_sandbox(now=NOW, profile="realistic", async_jobs=jobs, time_scale=scale) as sb:
        acct = accounts(sb, http)[0]
        start = time.monotonic()
        run_id = http.post(sb.url(f"{acct}/insights"), data={**TOKEN, "level": "account"}).json()[
            "report_run_id"
        ]
        while http.get(sb.url(run_id), params=TOKEN).json()["async_status"] != "Job Completed":
            time.sleep(0.01)
            assert time.monotonic() - start < 5
        elapsed = time.monotonic() - start
    assert 0.1 <= elapsed < 1.0


# ----------------------------------------------------------------------------- usage
def tight_limits(**overrides) -> UsageLimits:
    """Budgets small enough to reach in a test (same shapes as Meta's)."""
    base = {
        "ads_insights": BucBudget(40, 0, cputime_seconds=5.0, total_time_seconds=300.0),
        "ads_management": BucBudget(10, 0, cputime_seconds=100.0, total_time_seconds=100.0),
        "window_seconds": 3_600.0,
    }
    return UsageLimits(**{**base, **overrides})


def test_usage_rises_per_ad_account_with_calls_and_job_size(http: requests.Session):
    # Scale 0.01: the rolling hour lasts 36 s, far longer than this test.
    with running_sandbox(
        now=NOW, profile="realistic", time_scale=0.01, usage_limits=tight_limits()
    ) as sb:
        a, b = accounts(sb, http)[:2]
        counts = []
        for _ in range(5):
            resp = http.get(sb.url(f"{a}/campaigns"), params=TOKEN)
            owner, entry = buc(resp)
            assert owner == a.removeprefix("act_") and entry["type"] == "ads_management"
            counts.append(entry["call_count"])
        assert counts == [10, 20, 30, 40, 50]  # 1 of 10 calls each
        assert entry["total_time"] > 0 and entry["total_cputime"] >= 0
        # another account has its own budget
        owner, entry = buc(http.get(sb.url(f"{b}/campaigns"), params=TOKEN))
        assert owner == b.removeprefix("act_") and entry["call_count"] == 10
        # an async run charges its duration to total_time at once: a bigger run, more
        small = http.post(
            sb.url(f"{a}/insights"),
            data={**TOKEN, **insights_params("2026-03-01", "2026-03-01", "account")},
        )
        _, after_small = buc(small)
        big = http.post(
            sb.url(f"{b}/insights"),
            data={**TOKEN, **insights_params("2026-01-15", "2026-03-14")},
        )
        _, after_big = buc(big)
        assert after_small["type"] == after_big["type"] == "ads_insights"
        state = sb.sandbox.domains["ads"]
        runs = {j["account"].id: j["duration"] for j in state.jobs.values()}
        assert runs[b.removeprefix("act_")] > runs[a.removeprefix("act_")]
        assert after_big["total_time"] > after_small["total_time"] > 0
        assert after_big["total_cputime"] > after_small["total_cputime"]
        throttle = json.loads(big.headers["x-fb-ads-insights-throttle"])
        assert throttle["acc_id_util_pct"] == max(
            after_big[k] for k in ("call_count", "total_cputime", "total_time")
        )
        usage = requests.get(f"{sb.base_url}/_sandbox/usage").json()
        assert usage["accounts"][a.removeprefix("act_")]["ads_management"]["peak_pct"] == 50


def test_over_budget_answers_meta_throttle_errors_then_decays(http: requests.Session):
    with running_sandbox(
        now=NOW,
        profile="realistic",
        time_scale=1.0,
        latency=NO_LATENCY,
        usage_limits=tight_limits(),
    ) as sb:
        a, b = accounts(sb, http)[:2]
        answers = [http.get(sb.url(f"{a}/adsets"), params=TOKEN) for _ in range(12)]
        assert [r.status_code for r in answers] == [200] * 10 + [400, 400]
        err = answers[-1].json()["error"]
        assert err["code"] == 80004 and err["error_subcode"] == 2446079
        assert err["type"] == "OAuthException" and err["is_transient"] is True
        assert err["message"].startswith(
            "(#80004) There have been too many calls to this ad-account"
        )
        _, entry = buc(answers[-1])
        assert entry["call_count"] >= 100
        # the first call ages out of the rolling hour an hour after it was made
        assert entry["estimated_time_to_regain_access"] == 60
        # insights calls of the same account use another budget; other accounts are free
        assert http.get(sb.url(f"{a}/insights"), params=TOKEN).status_code == 200
        assert http.get(sb.url(f"{b}/adsets"), params=TOKEN).status_code == 200
        # insights over budget: 80000
        for _ in range(45):
            last = http.get(sb.url(f"{a}/insights"), params=TOKEN)
        assert last.json()["error"]["code"] == 80000
        assert "too many calls from this ad-account" in last.json()["error"]["message"]
        # usage decays: half an hour later the first calls are still counted…
        sb.sandbox.advance(minutes=30)
        assert http.get(sb.url(f"{a}/adsets"), params=TOKEN).status_code == 400
        # …an hour after them they are forgotten and calls pass again
        sb.sandbox.advance(minutes=31)
        resp = http.get(sb.url(f"{a}/adsets"), params=TOKEN)
        assert resp.status_code == 200
        assert buc(resp)[1]["call_count"] == 10
        usage = requests.get(f"{sb.base_url}/_sandbox/usage").json()
        assert usage["throttled"]["80004"] == 3 and usage["throttled"]["80000"] >= 1


def test_regain_time_counts_only_what_must_age_out(http: requests.Session):
    limits = tight_limits(
        ads_management=BucBudget(3, 0, cputime_seconds=100.0, total_time_seconds=100.0)
    )
    # Real time (scale 1) without latency: the test's own milliseconds do not move the
    # window, so the regain time is exact.
    with running_sandbox(
        now=NOW, profile="realistic", time_scale=1.0, latency=NO_LATENCY, usage_limits=limits
    ) as sb:
        a = accounts(sb, http)[0]
        http.get(sb.url(f"{a}/ads"), params=TOKEN)
        sb.sandbox.advance(minutes=50)
        http.get(sb.url(f"{a}/ads"), params=TOKEN)
        http.get(sb.url(f"{a}/ads"), params=TOKEN)
        refused = http.get(sb.url(f"{a}/ads"), params=TOKEN)
        assert refused.json()["error"]["code"] == 80004
        # the first call leaves the window in 10 minutes, and that is enough to get back
        # under budget
        assert buc(refused)[1]["estimated_time_to_regain_access"] == 10

        sb.sandbox.advance(minutes=10)
        assert http.get(sb.url(f"{a}/ads"), params=TOKEN).status_code == 200


def test_ad_account_score_blocks_with_error_17(http: requests.Session):
    limits = tight_limits(score_max=6, score_window_seconds=300, score_block_seconds=60)
    scale = 0.01  # five minutes of score decay take 3 s: longer than this test
    with running_sandbox(
        now=NOW, profile="realistic", time_scale=scale, latency=NO_LATENCY, usage_limits=limits
    ) as sb:
        a = accounts(sb, http)[0]
        params = {**TOKEN, **insights_params("2026-03-01", "2026-03-01", "account")}
        # a write (the insights POST) costs 3 points, a read 1
        assert http.post(sb.url(f"{a}/insights"), data=params).status_code == 200
        usage = json.loads(http.get(sb.url(a), params=TOKEN).headers["x-ad-account-usage"])
        assert usage["acc_id_util_pct"] == int(100 * 4 / 6)
        http.get(sb.url(a), params=TOKEN)
        http.get(sb.url(a), params=TOKEN)
        blocked = http.get(sb.url(a), params=TOKEN)
        err = blocked.json()["error"]
        assert err["code"] == 17 and err["error_subcode"] == 2446079
        assert err["message"] == "(#17) User request limit reached"
        usage = json.loads(blocked.headers["x-ad-account-usage"])
        assert usage["acc_id_util_pct"] >= 100
        # real seconds: the 60 s block at this time scale
        assert usage["reset_time_duration"] == pytest.approx(60 * scale)
        sb.sandbox.advance(seconds=61)
        assert http.get(sb.url(a), params=TOKEN).status_code == 200


def test_app_budget_answers_error_4(http: requests.Session):
    limits = tight_limits(app_calls=3)
    with running_sandbox(
        now=NOW, profile="realistic", time_scale=0.01, latency=NO_LATENCY, usage_limits=limits
    ) as sb:
        ids = accounts(sb, http)  # one call
        http.get(sb.url(ids[0]), params=TOKEN)
        app = json.loads(http.get(sb.url(ids[1]), params=TOKEN).headers["x-app-usage"])
        assert app["call_count"] == 100
        err = http.get(sb.url(ids[2]), params=TOKEN).json()["error"]
        assert err["code"] == 4 and err["message"] == "(#4) Application request limit reached"


def test_graph_client_reads_the_same_rows_on_both_profiles():
    """Our own client end to end: same rows, and it sees the usage headers."""
    from everreach.meta import GraphClient

    params = insights_params("2026-02-01", "2026-03-10")
    rows = {}
    for profile in ("default", "realistic"):
        with running_sandbox(now=NOW, profile=profile, time_scale=0.0002) as sb:
            client = GraphClient(
                "sandbox-token", base_url=sb.base_url, poll_interval=0.005, poll_interval_max=0.02
            )
            acct = client.get("me/adaccounts")["data"][0]["id"]
            rows[profile] = list(client.insights(acct, dict(params)))
            calls = sb.sandbox.stats["calls"]
    assert rows["default"] == rows["realistic"] and rows["default"]
    assert calls >= 4  # a POST, status polls and pages


# ----------------------------------------------------------------------------- knobs
def test_bad_profile_knobs_fail_naming_the_setting():
    with pytest.raises(ValueError, match="SandboxConfig.profile"):
        SandboxConfig(profile="fast")
    with pytest.raises(ValueError, match="SandboxConfig.time_scale"):
        SandboxConfig(profile="realistic", time_scale=0)
    with pytest.raises(ValueError, match="SandboxConfig.time_scale"):
        SandboxConfig(time_scale=math.nan)


def test_cli_profile_options():
    from click.testing import CliRunner

    from everreach.sandbox.cli import sandbox

    runner = CliRunner()
    bad = runner.invoke(sandbox, ["--profile", "realistic", "--job-seconds", "30:10"])
    assert bad.exit_code == 2 and "--job-seconds" in bad.output
    bad = runner.invoke(sandbox, ["--time-scale", "0"])
    assert bad.exit_code == 2 and "--time-scale" in bad.output
    bad = runner.invoke(sandbox, ["--profile", "slow"])
    assert bad.exit_code == 2 and "--profile" in bad.output


def test_advance_moves_the_timing_clock():
    sandbox = Sandbox(SandboxConfig(profile="realistic", time_scale=0.5))
    before = sandbox.clock()
    sandbox.advance(timedelta(minutes=2))
    assert sandbox.clock() - before >= 120


def test_organic_usage_is_metered_per_page_and_instagram_account(http: requests.Session):
    with running_sandbox(now=NOW, profile="realistic", time_scale=FAST) as sb:
        listed = requests.get(f"{sb.base_url}/_sandbox/organic/accounts").json()
        page = listed["facebook_pages"][0]["id"]
        ig = listed["instagram_accounts"][0]["id"]
        owner, entry = buc(http.get(sb.url(page), params={**TOKEN, "fields": "name"}))
        assert (owner, entry["type"]) == (page, "pages")
        owner, entry = buc(http.get(sb.url(ig), params={**TOKEN, "fields": "username"}))
        assert (owner, entry["type"]) == (ig, "instagram")
        media = http.get(sb.url(f"{ig}/media"), params=TOKEN).json()["data"][0]["id"]
        owner, entry = buc(http.get(sb.url(media), params=TOKEN))
        assert (owner, entry["type"]) == (ig, "instagram")
        assert "x-ad-account-usage" not in http.get(sb.url(ig), params=TOKEN).headers
