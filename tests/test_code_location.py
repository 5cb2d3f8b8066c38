"""The Dagster code location loads, and every asset is findable and explained in the UI."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

EXPECTED_GROUPS = {"ads", "organic", "capi", "messaging", "marts"}


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
