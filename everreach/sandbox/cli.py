"""``everreach sandbox``: serve the local Meta Graph API sandbox until Ctrl-C."""

from __future__ import annotations

import json
import socket

import click


def _parse_rates(values: tuple[str, ...]) -> dict[int, float]:
    rates: dict[int, float] = {}
    for item in values:
        code, sep, rate = item.partition("=")
        try:
            if not sep:
                raise ValueError
            rates[int(code)] = float(rate)
        except ValueError as exc:
            raise click.BadParameter(
                f"expected CODE=RATE (e.g. 2=0.1), got {item!r}", param_hint="--error-rate"
            ) from exc
    return rates


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=int,
    help="Port (0 = any free port, printed at start).",
)
@click.option("--seed", default=7, show_default=True, type=int, help="Data seed.")
@click.option("--accounts", default=3, show_default=True, type=int)
@click.option("--campaigns", "campaigns_per_account", default=2, show_default=True, type=int)
@click.option("--adsets", "adsets_per_campaign", default=2, show_default=True, type=int)
@click.option("--ads", "ads_per_adset", default=2, show_default=True, type=int)
@click.option("--days", default=60, show_default=True, type=int)
@click.option("--extra", default="{}", help="JSON object of domain knobs (e.g. media counts).")
@click.option(
    "--app-secret",
    default=None,
    help="App secret for webhook signatures / appsecret_proof checks (the same "
    "secret the client and the receiver use). Default: META_SANDBOX_APP_SECRET, else "
    "META_APP_SECRET.",
)
@click.option("--error-rate", multiple=True, help="Fault injection CODE=RATE, repeatable.")
@click.option(
    "--throttle-every",
    "throttle_burst_every",
    default=0,
    type=int,
    help="Start a throttle burst after every N calls.",
)
@click.option(
    "--throttle-length",
    "throttle_burst_length",
    default=0,
    type=int,
    help="Calls per throttle burst.",
)
@click.option("--latency-ms", default=0.0, type=float)
@click.option(
    "--reduce-data-threshold",
    default=None,
    type=int,
    help="Insights requests above this many rows answer 'reduce the amount of data'.",
)
@click.option("--async-fail-once", is_flag=True, help="Every async report job fails once.")
@click.option(
    "--profile",
    type=click.Choice(["default", "realistic"]),
    default="default",
    show_default=True,
    help="realistic: Meta-like latency (150-800 ms with a tail), async runs of 10-120 s and "
    "per-account rate limits with Meta's throttle errors; answers stay the same.",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="Multiplies every duration of the profile alike (latency, async runs, usage "
    "windows): 0.01 runs the realistic profile 100 times faster.",
)
@click.option(
    "--job-seconds",
    default=None,
    metavar="MIN:MAX",
    help="Realistic profile: shortest and longest async report run, in seconds (10:120).",
)
def sandbox(
    host: str,
    port: int,
    extra: str,
    error_rate: tuple[str, ...],
    app_secret: str | None,
    job_seconds: str | None,
    **knobs: object,
) -> None:
    """Serve the local Meta Graph API sandbox (the client's base URL is http://HOST:PORT)."""
    import uvicorn

    from everreach.sandbox.core import SandboxConfig, create_app
    from everreach.sandbox.profile import AsyncJobModel
    from everreach.sandbox.settings import SandboxSettings

    try:
        extra_knobs = json.loads(extra)
        if not isinstance(extra_knobs, dict):
            raise ValueError
    except ValueError as exc:
        raise click.BadParameter("must be a JSON object", param_hint="--extra") from exc
    jobs = None
    if job_seconds is not None:
        low, sep, high = job_seconds.partition(":")
        try:
            if not sep or not 0 < float(low) <= float(high):
                raise ValueError
            jobs = AsyncJobModel(min_seconds=float(low), max_seconds=float(high))
        except ValueError as exc:
            raise click.BadParameter(
                f"expected MIN:MAX seconds with 0 < MIN <= MAX (e.g. 10:120), got {job_seconds!r}",
                param_hint="--job-seconds",
            ) from exc
    config = SandboxConfig(
        extra=extra_knobs,
        app_secret=app_secret or SandboxSettings.from_env().signing_secret,
        error_rate=_parse_rates(error_rate),
        async_jobs=jobs,
        **knobs,
    )  # type: ignore[arg-type]
    app = create_app(config)
    # Bind first so that --port 0 can print the port actually chosen.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound = sock.getsockname()[1]
    click.echo(
        f"Meta sandbox on http://{host}:{bound} (version v25.0, seed {config.seed}, "
        f"profile {config.profile}, time scale {config.time_scale:g}, "
        f"domains: {', '.join(sorted(app.state.sandbox.modules))}); Ctrl-C stops it."
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    server.run(sockets=[sock])


if __name__ == "__main__":  # pragma: no cover
    sandbox()
