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
