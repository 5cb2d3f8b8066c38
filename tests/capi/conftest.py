"""CAPI test fixtures: a real Graph client on the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from everreach.meta.client import GraphClient


@pytest.fixture
def graph(sandbox: Any) -> Iterator[GraphClient]:
    """A real GraphClient talking HTTP to the sandbox, with tiny backoffs."""
    client = GraphClient(
        "sandbox-token",
        base_url=sandbox.base_url,
        max_retries=3,
        backoff_base=0.001,
        backoff_max=0.01,
    )
    yield client
