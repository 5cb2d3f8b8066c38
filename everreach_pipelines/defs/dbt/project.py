"""The dbt project's location, its DbtProject, and the environment a dbt run against a given
database needs.

Everything here is importable without a database: the connection is handed to dbt through
the `EVERREACH_PG_*` variables that `dbt_project/profiles.yml` reads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

from dagster_dbt import DbtProject

from everreach.warehouse.database import dbt_env

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_project"

#: dbt phones home unless told not to (the project file says so too; dbt subprocesses and
#: in-process runs get these with their connection variables).
TELEMETRY_ENV = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}

# The manifest is built by `ensure_manifest()` when the dbt assets load (in-process, no
# `dbt` on PATH needed); deployments run `dbt parse` before packaging.
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source_mtime() -> float:
    paths = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for folder in ("models", "macros", "tests", "analyses"):
        paths.extend(p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file())
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def ensure_manifest() -> Path:
    """The manifest @dbt_assets load from; (re)parsed when missing or older than the project's
    files (no database needed), so a fresh clone or an edited model never loads stale assets."""
    manifest = Path(dbt_project.manifest_path)
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime():
        from dbt.cli.main import dbtRunner

        result = dbtRunner().invoke(
            [
                "parse",
                "--quiet",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(manifest.parent),
            ]
        )
        if not result.success or not manifest.exists():
            raise RuntimeError(f"dbt parse failed for {DBT_PROJECT_DIR}: {result.exception}")
    return manifest


_env_lock = threading.Lock()


def dbt_executable() -> str:
    """The `dbt` of this interpreter's environment (a venv's bin/ is often not on PATH)."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    return shutil.which("dbt") or "dbt"


def window_env(start: datetime, end: datetime) -> dict[str, str]:
    """The partition window for the incremental models, as the environment variables the
    project's `window_start()` macro reads (ISO timestamps).

    Environment, not `--vars`: dbt re-parses the whole project whenever `--vars` differ from
    the last parse (every daily run, a few seconds), while these are read only at run time.
    """
    return {"EVERREACH_DBT_MIN_DATE": start.isoformat(), "EVERREACH_DBT_MAX_DATE": end.isoformat()}


def dbt_cli_env(database_url: str) -> dict[str, str]:
    """Environment for a dbt process that targets `database_url` (no telemetry)."""
    return {**dbt_env(database_url), **TELEMETRY_ENV}


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    # dbt's in-process runner reads env_var() from os.environ: swap in the target database for
    # the duration of one invocation, and put the caller's environment back afterwards.
    with _env_lock:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
