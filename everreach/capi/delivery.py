"""Delivery: send pending ``meta_conversion_event`` rows to ``POST /{pixel-id}/events``.

Per (pixel, test code) group, up to ``batch_size`` (≤ 1000) events per request:

1. claim pending rows (``FOR UPDATE SKIP LOCKED``, so two runs never send one row);
2. reject locally what Meta would refuse (too old, missing fields), because one such
   event fails Meta's whole request;
3. send; when Meta refuses the request for a bad event, bisect the batch until the bad
   events stand alone, so the good ones still go; a refused single event is
   ``rejected`` with Meta's reason;
4. transient failures (5xx, timeouts, rate limits) are retried by the Graph client, with
   its backoff, jitter and throttling (``retries`` sets how often for these requests); if
   they persist the rows stay ``pending`` for the next run, ``failed`` after
   ``max_attempts``;
5. record per event the outcome, ``fbtrace_id``, attempts, Meta's answer, and log each
   accepted event once into ``user_event`` as ``meta_conversion_<EventName>``.

Nothing is marked ``sent`` that Meta did not count in ``events_received``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from everreach.capi.events import delivery_problem, server_event
from everreach.meta.errors import GraphAPIError, GraphConfigurationError, TransientGraphError

__all__ = ["DeliveryConfig", "DeliveryReport", "deliver_pending", "pending_count"]

log = logging.getLogger(__name__)

#: Meta's limit of events per request.
MAX_BATCH = 1000


class GraphPoster(Protocol):
    """The part of ``everreach.meta.client.GraphClient`` delivery uses."""

    def post(
        self,
        path: str,
        data: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        json_body: bool = False,
        max_retries: int | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DeliveryConfig:
    """Knobs of one delivery run."""

    batch_size: int = MAX_BATCH
    #: After this many attempts an event that keeps failing transiently is ``failed``.
    max_attempts: int = 8
    #: Retries of a transient failure per request, done by the client (None: the client's
    #: own setting).
    retries: int | None = None
    #: Global test mode: every event is sent (and flagged) with this code.
    test_event_code: str | None = None
    pixel_id: str | None = None  # only this pixel (default: all)
    max_events: int | None = None  # stop after claiming this many (default: all)
    access_token: str | None = None  # per-call token (default: the client's)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")


@dataclass
class DeliveryReport:
    """What a delivery run did (counts of events unless named otherwise)."""

    requests: int = 0
    sent: int = 0
    rejected_local: int = 0
    rejected_meta: int = 0
    failed: int = 0
    deferred: int = 0  # transient failure: left pending for the next run
    retries: int = 0  # requests repeated after a transient failure
    bisections: int = 0  # requests split to isolate a bad event
    pixels: dict[str, int] = field(default_factory=dict)  # pixel → events sent

    def summary(self) -> str:
        """One line for logs and the demo."""
        return (
            f"{self.sent} sent, {self.rejected_local} rejected locally, "
            f"{self.rejected_meta} rejected by Meta, {self.failed} failed, "
            f"{self.deferred} deferred, in {self.requests} requests "
            f"({self.retries} retries, {self.bisections} bisections)"
        )


class _Transient(Exception):
    """A batch that kept failing transiently; carries the last error."""

    def __init__(self, error: GraphAPIError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Outcome:
    row: dict[str, Any]
    status: str  # sent | rejected | failed | pending
    attempts: int = 0
    fbtrace_id: str | None = None
    response: Any = None
    error: str | None = None
    local: bool = False  # rejected by our own checks, never sent


_SELECT_PENDING = """
select id, pixel_id, event_name, event_id, event_time, action_source, event_source_url,
       messaging_channel, user_data, custom_data, value, currency, test_event_code,
       attempts, user_id
from meta_conversion_event
where status = 'pending' and pixel_id = %(pixel)s
  and coalesce(test_event_code, '') = %(code)s
order by id
limit %(limit)s
for update skip locked
"""

_GROUPS = """
select pixel_id, coalesce(test_event_code, '') as code, count(*) as n
from meta_conversion_event
where status = 'pending' and (%(pixel)s::text is null or pixel_id = %(pixel)s)
group by 1, 2 order by 1, 2
"""

# One statement marks a request's events sent and logs each exactly once into
# user_event: only rows still pending are updated, so a replay logs nothing twice.
_MARK_SENT = """
with updated as (
    update meta_conversion_event e
    set status = 'sent', sent_at = now(), last_attempt_at = now(),
        attempts = e.attempts + a.attempts, fbtrace_id = %(fbtrace)s,
        meta_response = %(response)s, error_message = null,
        test_event_code = coalesce(e.test_event_code, %(code)s),
        is_test = e.is_test or %(code)s::text is not null
    from unnest(%(ids)s::bigint[], %(attempts)s::int[]) as a(id, attempts)
    where e.id = a.id and e.status = 'pending'
    returning e.*
)
insert into user_event (user_id, etype, source, props, occurred_at)
select user_id, 'meta_conversion_' || event_name, 'capi',
       jsonb_build_object('event_id', event_id, 'pixel_id', pixel_id, 'value', value,
                          'currency', currency, 'test', is_test),
       event_time
from updated
"""

_MARK_OTHER = """
update meta_conversion_event
set status = %(status)s, attempts = attempts + %(attempts)s, last_attempt_at = now(),
    fbtrace_id = coalesce(%(fbtrace)s, fbtrace_id), meta_response = %(response)s,
    error_message = %(error)s
where id = %(id)s and status = 'pending'
"""


def pending_count(conn: psycopg.Connection, pixel_id: str | None = None) -> int:
    """How many events wait for delivery (the sensor's question)."""
    row = conn.execute(
        "select count(*) from meta_conversion_event where status = 'pending' "
        "and (%(p)s::text is null or pixel_id = %(p)s)",
        {"p": pixel_id},
    ).fetchone()
    return int(row[0]) if row else 0


class _Sender:
    """Sends one group's batches: retries, bisection, outcome per event."""

    def __init__(
        self,
        client: GraphPoster,
        pixel_id: str,
        code: str | None,
        config: DeliveryConfig,
        report: DeliveryReport,
    ) -> None:
        self.client = client
        self.pixel_id = pixel_id
        self.code = code
        self.config = config
        self.report = report

    def _client_retries(self) -> int:
        metrics = getattr(self.client, "metrics", None)
        value = getattr(metrics, "retries", None)
        if value is None and isinstance(metrics, dict):
            value = metrics.get("retries")
        return int(value or 0)

    def _post(self, rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], int]:
        """Meta's answer and the number of HTTP attempts it took; raises on failure."""
        # A JSON body: a form body would percent-encode ~0.5 MB of JSON per 1000 events.
        payload: dict[str, Any] = {"data": [server_event(r) for r in rows]}
        if self.code:
            payload["test_event_code"] = self.code
        before = self._client_retries()
        try:
            answer = self.client.post(
                f"{self.pixel_id}/events",
                data=payload,
                token=self.config.access_token,
                json_body=True,
                max_retries=self.config.retries,
            )
            error: GraphAPIError | None = None
        except GraphAPIError as exc:
            error = exc
        retries = max(self._client_retries() - before, 0)
        attempts = 1 + retries
        self.report.requests += attempts
        self.report.retries += retries
        if error is None:
            return answer, attempts
        if isinstance(error, TransientGraphError) or error.is_transient:
            transient = _Transient(error)
            transient.attempts = attempts  # type: ignore[attr-defined]
            raise transient
        error.attempts = attempts  # type: ignore[attr-defined]
        raise error

    def send(self, rows: list[dict[str, Any]]) -> list[_Outcome]:
        """Outcomes for ``rows`` (one request, or more when Meta refuses the batch)."""
        try:
            answer, attempts = self._post(rows)
        except _Transient as exc:
            attempts = exc.attempts  # type: ignore[attr-defined]
            return [self._transient(r, exc.error, attempts) for r in rows]
        except GraphConfigurationError:
            raise  # bad token, missing permission, deprecated version: stop the run
        except GraphAPIError as exc:
            attempts = getattr(exc, "attempts", 1)
            if len(rows) == 1:
                return [
                    _Outcome(
                        rows[0],
                        "rejected",
                        attempts,
                        exc.fbtrace_id,
                        _error_body(exc),
                        _meta_reason(exc),
                    )
                ]
            return self._bisect(rows, attempts)
        received = answer.get("events_received")
        trace = answer.get("fbtrace_id")
        if received == len(rows):
            return [_Outcome(r, "sent", attempts, trace, answer) for r in rows]
        # Meta counted fewer events than sent: we cannot tell which, so find out.
        if len(rows) == 1:
            return [
                _Outcome(
                    rows[0],
                    "rejected",
                    attempts,
                    trace,
                    answer,
                    "Meta did not count the event: " + _messages(answer),
                )
            ]
        return self._bisect(rows, attempts)

    def _bisect(self, rows: list[dict[str, Any]], attempts: int) -> list[_Outcome]:
        self.report.bisections += 1
        mid = len(rows) // 2
        outcomes = self.send(rows[:mid]) + self.send(rows[mid:])
        for outcome in outcomes:
            outcome.attempts += attempts  # the refused whole-batch request counts too
        return outcomes

    def _transient(self, row: dict[str, Any], error: GraphAPIError, attempts: int) -> _Outcome:
        total = row["attempts"] + attempts
        status = "failed" if total >= self.config.max_attempts else "pending"
        return _Outcome(
            row,
            status,
            attempts,
            error.fbtrace_id,
            _error_body(error),
            f"transient error after {total} attempts: {_meta_reason(error)}",
        )


def _meta_reason(error: GraphAPIError) -> str:
    """Meta's explanation: the user-facing title/message when given, else the message."""
    body = _error_body(error).get("error", {})
    parts = [body.get("error_user_title"), body.get("error_user_msg")]
    reason = ": ".join(p for p in parts if p)
    message = body.get("message") or getattr(error, "message", None) or str(error)
    code = f"(code {getattr(error, 'code', '?')}"
    if getattr(error, "subcode", None):
        code += f", subcode {error.subcode}"
    code += ")"
    return f"{reason} — {message} {code}" if reason else f"{message} {code}"


def _error_body(error: GraphAPIError) -> dict[str, Any]:
    """Meta's error body when the exception carries it, else one rebuilt from it."""
    for attr in ("body", "response_body", "payload"):
        body = getattr(error, attr, None)
        if isinstance(body, dict) and "error" in body:
            return body
    return {
        "error": {
            "message": getattr(error, "message", str(error)),
            "code": getattr(error, "code", None),
            "error_subcode": getattr(error, "subcode", None),
            "error_user_title": getattr(error, "user_title", None),
            "error_user_msg": getattr(error, "user_msg", None),
            "fbtrace_id": getattr(error, "fbtrace_id", None),
        }
    }


def _messages(answer: dict[str, Any]) -> str:
    messages = answer.get("messages") or []
    return "; ".join(str(m) for m in messages) or f"events_received={answer.get('events_received')}"


def _write(
    conn: psycopg.Connection,
    outcomes: list[_Outcome],
    code: str | None,
    report: DeliveryReport,
    pixel_id: str,
) -> None:
    sent = [o for o in outcomes if o.status == "sent"]
    with conn.cursor() as cur:
        # Events of one request share Meta's answer; group them to write in one statement.
        by_request: dict[str | None, list[_Outcome]] = {}
        for o in sent:
            by_request.setdefault(o.fbtrace_id, []).append(o)
        for trace, group in by_request.items():
            cur.execute(
                _MARK_SENT,
                {
                    "ids": [o.row["id"] for o in group],
                    "attempts": [o.attempts for o in group],
                    "fbtrace": trace,
                    "response": Jsonb(group[0].response),
                    "code": code,
                },
            )
        others = [o for o in outcomes if o.status != "sent"]
        if others:
            cur.executemany(
                _MARK_OTHER,
                [
                    {
                        "id": o.row["id"],
                        "status": o.status,
                        "attempts": o.attempts,
                        "fbtrace": o.fbtrace_id,
                        "response": Jsonb(o.response),
                        "error": o.error,
                    }
                    for o in others
                ],
            )
    report.sent += len(sent)
    report.pixels[pixel_id] = report.pixels.get(pixel_id, 0) + len(sent)
    for o in outcomes:
        if o.status == "rejected":
            if o.local:
                report.rejected_local += 1
            else:
                report.rejected_meta += 1
        elif o.status == "failed":
            report.failed += 1
        elif o.status == "pending":
            report.deferred += 1


def deliver_pending(
    conn: psycopg.Connection,
    client: GraphPoster,
    *,
    config: DeliveryConfig | None = None,
    now: _dt.datetime | None = None,
) -> DeliveryReport:
    """Send every pending event (per pixel and test code, ≤ ``batch_size`` per request).

    ``conn`` must be in autocommit mode; each batch is claimed, sent and recorded in its
    own transaction. Raises the client's ``GraphConfigurationError`` (bad token,
    missing permission) after recording nothing for the batch at hand.
    """
    if not conn.autocommit:
        # Each batch must commit on its own: one outer transaction would hold every row
        # lock for the whole run and lose the record of sent batches on a crash.
        raise ValueError("deliver_pending needs an autocommit connection")
    config = config or DeliveryConfig()
    report = DeliveryReport()
    claimed_total = 0
    groups = conn.execute(_GROUPS, {"pixel": config.pixel_id}).fetchall()
    for pixel_id, stored_code, _count in groups:
        code = config.test_event_code or stored_code or None
        sender = _Sender(client, pixel_id, code, config, report)
        while config.max_events is None or claimed_total < config.max_events:
            limit = config.batch_size
            if config.max_events is not None:
                limit = min(limit, config.max_events - claimed_total)
            deferred_before = report.deferred
            with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(
                    _SELECT_PENDING, {"pixel": pixel_id, "code": stored_code, "limit": limit}
                ).fetchall()
                if not rows:
                    break
                claimed_total += len(rows)
                check_time = now or _dt.datetime.now(_dt.UTC)
                valid: list[dict[str, Any]] = []
                local: list[_Outcome] = []
                for row in rows:
                    problem = delivery_problem(row, check_time)
                    if problem:
                        local.append(_Outcome(row, "rejected", 0, error=problem, local=True))
                    else:
                        valid.append(row)
                outcomes = sender.send(valid) if valid else []
                _write(conn, outcomes + local, code, report, pixel_id)
            if report.deferred > deferred_before:
                break  # Meta is unavailable for this pixel: leave the rest for the next run
    log.info("capi delivery: %s", report.summary())
    return report
