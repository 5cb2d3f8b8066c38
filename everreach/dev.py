"""`everreach dev`: the Dagster UI and daemon on a project-managed Dagster instance.

The instance (runs, event logs, schedules) lives in the database `dagster` on the same
Postgres server as the warehouse (dagster-postgres), kept apart from the warehouse tables.
`DAGSTER_HOME` defaults to `$EVERREACH_HOME/dagster_home`; its `dagster.yaml` is written
here and reads the storage URL from `EVERREACH_DAGSTER_PG_URL`, so no secret is written
to disk. Without `META_ACCESS_TOKEN`, the local sandbox is started and the code location
points at it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from everreach.meta.settings import GraphSettings
from everreach.settings import project_root
from everreach.warehouse import database, migrate
from everreach.warehouse.settings import WarehouseSettings

DAGSTER_YAML = """\
# Written by `everreach dev`. Storage URL comes from the environment (never a secret on disk).
storage:
  postgres:
    postgres_url:
      env: EVERREACH_DAGSTER_PG_URL
telemetry:
  enabled: false
python_logs:
  python_log_level: INFO
nux:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
"""


def dagster_home() -> Path:
    """`DAGSTER_HOME`, or `$EVERREACH_HOME/dagster_home`, created with its dagster.yaml."""
    home = WarehouseSettings.from_env().dagster_home_dir()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() != DAGSTER_YAML:
        config.write_text(DAGSTER_YAML)
    return home


def storage_url(warehouse_url: str, dbname: str = "dagster") -> str:
    """The instance's storage: `EVERREACH_DAGSTER_PG_URL` when set, else database `dbname`
    on the warehouse's server (created if absent)."""
    explicit = WarehouseSettings.from_env().dagster_pg_url
    return explicit or database.dagster_storage_url(warehouse_url, dbname)


def dagster_environment(warehouse_url: str) -> dict[str, str]:
    """Environment for Dagster processes: instance home, storage URL, warehouse URL."""
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(dagster_home())
    env["EVERREACH_DAGSTER_PG_URL"] = storage_url(warehouse_url)
    env["DATABASE_URL"] = warehouse_url
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def project_instance(warehouse_url: str, *, dbname: str = "dagster") -> Any:
    """The project's Dagster instance (the one `everreach dev` serves: storage in database
    `dbname` on the warehouse's server unless EVERREACH_DAGSTER_PG_URL names one), for
    in-process runs such as `everreach demo`'s, so they show in the UI afterwards."""
    from dagster import DagsterInstance

    # dagster.yaml reads the URL from the environment (no secret on disk)
    os.environ["EVERREACH_DAGSTER_PG_URL"] = storage_url(warehouse_url, dbname)
    return DagsterInstance.from_config(str(dagster_home()))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--seed", default=7, show_default=True, help="Sandbox seed (sandbox mode).")
def dev(host: str, port: int, seed: int) -> None:
    """Run `dagster dev` (UI + daemon) on the project's instance and warehouse."""
    url = database.resolve_database_url()
    migrate.upgrade(url, echo=click.echo)
    env = dagster_environment(url)
    click.echo(f"DAGSTER_HOME={env['DAGSTER_HOME']}")
    click.echo(f"warehouse: {database.describe_url(url)}")
    with contextlib.ExitStack() as stack:
        if GraphSettings.from_env().access_token is None:
            from everreach.sandbox.core import SandboxConfig
            from everreach.sandbox.testing import running_sandbox

            handle = stack.enter_context(running_sandbox(SandboxConfig(seed=seed)))
            env["META_GRAPH_API_BASE_URL"] = handle.base_url
            env["META_ACCESS_TOKEN"] = "sandbox-dev-token"
            click.echo(f"meta: local sandbox at {handle.base_url} (no META_ACCESS_TOKEN set)")
        cmd = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(project_root() / "workspace.yaml"),
            "-h",
            host,
            "-p",
            str(port),
        ]
        click.echo("running: " + " ".join(cmd[2:]))
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run(cmd, env=env, cwd=project_root(), check=False)
    if WarehouseSettings.from_env().database_url is None:
        database.stop_embedded()
