"""Fixtures for the webhook receiver: a running receiver wired to a sandbox and the test DB."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from receiver_helpers import APP_SECRET, Rig, receiver_settings

from everreach.sandbox.messaging import WebhookFactory
from everreach.sandbox.testing import RunningSandbox, running_sandbox
from webhook_receiver.testing import RunningReceiver, running_receiver

# The sandbox's ads domain is not under test here: keep its seeded data tiny.
SMALL_SANDBOX = {
    "accounts": 1,
    "campaigns_per_account": 1,
    "adsets_per_campaign": 1,
    "ads_per_adset": 1,
    "days": 1,
    "extra": {"messaging_contacts": 5},
}


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[tuple[RunningSandbox, RunningReceiver]]:
    """A sandbox and a receiver shared by one test module (state is reset per test)."""
    with (
        running_sandbox(app_secret=APP_SECRET, **SMALL_SANDBOX) as sb,
        running_receiver(receiver_settings(database_url, sb.base_url)) as rx,
    ):
        yield sb, rx


@pytest.fixture
def rig(db: psycopg.Connection, servers: tuple[RunningSandbox, RunningReceiver]) -> Iterator[Rig]:
    """The shared servers, an emptied database, and a fresh webhook factory."""
    sb, rx = servers
    sb.sandbox.domains["messaging"].last_inbound.clear()
    with httpx.Client(timeout=10) as client:
        rig = Rig(rx, sb, db, client, WebhookFactory(sb.sandbox, seed=1))
        rig.configure_accounts()
        yield rig
