"""Bad database settings fail with one clear message naming the setting."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from everreach.settings import SettingError
from everreach.warehouse import database


@pytest.mark.parametrize("url", ["notaurl", "mysql://u@h/db", "postgresql://u@h:port/db"])
def test_malformed_database_url_names_the_setting(url: str):
    with pytest.raises(SettingError, match="DATABASE_URL"):
        database.resolve_database_url({"DATABASE_URL": url})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error_without_password():
    url = f"postgresql://postgres:s3cret@127.0.0.1:{_closed_port()}/postgres"
    with pytest.raises(database.WarehouseConnectionError) as info:
        database.connect(url)
    message = str(info.value)
    assert "DATABASE_URL" in message and "s3cret" not in message


def test_cli_prints_one_line_not_a_traceback():
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{_closed_port()}/x", "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "everreach.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "cannot connect to the warehouse" in proc.stderr

    env["DATABASE_URL"] = "http://nope"
    proc = subprocess.run(
        [sys.executable, "-m", "everreach.cli", "db", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "setting DATABASE_URL" in proc.stderr
    assert "Traceback" not in proc.stderr
