"""The project's Dagster instance keeps runs, events and schedules in Postgres."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

from everreach import dev
from everreach.warehouse import database


@pytest.fixture
def storage_url(server_url: str):
    name = f"everreach_dagster_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database.ensure_database(server_url, name)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_instance_uses_postgres_storage_apart_from_the_warehouse(
    tmp_path, monkeypatch, storage_url, database_url
):
    from dagster import DagsterInstance, asset, materialize

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    home = dev.dagster_home()
    assert (home / "dagster.yaml").read_text() == dev.DAGSTER_YAML
    monkeypatch.setenv("EVERREACH_DAGSTER_PG_URL", database.sqlalchemy_url(storage_url))

    instance = DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

        @asset
        def probe() -> int:
            return 1

        assert materialize([probe], instance=instance).success
    finally:
        instance.dispose()
    with psycopg.connect(storage_url) as conn:
        assert conn.execute("select count(*) from runs").fetchone()[0] == 1
    # nothing of Dagster's lands in the warehouse database
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select to_regclass('public.runs')").fetchone()[0] is None


def test_dagster_environment_points_everything_at_the_project(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("EVERREACH_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("EVERREACH_DAGSTER_PG_URL", raising=False)
    env = dev.dagster_environment(database_url)
    assert env["DAGSTER_HOME"] == str(tmp_path / "dagster_home")
    assert env["DATABASE_URL"] == database_url
    assert env["EVERREACH_DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    assert env["EVERREACH_DAGSTER_PG_URL"].split("?")[0].endswith("/dagster")
    assert env["DO_NOT_TRACK"] == "1"


def test_an_explicit_storage_url_is_honoured(tmp_path, monkeypatch, storage_url, database_url):
    # a deployment (or a test) that names its instance database keeps it: the default, the
    # `dagster` database on the warehouse server, is only the default
    explicit = database.sqlalchemy_url(storage_url)
    monkeypatch.setenv("EVERREACH_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("EVERREACH_DAGSTER_PG_URL", explicit)
    assert dev.dagster_environment(database_url)["EVERREACH_DAGSTER_PG_URL"] == explicit
    instance = dev.project_instance(database_url)
    try:
        assert os.environ["EVERREACH_DAGSTER_PG_URL"] == explicit
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    finally:
        instance.dispose()
