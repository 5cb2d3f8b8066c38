"""Fixtures for the sandbox tests: a sandbox on 127.0.0.1 with a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from everreach.sandbox.testing import RunningSandbox, running_sandbox

#: A fixed sandbox clock so that dates in assertions are stable.
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def sb(request: pytest.FixtureRequest) -> Iterator[RunningSandbox]:
    """A running sandbox; parametrize indirectly with a dict of SandboxConfig fields."""
    kwargs = {"now": NOW, **(getattr(request, "param", None) or {})}
    with running_sandbox(**kwargs) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A bare HTTP session (conformance tests look at raw responses)."""
    with requests.Session() as session:
        yield session
