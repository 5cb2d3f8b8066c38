"""The Graph API: which host and version to call, and the app's token and secret."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from everreach.settings import (
    EverReachSettings,
    Invalid,
    SettingError,
    no_whitespace_secret,
    secret_value,
    setting,
)

DEFAULT_BASE_URL = "https://graph.facebook.com"
#: The version the official Python SDK pins (shipped 2026-02-18).
DEFAULT_API_VERSION = "v25.0"
VERSION_RE = re.compile(r"^v\d+\.\d+$")


class MetaSettingError(SettingError):
    """A Meta setting read from the environment has a bad value (names the variable)."""


class GraphSettings(EverReachSettings):
    """How to reach the Graph API (Meta's, or the local sandbox)."""

    error_class = MetaSettingError

    base_url: str = setting(
        "META_GRAPH_API_BASE_URL",
        DEFAULT_BASE_URL,
        "Graph API base URL; the demo points it at the local sandbox.",
        expected=f"http(s)://host[:port] without a path, e.g. {DEFAULT_BASE_URL} or "
        "http://127.0.0.1:8765",
    )
    api_version: str = setting(
        "META_GRAPH_API_VERSION",
        DEFAULT_API_VERSION,
        "Graph API version (vNN.0).",
        expected="vNN.N such as v25.0",
    )
    access_token: SecretStr | None = setting(
        "META_ACCESS_TOKEN",
        None,
        "System-user access token for ads and pixels. Unset: the demo uses the sandbox.",
    )
    app_secret: SecretStr | None = setting(
        "META_APP_SECRET",
        None,
        "App secret: appsecret_proof on API calls, webhook signature check.",
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.path not in ("", "/")
        ):
            raise Invalid(f"{value!r} is not an API host URL")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not VERSION_RE.match(value):
            raise Invalid(f"{value!r} is not a version")
        return value

    _secrets = field_validator("access_token", "app_secret")(no_whitespace_secret)

    @property
    def token(self) -> str | None:
        """The access token in clear text (for the client only)."""
        return secret_value(self.access_token)

    @property
    def secret(self) -> str | None:
        """The app secret in clear text (for the client and the signature check only)."""
        return secret_value(self.app_secret)


#: The most accounts one sync reads at once (each is a thread and a connection in the pool).
MAX_PARALLEL_ACCOUNTS = 64


class FanOutSettings(EverReachSettings):
    """How many ad accounts / Pages / Instagram accounts one sync reads at once."""

    error_class = MetaSettingError

    parallel_accounts: Annotated[int, Field(ge=1, le=MAX_PARALLEL_ACCOUNTS)] = setting(
        "EVERREACH_META_PARALLEL_ACCOUNTS",
        8,
        "Ad accounts / Pages / IG accounts one ads or organic sync reads at once, one "
        "worker each (1 = one after another).",
        expected=f"a whole number from 1 to {MAX_PARALLEL_ACCOUNTS}",
    )
