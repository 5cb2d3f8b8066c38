"""Meta's rate limits as the realistic profile meters them: per ad account, per app.

Three meters, each a rolling window that forgets a call once it is older than the window
(so usage decays as time passes, like Meta's):

* **business use case** (``x-business-use-case-usage``), per ad account and type
  (``ads_insights`` for insights and report runs, ``ads_management`` for object reads):
  ``call_count``, ``total_cputime`` and ``total_time`` as percent of the budget over the
  last hour. A call that arrives while any of the three is at 100 % or more answers
  80000 (insights) or 80004 (management) with ``estimated_time_to_regain_access``: the
  minutes until the window has forgotten enough to be under 100 % again.
* **ad-account score** (``x-ad-account-usage``): reads cost 1 point, writes 3; at the
  maximum the account is blocked for a fixed time (error 17, ``reset_time_duration``).
* **app** (``x-app-usage``): every call of every account; over budget → error 4.

An async report run charges its whole duration to ``total_time`` and its rows to
``total_cputime`` when it starts, so usage rises with each job's size, not only with the
number of calls. Throttled calls are not charged: the regain time is a promise that
holds if the client waits it out.

All times are sandbox seconds (scaled by ``time_scale`` from real seconds); the headers
report waiting times in real minutes/seconds so a client that honours them literally
waits the right real time (fractional when the time scale is below 1).
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import orjson

from everreach.sandbox.profile import BucBudget, UsageLimits

RATE_LIMIT_DOCS = "https://developers.facebook.com/docs/graph-api/overview/rate-limiting"

# Meta's throttle errors: code → (message, subcode). All OAuthException, HTTP 400, transient.
THROTTLE_ERRORS: dict[int, tuple[str, int | None]] = {
    4: ("(#4) Application request limit reached", None),
    17: ("(#17) User request limit reached", 2446079),
    80000: (
        "(#80000) There have been too many calls from this ad-account. Wait a bit and try "
        f"again. For more info, please refer to {RATE_LIMIT_DOCS}.",
        2446079,
    ),
    80001: (
        "(#80001) There have been too many calls to this Page account. Wait a bit and try "
        f"again. For more info, please refer to {RATE_LIMIT_DOCS}.",
        2446079,
    ),
    80002: (
        "(#80002) There have been too many calls to this Instagram account. Wait a bit and "
        f"try again. For more info, please refer to {RATE_LIMIT_DOCS}.",
        2446079,
    ),
    80004: (
        "(#80004) There have been too many calls to this ad-account. Wait a bit and try "
        f"again. For more info, please refer to {RATE_LIMIT_DOCS}.",
        2446079,
    ),
}
BUC_CODES = {"ads_insights": 80000, "ads_management": 80004, "pages": 80001, "instagram": 80002}


@dataclass(frozen=True)
class UsageScope:
    """Whose budget a call uses: the business object (an ad account id without ``act_``,
    or the business for non-ads calls), the use case, and the account's active ads."""

    object_id: str
    buc_type: str
    active_ads: int = 0
    ad_account: bool = True  # whether the ad-account score applies


@dataclass(frozen=True)
class Throttle:
    """A call refused for being over budget: Meta's code and how long until it passes."""

    code: int
    regain_seconds: float


class _Window:
    """Rolling sums of (calls, cpu seconds, wall seconds) over the last ``length`` seconds."""

    def __init__(self, length: float) -> None:
        self.length = length
        self.events: deque[tuple[float, float, float, float]] = deque()
        self.calls = 0.0
        self.cpu = 0.0
        self.time = 0.0

    def expire(self, now: float) -> None:
        horizon = now - self.length
        while self.events and self.events[0][0] <= horizon:
            _, calls, cpu, wall = self.events.popleft()
            self.calls -= calls
            self.cpu -= cpu
            self.time -= wall
        if not self.events:  # no float residue once everything is forgotten
            self.calls = self.cpu = self.time = 0.0

    def add(self, now: float, calls: float, cpu: float, wall: float) -> None:
        self.events.append((now, calls, cpu, wall))
        self.calls += calls
        self.cpu += cpu
        self.time += wall

    def percents(self, calls_budget: float, cpu_budget: float, time_budget: float) -> tuple:
        return (
            100.0 * self.calls / max(calls_budget, 1e-9),
            100.0 * self.cpu / max(cpu_budget, 1e-9),
            100.0 * self.time / max(time_budget, 1e-9),
        )

    def regain(self, now: float, calls_budget: float, cpu_budget: float, time_budget: float):
        """Seconds until every sum is below its budget, if no more calls come."""
        calls, cpu, wall = self.calls, self.cpu, self.time
        if calls < calls_budget and cpu < cpu_budget and wall < time_budget:
            return 0.0
        for stamp, c, u, w in self.events:
            calls, cpu, wall = calls - c, cpu - u, wall - w
            if calls < calls_budget and cpu < cpu_budget and wall < time_budget:
                return max(0.0, stamp + self.length - now)
        return self.length


class _Account:
    """The ad-account score: points over a short window, and a block once at the maximum."""

    def __init__(self, length: float) -> None:
        self.window = _Window(length)
        self.blocked_until = 0.0


class UsageMeter:
    """Every meter of one sandbox; thread-safe. ``now`` is always sandbox seconds."""

    def __init__(self, limits: UsageLimits, business_id: str) -> None:
        self.limits = limits
        self.business_id = business_id
        self._lock = threading.Lock()
        self._buc: dict[tuple[str, str], _Window] = {}
        self._accounts: dict[str, _Account] = {}
        self._app = _Window(limits.window_seconds)
        #: highest percent seen per (object id, use case), and per account score
        self.peaks: dict[tuple[str, str], int] = {}
        self.score_peaks: dict[str, int] = {}
        self.app_peak = 0
        #: throttled calls by error code
        self.throttled: Counter[int] = Counter()

    # ------------------------------------------------------------------ meters
    def _bucket(self, scope: UsageScope) -> _Window:
        key = (scope.object_id, scope.buc_type)
        window = self._buc.get(key)
        if window is None:
            length = self.limits.budget(scope.buc_type).window_seconds
            window = self._buc[key] = _Window(length or self.limits.window_seconds)
        return window

    def _account(self, scope: UsageScope) -> _Account:
        acct = self._accounts.get(scope.object_id)
        if acct is None:
            acct = self._accounts[scope.object_id] = _Account(self.limits.score_window_seconds)
        return acct

    def _budgets(self, scope: UsageScope) -> tuple[float, float, float]:
        budget: BucBudget = self.limits.budget(scope.buc_type)
        return (
            float(budget.calls(scope.active_ads)),
            budget.cputime_seconds,
            budget.total_time_seconds,
        )

    def _app_budgets(self) -> tuple[float, float, float]:
        lim = self.limits
        return float(lim.app_calls), lim.app_cputime_seconds, lim.app_total_time_seconds

    # ------------------------------------------------------------------ admission
    def admit(self, scope: UsageScope | None, now: float) -> Throttle | None:
        """A :class:`Throttle` when the call must be refused, else None."""
        with self._lock:
            self._app.expire(now)
            app_regain = self._app.regain(now, *self._app_budgets())
            if app_regain > 0:
                return self._refuse(4, app_regain)
            if scope is None:
                return None
            if scope.ad_account:
                acct = self._account(scope)
                if acct.blocked_until > now:
                    return self._refuse(17, acct.blocked_until - now)
                acct.window.expire(now)
                if acct.window.calls >= self.limits.score_max:
                    # At the maximum score the account is blocked, then starts afresh.
                    acct.blocked_until = now + self.limits.score_block_seconds
                    acct.window = _Window(self.limits.score_window_seconds)
                    return self._refuse(17, self.limits.score_block_seconds)
            bucket = self._bucket(scope)
            bucket.expire(now)
            regain = bucket.regain(now, *self._budgets(scope))
            if regain > 0:
                return self._refuse(BUC_CODES.get(scope.buc_type, 80001), regain)
        return None

    def _refuse(self, code: int, seconds: float) -> Throttle:
        self.throttled[code] += 1
        return Throttle(code, seconds)

    def record(
        self,
        scope: UsageScope | None,
        now: float,
        *,
        points: float,
        cpu_seconds: float,
        time_seconds: float,
    ) -> None:
        """Charge one admitted call (or a job start) to its meters."""
        with self._lock:
            self._app.add(now, 1.0, cpu_seconds, time_seconds)
            if scope is None:
                return
            self._bucket(scope).add(now, 1.0, cpu_seconds, time_seconds)
            if scope.ad_account:
                self._account(scope).window.add(now, points, 0.0, 0.0)

    def charge(self, scope: UsageScope, now: float, *, cpu_seconds: float, time_seconds: float):
        """Add work that is not a call (an async run's duration and rows) to the meters."""
        with self._lock:
            self._app.add(now, 0.0, cpu_seconds, time_seconds)
            self._bucket(scope).add(now, 0.0, cpu_seconds, time_seconds)

    # ------------------------------------------------------------------ headers
    def headers(
        self, scope: UsageScope | None, now: float, time_scale: float, throttle: Throttle | None
    ) -> dict[str, str]:
        """Meta's usage headers for a call on ``scope`` (after the call was charged)."""
        with self._lock:
            self._app.expire(now)
            app = [int(p) for p in self._app.percents(*self._app_budgets())]
            self.app_peak = max(self.app_peak, *app)
            headers = {
                "x-app-usage": _dumps(
                    {"call_count": app[0], "total_cputime": app[1], "total_time": app[2]}
                )
            }
            owner = scope.object_id if scope is not None else self.business_id
            buc_type = scope.buc_type if scope is not None else "pages"
            if scope is not None:
                bucket = self._bucket(scope)
                bucket.expire(now)
                budgets = self._budgets(scope)
                pcts = [int(p) for p in bucket.percents(*budgets)]
                regain = bucket.regain(now, *budgets)
                key = (scope.object_id, scope.buc_type)
                self.peaks[key] = max(self.peaks.get(key, 0), *pcts)
            else:
                pcts, regain = [0, 0, 0], 0.0
            if throttle is not None and throttle.code in BUC_CODES.values():
                regain = max(regain, throttle.regain_seconds)
            tier = self.limits.access_tier
            headers["x-business-use-case-usage"] = _dumps(
                {
                    owner: [
                        {
                            "type": buc_type,
                            "call_count": pcts[0],
                            "total_cputime": pcts[1],
                            "total_time": pcts[2],
                            "estimated_time_to_regain_access": _minutes(regain, time_scale),
                            "ads_api_access_tier": tier,
                        }
                    ]
                }
            )
            if scope is not None and scope.ad_account:
                acct = self._account(scope)
                acct.window.expire(now)
                score = int(100.0 * acct.window.calls / max(self.limits.score_max, 1e-9))
                blocked = max(0.0, acct.blocked_until - now)
                if blocked:
                    score = max(score, 100)
                self.score_peaks[scope.object_id] = max(
                    self.score_peaks.get(scope.object_id, 0), score
                )
                headers["x-ad-account-usage"] = _dumps(
                    {
                        "acc_id_util_pct": score,
                        "reset_time_duration": _seconds(blocked, time_scale),
                        "ads_api_access_tier": tier,
                    }
                )
                if scope.buc_type == "ads_insights":
                    headers["x-fb-ads-insights-throttle"] = _dumps(
                        {
                            "app_id_util_pct": max(app),
                            "acc_id_util_pct": max(pcts),
                            "ads_api_access_tier": tier,
                        }
                    )
        return headers

    def report(self, now: float) -> dict[str, Any]:
        """Current and peak usage per account and use case (for ``/_sandbox/usage``)."""
        with self._lock:
            accounts: dict[str, dict[str, Any]] = {}
            for (owner, buc_type), window in self._buc.items():
                window.expire(now)
                budget = self.limits.budget(buc_type)
                calls = window.calls
                entry = accounts.setdefault(owner, {})
                entry[buc_type] = {
                    "calls_in_window": int(calls),
                    "total_cputime_seconds": round(window.cpu, 3),
                    "total_time_seconds": round(window.time, 3),
                    "time_pct": int(100.0 * window.time / max(budget.total_time_seconds, 1e-9)),
                    "cputime_pct": int(100.0 * window.cpu / max(budget.cputime_seconds, 1e-9)),
                    "peak_pct": self.peaks.get((owner, buc_type), 0),
                }
            for owner, peak in self.score_peaks.items():
                accounts.setdefault(owner, {})["score_peak_pct"] = peak
            return {
                "accounts": accounts,
                "app_peak_pct": self.app_peak,
                "throttled": {str(code): n for code, n in sorted(self.throttled.items())},
            }


def _minutes(seconds: float, time_scale: float) -> int | float:
    """Meta's whole minutes to wait, in real minutes (fractional when time is scaled)."""
    if seconds <= 0:
        return 0
    minutes = math.ceil(seconds / 60.0) * time_scale
    return int(minutes) if float(minutes).is_integer() else round(minutes, 4)


def _seconds(seconds: float, time_scale: float) -> int | float:
    """Whole seconds to wait, in real seconds (fractional when time is scaled)."""
    if seconds <= 0:
        return 0
    value = math.ceil(seconds) * time_scale
    return int(value) if float(value).is_integer() else round(value, 4)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
