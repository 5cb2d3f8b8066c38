"""The Celery app the workers run: `celery -A everreach_pipelines.celery_app worker -Q dagster`
(the queue is `EVERREACH_CELERY_QUEUE`).

It is dagster-celery's app (the tasks that execute one step of a run) on the broker named by
`EVERREACH_CELERY_BROKER_URL`, the same broker the executor sends steps to (see
`everreach_pipelines.execution`). A worker needs the project installed, `DAGSTER_HOME` with
the deployment's dagster.yaml (it writes step events to the instance's Postgres) and the
settings the assets read (`DATABASE_URL`, `META_*`).
"""

from __future__ import annotations

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from everreach.warehouse.settings import ExecutionSettings

_settings = ExecutionSettings.from_env()
app = make_app(
    {
        "broker": _settings.broker,
        "backend": "rpc://",
        "include": None,
        "config_source": {
            "task_default_queue": _settings.celery_queue,
            "worker_prefetch_multiplier": 1,
        },
    }
)
execute_plan = create_task(app)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
