"""`everreach receiver` under uvicorn, and its refusal to start without a secret."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from receiver_helpers import APP_SECRET

from everreach.sandbox.messaging import sign
from webhook_receiver.cli import receiver


def test_receiver_command_refuses_to_start_without_app_secret(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "META_APP_SECRET": ""}
    result = CliRunner().invoke(receiver, ["--port", "0"], env=env)
    assert result.exit_code != 0 and "META_APP_SECRET" in result.output


@pytest.mark.slow
def test_receiver_command_serves_signed_webhooks(db, database_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "META_APP_SECRET": APP_SECRET,
        "META_WEBHOOK_VERIFY_TOKEN": "tok",
    }
    everreach = Path(sys.executable).with_name("everreach")
    proc = subprocess.Popen(
        [str(everreach), "receiver", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "did not start"
            time.sleep(0.1)
        raw = b'{"object":"page","entry":[]}'
        ok = httpx.post(
            base + "/api/webhooks/meta",
            content=raw,
            headers={"x-hub-signature-256": sign(APP_SECRET, raw)},
        )
        assert ok.status_code == 200
        assert (
            httpx.get(
                base + "/api/webhooks/meta",
                params={"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "42"},
            ).text
            == "42"
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert db.execute("select count(*) from meta_webhook_event").fetchone()[0] == 1
    assert '"msg": "webhook stored"' in err  # JSON lines
