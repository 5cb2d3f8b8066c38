"""`everreach demo`: the main job, end to end, on embedded defaults.

Database: `DATABASE_URL`, else the embedded Postgres. Meta: the real Graph API when
`META_ACCESS_TOKEN` is set, else the local sandbox, started in-process on 127.0.0.1.
Stages run in data-flow order; each one is a module of this package with a `run_demo(ctx)`.
A stage that fails stops the demo with its error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import click

from everreach.meta.settings import GraphSettings
from everreach.progress import eta_seconds, format_duration
from everreach.warehouse import database, migrate
from everreach.warehouse.settings import WarehouseSettings

#: Title -> stage module of this package (with `run_demo(ctx)`), in data-flow order. Imported
#: when the demo runs, not when the CLI lists its commands (they load Dagster and dbt).
STAGES: dict[str, str] = {
    "ads insights": "ads",
    "organic content": "organic",
    "app events (users, ad clicks, purchases)": "app_events",
    "webhook burst through the receiver": "messaging",
    "conversions API": "capi",
    "dbt marts": "dbt",
}


def stage_module(title: str) -> ModuleType:
    """The module that runs stage `title`."""
    return importlib.import_module(f"everreach_pipelines.demo.{STAGES[title]}")


#: Each stage's share of the demo's time, relative to the others: the ETA printed after
#: each stage weighs by these.
STAGE_WEIGHTS: dict[str, int] = {
    "ads insights": 20,
    "organic content": 30,
    "app events (users, ad clicks, purchases)": 1,
    "webhook burst through the receiver": 7,
    "conversions API": 2,
    "dbt marts": 40,
}


def progress_line(
    done: int, stages: int, weight_done: int, weight_total: int, elapsed: float
) -> str:
    """`demo: 2/6 stages, elapsed 40s, ETA ~1m00s` (the ETA weighs stages by STAGE_WEIGHTS)."""
    text = f"demo: {done}/{stages} stages, elapsed {format_duration(elapsed)}"
    eta = eta_seconds(weight_done, weight_total, elapsed)
    if eta is not None and done < stages:
        text += f", ETA ~{format_duration(eta)}"
    return text


@dataclass
class DemoContext:
    """What every demo stage gets."""

    database_url: str
    sandbox_base_url: str | None
    sandbox: Any
    graph_client_kwargs: dict[str, Any]
    start_date: dt.date
    end_date: dt.date
    log: Callable[[str], None] = field(default=lambda msg: click.echo(f"    {msg}"))
    #: The Dagster instance stages record their runs in (None: a throw-away one).
    instance: Any = None
    results: dict[str, list[str]] = field(default_factory=dict)


@contextlib.contextmanager
def _meta_endpoint(seed: int) -> Iterator[tuple[str | None, Any, dict[str, Any]]]:
    graph = GraphSettings.from_env()
    if graph.access_token is not None:
        kwargs = {
            "access_token": graph.token,
            "base_url": graph.base_url,
            "api_version": graph.api_version,
            "app_secret": graph.secret,
        }
        yield None, None, kwargs
        return
    from everreach.sandbox.core import SandboxConfig
    from everreach.sandbox.testing import running_sandbox

    config = SandboxConfig(seed=seed)
    with running_sandbox(config) as handle:
        kwargs = {
            "access_token": "sandbox-demo-token",
            "base_url": handle.base_url,
            "api_version": graph.api_version,
            "app_secret": getattr(handle.config, "app_secret", None),
        }
        yield handle.base_url, handle.sandbox, kwargs


def _dagster_instance(url: str) -> Any:
    """The project's Dagster instance (what `everreach dev` shows), so the demo's runs and
    materializations are in the UI afterwards; a throw-away one if it cannot be opened."""
    from everreach.dev import project_instance

    try:
        instance = project_instance(url)
    except Exception as exc:  # the demo must not fail on the UI's bookkeeping
        click.echo(f"dagster: runs not recorded for the UI ({type(exc).__name__}: {exc})")
        return None
    click.echo(f"dagster: runs recorded in {instance.root_directory} (open with `everreach dev`)")
    return instance


@click.command()
@click.option("--days", default=30, show_default=True, help="How many days back to materialize.")
@click.option("--seed", default=7, show_default=True, help="Sandbox seed (sandbox mode).")
def demo(days: int, seed: int) -> None:
    """Set up the database, run every stage end to end, and print a summary."""
    started = time.monotonic()
    # the receiver runs in-process here: its per-request log lines would drown the summary
    logging.getLogger("webhook_receiver").setLevel(logging.WARNING)
    logging.getLogger("everreach.capi").setLevel(logging.WARNING)
    url = database.resolve_database_url()
    embedded = WarehouseSettings.from_env().database_url is None
    click.echo(
        f"database: {database.describe_url(url)}"
        + (" (embedded Postgres)" if embedded else " (DATABASE_URL)")
    )
    applied = migrate.upgrade(url)
    click.echo(f"schema: {len(applied)} migration(s) applied" if applied else "schema: up to date")

    end = dt.date.today()
    start = end - dt.timedelta(days=days - 1)
    summary: list[tuple[str, str, float, list[str]]] = []
    with _meta_endpoint(seed) as (sandbox_url, sandbox, client_kwargs):
        click.echo(
            "meta: "
            + (
                f"local sandbox at {sandbox_url} (no META_ACCESS_TOKEN set)"
                if sandbox_url
                else f"Graph API at {client_kwargs['base_url']}"
            )
        )
        ctx = DemoContext(
            database_url=url,
            sandbox_base_url=sandbox_url,
            sandbox=sandbox,
            graph_client_kwargs=client_kwargs,
            start_date=start,
            end_date=end,
            instance=_dagster_instance(url),
        )
        # Progress: stages done, elapsed, and an ETA weighted by each stage's usual share
        # (the ads and organic stages also report their own progress as they fetch).
        weight_total = sum(STAGE_WEIGHTS.get(t, 1) for t in STAGES)
        weight_done = 0
        work_started = time.monotonic()
        for index, title in enumerate(STAGES, start=1):
            click.echo(f"[{index}/{len(STAGES)}] {title}")
            stage_started = time.monotonic()
            lines = list(stage_module(title).run_demo(ctx) or [])
            elapsed = time.monotonic() - stage_started
            ctx.results[title] = lines
            for line in lines:
                click.echo(f"    {line}")
            click.echo(f"    done in {elapsed:.1f}s")
            summary.append((title, "ok", elapsed, lines))
            weight_done += STAGE_WEIGHTS.get(title, 1)
            click.echo(
                "    "
                + progress_line(
                    index, len(STAGES), weight_done, weight_total, time.monotonic() - work_started
                )
            )

    click.echo("")
    click.echo("summary")
    for title, state, elapsed, _ in summary:
        click.echo(f"  {title:<45} {state:<8} {elapsed:6.1f}s")
    with database.connect(url) as conn:
        counts = conn.execute(
            """
            select 'ad_performance', count(*) from ad_performance
            union all select 'social_media_post', count(*) from social_media_post
            union all select 'social_post_insights', count(*) from social_post_insights
            union all select 'meta_webhook_event', count(*) from meta_webhook_event
            union all select 'conversation_message', count(*) from conversation_message
            union all select 'meta_conversion_event', count(*) from meta_conversion_event
            union all select 'user_event', count(*) from user_event
            """
        ).fetchall()
    click.echo("  rows: " + ", ".join(f"{name}={n}" for name, n in counts))
    click.echo(f"total {time.monotonic() - started:.1f}s")
    if embedded:
        database.stop_embedded()
