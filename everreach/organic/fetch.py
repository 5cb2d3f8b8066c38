"""Graph API access for organic content: batched insights, per-item skips, clear errors.

Insights are per object (``/{media-id}/insights``) and Meta refuses some items one by one
(media before the business conversion, not enough viewers), so per-object requests are
sent through the Graph batch API (up to 50 per HTTP request): each item keeps its own
answer, and the HTTP round trips per media stay near 1/50.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from everreach.meta.client import GraphClient, encode_params
from everreach.meta.errors import (
    GraphAPIError,
    GraphConfigurationError,
    InvalidMetricError,
    SkipItemError,
    classify,
)

BATCH_SIZE = 50
MAX_ITEM_RETRIES = 5


class OrganicMetricError(GraphConfigurationError):
    """Meta rejected a metric of our lists: names it and where to change it."""

    action = (
        "Remove or rename the metric in everreach/organic/metrics.py (one tuple per "
        "platform and media kind) and run again."
    )


class PageTokenError(GraphConfigurationError):
    """A Facebook Page call was made without a usable Page access token."""

    action = (
        "Give the token the Page's ANALYZE task (so /{page-id}?fields=access_token "
        "returns a Page token), or set meta_platform_config.settings."
        "page_token_env_var to a variable holding the Page access token."
    )


@dataclass
class ItemResult:
    """The answer to one batched request: a body, or a skip reason."""

    body: dict | None = None
    skipped: str | None = None


@dataclass
class CallStats:
    """What the organic fetch cost: Graph calls (batch items count one each) and HTTP."""

    graph_calls: int = 0
    http_requests: int = 0
    batch_requests: int = 0
    item_retries: int = 0
    skipped: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        """Add ``deltas`` to the named counters (workers of several accounts share them)."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)


def skip_reason(error: GraphAPIError) -> str:
    """A short, stable reason for an item Meta refuses individually."""
    if error.subcode == 2108006:
        return "before_business_conversion"
    if "not enough viewers" in (error.message or "").lower():
        return "not_enough_viewers"
    return f"meta_{error.code}_{error.subcode or 0}"


def parse_insight_values(data: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, Any]]:
    """Rows ``(metric, value, breakdown)`` from a lifetime insights ``data`` array.

    Dict values (``post_reactions_by_type_total``) become their sum plus the dict as
    breakdown; a ``total_value`` with breakdowns (story navigation) keeps the breakdown.
    """
    rows: list[tuple[str, float, Any]] = []
    for item in data:
        name = item.get("name")
        if not name:
            continue
        breakdown: Any = None
        total = item.get("total_value")
        values = item.get("values") or []
        raw = values[0].get("value") if values else (total or {}).get("value")
        if isinstance(total, dict) and total.get("breakdowns"):
            breakdown = {}
            for group in total["breakdowns"]:
                for res in group.get("results", []):
                    key = ",".join(str(v) for v in res.get("dimension_values", []))
                    breakdown[key] = _number(res.get("value"))
        if isinstance(raw, dict):
            breakdown = {k: _number(v) for k, v in raw.items()}
            raw = sum(breakdown.values())
        if raw is None:
            continue
        rows.append((str(name), _number(raw), breakdown))
    return rows


def _number(value: Any) -> float:
    # Meta sends numbers as JSON numbers or strings.
    return float(value) if value not in (None, "") else 0.0


class OrganicGraph:
    """Organic Graph calls on top of :class:`GraphClient` (paging, batching, errors)."""

    def __init__(
        self, client: GraphClient, *, batch_size: int = BATCH_SIZE, sleep: Any = time.sleep
    ) -> None:
        self.client = client
        self.batch_size = max(1, min(batch_size, 50))
        self.stats = CallStats()
        self._sleep = sleep
        self._rng = random.Random()

    def scoped(self, object_id: str) -> OrganicGraph:
        """A view whose calls are about one Page / Instagram account (its usage pauses only
        that account's worker, see ``GraphClient.scoped``); counters are shared."""
        view = OrganicGraph(
            self.client.scoped(object_id), batch_size=self.batch_size, sleep=self._sleep
        )
        view.stats = self.stats
        return view

    # ------------------------------------------------------------------ simple calls
    def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, token: str | None = None
    ) -> dict:
        """One GET, counted."""
        before = self.client.metrics.calls
        try:
            return self.client.get(path, params, token=token)
        finally:
            self._count_http(before)

    def paginate(
        self, path: str, params: Mapping[str, Any], *, token: str | None = None
    ) -> Iterator[dict]:
        """Rows of a paged edge, counted; the caller may stop early (no further pages)."""
        before = self.client.metrics.calls
        try:
            yield from self.client.paginate(path, params, token=token)
        finally:
            self._count_http(before)

    def _count_http(self, before: int) -> None:
        spent = self.client.metrics.calls - before
        self.stats.add(http_requests=spent, graph_calls=spent)

    # ------------------------------------------------------------------ batch
    def batch_get(
        self, requests: Sequence[tuple[str, Mapping[str, Any]]], *, token: str | None = None
    ) -> list[ItemResult | GraphAPIError]:
        """GET every ``(path, params)`` through the batch API; one result per request.

        Items Meta refuses individually come back as ``ItemResult(skipped=reason)``;
        transient item errors are retried (with backoff) in a later batch; any other item
        error is returned as the typed exception for the caller to raise.
        """
        results: list[ItemResult | GraphAPIError | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        attempt = 0
        while pending:
            retry: list[int] = []
            last_error: GraphAPIError | None = None
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                items = [
                    {"method": "GET", "relative_url": _relative_url(*requests[i])} for i in chunk
                ]
                before = self.client.metrics.calls
                try:
                    answers = self.client.post(
                        "",
                        {"batch": orjson.dumps(items).decode(), "include_headers": "false"},
                        token=token,
                    )
                finally:
                    self.stats.add(http_requests=self.client.metrics.calls - before)
                self.stats.add(batch_requests=1)
                if not isinstance(answers, list) or len(answers) != len(chunk):
                    raise GraphAPIError(
                        f"the batch answer does not match the request ({len(chunk)} items)"
                    )
                self.stats.add(graph_calls=len(chunk))
                for i, answer in zip(chunk, answers, strict=True):
                    outcome = _item_outcome(answer)
                    if isinstance(outcome, GraphAPIError) and outcome.retryable:
                        retry.append(i)
                        last_error = outcome
                    else:
                        results[i] = outcome
            if retry:
                attempt += 1
                if attempt > MAX_ITEM_RETRIES:
                    assert last_error is not None
                    raise last_error
                self.stats.add(item_retries=len(retry))
                cap = min(30.0, 0.5 * 2**attempt)
                self._sleep(self._rng.uniform(cap / 2, cap))
            pending = retry
        return [r if r is not None else ItemResult(body={}) for r in results]

    # ------------------------------------------------------------------ insights
    def object_insights(
        self,
        requests: Sequence[tuple[str, str, tuple[str, ...], Mapping[str, str]]],
        *,
        token: str | None,
        what: str,
    ) -> dict[str, ItemResult]:
        """Lifetime insights of many objects: ``(object_id, kind, metrics, extra params)``.

        Returns object id → :class:`ItemResult` (body = the insights answer, or skipped).
        A metric Meta rejects raises :class:`OrganicMetricError` naming it and the kind.
        """
        calls = [
            (f"{oid}/insights", {"metric": ",".join(metrics), **extra})
            for oid, _kind, metrics, extra in requests
        ]
        answers = self.batch_get(calls, token=token)
        out: dict[str, ItemResult] = {}
        for (oid, kind, metrics, extra), answer in zip(requests, answers, strict=True):
            if isinstance(answer, InvalidMetricError):
                raise self.metric_error(
                    answer, f"{oid}/insights", metrics, extra, token=token, what=f"{what} {kind}"
                )
            if isinstance(answer, GraphAPIError):
                raise answer
            out[oid] = answer
        return out

    def metric_error(
        self,
        error: GraphAPIError,
        path: str,
        metrics: Sequence[str],
        extra: Mapping[str, str],
        *,
        token: str | None,
        what: str,
    ) -> OrganicMetricError:
        """An :class:`OrganicMetricError` naming the rejected metric(s).

        When Meta's message names none of ours, each metric is tried alone to find it.
        """
        named = [
            m
            for m in metrics
            if re.search(rf"(?<![\w]){re.escape(m)}(?![\w])", error.message or "")
        ]
        if not named:
            for m in metrics:
                try:
                    self.get(path, {"metric": m, **extra}, token=token)
                except InvalidMetricError:
                    named.append(m)
                except GraphAPIError:
                    continue
        names = ", ".join(repr(m) for m in named) or "(Meta did not say which)"
        return OrganicMetricError(
            f"Meta rejected the metric {names} for {what}: {error.message}",
            code=error.code,
            subcode=error.subcode,
            fbtrace_id=error.fbtrace_id,
            http_status=error.http_status,
            type=error.type,
            body=error.body,
        )


def _relative_url(path: str, params: Mapping[str, Any]) -> str:
    query = encode_params(params)
    return f"{path}?{urlencode(query)}" if query else path


def _item_outcome(answer: Any) -> ItemResult | GraphAPIError:
    if not isinstance(answer, dict):  # Meta answers null for an item that timed out
        return classify(503, None)
    code = int(answer.get("code") or 0)
    try:
        body = orjson.loads(answer.get("body") or "null")
    except orjson.JSONDecodeError:
        body = None
    if 200 <= code < 300 and isinstance(body, dict) and "error" not in body:
        return ItemResult(body=body)
    error = classify(code, body)
    if isinstance(error, SkipItemError):
        return ItemResult(skipped=skip_reason(error))
    return error
