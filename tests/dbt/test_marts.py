"""`dbt build` on the hand-written scenario of `dbt_seed.py`: every expected number is computed
here by hand from the rules, not read back from the SQL."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial

import dbt_seed as s
import psycopg
import pytest
from dbt_runner import run_dbt
from psycopg.types.json import Jsonb

from everreach_pipelines.defs.dbt.project import window_env

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


def test_a_conversion_and_its_capi_delivery_are_one_journey_step(
    conn: psycopg.Connection, built: dict
) -> None:
    """u4's purchase was queued for the Conversions API from the app event and delivered; the
    `meta_conversion_Purchase` event the delivery logged is that step's delivery, not a step."""
    steps = conn.execute(
        "select event_id, event_type, is_conversion, capi_delivery_status from marts.user_journeys "
        "where person_id = %s order by step_number",
        (s.U4,),
    ).fetchall()
    assert steps == [(built["u4_purchase"], "purchase", True, "sent")]
    assert not conn.execute(
        "select 1 from marts.touchpoints where event_type like 'meta\\_conversion\\_%%' "
        "and person_id = %s",
        (s.U4,),
    ).fetchall()
    # u3's CAPI purchase has no app event behind it: a conversion step of its own, delivered;
    # u1's first purchase was delivered, its second is still pending, its clicks carry nothing
    assert conn.execute(
        "select capi_delivery_status from marts.user_journeys where event_id = %s",
        (built["u3_capi"],),
    ).fetchone() == ("sent",)
    assert conn.execute(
        "select event_type, capi_delivery_status from marts.user_journeys where person_id = %s "
        "order by step_number",
        (s.U1,),
    ).fetchall() == [
        ("ad_click", None),
        ("ad_click", None),
        ("whatsapp_received", None),
        ("purchase", "sent"),
        ("purchase", "pending"),
    ]


KEY_COLUMNS = {
    "em": "match_key_email_share",
    "ph": "match_key_phone_share",
    "external_id": "match_key_external_id_share",
    "fbp": "match_key_fbp_share",
    "fbc": "match_key_fbc_share",
    "ip_ua": "match_key_ip_user_agent_share",
}


def test_meta_vs_first_party_daily_by_hand(conn: psycopg.Connection) -> None:
    """Per campaign, day and model: Meta's reported conversions on its report dates; on the
    conversions' date the credited conversions, those delivered and accepted through the
    Conversions API (u1's first purchase, u5's, u3's CAPI purchase), coverage and match keys,
    every figure weighted by the campaign's credit."""
    columns = ["report_date", "campaign_id", "attribution_model", "spend"]
    columns += ["meta_reported_conversions", "attributed_conversions"]
    columns += ["capi_delivered_conversions", "capi_coverage", *KEY_COLUMNS.values()]
    rows = [
        dict(zip(columns, row, strict=True))
        for row in conn.execute(
            f"select {', '.join(columns)} from marts.meta_vs_first_party_daily "
            "order by report_date, campaign_id, attribution_model"
        )
    ]
    meta_days = [r for r in rows if str(r["report_date"]) in ("2026-09-29", "2026-09-30")]
    assert len(meta_days) == 2 * 2 * len(MODELS)
    for row in meta_days:
        assert row["meta_reported_conversions"] == 3 and row["attributed_conversions"] == 0
        assert row["capi_coverage"] is None
    assert sum(r["spend"] for r in meta_days if r["attribution_model"] == "linear") == sum(
        Decimal(str(v)) for v in s.SPEND.values()
    )
    expected: dict = {}
    for name, (_, touches) in SCENARIO.items():
        for model in MODELS:
            if not touches:
                continue
            credits = hand_credits(model, [age for age, _ in touches])
            for credit, (_, campaign) in zip(credits, touches, strict=True):
                if campaign is None or credit == 0:
                    continue
                entry = expected.setdefault((campaign, model), {"all": 0.0, "sent": 0.0})
                entry["all"] += credit
                if name in s.CAPI_KEYS:
                    entry["sent"] += credit
                    for key in s.CAPI_KEYS[name]:
                        entry[key] = entry.get(key, 0.0) + credit
    day = [r for r in rows if str(r["report_date"]) == "2026-10-01"]
    assert {(r["campaign_id"], r["attribution_model"]) for r in day} == set(expected)
    for row in day:
        want = expected[(row["campaign_id"], row["attribution_model"])]
        label = (row["campaign_id"], row["attribution_model"])
        assert row["meta_reported_conversions"] == 0, label
        assert math.isclose(float(row["attributed_conversions"]), want["all"], abs_tol=1e-9)
        assert math.isclose(float(row["capi_delivered_conversions"]), want["sent"], abs_tol=1e-9)
        assert math.isclose(float(row["capi_coverage"]), want["sent"] / want["all"], abs_tol=1e-6)
        for key, column in KEY_COLUMNS.items():
            if want["sent"] == 0:
                assert row[column] is None, (label, column)
            else:
                share = want.get(key, 0.0) / want["sent"]
                assert math.isclose(float(row[column]), share, abs_tol=1e-6), (label, column)


def test_meta_vs_first_party_by_pixel_by_hand(conn: psycopg.Connection) -> None:
    """px1 on T's date: 7 events queued (u3, u4, u1 x 2, u5, u2, a test event), 4 accepted
    (test aside), 1 rejected, 1 pending, 1 test; 7 first-party conversions that day, so
    coverage 4/7; match keys among the 4 accepted events."""
    rows = conn.execute(
        "select pixel_id, event_date::text, events_queued, events_accepted, events_rejected, "
        "events_failed, events_pending, test_events, first_party_conversions, capi_coverage, "
        f"{', '.join(KEY_COLUMNS.values())} from marts.meta_vs_first_party_by_pixel"
    ).fetchall()
    assert len(rows) == 1
    row = rows[0]
    assert row[:9] == ("px1", "2026-10-01", 7, 4, 1, 0, 1, 1, 7)
    assert math.isclose(float(row[9]), 4 / 7, abs_tol=1e-6)
    accepted = list(s.CAPI_KEYS.values())
    for (key, _), value in zip(KEY_COLUMNS.items(), row[10:], strict=True):
        assert math.isclose(float(value), sum(key in keys for keys in accepted) / 4), key


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


def _model_count() -> int:
    """The dbt project's models, from its parsed manifest."""
    import json

    from everreach_pipelines.defs.dbt.project import ensure_manifest

    nodes = json.loads(ensure_manifest().read_text())["nodes"].values()
    return sum(1 for node in nodes if node["resource_type"] == "model")


def test_demo_prints_campaign_roas_and_a_journey(database_url: str, built: dict) -> None:
    from types import SimpleNamespace

    import dagster as dg

    from everreach_pipelines.demo.dbt import run_demo

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
    assert logged and lines[0].startswith(f"dbt build: {_model_count()} models materialized")
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


def test_capi_coverage_check_warns_when_a_pixel_drops(
    conn: psycopg.Connection, database_url: str
) -> None:
    """A second pixel delivered 9 of 10 conversions a day for four weeks, then 3 of 10 for a
    week: the check warns for it; px1 (one day, nothing before to compare with) passes."""
    import dagster as dg

    from everreach_pipelines.defs.dbt.checks import capi_coverage_not_dropping
    from everreach_pipelines.resources.warehouse import WarehouseResource

    end = date(2026, 10, 1)
    rows = [
        ("px2", end - timedelta(days=n), 9 if n >= 7 else 3, 10, 0.9 if n >= 7 else 0.3)
        for n in range(35)
    ]
    conn.execute("delete from marts.meta_vs_first_party_by_pixel where pixel_id = 'px2'")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into marts.meta_vs_first_party_by_pixel (pixel_id, event_date, events_queued, "
            "events_accepted, events_rejected, events_failed, events_pending, test_events, "
            "first_party_conversions, capi_coverage) values (%s, %s, %s, %s, 0, 0, 0, 0, %s, %s)",
            [(p, d, a, a, c, cov) for p, d, a, c, cov in rows],
        )
    try:
        result = capi_coverage_not_dropping(warehouse=WarehouseResource(database_url=database_url))
    finally:
        conn.execute("delete from marts.meta_vs_first_party_by_pixel where pixel_id = 'px2'")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description == "coverage dropped for px2"
    assert result.metadata["up_to"].value == "2026-10-01"
    table = result.metadata["coverage"].value
    assert "| px2 | 30.0% | 90.0% | 70 / 280 |" in table and "| px1 | 57.1% | - |" in table
    after = capi_coverage_not_dropping(warehouse=WarehouseResource(database_url=database_url))
    assert after.passed


def _mf(database_url: str, tmp_path, metrics: list[str], group_by: list[str]) -> list[dict]:
    """`everreach mf query` (MetricFlow through the project's command) as CSV rows."""
    import csv

    from click.testing import CliRunner

    from everreach.cli import cli

    out = tmp_path / f"mf_{len(list(tmp_path.iterdir()))}.csv"
    args = ["mf", "query", "--metrics", ",".join(metrics), "--group-by", ",".join(group_by)]
    result = CliRunner().invoke(
        cli, [*args, "--csv", str(out), "--quiet"], env={"DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _num(value: str) -> float | None:
    return None if value in ("", None) else float(value)


def _close(got: str, want) -> bool:
    if want is None:
        return _num(got) is None
    return _num(got) is not None and math.isclose(_num(got), float(want), abs_tol=1e-6)


def test_semantic_layer_ads_metrics_equal_the_campaign_mart(
    conn: psycopg.Connection, database_url: str, tmp_path
) -> None:
    """Spend, impressions, clicks, CTR, CPC, CPM and Meta-reported conversions, value and ROAS
    per campaign over all time: what `campaign_performance` says for the lifetime window."""
    metrics = ["spend", "impressions", "clicks", "ctr", "cpc", "cpm"]
    metrics += ["meta_reported_conversions", "meta_reported_conversion_value"]
    metrics += ["meta_reported_roas"]
    rows = _mf(database_url, tmp_path, metrics, ["campaign", "campaign__campaign_name"])
    mart = {
        str(r[0]): r[1:]
        for r in conn.execute(
            "select campaign_id, campaign_name, spend, impressions, clicks, ctr, cpc, cpm, "
            "conversions, conversion_value, roas from marts.campaign_performance "
            "where window_name = 'lifetime'"
        )
    }
    assert {r["campaign"] for r in rows} == set(mart) == {str(s.CAMPAIGN_A), str(s.CAMPAIGN_B)}
    for row in rows:
        name, spend, imps, clicks, ctr, cpc, cpm, conv, value, roas = mart[row["campaign"]]
        assert row["campaign__campaign_name"] == name
        for metric, want in zip(
            metrics, (spend, imps, clicks, ctr, cpc, cpm, conv, value, roas), strict=True
        ):
            assert _close(row[metric], want), (name, metric, row[metric], want)
    # by week and campaign: the daily mart's campaign rows summed per ISO week
    weekly = _mf(database_url, tmp_path, ["spend"], ["metric_time__week", "campaign"])
    expected = {
        (str(week.date()), str(campaign)): float(spend)
        for week, campaign, spend in conn.execute(
            "select date_trunc('week', report_date), campaign_id, sum(spend) "
            "from marts.ad_performance_daily where report_level = 'campaign' group by 1, 2"
        )
    }
    got = {(r["metric_time__week"][:10], r["campaign"]): float(r["spend"]) for r in weekly}
    assert got == expected


def test_semantic_layer_attribution_metrics_equal_the_marts(
    conn: psycopg.Connection, database_url: str, tmp_path
) -> None:
    """Attributed conversions, revenue, ROAS and cost per attributed conversion per model and
    campaign: `campaign_attribution_roas`; attributed conversions and revenue by model:
    `attribution_summary` (the unattributed bucket aside)."""
    metrics = [
        f"{name}_{model}"
        for model in MODELS
        for name in (
            "attributed_conversions",
            "attributed_revenue",
            "attributed_roas",
            "cost_per_attributed_conversion",
        )
    ]
    rows = {r["campaign"]: r for r in _mf(database_url, tmp_path, metrics, ["campaign"])}
    for campaign, model, spend, conversions, revenue, roas in conn.execute(
        "select campaign_id::text, attribution_model, spend, attributed_conversions, "
        "attributed_revenue, attributed_roas from marts.campaign_attribution_roas"
    ):
        row = rows[campaign]
        assert _close(row[f"attributed_conversions_{model}"], conversions), (campaign, model)
        assert _close(row[f"attributed_revenue_{model}"], revenue), (campaign, model)
        assert _close(row[f"attributed_roas_{model}"], roas), (campaign, model)
        assert _close(
            row[f"cost_per_attributed_conversion_{model}"],
            spend / conversions if conversions else None,
        ), (campaign, model)
    by_model = {
        r["credit__attribution_model"]: r
        for r in _mf(
            database_url,
            tmp_path,
            ["attributed_conversions", "attributed_revenue"],
            ["credit__attribution_model"],
        )
    }
    for model, conversions, revenue in conn.execute(
        "select attribution_model, coalesce(campaign_attributed_conversions, 0) "
        "+ other_attributed_conversions, attributed_revenue from marts.attribution_summary"
    ):
        assert _close(by_model[model]["attributed_conversions"], conversions), model
        assert _close(by_model[model]["attributed_revenue"], revenue), model


def test_semantic_layer_conversation_and_organic_metrics_equal_the_marts(
    conn: psycopg.Connection, database_url: str, tmp_path
) -> None:
    """Conversations and the share of replies inside the policy window per platform
    (`conversations_daily`), the median first-response time per platform (`conversations`),
    organic reach and engagements per day (`organic_account_daily`)."""
    daily = {
        r["conversation_day__platform"]: r
        for r in _mf(
            database_url,
            tmp_path,
            ["conversations", "replies_inside_window_share"],
            ["conversation_day__platform"],
        )
    }
    for platform, conversations, inside, replies in conn.execute(
        "select platform, sum(new_conversations), sum(replies_inside_window), "
        "sum(messages_out) from marts.conversations_daily group by platform"
    ):
        assert _close(daily[platform]["conversations"], conversations), platform
        share = inside / replies if replies else None
        assert _close(daily[platform]["replies_inside_window_share"], share), platform
    medians = {
        r["conversation__platform"]: r["first_response_time_median"]
        for r in _mf(
            database_url, tmp_path, ["first_response_time_median"], ["conversation__platform"]
        )
    }
    for platform, median in conn.execute(
        "select platform, percentile_cont(0.5) within group (order by first_response_seconds) "
        "from marts.conversations where first_response_seconds is not null group by platform"
    ):
        assert _close(medians[platform], median), platform
    organic = {
        r["metric_time__day"][:10]: r
        for r in _mf(
            database_url, tmp_path, ["organic_reach", "organic_engagements"], ["metric_time__day"]
        )
    }
    for day, reach, engagements in conn.execute(
        "select metric_date::text, sum(reach), sum(engagements) from marts.organic_account_daily "
        "group by metric_date"
    ):
        assert _close(organic[day]["organic_reach"], reach), day
        assert _close(organic[day]["organic_engagements"], engagements), day


MARTS = (
    "touchpoints",
    "user_journeys",
    "user_paths",
    "attribution_touch_credits",
    "attribution_summary",
    "campaign_attribution_roas",
    "ad_performance_daily",
    "conversations",
    "meta_vs_first_party_daily",
    "meta_vs_first_party_by_pixel",
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
    from dbt_runner import DbtRunError

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


def test_windowed_runs_test_rows_written_in_the_window_and_the_latest_persons(
    conn: psycopg.Connection, built: dict, database_url: str, dbt_paths: tuple
) -> None:
    """`daily_scope: window` reads the rows written since the window's start (minus the
    late-arrival lookback); `persons_of_latest_load` reconciles the persons of the latest load.
    Rows outside them are seen only by whole-table runs. (Runs after the tests above: it
    changes the data.)"""
    from dbt_runner import DbtRunError

    target, logs = dbt_paths
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = window_env(today, today + timedelta(days=1))

    def passes(select: str, *, windowed: bool) -> bool:
        try:
            run_dbt(
                database_url,
                # (the reconciliation mart compares with the credits too: not this one)
                ["test", "--select", select, "--exclude", "meta_vs_first_party_daily"],
                target_path=target,
                log_path=logs,
                env=window if windowed else None,
            )
        except DbtRunError:
            return False
        return True

    run_dbt(database_url, ["run", "--full-refresh"], target_path=target, log_path=logs)
    # an event written long ago whose classified row goes bad: only whole-table runs see it
    conn.execute(
        "update intermediate.int_user_events_classified set occurred_at = null, "
        "inserted_at = %s where event_id = %s",
        (s.T - 30 * s.DAY, built["u1_click_a"]),
    )
    classified = "int_user_events_classified,test_name:not_null"
    assert passes(classified, windowed=True) and not passes(classified, windowed=False)
    # one written today goes bad too: the windowed run sees it
    conn.execute("update user_event set inserted_at = now() where id = %s", (built["u5_purchase"],))
    conn.execute(
        "update intermediate.int_user_events_classified set occurred_at = null, "
        "inserted_at = now() where event_id = %s",
        (built["u5_purchase"],),
    )
    assert not passes(classified, windowed=True)

    # a day's load: u1 buys again, so u1's conversions are the latest load's persons
    conn.execute(
        "insert into user_event (user_id, etype, props, occurred_at) values (%s, 'purchase', %s, %s)",
        (s.U1, Jsonb({"value": 5, "currency": "USD"}), s.T + 20 * s.DAY),
    )
    run_dbt(database_url, ["run"], target_path=target, log_path=logs, env=window)
    reconciliation = "attribution_touch_credits,test_name:equal_sums"
    assert passes(reconciliation, windowed=True) and passes(reconciliation, windowed=False)
    # a credit of another person (u3, not in the latest load) goes bad: whole-table runs only
    conn.execute(
        "update marts.attribution_touch_credits set credited_conversions = 0.5 "
        "where conversion_event_id = %s and attribution_model = 'first_touch'",
        (built["u3_lead"],),
    )
    assert passes(reconciliation, windowed=True) and not passes(reconciliation, windowed=False)
    # one of u1's goes bad: the windowed run sees it
    conn.execute(
        "update marts.attribution_touch_credits set credited_conversions = 0.5 "
        "where conversion_event_id = %s and attribution_model = 'first_touch'",
        (built["u1_purchase_1"],),
    )
    assert not passes(reconciliation, windowed=True)
    run_dbt(database_url, ["run", "--full-refresh"], target_path=target, log_path=logs)


def test_a_delivery_made_after_the_step_was_stored_shows_on_the_step(
    conn: psycopg.Connection, built: dict, database_url: str, dbt_paths: tuple
) -> None:
    """The daily job stores a purchase; the Conversions API queues it (pending), then delivers
    it and logs the copy. The step stays one step whose delivery follows the queue, and the
    incremental result equals a full refresh. (Runs last: it changes the data.)"""
    target, logs = dbt_paths
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def daily_run() -> None:
        run_dbt(
            database_url,
            ["run"],
            target_path=target,
            log_path=logs,
            env=window_env(today, today + timedelta(days=1)),
        )

    def u2_steps() -> list[tuple]:
        return conn.execute(
            "select event_type, capi_delivery_status from marts.user_journeys "
            "where person_id = %s and is_conversion order by step_number",
            (s.U2,),
        ).fetchall()

    # the test above left broken rows behind on purpose: start from a full build
    run_dbt(database_url, ["run", "--full-refresh"], target_path=target, log_path=logs)
    purchase = conn.execute(
        "insert into user_event (user_id, etype, props, occurred_at) values (%s, 'purchase', %s, %s) "
        "returning id",
        (s.U2, Jsonb({"value": 70, "currency": "USD"}), s.T + 12 * s.DAY),
    ).fetchone()[0]
    daily_run()
    assert u2_steps()[-1] == ("purchase", None)
    conn.execute(
        "insert into meta_conversion_event (pixel_id, event_name, event_id, event_time, "
        "action_source, user_id, value, currency, status, source, source_event_ref) values "
        "('px1', 'Purchase', 'e-u2-late', %s, 'website', %s, 70, 'USD', 'pending', 'user_event', %s)",
        (s.T + 12 * s.DAY, s.U2, str(purchase)),
    )
    assert u2_steps()[-1] == ("purchase", "pending")
    conn.execute("update meta_conversion_event set status = 'sent' where event_id = 'e-u2-late'")
    conn.execute(
        "insert into user_event (user_id, etype, source, props, occurred_at) "
        "values (%s, 'meta_conversion_Purchase', 'capi', %s, %s)",
        (s.U2, Jsonb({"event_id": "e-u2-late", "pixel_id": "px1", "value": 70}), s.T + 12 * s.DAY),
    )
    daily_run()
    assert u2_steps()[-1] == ("purchase", "sent")
    assert not conn.execute(
        "select 1 from marts.user_journeys where event_type = 'meta_conversion_Purchase' "
        "and person_id = %s",
        (s.U2,),
    ).fetchall()
    incremental = _snapshot(conn)
    run_dbt(database_url, ["run", "--full-refresh"], target_path=target, log_path=logs)
    assert _snapshot(conn) == incremental
