"""Running one dbt command in-process against a database, for the tests, the dbt benchmark and
CI's docs build (Dagster runs dbt through `dagster_dbt`, in everreach_pipelines/defs/dbt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from everreach_pipelines.defs.dbt.project import DBT_PROJECT_DIR, dbt_cli_env, patched_environ


def run_dbt(
    database_url: str,
    args: Sequence[str],
    *,
    target_path: Path | None = None,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> object:
    """Run one dbt command in-process against `database_url`; raise when it fails.

    `args` are dbt's own (e.g. `["build", "--vars", "{...}"]`); `env` adds environment
    variables for this run (e.g. `window_env(...)`). Returns dbt's `dbtRunnerResult` (its
    `.result` holds the node results).
    """
    from dbt.cli.main import dbtRunner

    cli_args = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    if target_path is not None:
        cli_args += ["--target-path", str(target_path)]
    if log_path is not None:
        cli_args += ["--log-path", str(log_path)]
    with patched_environ({**dbt_cli_env(database_url), **(env or {})}):
        result = dbtRunner().invoke(cli_args)
    if not result.success:
        failures = []
        if result.result is not None and hasattr(result.result, "results"):
            failures = [
                f"{r.node.unique_id}: {r.status}: {r.message}"
                for r in result.result.results
                if str(r.status) in {"error", "fail", "runtime error"}
            ]
        detail = "; ".join(failures) or repr(result.exception)
        raise DbtRunError(f"dbt {' '.join(args[:1])} failed: {detail}")
    return result


class DbtRunError(RuntimeError):
    """A dbt command failed; the message lists the failing nodes."""
