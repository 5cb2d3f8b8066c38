"""Run the receiver in a background thread (tests, the demo, benchmarks).

``with running_receiver(settings) as rx:`` serves ``create_app(settings)`` under uvicorn on
127.0.0.1:<free port> with its lifespan (pool, writer) and yields ``rx.base_url``,
``rx.webhook_url`` and ``rx.app``.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from webhook_receiver.app import WEBHOOK_PATH, create_app
from webhook_receiver.settings import ReceiverSettings


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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, lifespan="on", log_level="warning", access_log=False, timeout_keep_alive=30
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"receiver-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the receiver did not start")
        time.sleep(0.005)
    try:
        yield RunningReceiver(f"http://127.0.0.1:{port}", app, settings, port)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
