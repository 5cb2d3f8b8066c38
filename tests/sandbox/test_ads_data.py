"""Properties of the sandbox's ads data that the pipelines rely on."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from click.testing import CliRunner

from everreach.sandbox.cli import sandbox as sandbox_command
from everreach.sandbox.core import DOMAIN_MODULES, Sandbox, SandboxConfig
from everreach.sandbox.testing import RunningSandbox, running_sandbox

TOKEN = {"access_token": "sandbox-token"}
ALL_STATUSES = ["ACTIVE", "PAUSED", "DELETED", "ARCHIVED", "ADSET_PAUSED", "CAMPAIGN_PAUSED"]
ALL_ADS = [{"field": "ad.effective_status", "operator": "IN", "value": ALL_STATUSES}]
RANGE = {"since": "2026-02-01", "until": "2026-03-10"}


def accounts(sb: RunningSandbox) -> list[dict]:
    return requests.get(
        sb.url("me/adaccounts"), params={**TOKEN, "fields": "account_status,currency,timezone_name"}
    ).json()["data"]


def insights(sb: RunningSandbox, acct: str, **params) -> list[dict]:
    query = {
        **TOKEN,
        "limit": 5000,
        **{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in params.items()},
    }
    resp = requests.get(sb.url(f"{acct}/insights"), params=query)
    assert resp.status_code == 200, resp.text
    assert "next" not in resp.json().get("paging", {})
    return resp.json()["data"]


def test_account_spend_equals_sum_of_ad_spend_to_the_cent(sb: RunningSandbox):
    acct = accounts(sb)[0]["id"]
    per_day_acct = insights(
        sb, acct, level="account", time_increment=1, time_range=RANGE, fields="spend,impressions"
    )
    per_day_ads = insights(
        sb,
        acct,
        level="ad",
        time_increment=1,
        time_range=RANGE,
        fields="ad_id,spend,impressions",
        filtering=ALL_ADS,
    )
    assert len(per_day_acct) == 38
    for day in per_day_acct:
        ads = [r for r in per_day_ads if r["date_start"] == day["date_start"]]
        assert sum(Decimal(r["spend"]) for r in ads) == Decimal(day["spend"])
        assert sum(int(r["impressions"]) for r in ads) == int(day["impressions"])
    total = insights(sb, acct, level="account", time_range=RANGE, fields="spend")
    assert Decimal(total[0]["spend"]) == sum(Decimal(d["spend"]) for d in per_day_acct)


def test_reach_is_not_additive(sb: RunningSandbox):
    acct = accounts(sb)[0]["id"]
    campaigns = insights(
        sb,
        acct,
        level="campaign",
        time_increment=1,
        time_range=RANGE,
        fields="campaign_id,reach",
        filtering=[{"field": "campaign.effective_status", "operator": "IN", "value": ALL_STATUSES}],
    )
    ads = insights(
        sb,
        acct,
        level="ad",
        time_increment=1,
        time_range=RANGE,
        fields="campaign_id,reach",
        filtering=ALL_ADS,
    )
    for row in campaigns:
        parts = [
            int(r["reach"])
            for r in ads
            if r["campaign_id"] == row["campaign_id"] and r["date_start"] == row["date_start"]
        ]
        assert max(parts) <= int(row["reach"]) < sum(parts)


def test_deleted_ads_hidden_by_default_but_their_spend_exists(sb: RunningSandbox):
    acct = accounts(sb)[0]["id"]
    ads = requests.get(
        sb.url(f"{acct}/ads"),
        params={
            **TOKEN,
            "fields": "effective_status",
            "limit": 100,
            "effective_status": json.dumps(ALL_STATUSES),
        },
    ).json()["data"]
    hidden = {a["id"] for a in ads if a["effective_status"] in ("DELETED", "ARCHIVED")}
    assert hidden, "the seed should produce deleted or archived ads"
    default = insights(sb, acct, level="ad", time_range=RANGE, fields="ad_id,spend")
    everything = insights(
        sb, acct, level="ad", time_range=RANGE, fields="ad_id,spend", filtering=ALL_ADS
    )
    assert hidden.isdisjoint(r["ad_id"] for r in default)
    assert hidden <= {r["ad_id"] for r in everything}


def test_disabled_account_has_no_delivery_and_locales_differ(sb: RunningSandbox):
    accts = accounts(sb)
    disabled = [a for a in accts if a["account_status"] != 1]
    assert len(disabled) == 1
    assert insights(sb, disabled[0]["id"], level="ad", time_range=RANGE, fields="spend") == []
    assert len({a["currency"] for a in accts}) >= 2
    assert len({a["timezone_name"] for a in accts}) >= 2


def test_past_day_changes_for_28_days_then_freezes(sb: RunningSandbox):
    acct = accounts(sb)[0]["id"]
    day = {"since": "2026-03-10", "until": "2026-03-10"}

    def purchases() -> tuple[Decimal, int]:
        (row,) = insights(
            sb, acct, level="account", time_range=day, fields="spend,actions,action_values"
        )
        bought = sum(
            int(a["value"]) for a in row.get("actions", []) if a["action_type"] == "omni_purchase"
        )
        value = sum(
            Decimal(a["value"])
            for a in row.get("action_values", [])
            if a["action_type"] == "omni_purchase"
        )
        return value, bought

    seen = [purchases()]
    for _ in range(3):
        sb.sandbox.advance(days=9)
        seen.append(purchases())
    assert seen[1] != seen[0] and seen[2] != seen[1]  # still changing within 28 days
    sb.sandbox.advance(days=30)
    final = purchases()
    sb.sandbox.advance(days=40)
    assert purchases() == final  # settled after 28 days
    assert final[1] >= seen[0][1]


def test_same_seed_same_data_other_seed_other_data(sb: RunningSandbox):
    acct = accounts(sb)[0]["id"]
    mine = insights(sb, acct, level="ad", time_range=RANGE, fields="ad_id,spend", filtering=ALL_ADS)
    with running_sandbox(now=sb.config.now) as twin:
        assert (
            insights(
                twin, acct, level="ad", time_range=RANGE, fields="ad_id,spend", filtering=ALL_ADS
            )
            == mine
        )
    with running_sandbox(now=sb.config.now, seed=99) as other:
        other_acct = accounts(other)[0]["id"]
        assert (
            insights(
                other,
                other_acct,
                level="ad",
                time_range=RANGE,
                fields="ad_id,spend",
                filtering=ALL_ADS,
            )
            != mine
        )


def test_size_knobs_reach_a_million_rows_without_materializing():
    config = SandboxConfig(
        accounts=2, campaigns_per_account=10, adsets_per_campaign=10, ads_per_adset=10, days=500
    )
    sandbox = Sandbox(config)
    sandbox.load_domains()
    from everreach.sandbox.ads import parse_insights

    state = sandbox.domains["ads"]
    total = 0
    for acct in state.accounts.values():
        today = sandbox.now().astimezone(acct.tz).date()
        query = parse_insights(
            state,
            {
                "level": "ad",
                "time_increment": "1",
                "date_preset": "maximum",
                "filtering": json.dumps(ALL_ADS),
            },
            acct,
            None,
            today,
        )
        total += len(query)
        assert len(query[len(query) - 3 : len(query)]) == 3  # the far end is reachable cheaply
    assert total >= 1_000_000


@pytest.mark.parametrize("sb", [{"latency_ms": 60}], indirect=True)
def test_latency_knob(sb: RunningSandbox):
    resp = requests.get(sb.url("me/adaccounts"), params=TOKEN)
    assert resp.elapsed >= timedelta(milliseconds=55)


@pytest.mark.parametrize("sb", [{"reduce_data_threshold": 10}], indirect=True)
def test_reduce_data_for_large_requests(sb: RunningSandbox):
    acct = accounts(sb)[0]["id"]
    resp = requests.get(
        sb.url(f"{acct}/insights"),
        params={**TOKEN, "level": "ad", "time_increment": 1, "time_range": json.dumps(RANGE)},
    )
    assert resp.status_code == 500
    err = resp.json()["error"]
    assert err["code"] == 1 and "reduce the amount of data" in err["message"]
    small = requests.get(
        sb.url(f"{acct}/insights"),
        params={**TOKEN, "level": "account", "time_range": json.dumps(RANGE)},
    )
    assert small.status_code == 200


def test_registry_and_domain_loading():
    sandbox = Sandbox(SandboxConfig())
    sandbox.load_domains()
    assert "ads" in sandbox.modules and set(sandbox.modules) <= set(DOMAIN_MODULES)
    acct = next(iter(sandbox.domains["ads"].accounts))
    kind, module = sandbox.lookup(f"act_{acct}")
    assert kind == "ad_account" and module is sandbox.modules["ads"]
    assert sandbox.lookup("no-such-node") is None


def test_cli_rejects_bad_fault_spec():
    result = CliRunner().invoke(sandbox_command, ["--error-rate", "two=0.5"])
    assert result.exit_code != 0 and "CODE=RATE" in result.output
    result = CliRunner().invoke(sandbox_command, ["--extra", "[1]"])
    assert result.exit_code != 0 and "JSON object" in result.output
