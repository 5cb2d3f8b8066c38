"""The local Meta Graph API sandbox: server, node registry, paging, errors, rate limits, faults.

The sandbox is a real Starlette app that answers ``/{version}/{node_id}`` and
``/{version}/{node_id}/{edge}`` (GET and POST) the way graph.facebook.com does for the
subset of the Graph API this project uses. The core knows nothing about ads, media or
messages: it authenticates the call, applies fault injection and throttling, then hands
the request to the *domain module* that registered the node.

Plug-in contract for domain modules (``everreach.sandbox.<name>``, loaded in the order of
:data:`DOMAIN_MODULES`):

``register(sandbox: Sandbox) -> None``
    Create the domain's seeded data (use ``sandbox.rng("<domain>")`` and
    ``sandbox.config``, including ``sandbox.config.extra`` for domain knobs) and call
    ``sandbox.register_node(node_id, kind, module)`` for every node id it answers.
    It may keep its state on the sandbox via ``sandbox.domains["<domain>"] = state``.

``handle(request, sandbox, node_id, kind, edge) -> Response`` (sync or ``async``)
    Answer one Graph call. ``edge`` is ``None`` for the node itself. The merged request
    parameters (query string + form or JSON body; nested JSON values are left as the
    strings the client sent) are in ``request.state.params``; the caller's token in
    ``request.state.token``. Use :meth:`Sandbox.page` for list edges,
    :meth:`Sandbox.error_response` for errors, :meth:`Sandbox.json_response` for bodies.
    Rate-limit headers are added by the core afterwards.

``usage_scope(sandbox, node_id, kind, edge, method) -> UsageScope | None`` (optional)
    Whose rate-limit budget a call on one of the module's nodes uses (the realistic
    profile meters usage per ad account); without it calls share the business's bucket.
    The handler finds the scope in ``request.state.usage_scope`` and may charge extra
    work to it with :meth:`Sandbox.charge` (an async run's duration and rows).

``extra_routes(sandbox) -> list[starlette.routing.Route]`` (optional)
    Control routes under ``/_sandbox/<domain>/...`` (e.g. "emit a webhook burst").
    They bypass authentication and faults.

Nodes a domain creates at run time (e.g. an async report run) are registered the same
way while the server runs. ``sandbox.now()`` is the sandbox clock; tests move it with
:meth:`Sandbox.set_now` / :meth:`Sandbox.advance`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib
import inspect
import random
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from everreach.sandbox.profile import AsyncJobModel, LatencyModel, Timing, UsageLimits, resolve
from everreach.sandbox.usage import THROTTLE_ERRORS, Throttle, UsageMeter, UsageScope

#: Domain modules the core tries to load, in this order.
DOMAIN_MODULES: tuple[str, ...] = ("ads", "organic", "capi", "messaging")

#: Node kinds whose calls count against the ads (Marketing API) limits and headers.
ADS_KINDS = frozenset({"ad_account", "campaign", "adset", "ad", "ad_report_run"})

#: The API version the sandbox reports as current.
CURRENT_VERSION = "v25.0"

_VERSION_RE = re.compile(r"^v(\d+)\.(\d+)$")

# Error bodies the fault injector produces, per Meta code: (message, type, http status,
# is_transient, subcode). Messages follow the wording of Meta's error reference.
FAULT_ERRORS: dict[int, tuple[str, str, int, bool, int | None]] = {
    1: ("An unknown error occurred", "OAuthException", 500, True, 99),
    2: (
        "An unexpected error has occurred. Please retry your request later.",
        "OAuthException",
        503,
        True,
        None,
    ),
    4: ("(#4) Application request limit reached", "OAuthException", 400, True, None),
    17: ("(#17) User request limit reached", "OAuthException", 400, True, 2446079),
    32: ("(#32) Page request limit reached", "OAuthException", 400, True, None),
    341: ("(#341) Application limit reached", "OAuthException", 400, True, None),
    613: (
        "(#613) Calls to this api have exceeded the rate limit.",
        "OAuthException",
        400,
        True,
        1487742,
    ),
    80000: (THROTTLE_ERRORS[80000][0], "OAuthException", 400, True, 2446079),
    80001: (THROTTLE_ERRORS[80001][0], "OAuthException", 400, True, 2446079),
    80004: (THROTTLE_ERRORS[80004][0], "OAuthException", 400, True, 2446079),
}


@dataclass
class SandboxConfig:
    """Everything that shapes one sandbox: seed, sizes, credentials and faults.

    Size knobs are for the ads domain; other domains read their own knobs from ``extra``
    (e.g. ``extra["ig_media_count"]``). Fault knobs apply to every Graph call.
    """

    seed: int = 7
    # --- ads size: accounts × campaigns × adsets × ads × days -------------------------
    accounts: int = 3
    campaigns_per_account: int = 2
    adsets_per_campaign: int = 2
    ads_per_adset: int = 2
    days: int = 60
    extra: dict[str, Any] = field(default_factory=dict)
    # --- credentials -------------------------------------------------------------------
    app_id: str = "100000000000001"
    app_secret: str | None = None  # signs webhooks; checks appsecret_proof when present
    require_appsecret_proof: bool = False
    valid_tokens: set[str] | None = None  # None: any non-empty token not listed below
    expired_tokens: set[str] = field(default_factory=set)
    token_expires_at: datetime | None = None  # every token expires at this sandbox time
    token_permissions: dict[str, set[str]] = field(default_factory=dict)  # token → scopes
    min_version: str = "v21.0"  # older versions answer error 2635 (deprecated)
    # --- faults ---------------------------------------------------------------------
    error_rate: dict[int, float] = field(default_factory=dict)  # code → probability
    throttle_burst_every: int = 0  # after this many calls, a burst of throttled calls…
    throttle_burst_length: int = 0  # …this long (0 = no bursts)
    throttle_burst_code: int = 80000
    throttle_regain_minutes: int = 1  # estimated_time_to_regain_access during a burst
    latency_ms: float = 0.0
    reduce_data_threshold: int | None = None  # rows per insights request before code-1
    reduce_data_max_limit: int | None = None  # page `limit` above this → reduce-data error
    async_fail_once: bool = False  # every distinct async report job fails on its first run
    async_polls_to_complete: int = 2
    # --- rate-limit accounting --------------------------------------------------------
    rate_limit_calls: int = 100_000  # calls per window that reach 100 % usage
    rate_limit_window_seconds: float = 3600.0
    business_id: str = "200000000000001"
    now: datetime | None = None  # fixed start of the sandbox clock (default: real now)
    max_limit: int = 5000  # largest page size any list edge serves
    # --- timing profile (read when the sandbox starts; see everreach.sandbox.profile) ---
    profile: str = "default"  # "realistic": Meta-like latency, job durations, rate limits
    time_scale: float = 1.0  # multiplies every duration: latency, jobs, usage windows
    latency: LatencyModel | None = None  # None: the profile's (no latency by default)
    async_jobs: AsyncJobModel | None = None  # None: the profile's (poll-counted by default)
    usage_limits: UsageLimits | None = None  # None: the profile's (no metering by default)

    def __post_init__(self) -> None:
        self.timing()  # a bad profile name or time scale fails here, naming the knob

    def timing(self) -> Timing:
        """The latency, async-job and rate-limit models this config resolves to."""
        return resolve(
            self.profile,
            time_scale=self.time_scale,
            latency=self.latency,
            async_jobs=self.async_jobs,
            usage_limits=self.usage_limits,
        )


class Sandbox:
    """The live state of one sandbox: config, clock, RNGs, node registry, fault state."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._lock = threading.Lock()
        self._nodes: dict[str, tuple[str, ModuleType]] = {}
        self.domains: dict[str, Any] = {}
        self.modules: dict[str, ModuleType] = {}
        if self.config.now is not None:
            start = self.config.now
            self._clock_offset = start - datetime.now(UTC)
        else:
            self._clock_offset = timedelta(0)
        self._fault_rng = self.rng("faults")
        #: latency, job-duration and rate-limit models (fixed when the sandbox starts)
        self.timing = self.config.timing()
        self._latency_rng = self.rng("latency")
        self.job_rng = self.rng("async-jobs")
        self._t0 = time.monotonic()
        self._advanced = 0.0  # sandbox seconds added by advance()
        #: the realistic profile's rate-limit meters (None in the default profile)
        self.usage: UsageMeter | None = (
            UsageMeter(self.timing.usage, self.config.business_id)
            if self.timing.usage is not None
            else None
        )
        self._calls = 0
        self._burst_remaining = 0
        self._since_burst = 0
        self._call_times: deque[float] = deque()
        #: counters tests can read: calls, errors by code, throttled calls, etc.
        self.stats: Counter[str] = Counter()
        #: the last requests received: dicts with method, path, params (bounded).
        self.received: deque[dict[str, Any]] = deque(maxlen=10_000)

    # ----------------------------------------------------------------- clock and RNG
    def now(self) -> datetime:
        """The sandbox clock (UTC, aware); real time shifted by what tests set."""
        return datetime.now(UTC) + self._clock_offset

    def set_now(self, when: datetime) -> None:
        """Move the sandbox clock so that ``now()`` returns ``when`` (then keeps running)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._clock_offset = when - datetime.now(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Advance the clock by ``delta`` or ``timedelta(**kwargs)``; returns the new now.

        The timing clock (async run progress, usage windows) moves by the same amount.
        """
        step = delta if delta is not None else timedelta(**kwargs)
        self._clock_offset += step
        self._advanced += step.total_seconds()
        return self.now()

    def clock(self) -> float:
        """Sandbox seconds since start on the timing clock: real seconds / ``time_scale``,
        plus what :meth:`advance` added. Async runs and usage windows run on it."""
        return (time.monotonic() - self._t0) / self.timing.time_scale + self._advanced

    def real_seconds(self, sandbox_seconds: float) -> float:
        """How many real seconds ``sandbox_seconds`` take at this sandbox's time scale."""
        return sandbox_seconds * self.timing.time_scale

    def rng(self, domain: str) -> random.Random:
        """A fresh RNG whose stream depends only on the seed and ``domain``."""
        digest = hashlib.sha256(f"{self.config.seed}:{domain}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def domain_seed(self, domain: str) -> int:
        """A 63-bit integer seed for ``domain`` (for numpy generators and hashing)."""
        digest = hashlib.sha256(f"{self.config.seed}:{domain}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    # ----------------------------------------------------------------- registry
    def register_node(self, node_id: str, kind: str, domain_module: ModuleType) -> None:
        """Route Graph calls for ``node_id`` to ``domain_module.handle`` with ``kind``."""
        with self._lock:
            self._nodes[str(node_id)] = (kind, domain_module)

    def lookup(self, node_id: str) -> tuple[str, ModuleType] | None:
        """The (kind, module) registered for ``node_id``, or None."""
        return self._nodes.get(str(node_id))

    def load_domains(self) -> None:
        """Import and register every domain module (see module docstring)."""
        for name in DOMAIN_MODULES:
            module = importlib.import_module(f"everreach.sandbox.{name}")
            self.modules[name] = module
            module.register(self)

    # ----------------------------------------------------------------- responses
    def json_response(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        """A JSON response serialized like Meta's (compact, non-ASCII escaped is not needed)."""
        return Response(
            orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
        )

    @staticmethod
    def new_fbtrace_id() -> str:
        """A random trace id shaped like Meta's (11 url-safe characters)."""
        return base64.urlsafe_b64encode(secrets.token_bytes(8)).decode()[:11]

    def error_body(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        type: str = "OAuthException",
        is_transient: bool = False,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> dict:
        """Meta's error envelope ``{"error": {...}}`` with a fresh fbtrace_id."""
        err: dict[str, Any] = {"message": message, "type": type, "code": code}
        if subcode is not None:
            err["error_subcode"] = subcode
        err["is_transient"] = is_transient
        if user_title is not None:
            err["error_user_title"] = user_title
        if user_msg is not None:
            err["error_user_msg"] = user_msg
        err["fbtrace_id"] = self.new_fbtrace_id()
        return {"error": err}

    def error_response(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        type: str = "OAuthException",
        status: int = 400,
        is_transient: bool = False,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> Response:
        """A Graph API error response (Meta's body shape and ``www-authenticate`` on 190)."""
        body = self.error_body(
            code,
            message,
            subcode=subcode,
            type=type,
            is_transient=is_transient,
            user_title=user_title,
            user_msg=user_msg,
        )
        self.stats[f"error_{code}"] += 1
        headers = {}
        if type == "OAuthException" and code in (104, 190):
            headers["www-authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{message}"'
        return self.json_response(body, status=status, headers=headers)

    def reduce_data_response(self) -> Response:
        """Meta's answer to a request that asks for too much data (code 1, HTTP 500)."""
        return self.error_response(
            1,
            "Please reduce the amount of data you're asking for, then retry your request",
            subcode=99,
            status=500,
            is_transient=False,
        )

    def unknown_node_response(self, node_id: str, method: str = "get") -> Response:
        """Meta's 100/33 answer for an id that does not exist or is not visible."""
        return self.error_response(
            100,
            f"Unsupported {method.lower()} request. Object with ID '{node_id}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation. "
            "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
            subcode=33,
            type="GraphMethodException",
        )

    # ----------------------------------------------------------------- paging
    @staticmethod
    def encode_cursor(offset: int) -> str:
        """An opaque cursor for a position in a list."""
        return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")

    @staticmethod
    def decode_cursor(cursor: str) -> int | None:
        """The position a cursor names, or None when it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not raw.startswith("o:") or not raw[2:].isdigit():
            return None
        return int(raw[2:])

    def page_window(
        self, request: Request, total: int, *, default_limit: int = 25, max_limit: int | None = None
    ) -> tuple[int, int] | Response:
        """The (start, stop) slice a paged request asks for, or an error response."""
        params = request.state.params
        max_limit = min(max_limit or self.config.max_limit, self.config.max_limit)
        try:
            limit = int(params.get("limit", default_limit))
        except (TypeError, ValueError):
            return self.error_response(
                100, "(#100) Param limit must be a number", type="OAuthException"
            )
        if limit <= 0:
            limit = default_limit
        threshold = self.config.reduce_data_max_limit
        if threshold is not None and limit > threshold:
            return self.reduce_data_response()
        limit = min(limit, max_limit)
        start = 0
        if params.get("after"):
            pos = self.decode_cursor(str(params["after"]))
            if pos is None:
                return self.error_response(
                    100, "(#100) Invalid cursor: after", type="OAuthException"
                )
            start = pos
        elif params.get("before"):
            pos = self.decode_cursor(str(params["before"]))
            if pos is None:
                return self.error_response(
                    100, "(#100) Invalid cursor: before", type="OAuthException"
                )
            start = max(0, pos - limit)
        start = min(start, total)
        return start, min(start + limit, total)

    def page(
        self,
        request: Request,
        rows: Sequence[dict],
        *,
        default_limit: int = 25,
        max_limit: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Response:
        """Meta's cursor paging over ``rows`` (any sequence supporting ``len`` and slices).

        ``extra`` members (e.g. ``summary``) are added to the body after ``paging``.

        A sequence may also offer ``json_slice(start, stop) -> bytes`` (the comma-joined
        JSON of ``rows[start:stop]``, byte-identical to orjson's): then pages are served
        from it without building row objects.

        ``{"data": [...], "paging": {"cursors": {"before", "after"}, "next": url}}``;
        ``next`` is absent on the last page (``after`` stays present, like Meta), and
        ``previous`` is present when the page does not start at the beginning.
        """
        total = len(rows)
        window = self.page_window(request, total, default_limit=default_limit, max_limit=max_limit)
        if isinstance(window, Response):
            return window
        start, stop = window
        json_slice = getattr(rows, "json_slice", None)
        if json_slice is not None:
            # Fast path: the sequence renders rows start:stop as JSON itself (the same bytes
            # orjson.dumps would give), so no dict is built per row.
            content = b'{"data":[' + json_slice(start, stop) + b"]"
            if total:
                paging = self._paging(request, start, stop, total)
                content += b',"paging":' + orjson.dumps(paging)
            if extra:
                content += b"," + orjson.dumps(extra)[1:-1]
            return Response(content + b"}", media_type="application/json")
        data = list(rows[start:stop])
        body = self.paging_body(request, data, start, stop, total)
        if extra:
            body.update(extra)
        return self.json_response(body)

    def paging_body(self, request: Request, data: list, start: int, stop: int, total: int) -> dict:
        """The ``{"data", "paging"}`` body for rows ``start:stop`` of ``total``."""
        body: dict[str, Any] = {"data": data}
        if total == 0:
            return body  # Meta sends an empty data array without paging
        body["paging"] = self._paging(request, start, stop, total)
        return body

    def _paging(self, request: Request, start: int, stop: int, total: int) -> dict:
        paging: dict[str, Any] = {
            "cursors": {"before": self.encode_cursor(start), "after": self.encode_cursor(stop)}
        }
        limit = max(stop - start, 1)
        if start > 0:
            paging["previous"] = self._link(request, before=self.encode_cursor(start), limit=limit)
        if stop < total:
            paging["next"] = self._link(request, after=self.encode_cursor(stop), limit=limit)
        return paging

    def _link(
        self, request: Request, *, limit: int, after: str | None = None, before: str | None = None
    ) -> str:
        # Meta's next/previous links carry every original GET parameter (incl. the token).
        query = [
            (k, v)
            for k, v in parse_qsl(request.url.query, keep_blank_values=True)
            if k not in ("after", "before", "limit")
        ]
        if request.method == "POST":
            query = [
                (k, v if isinstance(v, str) else orjson.dumps(v).decode())
                for k, v in request.state.params.items()
                if k not in ("after", "before", "limit")
            ]
        query.append(("limit", str(limit)))
        if after is not None:
            query.append(("after", after))
        if before is not None:
            query.append(("before", before))
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        return f"{base}?{urlencode(query)}"

    # ----------------------------------------------------------------- params
    @staticmethod
    def json_param(params: dict, name: str, default: Any = None) -> Any:
        """A parameter that Meta accepts JSON-encoded (e.g. ``time_range``, ``filtering``)."""
        value = params.get(name, default)
        if isinstance(value, str):
            stripped = value.strip()
            if stripped[:1] in ("[", "{", '"'):
                return orjson.loads(stripped)
            if name in ("fields", "action_attribution_windows", "breakdowns", "metric"):
                return [v for v in stripped.split(",") if v]
        return value

    @staticmethod
    def list_param(params: dict, name: str, default: list[str] | None = None) -> list[str]:
        """A comma-separated (or JSON array) parameter as a list of strings."""
        value = params.get(name)
        if value is None or value == "":
            return list(default or [])
        if isinstance(value, list):
            return [str(v) for v in value]
        text = str(value).strip()
        if text.startswith("["):
            return [str(v) for v in orjson.loads(text)]
        return [v.strip() for v in text.split(",") if v.strip()]

    # ----------------------------------------------------------------- auth
    def appsecret_proof(self, token: str) -> str | None:
        """The proof Meta expects for ``token`` (HMAC-SHA256 keyed by the app secret)."""
        if not self.config.app_secret:
            return None
        return hmac.new(self.config.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()

    def check_token(self, request: Request) -> Response | None:
        """Validate the caller's token (presence, validity, expiry, appsecret_proof)."""
        params = request.state.params
        token = params.get("access_token")
        auth = request.headers.get("authorization", "")
        if not token and auth.lower().startswith(("bearer ", "oauth ")):
            token = auth.split(" ", 1)[1].strip()
        request.state.token = token
        cfg = self.config
        if not token:
            return self.error_response(
                104, "An access token is required to request this resource.", type="OAuthException"
            )
        if token in cfg.expired_tokens or (
            cfg.token_expires_at is not None and self.now() >= cfg.token_expires_at
        ):
            expired = cfg.token_expires_at or self.now()
            stamp = expired.strftime("%A, %d-%b-%y %H:%M:%S UTC")
            return self.error_response(
                190,
                f"Error validating access token: Session has expired on {stamp}. "
                f"The current time is {self.now().strftime('%A, %d-%b-%y %H:%M:%S UTC')}.",
                subcode=463,
                type="OAuthException",
                status=400,
                user_title="Session expired",
                user_msg="Your session has expired. Please log in again.",
            )
        if cfg.valid_tokens is not None and token not in cfg.valid_tokens:
            return self.error_response(
                190, "Invalid OAuth access token - Cannot parse access token", type="OAuthException"
            )
        proof = params.get("appsecret_proof")
        expected = self.appsecret_proof(token)
        if (
            expected is not None
            and proof is not None
            and not hmac.compare_digest(str(proof), expected)
        ):
            return self.error_response(
                100,
                "Invalid appsecret_proof provided in the API argument",
                type="GraphMethodException",
            )
        if expected is not None and proof is None and cfg.require_appsecret_proof:
            return self.error_response(
                100,
                "API calls from the server require an appsecret_proof argument",
                type="GraphMethodException",
            )
        return None

    def require_permission(self, request: Request, permission: str) -> Response | None:
        """An error when the caller's token is restricted and lacks ``permission``."""
        token = getattr(request.state, "token", None)
        granted = self.config.token_permissions.get(token) if token else None
        if granted is None or permission in granted:
            return None
        return self.error_response(
            200,
            f"(#200) Requires {permission} permission to manage the object",
            type="OAuthException",
            status=403,
        )

    # ----------------------------------------------------------------- faults & usage
    def _usage_pct(self) -> int:
        now = time.monotonic()
        window = self.config.rate_limit_window_seconds
        while self._call_times and self._call_times[0] < now - window:
            self._call_times.popleft()
        return int(100 * len(self._call_times) / max(self.config.rate_limit_calls, 1))

    def _account_tick(self) -> tuple[int, bool]:
        """Count one call; returns (usage %, throttled?) after burst bookkeeping."""
        cfg = self.config
        with self._lock:
            self._calls += 1
            self._call_times.append(time.monotonic())
            throttled = False
            if self._burst_remaining > 0:
                self._burst_remaining -= 1
                throttled = True
            elif cfg.throttle_burst_every and cfg.throttle_burst_length:
                # `every` normal calls, then a burst of `length` throttled ones.
                self._since_burst += 1
                if self._since_burst >= cfg.throttle_burst_every:
                    self._since_burst = 0
                    self._burst_remaining = cfg.throttle_burst_length
            pct = self._usage_pct()
        return (max(pct, 100) if throttled else pct), throttled

    def _pick_fault(self) -> int | None:
        rates = self.config.error_rate
        if not rates:
            return None
        with self._lock:
            roll = self._fault_rng.random()
        acc = 0.0
        for code, rate in sorted(rates.items()):
            acc += rate
            if roll < acc:
                return int(code)
        return None

    def rate_limit_headers(
        self, node_id: str, pct: int, throttled: bool, kind: str | None = None
    ) -> dict[str, str]:
        """Meta's usage headers (JSON strings) for a call on ``node_id`` of ``kind``."""
        ads_call = node_id.startswith("act_") or (kind or "") in ADS_KINDS
        eta = self.config.throttle_regain_minutes if throttled else 0
        cpu = min(pct, 100) if not throttled else 100
        buc_type = "ads_insights" if ads_call else "pages"
        headers = {
            "x-app-usage": orjson.dumps(
                {"call_count": pct, "total_cputime": cpu // 2, "total_time": cpu // 2}
            ).decode(),
            "x-business-use-case-usage": orjson.dumps(
                {
                    self.config.business_id: [
                        {
                            "type": buc_type,
                            "call_count": pct,
                            "total_cputime": cpu // 2,
                            "total_time": cpu // 2,
                            "estimated_time_to_regain_access": eta,
                            "ads_api_access_tier": "standard_access",
                        }
                    ]
                }
            ).decode(),
            "x-fb-trace-id": self.new_fbtrace_id(),
            "x-fb-rev": "1000000001",
            "facebook-api-version": CURRENT_VERSION,
        }
        if ads_call:
            headers["x-ad-account-usage"] = orjson.dumps(
                {
                    "acc_id_util_pct": pct,
                    "reset_time_duration": eta * 60 if throttled else 0,
                    "ads_api_access_tier": "standard_access",
                }
            ).decode()
            headers["x-fb-ads-insights-throttle"] = orjson.dumps(
                {
                    "app_id_util_pct": pct,
                    "acc_id_util_pct": pct,
                    "ads_api_access_tier": "standard_access",
                }
            ).decode()
        return headers

    def version_error(self, version: str) -> Response | None:
        """Error 2635 for a deprecated version, 2500-like for a malformed one."""
        m = _VERSION_RE.match(version)
        if not m:
            return self.error_response(
                2500, f"Unknown path components: /{version}", type="OAuthException"
            )
        floor = _VERSION_RE.match(self.config.min_version)
        assert floor is not None
        if (int(m[1]), int(m[2])) < (int(floor[1]), int(floor[2])):
            return self.error_response(
                2635,
                f"(#2635) You are calling a deprecated version of the Ads API. Please "
                f"update to the latest version: {CURRENT_VERSION}.",
                type="OAuthException",
            )
        return None

    # ----------------------------------------------------------------- timing
    def draw_latency_ms(self) -> float:
        """One call's latency in sandbox milliseconds (before the answer-size term)."""
        model = self.timing.latency
        drawn = 0.0
        if model is not None:
            with self._lock:
                drawn = model.draw(self._latency_rng)
        return drawn + self.config.latency_ms

    def answer_ms(self, drawn_ms: float, body_bytes: int) -> float:
        """The whole latency of an answer of ``body_bytes`` (sandbox milliseconds)."""
        model = self.timing.latency
        return drawn_ms + (model.size_ms(body_bytes) if model is not None else 0.0)

    async def wait_latency(self, started: float, latency_ms: float) -> None:
        """Sleep until ``latency_ms`` (scaled to real time) has passed since ``started``
        (``time.monotonic()``): time spent building the answer counts towards it."""
        if latency_ms <= 0:
            return
        remaining = self.real_seconds(latency_ms / 1000.0) - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)

    def usage_scope(
        self, entry: tuple[str, ModuleType] | None, node_id: str, edge: str | None, method: str
    ) -> UsageScope | None:
        """Whose rate-limit budget a call uses (asks the node's domain module, if it knows)."""
        if entry is None:
            return None
        kind, module = entry
        hook = getattr(module, "usage_scope", None)
        if hook is not None:
            return hook(self, node_id, kind, edge, method)
        return UsageScope(self.config.business_id, "pages", ad_account=False)

    def charge(self, scope: UsageScope | None, *, cpu_seconds: float, time_seconds: float) -> None:
        """Charge work that is not a call (an async run) to the rate-limit meters."""
        if self.usage is not None and scope is not None:
            self.usage.charge(
                scope, self.clock(), cpu_seconds=cpu_seconds, time_seconds=time_seconds
            )

    def throttle_response(self, limit: Throttle) -> Response:
        """Meta's error for a call refused by the rate-limit meters."""
        self.stats["throttled"] += 1
        message, subcode = THROTTLE_ERRORS[limit.code]
        return self.error_response(
            limit.code, message, subcode=subcode, type="OAuthException", is_transient=True
        )

    # ----------------------------------------------------------------- dispatch
    async def dispatch(self, request: Request) -> Response:
        """Handle one Graph call: params, faults, auth, throttle, domain handler, headers."""
        started = time.monotonic()
        now = self.clock()
        version = request.path_params["version"]
        node_id = request.path_params["node_id"]
        edge = request.path_params.get("edge")
        request.state.params = await read_params(request)
        self.stats["calls"] += 1
        self.received.append(
            {
                "method": request.method,
                "path": request.url.path,
                "node_id": node_id,
                "edge": edge,
                "params": {
                    k: v
                    for k, v in request.state.params.items()
                    if k not in ("access_token", "appsecret_proof")
                },
            }
        )
        # A batch answers after its slowest part, not after the sum of its items' latencies.
        in_batch = bool(request.scope.get("everreach.batch_item"))
        latency_ms = 0.0 if in_batch else self.draw_latency_ms()
        if self.timing.latency is None and latency_ms:
            # The fixed latency_ms knob alone: wait before answering, as it always did.
            await self.wait_latency(started, latency_ms)
            latency_ms = 0.0
        pct, throttled = self._account_tick()
        response = self.version_error(version) or self.check_token(request)
        entry = self.lookup(node_id)
        meter = self.usage
        scope = self.usage_scope(entry, node_id, edge, request.method) if meter else None
        limit: Throttle | None = None
        if response is None and throttled:
            self.stats["throttled"] += 1
            code = self.config.throttle_burst_code
            msg, etype, status, transient, sub = FAULT_ERRORS.get(code, FAULT_ERRORS[80000])
            response = self.error_response(
                code, msg, subcode=sub, type=etype, status=status, is_transient=transient
            )
        if response is None and meter is not None:
            limit = meter.admit(scope, now)
            if limit is not None:
                response = self.throttle_response(limit)
        if response is None:
            fault = self._pick_fault()
            if fault is not None:
                self.stats["faults"] += 1
                msg, etype, status, transient, sub = FAULT_ERRORS.get(
                    fault, ("An unknown error occurred", "OAuthException", 500, True, None)
                )
                response = self.error_response(
                    fault, msg, subcode=sub, type=etype, status=status, is_transient=transient
                )
        if response is None:
            if entry is None:
                response = self.unknown_node_response(node_id, request.method)
            else:
                kind, module = entry
                request.state.usage_scope = scope
                result = module.handle(request, self, node_id, kind, edge)
                if inspect.isawaitable(result):
                    result = await result
                response = result
        kind = entry[0] if entry is not None else None
        total_ms = self.answer_ms(latency_ms, len(response.body)) if latency_ms else 0.0
        if meter is None:
            response.headers.update(self.rate_limit_headers(node_id, pct, throttled, kind))
        else:
            if limit is None and not throttled:
                cpu_ms = meter.limits.call_cpu_ms
                cpu_ms += meter.limits.cpu_ms_per_kb * len(response.body) / 1024
                meter.record(
                    scope,
                    now,
                    points=3.0 if request.method == "POST" else 1.0,  # Meta: writes cost 3
                    cpu_seconds=cpu_ms / 1000.0,
                    time_seconds=total_ms / 1000.0,
                )
            if throttled and limit is None:
                limit = Throttle(
                    self.config.throttle_burst_code, 60.0 * self.config.throttle_regain_minutes
                )
            response.headers.update(meter.headers(scope, now, self.timing.time_scale, limit))
            response.headers.update(
                {
                    "x-fb-trace-id": self.new_fbtrace_id(),
                    "x-fb-rev": "1000000001",
                    "facebook-api-version": CURRENT_VERSION,
                }
            )
        await self.wait_latency(started, total_ms)
        return response


def unknown_parameter_message(name: str, where: str, docs: str | None = None) -> str:
    """The answer (code 100) to a parameter an endpoint does not take, naming it and where.

    Meta refuses such parameters rather than ignoring them; its exact wording for this case
    is not in its docs or public threads, so every domain words it the same way, here.
    """
    text = f"(#100) The parameter {name} is not supported on {where}"
    if docs:
        text += f". Please check {docs} for the parameters it takes"
    return text


def split_fields(text: str) -> list[str]:
    """Split a ``fields`` value at top-level commas (``a,b{c,d},e.limit(0)``)."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return [f for f in out if f]


_MODIFIER_RE = re.compile(r"\.(\w+)\(([^)]*)\)")


def parse_field(spec: str) -> tuple[str, dict[str, str], list[str]]:
    """``comments.summary(true).limit(0)`` → ("comments", {"summary": "true", …}, [])."""
    sub: list[str] = []
    if "{" in spec and spec.endswith("}"):
        spec, inner = spec.split("{", 1)
        sub = split_fields(inner[:-1])
    name = spec.split(".", 1)[0]
    mods = {m[1]: m[2] for m in _MODIFIER_RE.finditer(spec[len(name) :])}
    return name, mods, sub


async def read_params(request: Request) -> dict[str, Any]:
    """Merge the query string with a form or JSON body, the way Graph accepts parameters."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method in ("POST", "DELETE"):
        body = await request.body()
        if body:
            ctype = request.headers.get("content-type", "")
            if "application/json" in ctype:
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    parsed = None
                if isinstance(parsed, dict):
                    params.update(parsed)
            elif "multipart/form-data" in ctype:
                form = await request.form()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
            else:
                params.update(
                    dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                )
    return params


def create_app(config: SandboxConfig | None = None, *, sandbox: Sandbox | None = None) -> Starlette:
    """Build the sandbox ASGI app; ``app.state.sandbox`` is the live :class:`Sandbox`."""
    sb = sandbox or Sandbox(config)
    if not sb.modules:
        sb.load_domains()

    async def graph(request: Request) -> Response:
        return await sb.dispatch(request)

    async def health(request: Request) -> Response:
        return sb.json_response(
            {"ok": True, "domains": sorted(sb.modules), "calls": sb.stats["calls"]}
        )

    async def usage(request: Request) -> Response:
        # Control route: the rate-limit meters (realistic profile), for benchmarks.
        body: dict[str, Any] = {
            "profile": sb.config.profile,
            "time_scale": sb.timing.time_scale,
            "throttled_calls": sb.stats["throttled"],
        }
        if sb.usage is not None:
            body.update(sb.usage.report(sb.clock()))
        return sb.json_response(body)

    routes: list[Route] = [
        Route("/_sandbox/health", health),
        Route("/_sandbox/usage", usage, methods=["GET"]),
    ]
    for module in sb.modules.values():
        extra: Callable[[Sandbox], list[Route]] | None = getattr(module, "extra_routes", None)
        if extra is not None:
            routes.extend(extra(sb))
    routes += [
        Route("/{version}/{node_id}", graph, methods=["GET", "POST", "DELETE"]),
        # Meta answers a node path with a trailing slash like the node itself (no redirect).
        Route("/{version}/{node_id}/", graph, methods=["GET", "POST", "DELETE"]),
        Route("/{version}/{node_id}/{edge}", graph, methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sb
    return app
