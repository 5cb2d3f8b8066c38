"""Run a sandbox in a background thread for tests and benchmarks.

``with running_sandbox(seed=3, days=10) as sb:`` starts uvicorn on 127.0.0.1 on a free
port and yields a :class:`RunningSandbox` with ``base_url`` (what ``GraphClient`` takes as
``base_url``; the API version goes after it), ``sandbox`` (the live :class:`Sandbox`, so a
test can move its clock, change fault knobs or read ``stats``/``received``) and ``config``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from everreach.sandbox.core import Sandbox, SandboxConfig, create_app
from everreach.serving import serve_in_thread


@dataclasses.dataclass
class RunningSandbox:
    """A sandbox served over HTTP on 127.0.0.1."""

    base_url: str
    sandbox: Sandbox
    config: SandboxConfig
    port: int

    def url(self, path: str, version: str = "v25.0") -> str:
        """The full URL of a Graph path, e.g. ``url("act_1/insights")``."""
        return f"{self.base_url}/{version}/{path.lstrip('/')}"


def build_config(config: SandboxConfig | None = None, **config_kwargs: Any) -> SandboxConfig:
    """``config`` with ``config_kwargs`` applied (unknown names raise ``TypeError``)."""
    base = config or SandboxConfig()
    return dataclasses.replace(base, **config_kwargs) if config_kwargs else base


@contextmanager
def running_sandbox(
    config: SandboxConfig | None = None, **config_kwargs: Any
) -> Iterator[RunningSandbox]:
    """Serve a fresh sandbox on 127.0.0.1:<free port> for the duration of the block."""
    cfg = build_config(config, **config_kwargs)
    sandbox = Sandbox(cfg)
    app = create_app(sandbox=sandbox)
    # idle keep-alive client connections need no grace period on the way out
    with serve_in_thread(
        app, name="sandbox", lifespan="off", start_timeout=10, force_exit=True
    ) as port:
        yield RunningSandbox(f"http://127.0.0.1:{port}", sandbox, cfg, port)
