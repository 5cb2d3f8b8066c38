"""The ads breakdown marts, built by dbt over what the real syncs load from the sandbox:
each reconciles to `ad_performance_daily`, reach is never summed, the reconciliation test
catches a breakdown that does not add up."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dbt_seed as s
import psycopg
import pytest

from everreach.ads.breakdowns import ALL_FAMILIES, sync_family
from everreach.ads.creatives import sync_creatives
from everreach.ads.objects import sync_ad_objects
from everreach.ads.settings import AdsSettings
from everreach.ads.sync import AdAccount, sync_ad_performance
from everreach.meta import GraphClient
from everreach.sandbox.testing import running_sandbox
from everreach_pipelines.defs.dbt.project import DBT_PROJECT_DIR

MARTS_DIR = Path(DBT_PROJECT_DIR) / "models" / "marts"
ADS_MARTS = (
    "ads_demographics_daily",
    "ads_country_daily",
    "ads_region_daily",
    "ads_placement_daily",
    "ads_action_conversions_daily",
    "ads_creative_performance_daily",
    "ads_landing_page_daily",
)
pytestmark = pytest.mark.slow  # the real syncs, then two dbt builds

SELECT = ["--select", "+path:models/marts/ads", "--indirect-selection", "cautious"]


@pytest.fixture(scope="module")
def loaded(database_url: str, dbt: Callable[..., object]) -> Iterator[None]:
    """Two accounts × 8 ads × 6 days synced by the real pipeline, then `dbt build`; the
    database is left as found (raw tables empty, no dbt relations) for the next module."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        s.truncate_raw_tables(conn)
    until = datetime.now(UTC).date() - timedelta(days=2)
    since = until - timedelta(days=5)
    settings = AdsSettings()
    with (
        running_sandbox(accounts=2, days=10, async_polls_to_complete=1) as sb,
        psycopg.connect(database_url) as conn,
    ):
        conn.autocommit = True
        client = GraphClient("token", base_url=sb.base_url, poll_interval=0.01)
        accounts = [AdAccount(a) for a in sb.sandbox.domains["ads"].accounts]
        sync_ad_objects(client, conn, accounts)
        sync_creatives(client, conn, accounts)
        sync_ad_performance(client, conn, accounts, since, until, settings)
        for family in ALL_FAMILIES:
            sync_family(client, conn, family, accounts, since, until, settings)
    dbt("build", "--full-refresh", *SELECT)
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        s.truncate_raw_tables(conn)
        conn.execute("drop schema if exists marts, intermediate, staging cascade")


@pytest.fixture
def conn(database_url: str, loaded: None) -> psycopg.Connection:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def test_every_mart_is_built_and_reconciles(conn: psycopg.Connection) -> None:
    # `dbt build` ran every mart's reconciliation test; check the figures independently.
    unbroken = dict(
        conn.execute(
            "select ad_account_id || ':' || report_date, sum(spend) from marts.ad_performance_daily "
            "where report_level = 'ad' group by 1"
        ).fetchall()
    )
    for mart in ADS_MARTS:
        totals = dict(
            conn.execute(
                f"select ad_account_id || ':' || report_date, sum("
                f"{'conversion_value' if mart == 'ads_action_conversions_daily' else 'spend'}) "
                f"from marts.{mart} group by 1"
            ).fetchall()
        )
        assert totals, mart
        if mart != "ads_action_conversions_daily":
            assert totals == {k: v for k, v in unbroken.items() if k in totals}, mart
    conversions = conn.execute(
        "select sum(conversions) from marts.ads_action_conversions_daily"
    ).fetchone()[0]
    expected = conn.execute(
        "select sum(conversions) from marts.ad_performance_daily where report_level = 'ad' "
        "and (ad_account_id, report_date) in "
        "(select ad_account_id, report_date from marts.ads_action_conversions_daily)"
    ).fetchone()[0]
    assert conversions == expected and conversions > 0


def test_landing_marts_fill_metas_dynamic_parameters_per_ad(conn: psycopg.Connection) -> None:
    campaigns = {
        r[0]
        for r in conn.execute(
            "select utm_campaign from marts.ads_landing_page_daily where utm_campaign is not null"
        ).fetchall()
    }
    assert campaigns and not any("{{" in c for c in campaigns)
    names = {r[0] for r in conn.execute("select name from campaign").fetchall()}
    assert campaigns & names  # a {{campaign.name}} became the ad's campaign name
    assert "Café Été 2026" in campaigns or "spring_sale_2026" in campaigns


def test_reach_is_never_summed_in_a_mart(conn: psycopg.Connection) -> None:
    summed = re.compile(r"\b(sum|avg)\s*\([^)]*reach", re.IGNORECASE)
    offenders = [p.name for p in MARTS_DIR.rglob("*.sql") if summed.search(p.read_text())]
    assert offenders == []
    # The marts that sum over ads have no reach column at all; the breakdown marts keep
    # Meta's figure per ad, day and breakdown value.
    reach_in = {
        r[0]
        for r in conn.execute(
            "select table_name from information_schema.columns "
            "where table_schema = 'marts' and column_name = 'reach'"
        ).fetchall()
    }
    assert reach_in & set(ADS_MARTS) == {
        "ads_demographics_daily",
        "ads_country_daily",
        "ads_region_daily",
        "ads_placement_daily",
    }


def test_reconciliation_test_catches_a_breakdown_that_does_not_add_up(
    conn: psycopg.Connection, dbt: Callable[..., object]
) -> None:
    key = conn.execute(
        "select ad_account_id, date, ad_id, age, gender from ad_insights_age_gender limit 1"
    ).fetchone()
    where = "where (ad_account_id, date, ad_id, age, gender) = (%s, %s, %s, %s, %s)"
    conn.execute(f"update ad_insights_age_gender set spend = spend + 1 {where}", key)
    try:
        with pytest.raises(Exception, match="reconciles_with_ad_performance"):
            dbt("build", "--select", "ads_demographics_daily", "stg_meta__ad_insights_age_gender")
    finally:
        conn.execute(f"update ad_insights_age_gender set spend = spend - 1 {where}", key)
