"""A Graph API client for the Marketing and Graph APIs (no Dagster, no Starlette).

``GraphClient`` wraps a pooled ``requests.Session`` with explicit connect/read timeouts and
adds what every Meta integration needs: ``appsecret_proof``, cursor paging that returns each
row once, async insights report runs (restart once, then split), throttling driven by
Meta's usage headers, typed errors (see :mod:`everreach.meta.errors`) and metrics.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import hmac
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter

from everreach.meta.errors import (
    AsyncJobFailedError,
    GraphAPIError,
    GraphConfigurationError,
    ReduceDataError,
    ThrottledError,
    TokenInvalidError,
    TransientGraphError,
    classify,
)
from everreach.meta.settings import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    VERSION_RE,
    GraphSettings,
)
from everreach.meta.throttle import Throttle
from everreach.read_ahead import read_ahead

#: Throttling codes that limit the whole app rather than one ad account or Page (code 17
#: is the ad account's limit when its subcode is 2446079, the user's limit otherwise).
APP_THROTTLE_CODES = frozenset({4, 17, 341})
ACCOUNT_THROTTLE_SUBCODES = frozenset({2446079})
#: Every effective_status, so that listing objects for a split misses none.
ALL_EFFECTIVE_STATUSES = [
    "ACTIVE",
    "PAUSED",
    "DELETED",
    "ARCHIVED",
    "IN_PROCESS",
    "WITH_ISSUES",
    "CAMPAIGN_PAUSED",
    "ADSET_PAUSED",
    "DISAPPROVED",
    "PENDING_REVIEW",
    "PREAPPROVED",
    "PENDING_BILLING_INFO",
]


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed_gc(gen0_threshold: int = 200_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often inside the block (re-entrant, thread-safe).

    Parsing a page of insights allocates ~30 containers per row; with CPython's default
    threshold (700) that triggers a collection every few rows, and the older generations'
    walks over every live object cost more than the parse itself (docs/benchmarks.md has the
    figures). The rows are
    acyclic and freed by reference counting, so memory does not grow; cycles are still
    collected, just later. The previous thresholds come back when the last block exits.
    """
    global _gc_depth, _gc_saved
    with _gc_lock:
        if _gc_depth == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], gen0_threshold), *_gc_saved[1:])
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)
                _gc_saved = None


@dataclass
class ClientMetrics:
    """Counters the client keeps (thread-safe increments)."""

    calls: int = 0
    retries: int = 0
    throttle_waits: int = 0
    throttle_wait_seconds: float = 0.0
    bytes: int = 0
    rows: int = 0
    async_jobs: int = 0
    async_restarts: int = 0
    splits: int = 0
    page_shrinks: int = 0
    #: Answers that were throttling errors (each is waited out and retried).
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: Counters of the client this one is a view of (see ``GraphClient.scoped``): every
    #: increment is added there too, so the client's totals stay whole.
    _parent: ClientMetrics | None = field(default=None, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        """Add ``deltas`` to the named counters atomically."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
        if self._parent is not None:
            self._parent.add(**deltas)

    def as_dict(self) -> dict[str, float]:
        """A snapshot of all counters."""
        with self._lock:
            return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def encode_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Encode parameter values like Meta's SDK: nested values as JSON, bools lower-case."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (dict, list, tuple)):
            out[key] = orjson.dumps(value).decode()
        else:
            out[key] = str(value)
    return out


class GraphClient:
    """Talks to the Graph API (or the local sandbox) with retries, throttling and paging.

    ``base_url`` is the host root (``https://graph.facebook.com`` or the sandbox's
    ``http://127.0.0.1:PORT``); paths passed to methods are relative to the version
    (``"act_123/insights"``). A per-call ``token`` overrides the client's token.
    """

    def __init__(
        self,
        access_token: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        app_secret: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_retries: int = 5,
        max_throttle_retries: int = 12,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        throttle_threshold: float = 75.0,
        throttle_slowdown_max: float = 30.0,
        max_throttle_wait: float = 3600.0,
        page_limit: int = 500,
        poll_interval: float = 2.0,
        poll_interval_max: float = 30.0,
        poll_timeout: float = 3600.0,
        max_concurrent_jobs: int = 4,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        prefetch: bool = True,
        seed: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if not VERSION_RE.match(api_version):
            raise ValueError(f"api_version must look like v25.0, got {api_version!r}")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.access_token = access_token or None
        self._app_secret = app_secret or None
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.max_throttle_retries = max_throttle_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.page_limit = page_limit
        self.prefetch = prefetch
        self.poll_interval = poll_interval
        self.poll_interval_max = poll_interval_max
        self.poll_timeout = poll_timeout
        self.max_concurrent_jobs = max(1, max_concurrent_jobs)
        self._sleep = sleep
        self._clock = clock
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.metrics = ClientMetrics()
        self.throttle = Throttle(
            threshold=throttle_threshold,
            slowdown_max=throttle_slowdown_max,
            max_wait=max_throttle_wait,
            sleep=sleep,
            metrics=self.metrics,
            clock=clock,
        )
        self._proofs: dict[str, str] = {}
        #: The object (ad account, Page, IG account) this client's calls are about; see
        #: :meth:`scoped`.
        self.scope: str | None = None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session

    def __repr__(self) -> str:  # never show the token or the secret
        return f"GraphClient(base_url={self.base_url!r}, api_version={self.api_version!r})"

    def scoped(self, scope: str) -> GraphClient:
        """A view of this client whose calls are about one object (``act_<id>``, a Page or
        an Instagram account id).

        The view shares the session, the throttle and the token; its answers' per-object
        usage (business use case, ad account) pauses only the workers of ``scope``, while
        the app's usage still pauses everyone. Its ``metrics`` count its own calls and add
        to this client's.
        """
        view = copy.copy(self)
        view.scope = scope
        view.metrics = ClientMetrics(_parent=self.metrics)
        return view

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> GraphClient:
        """A client configured by :class:`GraphSettings` from the environment (bad values
        raise :class:`MetaSettingError` naming the variable)."""
        return cls.from_settings(GraphSettings.from_env(environ), **kwargs)

    @classmethod
    def from_settings(cls, settings: GraphSettings, **kwargs: Any) -> GraphClient:
        """A client for the host, version, token and app secret of ``settings``."""
        return cls(
            settings.token,
            base_url=settings.base_url,
            api_version=settings.api_version,
            app_secret=settings.secret,
            **kwargs,
        )

    # ------------------------------------------------------------------ basics
    def url(self, path: str) -> str:
        """The absolute URL of a version-relative Graph path."""
        return f"{self.base_url}/{self.api_version}/{path.lstrip('/')}"

    def appsecret_proof(self, token: str) -> str | None:
        """HMAC-SHA256 of ``token`` keyed by the app secret (None without a secret)."""
        if self._app_secret is None:
            return None
        proof = self._proofs.get(token)
        if proof is None:
            proof = hmac.new(self._app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            self._proofs[token] = proof
        return proof

    def _auth(self, token: str | None) -> dict[str, str]:
        tok = token or self.access_token
        if not tok:
            raise TokenInvalidError(
                "no access token configured",
                code=None,
                action="Set META_ACCESS_TOKEN (or pass a token for this account/Page).",
            )
        auth = {"access_token": tok}
        proof = self.appsecret_proof(tok)
        if proof is not None:
            auth["appsecret_proof"] = proof
        return auth

    def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, token: str | None = None
    ) -> dict:
        """GET a node or edge; returns the parsed JSON body."""
        return self._request("GET", self.url(path), params=encode_params(params), token=token)

    def post(
        self,
        path: str,
        data: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        json_body: bool = False,
        idempotent: bool = True,
        max_retries: int | None = None,
    ) -> dict:
        """POST to a node or edge (form body with JSON-encoded nested values, or JSON).

        With ``idempotent=False`` (e.g. sending a message) a request whose answer was lost
        (read timeout) is not repeated; explicit Meta errors are still retried.
        ``max_retries`` overrides the client's retries of transient errors for this call.
        """
        if json_body:
            return self._request(
                "POST",
                self.url(path),
                json=dict(data or {}),
                token=token,
                idempotent=idempotent,
                max_retries=max_retries,
            )
        return self._request(
            "POST",
            self.url(path),
            data=encode_params(data),
            token=token,
            idempotent=idempotent,
            max_retries=max_retries,
        )

    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        with self._rng_lock:  # "full jitter": spread retries of many workers apart
            return self._rng.uniform(cap / 2, cap)

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        json: dict | None = None,
        token: str | None = None,
        idempotent: bool = True,
        max_retries: int | None = None,
    ) -> dict:
        auth = self._auth(token)
        retry_limit = self.max_retries if max_retries is None else max_retries
        attempt = throttled = 0
        while True:
            self.throttle.wait_turn(self.scope)
            error: GraphAPIError
            try:
                if json is not None:
                    resp = self.session.request(
                        method, url, params=auth, json=json, timeout=self.timeout
                    )
                elif method == "POST":
                    resp = self.session.request(
                        method,
                        url,
                        params=params,
                        data={**(data or {}), **auth},
                        timeout=self.timeout,
                    )
                else:
                    resp = self.session.request(
                        method, url, params={**(params or {}), **auth}, timeout=self.timeout
                    )
            except requests.ConnectionError as exc:
                error = TransientGraphError(f"connection failed: {type(exc).__name__}")
            except requests.Timeout as exc:
                error = TransientGraphError(f"timed out: {type(exc).__name__}")
                if not idempotent and not isinstance(exc, requests.ConnectTimeout):
                    raise error from None  # the call may have been processed: do not repeat
            else:
                content = resp.content
                self.metrics.add(calls=1, bytes=len(content))
                self.throttle.observe(resp.headers, self.scope)
                try:
                    if len(content) > 65536:
                        with relaxed_gc():
                            body = orjson.loads(content)
                    else:
                        body = orjson.loads(content) if content else {}
                except orjson.JSONDecodeError:
                    body = None
                if (
                    200 <= resp.status_code < 300
                    and isinstance(body, (dict, list))
                    and not (isinstance(body, dict) and "error" in body)
                ):
                    return body  # type: ignore[return-value]
                error = classify(resp.status_code, body)
            if not error.retryable:
                raise error
            if isinstance(error, ThrottledError):
                throttled += 1
                self.metrics.add(throttled=1)
                self.throttle.record_throttled(self.scope)
                if throttled > self.max_throttle_retries:
                    raise error
                scope = self.scope
                if (
                    error.code in APP_THROTTLE_CODES
                    and error.subcode not in ACCOUNT_THROTTLE_SUBCODES
                ):
                    scope = None  # the app's limit: everyone waits
                if not self.throttle.pending(scope):
                    # Throttled without a time to regain access: back off ourselves.
                    self.throttle.pause(self._backoff(min(throttled, 6)), scope)
            else:
                attempt += 1
                if attempt > retry_limit:
                    raise error
                self._sleep(self._backoff(attempt - 1))
            self.metrics.add(retries=1)

    # ------------------------------------------------------------------ paging
    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, token: str | None = None
    ) -> Iterator[dict]:
        """Every row of a cursor-paged edge, once, in order (stops when ``next`` is absent).

        A "reduce the amount of data" answer halves ``limit`` and repeats the same page.
        """
        yield from self._paginate(path, params, token=token, first_page_min_limit=1)

    def _paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        *,
        token: str | None,
        first_page_min_limit: int,
    ) -> Iterator[dict]:
        query = encode_params(params)
        url = self.url(path)
        first = True
        seen_cursors: set[str] = set()
        # The next page is fetched (and parsed) in the background while the caller consumes
        # the current one, so network wait and row handling overlap.
        pool = ThreadPoolExecutor(1, "graph-prefetch") if self.prefetch else None
        pending: Future | None = None
        try:
            while True:
                try:
                    if pending is not None:
                        fut, pending = pending, None
                        body = fut.result()
                    else:
                        body = self._request("GET", url, params=query, token=token)
                except ReduceDataError:
                    limit = int(query.get("limit", 25))
                    floor = first_page_min_limit if first else 1
                    if limit // 2 < max(floor, 1):
                        raise
                    query = {**query, "limit": str(limit // 2)}  # same cursor, smaller page
                    self.metrics.add(page_shrinks=1)
                    continue
                first = False
                data = body.get("data", []) if isinstance(body, dict) else []
                self.metrics.add(rows=len(data))
                nxt = (body.get("paging") or {}).get("next") if isinstance(body, dict) else None
                if nxt:
                    parts = urlsplit(nxt)
                    # Follow the cursor on our own host with our own token (never send the
                    # token to a host named in a response).
                    nquery = {
                        k: v
                        for k, v in parse_qsl(parts.query, keep_blank_values=True)
                        if k not in ("access_token", "appsecret_proof")
                    }
                    if "limit" in query and "limit" in nquery:
                        nquery["limit"] = query["limit"]  # keep a shrunken limit
                    cursor = nquery.get("after") or nxt
                    if cursor in seen_cursors:
                        raise GraphAPIError(f"paging loop: cursor {cursor!r} returned twice")
                    seen_cursors.add(cursor)
                    url, query = f"{self.base_url}{parts.path}", nquery
                    if pool is not None:
                        pending = pool.submit(self._request, "GET", url, params=query, token=token)
                yield from data
                if not nxt:
                    return
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ insights
    def insights(
        self,
        object_id: str,
        params: Mapping[str, Any],
        *,
        token: str | None = None,
        async_run: bool = True,
    ) -> Iterator[dict]:
        """Insights rows of an ad account/campaign/adset/ad, each row once.

        ``async_run=True`` starts a report run, polls it until "Job Completed" and pages
        the result; a failed run is restarted once, then split (by campaign, ad set, ad,
        then time range) and the parts run concurrently. The synchronous path shrinks the
        page and splits the same way when Meta asks for less data.
        """
        yield from self._insights(object_id, dict(params), token, async_run, {})

    def insights_many(
        self,
        object_ids: Iterable[str],
        params: Mapping[str, Any],
        *,
        token: str | None = None,
        async_run: bool = True,
        batch_size: int = 1000,
    ) -> Iterator[tuple[str, dict]]:
        """``insights`` for several objects with up to ``max_concurrent_jobs`` in flight.

        Yields ``(object_id, row)`` as rows arrive (streamed, never all held in memory);
        rows of one object keep their order, rows of different objects interleave.
        """

        def source(oid: str) -> Callable[[], Iterator[tuple[str, dict]]]:
            return lambda: (
                (oid, row) for row in self._insights(oid, dict(params), token, async_run, {})
            )

        yield from read_ahead(
            [source(oid) for oid in object_ids],
            workers=self.max_concurrent_jobs,
            batch=batch_size,
            depth=2 * self.max_concurrent_jobs,
            name="graph-insights",
        )

    def _insights(
        self, object_id: str, params: dict, token: str | None, async_run: bool, scope: dict
    ) -> Iterator[dict]:
        params.setdefault("limit", self.page_limit)
        yielded = False
        try:
            if async_run:
                report_id = self._run_report(object_id, params, token)
                for row in self._paginate(
                    f"{report_id}/insights",
                    {"limit": params["limit"]},
                    token=token,
                    first_page_min_limit=1,
                ):
                    yielded = True
                    yield row
            else:
                for row in self._paginate(
                    f"{object_id}/insights",
                    params,
                    token=token,
                    first_page_min_limit=min(100, int(params["limit"])),
                ):
                    yielded = True
                    yield row
            return
        except (ReduceDataError, AsyncJobFailedError):
            if yielded:
                raise
            parts = self._split(object_id, params, token, scope)
            if not parts:
                raise
        self.metrics.add(splits=1)
        workers = min(self.max_concurrent_jobs, len(parts))
        with ThreadPoolExecutor(workers, "graph-split") as pool:
            futures = [
                pool.submit(
                    lambda p=p: list(self._insights(object_id, p[0], token, async_run, p[1]))
                )
                for p in parts
            ]
            for fut in futures:
                yield from fut.result()

    def _run_report(self, object_id: str, params: dict, token: str | None) -> str:
        """Start a report run and wait for it; restart once when it fails."""
        last: AsyncJobFailedError | None = None
        for attempt in range(2):
            if attempt:
                self.metrics.add(async_restarts=1)
            report_id = str(
                self.post(f"{object_id}/insights", params, token=token)["report_run_id"]
            )
            self.metrics.add(async_jobs=1)
            try:
                self._wait_report(report_id, token)
                return report_id
            except ReduceDataError:
                raise  # the same request will fail again: split instead of restarting
            except AsyncJobFailedError as exc:
                last = exc
        assert last is not None
        raise last

    def _wait_report(self, report_id: str, token: str | None) -> None:
        deadline = self._clock() + self.poll_timeout
        interval = self.poll_interval
        while True:
            status = self.get(
                report_id,
                {
                    "fields": "id,async_status,async_percent_completion,"
                    "error_code,error_subcode,error_message,"
                    "error_user_msg"
                },
                token=token,
            )
            text = status.get("async_status")
            # Only the text counts: 100 % can show while the job still runs.
            if text == "Job Completed":
                return
            if text in ("Job Failed", "Job Skipped"):
                err = None
                if status.get("error_code") is not None:
                    err = classify(
                        200,
                        {
                            "error": {
                                "code": status.get("error_code"),
                                "error_subcode": status.get("error_subcode"),
                                "message": status.get("error_message") or text,
                                "error_user_msg": status.get("error_user_msg"),
                            }
                        },
                    )
                if isinstance(err, (GraphConfigurationError, ReduceDataError)):
                    raise err
                raise AsyncJobFailedError(
                    f"report run {report_id} ended with {text!r}"
                    + (f": {err.message}" if err is not None else ""),
                    code=err.code if err else None,
                    subcode=err.subcode if err else None,
                )
            if self._clock() > deadline:
                raise AsyncJobFailedError(
                    f"report run {report_id} still {text!r} after {self.poll_timeout:.0f} s"
                )
            self._sleep(interval)
            interval = min(self.poll_interval_max, interval * 1.5)

    # ------------------------------------------------------------------ splitting
    def _split(
        self, object_id: str, params: dict, token: str | None, scope: dict
    ) -> list[tuple[dict, dict]]:
        """Narrower requests whose rows together equal ``params``' rows (or [])."""
        level = str(params.get("level") or "account")
        on_account = object_id.startswith("act_")
        if on_account and level in ("campaign", "adset", "ad") and "campaign" not in scope:
            ids = self._child_ids(f"{object_id}/campaigns", token)
            return [
                (_with_filter(params, "campaign.id", cid), {**scope, "campaign": cid})
                for cid in ids
            ]
        if on_account and level in ("adset", "ad") and "adset" not in scope:
            ids = self._child_ids(f"{scope['campaign']}/adsets", token)
            return [(_with_filter(params, "adset.id", sid), {**scope, "adset": sid}) for sid in ids]
        if on_account and level == "ad" and "ad" not in scope:
            ids = self._child_ids(f"{scope['adset']}/ads", token)
            return [(_with_filter(params, "ad.id", aid), {**scope, "ad": aid}) for aid in ids]
        halves = _halve_time_range(params)
        return [(p, {**scope, "time": True}) for p in halves]

    def _child_ids(self, path: str, token: str | None) -> list[str]:
        return [
            row["id"]
            for row in self.paginate(
                path,
                {"fields": "id", "effective_status": ALL_EFFECTIVE_STATUSES, "limit": 500},
                token=token,
            )
        ]


def _with_filter(params: dict, field_name: str, value: str) -> dict:
    filtering = params.get("filtering") or []
    if isinstance(filtering, str):
        filtering = orjson.loads(filtering)
    new = dict(params)
    new["filtering"] = [*filtering, {"field": field_name, "operator": "IN", "value": [value]}]
    return new


def _halve_time_range(params: dict) -> list[dict]:
    """Two requests over the halves of ``time_range`` (only for daily rows)."""
    if str(params.get("time_increment", "")) != "1":
        return []
    tr = params.get("time_range")
    if isinstance(tr, str):
        tr = orjson.loads(tr)
    if not isinstance(tr, dict):
        return []
    since, until = date.fromisoformat(tr["since"]), date.fromisoformat(tr["until"])
    if since >= until:
        return []
    mid = since + timedelta(days=(until - since).days // 2)
    first = {**params, "time_range": {"since": since.isoformat(), "until": mid.isoformat()}}
    second = {
        **params,
        "time_range": {"since": (mid + timedelta(days=1)).isoformat(), "until": until.isoformat()},
    }
    return [first, second]
