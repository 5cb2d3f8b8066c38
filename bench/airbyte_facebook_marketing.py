"""Run Airbyte's ``source-facebook-marketing`` against the local Meta sandbox.

The connector is not a dependency of this project: install it in a virtualenv of its own
(``python3.11 -m venv /tmp/airbyte-venv && /tmp/airbyte-venv/bin/pip install
airbyte-source-facebook-marketing``) and run this script with *that* interpreter. It points
the ``facebook_business`` SDK's Graph base URL (``FacebookSession.GRAPH``) at the sandbox and
then hands the remaining arguments to the connector's own entry point, unchanged::

    /tmp/airbyte-venv/bin/python bench/airbyte_facebook_marketing.py \\
        --graph-url http://127.0.0.1:8765 [--time-scale 0.01] -- read --config c.json --catalog k.json

``--time-scale`` multiplies every ``time.sleep`` of the connector (job polling, rate-limit
pauses, retry back-off) by the same factor the sandbox runs at (``everreach sandbox
--time-scale``), so a scaled benchmark scales every contender alike. Nothing of the
connector is changed otherwise.

``--write-catalog PATH --streams campaigns,ads_insights`` runs the connector's ``discover``
with the given ``--config`` and writes a configured catalog of those streams (full refresh,
overwrite) for ``read --catalog PATH``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def main(argv: list[str] | None = None) -> None:
    """Point the SDK at the sandbox, scale sleeps, and run the connector with the rest."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--graph-url", required=True, help="the sandbox, e.g. http://127.0.0.1:8765"
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="the sandbox's time scale")
    parser.add_argument("--write-catalog", metavar="PATH", help="write a configured catalog")
    parser.add_argument("--streams", default="", help="streams of --write-catalog (comma list)")
    parser.add_argument("--config", help="the connector config, for --write-catalog")
    parser.add_argument("connector_args", nargs=argparse.REMAINDER, help="-- then the connector's")
    args = parser.parse_args(argv)
    if not args.time_scale > 0:
        parser.error("--time-scale must be a positive number")
    if args.write_catalog:
        if not args.config or not args.streams:
            parser.error("--write-catalog needs --config and --streams")
        write_catalog(args.graph_url, args.config, args.streams.split(","), args.write_catalog)
        return
    rest = args.connector_args[1:] if args.connector_args[:1] == ["--"] else args.connector_args
    if args.time_scale != 1.0:
        real_sleep = time.sleep
        scale = args.time_scale

        def scaled_sleep(seconds: float) -> None:
            real_sleep(max(0.0, seconds) * scale)

        # Before the connector is imported, so that `from time import sleep` gets this one.
        time.sleep = scaled_sleep

    from facebook_business.session import FacebookSession

    FacebookSession.GRAPH = args.graph_url.rstrip("/")
    from source_facebook_marketing.run import run

    sys.argv = [sys.argv[0], *rest]
    run()


def write_catalog(graph_url: str, config: str, streams: list[str], path: str) -> None:
    """Discover the connector's streams and keep ``streams`` in a configured catalog."""
    cmd = [sys.executable, __file__, "--graph-url", graph_url, "--", "discover", "--config", config]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    catalog = None
    for line in out.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("type") == "CATALOG":
            catalog = message["catalog"]
    if catalog is None:
        raise SystemExit(f"discover gave no catalog:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    found = {s["name"]: s for s in catalog["streams"]}
    missing = [name for name in streams if name not in found]
    if missing:
        raise SystemExit(f"no such streams: {missing}; the connector has {sorted(found)}")
    configured = {
        "streams": [
            {
                "stream": found[name],
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite",
            }
            for name in streams
        ]
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(configured, fh)


if __name__ == "__main__":
    main()
