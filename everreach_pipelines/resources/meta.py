"""The Meta Graph API client as a Dagster resource (key ``meta``)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from everreach.meta.client import GraphClient
from everreach.meta.settings import DEFAULT_API_VERSION, DEFAULT_BASE_URL, FanOutSettings


class MetaGraphResource(ConfigurableResource):
    """A configured :class:`~everreach.meta.client.GraphClient`.

    Definitions build it with ``EnvVar``s (``META_GRAPH_API_BASE_URL``,
    ``META_GRAPH_API_VERSION``, ``META_ACCESS_TOKEN``, ``META_APP_SECRET``) so the token
    and the secret never appear in run config or logs. Point ``base_url`` at the local
    sandbox (``http://127.0.0.1:8765``) to run without Meta.
    """

    base_url: str = Field(
        default=DEFAULT_BASE_URL, description="Graph API host root (no version), or the sandbox."
    )
    api_version: str = Field(default=DEFAULT_API_VERSION, description="e.g. v25.0")
    access_token: str | None = Field(default=None, description="Default access token.")
    app_secret: str | None = Field(default=None, description="App secret: enables appsecret_proof.")
    connect_timeout: float = Field(default=5.0, description="Seconds to connect.")
    read_timeout: float = Field(default=60.0, description="Seconds to wait for an answer.")
    max_retries: int = Field(default=5, description="Retries of transient errors per call.")
    max_concurrent_jobs: int = Field(
        default=4, description="Async insights jobs in flight at once."
    )
    page_limit: int = Field(default=500, description="Rows per page requested.")
    parallel_accounts: int = Field(
        default=FanOutSettings.model_fields["parallel_accounts"].default,
        description="Ad accounts / Pages / IG accounts a sync reads at once, one worker "
        "each (EVERREACH_META_PARALLEL_ACCOUNTS).",
    )
    poll_interval: float = Field(
        default=2.0,
        description="Seconds between the first async report-run status polls (then × 1.5 "
        "up to 30 s). Right for Meta; the sandbox completes runs at once (use ~0.05).",
    )
    backoff_base: float = Field(
        default=1.0,
        description="Base seconds of the exponential backoff (with jitter) between retries.",
    )
    throttle_slowdown_max: float = Field(
        default=30.0,
        description="Longest pause (seconds) the client adds per call when Meta's usage "
        "headers pass the throttle threshold.",
    )
    _client: GraphClient | None = PrivateAttr(default=None)

    def get_client(self) -> GraphClient:
        """The client (one per resource instance: its connection pool is reused)."""
        if self._client is None:
            self._client = GraphClient(
                self.access_token or None,
                base_url=self.base_url or DEFAULT_BASE_URL,
                api_version=self.api_version or DEFAULT_API_VERSION,
                app_secret=self.app_secret or None,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                max_retries=self.max_retries,
                max_concurrent_jobs=self.max_concurrent_jobs,
                page_limit=self.page_limit,
                poll_interval=self.poll_interval,
                backoff_base=self.backoff_base,
                throttle_slowdown_max=self.throttle_slowdown_max,
            )
        return self._client
