"""Run the receiver in a background thread (tests, the demo, benchmarks).

``with running_receiver(settings) as rx:`` serves ``create_app(settings)`` under uvicorn on
127.0.0.1:<free port> with its lifespan (pool, writer) and yields ``rx.base_url``,
``rx.webhook_url`` and ``rx.app``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette

from everreach.messaging.settings import ReceiverSettings
from everreach.serving import serve_in_thread
from webhook_receiver.app import WEBHOOK_PATH, create_app


@dataclasses.dataclass
class RunningReceiver:
    """A receiver served over HTTP on 127.0.0.1."""

    base_url: str
    app: Starlette
    settings: ReceiverSettings
    port: int

    @property
    def webhook_url(self) -> str:
        """The URL Meta would POST webhooks to."""
        return self.base_url + WEBHOOK_PATH


@contextmanager
def running_receiver(settings: ReceiverSettings) -> Iterator[RunningReceiver]:
    """Serve a receiver for the duration of the block (lifespan included)."""
    app = create_app(settings)
    with serve_in_thread(app, name="receiver", lifespan="on", start_timeout=15) as port:
        yield RunningReceiver(f"http://127.0.0.1:{port}", app, settings, port)
