"""The dbt project's documentation and structure rules, checked on the parsed manifest."""

from __future__ import annotations

import json

import pytest

from everreach_pipelines.defs.dbt.project import DBT_PROJECT_DIR

BI_MARTS = {
    "campaign_performance",
    "campaign_attribution_roas",
    "attribution_summary",
    "conversations_daily",
    "organic_account_daily",
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A freshly parsed manifest (no database needed), never a stale one from target/."""
    from dbt.cli.main import dbtRunner

    target = tmp_path_factory.mktemp("dbt_parse")
    result = dbtRunner().invoke(
        [
            "parse",
            "--quiet",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target),
        ]
    )
    assert result.success, result.exception
    return json.loads((target / "manifest.json").read_text())


def _models(manifest: dict) -> list[dict]:
    return [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]


def test_every_model_and_column_is_described(manifest: dict) -> None:
    undocumented = []
    for model in _models(manifest):
        if not model["description"].strip():
            undocumented.append(model["name"])
        for name, column in model["columns"].items():
            if not column["description"].strip():
                undocumented.append(f"{model['name']}.{name}")
        assert model["columns"], f"{model['name']} documents no columns"
    assert undocumented == []


def test_models_land_in_the_three_schemas_with_layer_prefixes(manifest: dict) -> None:
    for model in _models(manifest):
        layer = model["fqn"][1]
        assert model["schema"] == layer, model["name"]
        if layer == "staging":
            assert model["name"].startswith("stg_") and model["config"]["materialized"] == "view"
        elif layer == "intermediate":
            assert model["name"].startswith("int_")


def test_bi_marts_have_enforced_contracts_and_grain_tests(manifest: dict) -> None:
    models = {m["name"]: m for m in _models(manifest)}
    for name in BI_MARTS:
        assert models[name]["config"]["contract"]["enforced"], name
    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    grain = {
        n["attached_node"].split(".")[-1]
        for n in tests
        if n.get("attached_node")
        and n.get("test_metadata", {}).get("name") in {"unique_combination_of_columns", "unique"}
    }
    # every model has a grain test (unique key or unique combination of columns)
    assert set(models) - grain == set()


def test_sources_cover_every_raw_table_with_freshness(manifest: dict) -> None:
    sources = {(s["schema"], s["name"]): s for s in manifest["sources"].values()}
    expected = {
        "user_event",
        "campaign",
        "ad_performance",
        "conversation_thread",
        "conversation_message",
        "messaging_policy_window",
        "message_delivery_event",
        "meta_platform_config",
        "social_media_post",
        "social_post_insights",
        "social_account_insights",
        "meta_conversion_event",
        "meta_webhook_event",
        "meta_ad_campaign",
        "meta_ad_set",
        "meta_ad",
        "ad_insights_age_gender",
        "ad_insights_country",
        "ad_insights_region",
        "ad_insights_placement",
        "ad_insights_actions",
        "meta_ad_creative",
    }
    assert {name for schema, name in sources if schema == "public"} == expected
    assert ("auth", "users") in sources
    for (schema, name), source in sources.items():
        if schema == "public":
            assert source["loaded_at_field"], name


def test_attribution_rules_have_unit_tests_and_dashboards_exposures(manifest: dict) -> None:
    unit_tests = {u["name"] for u in manifest["unit_tests"].values()}
    assert {
        "attribution_single_touch",
        "attribution_two_touches",
        "attribution_repeated_touches",
        "attribution_no_touch",
        "attribution_touches_outside_window",
    } <= unit_tests
    exposures = {e["name"] for e in manifest["exposures"].values()}
    assert "campaign_roas_dashboard" in exposures and len(exposures) >= 4


LAYER_ORDER = {"staging": 0, "intermediate": 1, "marts": 2}


def test_layers_flow_one_way(manifest: dict) -> None:
    """Staging reads only sources; intermediate reads staging and intermediate; marts read any
    model. No model reads a layer downstream of its own (intermediate → marts, staging →
    intermediate or marts)."""
    nodes = manifest["nodes"]
    backwards = []
    for model in _models(manifest):
        layer = model["fqn"][1]
        for parent_id in model["depends_on"]["nodes"]:
            parent = nodes.get(parent_id)
            if parent is None or parent["resource_type"] != "model":
                continue
            parent_layer = parent["fqn"][1]
            if layer == "staging" or LAYER_ORDER[parent_layer] > LAYER_ORDER[layer]:
                backwards.append(
                    f"{model['name']} ({layer}) reads {parent['name']} ({parent_layer})"
                )
    assert backwards == []


MART_AREAS = {"ads", "attribution", "journeys", "conversations", "organic"}


def test_marts_live_in_area_folders_with_one_yml_each() -> None:
    marts = DBT_PROJECT_DIR / "models" / "marts"
    assert not list(marts.glob("*.sql")), "a mart outside an area folder"
    assert not list(marts.glob("*.yml")), "a yml outside an area folder"
    areas = {p.name for p in marts.iterdir() if p.is_dir()}
    assert MART_AREAS <= areas
    for area in areas:
        ymls = sorted(p.name for p in (marts / area).glob("*.yml"))
        assert len(ymls) == 1, (area, ymls)


def test_every_yml_is_in_the_house_style() -> None:
    from yaml_style import styled

    off = [
        str(path.relative_to(DBT_PROJECT_DIR))
        for path in sorted((DBT_PROJECT_DIR / "models").rglob("*.yml"))
        if styled(path.read_text(encoding="utf-8")) != path.read_text(encoding="utf-8")
    ]
    assert off == [], "reformat with: python tests/dbt/yaml_style.py <file>"


def test_daily_narrowed_tests_are_flagged_in_their_yml(manifest: dict) -> None:
    """The daily job's narrowed tests are the ones flagged `daily_scope` in the yml: row-local
    tests on load-stamped models (`latest_load`) or on tables with a write time (`window`,
    naming the column), and per-person reconciliations (`persons_of_latest_load`)."""
    row_local = {
        "unique",
        "not_null",
        "accepted_values",
        "relationships",
        "expression_is_true",
        "unique_combination_of_columns",
        "sums_to_one",
    }
    flagged = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test" and n["config"]["meta"].get("daily_scope")
    ]
    scopes = {test["config"]["meta"]["daily_scope"] for test in flagged}
    assert scopes == {"latest_load", "window", "persons_of_latest_load"}
    for test in flagged:
        meta, kind = test["config"]["meta"], test["test_metadata"]["name"]
        if meta["daily_scope"] == "persons_of_latest_load":
            assert kind == "equal_sums", test["name"]
            continue
        assert kind in row_local, test["name"]
        if meta["daily_scope"] == "window":
            assert meta["window_column"], test["name"]
        else:
            parent = manifest["nodes"][test["attached_node"]]
            assert "dbt_loaded_at" in parent["columns"], test["name"]


SEMANTIC_METRICS = {
    "spend",
    "impressions",
    "clicks",
    "ctr",
    "cpc",
    "cpm",
    "meta_reported_conversions",
    "meta_reported_conversion_value",
    "meta_reported_roas",
    "attributed_conversions",
    "attributed_revenue",
    "conversations",
    "first_response_time_median",
    "replies_inside_window_share",
    "organic_reach",
    "organic_engagements",
} | {
    f"{name}_{model}"
    for name in (
        "attributed_conversions",
        "attributed_revenue",
        "attributed_roas",
        "cost_per_attributed_conversion",
    )
    for model in ("first_touch", "last_touch", "linear", "position_based", "time_decay")
}


def test_semantic_layer_covers_the_marts_with_a_time_spine(manifest: dict) -> None:
    """The semantic models read marts only, every metric is described, the metrics BI users
    ask for exist, and a time spine gives metric_time its days, weeks and months."""
    models = {m["unique_id"]: m for m in _models(manifest)}
    semantic = list(manifest["semantic_models"].values())
    assert semantic
    for sm in semantic:
        (parent,) = sm["depends_on"]["nodes"]
        assert models[parent]["fqn"][1] == "marts", sm["name"]
        assert sm["description"].strip(), sm["name"]
    metrics = {m["name"]: m for m in manifest["metrics"].values()}
    assert SEMANTIC_METRICS <= set(metrics)
    assert all(m["description"].strip() and m["label"] for m in metrics.values())
    spines = [m for m in models.values() if m.get("time_spine")]
    assert [s["name"] for s in spines] == ["calendar_days"]
    dimensions = {
        f"{sm['primary_entity'] or next(e['name'] for e in sm['entities'] if e['type'] == 'primary')}__{d['name']}"
        for sm in semantic
        for d in sm["dimensions"]
    }
    assert {
        "ad_report__currency",
        "credit__attribution_model",
        "credit__channel",
        "campaign__campaign_name",
        "conversation_day__platform",
        "organic_account_day__platform",
    } <= dimensions
