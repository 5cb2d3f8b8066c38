"""`everreach db …`: schema migrations and status."""

from __future__ import annotations

import click

from everreach.warehouse import database, migrate
from everreach.warehouse.settings import BISettings


@click.group()
def db() -> None:
    """The warehouse database (DATABASE_URL, or the embedded Postgres)."""


@db.command()
def upgrade() -> None:
    """Apply pending schema migrations (safe to re-run)."""
    url = database.resolve_database_url()
    click.echo(f"database: {database.describe_url(url)}")
    applied = migrate.upgrade(url, echo=click.echo)
    if not applied:
        click.echo("schema is up to date; nothing applied")
    else:
        click.echo(f"applied {len(applied)} migration(s)")


@db.command()
def status() -> None:
    """Show which migrations the database has."""
    url = database.resolve_database_url()
    click.echo(f"database: {database.describe_url(url)}")
    pending = 0
    for migration, applied in migrate.status(url):
        mark = "applied" if applied else "pending"
        pending += not applied
        click.echo(f"  {migration.version}_{migration.name}: {mark}")
    click.echo("up to date" if pending == 0 else f"{pending} pending: run `everreach db upgrade`")


@click.group()
def bi() -> None:
    """Access for BI tools (Metabase, Superset, Looker…)."""


@bi.command("create-role")
@click.option("--name", default="everreach_bi", show_default=True, help="Role name.")
@click.option(
    "--password-env",
    default=BISettings.variable("password"),
    show_default=True,
    help="Environment variable holding the role's password (never a CLI argument).",
)
def create_role(name: str, password_env: str) -> None:
    """Create a read-only login limited to the `marts` schema."""
    from everreach.settings import env_value
    from everreach.warehouse.bi import create_bi_role

    password = env_value(password_env)
    if password is None:
        click.echo(
            f"note: {password_env} is not set: the role gets no password "
            "(fine for local trust auth; set it for a server)"
        )
    url = database.resolve_database_url()
    for line in create_bi_role(url, name, password):
        click.echo(line)
