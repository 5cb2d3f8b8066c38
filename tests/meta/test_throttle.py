"""Parsing Meta's usage headers (examples shaped as in Meta's rate-limiting docs)."""

from __future__ import annotations

import json

from everreach.meta.client import ClientMetrics
from everreach.meta.throttle import Throttle, parse_usage, split_usage


def test_parse_usage_takes_the_highest_percent_and_the_wait():
    headers = {
        "x-app-usage": json.dumps({"call_count": 28, "total_time": 25, "total_cputime": 25}),
        "x-business-use-case-usage": json.dumps(
            {
                "112233": [
                    {
                        "type": "ads_insights",
                        "call_count": 91,
                        "total_cputime": 10,
                        "total_time": 12,
                        "estimated_time_to_regain_access": 0,
                    }
                ]
            }
        ),
        "x-ad-account-usage": json.dumps({"acc_id_util_pct": 9.67, "reset_time_duration": 0}),
        "x-fb-ads-insights-throttle": json.dumps({"app_id_util_pct": 4, "acc_id_util_pct": 0}),
    }
    assert parse_usage(headers) == (91.0, 0.0)
    headers["x-business-use-case-usage"] = json.dumps(
        {
            "112233": [
                {
                    "type": "ads_management",
                    "call_count": 100,
                    "total_cputime": 100,
                    "total_time": 100,
                    "estimated_time_to_regain_access": 5,
                }
            ]
        }
    )
    assert parse_usage(headers) == (100.0, 300.0)
    assert parse_usage(
        {"x-ad-account-usage": json.dumps({"acc_id_util_pct": 100, "reset_time_duration": 42})}
    ) == (100.0, 42.0)


def test_malformed_or_missing_headers_are_ignored():
    assert parse_usage({}) == (0.0, 0.0)
    assert parse_usage({"x-app-usage": "not json", "x-business-use-case-usage": "[]"}) == (0.0, 0.0)


def test_throttle_ramps_and_waits():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    metrics = ClientMetrics()
    throttle = Throttle(
        threshold=75, slowdown_max=10, sleep=sleep, metrics=metrics, clock=lambda: now[0]
    )
    throttle.observe({"x-app-usage": json.dumps({"call_count": 50})})
    assert throttle.wait_turn() == 0 and not slept
    throttle.observe({"x-app-usage": json.dumps({"call_count": 80})})
    small = throttle.wait_turn()
    throttle.observe({"x-app-usage": json.dumps({"call_count": 99})})
    large = throttle.wait_turn()
    assert 0 < small < large <= 10
    throttle.observe(
        {
            "x-business-use-case-usage": json.dumps(
                {"1": [{"call_count": 100, "estimated_time_to_regain_access": 2}]}
            )
        }
    )
    assert abs(throttle.wait_turn() - 120) < 1e-6
    assert metrics.throttle_waits == 3
    assert abs(metrics.throttle_wait_seconds - sum(slept)) < 1e-6


def _buc(pct: float, regain_minutes: float = 0) -> dict[str, str]:
    """An answer's headers: the account's own usage high, the app's low."""
    return {
        "x-app-usage": json.dumps({"call_count": 5, "total_time": 5, "total_cputime": 5}),
        "x-business-use-case-usage": json.dumps(
            {
                "111": [
                    {
                        "type": "ads_insights",
                        "call_count": pct,
                        "total_cputime": 1,
                        "total_time": 1,
                        "estimated_time_to_regain_access": regain_minutes,
                    }
                ]
            }
        ),
    }


def test_an_accounts_usage_pauses_only_that_account():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(threshold=75, slowdown_max=10, sleep=sleep, clock=lambda: now[0])
    throttle.observe(_buc(100, regain_minutes=2), scope="act_1")
    assert throttle.pending("act_1") and not throttle.pending("act_2")
    assert not throttle.pending()  # the app as a whole is not held
    assert throttle.wait_turn("act_2") == 0
    assert abs(throttle.wait_turn("act_1") - 120) < 1e-6
    throttle.observe(_buc(90), scope="act_1")
    assert 0 < throttle.wait_turn("act_1") <= 10 and throttle.wait_turn("act_2") == 0
    throttle.record_throttled("act_1")
    usage = throttle.usage()
    assert usage["act_1"].peak_pct == 100 and usage["act_1"].last_pct == 90
    assert usage["act_1"].throttled == 1 and usage["act_1"].waits == 2
    assert "act_2" not in usage  # it only waited on nobody


def test_the_apps_usage_pauses_every_account():
    now = [0.0]
    throttle = Throttle(threshold=75, slowdown_max=10, sleep=lambda s: None, clock=lambda: now[0])
    throttle.observe({"x-app-usage": json.dumps({"call_count": 99})}, scope="act_1")
    assert throttle.pending("act_1") and throttle.pending("act_2") and throttle.pending()
    # unscoped answers (object unknown) count against everyone, as before
    throttle2 = Throttle(threshold=75, sleep=lambda s: None, clock=lambda: now[0])
    throttle2.observe(_buc(100, regain_minutes=1))
    assert throttle2.pending("act_9") and throttle2.pending()


def test_split_usage_separates_the_app_from_the_object():
    usage = split_usage(
        {
            **_buc(60, regain_minutes=3),
            "x-fb-ads-insights-throttle": json.dumps(
                {"app_id_util_pct": 40, "acc_id_util_pct": 70}
            ),
            "x-ad-account-usage": json.dumps({"acc_id_util_pct": 100, "reset_time_duration": 500}),
        }
    )
    assert (usage.app_pct, usage.app_wait) == (40.0, 0.0)
    assert (usage.object_pct, usage.object_wait) == (100.0, 500.0)
