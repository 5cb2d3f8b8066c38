"""The receiver's ASGI app: Meta's webhook endpoint, the send endpoints, CAPI intake.

``create_app(settings)`` builds it; the lifespan opens ``app.state.pool`` (an
``AsyncConnectionPool``), the group-commit writer, and the send service with its Graph API
client (``app.state.sender``).

``POST /api/webhooks/meta`` does, in order: size limit (413), signature over the raw
bytes (401 missing / 403 wrong), the one walk of the body into typed events
(:mod:`everreach.messaging`), then hands it to the writer, which commits the raw row and
its application together (see :mod:`webhook_receiver.rawlog`), and answers 200 — or 503
when the database cannot take it, so Meta retries.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from everreach.messaging.send import SendService
from everreach.messaging.settings import ReceiverSettings
from everreach.meta import GraphClient
from everreach.settings import secret_value
from webhook_receiver import conversions, send
from webhook_receiver.rawlog import (
    APPLY_SESSION_OPTIONS,
    EventWriter,
    RawEvent,
    WriterUnavailable,
    kept_headers,
)
from webhook_receiver.signature import signature_matches

log = logging.getLogger("webhook_receiver")

WEBHOOK_PATH = "/api/webhooks/meta"
#: Sends in flight per process: each waits on Meta in a worker thread.
SEND_THREADS = 16
#: The cyclic collector's first-generation threshold while the receiver serves (CPython's
#: default is 700). A request allocates a few hundred containers (the decoded body, its
#: events, the batch rows), nearly all acyclic and freed by reference counting when its
#: batch commits; with the default, a collection ran every couple of requests and walked
#: the bodies still waiting on their batch, promoting them to the older generations whose
#: walks cost more. Cycles are still collected, just later (see ``relaxed_gc`` in
#: ``everreach.meta.client`` for the same choice when parsing insights).
GC_GEN0_THRESHOLD = 50_000


class BodyTooLarge(Exception):
    """The request body exceeds the configured limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (early) anything above ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def verify_subscription(request: Request) -> Response:
    """Meta's verification handshake: echo ``hub.challenge`` when the token matches."""
    settings: ReceiverSettings = request.app.state.settings
    params = request.query_params
    token = params.get("hub.verify_token") or ""
    expected = secret_value(settings.verify_token) or ""
    # An empty token never matches, even when the setting is empty too.
    if (
        params.get("hub.mode") == "subscribe"
        and token
        and expected
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        log.info("webhook subscription verified")
        return PlainTextResponse(params.get("hub.challenge", ""))
    log.warning("webhook verification refused")
    return PlainTextResponse("forbidden", status_code=403)


async def receive_webhook(request: Request) -> Response:
    """Verify, durably store and apply one webhook POST."""
    settings: ReceiverSettings = request.app.state.settings
    started = time.perf_counter()
    body: bytes | None = None
    try:
        # One deadline for the whole request, as Meta has (it gives up after 20 s): a
        # client trickling its body (408) and a batch that cannot commit (503) both end
        # within `request_timeout_seconds`.
        async with asyncio.timeout(settings.request_timeout_seconds):
            body = await read_body(request, settings.max_body_bytes)
            header = request.headers.get("x-hub-signature-256")
            if not header:
                return PlainTextResponse("missing X-Hub-Signature-256", status_code=401)
            if not signature_matches(settings.app_secret.get_secret_value(), body, header):
                log.warning("webhook signature mismatch (%d bytes)", len(body))
                return PlainTextResponse("invalid signature", status_code=403)
            event = RawEvent.from_request(body, kept_headers(request.scope["headers"]))
            writer: EventWriter = request.app.state.writer
            outcome = await writer.submit(event)
    except TimeoutError as exc:
        if body is None:
            return PlainTextResponse("request body too slow", status_code=408)
        return _not_stored(exc)
    except BodyTooLarge:
        return PlainTextResponse("payload too large", status_code=413)
    except ClientDisconnect:
        return PlainTextResponse("client disconnected", status_code=400)
    except (psycopg.OperationalError, PoolTimeout, WriterUnavailable) as exc:
        return _not_stored(exc)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "webhook stored",
            extra={
                "webhook_event_id": outcome.webhook_event_id,
                "object": event.object_type,
                "status": outcome.status,
                "entries": outcome.entries,
                "events": outcome.events,
                "bytes": len(body),
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
    return PlainTextResponse("EVENT_RECEIVED")


def _not_stored(exc: BaseException) -> Response:
    """Not durable: Meta must retry. (A batch that committed after our deadline is stored
    twice then; applying is idempotent, so that costs one raw row.)"""
    log.warning("webhook not stored (%s); answering 503", type(exc).__name__)
    return PlainTextResponse(
        "temporarily unavailable", status_code=503, headers={"Retry-After": "5"}
    )


async def health(request: Request) -> Response:
    """Liveness plus a database round trip (503 when the database is unreachable)."""
    pool: AsyncConnectionPool = request.app.state.pool
    try:
        async with pool.connection(timeout=2.0) as conn:
            await conn.execute("select 1")
    except (psycopg.OperationalError, PoolTimeout):
        return JSONResponse({"ok": False, "database": "unavailable"}, status_code=503)
    writer: EventWriter = request.app.state.writer
    return JSONResponse({"ok": True, "batches": writer.batches, "stored": writer.stored})


def create_app(settings: ReceiverSettings | None = None) -> Starlette:
    """Build the receiver app (``settings`` default: :meth:`ReceiverSettings.from_env`)."""
    settings = settings or ReceiverSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url,
            # Each writer (and the deferred applier) keeps a connection of its own.
            min_size=settings.pool_min_size + settings.writers,
            max_size=settings.pool_max_size + settings.writers + 1,
            open=False,
            timeout=settings.pool_timeout_seconds,
            check=AsyncConnectionPool.check_connection,
            name="webhook-receiver",
            kwargs={"options": APPLY_SESSION_OPTIONS},
            # A restarted database must not leave the pool waiting on dead sockets.
            reconnect_timeout=60.0,
        )
        # Do not fail start-up when the database is briefly down: requests get 503.
        await pool.open(wait=False)
        writer = EventWriter(
            pool,
            max_batch=settings.max_batch,
            writers=settings.writers,
            connection_timeout=settings.pool_timeout_seconds,
            apply_mode=settings.apply_mode,
        )
        writer.start()
        # A send is not repeated when Meta's answer is lost (idempotent=False in the
        # service); explicit transient errors are retried briefly, the caller is waiting.
        graph = GraphClient(
            settings.graph.token,
            base_url=settings.graph.base_url,
            api_version=settings.graph.api_version,
            app_secret=settings.graph.secret or settings.app_secret.get_secret_value(),
            read_timeout=settings.send_timeout_seconds,
            max_retries=2,
            backoff_base=0.25,
            backoff_max=2.0,
            max_throttle_retries=1,
            pool_size=SEND_THREADS,
        )
        executor = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="meta-send")
        # Everything loaded so far lives as long as the process: keep it out of the cyclic
        # collector's way, so collections only walk what requests allocate.
        gc.collect()
        gc.freeze()
        gc_thresholds = gc.get_threshold()
        gc.set_threshold(max(gc_thresholds[0], GC_GEN0_THRESHOLD), *gc_thresholds[1:])
        app.state.pool = pool
        app.state.writer = writer
        app.state.sender = SendService(pool, graph, executor)
        try:
            yield
        finally:
            await writer.stop()
            executor.shutdown(wait=False, cancel_futures=True)
            graph.session.close()
            await pool.close()
            gc.set_threshold(*gc_thresholds)

    routes = [
        Route(WEBHOOK_PATH, verify_subscription, methods=["GET"]),
        Route(WEBHOOK_PATH, receive_webhook, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
        *send.routes(),
        *conversions.routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    return app
