"""The production topology from `deploy/`, as separate processes: a gRPC code server, the
webserver and the daemon (no `dagster dev`), on `deploy/dagster.yaml` and
`deploy/workspace.yaml` unchanged, with a throw-away Postgres database as the instance's
storage and the local sandbox as Meta.

A backfill of `ad_performance` over 40 days of every configured ad account is launched
through the webserver's GraphQL API. The backfill policy makes it two runs; the `meta_ads`
pool (limit 1 from dagster.yaml) lets one `ad_performance` step run at a time, so the
second run waits in the queue while the first one runs; both succeed and the table holds
every account's days.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from everreach.settings import project_root
from everreach.warehouse import database

pytestmark = pytest.mark.slow

DEPLOY = project_root() / "deploy"
LOCATION = "everreach_pipelines"
BACKFILL_DAYS = 40  # > 31 partitions per run: two runs
STARTUP_SECONDS = 120
RUN_SECONDS = 300

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""
RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
    ... on PythonError { message }
  }
}
"""
RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}
"""
LOCATIONS = """
query { workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    """A console script of this environment (the venv's bin/ need not be on PATH)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name) or name


class Services:
    """Processes started for the test, each in its own process group, logs in files."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs = logs
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            cmd,
            env=self.env,
            cwd=project_root(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def _wait_tcp(port: int, services: Services, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        services.check_alive()
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s")


def _graphql(http: httpx.Client, query: str, variables: dict | None = None) -> dict:
    resp = http.post("/graphql", json={"query": query, "variables": variables or {}})
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture
def storage_url(server_url: str) -> Iterator[str]:
    name = f"everreach_topology_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = database.ensure_database(server_url, name)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_backfill_queues_under_the_pool_and_succeeds_on_separate_processes(
    db: psycopg.Connection,
    database_url: str,
    storage_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagster import DagsterEventType, DagsterInstance

    from everreach.sandbox.testing import running_sandbox

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    code_port, web_port = _free_port(), _free_port()
    # The sandbox answers async report runs at the first poll (its data is the default).
    with running_sandbox(async_polls_to_complete=1) as sandbox:
        ids = list(sandbox.sandbox.domains["ads"].accounts)
        for account_id in ids:
            db.execute(
                "insert into meta_platform_config (platform, external_id) "
                "values ('ad_account', %s)",
                (account_id,),
            )
        env = dict(os.environ)
        env.update(
            DAGSTER_HOME=str(home),
            EVERREACH_DAGSTER_PG_URL=database.sqlalchemy_url(storage_url),
            EVERREACH_CODE_SERVER_HOST="127.0.0.1",
            EVERREACH_CODE_SERVER_PORT=str(code_port),
            DATABASE_URL=database_url,
            META_GRAPH_API_BASE_URL=sandbox.base_url,
            META_ACCESS_TOKEN="topology-test-token",
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            DO_NOT_TRACK="1",
        )
        # Steps in the run worker's process: no code import per step (a deployment setting).
        env["EVERREACH_DAGSTER_EXECUTOR"] = "in_process"
        services = Services(tmp_path, env)
        try:
            services.start(
                "code-server",
                [
                    _bin("dagster"),
                    "code-server",
                    "start",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(code_port),
                    "-m",
                    "everreach_pipelines.definitions",
                    "--location-name",
                    LOCATION,
                    "--use-python-environment-entry-point",
                ],
            )
            _wait_tcp(code_port, services, STARTUP_SECONDS)
            workspace = str(DEPLOY / "workspace.yaml")
            services.start(
                "webserver",
                [
                    _bin("dagster-webserver"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(web_port),
                    "-w",
                    workspace,
                ],
            )
            _wait_tcp(web_port, services, STARTUP_SECONDS)
            with httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30) as http:
                deadline = time.monotonic() + STARTUP_SECONDS
                while True:
                    entries = _graphql(http, LOCATIONS)["workspaceOrError"]["locationEntries"]
                    loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
                    if loaded and loaded[0]["locationOrLoadError"]["__typename"] == (
                        "RepositoryLocation"
                    ):
                        assert loaded[0]["name"] == LOCATION
                        break
                    assert time.monotonic() < deadline, f"code location not loaded: {entries}"
                    if loaded:  # the code server was not up yet: reload, as in the UI
                        _graphql(http, RELOAD, {"name": LOCATION})
                    services.check_alive()
                    time.sleep(1)

                yesterday = datetime.now(UTC).date() - timedelta(days=1)
                partitions = [
                    (yesterday - timedelta(days=n)).isoformat()
                    for n in reversed(range(BACKFILL_DAYS))
                ]
                launched = _graphql(
                    http,
                    LAUNCH_BACKFILL,
                    {
                        "params": {
                            "assetSelection": [{"path": ["ad_performance"]}],
                            "partitionNames": partitions,
                            "fromFailure": False,
                        }
                    },
                )["launchPartitionBackfill"]
                assert launched["__typename"] == "LaunchBackfillSuccess", launched
                backfill_id = launched["backfillId"]

                # The daemon processes the backfill at once on start (then every 30 s).
                services.start("daemon", [_bin("dagster-daemon"), "run", "-w", workspace])
                seen_queued_beside_running = False
                deadline = time.monotonic() + RUN_SECONDS
                statuses: dict[str, str] = {}
                while True:
                    runs = _graphql(
                        http,
                        RUNS,
                        {"filter": {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}},
                    )["runsOrError"]
                    assert runs["__typename"] == "Runs", runs
                    statuses = {r["runId"]: r["status"] for r in runs["results"]}
                    values = set(statuses.values())
                    if "QUEUED" in values and values & {"STARTING", "STARTED"}:
                        seen_queued_beside_running = True
                    if len(statuses) == 2 and values <= {"SUCCESS", "FAILURE", "CANCELED"}:
                        break
                    if time.monotonic() > deadline:
                        pytest.fail(
                            f"backfill runs not done after {RUN_SECONDS} s: {statuses}\n"
                            f"daemon:\n{services.tail('daemon')}"
                        )
                    services.check_alive()
                    time.sleep(0.5)
        finally:
            services.stop()

    assert set(statuses.values()) == {"SUCCESS"}, (statuses, services.tail("daemon"))
    assert seen_queued_beside_running, "no run waited in the queue while another ran"

    # The two ad_performance steps ran one after the other (the pool's limit of 1).
    monkeypatch.setenv("EVERREACH_DAGSTER_PG_URL", database.sqlalchemy_url(storage_url))
    instance = DagsterInstance.from_config(str(home))
    try:
        spans = []
        for run_id in statuses:
            times = {}
            for entry in instance.all_logs(run_id):
                event = entry.dagster_event
                if event is not None and event.step_key == "ad_performance":
                    if event.event_type == DagsterEventType.STEP_START:
                        times["start"] = entry.timestamp
                    elif event.event_type == DagsterEventType.STEP_SUCCESS:
                        times["end"] = entry.timestamp
            assert set(times) == {"start", "end"}, (run_id, times)
            spans.append((times["start"], times["end"]))
        (s1, e1), (s2, e2) = sorted(spans)
        assert e1 <= s2, f"ad_performance steps overlapped: {spans}"
        assert instance.event_log_storage.get_concurrency_info("meta_ads").slot_count == 1
    finally:
        instance.dispose()

    first = date_of(partitions[0]) - timedelta(days=28)
    stored = db.execute(
        "select ad_account_id, count(distinct date) from ad_performance "
        "where level = 'account' and date >= %s group by 1",
        (first,),
    ).fetchall()
    active = {account for account, days in stored if days > 0}
    assert active and active <= set(ids)
    assert len(active) >= 2  # a multi-account backfill


def date_of(text: str) -> date:
    return date.fromisoformat(text)
