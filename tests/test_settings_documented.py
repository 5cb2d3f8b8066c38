"""Every setting the code reads is registered and documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

from everreach.settings import SETTINGS, project_root

# Set by the code itself for dbt: the profile's connection (derived from DATABASE_URL,
# documented in dbt_project) and the partition window.
DERIVED = {
    "EVERREACH_PG_HOST",
    "EVERREACH_PG_PORT",
    "EVERREACH_PG_USER",
    "EVERREACH_PG_PASSWORD",
    "EVERREACH_PG_DBNAME",
    # the marts' partition window, set by the Dagster asset for its dbt subprocess
    # (everreach_pipelines/defs/dbt/project.py window_env; documented in defs/dbt/README.md)
    "EVERREACH_DBT_MIN_DATE",
    "EVERREACH_DBT_MAX_DATE",
}
PACKAGES = ("everreach", "everreach_pipelines", "webhook_receiver")


def _variables_read_by_code() -> set[str]:
    found: set[str] = set()
    pattern = re.compile(r"""["']((?:META|EVERREACH|API|DAGSTER|DATABASE)_[A-Z0-9_]+)["']""")
    for package in PACKAGES:
        for path in Path(project_root(), package).rglob("*.py"):
            found.update(pattern.findall(path.read_text("utf-8")))
    return found - DERIVED


def test_every_variable_the_code_reads_is_registered():
    registered = {s.name for s in SETTINGS}
    missing = _variables_read_by_code() - registered
    assert not missing, f"add to everreach.settings.SETTINGS: {sorted(missing)}"


def test_every_registered_setting_is_in_the_readme_table():
    readme = (project_root() / "README.md").read_text("utf-8")
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, flags=re.M))
    missing = {s.name for s in SETTINGS} - documented
    assert not missing, f"document in README.md's settings table: {sorted(missing)}"
