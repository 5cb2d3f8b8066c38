"""The sandbox's own secret (the sandbox reads nothing else from the environment)."""

from __future__ import annotations

from pydantic import SecretStr

from everreach.settings import EverReachSettings, secret_value, setting


class SandboxSettings(EverReachSettings):
    """The app secret the sandbox signs webhooks with and checks appsecret_proof against."""

    app_secret: SecretStr | None = setting(
        "META_SANDBOX_APP_SECRET",
        None,
        "Sandbox: the app secret it signs webhooks with (else META_APP_SECRET).",
    )
    #: The project's app secret, the fallback (documented with the Graph settings).
    meta_app_secret: SecretStr | None = setting("META_APP_SECRET", None)

    @property
    def signing_secret(self) -> str | None:
        """`META_SANDBOX_APP_SECRET`, else `META_APP_SECRET`, else None."""
        return secret_value(self.app_secret) or secret_value(self.meta_app_secret)
