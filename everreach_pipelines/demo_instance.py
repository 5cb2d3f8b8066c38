"""The Dagster instance a demo stage materializes into."""

from __future__ import annotations

from typing import Any

from dagster import DagsterInstance


def demo_instance(ctx: Any) -> DagsterInstance:
    """`ctx.instance` (the project's instance, so the UI shows the demo's runs), else a
    throw-away one that prints only INFO and above."""
    instance = getattr(ctx, "instance", None)
    if instance is not None:
        return instance
    return DagsterInstance.ephemeral(settings={"python_logs": {"python_log_level": "INFO"}})
