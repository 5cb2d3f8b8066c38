"""Ads domain of the sandbox: ad accounts, campaigns, ad sets, ads and their insights.

Data model (all deterministic from ``SandboxConfig.seed``):

* ``accounts`` ad accounts in different time zones and currencies; with three or more
  accounts the last one is disabled and never delivered (an account with no rows).
* each account has ``campaigns_per_account`` × ``adsets_per_campaign`` ×
  ``ads_per_adset`` ads in a mix of statuses (ACTIVE, PAUSED, ARCHIVED, DELETED, with
  ``effective_status`` derived from the parents as Meta does).
* every ad of a delivering account delivered on each of the ``days`` days before the
  sandbox's start day (in the account's time zone); days after that appear as the clock
  advances. A day's numbers keep growing until the day is 28 days old (attribution),
  then stay final.

Metrics are generated per (account, day) as numpy arrays over the account's ads and
aggregated on demand, so a million insight rows stream without being materialized.
Money is kept in integer cents: account-level spend equals the sum of ad-level spend
to the cent. ``reach`` is not additive: a group's reach is below the sum of its parts.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import re
import sys
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from everreach.sandbox import ads_objects, creatives
from everreach.sandbox.breakdowns import (
    ADDITIVE,
    HOURLY,
    AccountLook,
    BreakdownError,
    Plan,
    cell_reach,
    check_combination,
    check_names,
    combination_error,
    family_table,
    make_plan,
    split_family,
)
from everreach.sandbox.capi import DEFAULT_PIXEL_ID
from everreach.sandbox.core import Sandbox, unknown_parameter_message
from everreach.sandbox.insights_fields import (
    EXTRA_FIELDS,
    NOT_WITH_HOURLY,
    RowContext,
    extra_values,
)
from everreach.sandbox.insights_spec import (
    ACTION_BREAKDOWNS,
    ACTION_REPORT_TIMES,
    ATTRIBUTION_WINDOWS,
    DATE_PRESETS,
    FIELD_KINDS,
    GRAPH_WIDE_PARAMS,
    INSIGHTS_PARAMS,
    LIST_PARAMS,
    REMOVED_AFTER_V19,
)
from everreach.sandbox.usage import UsageScope

DOMAIN = "ads"
ATTRIBUTION_DAYS = 28

# (time zone, currency) pairs cycled over accounts: at least two of each.
ACCOUNT_LOCALES = [
    ("America/Los_Angeles", "USD"),
    ("Europe/Berlin", "EUR"),
    ("Europe/London", "GBP"),
    ("America/Sao_Paulo", "BRL"),
]
OBJECTIVES = [
    "OUTCOME_SALES",
    "OUTCOME_LEADS",
    "OUTCOME_TRAFFIC",
    "OUTCOME_AWARENESS",
    "OUTCOME_ENGAGEMENT",
]
WINDOWS = ("1d_click", "7d_click", "28d_click", "1d_view")
ACTION_TYPES = (
    "link_click",
    "landing_page_view",
    "lead",
    "offsite_conversion.fb_pixel_purchase",
    "omni_purchase",
)
LEVELS = ("account", "campaign", "adset", "ad")
ID_FIELDS = {
    "account_id",
    "account_name",
    "account_currency",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "ad_id",
    "ad_name",
    "date_start",
    "date_stop",
    "objective",
}
HIDDEN_BY_DEFAULT = {"DELETED", "ARCHIVED"}
_DATE_PRESET = re.compile(r"^last_(\d+)d$")


# --------------------------------------------------------------------------- data model
@dataclass
class Account:
    """One ad account and the index range of its ads in the account arrays."""

    index: int
    id: str  # numeric, without act_
    name: str
    currency: str
    timezone_name: str
    account_status: int
    delivering: bool
    start_day: date  # first day with delivery (account-local)
    created_time: datetime
    campaigns: list[dict] = field(default_factory=list)
    adsets: list[dict] = field(default_factory=list)
    ads: list[dict] = field(default_factory=list)
    # per-ad arrays (position = ad index within the account)
    ad_campaign: np.ndarray | None = None  # campaign position of each ad
    ad_adset: np.ndarray | None = None  # adset position of each ad

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone_name)


class AdsState:
    """Everything the ads domain holds for one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.accounts: dict[str, Account] = {}
        self.objects: dict[str, tuple[str, Account, int]] = {}  # id → (kind, account, pos)
        self.jobs: dict[str, dict] = {}
        self.failed_once: set[str] = set()
        self.active_ads: dict[str, int] = {}  # account id → ACTIVE ads (rate-limit budgets)
        self.creatives: dict[str, tuple[Account, dict]] = {}  # id → (account, creative)
        self._spent: dict[tuple[str, date], int] = {}  # (account, today) → lifetime spend
        self._job_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._day_cache: OrderedDict[tuple[int, int], dict[str, np.ndarray]] = OrderedDict()
        # Rendered insight rows (JSON text per row) of recently served buckets, and the JSON
        # prefixes (id/name fields) of each group, keyed by the query's signature: paging
        # through a bucket renders it once, not once per page.
        self._bucket_cache: OrderedDict[tuple, list[str]] = OrderedDict()
        self._bucket_cache_chars = 0
        self._prefix_cache: OrderedDict[tuple, list[str]] = OrderedDict()
        # Breakdown splits of recent days (bounded by memory like the day cache) and the
        # stable per-ad tilts of each breakdown family.
        self._split_cache: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self._tilts: dict[tuple, np.ndarray] = {}
        self.seed = sandbox.domain_seed(DOMAIN)

    # ------------------------------------------------------------------ generation
    def build(self) -> None:
        cfg = self.sandbox.config
        rng = self.sandbox.rng(DOMAIN)
        now = self.sandbox.now()
        campaign_ids = itertools.count(23_850_000_000_000_001)
        adset_ids = itertools.count(23_860_000_000_000_001)
        ad_ids = itertools.count(23_870_000_000_000_001)
        for a in range(cfg.accounts):
            tz_name, currency = ACCOUNT_LOCALES[a % len(ACCOUNT_LOCALES)]
            disabled = cfg.accounts >= 3 and a == cfg.accounts - 1
            today = now.astimezone(ZoneInfo(tz_name)).date()
            acct = Account(
                index=a,
                id=str(100_000_000_000_001 + a + cfg.seed % 1000 * 1000),
                name=f"EverReach {['Store', 'Studio', 'Café Été', 'Labs'][a % 4]} {a + 1}",
                currency=currency,
                timezone_name=tz_name,
                account_status=2 if disabled else 1,
                delivering=not disabled,
                start_day=today - timedelta(days=cfg.days),
                created_time=now - timedelta(days=cfg.days + 30 + rng.randint(0, 300)),
            )
            ad_campaign: list[int] = []
            ad_adset: list[int] = []
            for c in range(cfg.campaigns_per_account):
                cstatus = (
                    "PAUSED"
                    if disabled
                    else rng.choices(["ACTIVE", "PAUSED", "ARCHIVED", "DELETED"], [70, 15, 8, 7])[0]
                )
                objective = OBJECTIVES[rng.randrange(len(OBJECTIVES))]
                budget = str(rng.randrange(20, 500) * 100)
                created = acct.created_time + timedelta(hours=rng.randint(1, 24 * 20))
                campaign = {
                    "id": str(next(campaign_ids)),
                    "name": f"{acct.name} · C{c + 1} {objective}",
                    "status": cstatus,
                    "effective_status": cstatus,
                    "objective": objective,
                    "daily_budget" if c % 2 == 0 else "lifetime_budget": budget,
                    "created_time": created,
                    "updated_time": created + timedelta(days=3),
                    "start_time": created,
                    "account_id": acct.id,
                }
                acct.campaigns.append(campaign)
                cpos = len(acct.campaigns) - 1
                for s in range(cfg.adsets_per_campaign):
                    sstatus = rng.choices(
                        ["ACTIVE", "PAUSED", "ARCHIVED", "DELETED"], [80, 10, 5, 5]
                    )[0]
                    adset = {
                        "id": str(next(adset_ids)),
                        "name": f"C{c + 1} · Audience {s + 1}",
                        "status": sstatus,
                        "effective_status": _effective(sstatus, cstatus, None, "CAMPAIGN"),
                        "daily_budget": str(rng.randrange(5, 100) * 100),
                        "created_time": created + timedelta(hours=1),
                        "updated_time": created + timedelta(days=1),
                        "start_time": created,
                        "campaign_id": campaign["id"],
                        "account_id": acct.id,
                    }
                    acct.adsets.append(adset)
                    spos = len(acct.adsets) - 1
                    for d in range(cfg.ads_per_adset):
                        astatus = rng.choices(
                            ["ACTIVE", "PAUSED", "ARCHIVED", "DELETED"], [75, 12, 6, 7]
                        )[0]
                        ad = {
                            "id": str(next(ad_ids)),
                            "name": f"C{c + 1}S{s + 1} · Creative {d + 1}",
                            "status": astatus,
                            "effective_status": _effective(astatus, sstatus, cstatus, "ADSET"),
                            "created_time": created + timedelta(hours=2),
                            "updated_time": created + timedelta(days=2),
                            "campaign_id": campaign["id"],
                            "adset_id": adset["id"],
                            "account_id": acct.id,
                        }
                        acct.ads.append(ad)
                        ad_campaign.append(cpos)
                        ad_adset.append(spos)
            acct.ad_campaign = np.asarray(ad_campaign, dtype=np.int64)
            acct.ad_adset = np.asarray(ad_adset, dtype=np.int64)
            self.accounts[acct.id] = acct
            for kind, objs in (
                ("campaign", acct.campaigns),
                ("adset", acct.adsets),
                ("ad", acct.ads),
            ):
                for pos, obj in enumerate(objs):
                    self.objects[obj["id"]] = (kind, acct, pos)

    # ------------------------------------------------------------------ metrics
    def final_day(self, acct: Account, day: date) -> dict[str, np.ndarray]:
        """The final (28-day-settled) metrics of every ad of ``acct`` on ``day``."""
        key = (acct.index, day.toordinal())
        with self._lock:
            hit = self._day_cache.get(key)
            if hit is not None:
                self._day_cache.move_to_end(key)
                return hit
        n = len(acct.ads)
        g = np.random.default_rng([self.seed, acct.index, day.toordinal()])
        # ad "quality" is stable across days; the day adds noise.
        q = np.random.default_rng([self.seed, acct.index]).lognormal(0.0, 0.6, n)
        imps = np.maximum(1, (q * g.lognormal(8.3, 0.5, n)).astype(np.int64))
        ctr = np.clip(g.normal(0.015, 0.005, n), 0.002, 0.06)
        clicks = g.binomial(imps, ctr)
        link_clicks = g.binomial(clicks, 0.8)
        lpv = g.binomial(link_clicks, 0.7)
        cpm_cents = g.uniform(300, 1500, n)
        spend = np.maximum(0, (imps * cpm_cents / 1000.0).astype(np.int64))
        freq = g.uniform(1.0, 2.2, n)
        reach = np.maximum(1, np.minimum(imps, np.ceil(imps / freq))).astype(np.int64)
        # purchase attribution components: 1d click, extra up to 7d, extra up to 28d, 1d view
        buy = np.clip(lpv * 0.06, 0, None)
        p1 = g.poisson(buy * 0.55)
        p7 = g.poisson(buy * 0.25)
        p28 = g.poisson(buy * 0.1)
        pv = g.poisson(buy * 0.15)
        aov = (np.random.default_rng([self.seed, acct.index, 1]).uniform(20, 180, n) * 100).astype(
            np.int64
        )
        leads = g.poisson(lpv * 0.03)
        out = {
            "impressions": imps,
            "clicks": clicks,
            "inline_link_clicks": link_clicks,
            "landing_page_view": lpv,
            "spend": spend,
            "reach": reach,
            "p1": p1,
            "p7": p7,
            "p28": p28,
            "pv": pv,
            "aov": aov,
            "lead": leads,
        }
        with self._lock:
            self._day_cache[key] = out
            # Bound the cache by memory whatever the account size (extra["ads_cache_mb"]).
            budget = int(self.sandbox.config.extra.get("ads_cache_mb", 160)) << 20
            limit = max(16, budget // max(1, n * 8 * len(out)))
            while len(self._day_cache) > limit:
                self._day_cache.popitem(last=False)
        return out

    def day_metrics(self, acct: Account, day: date, today: date) -> dict[str, np.ndarray]:
        """``final_day`` as it looks when the account-local date is ``today``."""
        final = self.final_day(acct, day)
        age = (today - day).days
        if age >= ATTRIBUTION_DAYS:
            return final
        # Delivery settles within a couple of days; conversions trickle in for 28 days.
        t = max(age, 0) / ATTRIBUTION_DAYS
        delivery = 1.0 if age >= 3 else 0.9 + 0.033 * age
        conv = 0.45 + 0.55 * t
        # Stochastic rounding with a fixed per-(ad, day, metric) offset: monotonic in the
        # factor, exact at factor 1, and small counts still move as the day matures.
        g = np.random.default_rng([self.seed, acct.index, day.toordinal(), 7])
        out = {}
        for name, arr in final.items():
            if name == "aov":
                out[name] = arr
                continue
            factor = conv if name in ("p1", "p7", "p28", "pv", "lead") else delivery
            offset = g.random(arr.shape[0])
            out[name] = np.minimum(arr, np.floor(arr * factor + offset)).astype(np.int64)
        out["reach"] = np.maximum(np.minimum(out["reach"], out["impressions"]), 1)
        return out

    # ------------------------------------------------------------------ breakdowns
    def look(self, acct: Account) -> AccountLook:
        """What shapes the account's breakdown values (currency, Pages, catalog)."""
        look = getattr(acct, "_look", None)
        if look is None:
            page_id, page_name = creatives.page_of(acct)
            products = tuple(
                (
                    str(2_600_000_000_000_000 + acct.index * 1000 + p),
                    f"SKU-{acct.index + 1}-{p:03d}",
                )
                for p in range(1, 13)
            )
            look = AccountLook(acct.index, acct.currency, ((page_id, page_name),), products)
            acct._look = look  # type: ignore[attr-defined]
        return look

    def breakdown_names(self, acct: Account) -> dict[str, str]:
        """Names behind breakdown ids: Pages by id, products' retailer ids (``retailer:<id>``)."""
        names = getattr(acct, "_names", None)
        if names is None:
            look = self.look(acct)
            names = dict(look.pages)
            names.update({f"retailer:{pid}": retailer for pid, retailer in look.products})
            acct._names = names  # type: ignore[attr-defined]
        return names

    def ad_formats(self, acct: Account) -> np.ndarray:
        """Per ad: its creative's format (0 image, 1 video, 2 carousel)."""
        formats = getattr(acct, "_formats", None)
        if formats is None:
            formats = acct._formats = creatives.ad_formats(acct)  # type: ignore[attr-defined]
        return formats

    def pixel_id(self) -> str:
        """The pixel the ads' website conversions are measured by (the CAPI domain's)."""
        pixels = self.sandbox.config.extra.get("pixels")
        return str(pixels[0]) if pixels else DEFAULT_PIXEL_ID

    def action_labels(self, acct: Account) -> dict[tuple[str, str], str]:
        """Labelling action breakdowns' values, by (breakdown, action type); ``offsite``
        stands for the web conversions measured off Meta."""
        page_id, page_name = creatives.page_of(acct)
        pixel = self.pixel_id()
        labels: dict[tuple[str, str], str] = {}
        for key in ("link_click", "lead", "post_reaction", "offsite"):
            on_page = key in ("lead", "post_reaction")
            labels[("action_target_id", key)] = page_id if on_page else pixel
            labels[("action_destination", key)] = page_name if on_page else f"{acct.name} Pixel"
            labels[("conversion_destination", key)] = "on_ad" if on_page else "website"
            labels[("is_business_ai_assisted", key)] = "false"
            labels[("matched_persona_id", key)] = "0"
            labels[("matched_persona_name", key)] = "none"
            labels[("signal_source_bucket", key)] = "pixel" if key == "offsite" else "meta"
            labels[("standard_event_content_type", key)] = "product" if key == "offsite" else "none"
        return labels

    def _ad_tilt(self, acct: Account, family: str, rows: int) -> np.ndarray:
        """Per ad and joint row of `family`: a stable multiplier of the row's share (ads
        differ: one skews young, another runs mostly on Instagram)."""
        key = (acct.index, family, rows)
        with self._lock:
            hit = self._tilts.get(key)
        if hit is not None:
            return hit
        g = np.random.default_rng([self.seed, acct.index, zlib.crc32(family.encode()), 11])
        tilt = g.lognormal(0.0, 0.35, (len(acct.ads), rows))
        with self._lock:
            self._tilts[key] = tilt
        return tilt

    def day_split(self, acct: Account, day: date, today: date, plan: Plan) -> dict[str, np.ndarray]:
        """``day_metrics`` split over the request's breakdown cells: name → (ads, cells).

        Each family's split is drawn over its whole joint table and summed onto the
        requested columns (see ``everreach.sandbox.breakdowns``); a second family splits
        each cell of the first. ``aov`` stays per ad.
        """
        key = (acct.index, day.toordinal(), today.toordinal(), plan.key)
        with self._lock:
            hit = self._split_cache.get(key)
            if hit is not None:
                self._split_cache.move_to_end(key)
                return hit
        base = self.day_metrics(acct, day, today)
        n = len(acct.ads)
        parts = {name: base[name][:, None] for name in ADDITIVE}
        for f_i, family in enumerate(plan.families):
            table = family_table(family, plan.look)
            tilt = self._ad_tilt(acct, family, len(table.rows))
            g = np.random.default_rng(
                [self.seed, acct.index, day.toordinal(), today.toordinal(), f_i,
                 zlib.crc32(family.encode())]
            )  # fmt: skip
            proj = plan.proj[f_i]
            kproj = len(plan.cell_values[f_i])
            onehot = np.zeros((len(table.rows), kproj), dtype=np.int64)
            onehot[np.arange(len(table.rows)), proj] = 1
            new: dict[str, list[np.ndarray]] = {name: [] for name in ADDITIVE}
            for c in range(parts["impressions"].shape[1]):
                split = split_family(g, {name: parts[name][:, c] for name in ADDITIVE}, table, tilt)
                for name in ADDITIVE:
                    new[name].append(split[name] @ onehot)
            parts = {name: np.concatenate(new[name], axis=1) for name in ADDITIVE}
        g = np.random.default_rng([self.seed, acct.index, day.toordinal(), today.toordinal(), 99])
        out = dict(parts)
        out["reach"] = cell_reach(g, parts["impressions"], base["impressions"], base["reach"])
        out["aov"] = base["aov"]
        with self._lock:
            self._split_cache[key] = out
            budget = int(self.sandbox.config.extra.get("ads_cache_mb", 160)) << 20
            size = max(1, n * parts["impressions"].shape[1] * 8 * len(out))
            while len(self._split_cache) > max(4, budget // size):
                self._split_cache.popitem(last=False)
        return out


def _effective(own: str, parent: str | None, grandparent: str | None, parent_kind: str) -> str:
    """Meta-like effective_status from an object's own and its parents' statuses."""
    if own in ("DELETED", "ARCHIVED"):
        return own
    for status in (grandparent, parent):
        if status in ("DELETED", "ARCHIVED"):
            return status
    if own == "PAUSED":
        return "PAUSED"
    if grandparent == "PAUSED":
        return "CAMPAIGN_PAUSED"
    if parent == "PAUSED":
        return f"{parent_kind}_PAUSED"
    return "ACTIVE"


# --------------------------------------------------------------------------- insights query
class QueryError(Exception):
    """A bad insights request: carries the Graph error to answer with."""

    def __init__(self, code: int, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode = code, message, subcode


#: Action types measured on Meta (they keep their action breakdown values) and the web
#: conversions measured by the pixel off Meta (Meta's "Type 1"/"Type 2" restrictions).
ON_META_ACTIONS = frozenset({"link_click", "lead", "post_reaction"})
#: Breakdowns with which Meta leaves off-Meta actions out of the row entirely.
TYPE1_BREAKDOWNS = frozenset({"region", "dma", *HOURLY})
#: Action breakdowns that only label entries (one value per action type), and those that
#: split an entry's numbers across their values.
LABEL_ACTIONS = (
    "action_target_id",
    "action_destination",
    "conversion_destination",
    "is_business_ai_assisted",
    "matched_persona_id",
    "matched_persona_name",
    "signal_source_bucket",
    "standard_event_content_type",
)
ACTION_DEVICES = (
    ("iphone", 0.44),
    ("android_smartphone", 0.37),
    ("desktop", 0.13),
    ("ipad", 0.04),
    ("other", 0.02),
)
REACTIONS = (
    ("like", 0.7),
    ("love", 0.15),
    ("haha", 0.05),
    ("wow", 0.05),
    ("sorry", 0.03),
    ("anger", 0.02),
)
CAROUSEL_CARDS = ((1, 0.5), (2, 0.3), (3, 0.2))
_SORTABLE = ("spend", "impressions", "reach", "clicks", "inline_link_clicks")


@dataclass
class InsightsQuery:
    """A parsed insights request over one account (optionally one object in it).

    Rows are ordered by time bucket, then group (the objects at the query's level), then
    breakdown cell. Without breakdowns every group keeps its slot in every bucket (zeros
    when it did not deliver) so that paging positions never move; with breakdowns a bucket
    holds the (group, cell) pairs that had impressions, like Meta.
    """

    state: AdsState
    acct: Account
    level: str
    fields: list[str]
    windows: list[str]
    buckets: list[tuple[date, date]]  # (date_start, date_stop) per time bucket
    ad_mask: np.ndarray  # which ads count
    groups: np.ndarray  # group position of each counted ad (at the query's level)
    group_objs: list[dict | None]  # object per group (None at account level)
    today: date  # account-local "today" the numbers are computed for
    plan: Plan | None = None  # breakdowns (None: no breakdowns)
    action_breakdowns: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()  # requested fields beyond the core ones
    sort: tuple[str, bool] | None = None  # (field, descending)

    def __post_init__(self) -> None:
        self._bucket_lru: OrderedDict[int, tuple[dict, np.ndarray]] = OrderedDict()
        self._offsets_cache: list[int] | None = None
        columns = set(self.plan.columns) if self.plan else set()
        #: Hourly breakdowns leave out every deduplicated (people) count.
        self.no_unique = bool(columns & set(HOURLY))
        #: Region, DMA and hourly breakdowns leave out actions measured off Meta.
        self.onsite_only = bool(columns & TYPE1_BREAKDOWNS)
        self.plain_actions = set(self.action_breakdowns) <= {"action_type"}

    @property
    def ncells(self) -> int:
        """Breakdown cells per group (1 without breakdowns)."""
        return self.plan.ncells if self.plan else 1

    def __len__(self) -> int:
        if self.plan is None:
            return len(self.buckets) * len(self.group_objs)
        return self._offsets()[-1]

    def _offsets(self) -> list[int]:
        """Position of each bucket's first row, and the total at the end."""
        if self._offsets_cache is None:
            offsets = [0]
            for b in range(len(self.buckets)):
                offsets.append(offsets[-1] + self.bucket_len(b))
            self._offsets_cache = offsets
        return self._offsets_cache

    def bucket_len(self, b: int) -> int:
        """Rows of bucket ``b``."""
        if self.plan is None:
            return len(self.group_objs)
        return len(self._bucket(b)[1])

    def _spans(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(bucket, first row, end row) of the buckets rows ``start:stop`` touch."""
        start, stop, _ = slice(start, stop).indices(len(self))
        if start >= stop:
            return []
        if self.plan is None:
            n = len(self.group_objs)
            if n == 0:
                return []
            return [
                (b, max(start - b * n, 0), min(stop - b * n, n))
                for b in range(start // n, (stop - 1) // n + 1)
            ]
        offsets = self._offsets()
        spans = []
        b = max(bisect.bisect_right(offsets, start) - 1, 0)
        while b < len(self.buckets) and offsets[b] < stop:
            lo, hi = max(start - offsets[b], 0), min(stop, offsets[b + 1]) - offsets[b]
            if hi > lo:
                spans.append((b, lo, hi))
            b += 1
        return spans

    def __getitem__(self, item: slice) -> list[dict]:
        if not isinstance(item, slice):
            raise TypeError("InsightsQuery supports slices only")
        rows: list[dict] = []
        for b, lo, hi in self._spans(
            item.start or 0, len(self) if item.stop is None else item.stop
        ):
            rows.extend(self.bucket_rows(b, lo, hi))
        return rows

    # ------------------------------------------------------------------ fast path
    # `json_slice` serves pages as JSON text without building a dict per row: each
    # bucket's rows are rendered column-wise from the integer sums (the same expressions
    # as `bucket_rows`, which stays the reference and is what `__getitem__` returns) and
    # cached. `tests/sandbox/test_ads_render.py` pins byte equality with
    # `orjson.dumps(query[start:stop])`.
    def json_slice(self, start: int, stop: int) -> bytes:
        """``orjson.dumps(self[start:stop])`` without the brackets, rendered fast."""
        pieces: list[str] = []
        for b, lo, hi in self._spans(start, stop):
            rows = self.rendered_bucket(b)
            pieces.extend(rows[lo:hi] if (lo, hi) != (0, len(rows)) else rows)
        return ",".join(pieces).encode()

    def _signature(self) -> tuple:
        sig = getattr(self, "_sig", None)
        if sig is None:
            sig = (
                self.acct.index,
                self.level,
                tuple(self.fields),
                tuple(self.windows),
                self.ad_mask.tobytes(),
                self.today,
                self.plan.columns if self.plan else (),
                self.action_breakdowns,
                self.extras,
                self.sort,
            )
            self._sig = sig
        return sig

    def rendered_bucket(self, b: int) -> list[str]:
        """JSON text of every row of bucket ``b``, cached by query signature."""
        state = self.state
        key = (self._signature(), self.buckets[b])
        with state._lock:
            hit = state._bucket_cache.get(key)
            if hit is not None:
                state._bucket_cache.move_to_end(key)
                return hit
        rows = self._render_bucket(b)
        size = sum(map(len, rows)) + 64 * len(rows)
        budget = int(state.sandbox.config.extra.get("ads_render_cache_mb", 48)) << 20
        with state._lock:
            old = state._bucket_cache.pop(key, None)
            if old is not None:
                state._bucket_cache_chars -= sum(map(len, old)) + 64 * len(old)
            state._bucket_cache[key] = rows
            state._bucket_cache_chars += size
            while state._bucket_cache_chars > budget and len(state._bucket_cache) > 1:
                _, dropped = state._bucket_cache.popitem(last=False)
                state._bucket_cache_chars -= sum(map(len, dropped)) + 64 * len(dropped)
        return rows

    def _prefixes(self) -> list[str]:
        """Per group: the JSON members of the id/name fields (``'"k":"v",…'``), or ''."""
        state = self.state
        key = self._signature()[:5]
        with state._lock:
            hit = state._prefix_cache.get(key)
            if hit is not None:
                state._prefix_cache.move_to_end(key)
                return hit
        out = [
            orjson.dumps(row)[1:-1].decode() if row else ""
            for row in (self._id_members(obj) for obj in self.group_objs)
        ]
        with state._lock:
            state._prefix_cache[key] = out
            while len(state._prefix_cache) > 64:
                state._prefix_cache.popitem(last=False)
        return out

    def _id_members(self, obj: dict | None) -> dict[str, Any]:
        acct = self.acct
        row: dict[str, Any] = {}
        for f in dict.fromkeys(self.fields):
            if f == "account_id":
                row[f] = acct.id
            elif f == "account_name":
                row[f] = acct.name
            elif f == "account_currency":
                row[f] = acct.currency
            elif f in ID_FIELDS and f not in ("date_start", "date_stop") and obj is not None:
                value = self._object_field(obj, f)
                if value is not None:
                    row[f] = value
        return row

    def _cells(self) -> list[dict[str, Any]]:
        """Per breakdown cell: its columns and values ([{}] without breakdowns)."""
        cells = getattr(self, "_cell_list", None)
        if cells is None:
            cells = self._cell_list = self.plan.cell_members() if self.plan else [{}]
        return cells

    def _cell_suffixes(self) -> list[str]:
        """Per breakdown cell: its JSON members (``',"age":"18-24",…'``)."""
        sfx = getattr(self, "_sfx", None)
        if sfx is None:
            sfx = self._sfx = [
                "," + orjson.dumps(cell)[1:-1].decode() if cell else "" for cell in self._cells()
            ]
        return sfx

    def _render_bucket(self, b: int) -> list[str]:
        since, until = self.buckets[b]
        sums, slots = self._bucket(b)
        want = set(self.fields)
        prefixes = self._prefixes()
        tail = f'"date_start":"{since.isoformat()}","date_stop":"{until.isoformat()}"'
        if not sums:
            if self.plan is not None:
                return []
            # slots without delivery (kept so that paging positions stay stable)
            zero = "".join(
                f'"{f}":"0",'
                for f in ("spend", "impressions", "reach", "clicks", "inline_link_clicks")
                if f in want and not (self.no_unique and f == "reach")
            )
            return ["{" + (p + "," if p else "") + zero + tail + "}" for p in prefixes]
        k = self.ncells
        row_groups = (slots // k).tolist() if k > 1 else slots.tolist()
        cols = {name: v[slots].tolist() for name, v in sums.items()}
        imps_l, clicks_l, spend_l, reach_l = (
            cols["impressions"],
            cols["clicks"],
            cols["spend"],
            cols["reach"],
        )
        # One list of JSON members per wanted metric, in the order bucket_rows writes them.
        members: list[list[str]] = []
        if "spend" in want:
            members.append([f'"spend":"{c // 100}.{c % 100:02d}",' for c in spend_l])
        if "impressions" in want:
            members.append([f'"impressions":"{v}",' for v in imps_l])
        if "reach" in want and not self.no_unique:
            members.append([f'"reach":"{v}",' for v in reach_l])
        if "frequency" in want and not self.no_unique:
            members.append(
                [
                    f'"frequency":"{i / r:.6f}",' if r else ""
                    for i, r in zip(imps_l, reach_l, strict=True)
                ]
            )
        if "clicks" in want:
            members.append([f'"clicks":"{v}",' for v in clicks_l])
        if "inline_link_clicks" in want:
            members.append([f'"inline_link_clicks":"{v}",' for v in cols["inline_link_clicks"]])
        if "ctr" in want:
            members.append(
                [
                    f'"ctr":"{c * 100 / i:.6f}",' if i else ""
                    for c, i in zip(clicks_l, imps_l, strict=True)
                ]
            )
        if "cpc" in want:
            members.append(
                [
                    f'"cpc":"{s / 100 / c:.6f}",' if c else ""
                    for s, c in zip(spend_l, clicks_l, strict=True)
                ]
            )
        if "cpm" in want:
            members.append(
                [
                    f'"cpm":"{s / 100 * 1000 / i:.6f}",' if i else ""
                    for s, i in zip(spend_l, imps_l, strict=True)
                ]
            )
        for money, name in ((False, "actions"), (True, "action_values")):
            if name not in want:
                continue
            if self.plain_actions and not self.onsite_only:
                members.append(self._render_actions(cols, money=money))
            else:
                members.append(
                    [
                        f'"{name}":{orjson.dumps(e).decode()},' if e else ""
                        for e in (
                            self._actions(cols, i, money=money, group=g)
                            for i, g in enumerate(row_groups)
                        )
                    ]
                )
        if self.extras:
            cells = slots % k
            members.append(
                [
                    "".join(f'"{n}":{orjson.dumps(v).decode()},' for n, v in pairs)
                    for pairs in (
                        self._extra_pairs(cols, i, g, int(c))
                        for i, (g, c) in enumerate(zip(row_groups, cells.tolist(), strict=True))
                    )
                ]
            )
        heads = [prefixes[g] + "," if prefixes[g] else "" for g in row_groups]
        if self.plan is None:
            tails = [tail + "}"] * len(row_groups)
        else:
            sfx = self._cell_suffixes()
            tails = [tail + sfx[c] + "}" for c in (slots % k).tolist()]
        if not members:
            return ["{" + h + t for h, t in zip(heads, tails, strict=True)]
        return [
            "{" + "".join(parts[:-1]) + parts[-1]
            for parts in zip(heads, *members, tails, strict=True)
        ]

    def _render_actions(self, cols: dict, *, money: bool) -> list[str]:
        """The ``"actions":[…],`` (or ``"action_values"``) member of every row ('' if empty).

        Column-wise: each possible entry is rendered for all rows at once (with a
        trailing comma, '' where ``_actions`` leaves it out), then joined per row.
        """
        windows = list(dict.fromkeys(self.windows))
        click_windows = [w for w in windows if w.endswith("_click")]
        entry_cols: list[list[str]] = []
        if not money:
            for atype, col in (
                ("link_click", cols["inline_link_clicks"]),
                ("landing_page_view", cols["landing_page_view"]),
                ("lead", cols["lead"]),
            ):
                tmpl = (
                    f'{{{{"action_type":"{atype}","value":"{{0}}"'
                    + "".join(f',"{w}":"{{0}}"' for w in click_windows)
                    + "}},"
                )
                entry_cols.append([tmpl.format(n) if n else "" for n in col])
            c1, c7x, c28x, cv = cols["p1"], cols["p7"], cols["p28"], cols["pv"]
        else:
            c1, c7x, c28x, cv = cols["v1"], cols["v7"], cols["v28"], cols["vv"]
        a = np.asarray(c1, dtype=np.int64)
        c7 = a + np.asarray(c7x, dtype=np.int64)
        c28 = c7 + np.asarray(c28x, dtype=np.int64)
        src = {"1d_click": c1, "7d_click": c7.tolist(), "28d_click": c28.tolist(), "1d_view": cv}
        default = (c7 + np.asarray(cv, dtype=np.int64)).tolist()
        if money:
            dflt = [f"{x // 100}.{x % 100:02d}" for x in default]
            wcols = [
                [f',"{w}":"{x // 100}.{x % 100:02d}"' if x else "" for x in src[w]] for w in windows
            ]
        else:
            dflt = [str(x) for x in default]
            wcols = [[f',"{w}":"{x}"' if x else "" for x in src[w]] for w in windows]
        first = '{"action_type":"offsite_conversion.fb_pixel_purchase","value":"'
        second = '{"action_type":"omni_purchase","value":"'
        purchases = [
            (first + d + '"' + rest + "}," + second + d + '"' + rest + "}," if x else "")
            for x, d, rest in zip(
                default,
                dflt,
                ["".join(p) for p in zip(*wcols, strict=True)] if wcols else [""] * len(default),
                strict=True,
            )
        ]
        entry_cols.append(purchases)
        key = '"action_values":[' if money else '"actions":['
        out = []
        for parts in zip(*entry_cols, strict=True):
            joined = "".join(parts)
            out.append(key + joined[:-1] + "]," if joined else "")
        return out

    # ------------------------------------------------------------------ numbers
    def _bucket(self, b: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(sums over every slot, the bucket's rows as slots in row order) of bucket ``b``.

        A slot is ``group * ncells + cell``. Without breakdowns every group is a row; with
        breakdowns the slots that had impressions are.
        """
        hit = self._bucket_lru.get(b)
        if hit is not None:
            return hit
        sums = self.bucket_metrics(b)
        ngroups = len(self.group_objs)
        if self.plan is None:
            slots = np.arange(ngroups, dtype=np.int64)
        elif sums:
            slots = np.flatnonzero(sums["impressions"] > 0).astype(np.int64)
        else:
            slots = np.zeros(0, dtype=np.int64)
        if self.sort is not None and sums and len(slots):
            name, descending = self.sort
            values = sums[name][slots]
            order = np.argsort(-values if descending else values, kind="stable")
            slots = slots[order]
        self._bucket_lru[b] = (sums, slots)
        while len(self._bucket_lru) > 2:
            self._bucket_lru.popitem(last=False)
        return sums, slots

    def bucket_metrics(self, b: int) -> dict[str, np.ndarray]:
        """Integer metrics per slot (numpy arrays, ``ngroups × ncells`` entries) for bucket ``b``."""
        since, until = self.buckets[b]
        k = self.ncells
        nslots = len(self.group_objs) * k
        sums: dict[str, np.ndarray] = {}
        reach_sum = np.zeros(nslots, dtype=np.int64)
        reach_max = np.zeros(nslots, dtype=np.int64)
        counted = np.zeros(nslots, dtype=np.int64)
        mask = self.ad_mask
        # With breakdowns the day arrays are (ads, cells), even for a single cell.
        split = self.plan is not None
        idx = (self.groups[:, None] * k + np.arange(k)[None, :]).ravel() if split else self.groups
        day = since
        while day <= until:
            if self.acct.delivering and self.acct.start_day <= day < self.today:
                if self.plan is None:
                    m = self.state.day_metrics(self.acct, day, self.today)
                else:
                    m = self.state.day_split(self.acct, day, self.today, self.plan)
                for name in (
                    "impressions",
                    "clicks",
                    "inline_link_clicks",
                    "landing_page_view",
                    "spend",
                    "lead",
                    "p1",
                    "p7",
                    "p28",
                    "pv",
                ):
                    vals = np.bincount(idx, weights=m[name][mask].ravel(), minlength=nslots)
                    sums[name] = sums.get(name, 0) + vals.astype(np.int64)
                aov = m["aov"][mask]
                if split:
                    aov = aov[:, None]
                for name, comp in (("v1", "p1"), ("v7", "p7"), ("v28", "p28"), ("vv", "pv")):
                    vals = np.bincount(idx, weights=(m[comp][mask] * aov).ravel(), minlength=nslots)
                    sums[name] = sums.get(name, 0) + vals.astype(np.int64)
                r = m["reach"][mask].ravel()
                reach_sum += np.bincount(idx, weights=r, minlength=nslots).astype(np.int64)
                np.maximum.at(reach_max, idx, r)
                if not split:
                    counted += np.bincount(idx, minlength=nslots)
                else:
                    seen = (m["impressions"][mask] > 0).ravel()
                    counted += np.bincount(idx, weights=seen, minlength=nslots).astype(np.int64)
            day += timedelta(days=1)
        if not sums:
            return {}
        # Reach overlaps across ads and days: below the sum, never below the largest part.
        n_parts = np.maximum(counted, 1)
        overlap = 1.0 - 0.3 * (1.0 - 1.0 / n_parts)
        sums["reach"] = np.maximum(reach_max, np.floor(reach_sum * overlap).astype(np.int64))
        sums["_counted"] = counted
        if self.extras:
            sums["_video"] = self._video_impressions(b, nslots, idx)
        return sums

    def _video_impressions(self, b: int, nslots: int, idx: np.ndarray) -> np.ndarray:
        """Impressions of video ads per slot (for the share of video on a row)."""
        since, until = self.buckets[b]
        is_video = self.state.ad_formats(self.acct) == 1
        out = np.zeros(nslots, dtype=np.int64)
        day = since
        while day <= until:
            if self.acct.delivering and self.acct.start_day <= day < self.today:
                if self.plan is None:
                    imps = self.state.day_metrics(self.acct, day, self.today)["impressions"]
                    weights = (imps * is_video)[self.ad_mask]
                else:
                    imps = self.state.day_split(self.acct, day, self.today, self.plan)[
                        "impressions"
                    ]
                    weights = (imps * is_video[:, None])[self.ad_mask].ravel()
                out += np.bincount(idx, weights=weights, minlength=nslots).astype(np.int64)
            day += timedelta(days=1)
        return out

    def bucket_rows(self, b: int, lo: int, hi: int) -> list[dict]:
        """Rows ``lo:hi`` of time bucket ``b`` (without breakdowns, groups without delivery
        still occupy their slot so that paging positions stay stable; they answer zeros)."""
        since, until = self.buckets[b]
        sums, slots = self._bucket(b)
        if not sums and self.plan is not None:
            return []
        want = set(self.fields)
        ds, de = since.isoformat(), until.isoformat()
        k = self.ncells
        cells = self._cells()
        part = slots[lo:hi]
        cols = {name: v[part].tolist() for name, v in sums.items()} if sums else {}
        rows = []
        for i, slot in enumerate(part.tolist()):
            g, c = divmod(slot, k)
            row = self._id_members(self.group_objs[g])
            if cols:
                imps = cols["impressions"][i]
                clicks = cols["clicks"][i]
                spend = cols["spend"][i]
                reach = cols["reach"][i]
                if "spend" in want:
                    row["spend"] = _money(spend)
                if "impressions" in want:
                    row["impressions"] = str(imps)
                if "reach" in want and not self.no_unique:
                    row["reach"] = str(reach)
                if "frequency" in want and reach and not self.no_unique:
                    row["frequency"] = f"{imps / reach:.6f}"
                if "clicks" in want:
                    row["clicks"] = str(clicks)
                if "inline_link_clicks" in want:
                    row["inline_link_clicks"] = str(cols["inline_link_clicks"][i])
                if "ctr" in want and imps:
                    row["ctr"] = f"{clicks * 100 / imps:.6f}"
                if "cpc" in want and clicks:
                    row["cpc"] = f"{spend / 100 / clicks:.6f}"
                if "cpm" in want and imps:
                    row["cpm"] = f"{spend / 100 * 1000 / imps:.6f}"
                if "actions" in want:
                    actions = self._actions(cols, i, money=False, group=g)
                    if actions:
                        row["actions"] = actions
                if "action_values" in want:
                    values = self._actions(cols, i, money=True, group=g)
                    if values:
                        row["action_values"] = values
                if self.extras:
                    row.update(self._extra_pairs(cols, i, g, c))
            else:  # a slot without delivery (kept so that paging positions stay stable)
                for f in ("spend", "impressions", "reach", "clicks", "inline_link_clicks"):
                    if f in want and not (self.no_unique and f == "reach"):
                        row[f] = "0"
            row["date_start"] = ds
            row["date_stop"] = de
            row.update(cells[c])
            rows.append(row)
        return rows

    def _object_field(self, obj: dict, f: str) -> str | None:
        kind, _, name = f.partition("_")
        if kind == "objective" or f == "objective":
            camp = self.state.objects.get(obj.get("campaign_id", obj["id"]))
            cobj = self.acct.campaigns[camp[2]] if camp else obj
            return cobj.get("objective")
        target_id = obj["id"] if self._kind_of(obj) == kind else obj.get(f"{kind}_id")
        if target_id is None:
            return None
        if name == "id":
            return target_id
        entry = self.state.objects.get(target_id)
        if entry is None:
            return None
        k, acct, pos = entry
        return {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[k][pos]["name"]

    def _kind_of(self, obj: dict) -> str:
        return self.state.objects[obj["id"]][0]

    def _actions(self, cols: dict, i: int, *, money: bool, group: int = 0) -> list[dict]:
        out = []
        p1, p7, p28, pv = cols["p1"][i], cols["p7"][i], cols["p28"][i], cols["pv"][i]
        v1, v7, v28, vv = cols["v1"][i], cols["v7"][i], cols["v28"][i], cols["vv"][i]
        windows = self.windows
        if not money:
            for atype, n in (
                ("link_click", cols["inline_link_clicks"][i]),
                ("landing_page_view", cols["landing_page_view"][i]),
                ("lead", cols["lead"][i]),
            ):
                if n and not (self.onsite_only and atype not in ON_META_ACTIONS):
                    entry = {"action_type": atype, "value": str(n)}
                    for w in windows:
                        if w.endswith("_click"):
                            entry[w] = str(n)
                    out.append(entry)
        counts = {"1d_click": p1, "7d_click": p1 + p7, "28d_click": p1 + p7 + p28, "1d_view": pv}
        values = {"1d_click": v1, "7d_click": v1 + v7, "28d_click": v1 + v7 + v28, "1d_view": vv}
        src = values if money else counts
        default = src["7d_click"] + src["1d_view"]  # Meta's default: 7-day click + 1-day view
        if default and not self.onsite_only:
            for atype in ("offsite_conversion.fb_pixel_purchase", "omni_purchase"):
                entry = {"action_type": atype, "value": _money(default) if money else str(default)}
                for w in windows:
                    if src[w]:
                        entry[w] = _money(src[w]) if money else str(src[w])
                out.append(entry)
        if not money and "action_reaction" in self.action_breakdowns:
            reactions = cols["impressions"][i] * 4 // 1000
            if reactions:
                out.append({"action_type": "post_reaction", "value": str(reactions)})
        if self.plain_actions:
            return out
        return self._break_actions(out, money=money, group=group)

    def _break_actions(self, entries: list[dict], *, money: bool, group: int) -> list[dict]:
        """Apply the request's action breakdowns to plain action entries: label keys on the
        entries Meta labels, and entries split across device / reaction / carousel card
        (integer or cent parts that add up to the entry)."""
        acts = self.action_breakdowns
        labels = self.state.action_labels(self.acct)
        out: list[dict] = []
        for entry in entries:
            atype = entry["action_type"]
            on_meta = atype in ON_META_ACTIONS
            parts = [entry]
            if on_meta and "action_device" in acts:
                parts = _split_entry(parts, "action_device", ACTION_DEVICES, money)
            if atype == "post_reaction" and "action_reaction" in acts:
                parts = _split_entry(parts, "action_reaction", REACTIONS, money)
            if atype == "link_click" and {
                "action_carousel_card_id",
                "action_carousel_card_name",
            } & set(acts):
                parts = _split_cards(parts, acts, self.acct)
            for part in parts:
                keyed: dict[str, Any] = {}
                for name in acts:
                    if name == "action_type":
                        keyed["action_type"] = atype
                    elif name in LABEL_ACTIONS:
                        value = labels.get((name, atype if on_meta else "offsite"))
                        if value is not None and (on_meta or name not in _TYPE2_LABELS):
                            keyed[name] = value
                    elif name in part:
                        keyed[name] = part[name]
                keyed.setdefault("action_type", atype)
                for key, value in part.items():
                    if key not in keyed and key not in ACTION_BREAKDOWN_NAMES:
                        keyed[key] = value
                out.append(keyed)
        return out

    def _extra_pairs(self, cols: dict, i: int, g: int, c: int) -> list[tuple[str, Any]]:
        """(field, value) of the requested extra fields on row ``i`` (group ``g``, cell ``c``)."""
        obj = self.group_objs[g]
        acct = self.acct
        purchases = cols["p1"][i] + cols["p7"][i] + cols["pv"][i]
        value = cols["v1"][i] + cols["v7"][i] + cols["vv"][i]
        if self.onsite_only:
            purchases = value = 0
        imps = cols["impressions"][i]
        kind = self.level
        created = updated = adset_start = None
        ranking_seed = 0
        creative_type = None
        if obj is not None:
            created = _fmt_date(obj.get("created_time"), acct)
            updated = _fmt_date(obj.get("updated_time"), acct)
            ranking_seed = int(obj["id"][-4:])
            adset_id = obj["id"] if kind == "adset" else obj.get("adset_id")
            if adset_id is not None:
                entry = self.state.objects.get(adset_id)
                if entry is not None:
                    start = entry[1].adsets[entry[2]].get("start_time")
                    adset_start = _fmt_time(start, acct.tz) if start else None
            if kind == "ad":
                pos = self.state.objects[obj["id"]][2]
                creative_type = creatives.FORMATS[int(self.state.ad_formats(acct)[pos])]
        else:
            created = _fmt_date(acct.created_time, acct)
        ctx = RowContext(
            impressions=imps,
            clicks=cols["clicks"][i],
            link_clicks=cols["inline_link_clicks"][i],
            landing_page_views=cols["landing_page_view"][i],
            spend=cols["spend"][i],
            reach=None if self.no_unique else cols["reach"][i],
            leads=cols["lead"][i],
            purchases=purchases,
            purchase_value=value,
            video_share=cols["_video"][i] / imps if imps else 0.0,
            level=kind,
            objective=self._object_field(obj, "objective") if obj is not None else None,
            created=created,
            updated=updated,
            adset_start=adset_start,
            ranking_seed=ranking_seed,
            creative_type=creative_type,
            breakdown=self._cells()[c],
            names=self.state.breakdown_names(acct),
            video_breakdowns=tuple(
                a
                for a in self.action_breakdowns
                if a in ("action_video_sound", "action_video_type")
            ),
        )
        return extra_values(list(self.extras), ctx)


#: Action breakdown keys (never copied from a plain entry onto a broken-down one).
ACTION_BREAKDOWN_NAMES = frozenset(ACTION_BREAKDOWNS)
#: Labels Meta leaves off off-Meta (web) conversions ("Type 2" action breakdowns).
_TYPE2_LABELS = frozenset({"action_target_id", "action_destination"})


def _split_entry(
    entries: list[dict], key: str, shares: tuple[tuple[str, float], ...], money: bool
) -> list[dict]:
    """Each entry split across `shares` (value and window keys each split exactly)."""
    out = []
    weights = [s for _, s in shares]
    for entry in entries:
        numeric = {k: v for k, v in entry.items() if k == "value" or k[:1].isdigit()}
        split = {
            k: _largest_remainder(_cents(v) if money else int(v), weights)
            for k, v in numeric.items()
        }
        for j, (label, _) in enumerate(shares):
            if not split["value"][j]:
                continue
            part = {key: label, **{k: v for k, v in entry.items() if k not in numeric}}
            for k in numeric:
                if split[k][j]:
                    part[k] = _money(split[k][j]) if money else str(split[k][j])
            out.append(part)
    return out


def _split_cards(entries: list[dict], acts: tuple[str, ...], acct: Account) -> list[dict]:
    out = []
    for entry in entries:
        total = int(entry["value"])
        parts = _largest_remainder(total, [s for _, s in CAROUSEL_CARDS])
        for (card, _), n in zip(CAROUSEL_CARDS, parts, strict=True):
            if not n:
                continue
            part = {k: v for k, v in entry.items() if k != "value"}
            if "action_carousel_card_id" in acts:
                part["action_carousel_card_id"] = str(6_000_000_000 + acct.index * 10 + card)
            if "action_carousel_card_name" in acts:
                part["action_carousel_card_name"] = f"Card {card}"
            part["value"] = str(n)
            for w in [k for k in part if k[:1].isdigit()]:
                part[w] = str(n)
            out.append(part)
    return out


def _largest_remainder(total: int, shares: list[float]) -> list[int]:
    raw = [total * s / sum(shares) for s in shares]
    parts = [int(r) for r in raw]
    rest = total - sum(parts)
    for j in sorted(range(len(raw)), key=lambda j: raw[j] - parts[j], reverse=True)[:rest]:
        parts[j] += 1
    return parts


def _cents(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def _fmt_date(value: datetime | None, acct: Account) -> str | None:
    return value.astimezone(acct.tz).date().isoformat() if value else None


def _money(cents: int) -> str:
    """Integer cents as Meta's decimal string ("12.34")."""
    cents = int(cents)
    return f"{cents // 100}.{cents % 100:02d}"


def _bool_param(params: dict, name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise QueryError(100, f"(#100) param {name} must be a boolean")


def _enum_list(sandbox: Sandbox, params: dict, name: str, allowed: tuple[str, ...]) -> list[str]:
    try:
        values = sandbox.list_param(params, name)
    except orjson.JSONDecodeError as exc:
        raise QueryError(100, f"(#100) param {name} must be an array") from exc
    for i, value in enumerate(values):
        if value not in allowed:
            raise QueryError(
                100, f"(#100) {name}[{i}] must be one of the following values: {', '.join(allowed)}"
            )
    return values


def check_insights_params(params: dict, *, report_run: bool = False) -> None:
    """Refuse parameters the insights edge does not take, as Meta refuses them.

    The edges of AdAccount, Campaign, AdSet and Ad take the spec's insights parameters; an
    AdReportRun's insights edge takes none of its own. Both take the Graph-wide and paging
    parameters.
    """
    allowed = set(GRAPH_WIDE_PARAMS) | set(LIST_PARAMS)
    if not report_run:
        allowed |= set(INSIGHTS_PARAMS)
    for name in params:
        if name not in allowed:
            edge = "AdReportRun insights" if report_run else "insights"
            raise QueryError(
                100,
                unknown_parameter_message(
                    name,
                    f"the {edge} edge",
                    "https://developers.facebook.com/docs/marketing-api/insights/parameters/",
                ),
            )


def parse_insights(
    state: AdsState,
    params: dict,
    acct: Account,
    scope: tuple[str, int] | None,
    today: date,
    *,
    version: str | None = None,
) -> InsightsQuery:
    """Turn insights request parameters into an :class:`InsightsQuery` (or QueryError)."""
    sandbox = state.sandbox
    level = str(params.get("level") or (scope[0] if scope else "account"))
    if level not in LEVELS:
        raise QueryError(100, f"(#100) param level must be one of {{{', '.join(LEVELS)}}}")
    fields = sandbox.list_param(params, "fields", ["spend", "impressions"])
    for f in fields:
        if f not in FIELD_KINDS:
            raise QueryError(
                100,
                f"(#100) {f} is not valid for fields param. please check "
                "https://developers.facebook.com/docs/marketing-api/reference/"
                "ads-insights/ for all valid values",
            )
    removed = [f for f in dict.fromkeys(fields) if f in REMOVED_AFTER_V19]
    if removed and _version_at_least(version, 19):
        raise QueryError(
            100, f"(#100) {', '.join(removed)} are not valid for fields param after V19.0"
        )
    extras = tuple(f for f in dict.fromkeys(fields) if f in EXTRA_FIELDS)
    windows_raw = _enum_list(sandbox, params, "action_attribution_windows", ATTRIBUTION_WINDOWS)
    windows = [w for w in windows_raw if w in WINDOWS]
    # breakdowns
    breakdowns = sandbox.list_param(params, "breakdowns")
    raw_actions = params.get("action_breakdowns")
    explicit_actions = raw_actions is not None
    action_breakdowns = sandbox.list_param(params, "action_breakdowns")
    try:
        check_names(breakdowns, "breakdowns")
        check_names(action_breakdowns, "action_breakdowns")
        combo_actions = action_breakdowns if explicit_actions else ["action_type"]
        check_combination(combo_actions, breakdowns)
    except BreakdownError as exc:
        raise QueryError(100, str(exc)) from exc
    _check_fields_with_breakdowns(fields, breakdowns, combo_actions)
    look = state.look(acct)
    if "product_id_limit" in params:
        # Meta's product_id_limit: how many products a product_id breakdown reports.
        limit = _int_param(params, "product_id_limit")
        if limit > 0:
            look = dataclasses.replace(look, products=look.products[:limit])
    plan = make_plan(breakdowns, look) if breakdowns else None
    _enum_list(sandbox, params, "summary_action_breakdowns", ACTION_BREAKDOWNS)
    for name in (
        "default_summary",
        "graph_cache",
        "use_account_attribution_setting",
        "use_unified_attribution_setting",
    ):
        _bool_param(params, name)
    report_time = params.get("action_report_time")
    if report_time not in (None, "") and str(report_time) not in ACTION_REPORT_TIMES:
        raise QueryError(
            100,
            "(#100) action_report_time must be one of the following values: "
            + ", ".join(ACTION_REPORT_TIMES),
        )
    sort = _sort_param(sandbox, params)
    # time buckets (account-local dates)
    buckets = _buckets(sandbox, params, today)
    # which ads count
    n = len(acct.ads)
    mask = np.ones(n, dtype=bool)
    if scope is not None:
        kind, pos = scope
        if kind == "campaign":
            mask &= acct.ad_campaign == pos
        elif kind == "adset":
            mask &= acct.ad_adset == pos
        else:
            mask &= np.arange(n) == pos
    try:
        filtering = sandbox.json_param(params, "filtering") or []
    except orjson.JSONDecodeError as exc:
        raise QueryError(100, "(#100) param filtering must be an array") from exc
    if not isinstance(filtering, list):
        raise QueryError(100, "(#100) param filtering must be an array")
    status_filtered = set()
    for flt in filtering:
        if not isinstance(flt, dict) or not {"field", "operator"} <= flt.keys():
            raise QueryError(100, "(#100) Filtering field is not valid")
        mask &= _filter_mask(acct, flt)
        status_filtered.add(str(flt["field"]))
    # Like Meta, deleted/archived objects of the requested level are hidden unless the
    # request filters on their effective_status.
    if level != "account" and f"{level}.effective_status" not in status_filtered:
        objs = {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[level]
        visible = np.array(
            [o["effective_status"] not in HIDDEN_BY_DEFAULT for o in objs], dtype=bool
        )
        mask &= visible[_level_pos(acct, level)]
    # groups at the level
    if level == "account":
        groups = np.zeros(int(mask.sum()), dtype=np.int64)
        group_objs: list[dict | None] = [None] if mask.any() and acct.delivering else []
    else:
        pos = _level_pos(acct, level)[mask]
        uniq, inverse = np.unique(pos, return_inverse=True)
        objs = {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[level]
        groups = inverse.astype(np.int64)
        group_objs = [objs[p] for p in uniq.tolist()] if acct.delivering else []
    # Meta returns rows only for days with delivery: trim buckets to the delivered span.
    last = today - timedelta(days=1)
    buckets = [(s, e) for s, e in buckets if e >= acct.start_day and s <= last]
    return InsightsQuery(
        state,
        acct,
        level,
        fields,
        windows,
        buckets,
        mask,
        groups,
        group_objs,
        today,
        plan=plan,
        action_breakdowns=tuple(dict.fromkeys(action_breakdowns)),
        extras=extras,
        sort=sort,
    )


def _version_at_least(version: str | None, major: int) -> bool:
    m = re.match(r"^v(\d+)\.", version or "v25.0")
    return m is not None and int(m[1]) >= major


def _int_param(params: dict, name: str) -> int:
    try:
        return int(str(params[name]))
    except (TypeError, ValueError) as exc:
        raise QueryError(100, f"(#100) param {name} must be an integer") from exc


def _check_fields_with_breakdowns(
    fields: list[str], breakdowns: list[str], action_breakdowns: list[str]
) -> None:
    """Fields Meta does not serve with some breakdowns (named in its combination error)."""
    hourly = [b for b in breakdowns if b in HOURLY]
    if hourly:
        bad = [f for f in fields if f in NOT_WITH_HOURLY]
        if bad:
            raise QueryError(100, combination_error(action_breakdowns, [*breakdowns, bad[0]]))
    if "frequency_value" in breakdowns:
        metrics = [f for f in fields if f not in ID_FIELDS and f not in ("reach",)]
        if metrics:
            raise QueryError(100, combination_error(action_breakdowns, [*breakdowns, metrics[0]]))


def _sort_param(sandbox: Sandbox, params: dict) -> tuple[str, bool] | None:
    values = sandbox.list_param(params, "sort")
    if not values:
        return None
    m = re.match(r"^(\w+?)_(ascending|descending)$", values[0])
    if m is None or m[1] not in _SORTABLE:
        raise QueryError(
            100,
            "(#100) sort must be <field>_ascending or <field>_descending with one of "
            + ", ".join(_SORTABLE),
        )
    return m[1], m[2] == "descending"


def _buckets(sandbox: Sandbox, params: dict, today: date) -> list[tuple[date, date]]:
    """The request's time buckets: ``time_ranges`` (one bucket each) or ``time_range`` /
    ``date_preset`` cut by ``time_increment`` (days, ``monthly`` or ``all_days``)."""
    try:
        ranges = sandbox.json_param(params, "time_ranges")
    except orjson.JSONDecodeError as exc:
        raise QueryError(100, "(#100) param time_ranges must be an array") from exc
    if ranges:
        if not isinstance(ranges, list):
            raise QueryError(100, "(#100) param time_ranges must be an array")
        out = []
        for tr in ranges:
            since, until = _parse_range(tr)
            out.append((since, until))
        return out
    since, until = _time_range(sandbox, params, today)
    if until < since:
        raise QueryError(100, "(#100) time_range's since must be before until")
    inc = str(params.get("time_increment", "all_days"))
    buckets = []
    if inc == "monthly":
        d = since
        while d <= until:
            nxt = (d.replace(day=1) + timedelta(days=32)).replace(day=1)
            end = min(nxt - timedelta(days=1), until)
            buckets.append((d, end))
            d = end + timedelta(days=1)
        return buckets
    if inc == "all_days":
        step = (until - since).days + 1
    elif inc.isdigit() and 1 <= int(inc) <= 90:
        step = int(inc)
    else:
        raise QueryError(100, "(#100) param time_increment must be all_days, monthly or 1 to 90")
    d = since
    while d <= until:
        end = min(d + timedelta(days=step - 1), until)
        buckets.append((d, end))
        d = end + timedelta(days=1)
    return buckets


def _parse_range(tr: Any) -> tuple[date, date]:
    try:
        return date.fromisoformat(tr["since"]), date.fromisoformat(tr["until"])
    except (KeyError, TypeError, ValueError) as exc:
        raise QueryError(
            100,
            "(#100) param time_range must be a JSON object with since and until dates (YYYY-MM-DD)",
        ) from exc


def _level_pos(acct: Account, level: str) -> np.ndarray:
    n = len(acct.ads)
    if level == "campaign":
        return acct.ad_campaign
    if level == "adset":
        return acct.ad_adset
    return np.arange(n)


def _filter_mask(acct: Account, flt: dict) -> np.ndarray:
    fname = str(flt["field"])
    op = str(flt["operator"]).upper()
    value = flt.get("value")
    kind, _, attr = fname.partition(".")
    if kind not in ("campaign", "adset", "ad") or attr not in ("id", "effective_status", "name"):
        raise QueryError(100, f"(#100) Filtering field {fname} is invalid")
    objs = {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[kind]
    attr_key = attr if attr != "effective_status" else "effective_status"
    per_obj = [str(o[attr_key]) for o in objs]
    if op in ("IN", "NOT_IN"):
        wanted = {str(v) for v in (value or [])}
        hit = np.array([v in wanted for v in per_obj], dtype=bool)
        if op == "NOT_IN":
            hit = ~hit
    elif op in ("EQUAL", "NOT_EQUAL"):
        hit = np.array([v == str(value) for v in per_obj], dtype=bool)
        if op == "NOT_EQUAL":
            hit = ~hit
    elif op == "CONTAIN":
        hit = np.array([str(value).lower() in v.lower() for v in per_obj], dtype=bool)
    else:
        raise QueryError(100, f"(#100) Filtering operator {op} is not supported")
    if len(per_obj) == 0:
        return np.zeros(len(acct.ads), dtype=bool)
    return hit[_level_pos(acct, kind)]


def _time_range(sandbox: Sandbox, params: dict, today: date) -> tuple[date, date]:
    try:
        tr = sandbox.json_param(params, "time_range")
    except orjson.JSONDecodeError as exc:
        raise QueryError(100, "(#100) param time_range must be a JSON object") from exc
    if tr:
        return _parse_range(tr)
    preset = str(params.get("date_preset", "last_30d"))
    yesterday = today - timedelta(days=1)
    if preset not in DATE_PRESETS:
        raise QueryError(
            100,
            f"(#100) date_preset must be one of the following values: {', '.join(DATE_PRESETS)}",
        )
    first_of_month = today.replace(day=1)
    quarter_start = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    monday = today - timedelta(days=today.weekday())
    sunday = today - timedelta(days=(today.weekday() + 1) % 7)
    if preset == "today":
        return today, today
    if preset == "yesterday":
        return yesterday, yesterday
    if preset in ("maximum", "data_maximum"):
        return today - timedelta(days=37 * 30), yesterday
    if preset == "this_month":
        return first_of_month, today
    if preset == "last_month":
        last = first_of_month - timedelta(days=1)
        return last.replace(day=1), last
    if preset == "this_quarter":
        return quarter_start, today
    if preset == "last_quarter":
        end = quarter_start - timedelta(days=1)
        return end.replace(month=(end.month - 1) // 3 * 3 + 1, day=1), end
    if preset == "this_year":
        return today.replace(month=1, day=1), today
    if preset == "last_year":
        return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
    if preset == "this_week_mon_today":
        return monday, today
    if preset == "this_week_sun_today":
        return sunday, today
    if preset == "last_week_mon_sun":
        return monday - timedelta(days=7), monday - timedelta(days=1)
    if preset == "last_week_sun_sat":
        return sunday - timedelta(days=7), sunday - timedelta(days=1)
    m = _DATE_PRESET.match(preset)
    assert m is not None  # every other preset is last_<N>d
    return today - timedelta(days=int(m[1])), yesterday


def _fmt_time(value: datetime, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S%z")


# --------------------------------------------------------------------------- handlers
def register(sandbox: Sandbox) -> None:
    """Create the seeded ads data and register every ads node with the sandbox."""
    module = sys.modules[__name__]
    state = AdsState(sandbox)
    state.build()
    creatives.build(state, sandbox)
    sandbox.domains[DOMAIN] = state
    for acct in state.accounts.values():
        sandbox.register_node(f"act_{acct.id}", "ad_account", module)
    for obj_id, (kind, _, _) in state.objects.items():
        sandbox.register_node(obj_id, kind, module)
    for creative_id in state.creatives:
        sandbox.register_node(creative_id, "adcreative", module)
    if sandbox.lookup("me") is None:
        sandbox.register_node("me", "user", module)


def usage_scope(
    sandbox: Sandbox, node_id: str, kind: str, edge: str | None, method: str
) -> UsageScope | None:
    """The ad account whose budget a call uses, and which use case (insights or management)."""
    state: AdsState = sandbox.domains[DOMAIN]
    acct: Account | None = None
    if kind == "ad_account":
        acct = state.accounts.get(node_id[4:])
    elif kind in ("campaign", "adset", "ad"):
        acct = state.objects[node_id][1]
    elif kind == "adcreative":
        acct = state.creatives[node_id][0]
    elif kind == "ad_report_run":
        job = state.jobs.get(node_id)
        acct = job["account"] if job is not None else None
    if acct is None:
        return None
    insights = edge == "insights" or kind == "ad_report_run"
    active = state.active_ads.get(acct.id)
    if active is None:
        active = state.active_ads[acct.id] = sum(
            1 for ad in acct.ads if ad["effective_status"] == "ACTIVE"
        )
    return UsageScope(acct.id, "ads_insights" if insights else "ads_management", active)


def handle(
    request: Request, sandbox: Sandbox, node_id: str, kind: str, edge: str | None
) -> Response:
    """Answer an ads Graph call (see module docstring for what exists)."""
    state: AdsState = sandbox.domains[DOMAIN]
    denied = sandbox.require_permission(request, "ads_read")
    if denied is not None:
        return denied
    try:
        if kind == "user":
            user = {"id": "10000000000000001", "name": "Sandbox User"}
            if edge is None:
                return ads_objects.handle_read(request, sandbox, state, "user", user, "id,name")
            if edge == "adaccounts":
                return ads_objects.handle_list(request, sandbox, state, "user", user, edge)
        elif kind == "ad_account":
            return _handle_account(request, sandbox, state, node_id[4:], edge)
        elif kind in ("campaign", "adset", "ad"):
            return _handle_object(request, sandbox, state, node_id, kind, edge)
        elif kind == "adcreative":
            if edge is None:
                creative = state.creatives[node_id][1]
                return ads_objects.handle_read(request, sandbox, state, kind, creative)
        elif kind == "ad_report_run":
            return _handle_report_run(request, sandbox, state, node_id, edge)
    except QueryError as exc:
        return sandbox.error_response(exc.code, exc.message, subcode=exc.subcode)
    except ads_objects.ObjectError as exc:
        return sandbox.error_response(exc.code, exc.message, subcode=exc.subcode)
    if edge is not None:
        return ads_objects.unknown_edge(sandbox, kind, node_id, edge, request.method)
    return sandbox.unknown_node_response(node_id, request.method)


def _handle_account(
    request: Request, sandbox: Sandbox, state: AdsState, acct_id: str, edge: str | None
) -> Response:
    acct = state.accounts[acct_id]
    if edge is None:
        return ads_objects.handle_read(request, sandbox, state, "ad_account", acct)
    if edge in ads_objects.LIST_EDGES["ad_account"]:
        return ads_objects.handle_list(request, sandbox, state, "ad_account", acct, edge)
    if edge == "insights":
        return _insights(request, sandbox, state, acct, None)
    return ads_objects.unknown_edge(sandbox, "ad_account", f"act_{acct_id}", edge, request.method)


def _handle_object(
    request: Request, sandbox: Sandbox, state: AdsState, node_id: str, kind: str, edge: str | None
) -> Response:
    _, acct, pos = state.objects[node_id]
    obj = {"campaign": acct.campaigns, "adset": acct.adsets, "ad": acct.ads}[kind][pos]
    if edge is None:
        return ads_objects.handle_read(request, sandbox, state, kind, obj)
    if edge == "insights":
        return _insights(request, sandbox, state, acct, (kind, pos))
    if edge in ads_objects.LIST_EDGES[kind]:
        return ads_objects.handle_list(request, sandbox, state, kind, obj, edge)
    return ads_objects.unknown_edge(sandbox, kind, node_id, edge, request.method)


def _account_today(sandbox: Sandbox, acct: Account, at: datetime | None = None) -> date:
    return (at or sandbox.now()).astimezone(acct.tz).date()


def _insights(
    request: Request,
    sandbox: Sandbox,
    state: AdsState,
    acct: Account,
    scope: tuple[str, int] | None,
) -> Response:
    params = request.state.params
    check_insights_params(params)
    today = _account_today(sandbox, acct)
    version = request.path_params.get("version")
    query = parse_insights(state, params, acct, scope, today, version=version)
    threshold = sandbox.config.reduce_data_threshold
    too_big = threshold is not None and len(query) > threshold
    if request.method == "POST":
        return _start_job(
            request, sandbox, state, acct, scope, params, too_big, len(query), today, version
        )
    if too_big:
        return sandbox.reduce_data_response()
    return _page_with_summary(request, sandbox, query, params)


def _page_with_summary(
    request: Request, sandbox: Sandbox, query: InsightsQuery, params: dict
) -> Response:
    """A page of the query's rows, with Meta's ``summary`` (totals of the whole result)
    when the request asked for one (``default_summary=true`` or ``summary=[fields]``)."""
    response = sandbox.page(request, query, default_limit=25)
    wanted = sandbox.list_param(params, "summary")
    if not wanted and _bool_param(params, "default_summary"):
        wanted = list(query.fields)
    if not wanted or response.status_code != 200:
        return response
    body = orjson.loads(response.body)
    body["summary"] = summary_of(query, wanted)
    return sandbox.json_response(body)


def summary_of(query: InsightsQuery, fields: list[str]) -> dict[str, Any]:
    """Totals over every row of the query for the additive fields among `fields`, with the
    whole date range (reach and rates are not additive and are left out)."""
    totals = dict.fromkeys(("spend", "impressions", "clicks", "inline_link_clicks"), 0)
    for b in range(len(query.buckets)):
        sums = query.bucket_metrics(b)
        for name in totals:
            if sums:
                totals[name] += int(sums[name].sum())
    out: dict[str, Any] = {}
    for name in fields:
        if name == "spend":
            out[name] = _money(totals[name])
        elif name in totals:
            out[name] = str(totals[name])
    if query.buckets:
        out["date_start"] = query.buckets[0][0].isoformat()
        out["date_stop"] = query.buckets[-1][1].isoformat()
    return out


def _job_key(acct: Account, scope: tuple[str, int] | None, params: dict) -> str:
    keep = sorted(
        (k, str(v))
        for k, v in params.items()
        if k not in ("access_token", "appsecret_proof", "limit", "after", "before")
    )
    return f"{acct.id}|{scope}|{keep}"


def _start_job(
    request: Request,
    sandbox: Sandbox,
    state: AdsState,
    acct: Account,
    scope: tuple[str, int] | None,
    params: dict,
    too_big: bool,
    rows: int,
    today: date,
    version: str | None = None,
) -> Response:
    module = sys.modules[__name__]
    key = _job_key(acct, scope, params)
    fail = None
    if too_big:
        fail = (
            1,
            99,
            "Please reduce the amount of data you're asking for, then retry your request",
        )
    elif sandbox.config.async_fail_once and key not in state.failed_once:
        state.failed_once.add(key)
        fail = (2, None, "An unexpected error has occurred. Please retry your request later.")
    with state._lock:
        job_id = str(6_120_000_000_000_000 + next(state._job_ids))
    now = sandbox.now()
    since, until = _time_range(sandbox, params, today)
    job: dict[str, Any] = {
        "id": job_id,
        "account": acct,
        "scope": scope,
        "params": dict(params),
        "time_ref": now,
        "date_start": since.isoformat(),
        "date_stop": until.isoformat(),
        "polls": 0,
        "fail": fail,
        "key": key,
        "version": version,
    }
    model = sandbox.timing.jobs
    if model is not None:
        # Realistic profile: the run takes time that grows with its size, and that time
        # (and its rows' CPU) counts against the account's ads_insights budget at once.
        with state._lock:
            duration = model.duration(rows, sandbox.job_rng)
        job["started"] = sandbox.clock()
        job["duration"] = duration
        sandbox.charge(
            getattr(request.state, "usage_scope", None),
            cpu_seconds=rows * model.cpu_ms_per_row / 1000.0,
            time_seconds=duration,
        )
    state.jobs[job_id] = job
    sandbox.register_node(job_id, "ad_report_run", module)
    sandbox.stats["async_jobs"] += 1
    return sandbox.json_response({"report_run_id": job_id})


def _job_progress(sandbox: Sandbox, job: dict, count_poll: bool) -> tuple[str, int]:
    """(async_status, percent) of a running or finished job; "done" when it has ended."""
    model = sandbox.timing.jobs
    if model is not None and "duration" in job:
        elapsed = sandbox.clock() - job["started"]
        duration = job["duration"]
        if elapsed < model.not_started_seconds:
            return "Job Not Started", 0
        if elapsed < duration:
            pct = min(99, int(100 * elapsed / duration))
            return ("Job Started" if pct < 5 else "Job Running"), pct
        if elapsed < duration + model.finishing_seconds:
            return "Job Running", 100  # Meta can show 100 % while still running
        return "done", 100
    need = max(sandbox.config.async_polls_to_complete, 1)
    if count_poll:
        job["polls"] += 1
    polls = job["polls"]
    if polls <= need:
        # Meta can show 100 % while the job is still running: only the text counts.
        pct = min(100, int(100 * polls / need))
        text = (
            "Job Not Started"
            if polls == 0
            else ("Job Started" if polls == 1 and need > 2 else "Job Running")
        )
        return text, pct
    return "done", 100


def _job_status(sandbox: Sandbox, job: dict, count_poll: bool) -> dict:
    acct: Account = job["account"]
    body: dict[str, Any] = {
        "id": job["id"],
        "account_id": acct.id,
        "time_ref": int(job["time_ref"].timestamp()),
        "date_start": job["date_start"],
        "date_stop": job["date_stop"],
        "is_running": True,
    }
    text, pct = _job_progress(sandbox, job, count_poll)
    if text != "done":
        body["async_status"] = text
        body["async_percent_completion"] = pct
    elif job["fail"] is not None:
        code, subcode, message = job["fail"]
        body.update(
            {
                "async_status": "Job Failed",
                "async_percent_completion": 0,
                "is_running": False,
                "error_code": code,
                "error_message": message,
                "error_user_title": "Report failed",
                "error_user_msg": message,
            }
        )
        if subcode is not None:
            body["error_subcode"] = subcode
    else:
        ran = max(1, round(job.get("duration", 1.0)))
        body.update(
            {
                "async_status": "Job Completed",
                "async_percent_completion": 100,
                "is_running": False,
                "time_completed": int(job["time_ref"].timestamp()) + ran,
            }
        )
    return body


def _handle_report_run(
    request: Request, sandbox: Sandbox, state: AdsState, job_id: str, edge: str | None
) -> Response:
    job = state.jobs[job_id]
    if edge is None:
        params = request.state.params
        ads_objects.check_params(params, (), "an AdReportRun read")
        status = _job_status(sandbox, job, count_poll=True)
        if params.get("fields") in (None, ""):
            return sandbox.json_response(status)  # Meta's default: every status field
        fields = ads_objects.requested_fields(params, "AdReportRun")
        renderer = ads_objects.Renderer(sandbox, state, params)
        run = {"status": status, "account": job["account"]}
        return sandbox.json_response(renderer.render("ad_report_run", run, fields))
    if edge != "insights":
        return ads_objects.unknown_edge(sandbox, "ad_report_run", job_id, edge, request.method)
    check_insights_params(request.state.params, report_run=True)
    status = _job_status(sandbox, job, count_poll=False)
    if status["async_status"] != "Job Completed":
        raise QueryError(2601, "Error accessing adreport job.")
    query = job.get("query")
    if query is None:
        # The run's rows are fixed when it starts (its time_ref): parse once per run, not
        # once per page.
        acct: Account = job["account"]
        today = _account_today(sandbox, acct, job["time_ref"])
        query = job["query"] = parse_insights(
            state, job["params"], acct, job["scope"], today, version=job.get("version")
        )
    return sandbox.page(request, query, default_limit=25)
