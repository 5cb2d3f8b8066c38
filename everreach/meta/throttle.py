"""Client-side throttling driven by Meta's usage headers.

Meta reports usage on (almost) every answer:

* ``x-app-usage``: ``{"call_count", "total_cputime", "total_time"}`` (percent);
* ``x-business-use-case-usage``: ``{"<business id>": [{"type", "call_count",
  "total_cputime", "total_time", "estimated_time_to_regain_access"}]}`` (percent, minutes);
* ``x-ad-account-usage``: ``{"acc_id_util_pct", "reset_time_duration"}`` (percent, seconds);
* ``x-fb-ads-insights-throttle``: ``{"app_id_util_pct", "acc_id_util_pct"}`` (percent).

The client slows down progressively above ``threshold`` percent (so that it never reaches
100 %) and, when Meta names a time to regain access, every worker waits that long.

Usage has two scopes. The app's own usage (``x-app-usage``, the insights throttle's
``app_id_util_pct``) limits every call the app makes, so a pause it causes holds every
worker. The business-use-case, ad-account and ``acc_id_util_pct`` figures belong to the
object the call was about (an ad account, a Page, an Instagram account): when calls are
made through a scoped client (``GraphClient.scoped``), a pause they cause holds only the
workers of that object, and the other accounts keep going. Unscoped calls treat every
figure as app-wide, which is the safe reading when the object is not known.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

USAGE_HEADERS = (
    "x-app-usage",
    "x-business-use-case-usage",
    "x-ad-account-usage",
    "x-fb-ads-insights-throttle",
)


@dataclass(frozen=True)
class Usage:
    """One answer's usage, split by scope: the app's and the object's (percent, seconds)."""

    app_pct: float = 0.0
    app_wait: float = 0.0
    object_pct: float = 0.0
    object_wait: float = 0.0

    @property
    def pct(self) -> float:
        """The highest percent of either scope."""
        return max(self.app_pct, self.object_pct)

    @property
    def wait(self) -> float:
        """The longest wait either scope asks for."""
        return max(self.app_wait, self.object_wait)


def _load(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # a malformed header must never break a sync


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def split_usage(headers: Mapping[str, str]) -> Usage:
    """The app's and the object's usage percent and wait (seconds) from Meta's headers."""
    app_pct = app_wait = obj_pct = obj_wait = 0.0
    app = _load(headers, "x-app-usage")
    if isinstance(app, dict):
        app_pct = max(_num(app.get(k)) for k in ("call_count", "total_cputime", "total_time"))
    buc = _load(headers, "x-business-use-case-usage")
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                obj_pct = max(
                    obj_pct,
                    *(_num(entry.get(k)) for k in ("call_count", "total_cputime", "total_time")),
                )
                obj_wait = max(obj_wait, 60.0 * _num(entry.get("estimated_time_to_regain_access")))
    acc = _load(headers, "x-ad-account-usage")
    if isinstance(acc, dict):
        acc_pct = _num(acc.get("acc_id_util_pct"))
        obj_pct = max(obj_pct, acc_pct)
        if acc_pct >= 100:
            obj_wait = max(obj_wait, _num(acc.get("reset_time_duration")))
    ins = _load(headers, "x-fb-ads-insights-throttle")
    if isinstance(ins, dict):
        app_pct = max(app_pct, _num(ins.get("app_id_util_pct")))
        obj_pct = max(obj_pct, _num(ins.get("acc_id_util_pct")))
    return Usage(app_pct, app_wait, obj_pct, obj_wait)


def parse_usage(headers: Mapping[str, str]) -> tuple[float, float]:
    """(highest usage percent, seconds until access is regained) from Meta's headers."""
    usage = split_usage(headers)
    return usage.pct, usage.wait


@dataclass
class ScopeUsage:
    """What one scope (an ad account, a Page…) saw: usage percent and throttling."""

    last_pct: float = 0.0
    peak_pct: float = 0.0
    calls: int = 0
    #: Answers that were throttling errors (Meta said "too many calls").
    throttled: int = 0
    waits: int = 0
    wait_seconds: float = 0.0


class Throttle:
    """Shared pause state: the workers of one scope (and, for app-wide usage, every
    worker) wait out the same pause."""

    def __init__(
        self,
        *,
        threshold: float = 75.0,
        slowdown_max: float = 30.0,
        max_wait: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.slowdown_max = slowdown_max
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._not_before = 0.0  # clock time before which no worker may call
        self._scope_not_before: dict[str, float] = {}  # the same, per scope
        self._scopes: dict[str, ScopeUsage] = {}
        self.last_usage_pct = 0.0
        #: Pauses that held every worker (the app's usage, or an unscoped answer).
        self.app_pauses = 0

    def _delay_for(self, pct: float) -> float:
        """The slow-down a usage percent asks for: none below the threshold, then a
        quadratic ramp, gentle just above it and the full pause near 100 %."""
        if pct < self.threshold:
            return 0.0
        ratio = min(1.0, (pct - self.threshold) / max(100.0 - self.threshold, 1e-9))
        return max(0.05, self.slowdown_max * ratio * ratio)

    def observe(self, headers: Mapping[str, str], scope: str | None = None) -> None:
        """Read the usage headers of one answer (to a call about ``scope``, when known)
        and schedule a pause if needed."""
        usage = split_usage(headers)
        self.last_usage_pct = usage.pct
        if scope is None:
            # The object is unknown: every figure counts against everyone.
            wait = usage.wait
            if wait > 0:
                self.pause(min(wait, self.max_wait))
            elif delay := self._delay_for(usage.pct):
                self.pause(delay)
            return
        with self._lock:
            seen = self._scopes.setdefault(scope, ScopeUsage())
            seen.calls += 1
            seen.last_pct = usage.object_pct
            seen.peak_pct = max(seen.peak_pct, usage.object_pct)
        if usage.app_wait > 0:
            self.pause(min(usage.app_wait, self.max_wait))
        elif delay := self._delay_for(usage.app_pct):
            self.pause(delay)
        if usage.object_wait > 0:
            self.pause(min(usage.object_wait, self.max_wait), scope)
        elif delay := self._delay_for(usage.object_pct):
            self.pause(delay, scope)

    def record_throttled(self, scope: str | None) -> None:
        """Count a throttling error answered to a call about ``scope``."""
        if scope is None:
            return
        with self._lock:
            self._scopes.setdefault(scope, ScopeUsage()).throttled += 1

    def pause(self, seconds: float, scope: str | None = None) -> None:
        """Ask every worker (or the workers of ``scope``) to wait ``seconds`` before
        their next call."""
        with self._lock:
            until = self._clock() + seconds
            if scope is None:
                self.app_pauses += 1
                self._not_before = max(self._not_before, until)
            else:
                self._scope_not_before[scope] = max(self._scope_not_before.get(scope, 0.0), until)

    def _not_before_for(self, scope: str | None) -> float:
        if scope is None:
            return self._not_before
        return max(self._not_before, self._scope_not_before.get(scope, 0.0))

    def pending(self, scope: str | None = None) -> bool:
        """Whether a pause is scheduled for the workers of ``scope`` (or all workers)."""
        return self._not_before_for(scope) > self._clock()

    def wait_turn(self, scope: str | None = None) -> float:
        """Sleep until the pause that holds ``scope``'s workers (if any) is over; returns
        the seconds waited."""
        with self._lock:
            delay = self._not_before_for(scope) - self._clock()
            if delay > 0 and scope is not None:
                seen = self._scopes.setdefault(scope, ScopeUsage())
                seen.waits += 1
                seen.wait_seconds += delay
        if delay <= 0:
            return 0.0
        if self._metrics is not None:
            self._metrics.add(throttle_waits=1, throttle_wait_seconds=delay)
        self._sleep(delay)
        return delay

    def usage(self) -> dict[str, ScopeUsage]:
        """A copy of what each scope saw so far (scope → :class:`ScopeUsage`)."""
        with self._lock:
            return {k: ScopeUsage(**vars(v)) for k, v in self._scopes.items()}
