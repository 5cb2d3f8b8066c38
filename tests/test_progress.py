"""The progress reporter: ETA arithmetic, formatting and rate-limited printing, on a fake
clock (no sleeping)."""

from __future__ import annotations

import pytest

from everreach.progress import Progress, eta_seconds, format_duration


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_eta_is_the_remaining_work_at_the_rate_so_far() -> None:
    assert eta_seconds(2, 8, 10.0) == pytest.approx(30.0)  # 5 s per step, 6 left
    assert eta_seconds(8, 8, 10.0) == 0.0
    assert eta_seconds(9, 8, 10.0) == 0.0
    assert eta_seconds(0, 8, 10.0) is None  # nothing done: no rate yet
    assert eta_seconds(2, None, 10.0) is None  # no total
    assert eta_seconds(2, 8, 0.0) is None


def test_format_duration() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(59.4) == "59s"
    assert format_duration(61) == "1m01s"
    assert format_duration(3599) == "59m59s"
    assert format_duration(3600 + 7 * 60 + 20) == "1h07m"
    assert format_duration(-3) == "0s"


def test_lines_are_rate_limited_and_finish_always_prints() -> None:
    clock, lines = Clock(), []
    progress = Progress("sync", total=10, unit="partitions", sink=lines.append, clock=clock)
    clock.now += 1
    assert not progress.advance(rows=100)  # 1 s after the start: not due
    clock.now += 3
    assert not progress.advance(rows=100)  # 4 s
    clock.now += 1
    assert progress.advance(rows=300)  # 5 s: due
    assert lines == [
        "sync: 3/10 partitions (30%), 500 rows (100 rows/s), elapsed 5s, ETA 12s",
    ]
    clock.now += 4.9
    assert not progress.advance()  # 4.9 s after the last line
    clock.now += 0.1
    assert progress.advance(note="act_1 ad")  # 5 s after it
    assert lines[-1] == (
        "sync: 5/10 partitions (50%), 500 rows (50 rows/s), elapsed 10s, ETA 10s — act_1 ad"
    )
    clock.now += 1
    progress.advance(5)
    final = progress.finish("done")
    assert final == "sync: 10/10 partitions (100%), 500 rows (45 rows/s), elapsed 11s — done"
    assert lines[-1] == final and progress.lines_printed == 3


def test_every_zero_prints_each_step_and_unknown_total_has_no_eta() -> None:
    clock, lines = Clock(), []
    progress = Progress("replay", unit="events", sink=lines.append, every=0, clock=clock)
    clock.now += 2
    progress.advance(4)
    assert lines == ["replay: 4 events, elapsed 2s"]
    progress.total = 8  # learnt later
    clock.now += 2
    progress.advance(0)
    assert lines[-1] == "replay: 4/8 events (50%), elapsed 4s, ETA 4s"


def test_no_sink_counts_silently() -> None:
    clock = Clock()
    progress = Progress("quiet", total=2, sink=None, every=0, clock=clock)
    clock.now += 1
    progress.advance()
    assert progress.finish().startswith("quiet: 1/2 steps (50%)")
    assert progress.lines_printed == 2


def test_demo_progress_line_weighs_stages() -> None:
    from everreach_pipelines.demo.cli import progress_line

    # 20 of 100 weight units took 16 s: 80 more at that pace take 64 s.
    assert progress_line(1, 6, 20, 100, 16.0) == "demo: 1/6 stages, elapsed 16s, ETA ~1m04s"
    assert progress_line(6, 6, 100, 100, 115.0) == "demo: 6/6 stages, elapsed 1m55s"


def test_ads_sync_steps_become_progress() -> None:
    """The ads asset's step callback: a fetched account × level is one step with its rows,
    a skipped account all four levels."""
    from everreach_pipelines.defs.ads.assets import _sync_progress

    clock, lines = Clock(), []
    progress = Progress("ads", total=8, sink=lines.append, every=0, clock=clock)
    step = _sync_progress(progress)
    clock.now += 1
    step("1", "campaign", 120)
    step("2", None, 0)
    assert (progress.done, progress.rows) == (5, 120)
    assert len(lines) == 2
    assert lines[0] == (
        "ads: 1/8 steps (12%), 120 rows (120 rows/s), elapsed 1s, ETA 7s — act_1 campaign: 120 rows"
    )


# --- where the reporter is wired in (real database and sandbox) ----------------------------


def test_a_multi_partition_ads_run_logs_its_progress(db, database_url: str, sandbox) -> None:
    """ad_performance over a 3-day range reports account × level fetches in the run's logs,
    ending at 100 % with the rows it loaded (the message format of everreach.ads.sync)."""
    from datetime import UTC, datetime, timedelta

    import dagster as dg

    from everreach.ads.transform import LEVELS
    from everreach_pipelines.defs.ads.assets import ad_objects, ad_performance
    from everreach_pipelines.resources.meta import MetaGraphResource
    from everreach_pipelines.resources.warehouse import WarehouseResource

    accounts = list(sandbox.sandbox.domains["ads"].accounts)
    for account_id in accounts:
        db.execute(
            "insert into meta_platform_config (platform, external_id) values ('ad_account', %s)",
            (account_id,),
        )
    last = datetime.now(UTC).date() - timedelta(days=2)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [ad_objects, ad_performance],
        resources={
            "warehouse": WarehouseResource(database_url=database_url),
            "meta": MetaGraphResource(
                access_token="progress-test", base_url=sandbox.base_url, poll_interval=0.01
            ),
        },
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": (last - timedelta(days=2)).isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    assert result.success
    rows = result.asset_materializations_for_node("ad_performance")[0].metadata["rows"].value
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    total = len(accounts) * len(LEVELS)
    final = [m for m in messages if f"{total}/{total} account×level fetches (100%)" in m]
    assert final, [m for m in messages if "fetches" in m]
    assert "(3 partition(s))" in final[-1] and final[-1].endswith(f"{rows:,} rows loaded")


def test_webhook_replay_reports_selection_and_progress(db, database_url: str) -> None:
    from everreach.messaging.replay import replay_events

    for body in (b"not json", b"{broken", b"[1, 2"):
        db.execute(
            "insert into meta_webhook_event (raw_body, body_sha256, status) "
            "values (%s, md5(%s::bytea::text), 'failed')",
            (body, body),
        )
    lines: list[str] = []
    counts = replay_events(database_url, failed_only=True, log=lines.append)
    assert counts == {"ignored": 3, "replayed": 3}
    assert lines[0] == "webhook replay: 3 stored event(s) selected (failed only)"
    assert lines[-1].startswith("webhook replay: 3/3 events (100%), elapsed ")
    assert lines[-1].endswith(" — ignored=3")
    # nothing selected: one line, no progress
    lines.clear()
    assert replay_events(database_url, failed_only=True, log=lines.append) == {}
    assert lines == ["webhook replay: 0 stored event(s) selected (failed only)"]
