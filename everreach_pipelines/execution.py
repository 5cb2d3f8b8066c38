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

from everreach.settings import SettingError, get_setting

EXECUTORS = ("multiprocess", "in_process", "celery")
#: RabbitMQ on this machine with its default user (what CI and the tests use).
DEFAULT_BROKER_URL = "pyamqp://guest:guest@127.0.0.1:5672//"
#: The Celery queue Dagster's steps go to (dagster-celery's default).
DEFAULT_QUEUE = "dagster"


def executor_choice(env: Mapping[str, str] | None = None) -> str:
    """`EVERREACH_DAGSTER_EXECUTOR`: `multiprocess` (default), `in_process` or `celery`."""
    value = (get_setting("EVERREACH_DAGSTER_EXECUTOR", env) or "multiprocess").lower()
    if value not in EXECUTORS:
        raise SettingError(
            "EVERREACH_DAGSTER_EXECUTOR", f"{value!r} is not an executor", " or ".join(EXECUTORS)
        )
    return value


def broker_url(env: Mapping[str, str] | None = None) -> str:
    """`EVERREACH_CELERY_BROKER_URL`, or RabbitMQ on 127.0.0.1 with the guest user."""
    return get_setting("EVERREACH_CELERY_BROKER_URL", env) or DEFAULT_BROKER_URL


def celery_queue(env: Mapping[str, str] | None = None) -> str:
    """`EVERREACH_CELERY_QUEUE` (default `dagster`): the queue the steps go to and the
    workers listen on; deployments that share a broker use different queues."""
    value = get_setting("EVERREACH_CELERY_QUEUE", env) or DEFAULT_QUEUE
    if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SettingError(
            "EVERREACH_CELERY_QUEUE", f"{value!r} is not a queue name", "letters, digits, -_."
        )
    return value


def build_executor(env: Mapping[str, str] | None = None) -> Any:
    """The executor of every job in the code location; None leaves Dagster's default
    (multiprocess: each step in its own process of the run worker)."""
    choice = executor_choice(env)
    if choice == "multiprocess":
        return None
    if choice == "in_process":
        from dagster import in_process_executor

        return in_process_executor
    from dagster_celery import celery_executor

    # An env reference: Dagster reads the URL (and any password in it) where the run
    # executes, and shows only the variable's name.
    broker: Any = (
        {"env": "EVERREACH_CELERY_BROKER_URL"}
        if get_setting("EVERREACH_CELERY_BROKER_URL", env)
        else DEFAULT_BROKER_URL
    )
    return celery_executor.configured(
        {"broker": broker, "config_source": {"task_default_queue": celery_queue(env)}},
        name="celery",
    )
