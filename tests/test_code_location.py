"""The Dagster code location loads, and every asset is findable and explained in the UI."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

#: Raw data per domain (and the app's own tables), then the dbt layers, marts per area.
RAW_GROUPS = {"app", "ads", "organic", "capi", "messaging"}
MART_GROUPS = {
    "marts_ads",
    "marts_attribution",
    "marts_calendar",
    "marts_conversations",
    "marts_journeys",
    "marts_organic",
}
EXPECTED_GROUPS = RAW_GROUPS | {"staging", "intermediate"} | MART_GROUPS


def _layer(group: str) -> int:
    """Where a group sits in the flow: raw 0, staging 1, intermediate 2, marts 3."""
    if group in RAW_GROUPS:
        return 0
    return {"staging": 1, "intermediate": 2}.get(group, 3)


def _defs() -> dg.Definitions:
    from everreach_pipelines.definitions import defs

    return defs


def test_definitions_load_and_validate():
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    assert {"warehouse", "meta"} <= set(defs.resources or {})


def test_every_asset_has_a_known_group_and_a_description():
    specs = _defs().resolve_all_asset_specs()
    assert specs, "no assets defined"
    problems = []
    for spec in specs:
        name = spec.key.to_user_string()
        if spec.group_name not in EXPECTED_GROUPS:
            problems.append(f"{name}: group {spec.group_name!r}")
        if not (spec.description or "").strip():
            problems.append(f"{name}: no description")
    assert not problems, problems
    assert {s.group_name for s in specs} == EXPECTED_GROUPS


def test_lineage_flows_one_way_raw_staging_intermediate_marts():
    # The global lineage reads Meta → raw (per domain) → staging → intermediate → marts: no
    # asset reads one of a later layer, and staging reads only raw tables.
    defs = _defs()
    graph = defs.get_repository_def().asset_graph
    groups = {spec.key: spec.group_name for spec in defs.resolve_all_asset_specs()}
    backwards = []
    for key, group in groups.items():
        for parent in graph.get(key).parent_keys:
            parent_group = groups[parent]
            if _layer(parent_group) > _layer(group) or (
                group == "staging" and _layer(parent_group) != 0
            ):
                backwards.append(f"{key.to_user_string()} ({group}) reads {parent_group}")
    assert not backwards, backwards


def test_code_location_loads_in_a_fresh_process_like_the_ui_does(tmp_path):
    # `dagster definitions validate` imports the module as the webserver would, without
    # this test process's sys.path or imports.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "everreach_pipelines.definitions",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
