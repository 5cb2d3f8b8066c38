"""Fixtures for the messaging core: a receiver on the test database and a poster."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from messaging_helpers import APP_SECRET, Poster

from everreach.messaging.settings import ReceiverSettings
from everreach.meta.settings import GraphSettings
from webhook_receiver.testing import RunningReceiver, running_receiver


@pytest.fixture(scope="module")
def receiver(database_url: str) -> Iterator[RunningReceiver]:
    """A receiver (inline apply) on the session database."""
    settings = ReceiverSettings(
        app_secret=APP_SECRET,
        database_url=database_url,
        graph=GraphSettings(base_url="http://127.0.0.1:9", access_token="unused"),
        pool_min_size=1,
        pool_max_size=4,
    )
    with running_receiver(settings) as rx:
        yield rx


@pytest.fixture
def poster(receiver: RunningReceiver, db) -> Iterator[Poster]:  # noqa: ANN001 - db: emptied first
    """The module's receiver, an emptied database, and an HTTP client."""
    with httpx.Client(timeout=30) as client:
        yield Poster(receiver, client)
