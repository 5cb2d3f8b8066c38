"""``everreach receiver``: serve the webhook receiver (``webhooks replay`` lives in
:mod:`everreach.messaging.cli`)."""

from __future__ import annotations

import click


@click.command("receiver")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0 = free).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    help="Worker processes (each has its own pool and writer).",
)
@click.option("--log-level", default="info", show_default=True)
def receiver(host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the Meta webhook receiver and send API under uvicorn.

    Settings come from the environment: DATABASE_URL, META_APP_SECRET (required),
    META_WEBHOOK_VERIFY_TOKEN, API_JWT_SECRET, META_GRAPH_API_BASE_URL.
    """
    import uvicorn

    from everreach.messaging.settings import ReceiverSettings
    from everreach.settings import SettingError
    from webhook_receiver.logs import log_config

    try:
        ReceiverSettings.from_env()  # fail here, with the variable's name, not in a worker
    except SettingError as exc:
        raise click.ClickException(str(exc)) from exc
    uvicorn.run(
        "webhook_receiver.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        log_config=log_config(log_level),
        # Meta gives up after 20 s; keep-alive connections are reused by Meta.
        timeout_keep_alive=30,
        timeout_graceful_shutdown=20,
    )
