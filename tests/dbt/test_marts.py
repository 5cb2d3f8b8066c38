"""`dbt build` on the hand-written scenario of `dbt_seed.py`: every expected number is computed
here by hand from the rules, not read back from the SQL."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

import dbt_seed as s
import psycopg
import pytest
from psycopg.types.json import Jsonb

from everreach_pipelines.defs.dbt.project import run_dbt, window_env

MODELS = ("first_touch", "last_touch", "linear", "position_based", "time_decay")
HALF_LIFE_DAYS = 7


def hand_credits(model: str, gaps_days: list[float]) -> list[float]:
    """The credit rules written out: `gaps_days` are the touches' ages at conversion, oldest first."""
    n = len(gaps_days)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "position_based":
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
    weights = [0.5 ** (gap / HALF_LIFE_DAYS) for gap in gaps_days]
    return [w / sum(weights) for w in weights]


H = 1 / 24
# conversion -> (value, [(touch age in days, campaign)]) oldest touch first
SCENARIO = {
    "u1_purchase_1": (100, [(10, s.CAMPAIGN_A), (5, s.CAMPAIGN_B), (2, None)]),
    "u1_purchase_2": (20, [(10 + H, s.CAMPAIGN_A), (5 + H, s.CAMPAIGN_B), (2 + H, None)]),
    # the referral at T-40d is outside the 28-day window; the page's reply is a touch too
    "u2_purchase": (50, [(1, s.CAMPAIGN_A), (1 - 10 / 1440, None)]),
    "u3_lead": (0, [(3, s.CAMPAIGN_A), (1, s.CAMPAIGN_B)]),
    "u3_capi": (10, [(3 + 2 * H, s.CAMPAIGN_A), (1 + 2 * H, s.CAMPAIGN_B)]),
    "u4_purchase": (30, []),
    "u5_purchase": (60, [(3, s.CAMPAIGN_A), (2, s.CAMPAIGN_A), (1, s.CAMPAIGN_A)]),
}


@pytest.fixture(scope="module")
def built(database_url: str, dbt: Callable[..., object]) -> dict:
    """Seed the scenario and run a full `dbt build` (models, data tests, unit tests)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        s.truncate_raw_tables(conn)
        ids = s.seed(conn)
    dbt("build", "--full-refresh")
    return ids


@pytest.fixture
def conn(database_url: str, built: dict) -> psycopg.Connection:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def test_credits_match_hand_computation(conn: psycopg.Connection, built: dict) -> None:
    rows = conn.execute(
        "select conversion_event_id, attribution_model, touch_number, credited_conversions, "
        "campaign_id, is_unattributed from marts.attribution_touch_credits"
    ).fetchall()
    got: dict = {}
    for event_id, model, number, credit, campaign, unattributed in rows:
        got[(event_id, model, number)] = (credit, campaign, unattributed)
    expected_rows = 0
    for name, (_, touches) in SCENARIO.items():
        event_id = built[name]
        for model in MODELS:
            if not touches:
                assert got[(event_id, model, 0)] == (Decimal(1), None, True), (name, model)
                expected_rows += 1
                continue
            credits = hand_credits(model, [age for age, _ in touches])
            for number, (credit, (_, campaign)) in enumerate(zip(credits, touches, strict=True), 1):
                if credit == 0:
                    assert (event_id, model, number) not in got
                    continue
                expected_rows += 1
                got_credit, got_campaign, unattributed = got[(event_id, model, number)]
                assert math.isclose(float(got_credit), credit, abs_tol=1e-9), (name, model, number)
                assert got_campaign == campaign and not unattributed, (name, model, number)
    assert len(rows) == expected_rows


def test_credits_sum_to_exactly_one(conn: psycopg.Connection) -> None:
    sums = conn.execute(
        "select sum(credited_conversions) from marts.attribution_touch_credits "
        "group by conversion_event_id, attribution_model"
    ).fetchall()
    assert len(sums) == len(SCENARIO) * len(MODELS)
    assert {total for (total,) in sums} == {Decimal(1)}


def test_attributed_plus_unattributed_equals_totals(conn: psycopg.Connection) -> None:
    total_revenue = sum(value for value, _ in SCENARIO.values())
    for model, total, unattributed, credited, unattributed_revenue, revenue in conn.execute(
        "select attribution_model, total_conversions, unattributed_conversions, "
        "credited_conversions, unattributed_revenue, credited_revenue from marts.attribution_summary"
    ):
        assert model in MODELS
        assert total == len(SCENARIO) and credited == len(SCENARIO)
        assert unattributed == 1 and unattributed_revenue == 30
        assert revenue == total_revenue == 270


def test_campaign_roas_per_model(conn: psycopg.Connection) -> None:
    expected: dict = {}
    for value, touches in SCENARIO.values():
        for model in MODELS:
            if not touches:
                continue
            for credit, (_, campaign) in zip(
                hand_credits(model, [age for age, _ in touches]), touches, strict=True
            ):
                if campaign is not None:
                    expected[(campaign, model)] = (
                        expected.get((campaign, model), 0) + credit * value
                    )
    rows = conn.execute(
        "select campaign_id, attribution_model, spend, attributed_revenue, attributed_roas, "
        "meta_reported_conversion_value, meta_reported_roas from marts.campaign_attribution_roas"
    ).fetchall()
    assert len(rows) == 2 * len(MODELS)
    for campaign, model, spend, revenue, roas, meta_value, meta_roas in rows:
        assert float(spend) == s.SPEND[campaign]
        assert math.isclose(float(revenue), expected[(campaign, model)], abs_tol=1e-5)
        assert math.isclose(
            float(roas), expected[(campaign, model)] / s.SPEND[campaign], abs_tol=1e-5
        )
        assert float(meta_value) == s.META_VALUE[campaign]
        assert math.isclose(
            float(meta_roas), s.META_VALUE[campaign] / s.SPEND[campaign], abs_tol=1e-6
        )


def test_campaign_performance_ratios_are_ratios_of_sums(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "select spend, impressions, clicks, conversion_value, roas, ctr, cpc, cpm "
        "from marts.campaign_performance where campaign_id = %s and window_name = 'lifetime'",
        (s.CAMPAIGN_B,),
    ).fetchone()
    # B: spend 80 + 20, value 40 + 10, 2 x 2500 impressions, 2 x 60 clicks
    assert row[:4] == (Decimal(100), 5000, 120, Decimal(50))
    assert float(row[4]) == 0.5 and float(row[5]) == 0.024
    assert math.isclose(float(row[6]), 100 / 120, abs_tol=1e-6) and float(row[7]) == 20.0
    # the average of the daily ROAS (0.5 and 0.5) happens to agree; CPC's would not (80/60, 20/60)
    assert conn.execute(
        "select sum(spend) from marts.ad_performance_daily where report_level = 'campaign'"
    ).fetchone()[0] == sum(Decimal(v) for v in s.SPEND.values())


def test_identity_stitching(conn: psycopg.Connection, built: dict) -> None:
    methods = dict(
        conn.execute("select thread_id, identity_method from marts.conversations").fetchall()
    )
    assert methods == {
        built["wa_thread"]: "whatsapp_phone",
        built["u2_thread"]: "thread_user" if False else "referral_ref",
        built["anon_thread"]: "anonymous",
    }
    people = conn.execute(
        "select thread_id, person_id, user_id from marts.conversations"
    ).fetchall()
    by_thread = {t: (p, u) for t, p, u in people}
    assert by_thread[built["wa_thread"]] == (s.U1, s.U1)
    assert by_thread[built["u2_thread"]] == (s.U2, s.U2)
    anon_person, anon_user = by_thread[built["anon_thread"]]
    assert anon_user is None and anon_person not in {s.U1, s.U2, s.U3, s.U4, s.U5}
    # the CAPI event without user id joins u3 through its hashed external_id
    assert conn.execute(
        "select person_id, identity_method from marts.touchpoints where event_id = %s",
        (built["u3_capi"],),
    ).fetchone() == (s.U3, "capi_external_id")


def test_user_journey(conn: psycopg.Connection) -> None:
    steps = conn.execute(
        "select step_number, touchpoint_type, event_type, seconds_since_previous_step, "
        "is_first_step, is_last_step from marts.user_journeys where person_id = %s "
        "order by step_number",
        (s.U1,),
    ).fetchall()
    assert [(n, t) for n, t, *_ in steps] == [
        (1, "Ads"),
        (2, "Ads"),
        (3, "WhatsApp"),
        (4, "Conversion"),
        (5, "Conversion"),
    ]
    assert [gap for *_, gap, _, _ in steps] == [
        None,
        Decimal(5 * 86400),
        Decimal(3 * 86400),
        Decimal(2 * 86400),
        Decimal(3600),
    ]
    assert steps[0][4] and steps[-1][5]
    path = conn.execute(
        "select path, path_collapsed, path_to_first_conversion, conversions "
        "from marts.user_paths where person_id = %s",
        (s.U1,),
    ).fetchone()
    assert path == (
        "Ads > Ads > WhatsApp > Conversion > Conversion",
        "Ads > WhatsApp > Conversion",
        "Ads > Ads > WhatsApp > Conversion",
        2,
    )


def test_conversations(conn: psycopg.Connection, built: dict) -> None:
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "select thread_id, messages_in, messages_out, first_response_seconds, "
            "median_response_seconds, replies_in_standard_window, replies_in_human_agent_window, "
            "replies_outside_window, windows_expired_unanswered, started_from_ad "
            "from marts.conversations"
        )
    }
    # anonymous: turns at 10:00 (answered 10:20) and 11:00 (answered 2 days 1 hour later)
    late = 2 * 86400 + 3600
    assert rows[built["anon_thread"]] == (
        3,
        2,
        Decimal(1200),
        Decimal((1200 + late) / 2),
        1,
        1,
        0,
        1,
        False,
    )
    assert rows[built["u2_thread"]] == (1, 2, Decimal(600), Decimal(600), 1, 1, 0, 0, True)
    assert rows[built["wa_thread"]] == (1, 0, None, None, 0, 0, 0, 1, False)
    daily = conn.execute(
        "select sum(messages_in), sum(messages_out), sum(new_conversations), "
        "sum(new_conversations_from_ads), sum(windows_expired_unanswered) "
        "from marts.conversations_daily"
    ).fetchone()
    assert daily == (5, 4, 3, 1, 2)


def test_organic(conn: psycopg.Connection) -> None:
    deltas = conn.execute(
        "select snapshot_date::text, lifetime_value, daily_delta from marts.organic_post_daily "
        "where post_id = 'p1' order by snapshot_date"
    ).fetchall()
    assert deltas == [("2026-09-28", 100, 100), ("2026-09-29", 160, 60), ("2026-09-30", 175, 15)]
    assert conn.execute(
        "select followers_gained, reach, views from marts.organic_account_daily"
    ).fetchone() == (12, 900, 1500)


def test_demo_prints_campaign_roas_and_a_journey(database_url: str, built: dict) -> None:
    from types import SimpleNamespace

    import dagster as dg

    from everreach_pipelines.defs.dbt.demo import run_demo

    logged: list[str] = []
    instance = dg.DagsterInstance.ephemeral()
    end = datetime.now(UTC).date() - timedelta(days=1)
    ctx = SimpleNamespace(
        database_url=database_url,
        log=logged.append,
        start_date=end - timedelta(days=2),
        end_date=end,
        instance=instance,
    )
    lines = run_demo(ctx)
    assert logged and lines[0].startswith("dbt build: 41 models materialized")
    passed, total = lines[0].split(", ")[1].split(" ")[0].split("/")
    assert passed == total and int(total) > 100
    # recorded in the demo's instance, as the UI shows it: the marts materialized (the
    # incremental ones for each of the demo's days) and their checks evaluated
    paths = dg.AssetKey(["marts", "user_paths"])
    assert instance.get_materialized_partitions(paths) == {
        (end - timedelta(days=n)).isoformat() for n in range(3)
    }
    assert instance.get_latest_materialization_event(dg.AssetKey(["marts", "user_journeys"]))
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey(["marts", "user_paths"]), "unique_user_paths_person_id")]
    )
    assert record and all(r.status.value == "SUCCEEDED" for r in record.values())
    text = "\n".join(lines)
    # campaign A: spend 150, Meta value 360; first-touch revenue 100 + 20 + 50 + 10 + 60 = 240
    campaign_a = next(line for line in lines if "Campaign A" in line)
    assert "spend 150.00" in campaign_a and "meta 2.40 | 1.60 /" in campaign_a
    assert "conversions 7 (1 unattributed), revenue 270.00 (30.00 unattributed)" in text
    assert f"journey of user {s.U1} (5 steps): Ads > WhatsApp > Conversion" in text


MARTS = (
    "touchpoints",
    "user_journeys",
    "user_paths",
    "attribution_touch_credits",
    "attribution_summary",
    "campaign_attribution_roas",
    "ad_performance_daily",
    "conversations",
)


def _snapshot(conn: psycopg.Connection) -> dict:
    """Every mart's rows, except `dbt_loaded_at` (when dbt wrote the row, by design different)."""
    snapshot = {}
    for table in MARTS:
        columns = [
            c
            for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'marts' "
                "and table_name = %s and column_name <> 'dbt_loaded_at' order by ordinal_position",
                (table,),
            )
        ]
        assert columns, table
        rows = conn.execute(f"select {', '.join(columns)} from marts.{table}").fetchall()
        snapshot[table] = sorted(map(repr, rows))
    return snapshot


def test_incremental_run_equals_full_refresh(
    conn: psycopg.Connection, built: dict, dbt: Callable[..., object]
) -> None:
    """Late events and a newly stitched contact: incremental result == full refresh result.
    (Runs last in this module: it changes the data.)"""
    # a late click of u4 (written now, happened before its purchase): u4 is no longer unattributed
    conn.execute(
        "insert into user_event (user_id, etype, props, occurred_at) values (%s, 'ad_click', %s, %s)",
        (s.U4, Jsonb({"meta_campaign_id": s.META_B}), s.T - timedelta(hours=5)),
    )
    # the anonymous contact is linked to u5 by the app: its messages join u5's journey
    conn.execute(
        "update conversation_thread set user_id = %s, updated_at = now() where thread_id = %s",
        (s.U5, built["anon_thread"]),
    )
    dbt("run")
    incremental = _snapshot(conn)
    assert conn.execute(
        "select campaign_id, credited_conversions from marts.attribution_touch_credits "
        "where conversion_event_id = %s and attribution_model = 'last_touch'",
        (built["u4_purchase"],),
    ).fetchall() == [(s.CAMPAIGN_B, Decimal(1))]
    assert (
        conn.execute(
            "select count(*) from marts.user_journeys where person_id = %s", (s.U5,)
        ).fetchone()[0]
        == 9
    )
    dbt("run", "--full-refresh")
    assert _snapshot(conn) == incremental


def test_daily_runs_with_late_and_rewritten_events_equal_full_refresh(
    conn: psycopg.Connection, built: dict, database_url: str, dbt_paths: tuple
) -> None:
    """Three daily runs the way Dagster passes the partition window (environment, not vars):
    an append-only day, a day with a late event between stored steps and rewritten events
    (a touch moved later in time, a purchase that stopped being one), then another append-only
    day without a window. Journeys and credits take their incremental shortcuts (extending
    stored journeys, recomputing only conversions at or after the earliest change); the result
    must equal a full refresh. (Runs after the test above: it changes the data.)"""
    target, logs = dbt_paths
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def daily_run(*, with_window: bool = True) -> None:
        env = window_env(today, today + timedelta(days=1)) if with_window else None
        run_dbt(database_url, ["run"], target_path=target, log_path=logs, env=env)

    def add(user, etype: str, at: datetime, props: dict | None = None) -> int:
        return conn.execute(
            "insert into user_event (user_id, etype, props, occurred_at) values (%s, %s, %s, %s) "
            "returning id",
            (user, etype, Jsonb(props or {}), at),
        ).fetchone()[0]

    def journey(person) -> list[tuple]:
        return conn.execute(
            "select step_number, event_type, is_last_step from marts.user_journeys "
            "where person_id = %s order by step_number",
            (person,),
        ).fetchall()

    def loaded_at(person) -> list[datetime]:
        return [
            at
            for (at,) in conn.execute(
                "select dbt_loaded_at from intermediate.int_journey_steps "
                "where person_id = %s order by step_number",
                (person,),
            )
        ]

    def person_of(event_id: int):
        return conn.execute(
            "select person_id from marts.user_journeys where event_id = %s", (event_id,)
        ).fetchall()

    # day 1, append-only: u1 clicks and buys again after every stored step; u5 buys again; a
    # click without user or thread (its own anonymous person)
    u1_stored = loaded_at(s.U1)
    add(s.U1, "ad_click", s.T + 2 * s.DAY, {"meta_campaign_id": s.META_A})
    u1_purchase_3 = add(s.U1, "purchase", s.T + 2 * s.DAY + timedelta(hours=1), {"value": 40})
    add(s.U5, "purchase", s.T + 3 * s.DAY, {"value": 15})
    anonymous_click = add(None, "ad_click", s.T + 2 * s.DAY, {"meta_campaign_id": s.META_B})
    daily_run()
    steps = journey(s.U1)
    assert [n for n, *_ in steps] == list(range(1, 8))
    assert [last for *_, last in steps] == [False] * 6 + [True]
    # appended: the stored steps were not rewritten, the two new ones were
    assert loaded_at(s.U1)[:5] == u1_stored
    assert all(at > max(u1_stored) for at in loaded_at(s.U1)[5:])
    (anonymous_person,) = person_of(anonymous_click)
    assert anonymous_person[0] not in {s.U1, s.U2, s.U3, s.U4, s.U5}
    assert conn.execute(
        "select campaign_id, credited_conversions from marts.attribution_touch_credits "
        "where conversion_event_id = %s and attribution_model = 'last_touch'",
        (u1_purchase_3,),
    ).fetchall() == [(s.CAMPAIGN_A, Decimal(1))]

    # day 2: a late click of u1 between its stored steps (renumbers the journey and re-credits
    # the purchases after it); u3's click at T-3d is re-written as happening at T+5h (its old
    # time still matters: the lead at T loses it); u2's purchase is re-written as a page view
    late_click = add(s.U1, "ad_click", s.T - s.DAY, {"meta_campaign_id": s.META_B})
    conn.execute(
        "update user_event set occurred_at = %s, inserted_at = now() "
        "where user_id = %s and etype = 'ad_click' and occurred_at = %s",
        (s.T + timedelta(hours=5), s.U3, s.T - 3 * s.DAY),
    )
    conn.execute(
        "update user_event set etype = 'page_view', inserted_at = now() where id = %s",
        (built["u2_purchase"],),
    )
    # the anonymous click turns out to be u2's: it leaves its one-step anonymous journey
    conn.execute(
        "update user_event set user_id = %s, inserted_at = now() where id = %s",
        (s.U2, anonymous_click),
    )
    daily_run()
    steps = journey(s.U1)
    assert [n for n, *_ in steps] == list(range(1, 9))
    assert person_of(anonymous_click) == [(s.U2,)]
    assert not conn.execute(
        "select 1 from marts.user_paths where person_id = %s", (anonymous_person[0],)
    ).fetchall()
    assert conn.execute(
        "select step_number from marts.user_journeys where event_id = %s", (late_click,)
    ).fetchone() == (4,)
    assert conn.execute(
        "select touch_count, campaign_id from marts.attribution_touch_credits "
        "where conversion_event_id = %s and attribution_model = 'last_touch'",
        (built["u3_lead"],),
    ).fetchall() == [(1, s.CAMPAIGN_B)]
    assert not conn.execute(
        "select 1 from marts.attribution_touch_credits where conversion_event_id = %s",
        (built["u2_purchase"],),
    ).fetchall()

    # day 3, append-only, the cutoff derived from the tables themselves
    add(s.U5, "ad_click", s.T + 4 * s.DAY, {"meta_campaign_id": s.META_B})
    add(s.U5, "purchase", s.T + 4 * s.DAY + timedelta(hours=2), {"value": 25})
    daily_run(with_window=False)
    incremental = _snapshot(conn)

    dbt = partial(run_dbt, database_url, target_path=target, log_path=logs)
    dbt(["run", "--full-refresh"])
    assert _snapshot(conn) == incremental


def test_windowed_runs_test_the_latest_load_and_plain_runs_every_row(
    conn: psycopg.Connection, built: dict, database_url: str, dbt_paths: tuple
) -> None:
    """In the daily job (a partition window set), tests on incremental models read only the rows
    their latest load wrote; `dbt test` without a window reads every row. (Runs after the tests
    above: it changes the data.)"""
    from everreach_pipelines.defs.dbt.project import DbtRunError

    target, logs = dbt_paths
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = window_env(today, today + timedelta(days=1))

    def steps_tests_pass(*, windowed: bool) -> bool:
        try:
            run_dbt(
                database_url,
                ["test", "--select", "int_journey_steps"],
                target_path=target,
                log_path=logs,
                env=window if windowed else None,
            )
        except DbtRunError as exc:
            assert "expression_is_true_int_journey_steps" in str(exc)
            return False
        return True

    # a day's load: u1 clicks again (one new step, stamped with the newest load)
    conn.execute(
        "insert into user_event (user_id, etype, props, occurred_at) values (%s, 'ad_click', %s, %s)",
        (s.U1, Jsonb({"meta_campaign_id": s.META_A}), s.T + 9 * s.DAY),
    )
    run_dbt(database_url, ["run"], target_path=target, log_path=logs, env=window)
    assert steps_tests_pass(windowed=True) and steps_tests_pass(windowed=False)

    def break_one_step(latest_load: bool) -> None:
        broken = conn.execute(
            "update intermediate.int_journey_steps set seconds_since_previous_step = null "
            "where ctid = (select ctid from intermediate.int_journey_steps where step_number > 1 "
            f"and dbt_loaded_at {'=' if latest_load else '<'} "
            "(select max(dbt_loaded_at) from intermediate.int_journey_steps) limit 1)"
        ).rowcount
        assert broken == 1

    # an older row goes bad: only the whole-table run sees it
    break_one_step(latest_load=False)
    assert steps_tests_pass(windowed=True)
    assert not steps_tests_pass(windowed=False)
    # a row of the latest load goes bad: the windowed run sees it too
    break_one_step(latest_load=True)
    assert not steps_tests_pass(windowed=True)
