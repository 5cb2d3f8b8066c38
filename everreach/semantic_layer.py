"""`everreach mf …`: the dbt semantic layer (MetricFlow) answering from the warehouse.

The metrics and their dimensions are defined next to the marts they read, in the area ymls
of `dbt_project/models/marts/` (`semantic_models:` and `metrics:`). This command runs
MetricFlow's own `mf` command line against the warehouse the rest of the project uses
(`DATABASE_URL`, else the embedded Postgres, started for the call and released after), so a
BI user asks for "ROAS by campaign last week, linear model" by name and gets the number every
dashboard gets:

    everreach mf query --metrics spend,attributed_roas_linear \\
        --group-by metric_time__week,campaign__campaign_name --order -metric_time__week
    everreach mf list metrics

Everything after `mf` is MetricFlow's (`everreach mf query --help`). The semantic manifest
is re-parsed from the project first (dbt's partial parse: quick when nothing changed).
MetricFlow's own check for a newer release on the package index is turned off: nothing
leaves the machine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from everreach.warehouse import database
from everreach.warehouse.settings import WarehouseSettings

#: The dbt project (next to this package in a checkout or an editable install).
DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
#: dbt and MetricFlow must not phone home.
QUIET_ENV = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}


class SemanticLayerError(RuntimeError):
    """The semantic layer could not answer (the project does not parse, MetricFlow failed)."""


class _NoUpdateCheck:
    """Stands in for `update_checker.UpdateChecker`: MetricFlow's CLI asks the package index
    for a newer version on every call; this project's traffic stays on 127.0.0.1."""

    def check(self, package_name: str, package_version: str) -> None:
        return None


def parse_semantic_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """(Re)write `target/semantic_manifest.json`, where MetricFlow reads the semantic models
    and metrics; returns its path. No database is needed."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        ["parse", "--quiet", "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
    )
    manifest = project_dir / "target" / "semantic_manifest.json"
    if not result.success or not manifest.exists():
        raise SemanticLayerError(f"dbt parse failed for {project_dir}: {result.exception}")
    return manifest


def run_mf(args: Sequence[str], database_url: str, project_dir: Path = DBT_PROJECT_DIR) -> int:
    """Run MetricFlow's command line (`args`, e.g. `["query", "--metrics", "spend"]`) against
    `database_url` in this process; returns its exit code."""
    env = {
        **database.dbt_env(database_url),
        **QUIET_ENV,
        "DBT_PROJECT_DIR": str(project_dir),
        "DBT_PROFILES_DIR": str(project_dir),
    }
    # MetricFlow reads the connection from the environment (the profile's env_var() calls):
    # set it for this call, give the caller's environment back afterwards
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        parse_semantic_manifest(project_dir)
        import dbt_metricflow.cli.main as mf_cli

        mf_cli.UpdateChecker = _NoUpdateCheck
        try:
            mf_cli.cli.main(args=list(args), prog_name="everreach mf", standalone_mode=False)
        except click.exceptions.Exit as exc:
            return int(exc.exit_code or 0)
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except click.Abort:
            return 1
        return 0
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def mf(args: tuple[str, ...]) -> None:
    """MetricFlow (dbt's semantic layer) on the warehouse: `everreach mf query --metrics
    spend --group-by metric_time__week`, `everreach mf list metrics`, `everreach mf --help`."""
    url = database.resolve_database_url()
    embedded = WarehouseSettings.from_env().database_url is None
    try:
        code = run_mf(args or ["--help"], url)
    finally:
        if embedded:
            database.stop_embedded()
    sys.exit(code)


__all__ = ["DBT_PROJECT_DIR", "SemanticLayerError", "mf", "parse_semantic_manifest", "run_mf"]
