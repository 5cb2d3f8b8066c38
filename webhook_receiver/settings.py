"""The receiver's settings, read from the environment (see ``everreach.settings``).

``ReceiverSettings.from_env()`` refuses to build without ``META_APP_SECRET``: a receiver
that cannot check signatures would store whatever anyone posts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from everreach.settings import SettingError, get_setting

#: Meta sends batches of events; the issue asks for at least 3 MB.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ReceiverSettings:
    """Everything the receiver needs; secrets are never printed by ``repr``."""

    app_secret: str = field(repr=False)
    database_url: str = field(default="", repr=False)
    verify_token: str | None = field(default=None, repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    graph_api_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v25.0"
    #: Token for send calls when the platform config names no token variable.
    access_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Meta gives up after 20 s; answer (503) before that so the retry is ours to shape.
    request_timeout_seconds: float = 15.0
    pool_min_size: int = 2
    pool_max_size: int = 8
    #: How long a batch waits for a database connection before answering 503.
    pool_timeout_seconds: float = 5.0
    #: Group commit: at most this many webhooks share one transaction.
    max_batch: int = 64
    #: Concurrent writer transactions per process. One avoids deadlocks between batches
    #: of the same process (batches grow under load instead); more processes = --workers.
    writers: int = 1
    send_timeout_seconds: float = 20.0
    #: ``inline``: 200 after the raw row *and* its application committed (one transaction).
    #: ``deferred``: 200 after the raw row committed; applied right after, in the background
    #: (lower latency under bursts; rows left ``pending`` by a crash are swept).
    apply_mode: str = "inline"

    def __post_init__(self) -> None:
        if not self.app_secret:
            raise SettingError(
                "META_APP_SECRET",
                "is empty or missing; the webhook receiver refuses to start without it",
                "the Meta app secret",
            )
        if self.apply_mode not in ("inline", "deferred"):
            raise SettingError(
                "EVERREACH_RECEIVER_APPLY_MODE", f"is {self.apply_mode!r}", "inline or deferred"
            )
        if self.max_body_bytes < 3 * 1024 * 1024:
            raise SettingError(
                "EVERREACH_RECEIVER_MAX_BODY_BYTES",
                "is below 3 MB",
                "at least 3145728 (Meta batches can be that large)",
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: object
    ) -> ReceiverSettings:
        """Settings from environment variables (``overrides`` win over the environment)."""
        env = os.environ if env is None else env
        database_url = get_setting("DATABASE_URL", env)
        if database_url is None and "database_url" not in overrides:
            # Same fallback as every other command: the embedded server.
            from everreach.warehouse.database import resolve_database_url

            database_url = resolve_database_url(env)
        values: dict[str, object] = {
            "app_secret": get_setting("META_APP_SECRET", env) or "",
            "database_url": database_url or "",
            "verify_token": get_setting("META_WEBHOOK_VERIFY_TOKEN", env),
            "jwt_secret": get_setting("API_JWT_SECRET", env),
            "graph_api_base_url": (
                get_setting("META_GRAPH_API_BASE_URL", env) or "https://graph.facebook.com"
            ).rstrip("/"),
            "graph_api_version": get_setting("META_GRAPH_API_VERSION", env) or "v25.0",
            "access_token": get_setting("META_ACCESS_TOKEN", env),
        }
        writers = get_setting("EVERREACH_RECEIVER_WRITERS", env)
        if writers is not None:
            if not writers.isdigit() or not 1 <= int(writers) <= 16:
                raise SettingError("EVERREACH_RECEIVER_WRITERS", f"is {writers!r}", "1..16")
            values["writers"] = int(writers)
        mode = get_setting("EVERREACH_RECEIVER_APPLY_MODE", env)
        if mode is not None:
            values["apply_mode"] = mode
        raw_limit = get_setting("EVERREACH_RECEIVER_MAX_BODY_BYTES", env)
        if raw_limit is not None:
            try:
                values["max_body_bytes"] = int(raw_limit)
            except ValueError as exc:
                raise SettingError(
                    "EVERREACH_RECEIVER_MAX_BODY_BYTES", "is not an integer", "a byte count"
                ) from exc
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
