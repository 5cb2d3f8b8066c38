"""Serving an ASGI app on 127.0.0.1 in a background thread (tests, the demo, the sandbox)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve_in_thread(
    app: Any,
    *,
    name: str,
    lifespan: str = "on",
    start_timeout: float = 15.0,
    force_exit: bool = False,
) -> Iterator[int]:
    """Serve `app` on 127.0.0.1:<free port> for the block; yields the port.

    The socket is bound before the server starts, so the port is known and never raced for.
    `force_exit` skips the grace period for idle keep-alive connections on the way out.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, lifespan=lifespan, log_level="warning", access_log=False, timeout_keep_alive=30
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"{name}-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the {name} server did not start")
        time.sleep(0.005)
    try:
        yield port
    finally:
        server.should_exit = True
        server.force_exit = force_exit
        thread.join(timeout=start_timeout)
        sock.close()
