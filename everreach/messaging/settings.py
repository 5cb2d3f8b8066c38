"""The webhook receiver's settings: secrets, body limit, how it commits and applies, and
who may send messages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from everreach.capi.settings import CapiSettings
from everreach.meta.settings import GraphSettings
from everreach.settings import EverReachSettings, Invalid, no_whitespace_secret, setting

#: Meta batches events into one POST; its documentation promises bodies of up to 3 MB.
MIN_BODY_BYTES = 3 * 1024 * 1024
#: The role Supabase-style backends put in their own (service) tokens.
DEFAULT_SERVICE_ROLES: tuple[str, ...] = ("service_role",)
#: `app_metadata` is set by the app's backend only (users can edit `user_metadata`).
DEFAULT_AGENT_CLAIM = "app_metadata.messaging_agent"
_CLAIM_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _names(value: object) -> object:
    """``"a, b,,a"`` → ``("a", "b")``: stripped, empty items dropped, first occurrence kept."""
    if isinstance(value, str):
        return tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    return value


class ReceiverSettings(EverReachSettings):
    """Everything the receiver needs; secrets are never shown by ``repr``.

    ``from_env()`` refuses to build without ``META_APP_SECRET``: a receiver that cannot
    check signatures would store whatever anyone posts.
    """

    app_secret: SecretStr = setting(
        "META_APP_SECRET",
        ...,
        "App secret: appsecret_proof on API calls, webhook signature check.",
        expected="the Meta app secret",
    )
    database_url: str = setting("DATABASE_URL", "", repr=False)
    verify_token: SecretStr | None = setting(
        "META_WEBHOOK_VERIFY_TOKEN",
        None,
        "Token Meta echoes in the webhook verification handshake.",
    )
    jwt_secret: SecretStr | None = setting(
        "API_JWT_SECRET",
        None,
        "HS256 secret of the EverReach user JWTs accepted by the receiver's API endpoints.",
    )
    max_body_bytes: Annotated[int, Field(ge=MIN_BODY_BYTES)] = setting(
        "EVERREACH_RECEIVER_MAX_BODY_BYTES",
        4 * 1024 * 1024,
        "Receiver: largest webhook body accepted (413 above; Meta needs at least 3 MB).",
        expected=f"a byte count of at least {MIN_BODY_BYTES} (Meta batches can be that large)",
    )
    #: Concurrent writer transactions per process. One avoids deadlocks between batches
    #: of the same process (batches grow under load instead); more processes = --workers.
    writers: Annotated[int, Field(ge=1, le=16)] = setting(
        "EVERREACH_RECEIVER_WRITERS",
        1,
        "Receiver: concurrent group-commit writers.",
        expected="1..16",
    )
    #: ``inline``: 200 after the raw row *and* its application committed (one transaction).
    #: ``deferred``: 200 after the raw row committed; applied right after, in the background
    #: (lower latency under bursts; rows left ``pending`` by a crash are swept).
    apply_mode: Literal["inline", "deferred"] = setting(
        "EVERREACH_RECEIVER_APPLY_MODE",
        "inline",
        "Receiver: `inline` applies each batch before answering 200; `deferred` answers once "
        "the raw event is durable and applies right after.",
        expected="inline or deferred",
    )
    #: Who may send: a token whose `role` is one of these (the app's backend) …
    service_roles: Annotated[tuple[str, ...], BeforeValidator(_names)] = setting(
        "EVERREACH_RECEIVER_SERVICE_ROLES",
        DEFAULT_SERVICE_ROLES,
        "Receiver: JWT `role` values of the app's backend: they may send messages and queue "
        "CAPI events for any user.",
        expected="a comma list of role names, e.g. service_role",
    )
    #: … or a user token in which this claim is `true` (a messaging agent).
    agent_claim: str | None = setting(
        "EVERREACH_RECEIVER_AGENT_CLAIM",
        DEFAULT_AGENT_CLAIM,
        "Receiver: JWT claim (a dotted path) that is `true` in a messaging agent's token; "
        "such tokens may send messages.",
        expected="a claim name or dotted path such as app_metadata.messaging_agent",
    )
    #: Meta gives up after 20 s; answer (503) before that so the retry is ours to shape.
    request_timeout_seconds: float = 15.0
    pool_min_size: int = 2
    pool_max_size: int = 8
    #: How long a batch waits for a database connection before answering 503.
    pool_timeout_seconds: float = 5.0
    #: Group commit: at most this many webhooks share one transaction.
    max_batch: int = 64
    send_timeout_seconds: float = 20.0
    #: The Graph API the send endpoints call (host, version, default token).
    graph: GraphSettings = Field(default_factory=GraphSettings)
    #: Pixel and test mode of the CAPI intake endpoint.
    capi: CapiSettings = Field(default_factory=CapiSettings)

    _secrets = field_validator("verify_token", "jwt_secret")(no_whitespace_secret)

    @field_validator("service_roles")
    @classmethod
    def _service_roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise Invalid("is empty", "at least one role name, e.g. service_role")
        return value

    @field_validator("agent_claim")
    @classmethod
    def _agent_claim(cls, value: str | None) -> str | None:
        if value is not None and not _CLAIM_PATH.match(value):
            raise Invalid(f"{value!r} is not a claim name")
        return value

    @field_validator("app_secret")
    @classmethod
    def _app_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise Invalid(
                "is empty or missing; the webhook receiver refuses to start without it",
                "the Meta app secret",
            )
        return no_whitespace_secret(value)  # type: ignore[return-value]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Settings from the environment; without ``DATABASE_URL`` the embedded server."""
        graph = overrides.pop("graph", None) or GraphSettings.from_env(env)
        capi = overrides.pop("capi", None) or CapiSettings.from_env(env)
        if "app_secret" not in overrides and graph.app_secret is None:
            overrides["app_secret"] = ""  # refused by the validator, naming META_APP_SECRET
        settings = super().from_env(env, graph=graph, capi=capi, **overrides)
        if not settings.database_url:
            # Same fallback as every other command: the embedded server.
            from everreach.warehouse.database import resolve_database_url

            settings = settings.model_copy(update={"database_url": resolve_database_url(env)})
        return settings
