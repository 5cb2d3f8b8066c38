"""Client-side throttling driven by Meta's usage headers.

Meta reports usage on (almost) every answer:

* ``x-app-usage``: ``{"call_count", "total_cputime", "total_time"}`` (percent);
* ``x-business-use-case-usage``: ``{"<business id>": [{"type", "call_count",
  "total_cputime", "total_time", "estimated_time_to_regain_access"}]}`` (percent, minutes);
* ``x-ad-account-usage``: ``{"acc_id_util_pct", "reset_time_duration"}`` (percent, seconds);
* ``x-fb-ads-insights-throttle``: ``{"app_id_util_pct", "acc_id_util_pct"}`` (percent).

The client slows down progressively above ``threshold`` percent (so that it never reaches
100 %) and, when Meta names a time to regain access, every worker waits that long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

USAGE_HEADERS = (
    "x-app-usage",
    "x-business-use-case-usage",
    "x-ad-account-usage",
    "x-fb-ads-insights-throttle",
)


def parse_usage(headers: Mapping[str, str]) -> tuple[float, float]:
    """(highest usage percent, seconds until access is regained) from Meta's headers."""
    pct = 0.0
    wait = 0.0

    def load(name: str) -> Any:
        raw = headers.get(name)
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None  # a malformed header must never break a sync

    def num(value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return 0.0

    app = load("x-app-usage")
    if isinstance(app, dict):
        pct = max(pct, *(num(app.get(k)) for k in ("call_count", "total_cputime", "total_time")))
    buc = load("x-business-use-case-usage")
    if isinstance(buc, dict):
        for entries in buc.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                pct = max(
                    pct, *(num(entry.get(k)) for k in ("call_count", "total_cputime", "total_time"))
                )
                wait = max(wait, 60.0 * num(entry.get("estimated_time_to_regain_access")))
    acc = load("x-ad-account-usage")
    if isinstance(acc, dict):
        acc_pct = num(acc.get("acc_id_util_pct"))
        pct = max(pct, acc_pct)
        if acc_pct >= 100:
            wait = max(wait, num(acc.get("reset_time_duration")))
    ins = load("x-fb-ads-insights-throttle")
    if isinstance(ins, dict):
        pct = max(pct, num(ins.get("app_id_util_pct")), num(ins.get("acc_id_util_pct")))
    return pct, wait


class Throttle:
    """Shared pause state: every worker thread waits out the same pause."""

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
        self.last_usage_pct = 0.0

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the usage headers of one answer and schedule a pause if needed."""
        pct, wait = parse_usage(headers)
        self.last_usage_pct = pct
        if wait > 0:
            self.pause(min(wait, self.max_wait))
        elif pct >= self.threshold:
            # Quadratic ramp: gentle just above the threshold, full pause near 100 %.
            ratio = min(1.0, (pct - self.threshold) / max(100.0 - self.threshold, 1e-9))
            self.pause(max(0.05, self.slowdown_max * ratio * ratio))

    def pause(self, seconds: float) -> None:
        """Ask every worker to wait ``seconds`` before its next call."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def pending(self) -> bool:
        """Whether a pause is scheduled."""
        return self._not_before > self._clock()

    def wait_turn(self) -> float:
        """Sleep until the scheduled pause (if any) is over; returns the seconds waited."""
        with self._lock:
            delay = self._not_before - self._clock()
        if delay <= 0:
            return 0.0
        if self._metrics is not None:
            self._metrics.add(throttle_waits=1, throttle_wait_seconds=delay)
        self._sleep(delay)
        return delay
