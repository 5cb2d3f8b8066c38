"""Organic fixtures: a small seeded sandbox on a fixed clock, accounts configured in Postgres."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from organic_helpers import OrganicEnv, configure_accounts, small_config

from everreach.meta.client import GraphClient
from everreach.organic.fetch import OrganicGraph
from everreach.sandbox.organic import OrganicState
from everreach.sandbox.testing import running_sandbox


@pytest.fixture
def organic(db: psycopg.Connection) -> Iterator[OrganicEnv]:
    """A running small organic sandbox, a client with a user token, accounts configured."""
    with running_sandbox(small_config()) as sb:
        state: OrganicState = sb.sandbox.domains["organic"]
        configure_accounts(db, state)
        client = GraphClient("sandbox-user-token", base_url=sb.base_url, backoff_base=0.01, seed=1)
        yield OrganicEnv(sb, state, db, client, OrganicGraph(client, sleep=lambda s: None))
