"""The Dagster code location: every domain's definitions, bound to shared resources.

Secrets enter as `EnvVar`s (shown by name in the UI, read at run time), never as values.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from everreach_pipelines.defs import ads, capi, dbt, messaging, organic
from everreach_pipelines.execution import build_executor
from everreach_pipelines.resources.warehouse import WarehouseResource

# Modules, not their `defs` objects: a code location may hold one Definitions at module scope.
_DOMAINS = (ads, organic, capi, messaging, dbt)


def _optional_env(name: str) -> EnvVar | None:
    """An EnvVar when the variable is set, else None (the resource field stays empty)."""
    return EnvVar(name) if os.environ.get(name, "").strip() else None


def build_resources() -> dict[str, object]:
    """The resources every domain uses, configured from the environment."""
    from everreach.parallel import parallel_accounts_setting
    from everreach_pipelines.resources.meta import MetaGraphResource

    meta_kwargs: dict[str, object] = {
        "base_url": os.environ.get("META_GRAPH_API_BASE_URL", "").strip()
        or "https://graph.facebook.com",
        "api_version": os.environ.get("META_GRAPH_API_VERSION", "").strip() or "v25.0",
        "parallel_accounts": parallel_accounts_setting(),
    }
    for field, var in (("access_token", "META_ACCESS_TOKEN"), ("app_secret", "META_APP_SECRET")):
        env = _optional_env(var)
        if env is not None:
            meta_kwargs[field] = env
    return {
        "warehouse": WarehouseResource(),
        "meta": MetaGraphResource(**meta_kwargs),
    }


defs = Definitions.merge(
    *(domain.defs for domain in _DOMAINS),
    Definitions(resources=build_resources(), executor=build_executor()),
)
