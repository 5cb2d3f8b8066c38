"""The Meta Graph API client (importable without Dagster or Starlette)."""

from everreach.meta.client import ClientMetrics, GraphClient
from everreach.meta.errors import (
    AsyncJobFailedError,
    DeprecatedVersionError,
    GraphAPIError,
    GraphConfigurationError,
    InvalidMetricError,
    MissingPermissionError,
    PolicyWindowError,
    ReduceDataError,
    SkipItemError,
    ThrottledError,
    TokenInvalidError,
    TransientGraphError,
    classify,
)
from everreach.meta.settings import GraphSettings, MetaSettingError

__all__ = [
    "AsyncJobFailedError",
    "ClientMetrics",
    "DeprecatedVersionError",
    "GraphAPIError",
    "GraphClient",
    "GraphConfigurationError",
    "GraphSettings",
    "InvalidMetricError",
    "MetaSettingError",
    "MissingPermissionError",
    "PolicyWindowError",
    "ReduceDataError",
    "SkipItemError",
    "ThrottledError",
    "TokenInvalidError",
    "TransientGraphError",
    "classify",
]
