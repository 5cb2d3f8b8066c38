"""The Dagster code location: every domain's definitions, bound to shared resources.

Secrets enter as `EnvVar`s (shown by name in the UI, read at run time), never as values.
"""

from __future__ import annotations

from dagster import Definitions, EnvVar

from everreach.meta.settings import FanOutSettings, GraphSettings
from everreach_pipelines.defs import ads, app, capi, dbt, messaging, organic
from everreach_pipelines.execution import build_executor
from everreach_pipelines.resources.warehouse import WarehouseResource

# Modules, not their `defs` objects: a code location may hold one Definitions at module scope.
_DOMAINS = (app, ads, organic, capi, messaging, dbt)


def build_resources() -> dict[str, object]:
    """The resources every domain uses, configured from the environment (validated here,
    so a bad value fails the code location's load naming the variable)."""
    from everreach_pipelines.resources.meta import MetaGraphResource

    graph = GraphSettings.from_env()
    meta_kwargs: dict[str, object] = {
        "base_url": graph.base_url,
        "api_version": graph.api_version,
        "parallel_accounts": FanOutSettings.from_env().parallel_accounts,
    }
    for field in ("access_token", "app_secret"):
        if getattr(graph, field) is not None:
            # By name: Dagster reads the value at run time and never shows it.
            meta_kwargs[field] = EnvVar(GraphSettings.variable(field))
    return {
        "warehouse": WarehouseResource(),
        "meta": MetaGraphResource(**meta_kwargs),
    }


defs = Definitions.merge(
    *(domain.defs for domain in _DOMAINS),
    ads.reports_defs,
    Definitions(resources=build_resources(), executor=build_executor()),
)
