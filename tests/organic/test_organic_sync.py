"""Organic loading against the sandbox over HTTP and a real Postgres."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from organic_helpers import DAY, NOW, OrganicEnv, configure_accounts, small_config

from everreach.meta.client import GraphClient
from everreach.organic import metrics as M
from everreach.organic import sync
from everreach.organic.fetch import OrganicGraph, OrganicMetricError, PageTokenError
from everreach.sandbox.organic import IG_VALID_METRICS
from everreach.sandbox.testing import running_sandbox
from everreach.settings import SettingError

RECENT, REFRESH = 14, 7


def _sync_posts(env: OrganicEnv, platform: str, day=DAY) -> sync.SyncReport:
    cfg = "instagram_account" if platform == "instagram" else "facebook_page"
    return sync.sync_posts(
        env.conn,
        env.graph,
        platform,
        sync.load_accounts(env.conn, cfg),
        day,
        env.as_of(),
        recent_days=RECENT,
        old_post_refresh_days=REFRESH,
    )


def _sync_accounts(env: OrganicEnv, platform: str, day=DAY) -> sync.SyncReport:
    cfg = "instagram_account" if platform == "instagram" else "facebook_page"
    return sync.sync_account_insights(
        env.conn, env.graph, platform, sync.load_accounts(env.conn, cfg), day, env.as_of()
    )


def _dump(env: OrganicEnv, table: str) -> list[tuple]:
    cols = {
        "social_media_post": "platform, post_id, account_id, media_type, "
        "media_product_type, caption, permalink, posted_at, insights_skipped_reason, raw, "
        "first_seen_at, updated_at",
        "social_post_insights": "*",
        "social_account_insights": "*",
    }[table]
    return env.conn.execute(f"select {cols} from {table} order by 1, 2, 3, 4").fetchall()


def test_every_media_kind_gets_exactly_its_metrics(organic: OrganicEnv) -> None:
    report = _sync_posts(organic, "instagram")
    rows = organic.conn.execute(
        """
        select p.media_type, p.media_product_type, p.post_id, array_agg(s.metric)
        from social_post_insights s join social_media_post p using (platform, post_id)
        where s.snapshot_date = %s group by 1, 2, 3""",
        (DAY,),
    ).fetchall()
    kinds_seen = set()
    for media_type, product_type, post_id, metrics in rows:
        kind = M.instagram_media_kind(media_type, product_type)
        kinds_seen.add(kind)
        assert sorted(metrics) == sorted(M.INSTAGRAM_MEDIA_METRICS[kind]), post_id
        # …and the list is valid for Meta's (the sandbox's) rules for that media kind.
        assert set(metrics) <= IG_VALID_METRICS[(media_type, product_type)]
    assert kinds_seen == set(M.INSTAGRAM_MEDIA_METRICS)
    assert report.snapshot_posts == len(rows)
    story_nav = organic.conn.execute(
        "select value, value_breakdown from social_post_insights where metric = 'navigation' "
        "limit 1"
    ).fetchone()
    assert set(story_nav[1]) == {"tap_forward", "tap_back", "tap_exit", "swipe_forward"}
    assert story_nav[0] == sum(story_nav[1].values())


def test_refused_media_are_skipped_and_counted(organic: OrganicEnv) -> None:
    report = _sync_posts(organic, "instagram")
    truth = Counter(
        p.no_insights for a in organic.state.ig_accounts.values() for p in a.media if p.no_insights
    )
    assert truth["conversion"] > 0
    assert report.skipped["before_business_conversion"] == truth["conversion"]
    assert report.skipped["not_enough_viewers"] == truth["viewers"]
    stored = dict(
        organic.conn.execute(
            "select insights_skipped_reason, count(*) from social_media_post "
            "where insights_skipped_reason is not null group by 1"
        ).fetchall()
    )
    assert stored["before_business_conversion"] == truth["conversion"]
    # Refused media have a post row but no snapshot rows.
    orphan = organic.conn.execute("""
        select count(*) from social_post_insights s join social_media_post p
        using (platform, post_id) where p.insights_skipped_reason is not null""").fetchone()[0]
    assert orphan == 0


def test_reruns_are_idempotent(organic: OrganicEnv) -> None:
    for platform in ("instagram", "facebook"):
        _sync_posts(organic, platform)
        _sync_accounts(organic, platform)
    first = {
        t: _dump(organic, t)
        for t in ("social_media_post", "social_post_insights", "social_account_insights")
    }
    assert all(first.values())
    for platform in ("instagram", "facebook"):
        _sync_posts(organic, platform)
        _sync_accounts(organic, platform)
    assert {t: _dump(organic, t) for t in first} == first


def test_snapshots_accumulate_one_row_per_post_per_day(organic: OrganicEnv) -> None:
    day1 = _sync_posts(organic, "instagram")
    day2_date = organic.next_day()
    day2 = _sync_posts(organic, "instagram", day2_date)
    grain = organic.conn.execute("""
        select count(*), count(distinct (post_id, snapshot_date, metric)),
               count(distinct snapshot_date) from social_post_insights""").fetchone()
    assert grain[0] == grain[1] and grain[2] == 2
    # Old posts are refreshed on the slower cadence: day 2 fetches far fewer posts.
    assert 0 < day2.snapshot_posts < day1.snapshot_posts
    recent = organic.conn.execute(
        """
        select s.post_id, s.metric, array_agg(s.value order by s.snapshot_date)
        from social_post_insights s join social_media_post p using (platform, post_id)
        where p.posted_at >= %s and p.posted_at < %s and p.media_product_type <> 'STORY'
        group by 1, 2""",
        (NOW - timedelta(days=RECENT - 1), NOW - timedelta(hours=1)),
    ).fetchall()
    assert recent
    for _post, metric, values in recent:
        assert len(values) == 2
        if metric != "ig_reels_avg_watch_time":
            assert values[1] >= values[0]
    assert any(v[1] > v[0] for _p, m, v in recent if m == "views")


def test_old_posts_come_round_on_the_slower_cadence(organic: OrganicEnv) -> None:
    _sync_posts(organic, "facebook")
    counts = []
    for _ in range(REFRESH):
        counts.append(_sync_posts(organic, "facebook", organic.next_day()).snapshot_posts)
    old_posts = organic.conn.execute(
        "select count(*) from social_media_post where platform = 'facebook' and posted_at < %s",
        (NOW - timedelta(days=RECENT - 1),),
    ).fetchone()[0]
    per_post = organic.conn.execute(
        """
        select count(distinct snapshot_date) from social_post_insights s
        join social_media_post p using (platform, post_id)
        where p.platform = 'facebook' and p.posted_at < %s - interval '20 days'
        group by s.post_id""",
        (NOW,),
    ).fetchall()
    # Every old post was refreshed exactly once in REFRESH days (plus its first snapshot).
    assert old_posts and {n for (n,) in per_post} == {2}
    assert max(counts) < old_posts + 20


@pytest.mark.parametrize(
    ("table", "kind", "bad"),
    [
        ("INSTAGRAM_MEDIA_METRICS", "STORY", "impressions"),
        ("INSTAGRAM_MEDIA_METRICS", "REELS", "plays"),
    ],
)
def test_deprecated_instagram_metric_fails_naming_it(
    organic: OrganicEnv, monkeypatch, table: str, kind: str, bad: str
) -> None:
    monkeypatch.setitem(getattr(M, table), kind, (*getattr(M, table)[kind], bad))
    with pytest.raises(OrganicMetricError) as info:
        _sync_posts(organic, "instagram")
    assert f"'{bad}'" in str(info.value) and kind in str(info.value)
    assert "everreach/organic/metrics.py" in str(info.value)


def test_deprecated_facebook_metrics_fail_naming_them(organic: OrganicEnv, monkeypatch) -> None:
    monkeypatch.setattr(M, "FACEBOOK_POST_METRICS", (*M.FACEBOOK_POST_METRICS, "post_impressions"))
    with pytest.raises(OrganicMetricError, match="'post_impressions'"):
        _sync_posts(organic, "facebook")
    monkeypatch.setattr(M, "FACEBOOK_PAGE_METRICS", ("page_media_view", "page_fans"))
    with pytest.raises(OrganicMetricError, match="'page_fans'"):
        _sync_accounts(organic, "facebook")


def test_account_insights_have_followers_each_day(organic: OrganicEnv) -> None:
    ig = _sync_accounts(organic, "instagram")
    fb = _sync_accounts(organic, "facebook")
    per_day = organic.conn.execute(
        """
        select platform, account_id, array_agg(metric order by metric)
        from social_account_insights where date = %s group by 1, 2""",
        (DAY,),
    ).fetchall()
    assert len(per_day) == len(organic.state.ig_accounts) + len(organic.state.pages)
    for platform, _acct, metrics in per_day:
        expected = (
            set(M.INSTAGRAM_ACCOUNT_TIME_SERIES) | set(M.INSTAGRAM_ACCOUNT_TOTAL_VALUE)
            if platform == "instagram"
            else set(M.FACEBOOK_PAGE_METRICS)
        )
        assert set(metrics) == expected
    assert ig.rows + fb.rows == sum(len(m) for *_x, m in per_day)


def test_follower_count_is_not_asked_beyond_30_days(organic: OrganicEnv) -> None:
    old_day = DAY - timedelta(days=40)
    report = _sync_accounts(organic, "instagram", old_day)
    assert report.skipped["follower_count_older_than_30_days"] == len(organic.state.ig_accounts)
    metrics = {
        m
        for (m,) in organic.conn.execute(
            "select distinct metric from social_account_insights where date = %s", (old_day,)
        )
    }
    assert "reach" in metrics and "follower_count" not in metrics


def test_old_partition_writes_posts_but_no_mislabelled_snapshot(organic: OrganicEnv) -> None:
    report = _sync_posts(organic, "instagram", DAY - timedelta(days=10))
    assert report.posts > 0 and report.rows == 0 and report.notes


def test_page_token_from_env_that_is_a_user_token_fails_clearly(db, monkeypatch) -> None:
    monkeypatch.setenv("ORGANIC_TEST_PAGE_TOKEN", "a-user-token-not-a-page-token")
    with running_sandbox(small_config(ig_accounts=0)) as sb:
        configure_accounts(
            db,
            sb.sandbox.domains["organic"],
            page_settings={"page_token_env_var": "ORGANIC_TEST_PAGE_TOKEN"},
        )
        graph = OrganicGraph(GraphClient("user", base_url=sb.base_url))
        with pytest.raises(PageTokenError) as info:
            sync.sync_posts(
                db,
                graph,
                "facebook",
                sync.load_accounts(db, "facebook_page"),
                DAY,
                sb.sandbox.now(),
                recent_days=RECENT,
                old_post_refresh_days=REFRESH,
            )
    message = str(info.value)
    assert "requires a Page access token" in message and "ORGANIC_TEST_PAGE_TOKEN" in message
    assert "a-user-token-not-a-page-token" not in message


def test_page_whose_token_cannot_be_obtained_fails_clearly(db) -> None:
    with running_sandbox(small_config(ig_accounts=0, fb_page_token_denied=[0])) as sb:
        configure_accounts(db, sb.sandbox.domains["organic"])
        graph = OrganicGraph(GraphClient("user", base_url=sb.base_url))
        with pytest.raises(PageTokenError, match="no Page access token"):
            sync.sync_account_insights(
                db,
                graph,
                "facebook",
                sync.load_accounts(db, "facebook_page"),
                DAY,
                sb.sandbox.now(),
            )


def test_named_token_variable_must_be_set(organic: OrganicEnv, monkeypatch) -> None:
    monkeypatch.delenv("ORGANIC_MISSING_TOKEN", raising=False)
    organic.conn.execute(
        "update meta_platform_config set token_env_var = "
        "'ORGANIC_MISSING_TOKEN' where platform = 'instagram_account'"
    )
    with pytest.raises(SettingError, match="ORGANIC_MISSING_TOKEN"):
        _sync_posts(organic, "instagram")


def test_graph_calls_per_media_stay_near_one(organic: OrganicEnv) -> None:
    report = _sync_posts(organic, "instagram")
    stats = organic.graph.stats
    fetched = report.snapshot_posts + sum(report.skipped.values())
    # One insights call per media (batched 50 per HTTP request) plus the listing pages.
    assert stats.graph_calls <= fetched + 2 * len(organic.state.ig_accounts) * 2
    assert stats.http_requests <= fetched / 50 + 2 * len(organic.state.ig_accounts) * 2 + 2


def test_transient_faults_are_retried_to_the_same_rows(organic: OrganicEnv) -> None:
    _sync_posts(organic, "instagram")
    clean = _dump(organic, "social_post_insights")
    organic.conn.execute("truncate social_post_insights")
    organic.sb.sandbox.config.error_rate = {2: 0.15, 613: 0.05}  # per Graph call / batch item
    try:
        _sync_posts(organic, "instagram")
    finally:
        organic.sb.sandbox.config.error_rate = {}
    assert organic.sb.sandbox.stats["faults"] > 0
    assert organic.graph.stats.item_retries > 0
    assert _dump(organic, "social_post_insights") == clean


def test_accounts_read_in_parallel_write_what_one_after_another_writes(
    organic: OrganicEnv,
) -> None:
    def run(parallel: int) -> list[list[tuple]]:
        for platform, cfg in (("instagram", "instagram_account"), ("facebook", "facebook_page")):
            accounts = sync.load_accounts(organic.conn, cfg)
            kwargs = {"parallel_accounts": parallel}
            sync.sync_posts(
                organic.conn,
                organic.graph,
                platform,
                accounts,
                DAY,
                organic.as_of(),
                recent_days=RECENT,
                old_post_refresh_days=REFRESH,
                **kwargs,
            )
            sync.sync_account_insights(
                organic.conn, organic.graph, platform, accounts, DAY, organic.as_of(), **kwargs
            )
        dumps = [
            [r[:10] for r in _dump(organic, "social_media_post")],
            [r[:-1] for r in _dump(organic, "social_post_insights")],
            [r[:-1] for r in _dump(organic, "social_account_insights")],
        ]
        organic.conn.execute(
            "truncate social_media_post, social_post_insights, social_account_insights cascade"
        )
        return dumps

    calls_before = organic.client.metrics.calls
    one_after_another = run(1)
    sequential_calls = organic.client.metrics.calls - calls_before
    parallel = run(4)
    assert parallel == one_after_another and all(parallel)
    # the per-account views add their calls to the shared client's count
    assert organic.client.metrics.calls - calls_before == 2 * sequential_calls
    usage = organic.client.throttle.usage()
    assert set(usage) == {a.id for a in organic.state.ig_accounts.values()} | {
        p.id for p in organic.state.pages.values()
    }
