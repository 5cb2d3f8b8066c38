"""Pictures for the marts.

- `campaign_attribution_roas` (the mart BI reads for attributed ROAS): an inline sparkline of
  all campaigns' daily spend vs attributed revenue in the main currency, and a full chart with
  one panel per top campaign. Spend comes from campaign-level `marts.ad_performance_daily`
  rows (account-local dates); revenue from `marts.attribution_touch_credits` under one
  attribution model, by the conversion's UTC date.
- `meta_vs_first_party_daily`: what Meta sees vs what happened, all campaigns per day: Meta's
  reported conversions, first-party conversions attributed to campaigns (one model) and those
  delivered through the Conversions API; and the CAPI coverage per day.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import psycopg
from dagster import MetadataValue

from everreach_pipelines.charts import (
    FULL_CHART_HINT,
    Panel,
    Series,
    chart_markdown,
    sparkline_markdown,
)

#: The dbt model whose materialization carries the charts.
CHART_MODEL_NAME = "campaign_attribution_roas"
CHART_KEY = "spend_vs_attributed_revenue_chart"
SPARK_KEY = "spend_vs_attributed_revenue"
#: The attribution model charted (the marts hold all five; linear is the neutral one).
ATTRIBUTION_MODEL = "linear"
DAYS = 30
TOP_CAMPAIGNS = 4

_DAILY_SQL = """
with spend as (
    select campaign_id, report_date as day, min(currency) as currency, sum(spend) as spend
    from marts.ad_performance_daily
    where report_level = 'campaign' and report_date between %(since)s and %(until)s
    group by campaign_id, report_date
),

revenue as (
    select
        campaign_id,
        (converted_at at time zone 'UTC')::date as day,
        sum(credited_revenue) as revenue
    from marts.attribution_touch_credits
    where
        attribution_model = %(model)s
        and campaign_id is not null
        and converted_at >= %(since)s::date
        and converted_at < %(until)s::date + 1
    group by campaign_id, (converted_at at time zone 'UTC')::date
),

daily as (
    select
        coalesce(s.campaign_id, r.campaign_id) as campaign_id,
        coalesce(s.day, r.day) as day,
        s.currency,
        coalesce(s.spend, 0) as spend,
        coalesce(r.revenue, 0) as revenue
    from spend as s
    full join revenue as r on r.campaign_id = s.campaign_id and r.day = s.day
),

ranked as (
    select campaign_id, min(currency) as currency, sum(spend) as total
    from daily
    group by campaign_id
)

select d.campaign_id::text, c.name, k.currency, d.day, d.spend, d.revenue, k.total
from daily as d
inner join ranked as k on k.campaign_id = d.campaign_id
left join campaign as c on c.campaign_id = d.campaign_id
order by k.total desc, d.campaign_id, d.day
"""


def daily_spend_and_revenue(
    conn: psycopg.Connection, today: date, *, days: int = DAYS, model: str = ATTRIBUTION_MODEL
) -> tuple[date, list[tuple[str, str | None, str | None, date, float, float]]]:
    """The window's last day — today, or the newest campaign spend day when the data is
    older — and (campaign id, name, spend currency, day, spend, attributed revenue) for
    the `days` days up to it, campaigns with the most spend first."""
    newest = conn.execute(
        "select max(report_date) from marts.ad_performance_daily where report_level = 'campaign'"
    ).fetchone()[0]
    end = min(today, newest) if newest else today
    rows = conn.execute(
        _DAILY_SQL, {"since": end - timedelta(days=days - 1), "until": end, "model": model}
    ).fetchall()
    return end, [(cid, name, cur, day, float(s), float(r)) for cid, name, cur, day, s, r, _ in rows]


def roas_charts(rows: list[tuple], end: date, *, days: int = DAYS) -> dict[str, MetadataValue]:
    """The sparkline (all campaigns of the main currency) and the full chart (one panel
    per top campaign) of the `days` days up to `end`; empty when there is nothing to draw."""
    if not rows:
        return {}
    campaigns: dict[str, dict[str, Any]] = {}
    totals: dict[str, float] = defaultdict(float)
    by_day: dict[str, dict[date, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for cid, name, cur, day, spend, revenue in rows:
        entry = campaigns.setdefault(cid, {"name": name or cid, "currency": cur, "points": []})
        entry["points"].append((day, spend, revenue))
        currency = cur or entry["currency"] or "?"
        totals[currency] += spend
        by_day[currency][day][0] += spend
        by_day[currency][day][1] += revenue
    since = end - timedelta(days=days - 1)
    panels = [
        Panel(
            title=f"{c['name'][:48]} ({c['currency'] or '?'})",
            ylabel=c["currency"] or "",
            series=[
                Series("spend", [(d, s) for d, s, _ in c["points"]]),
                Series(
                    f"attributed revenue ({ATTRIBUTION_MODEL})",
                    [(d, r) for d, _, r in c["points"]],
                    linestyle="--",
                ),
            ],
        )
        for c in list(campaigns.values())[:TOP_CAMPAIGNS]
    ]
    out: dict[str, MetadataValue] = {}
    main = max(totals, key=lambda k: totals[k])
    days_main = sorted(by_day[main].items())
    spark = sparkline_markdown(
        f"{main} daily spend vs attributed revenue",
        [
            Series("spend", [(d, v[0]) for d, v in days_main]),
            Series(f"revenue ({ATTRIBUTION_MODEL})", [(d, v[1]) for d, v in days_main]),
        ],
        caption=[f"{main} per day, {since}..{end}", FULL_CHART_HINT],
    )
    if spark is not None:
        out[SPARK_KEY] = spark
    chart = chart_markdown(
        f"Top campaigns: daily spend vs attributed revenue, {since}..{end}", panels
    )
    if chart is not None:
        out[CHART_KEY] = chart
    return out


#: The mart whose materialization carries the Meta vs first-party pictures.
SIGNAL_MODEL_NAME = "meta_vs_first_party_daily"
SIGNAL_CHART_KEY = "meta_vs_first_party_chart"
SIGNAL_SPARK_KEY = "meta_vs_first_party"

_SIGNAL_SQL = """
select
    report_date,
    sum(meta_reported_conversions) as meta_reported,
    sum(attributed_conversions) as attributed,
    sum(capi_delivered_conversions) as delivered
from marts.meta_vs_first_party_daily
where attribution_model = %(model)s and report_date between %(since)s and %(until)s
group by report_date
order by report_date
"""


def daily_meta_vs_first_party(
    conn: psycopg.Connection, today: date, *, days: int = DAYS, model: str = ATTRIBUTION_MODEL
) -> tuple[date, list[tuple[date, float, float, float]]]:
    """The window's last day (today, or the newest day of the mart when its data is older)
    and (day, Meta-reported, attributed, delivered through CAPI) for the `days` days up to
    it, summed over campaigns under one attribution model."""
    newest = conn.execute(
        "select max(report_date) from marts.meta_vs_first_party_daily"
    ).fetchone()[0]
    end = min(today, newest) if newest else today
    rows = conn.execute(
        _SIGNAL_SQL, {"since": end - timedelta(days=days - 1), "until": end, "model": model}
    ).fetchall()
    return end, [(day, float(m), float(a), float(d)) for day, m, a, d in rows]


def signal_charts(
    rows: list[tuple[date, float, float, float]], end: date, *, days: int = DAYS
) -> dict[str, MetadataValue]:
    """The sparkline (Meta-reported vs attributed vs delivered per day) and the full chart
    (the same, plus CAPI coverage per day); empty when there is nothing to draw."""
    if not rows:
        return {}
    since = end - timedelta(days=days - 1)
    meta = Series("Meta-reported", [(d, m) for d, m, _, _ in rows])
    attributed = Series(f"attributed ({ATTRIBUTION_MODEL})", [(d, a) for d, _, a, _ in rows])
    delivered = Series("delivered via CAPI", [(d, x) for d, _, _, x in rows], linestyle="--")
    coverage = Series(
        "CAPI coverage", [(d, x / a if a else None) for d, _, a, x in rows], kind="bar"
    )
    out: dict[str, MetadataValue] = {}
    spark = sparkline_markdown(
        "Meta-reported vs attributed vs delivered conversions",
        [meta, attributed, delivered],
        caption=[f"conversions per day, {since}..{end}", FULL_CHART_HINT],
    )
    if spark is not None:
        out[SIGNAL_SPARK_KEY] = spark
    chart = chart_markdown(
        f"What Meta sees vs what happened, {since}..{end}",
        [
            Panel("Conversions per day, all campaigns", [meta, attributed, delivered]),
            Panel("Share of attributed conversions delivered to Meta", [coverage], ylabel="share"),
        ],
    )
    if chart is not None:
        out[SIGNAL_CHART_KEY] = chart
    return out


__all__ = [
    "ATTRIBUTION_MODEL",
    "CHART_KEY",
    "CHART_MODEL_NAME",
    "SIGNAL_CHART_KEY",
    "SIGNAL_MODEL_NAME",
    "SIGNAL_SPARK_KEY",
    "SPARK_KEY",
    "daily_meta_vs_first_party",
    "daily_spend_and_revenue",
    "roas_charts",
    "signal_charts",
]
