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
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> None:
    """Point the SDK at the sandbox, scale sleeps, and run the connector with the rest."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--graph-url", required=True, help="the sandbox, e.g. http://127.0.0.1:8765"
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="the sandbox's time scale")
    parser.add_argument("connector_args", nargs=argparse.REMAINDER, help="-- then the connector's")
    args = parser.parse_args(argv)
    if not args.time_scale > 0:
        parser.error("--time-scale must be a positive number")
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


if __name__ == "__main__":
    main()
