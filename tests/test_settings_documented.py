"""Every setting the code reads is declared in a settings class, and the README's table is
exactly what those classes say (names, real defaults, purposes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from everreach.settings import (
    EverReachSettings,
    SettingError,
    env_text,
    markdown_table,
    project_root,
    registry,
    settings_classes,
)

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


def test_every_variable_the_code_reads_is_declared_in_a_settings_class():
    declared = {s.name for s in registry()}
    missing = _variables_read_by_code() - declared
    assert not missing, f"declare in a settings class (everreach.settings): {sorted(missing)}"


def test_the_readme_table_is_the_registry():
    readme = (project_root() / "README.md").read_text("utf-8")
    assert markdown_table() in readme, (
        "README.md's settings table differs from the settings classes: replace it with the "
        "output of `python -m everreach.settings`"
    )


def test_nothing_else_reads_the_environment_directly():
    # One settings layer: a variable named in the code is read through its settings class.
    # (Variables whose *name* is data — the CLI's `--password-env`, meta_platform_config's
    # token_env_var — go through everreach.settings.env_value / named_token.)
    direct = re.compile(
        r"os\.environ\.get\(\s*[\"']|os\.getenv\(\s*[\"']|os\.environ\[\s*[\"'][^\]]*\](?!\s*=)"
    )
    offenders = [
        str(path.relative_to(project_root()))
        for package in PACKAGES
        for path in Path(project_root(), package).rglob("*.py")
        if direct.search(path.read_text("utf-8"))
    ]
    assert offenders == [], f"read settings through a settings class: {offenders}"


@pytest.mark.parametrize("cls", settings_classes(), ids=lambda c: c.__name__)
def test_documented_defaults_are_the_real_defaults(cls: type[EverReachSettings]):
    """A literal default in the table, read back from the environment, equals the field's
    default; every class builds from an empty environment except where a secret is
    required."""
    for name, field in cls.model_fields.items():
        if field.validation_alias is None or field.is_required():
            continue
        text = env_text(field.default)
        if text is None:
            continue
        try:
            parsed = cls.from_env({str(field.validation_alias): text})
        except SettingError as exc:  # a class with a required secret
            assert cls.model_fields[_field_of(cls, exc.name)].is_required(), exc
            continue
        assert getattr(parsed, name) == field.default, (cls.__name__, name)


def _field_of(cls: type[EverReachSettings], variable: str) -> str:
    return next(n for n, f in cls.model_fields.items() if f.validation_alias == variable)


def test_a_bad_value_names_the_variable_and_never_echoes_a_secret():
    from everreach.messaging.settings import ReceiverSettings
    from everreach.meta.settings import GraphSettings

    with pytest.raises(SettingError, match="EVERREACH_RECEIVER_WRITERS") as info:
        ReceiverSettings.from_env({"META_APP_SECRET": "s", "EVERREACH_RECEIVER_WRITERS": "99"})
    assert "1..16" in str(info.value)
    with pytest.raises(SettingError, match="META_APP_SECRET") as info:
        GraphSettings.from_env({"META_APP_SECRET": "two words"})
    assert "two words" not in str(info.value)
    # Construction from values reads no environment; from_env strips and treats "" as unset.
    assert GraphSettings(api_version="v24.0").api_version == "v24.0"
    assert GraphSettings.from_env({"META_GRAPH_API_VERSION": "  "}).api_version == "v25.0"
