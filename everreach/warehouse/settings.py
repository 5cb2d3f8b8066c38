"""Where the warehouse and the local state live, the BI role's password, and where Dagster
runs execute their steps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, field_validator

from everreach.settings import (
    EverReachSettings,
    Invalid,
    SettingError,
    no_whitespace_secret,
    project_root,
    secret_value,
    setting,
)

EXPECTED_URL = "postgresql://user:password@host:5432/dbname"


def _check_url(value: str | None, variable: str) -> str | None:
    if value is not None:
        from everreach.warehouse.database import validate_database_url

        try:
            validate_database_url(value, variable)
        except SettingError as exc:
            raise Invalid(exc.problem, exc.expected) from None
    return value


class WarehouseSettings(EverReachSettings):
    """The warehouse database, the project's local state and the Dagster instance."""

    database_url: str | None = setting(
        "DATABASE_URL",
        None,
        "PostgreSQL URL of the warehouse. Unset: an embedded Postgres under "
        "`.everreach/pgdata` is started on demand.",
        expected=EXPECTED_URL,
        repr=False,
    )
    home: Path | None = setting(
        "EVERREACH_HOME",
        None,
        "Where local state lives: embedded Postgres data, DAGSTER_HOME, logs.",
        documented_default="<project>/.everreach",
    )
    dagster_home: Path | None = setting(
        "DAGSTER_HOME",
        None,
        "Dagster instance folder; `everreach dev` writes its dagster.yaml (Postgres storage).",
        documented_default="$EVERREACH_HOME/dagster_home",
    )
    dagster_pg_url: str | None = setting(
        "EVERREACH_DAGSTER_PG_URL",
        None,
        "Dagster instance storage URL, read by the dagster.yaml `everreach dev` writes.",
        documented_default="the `dagster` database on the warehouse server",
        repr=False,
    )
    test_database_url: str | None = setting(
        "EVERREACH_TEST_DATABASE_URL",
        None,
        "Tests: the Postgres server to create throw-away test databases on (else the "
        "embedded one).",
        expected=EXPECTED_URL,
        repr=False,
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return _check_url(value, "DATABASE_URL")

    @field_validator("test_database_url")
    @classmethod
    def _test_database_url(cls, value: str | None) -> str | None:
        return _check_url(value, "EVERREACH_TEST_DATABASE_URL")

    def state_dir(self) -> Path:
        """`EVERREACH_HOME` (default `<project>/.everreach`), created if missing."""
        path = (self.home.expanduser() if self.home else project_root() / ".everreach").resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingError(
                "EVERREACH_HOME", f"cannot create {path}: {exc.strerror}", "a writable folder"
            ) from exc
        return path

    def dagster_home_dir(self) -> Path:
        """`DAGSTER_HOME`, else `$EVERREACH_HOME/dagster_home` (not created here)."""
        if self.dagster_home:
            return self.dagster_home.expanduser().resolve()
        return self.state_dir() / "dagster_home"


class BISettings(EverReachSettings):
    """The read-only BI login `everreach bi create-role` creates."""

    password: SecretStr | None = setting(
        "EVERREACH_BI_PASSWORD",
        None,
        "Password given to the BI role by `everreach bi create-role`.",
    )


#: RabbitMQ on this machine with its default user (what CI and the tests use).
DEFAULT_BROKER_URL = "pyamqp://guest:guest@127.0.0.1:5672//"


class ExecutionSettings(EverReachSettings):
    """Where a Dagster run's steps execute (see `everreach_pipelines/execution.py`)."""

    executor: Literal["multiprocess", "in_process", "celery"] = setting(
        "EVERREACH_DAGSTER_EXECUTOR",
        "multiprocess",
        "Where a run's steps execute: `multiprocess` (a process per step), `in_process` (the "
        "run worker's process: no process start and code import per step) or `celery` "
        "(Celery workers on any host, see `deploy/README.md`).",
        expected="multiprocess, in_process or celery",
    )
    celery_broker_url: SecretStr | None = setting(
        "EVERREACH_CELERY_BROKER_URL",
        None,
        "Celery broker (RabbitMQ) of the `celery` executor and its workers.",
        documented_default=f"`{DEFAULT_BROKER_URL}`",
    )
    celery_queue: str = setting(
        "EVERREACH_CELERY_QUEUE",
        "dagster",
        "Celery queue of the steps; workers listen on it (`-Q`). Deployments sharing a broker "
        "use different queues.",
        expected="letters, digits, '-', '_' or '.'",
    )

    _broker = field_validator("celery_broker_url")(no_whitespace_secret)

    @field_validator("celery_queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise Invalid(f"{value!r} is not a queue name")
        return value

    @property
    def broker(self) -> str:
        """The broker URL in clear text (for Celery only)."""
        return secret_value(self.celery_broker_url) or DEFAULT_BROKER_URL
