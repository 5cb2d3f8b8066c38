"""Where a run's steps execute, chosen per deployment by `EVERREACH_DAGSTER_EXECUTOR`:

* `multiprocess` (Dagster's default): each step in its own process of the run worker;
* `in_process`: every step in the run worker's process — on a small box it saves a
  process start and a code import per step (the ads and organic steps wait on Meta in their
  own threads, so they do not need a process each);
* `celery`: on Celery workers.

With `celery`, every step of a run is a Celery task on the broker named by
`EVERREACH_CELERY_BROKER_URL` (RabbitMQ); any number of workers on any hosts that have the
project installed and reach the broker and the Dagster instance's Postgres take them
(`celery -A everreach_pipelines.celery_app worker`, see deploy/README.md). The broker URL is
handed to Dagster as an `EnvVar` reference, so a password in it never shows in the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from everreach.warehouse.settings import ExecutionSettings


def build_executor(env: Mapping[str, str] | None = None) -> Any:
    """The executor of every job in the code location; None leaves Dagster's default
    (multiprocess: each step in its own process of the run worker)."""
    settings = ExecutionSettings.from_env(env)
    if settings.executor == "multiprocess":
        return None
    if settings.executor == "in_process":
        from dagster import in_process_executor

        return in_process_executor
    from dagster_celery import celery_executor

    # An env reference: Dagster reads the URL (and any password in it) where the run
    # executes, and shows only the variable's name.
    broker: Any = (
        {"env": ExecutionSettings.variable("celery_broker_url")}
        if settings.celery_broker_url is not None
        else settings.broker
    )
    return celery_executor.configured(
        {"broker": broker, "config_source": {"task_default_queue": settings.celery_queue}},
        name="celery",
    )
