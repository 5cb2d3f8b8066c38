"""Timing and rate-limit profiles: how long Meta takes to answer and when it throttles.

The ``default`` profile answers at once, completes an async report run after a fixed number
of status polls and only throttles when a fault knob says so: fast and deterministic, which
is what most tests want. The ``realistic`` profile keeps every answer body the same and
changes only *when* answers come and *whether* a call is throttled:

* every Graph call waits a latency drawn (seeded) from :class:`LatencyModel`: a 150 ms
  floor, a log-normal body with most calls between about 200 and 800 ms, a rare tail of
  a few seconds, and a little more for big answers;
* an async report run takes :class:`AsyncJobModel` seconds (10–120 s by default, longer
  for more rows) and its ``async_percent_completion`` follows the time actually elapsed;
* usage is metered per ad account the way Meta meters it (:mod:`everreach.sandbox.usage`,
  budgets in :class:`UsageLimits`): ``call_count``, ``total_cputime`` and ``total_time``
  per business use case over a rolling hour, an ad-account score over five minutes, and the
  app's own usage; a call over budget answers Meta's throttle error (80000, 80004, 17, 4).

``time_scale`` multiplies every duration of the profile alike (latency, job durations,
usage windows, block times): at ``time_scale=0.01`` a 300 ms call takes 3 ms and a
rolling hour lasts 36 s, so a benchmark sees the realistic profile's shape in minutes.
Durations in this module are *unscaled* (Meta's own) seconds and milliseconds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: Profile names ``SandboxConfig.profile`` accepts.
PROFILES = ("default", "realistic")


@dataclass(frozen=True)
class LatencyModel:
    """Per-call latency (unscaled milliseconds): floor + log-normal body + rare tail."""

    floor_ms: float = 150.0
    median_ms: float = 180.0  # median of the part above the floor (total median ≈ 330 ms)
    sigma: float = 0.55  # log-normal shape: p90 ≈ 510 ms, p99 ≈ 800 ms in total
    tail_probability: float = 0.02  # calls that hit a slow backend…
    tail_factor: tuple[float, float] = (2.0, 6.0)  # …take this many times longer
    per_kb_ms: float = 0.4  # bigger answers take longer to build and send

    def draw(self, rng: random.Random) -> float:
        """One call's latency in milliseconds, before the size term."""
        body = self.median_ms * math.exp(rng.gauss(0.0, self.sigma))
        total = self.floor_ms + body
        if rng.random() < self.tail_probability:
            total *= rng.uniform(*self.tail_factor)
        return total

    def size_ms(self, body_bytes: int) -> float:
        """Extra milliseconds for an answer of ``body_bytes``."""
        return self.per_kb_ms * body_bytes / 1024.0


@dataclass(frozen=True)
class AsyncJobModel:
    """How long an async report run takes (unscaled seconds), from the rows it computes."""

    min_seconds: float = 10.0
    max_seconds: float = 120.0
    rows_at_max: int = 50_000  # a run of this many rows or more takes about max_seconds
    jitter: float = 0.2  # ± fraction of random spread around the size-based duration
    not_started_seconds: float = 1.0  # "Job Not Started" this long after the POST
    finishing_seconds: float = 2.0  # at 100 % yet still "Job Running" this long (as Meta)
    cpu_ms_per_row: float = 2.0  # CPU time a run charges to total_cputime per row

    def duration(self, rows: int, rng: random.Random) -> float:
        """The run's duration in seconds: grows with the square root of its size."""
        share = math.sqrt(min(1.0, max(rows, 0) / max(self.rows_at_max, 1)))
        base = self.min_seconds + (self.max_seconds - self.min_seconds) * share
        spread = 1.0 + rng.uniform(-self.jitter, self.jitter)
        return min(self.max_seconds, max(self.min_seconds, base * spread))


@dataclass(frozen=True)
class BucBudget:
    """One business use case's budget per ad account per window (Meta's formulas)."""

    calls_base: int
    calls_per_active_ad: int
    cputime_seconds: float  # CPU seconds per window that reach 100 % total_cputime
    total_time_seconds: float  # wall seconds per window that reach 100 % total_time
    window_seconds: float | None = None  # None: UsageLimits.window_seconds (an hour)

    def calls(self, active_ads: int) -> int:
        """The call budget of an account with ``active_ads`` active ads."""
        return self.calls_base + self.calls_per_active_ad * max(active_ads, 0)


def _insights_budget() -> BucBudget:
    # Meta's standard-tier formula for ads_insights: 190000 + 400 * active ads per hour.
    # Meta publishes no CPU or time budget; these let about two long report runs per
    # account run side by side for an hour before total_time reaches 100 %.
    return BucBudget(190_000, 400, cputime_seconds=1_800.0, total_time_seconds=7_200.0)


def _management_budget() -> BucBudget:
    # Standard tier: 100000 + 40 * active ads per hour (ads_management).
    return BucBudget(100_000, 40, cputime_seconds=600.0, total_time_seconds=1_800.0)


def _pages_budget() -> BucBudget:
    # Meta: 4800 * engaged users per Page per 24 hours (a Page with 100 engaged users).
    # Page calls, and CAPI / messaging calls (one bucket per business), use it.
    return BucBudget(
        480_000, 0, cputime_seconds=14_400.0, total_time_seconds=43_200.0, window_seconds=86_400.0
    )


def _instagram_budget() -> BucBudget:
    # Meta: 4800 * impressions per Instagram account per 24 hours.
    return BucBudget(
        480_000, 0, cputime_seconds=14_400.0, total_time_seconds=43_200.0, window_seconds=86_400.0
    )


@dataclass(frozen=True)
class UsageLimits:
    """The rate limits the realistic profile enforces (unscaled seconds).

    ``window_seconds`` is the rolling window of the business-use-case and app usage (an
    hour, as Meta's). The ad-account score (Meta's "API-level" limit, error 17) counts a
    read as 1 point and a write as 3, decays over ``score_window_seconds`` and blocks the
    account for ``score_block_seconds`` once it reaches ``score_max``.
    """

    access_tier: str = "standard_access"
    window_seconds: float = 3_600.0
    ads_insights: BucBudget = field(default_factory=_insights_budget)
    ads_management: BucBudget = field(default_factory=_management_budget)
    pages: BucBudget = field(default_factory=_pages_budget)
    instagram: BucBudget = field(default_factory=_instagram_budget)
    score_max: float = 9_000.0
    score_window_seconds: float = 300.0
    score_block_seconds: float = 60.0
    # App-wide: every call of every account. Meta's platform formula is 200 calls per
    # user per hour; a large app's budget is what these stand for.
    app_calls: int = 2_000_000
    app_cputime_seconds: float = 36_000.0
    app_total_time_seconds: float = 144_000.0
    call_cpu_ms: float = 20.0  # CPU time every call charges…
    cpu_ms_per_kb: float = 1.0  # …plus this per KB of answer

    def budget(self, buc_type: str) -> BucBudget:
        """The budget of one business use case type."""
        if buc_type == "ads_insights":
            return self.ads_insights
        if buc_type == "ads_management":
            return self.ads_management
        if buc_type == "instagram":
            return self.instagram
        return self.pages


@dataclass(frozen=True)
class Timing:
    """The resolved timing of one sandbox: ``None`` parts are off (the default profile)."""

    latency: LatencyModel | None
    jobs: AsyncJobModel | None
    usage: UsageLimits | None
    time_scale: float


def resolve(
    profile: str,
    *,
    time_scale: float,
    latency: LatencyModel | None,
    async_jobs: AsyncJobModel | None,
    usage_limits: UsageLimits | None,
) -> Timing:
    """The timing ``profile`` gives, with explicitly set models taking precedence."""
    if profile not in PROFILES:
        raise ValueError(
            f"SandboxConfig.profile must be one of {', '.join(PROFILES)}; got {profile!r}"
        )
    if not (time_scale > 0 and math.isfinite(time_scale)):
        raise ValueError(f"SandboxConfig.time_scale must be a positive number; got {time_scale!r}")
    realistic = profile == "realistic"
    return Timing(
        latency=latency or (LatencyModel() if realistic else None),
        jobs=async_jobs or (AsyncJobModel() if realistic else None),
        usage=usage_limits or (UsageLimits() if realistic else None),
        time_scale=float(time_scale),
    )
