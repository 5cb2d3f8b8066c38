"""Organic test helpers: a small seeded sandbox on a fixed clock, accounts in Postgres."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

from everreach.meta.client import GraphClient
from everreach.organic.fetch import OrganicGraph
from everreach.sandbox.core import SandboxConfig
from everreach.sandbox.organic import OrganicState
from everreach.sandbox.testing import RunningSandbox

#: The sandbox clock at the start of each test: 01:00 UTC, so "yesterday" is a full day
#: and counters (which move once an hour) are stable during the test.
NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
DAY = date(2026, 11, 19)


def small_config(**extra: object) -> SandboxConfig:
    """A small organic sandbox: 2 IG accounts × 60 media, 2 pages × 20 posts."""
    knobs = {
        "ig_accounts": 2,
        "ig_media_per_account": 60,
        "ig_stories_per_day": 2,
        "fb_pages": 2,
        "fb_posts_per_page": 20,
        "organic_days": 90,
    }
    knobs.update(extra)
    return SandboxConfig(
        seed=11,
        accounts=1,
        campaigns_per_account=1,
        adsets_per_campaign=1,
        ads_per_adset=1,
        days=2,
        now=NOW,
        extra=knobs,
    )


@dataclass
class OrganicEnv:
    """Everything an organic test needs."""

    sb: RunningSandbox
    state: OrganicState
    conn: psycopg.Connection
    client: GraphClient
    graph: OrganicGraph

    def as_of(self) -> datetime:
        """The observation time of a sync: the sandbox clock, to the minute (a test takes
        seconds, so re-runs in one test observe the same time, like one scheduled run)."""
        return self.sb.sandbox.now().replace(second=0, microsecond=0)

    def move_to(self, when: datetime) -> None:
        """Set the sandbox clock."""
        self.sb.sandbox.set_now(when)

    def next_day(self) -> date:
        """Advance the clock one day; returns the new 'yesterday'."""
        now = self.sb.sandbox.advance(timedelta(days=1))
        return (now - timedelta(days=1)).date()


def configure_accounts(
    conn: psycopg.Connection, state: OrganicState, *, page_settings: dict | None = None
) -> None:
    """Register the sandbox's IG accounts and Pages in meta_platform_config."""
    from psycopg.types.json import Jsonb

    for acct in state.ig_accounts.values():
        conn.execute(
            "insert into meta_platform_config (platform, external_id, name, "
            "parent_external_id) values ('instagram_account', %s, %s, %s)",
            (acct.id, acct.name, acct.page_id),
        )
    for page in state.pages.values():
        conn.execute(
            "insert into meta_platform_config (platform, external_id, name, settings) "
            "values ('facebook_page', %s, %s, %s)",
            (page.id, page.name, Jsonb(page_settings or {})),
        )
