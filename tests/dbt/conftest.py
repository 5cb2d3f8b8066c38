"""Fixtures for the dbt tests: dbt runs in-process against the session's private database,
writing its artifacts to a temporary folder (never to the shared dbt_project/target)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dbt_runner import run_dbt


@pytest.fixture(scope="session")
def dbt_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(target path, log path) private to this test session."""
    base = tmp_path_factory.mktemp("dbt")
    return base / "target", base / "logs"


@pytest.fixture(scope="session")
def dbt(database_url: str, dbt_paths: tuple[Path, Path]) -> Callable[..., object]:
    """`dbt("build", "--full-refresh", ...)` against the session database; raises on failure."""
    target, logs = dbt_paths

    def invoke(*args: str) -> object:
        return run_dbt(database_url, list(args), target_path=target, log_path=logs)

    return invoke
