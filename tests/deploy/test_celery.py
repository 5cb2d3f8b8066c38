"""dagster-celery on RabbitMQ (127.0.0.1:5672, guest/guest) with two worker processes.

A materialization of three days of the ads and organic assets (ad objects, `ad_performance`,
posts and post insights, account insights, and their checks) runs with the `celery`
executor: its steps are Celery tasks, both workers execute some of them, and the tables it
writes are the ones an in-process materialization of the same partitions writes.

Skipped, saying why, when no RabbitMQ answers (a newcomer's machine); `.ci/run` starts one
when it is installed but not running and sets EVERREACH_REQUIRE_RABBITMQ=1, so there a missing
broker fails the test instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from everreach.settings import project_root
from everreach.warehouse import database

pytestmark = pytest.mark.slow

BROKER = ("127.0.0.1", 5672)
DEPLOY = project_root() / "deploy"
START = "2024-01-01"  # the ads and organic assets share daily partitions from here
DAYS = 3
#: The ads and organic assets (multi-assets whole: they cannot be subset).
ASSETS = (
    "meta_ad_campaign",
    "meta_ad_set",
    "meta_ad",
    "campaign",
    "ad_performance",
    "social_media_post",
    "social_post_insights",
    "social_account_insights",
)
#: Materializes `assets` over a partition range in a fresh process (its own import of the code
#: location, with the executor its environment names), as `dagster asset materialize` would.
DRIVER = """
import json, sys
from dagster import AssetKey, DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

job = json.loads(sys.argv[1])
recon = (
    ReconstructableRepository.for_module("everreach_pipelines.definitions", "defs", job["cwd"])
    .get_reconstructable_job("__ASSET_JOB")
    .get_subset(asset_selection={AssetKey(a) for a in job["assets"]})
)
with DagsterInstance.get() as instance:
    result = execute_job(
        recon, instance, run_config=job["run_config"], tags=job["tags"], raise_on_error=False
    )
print("RUN", json.dumps({"run_id": result.run_id, "success": result.success}))
"""
#: Tables compared between the Celery run and the in-process run, without load timestamps.
TABLES = {
    "ad_performance": "date, ad_account_id, level, entity_id, spend, impressions, reach, "
    "actions, conversions, conversion_value",
    "meta_ad_campaign": "campaign_id, ad_account_id, name, status, daily_budget",
    "meta_ad": "ad_id, adset_id, campaign_id, name, status",
    "social_media_post": "platform, post_id, account_id, media_type, posted_at, caption",
    "social_post_insights": "platform, post_id, snapshot_date, metric, value",
    "social_account_insights": "platform, account_id, date, metric, period, value",
}


def _rabbitmq_answers() -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(BROKER) == 0


@pytest.fixture
def storage_url(server_url: str) -> Iterator[str]:
    name = f"everreach_celery_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database.ensure_database(server_url, name)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def _snapshot(db: psycopg.Connection) -> dict[str, list[tuple]]:
    return {
        table: db.execute(f"select {cols} from {table} order by {cols}").fetchall()
        for table, cols in TABLES.items()
    }


def _configure(db: psycopg.Connection, sandbox) -> None:
    for account_id in sandbox.domains["ads"].accounts:
        db.execute(
            "insert into meta_platform_config (platform, external_id) values ('ad_account', %s)",
            (account_id,),
        )
    organic = sandbox.domains["organic"]
    for acct in organic.ig_accounts.values():
        db.execute(
            "insert into meta_platform_config (platform, external_id, name, parent_external_id) "
            "values ('instagram_account', %s, %s, %s)",
            (acct.id, acct.name, acct.page_id),
        )
    for page in organic.pages.values():
        db.execute(
            "insert into meta_platform_config (platform, external_id, name) "
            "values ('facebook_page', %s, %s)",
            (page.id, page.name),
        )


def _start_worker(name: str, queue: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    celery = Path(sys.executable).parent / "celery"
    return subprocess.Popen(
        [
            str(celery) if celery.exists() else "celery",
            "-A",
            "everreach_pipelines.celery_app",
            "worker",
            "-Q",
            queue,
            "-n",
            f"{name}@%h",
            "--concurrency=1",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        env=env,
        cwd=project_root(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _materialize(job: dict, env: dict[str, str], log: Path) -> str:
    """Run DRIVER; returns the run id (the run may have failed: the caller checks)."""
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps({**job, "cwd": str(project_root())})],
        env=env,
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    log.write_text(done.stdout + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RUN ")]
    assert lines, f"the run did not start:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][4:])["run_id"]


def test_steps_run_on_two_celery_workers_and_write_what_an_in_process_run_writes(
    db: psycopg.Connection,
    database_url: str,
    storage_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not _rabbitmq_answers():
        reason = "no RabbitMQ on 127.0.0.1:5672 (guest/guest): the Celery test needs one"
        if os.environ.get("EVERREACH_REQUIRE_RABBITMQ") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from celery import Celery
    from dagster import DagsterEventType, DagsterInstance

    from everreach.sandbox.testing import running_sandbox

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    queue = f"everreach-test-{uuid.uuid4().hex[:8]}"
    names = [f"everreach-w{n}-{uuid.uuid4().hex[:6]}" for n in (1, 2)]
    with running_sandbox(async_polls_to_complete=1) as sb:
        _configure(db, sb.sandbox)
        settings = {
            "DAGSTER_HOME": str(home),
            "EVERREACH_DAGSTER_PG_URL": database.sqlalchemy_url(storage_url),
            "DATABASE_URL": database_url,
            "META_GRAPH_API_BASE_URL": sb.base_url,
            "META_ACCESS_TOKEN": "celery-test-token",
            "EVERREACH_DAGSTER_EXECUTOR": "celery",
            "EVERREACH_CELERY_QUEUE": queue,
            "EVERREACH_ADS_START_DATE": START,
            "EVERREACH_ORGANIC_START_DATE": START,
            "EVERREACH_ADS_LOOKBACK_DAYS": "0",
        }
        monkeypatch.setenv("EVERREACH_DAGSTER_PG_URL", settings["EVERREACH_DAGSTER_PG_URL"])
        env = {**os.environ, **settings}
        workers = [_start_worker(name, queue, env, tmp_path / f"{name}.log") for name in names]
        try:
            # Both workers answer a ping before the run starts.
            probe = Celery(broker="pyamqp://guest:guest@127.0.0.1:5672//")
            deadline = time.monotonic() + 120
            while True:
                answered = {
                    name.split("@")[0] for reply in probe.control.ping(timeout=1) for name in reply
                }
                if set(names) <= answered:
                    break
                for worker in workers:
                    assert worker.poll() is None, (tmp_path / f"{names[0]}.log").read_text()
                assert time.monotonic() < deadline, f"workers not ready: {answered}"
            last = datetime.now(UTC).date() - timedelta(days=1)
            first = last - timedelta(days=DAYS - 1)
            as_of = sb.sandbox.now().replace(second=0, microsecond=0).isoformat()
            job = {
                "assets": ASSETS,
                "run_config": {
                    "ops": {
                        "organic_posts": {"config": {"as_of": as_of}},
                        "social_account_insights": {"config": {"as_of": as_of}},
                    }
                },
                "tags": {
                    "dagster/asset_partition_range_start": first.isoformat(),
                    "dagster/asset_partition_range_end": last.isoformat(),
                },
            }
            run_id = _materialize(job, env, tmp_path / "celery-run.log")
        finally:
            for worker in workers:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
        instance = DagsterInstance.from_config(str(home))
        try:
            logs = instance.all_logs(run_id)
            status = instance.get_run_by_id(run_id).status.value
        finally:
            instance.dispose()
        failures = [
            str(e.dagster_event.event_specific_data)
            for e in logs
            if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_FAILURE
        ]
        assert status == "SUCCESS", failures
        by_worker: dict[str, set[str]] = {}
        for entry in logs:
            event = entry.dagster_event
            if event is None or event.event_type != DagsterEventType.ENGINE_EVENT:
                continue
            metadata = event.engine_event_data.metadata or {}
            worker = metadata.get("Celery worker")
            if worker is not None:
                by_worker.setdefault(str(worker.value).split("@")[0], set()).add(event.step_key)
        assert set(by_worker) == set(names), by_worker  # both workers ran steps
        assert {"ad_performance", "organic_posts"} <= set().union(*by_worker.values())
        distributed = _snapshot(db)
        assert distributed["ad_performance"] and distributed["social_account_insights"]

        # The same partitions with the steps in the run's own process, on emptied tables.
        for table in TABLES:
            db.execute(f"truncate {table} cascade")
        _materialize(
            job, {**env, "EVERREACH_DAGSTER_EXECUTOR": "in_process"}, tmp_path / "local.log"
        )
    assert _snapshot(db) == distributed
