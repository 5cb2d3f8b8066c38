"""Organic content, a day at a time: list posts, snapshot their lifetime counters, read the
accounts' daily insights, load Postgres; `sync_range` runs a day function over every
configured account of both platforms and a range of days.

Grain and keys:

* ``social_media_post`` — one row per (platform, post_id); upserted.
* ``social_post_insights`` — one row per (platform, post_id, snapshot_date, metric): the
  lifetime counters as observed for the partition day. Recent posts (younger than
  ``recent_days``) are snapshotted every day; older ones every ``old_post_refresh_days``
  days (spread over the days by a hash of the id), never the whole history each day.
* ``social_account_insights`` — one row per (platform, account_id, date, metric, period).

Every write is set-based (COPY into a temp table, then delete-window/insert or merge) in
one transaction per asset, so a re-run leaves the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg

from everreach.meta.errors import GraphAPIError, GraphConfigurationError, InvalidMetricError
from everreach.organic import metrics as M
from everreach.organic.fetch import (
    ItemResult,
    OrganicGraph,
    PageTokenError,
    parse_insight_values,
)
from everreach.parallel import map_each
from everreach.settings import SettingError, named_token
from everreach.warehouse.bulk import copy_rows, create_temp_like, insert_via_stage

#: Lifetime counters can only be read "now": a partition older than this (relative to the
#: observation time) gets no post snapshot rather than a mislabelled one.
SNAPSHOT_GRACE_DAYS = 2
STORY_LIFETIME = timedelta(hours=24)
#: social_* platform → its `meta_platform_config.platform`.
PLATFORMS = (("instagram", "instagram_account"), ("facebook", "facebook_page"))
MEDIA_PAGE_LIMIT = 100

POST_COLUMNS = (
    "platform",
    "post_id",
    "account_id",
    "media_type",
    "media_product_type",
    "caption",
    "permalink",
    "thumbnail_url",
    "posted_at",
    "raw",
)
SNAPSHOT_COLUMNS = (
    "platform",
    "post_id",
    "snapshot_date",
    "metric",
    "value",
    "value_breakdown",
    "fetched_at",
)
ACCOUNT_COLUMNS = (
    "platform",
    "account_id",
    "date",
    "metric",
    "period",
    "value",
    "value_breakdown",
    "fetched_at",
)


@dataclass(frozen=True)
class OrganicAccount:
    """One configured IG account or Facebook Page (a ``meta_platform_config`` row)."""

    platform: str  # instagram_account | facebook_page
    external_id: str
    name: str | None = None
    token_env_var: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SyncReport:
    """What one sync did (becomes the asset's metadata)."""

    accounts: int = 0
    posts: int = 0
    snapshot_posts: int = 0
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)


@dataclass
class RangeReport(SyncReport):
    """What a sync over a range of days did, summed over platforms and days (its preview rows
    labelled with both); `errors` holds the platforms that stopped on a configuration error
    (token, metric, setting) as `(platform, message)`: a person must fix those, retrying
    cannot help."""

    account_ids: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, platform: str, day: date, report: SyncReport, preview_rows: int) -> None:
        """Fold one platform-day in (its first `preview_rows` preview rows, labelled)."""
        self.posts += report.posts
        self.snapshot_posts += report.snapshot_posts
        self.rows += report.rows
        self.skipped.update(report.skipped)
        self.by_kind.update(report.by_kind)
        self.notes.extend(report.notes)
        self.preview.extend(
            {"platform": platform, "date": str(day), **row} for row in report.preview[:preview_rows]
        )


#: One platform-day: (platform, its accounts, day) → what it wrote.
DaySync = Callable[[str, Sequence["OrganicAccount"], date], SyncReport]
#: Called after each platform-day with (platform, day, rows written).
DayDone = Callable[[str, date, int], None]


def sync_range(
    conn: psycopg.Connection,
    days: Sequence[date],
    sync_day: DaySync,
    *,
    on_day: DayDone | None = None,
    preview_rows: int = 5,
) -> RangeReport:
    """Run `sync_day` for each platform's configured accounts and each day, in order.

    A configuration error stops that platform (recorded in `errors`) and lets the other
    one run; any other error propagates (the caller retries the whole range)."""
    result = RangeReport()
    for platform, config_platform in PLATFORMS:
        try:
            accounts = load_accounts(conn, config_platform)
            result.accounts += len(accounts)
            result.account_ids.extend(a.external_id for a in accounts)
            for day in days:
                report = sync_day(platform, accounts, day)
                result.add(platform, day, report, preview_rows)
                if on_day is not None:
                    on_day(platform, day, report.rows)
        except (GraphConfigurationError, SettingError) as exc:
            result.errors.append((platform, str(exc)))
    return result


def load_accounts(conn: psycopg.Connection, platform: str) -> list[OrganicAccount]:
    """Enabled ``meta_platform_config`` rows of ``platform``, ordered by id."""
    rows = conn.execute(
        "select external_id, name, token_env_var, settings from meta_platform_config "
        "where platform = %s and enabled order by id",
        (platform,),
    ).fetchall()
    return [OrganicAccount(platform, r[0], r[1], r[2], r[3] or {}) for r in rows]


def snapshot_allowed(day: date, as_of: datetime) -> bool:
    """Whether counters observed at ``as_of`` may be stored as day ``day``'s snapshot."""
    return (as_of.astimezone(UTC).date() - day).days <= SNAPSHOT_GRACE_DAYS


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("+0000", "+00:00").replace("Z", "+00:00"))


# =============================================================================== posts
def sync_posts(
    conn: psycopg.Connection,
    graph: OrganicGraph,
    platform: str,
    accounts: Sequence[OrganicAccount],
    day: date,
    as_of: datetime,
    *,
    recent_days: int,
    old_post_refresh_days: int,
    env: Mapping[str, str] | None = None,
    parallel_accounts: int = 1,
) -> SyncReport:
    """List posts of ``accounts`` and snapshot their lifetime insights for ``day``.

    ``platform`` is ``instagram`` or ``facebook``. Posts published after ``day`` are left
    to their own partitions. Up to ``parallel_accounts`` accounts are read at once, each by
    one worker through a Graph view scoped to the account (its usage pauses it alone);
    everything is written in one transaction once every account is read.
    """
    report = SyncReport(accounts=len(accounts))
    _, day_end = _day_bounds(day)
    cutoff = day_end - timedelta(days=recent_days)
    allowed = snapshot_allowed(day, as_of)
    if not allowed:
        report.notes.append(
            f"{day} is more than {SNAPSHOT_GRACE_DAYS} days before the "
            "observation time: lifetime counters cannot be read for the past, "
            "so no post snapshot was written"
        )

    def read_account(account: OrganicAccount) -> _AccountPosts:
        # One account's listing and snapshot (Graph calls and reads only; no writes).
        part = _AccountPosts()
        scoped = graph.scoped(account.external_id)
        token = (
            _instagram_token(account, env)
            if platform == "instagram"
            else page_token(scoped, account, env)
        )
        known = dict(
            conn.execute(
                "select post_id, posted_at from social_media_post where platform = %s and "
                "account_id = %s",
                (platform, account.external_id),
            ).fetchall()
        )
        listed = (
            _list_instagram(scoped, account, token, known, cutoff, day_end)
            if platform == "instagram"
            else _list_page_posts(scoped, account, token, known, cutoff, day_end)
        )
        for row, _extra in listed.values():
            part.post_rows.append(row)
        if not allowed:
            return part
        due = _due_posts(
            conn, platform, account.external_id, listed, known, cutoff, day, old_post_refresh_days
        )
        fetched_at = as_of
        if platform == "instagram":
            results = _instagram_insights(scoped, due, token, as_of, part.report)
        else:
            results = _facebook_insights(scoped, due, token, part.report)
        for post_id, outcome in results.items():
            if outcome.skipped:
                part.skips[post_id] = outcome.skipped
                part.report.skipped[outcome.skipped] += 1
                continue
            part.skips[post_id] = None
            part.report.snapshot_posts += 1
            for metric, value, breakdown in outcome.body["rows"]:
                part.snapshot_rows.append(
                    (
                        platform,
                        post_id,
                        day,
                        metric,
                        value,
                        orjson.dumps(breakdown).decode() if breakdown is not None else None,
                        fetched_at,
                    )
                )
        return part

    post_rows: list[tuple] = []
    snapshot_rows: list[tuple] = []
    skips: dict[str, str | None] = {}
    for part in map_each(read_account, accounts, workers=parallel_accounts, name="organic"):
        post_rows.extend(part.post_rows)
        snapshot_rows.extend(part.snapshot_rows)
        skips.update(part.skips)
        report.snapshot_posts += part.report.snapshot_posts
        report.skipped.update(part.report.skipped)
        report.by_kind.update(part.report.by_kind)
    report.posts = len(post_rows)
    with conn.transaction():
        write_posts(conn, post_rows)
        report.rows = write_snapshots(
            conn, platform, day, snapshot_rows, [p for p, r in skips.items() if r is None]
        )
        write_skips(conn, platform, skips)
    report.preview = [{"post_id": r[1], "metric": r[3], "value": r[4]} for r in snapshot_rows[:10]]
    return report


@dataclass
class _AccountPosts:
    """What reading one account gave: rows to write, skip reasons, counters."""

    post_rows: list[tuple] = field(default_factory=list)
    snapshot_rows: list[tuple] = field(default_factory=list)
    skips: dict[str, str | None] = field(default_factory=dict)
    report: SyncReport = field(default_factory=SyncReport)


def _instagram_token(account: OrganicAccount, env: Mapping[str, str] | None) -> str | None:
    return named_token(account.token_env_var, f"Instagram account {account.external_id}", env)


def page_token(
    graph: OrganicGraph, account: OrganicAccount, env: Mapping[str, str] | None = None
) -> str:
    """The Page access token of a configured Facebook Page.

    ``settings.page_token_env_var`` names a variable holding the Page token itself;
    otherwise the Page token is requested with the user token (``token_env_var`` or the
    client's default) via ``/{page-id}?fields=access_token``.
    """
    what = f"Facebook Page {account.external_id}"
    direct_var = account.settings.get("page_token_env_var")
    if direct_var:
        return named_token(str(direct_var), what, env) or ""
    user_token = named_token(account.token_env_var, what, env)
    body = graph.get(account.external_id, {"fields": "access_token"}, token=user_token)
    token = body.get("access_token")
    if not token:
        source = account.token_env_var or "META_ACCESS_TOKEN"
        raise PageTokenError(
            f"{what}: no Page access token. The user token in {source} cannot obtain one "
            f"(/{account.external_id}?fields=access_token returned none): the user needs "
            "a task (e.g. ANALYZE) on this Page",
            code=210,
        )
    return str(token)


def _page_token_error(account: OrganicAccount, error: GraphAPIError) -> PageTokenError:
    var = account.settings.get("page_token_env_var") or account.token_env_var
    return PageTokenError(
        f"Facebook Page {account.external_id}: Meta refused the token"
        f"{f' from {var}' if var else ''}: it requires a Page access token "
        f"({error.message})",
        code=error.code,
        subcode=error.subcode,
        fbtrace_id=error.fbtrace_id,
        http_status=error.http_status,
    )


def _list_instagram(
    graph: OrganicGraph,
    account: OrganicAccount,
    token: str | None,
    known: Mapping[str, datetime],
    cutoff: datetime,
    day_end: datetime,
) -> dict[str, tuple[tuple, dict]]:
    """Media and live stories, newest first, until known posts older than ``cutoff``."""
    out: dict[str, tuple[tuple, dict]] = {}
    params = {"fields": M.INSTAGRAM_MEDIA_FIELDS, "limit": MEDIA_PAGE_LIMIT}
    for edge in ("media", "stories"):
        for item in graph.paginate(f"{account.external_id}/{edge}", params, token=token):
            posted = _parse_ts(item["timestamp"])
            if posted >= day_end:
                continue  # belongs to a later partition
            if posted < cutoff and item["id"] in known:
                break  # older posts are known already: no need to page through history
            raw = {
                k: v for k, v in item.items() if k not in ("like_count", "comments_count")
            }  # counters live in insights
            out[item["id"]] = (
                (
                    "instagram",
                    item["id"],
                    account.external_id,
                    item.get("media_type"),
                    item.get("media_product_type"),
                    item.get("caption"),
                    item.get("permalink"),
                    item.get("thumbnail_url"),
                    posted,
                    orjson.dumps(raw).decode(),
                ),
                item,
            )
    return out


def _list_page_posts(
    graph: OrganicGraph,
    account: OrganicAccount,
    token: str,
    known: Mapping[str, datetime],
    cutoff: datetime,
    day_end: datetime,
) -> dict[str, tuple[tuple, dict]]:
    out: dict[str, tuple[tuple, dict]] = {}
    params = {"fields": M.FACEBOOK_POST_FIELDS, "limit": MEDIA_PAGE_LIMIT}
    try:
        for item in graph.paginate(f"{account.external_id}/published_posts", params, token=token):
            posted = _parse_ts(item["created_time"])
            if posted >= day_end:
                continue
            if posted < cutoff and item["id"] in known:
                break
            raw = {k: v for k, v in item.items() if k not in ("shares", "comments", "reactions")}
            out[item["id"]] = (
                (
                    "facebook",
                    item["id"],
                    account.external_id,
                    item.get("status_type"),
                    "FEED",
                    item.get("message"),
                    item.get("permalink_url"),
                    item.get("full_picture"),
                    posted,
                    orjson.dumps(raw).decode(),
                ),
                item,
            )
    except GraphAPIError as exc:
        if exc.code in (190, 210) or "page access token" in (exc.message or "").lower():
            raise _page_token_error(account, exc) from exc
        raise
    return out


def _due_posts(
    conn: psycopg.Connection,
    platform: str,
    account_id: str,
    listed: Mapping[str, tuple[tuple, dict]],
    known: Mapping[str, datetime],
    cutoff: datetime,
    day: date,
    refresh_days: int,
) -> list[tuple[str, str, str, datetime]]:
    """Posts to snapshot for ``day``: (post_id, media_type, product_type, posted_at).

    Recent posts (listed, posted after ``cutoff``) every day; older posts when their
    hash bucket comes round, when they were never snapshotted, or when their last
    snapshot is older than ``refresh_days`` (missed runs). Media Meta refused for good
    (posted before the business conversion) are not asked again.
    """
    due: dict[str, tuple[str, str, str, datetime]] = {}
    for post_id, (row, _item) in listed.items():
        if row[8] >= cutoff:
            due[post_id] = (post_id, row[3], row[4], row[8])
    old = conn.execute(
        """
        select p.post_id, p.media_type, p.media_product_type, p.posted_at
        from social_media_post p
        where p.platform = %(platform)s and p.account_id = %(account)s
          and p.posted_at < %(cutoff)s
          and p.insights_skipped_reason is distinct from 'before_business_conversion'
          and (
            mod(abs(hashtext(p.post_id)::bigint), %(n)s) = mod(%(ord)s, %(n)s)
            or not exists (
              select 1 from social_post_insights s
              where s.platform = p.platform and s.post_id = p.post_id
                and s.snapshot_date > %(day)s::date - %(n)s and s.snapshot_date <> %(day)s)
          )
        """,
        {
            "platform": platform,
            "account": account_id,
            "cutoff": cutoff,
            "n": refresh_days,
            "ord": day.toordinal(),
            "day": day,
        },
    ).fetchall()
    for post_id, media_type, product_type, posted_at in old:
        due.setdefault(post_id, (post_id, media_type, product_type, posted_at))
    # New old posts (first listing of an account) are not in the table yet.
    for post_id, (row, _item) in listed.items():
        if post_id not in known and post_id not in due:
            due[post_id] = (post_id, row[3], row[4], row[8])
    return list(due.values())


def _instagram_insights(
    graph: OrganicGraph,
    due: Iterable[tuple[str, str, str, datetime]],
    token: str | None,
    as_of: datetime,
    report: SyncReport,
) -> dict[str, ItemResult]:
    requests = []
    out: dict[str, ItemResult] = {}
    for post_id, media_type, product_type, posted_at in due:
        kind = M.instagram_media_kind(media_type, product_type)
        if kind is None:
            out[post_id] = ItemResult(skipped="no_insights_for_media_type")
            continue
        if kind == "STORY" and as_of - posted_at >= STORY_LIFETIME:
            # Story insights vanish after 24 h: asking would only return nothing.
            out[post_id] = ItemResult(skipped="story_expired")
            continue
        report.by_kind[kind] += 1
        requests.append(
            (post_id, kind, M.INSTAGRAM_MEDIA_METRICS[kind], M.INSTAGRAM_MEDIA_PARAMS.get(kind, {}))
        )
    answers = graph.object_insights(requests, token=token, what="Instagram media of kind")
    for post_id, answer in answers.items():
        if answer.skipped:
            out[post_id] = answer
            continue
        rows = parse_insight_values((answer.body or {}).get("data", []))
        out[post_id] = ItemResult(body={"rows": rows}) if rows else ItemResult(skipped="no_data")
    return out


def _facebook_insights(
    graph: OrganicGraph,
    due: Iterable[tuple[str, str, str, datetime]],
    token: str,
    report: SyncReport,
) -> dict[str, ItemResult]:
    # One batch item per post: counters (shares/comments/reactions) and insights by field
    # expansion, so old posts that were not listed today cost no extra call.
    metric_list = ",".join(M.FACEBOOK_POST_METRICS)
    fields = (
        "shares,comments.summary(true).limit(0),reactions.summary(true).limit(0),"
        f"insights.metric({metric_list})"
    )
    due = list(due)
    answers = graph.batch_get([(post_id, {"fields": fields}) for post_id, *_ in due], token=token)
    out: dict[str, ItemResult] = {}
    for (post_id, *_rest), answer in zip(due, answers, strict=True):
        if isinstance(answer, InvalidMetricError):
            raise graph.metric_error(
                answer,
                f"{post_id}/insights",
                M.FACEBOOK_POST_METRICS,
                {},
                token=token,
                what="Facebook Page posts",
            )
        if isinstance(answer, GraphAPIError):
            if answer.code == 210:
                raise PageTokenError(f"Facebook post {post_id}: {answer.message}", code=answer.code)
            raise answer
        if answer.skipped:
            out[post_id] = answer
            continue
        body = answer.body or {}
        rows = parse_insight_values((body.get("insights") or {}).get("data", []))
        rows.append(("shares", float((body.get("shares") or {}).get("count", 0)), None))
        for edge in ("comments", "reactions"):
            summary = (body.get(edge) or {}).get("summary") or {}
            rows.append((edge, float(summary.get("total_count", 0)), None))
        report.by_kind["FACEBOOK_POST"] += 1
        out[post_id] = ItemResult(body={"rows": rows})
    return out


# =============================================================================== account insights
def sync_account_insights(
    conn: psycopg.Connection,
    graph: OrganicGraph,
    platform: str,
    accounts: Sequence[OrganicAccount],
    day: date,
    as_of: datetime,
    *,
    env: Mapping[str, str] | None = None,
    parallel_accounts: int = 1,
) -> SyncReport:
    """Daily account metrics of ``day`` for every account; replaces that day's rows.

    Up to ``parallel_accounts`` accounts are read at once (one worker each, see
    :func:`sync_posts`); the day is written in one transaction."""
    report = SyncReport(accounts=len(accounts))
    start, end = _day_bounds(day)
    since, until = int(start.timestamp()), int(end.timestamp())

    def read_account(account: OrganicAccount) -> tuple[list[tuple], Counter]:
        rows: list[tuple] = []
        skipped: Counter = Counter()
        scoped = graph.scoped(account.external_id)
        if platform == "instagram":
            token = _instagram_token(account, env)
            calls = [
                (
                    f"{account.external_id}/insights",
                    {
                        "metric": ",".join(M.INSTAGRAM_ACCOUNT_TOTAL_VALUE),
                        "period": "day",
                        "metric_type": "total_value",
                        "since": since,
                        "until": until,
                    },
                )
            ]
            series = list(M.INSTAGRAM_ACCOUNT_TIME_SERIES)
            if (as_of.astimezone(UTC).date() - day).days > M.INSTAGRAM_FOLLOWER_COUNT_DAYS:
                series.remove("follower_count")  # Meta keeps it for 30 days only
                skipped["follower_count_older_than_30_days"] += 1
            calls.append(
                (
                    f"{account.external_id}/insights",
                    {"metric": ",".join(series), "period": "day", "since": since, "until": until},
                )
            )
        else:
            token = page_token(scoped, account, env)
            calls = [
                (
                    f"{account.external_id}/insights",
                    {
                        "metric": ",".join(M.FACEBOOK_PAGE_METRICS),
                        "period": "day",
                        "since": since,
                        "until": until,
                    },
                )
            ]
        answers = scoped.batch_get(calls, token=token)
        for (path, params), answer in zip(calls, answers, strict=True):
            if isinstance(answer, InvalidMetricError):
                extra = {k: v for k, v in params.items() if k != "metric"}
                raise scoped.metric_error(
                    answer,
                    path,
                    params["metric"].split(","),
                    extra,
                    token=token,
                    what=f"{platform} account insights",
                )
            if isinstance(answer, GraphAPIError):
                if platform == "facebook" and answer.code in (190, 210):
                    raise _page_token_error(account, answer)
                raise answer
            if answer.skipped:
                skipped[answer.skipped] += 1
                continue
            for item in (answer.body or {}).get("data", []):
                rows.extend(_account_rows(platform, account.external_id, item, day, as_of))
        return rows, skipped

    rows: list[tuple] = []
    for account_rows, skipped in map_each(
        read_account, accounts, workers=parallel_accounts, name="organic"
    ):
        rows.extend(account_rows)
        report.skipped.update(skipped)
    with conn.transaction():
        report.rows = write_account_insights(
            conn, platform, [a.external_id for a in accounts], day, rows
        )
    report.preview = [{"account_id": r[1], "metric": r[3], "value": r[5]} for r in rows[:10]]
    return report


def _account_rows(
    platform: str, account_id: str, item: Mapping[str, Any], day: date, as_of: datetime
) -> list[tuple]:
    name = item.get("name")
    if not name:
        return []
    total = item.get("total_value")
    if isinstance(total, dict):
        # One day asked (since=day, until=day+1): the total is that day's value.
        return [(platform, account_id, day, name, "day", _num(total.get("value")), None, as_of)]
    out = []
    for value in item.get("values") or []:
        end_time = value.get("end_time")
        if not end_time:
            continue
        # Meta stamps a daily value with the end of its day (next midnight, in UTC or
        # Pacific time): one day back from end_time is the day it counts.
        value_day = (_parse_ts(end_time) - timedelta(days=1)).astimezone(UTC).date()
        if value_day != day:
            continue
        raw = value.get("value")
        breakdown = None
        if isinstance(raw, dict):
            breakdown = orjson.dumps(raw).decode()
            raw = sum(_num(v) for v in raw.values())
        out.append((platform, account_id, day, name, "day", _num(raw), breakdown, as_of))
    return out


def _num(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


# =============================================================================== writes
def write_posts(conn: psycopg.Connection, rows: Sequence[tuple]) -> int:
    """Merge posts (no churn: unchanged rows are not rewritten)."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        create_temp_like(cur, "organic_post_stage", "social_media_post", POST_COLUMNS)
        copy_rows(cur, "organic_post_stage", POST_COLUMNS, rows)
        cur.execute("""
            insert into social_media_post as t (platform, post_id, account_id, media_type,
                media_product_type, caption, permalink, thumbnail_url, posted_at, raw)
            select distinct on (platform, post_id) platform, post_id, account_id, media_type,
                media_product_type, caption, permalink, thumbnail_url, posted_at, raw
            from organic_post_stage
            on conflict (platform, post_id) do update set
                account_id = excluded.account_id, media_type = excluded.media_type,
                media_product_type = excluded.media_product_type, caption = excluded.caption,
                permalink = excluded.permalink, thumbnail_url = excluded.thumbnail_url,
                posted_at = excluded.posted_at, raw = excluded.raw, updated_at = now()
            where (t.account_id, t.media_type, t.media_product_type, t.caption, t.permalink,
                   t.thumbnail_url, t.posted_at, t.raw)
               is distinct from (excluded.account_id, excluded.media_type,
                   excluded.media_product_type, excluded.caption, excluded.permalink,
                   excluded.thumbnail_url, excluded.posted_at, excluded.raw)
        """)
        return cur.rowcount


def write_snapshots(
    conn: psycopg.Connection,
    platform: str,
    day: date,
    rows: Sequence[tuple],
    post_ids: Sequence[str],
) -> int:
    """Replace ``day``'s snapshot of ``post_ids`` with ``rows``."""
    with conn.cursor() as cur:
        if post_ids:
            cur.execute(
                "delete from social_post_insights where platform = %s and "
                "snapshot_date = %s and post_id = any(%s)",
                (platform, day, list(post_ids)),
            )
        if not rows:
            return 0
        return insert_via_stage(
            cur, "social_post_insights", SNAPSHOT_COLUMNS, rows, "organic_snapshot_stage"
        )


def write_skips(conn: psycopg.Connection, platform: str, skips: Mapping[str, str | None]) -> None:
    """Record why a post has no insights (or clear it once it has some)."""
    if not skips:
        return
    conn.execute(
        """
        update social_media_post p set insights_skipped_reason = s.reason, updated_at = now()
        from unnest(%s::text[], %s::text[]) as s(post_id, reason)
        where p.platform = %s and p.post_id = s.post_id
          and p.insights_skipped_reason is distinct from s.reason
    """,
        (list(skips), list(skips.values()), platform),
    )


def write_account_insights(
    conn: psycopg.Connection,
    platform: str,
    account_ids: Sequence[str],
    day: date,
    rows: Sequence[tuple],
) -> int:
    """Replace ``day``'s rows of ``account_ids`` with ``rows``."""
    with conn.cursor() as cur:
        cur.execute(
            "delete from social_account_insights where platform = %s and date = %s "
            "and account_id = any(%s)",
            (platform, day, list(account_ids)),
        )
        if not rows:
            return 0
        return insert_via_stage(
            cur, "social_account_insights", ACCOUNT_COLUMNS, rows, "organic_account_stage"
        )
