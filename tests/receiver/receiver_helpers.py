"""Helpers for the receiver tests: secrets, the Rig (receiver + sandbox + db), settings."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

import httpx
import jwt
import psycopg

from everreach.messaging.settings import ReceiverSettings
from everreach.meta.settings import GraphSettings
from everreach.sandbox import messaging
from everreach.sandbox.messaging import WebhookFactory, serialize, sign
from everreach.sandbox.testing import RunningSandbox
from webhook_receiver.testing import RunningReceiver

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "verify-me"
JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"


@dataclass
class Rig:
    """A receiver + sandbox + database, and helpers to talk to them."""

    receiver: RunningReceiver
    sandbox: RunningSandbox
    db: psycopg.Connection
    client: httpx.Client
    factory: WebhookFactory

    @property
    def state(self) -> messaging.MessagingState:
        """The sandbox's messaging state (ids of page, IG account, phone number, contacts)."""
        return self.sandbox.sandbox.domains["messaging"]

    def post_raw(self, raw: bytes, signature: str | None = "auto") -> httpx.Response:
        """POST raw bytes to the webhook endpoint, signed unless told otherwise."""
        headers = {"content-type": "application/json"}
        if signature == "auto":
            headers["x-hub-signature-256"] = sign(APP_SECRET, raw)
        elif signature is not None:
            headers["x-hub-signature-256"] = signature
        return self.client.post(self.receiver.webhook_url, content=raw, headers=headers)

    def post(self, body: dict) -> httpx.Response:
        """Serialize like Meta, sign, POST; asserts 200."""
        response = self.post_raw(serialize(body))
        assert response.status_code == 200, response.text
        return response

    def token(self, sub: str | None = "agent-1", ttl: int = 300, **claims: object) -> str:
        """A valid JWT for the send endpoints: by default a messaging agent's (an app user
        whose `app_metadata.messaging_agent` is true); ``claims`` replace or add claims."""
        body: dict[str, object] = {
            "sub": sub,
            "exp": int(time.time()) + ttl,
            "role": "authenticated",
            "app_metadata": {"messaging_agent": True},
            **claims,
        }
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None}, JWT_SECRET, algorithm="HS256"
        )

    def configure_accounts(self) -> None:
        """The sandbox's Page, Instagram account (linked to the Page, as Meta requires for
        Instagram Messaging) and WhatsApp number as `meta_platform_config` rows."""
        state = self.state
        self.db.execute(
            "insert into meta_platform_config (platform, external_id, parent_external_id) "
            "values ('facebook_page', %s, null), ('instagram_account', %s, %s), "
            "('whatsapp_phone_number', %s, %s)",
            (
                state.page_id,
                state.ig_account_id,
                state.page_id,
                state.phone_number_id,
                state.waba_id,
            ),
        )

    def one(self, sql: str, *params: object) -> tuple:
        """The single row of a query."""
        row = self.db.execute(sql, params).fetchone()
        assert row is not None, sql
        return row

    def scalar(self, sql: str, *params: object) -> object:
        """The first column of the single row of a query."""
        return self.one(sql, *params)[0]


def receiver_settings(
    database_url: str, graph_base_url: str = "http://127.0.0.1:9", **overrides: object
) -> ReceiverSettings:
    """Test settings: known secrets, small pool, the sandbox as Graph API."""
    values: dict[str, object] = {
        "app_secret": APP_SECRET,
        "database_url": database_url,
        "verify_token": VERIFY_TOKEN,
        "jwt_secret": JWT_SECRET,
        "graph": GraphSettings(
            base_url=graph_base_url, access_token="sandbox-token", app_secret=APP_SECRET
        ),
        "pool_min_size": 1,
        "pool_max_size": 4,
        "request_timeout_seconds": 10.0,
    }
    values.update(overrides)
    return ReceiverSettings(**values)  # type: ignore[arg-type]


class PgProxy:
    """A TCP proxy in front of Postgres that a test can cut and restore.

    Cutting closes the listener and every open connection — to the receiver it looks like
    the database server stopped — without touching the shared server itself.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._lock = threading.Lock()
        self._conns: list = []
        self._listener = None
        self.restore()

    def restore(self) -> None:
        """(Re)open the listener on the same port."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown wakes the thread blocked in accept() (close alone does not, on Linux)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                host, port = self.target
                if host.startswith("/"):  # the embedded server listens on a Unix socket
                    upstream = socket.socket(socket.AF_UNIX)
                    upstream.connect(f"{host}/.s.PGSQL.{port}")
                else:
                    upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def proxied_url(database_url: str, proxy_port: int) -> tuple[str, tuple[str, int]]:
    """``database_url`` rewritten to go through 127.0.0.1:proxy_port; and the real target."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(database_url)
    target = (str(parts.get("host") or "/tmp"), int(parts.get("port") or 5432))
    parts.update(host="127.0.0.1", port=str(proxy_port))
    return make_conninfo(**parts), target
