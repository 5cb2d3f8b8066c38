"""The files in `deploy/` hold together: YAML parses, the instance config validates, every
service runs a command and a module that exist, every file a service, the Dockerfile or the
chart names is in the repository, and the limits agree between compose and Helm.

(No Docker engine or cluster runs here: `test_topology.py` runs the same commands as local
processes.)"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

from everreach.settings import project_root

ROOT = project_root()
DEPLOY = ROOT / "deploy"
SERVICES = {"postgres", "migrate", "code-server", "webserver", "daemon", "receiver"}
CELERY_SERVICES = {"rabbitmq", "celery-worker"}
MODULE = "everreach_pipelines.definitions"
POOLS = ("meta_ads", "meta_organic")


def _yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _command(service: dict) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def test_every_yaml_file_parses():
    files = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))
    assert {p.name for p in files} >= {
        "dagster.yaml",
        "workspace.yaml",
        "docker-compose.yml",
        "values.yaml",
    }
    for path in files:
        _yaml(path)


def test_the_instance_config_validates_with_postgres_storage_and_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    monkeypatch.setenv("EVERREACH_DAGSTER_PG_URL", "postgresql+psycopg2://u:p@db:5432/dagster")
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    pools = config["concurrency"]["pools"]
    assert pools == {"granularity": "op", "default_limit": 1}
    assert config["telemetry"]["enabled"] is False


def test_the_assets_use_the_pools_the_deployment_limits():
    from everreach_pipelines.defs.ads.assets import ADS_POOL, ad_objects, ad_performance
    from everreach_pipelines.defs.organic.assets import (
        ORGANIC_POOL,
        organic_posts,
        social_account_insights,
    )

    assert (ADS_POOL, ORGANIC_POOL) == POOLS
    assert {ad_objects.op.pool, ad_performance.op.pool} == {ADS_POOL}
    assert {organic_posts.op.pool, social_account_insights.op.pool} == {ORGANIC_POOL}
    readme = (DEPLOY / "README.md").read_text()
    assert all(f"`{pool}`" in readme for pool in POOLS)


def test_the_workspace_points_at_a_grpc_code_server():
    locations = _yaml(DEPLOY / "workspace.yaml")["load_from"]
    assert len(locations) == 1
    server = locations[0]["grpc_server"]
    assert server["host"] == {"env": "EVERREACH_CODE_SERVER_HOST"}
    assert server["port"] == {"env": "EVERREACH_CODE_SERVER_PORT"}
    assert server["location_name"] == "everreach_pipelines"


def test_compose_follows_dagsters_layout_and_names_what_exists():
    compose = _yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert set(services) == SERVICES | CELERY_SERVICES
    assert all(services[name].get("profiles") == ["celery"] for name in CELERY_SERVICES)
    dockerfile = DEPLOY / "Dockerfile"
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT and (context / build["dockerfile"]) == dockerfile, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), (name, source)
    code = _command(services["code-server"])
    assert code[:3] == ["dagster", "code-server", "start"]
    assert code[code.index("-m") + 1] == MODULE and _importable(MODULE)
    assert code[code.index("-p") + 1] == "4000"
    for name in ("webserver", "daemon"):
        command = _command(services[name])
        assert command[command.index("-w") + 1] == "/opt/dagster/workspace.yaml", name
        assert "dev" not in command
    assert _command(services["webserver"])[0] == "dagster-webserver"
    assert _command(services["daemon"])[:2] == ["dagster-daemon", "run"]
    assert _command(services["receiver"])[:2] == ["everreach", "receiver"]
    assert _command(services["migrate"]) == ["everreach", "db", "upgrade"]
    worker = _command(services["celery-worker"])
    assert worker[:3] == ["celery", "-A", "everreach_pipelines.celery_app"]
    assert _importable("everreach_pipelines.celery_app")
    from everreach.cli import COMMANDS

    assert {"db", "receiver"} <= set(COMMANDS)
    env = (DEPLOY / "docker-compose.yml").read_text()
    assert 'EVERREACH_CODE_SERVER_PORT: "4000"' in env
    assert "EVERREACH_DAGSTER_PG_URL: postgresql+psycopg2://" in env  # dagster-postgres' driver
    # every secret compose requires is in env.example, and nothing secret is written there
    required = set(re.findall(r"\$\{([A-Z_]+):\?", env))
    example = (DEPLOY / "env.example").read_text()
    assert required and all(re.search(rf"^{v}=$", example, re.M) for v in required)


def test_the_dockerfile_copies_files_that_exist_into_the_paths_compose_uses():
    text = (DEPLOY / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (.+)$", text, re.M)
    assert copies
    for line in copies:
        *sources, target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    assert "COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml" in text
    assert "COPY deploy/workspace.yaml /opt/dagster/workspace.yaml" in text
    assert "DAGSTER_HOME=/opt/dagster/home" in text
    assert "-c constraints.txt -e ." in text  # the pinned set; editable: dbt_project beside it
    assert MODULE in text


def test_helm_values_match_the_compose_limits_and_run_the_code_location():
    values = _yaml(DEPLOY / "helm" / "values.yaml")
    assert set(values) >= {
        "dagsterWebserver",
        "dagster-user-deployments",
        "runLauncher",
        "postgresql",
        "dagsterDaemon",
        "concurrency",
    }
    deployments = values["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    args = deployments[0]["dagsterApiGrpcArgs"]
    assert args == ["-m", MODULE]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    instance = _yaml(DEPLOY / "dagster.yaml")["concurrency"]
    helm = values["concurrency"]
    assert helm["pools"] == {
        "granularity": instance["pools"]["granularity"],
        "defaultLimit": instance["pools"]["default_limit"],
    }
    assert helm["runs"]["maxConcurrentRuns"] == instance["runs"]["max_concurrent_runs"]
    assert helm["runs"]["tagConcurrencyLimits"] == instance["runs"]["tag_concurrency_limits"]
    # secrets only by reference
    text = (DEPLOY / "helm" / "values.yaml").read_text()
    assert "postgresqlPassword" not in text and "access_token" not in text
