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

import itertools
import re
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from everreach.sandbox import ads_objects
from everreach.sandbox.core import Sandbox
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
ACCEPTED_WINDOWS = set(WINDOWS) | {"7d_view", "28d_view", "default"}  # views: not returned
ACTION_TYPES = (
    "link_click",
    "landing_page_view",
    "lead",
    "offsite_conversion.fb_pixel_purchase",
    "omni_purchase",
)
LEVELS = ("account", "campaign", "adset", "ad")
NUMERIC_FIELDS = {
    "spend",
    "impressions",
    "reach",
    "frequency",
    "clicks",
    "inline_link_clicks",
    "ctr",
    "cpc",
    "cpm",
    "actions",
    "action_values",
}
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
INSIGHT_FIELDS = NUMERIC_FIELDS | ID_FIELDS
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
        self.creatives: dict[str, dict] = {}  # creative id → creative (ads_objects)
        self.ad_creative: dict[str, str] = {}  # ad id → its creative's id
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


@dataclass
class InsightsQuery:
    """A parsed insights request over one account (optionally one object in it)."""

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

    def __len__(self) -> int:
        return len(self.buckets) * len(self.group_objs)

    def __getitem__(self, item: slice) -> list[dict]:
        if not isinstance(item, slice):
            raise TypeError("InsightsQuery supports slices only")
        start, stop, _ = item.indices(len(self))
        ngroups = len(self.group_objs)
        rows: list[dict] = []
        if ngroups == 0 or start >= stop:
            return rows
        for b in range(start // ngroups, (stop - 1) // ngroups + 1):
            lo = max(start - b * ngroups, 0)
            hi = min(stop - b * ngroups, ngroups)
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
        start, stop, _ = slice(start, stop).indices(len(self))
        ngroups = len(self.group_objs)
        if ngroups == 0 or start >= stop:
            return b""
        pieces: list[str] = []
        for b in range(start // ngroups, (stop - 1) // ngroups + 1):
            lo = max(start - b * ngroups, 0)
            hi = min(stop - b * ngroups, ngroups)
            rows = self.rendered_bucket(b)
            pieces.extend(rows[lo:hi] if (lo, hi) != (0, ngroups) else rows)
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
            )
            self._sig = sig
        return sig

    def rendered_bucket(self, b: int) -> list[str]:
        """JSON text of every row (all groups) of bucket ``b``, cached by query signature."""
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
        acct = self.acct
        fields = list(dict.fromkeys(self.fields))
        out: list[str] = []
        for obj in self.group_objs:
            row: dict[str, Any] = {}
            for f in fields:
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
            out.append(orjson.dumps(row)[1:-1].decode() if row else "")
        with state._lock:
            state._prefix_cache[key] = out
            while len(state._prefix_cache) > 64:
                state._prefix_cache.popitem(last=False)
        return out

    def _render_bucket(self, b: int) -> list[str]:
        since, until = self.buckets[b]
        sums = self.bucket_metrics(b)
        want = set(self.fields)
        ngroups = len(self.group_objs)
        prefixes = self._prefixes()
        tail = f'"date_start":"{since.isoformat()}","date_stop":"{until.isoformat()}"'
        if not sums:  # slots without delivery (kept so that paging positions stay stable)
            zero = "".join(
                f'"{f}":"0",'
                for f in ("spend", "impressions", "reach", "clicks", "inline_link_clicks")
                if f in want
            )
            return ["{" + (p + "," if p else "") + zero + tail + "}" for p in prefixes[:ngroups]]
        cols = {k: v.tolist() for k, v in sums.items()}
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
        if "reach" in want:
            members.append([f'"reach":"{v}",' for v in reach_l])
        if "frequency" in want:
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
        if "actions" in want:
            members.append(self._render_actions(cols, money=False))
        if "action_values" in want:
            members.append(self._render_actions(cols, money=True))
        heads = [p + "," if p else "" for p in prefixes]
        if not members:
            return ["{" + h + tail + "}" for h in heads]
        return ["{" + "".join(parts) + tail + "}" for parts in zip(heads, *members, strict=True)]

    def _render_actions(self, cols: dict, *, money: bool) -> list[str]:
        """The ``"actions":[…],`` (or ``"action_values"``) member of every group ('' if empty).

        Column-wise: each possible entry is rendered for all groups at once (with a
        trailing comma, '' where ``_actions`` leaves it out), then joined per group.
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

    def bucket_metrics(self, b: int) -> dict[str, np.ndarray]:
        """Group-level integer metrics (numpy arrays, one entry per group) for bucket ``b``."""
        since, until = self.buckets[b]
        ngroups = len(self.group_objs)
        sums: dict[str, np.ndarray] = {}
        reach_sum = np.zeros(ngroups, dtype=np.int64)
        reach_max = np.zeros(ngroups, dtype=np.int64)
        counted = np.zeros(ngroups, dtype=np.int64)
        day = since
        while day <= until:
            if self.acct.delivering and self.acct.start_day <= day < self.today:
                m = self.state.day_metrics(self.acct, day, self.today)
                idx = self.groups
                mask = self.ad_mask
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
                    vals = np.bincount(idx, weights=m[name][mask], minlength=ngroups)
                    sums[name] = sums.get(name, 0) + vals.astype(np.int64)
                for name, comp in (("v1", "p1"), ("v7", "p7"), ("v28", "p28"), ("vv", "pv")):
                    vals = np.bincount(idx, weights=(m[comp] * m["aov"])[mask], minlength=ngroups)
                    sums[name] = sums.get(name, 0) + vals.astype(np.int64)
                r = m["reach"][mask]
                reach_sum += np.bincount(idx, weights=r, minlength=ngroups).astype(np.int64)
                np.maximum.at(reach_max, idx, r)
                counted += np.bincount(idx, minlength=ngroups)
            day += timedelta(days=1)
        if not sums:
            return {}
        # Reach overlaps across ads and days: below the sum, never below the largest part.
        n_parts = np.maximum(counted, 1)
        overlap = 1.0 - 0.3 * (1.0 - 1.0 / n_parts)
        sums["reach"] = np.maximum(reach_max, np.floor(reach_sum * overlap).astype(np.int64))
        sums["_counted"] = counted
        return sums

    def bucket_rows(self, b: int, lo: int, hi: int) -> list[dict]:
        """Rows for groups ``lo:hi`` of time bucket ``b`` (groups without delivery still
        occupy their slot so that paging positions stay stable; they answer zeros)."""
        since, until = self.buckets[b]
        sums = self.bucket_metrics(b)
        acct = self.acct
        fields = self.fields
        want = set(fields)
        ds, de = since.isoformat(), until.isoformat()
        rows = []
        cols = {k: v[lo:hi].tolist() for k, v in sums.items()} if sums else {}
        for i in range(hi - lo):
            obj = self.group_objs[lo + i]
            row: dict[str, Any] = {}
            for f in fields:
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
            if cols:
                imps = cols["impressions"][i]
                clicks = cols["clicks"][i]
                spend = cols["spend"][i]
                reach = cols["reach"][i]
                if "spend" in want:
                    row["spend"] = _money(spend)
                if "impressions" in want:
                    row["impressions"] = str(imps)
                if "reach" in want:
                    row["reach"] = str(reach)
                if "frequency" in want and reach:
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
                    actions = self._actions(cols, i, money=False)
                    if actions:
                        row["actions"] = actions
                if "action_values" in want:
                    values = self._actions(cols, i, money=True)
                    if values:
                        row["action_values"] = values
            else:  # a slot without delivery (kept so that paging positions stay stable)
                for f in ("spend", "impressions", "reach", "clicks", "inline_link_clicks"):
                    if f in want:
                        row[f] = "0"
            row["date_start"] = ds
            row["date_stop"] = de
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

    def _actions(self, cols: dict, i: int, *, money: bool) -> list[dict]:
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
                if n:
                    entry = {"action_type": atype, "value": str(n)}
                    for w in windows:
                        if w.endswith("_click"):
                            entry[w] = str(n)
                    out.append(entry)
        counts = {"1d_click": p1, "7d_click": p1 + p7, "28d_click": p1 + p7 + p28, "1d_view": pv}
        values = {"1d_click": v1, "7d_click": v1 + v7, "28d_click": v1 + v7 + v28, "1d_view": vv}
        src = values if money else counts
        default = src["7d_click"] + src["1d_view"]  # Meta's default: 7-day click + 1-day view
        if default:
            for atype in ("offsite_conversion.fb_pixel_purchase", "omni_purchase"):
                entry = {"action_type": atype, "value": _money(default) if money else str(default)}
                for w in windows:
                    if src[w]:
                        entry[w] = _money(src[w]) if money else str(src[w])
                out.append(entry)
        return out


def _money(cents: int) -> str:
    """Integer cents as Meta's decimal string ("12.34")."""
    cents = int(cents)
    return f"{cents // 100}.{cents % 100:02d}"


def parse_insights(
    state: AdsState, params: dict, acct: Account, scope: tuple[str, int] | None, today: date
) -> InsightsQuery:
    """Turn insights request parameters into an :class:`InsightsQuery` (or QueryError)."""
    sandbox = state.sandbox
    level = str(params.get("level") or (scope[0] if scope else "account"))
    if level not in LEVELS:
        raise QueryError(100, f"(#100) param level must be one of {{{', '.join(LEVELS)}}}")
    fields = sandbox.list_param(params, "fields", ["spend", "impressions"])
    for f in fields:
        if f not in INSIGHT_FIELDS:
            raise QueryError(
                100,
                f"(#100) {f} is not valid for fields param. please check "
                "https://developers.facebook.com/docs/marketing-api/reference/"
                "ads-insights/ for all valid values",
            )
    windows_raw = sandbox.list_param(params, "action_attribution_windows")
    for w in windows_raw:
        if w not in ACCEPTED_WINDOWS:
            raise QueryError(
                100,
                f"(#100) action_attribution_windows[0] must be one of the "
                f"following values: {', '.join(sorted(ACCEPTED_WINDOWS))}",
            )
    windows = [w for w in windows_raw if w in WINDOWS]
    # time range (account-local dates)
    since, until = _time_range(sandbox, params, today)
    if until < since:
        raise QueryError(100, "(#100) time_range's since must be before until")
    inc = str(params.get("time_increment", "all_days"))
    if inc == "all_days":
        step = (until - since).days + 1
    elif inc.isdigit() and 1 <= int(inc) <= 90:
        step = int(inc)
    else:
        raise QueryError(100, "(#100) param time_increment must be all_days or 1 to 90")
    buckets = []
    d = since
    while d <= until:
        end = min(d + timedelta(days=step - 1), until)
        buckets.append((d, end))
        d = end + timedelta(days=1)
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
    filtering = sandbox.json_param(params, "filtering") or []
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
        state, acct, level, fields, windows, buckets, mask, groups, group_objs, today
    )


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
    tr = sandbox.json_param(params, "time_range")
    if tr:
        try:
            return date.fromisoformat(tr["since"]), date.fromisoformat(tr["until"])
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(
                100,
                "(#100) param time_range must be a JSON object with "
                "since and until dates (YYYY-MM-DD)",
            ) from exc
    preset = str(params.get("date_preset", "last_30d"))
    yesterday = today - timedelta(days=1)
    if preset == "today":
        return today, today
    if preset == "yesterday":
        return yesterday, yesterday
    if preset == "maximum":
        return today - timedelta(days=37 * 30), yesterday
    m = _DATE_PRESET.match(preset)
    if m:
        return today - timedelta(days=int(m[1])), yesterday
    raise QueryError(
        100, f"(#100) date_preset must be one of today, yesterday, last_Nd, maximum; got {preset}"
    )


# --------------------------------------------------------------------------- handlers
def register(sandbox: Sandbox) -> None:
    """Create the seeded ads data and register every ads node with the sandbox."""
    module = sys.modules[__name__]
    state = AdsState(sandbox)
    state.build()
    sandbox.domains[DOMAIN] = state
    for acct in state.accounts.values():
        sandbox.register_node(f"act_{acct.id}", "ad_account", module)
    for obj_id, (kind, _, _) in state.objects.items():
        sandbox.register_node(obj_id, kind, module)
    ads_objects.build_creatives(state)
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
        acct = state.accounts[state.creatives[node_id]["account_id"]]
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
                creative = state.creatives[node_id]
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
    today = _account_today(sandbox, acct)
    query = parse_insights(state, params, acct, scope, today)
    threshold = sandbox.config.reduce_data_threshold
    too_big = threshold is not None and len(query) > threshold
    if request.method == "POST":
        return _start_job(request, sandbox, state, acct, scope, params, too_big, len(query), today)
    if too_big:
        return sandbox.reduce_data_response()
    return sandbox.page(request, query, default_limit=25)


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
        ads_objects.check_params(params, (), "AdReportRun")
        status = _job_status(sandbox, job, count_poll=True)
        if params.get("fields") in (None, ""):
            return sandbox.json_response(status)  # Meta's default: every status field
        fields = ads_objects.requested_fields(params, "AdReportRun")
        renderer = ads_objects.Renderer(sandbox, state, params)
        run = {"status": status, "account": job["account"]}
        return sandbox.json_response(renderer.render("ad_report_run", run, fields))
    if edge != "insights":
        return ads_objects.unknown_edge(sandbox, "ad_report_run", job_id, edge, request.method)
    status = _job_status(sandbox, job, count_poll=False)
    if status["async_status"] != "Job Completed":
        raise QueryError(2601, "Error accessing adreport job.")
    query = job.get("query")
    if query is None:
        # The run's rows are fixed when it starts (its time_ref): parse once per run, not
        # once per page.
        acct: Account = job["account"]
        today = _account_today(sandbox, acct, job["time_ref"])
        query = job["query"] = parse_insights(state, job["params"], acct, job["scope"], today)
    return sandbox.page(request, query, default_limit=25)
