"""Fixtures for the ads tests: a small sandbox served over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ads_helpers import SMALL

from everreach.sandbox.testing import RunningSandbox, running_sandbox


@pytest.fixture
def ads_sandbox() -> Iterator[RunningSandbox]:
    """Three accounts (LA/USD, Berlin/EUR, and a disabled one), 40 days of delivery."""
    with running_sandbox(**SMALL) as handle:
        yield handle
