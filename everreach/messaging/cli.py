"""``everreach webhooks replay``: re-apply the stored raw webhook log."""

from __future__ import annotations

from datetime import UTC, datetime

import click


@click.group("webhooks")
def webhooks() -> None:
    """Work with the stored raw webhook log (meta_webhook_event)."""


@webhooks.command("replay")
@click.option(
    "--since",
    type=click.DateTime(),
    default=None,
    help="Only events received at or after this time (UTC).",
)
@click.option("--failed-only", is_flag=True, help="Only events whose apply failed.")
def replay(since: datetime | None, failed_only: bool) -> None:
    """Re-apply stored webhooks (idempotent: replaying twice changes nothing)."""
    from everreach.messaging.replay import replay_events
    from everreach.warehouse.database import resolve_database_url

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    counts = replay_events(resolve_database_url(), since=since, failed_only=failed_only)
    click.echo(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "nothing to replay")
