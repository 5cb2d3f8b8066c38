"""Settings read from the environment.

Every setting the project reads is listed in `SETTINGS` (name, default, purpose), so the
README table and the error messages come from one place. A bad value fails at load time
with a `SettingError` that names the variable and says what is expected — never with a
bare traceback from deep inside a library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingError(ValueError):
    """A setting (environment variable) is missing or malformed."""

    def __init__(self, name: str, problem: str, expected: str | None = None) -> None:
        self.name = name
        message = f"setting {name}: {problem}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    purpose: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        None,
        "PostgreSQL URL of the warehouse. Unset: an embedded Postgres under "
        "`.everreach/pgdata` is started on demand.",
    ),
    Setting(
        "EVERREACH_HOME",
        "<project>/.everreach",
        "Where local state lives: embedded Postgres data, DAGSTER_HOME, logs.",
    ),
    Setting(
        "DAGSTER_HOME",
        "$EVERREACH_HOME/dagster_home",
        "Dagster instance folder; `everreach dev` writes its dagster.yaml (Postgres storage).",
    ),
    Setting(
        "META_GRAPH_API_BASE_URL",
        "https://graph.facebook.com",
        "Graph API base URL; the demo points it at the local sandbox.",
    ),
    Setting("META_GRAPH_API_VERSION", "v25.0", "Graph API version (vNN.0)."),
    Setting(
        "META_ACCESS_TOKEN",
        None,
        "System-user access token for ads and pixels. Unset: the demo uses the sandbox.",
        secret=True,
    ),
    Setting(
        "META_APP_SECRET",
        None,
        "App secret: appsecret_proof on API calls, webhook signature check.",
        secret=True,
    ),
    Setting(
        "META_WEBHOOK_VERIFY_TOKEN",
        None,
        "Token Meta echoes in the webhook verification handshake.",
        secret=True,
    ),
    Setting(
        "API_JWT_SECRET",
        None,
        "HS256 secret of the EverReach user JWTs accepted by the receiver's API endpoints.",
        secret=True,
    ),
    Setting(
        "META_AD_ACCOUNT_IDS",
        None,
        "Comma list of ad account ids to sync, in addition to `meta_platform_config`.",
    ),
    Setting("META_PIXEL_ID", None, "Default pixel for Conversions API events."),
    Setting(
        "META_CAPI_TEST_EVENT_CODE",
        None,
        "When set, every CAPI event is sent in test mode with this code.",
    ),
    Setting(
        "META_CAPI_CONVERSION_ETYPES",
        "purchase:Purchase,lead:Lead,signup:CompleteRegistration",
        "user_event etypes picked up as CAPI conversions, as etype:EventName pairs.",
    ),
    Setting(
        "META_CAPI_SENSOR_INTERVAL_SECONDS",
        "60",
        "How often the CAPI sensor looks for pending events.",
    ),
    Setting("META_CAPI_SWEEP_CRON", "*/30 * * * *", "Fallback schedule of the CAPI delivery."),
    Setting(
        "EVERREACH_RECEIVER_APPLY_MODE",
        "inline",
        "Receiver: `inline` applies each batch before answering 200; `deferred` answers once "
        "the raw event is durable and applies right after.",
    ),
    Setting("EVERREACH_RECEIVER_WRITERS", "1", "Receiver: concurrent group-commit writers."),
    Setting(
        "EVERREACH_RECEIVER_MAX_BODY_BYTES",
        "4194304",
        "Receiver: largest webhook body accepted (413 above; Meta needs at least 3 MB).",
    ),
    Setting(
        "META_SANDBOX_APP_SECRET",
        None,
        "Sandbox: the app secret it signs webhooks with (else META_APP_SECRET).",
        secret=True,
    ),
    Setting(
        "EVERREACH_BI_PASSWORD",
        None,
        "Password given to the BI role by `everreach bi create-role`.",
        secret=True,
    ),
    Setting(
        "EVERREACH_DAGSTER_PG_URL",
        "the `dagster` database on the warehouse server",
        "Dagster instance storage URL, read by the dagster.yaml `everreach dev` writes.",
    ),
    Setting(
        "EVERREACH_META_PARALLEL_ACCOUNTS",
        "8",
        "Ad accounts / Pages / IG accounts one ads or organic sync reads at once (1..64).",
    ),
    Setting(
        "EVERREACH_DAGSTER_EXECUTOR",
        "multiprocess",
        "Where a run's steps execute: `multiprocess` (a process per step), `in_process` "
        "(the run worker's process) or `celery` (Celery workers, see deploy/README.md).",
    ),
    Setting(
        "EVERREACH_CELERY_BROKER_URL",
        "pyamqp://guest:guest@127.0.0.1:5672//",
        "Celery broker (RabbitMQ) of the `celery` executor and its workers.",
        secret=True,
    ),
    Setting(
        "EVERREACH_CELERY_QUEUE",
        "dagster",
        "Celery queue of the steps; workers listen on it (`-Q`). Deployments sharing a broker "
        "use different queues.",
    ),
    Setting("EVERREACH_ADS_START_DATE", "2024-01-01", "First daily partition of the ads assets."),
    Setting(
        "EVERREACH_ADS_LOOKBACK_DAYS",
        "28",
        "Days before each partition re-read and replaced (Meta revises 28 days; 0..28).",
    ),
    Setting("EVERREACH_ADS_SCHEDULE", "0 4 * * *", "Cron (UTC) of the daily ads sync."),
    Setting(
        "EVERREACH_ADS_CONVERSION_ACTION_TYPES",
        "omni_purchase",
        "Action types summed into conversions/conversion_value (one non-overlapping tier).",
    ),
    Setting(
        "EVERREACH_ADS_ATTRIBUTION_WINDOWS",
        "7d_click,1d_view",
        "Attribution windows requested and summed for conversions.",
    ),
    Setting(
        "EVERREACH_ORGANIC_START_DATE", "2025-01-01", "First daily partition of the organic assets."
    ),
    Setting("EVERREACH_ORGANIC_SCHEDULE", "30 3 * * *", "Cron (UTC) of the daily organic sync."),
    Setting(
        "EVERREACH_ORGANIC_RECENT_DAYS",
        "14",
        "Posts younger than this get an insights snapshot every day.",
    ),
    Setting(
        "EVERREACH_ORGANIC_OLD_POST_REFRESH_DAYS",
        "7",
        "Older posts get a snapshot once every this many days.",
    ),
)


def project_root() -> Path:
    """The repository root (where pyproject.toml lives), for project-local state."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def everreach_home(env: Mapping[str, str] | None = None) -> Path:
    """The folder for local state (`EVERREACH_HOME`, default `<project>/.everreach`)."""
    env = os.environ if env is None else env
    raw = env.get("EVERREACH_HOME")
    path = Path(raw).expanduser() if raw else project_root() / ".everreach"
    path = path.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(
            "EVERREACH_HOME", f"cannot create {path}: {exc.strerror}", "a writable folder"
        ) from exc
    return path


def get_setting(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of a setting, stripped; empty means unset."""
    env = os.environ if env is None else env
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None
