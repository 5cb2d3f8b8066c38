"""Typed Graph API errors and the classification of Meta's error bodies.

The class of an error tells the caller what to do with it:

* :class:`TransientGraphError` (and :class:`ThrottledError`): retry with backoff;
* :class:`ReduceDataError`: ask for less (smaller page, split the request) and retry;
* :class:`GraphConfigurationError` and subclasses: stop now, a human must fix a token,
  a permission, the API version or a metric name;
* :class:`SkipItemError`: this one item (e.g. an old IG media) has no data; skip it;
* :class:`PolicyWindowError`: a message send outside the messaging window.

Codes follow Meta's error reference (developers.facebook.com/docs/graph-api/guides/
error-handling and the Marketing API error list).
"""

from __future__ import annotations

from typing import Any

#: Codes Meta documents as rate limiting / throttling (wait, then retry).
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 130429, 131048, 131056} | set(range(80000, 80015)))
#: Codes Meta documents as temporary server-side problems (retry with backoff).
TRANSIENT_CODES = frozenset({1, 2}) | THROTTLE_CODES
#: Permission errors: (#10) and the (#200)-(#299) family.
PERMISSION_CODES = frozenset({10}) | set(range(200, 300))
TOKEN_CODES = frozenset({102, 104, 190})
SKIP_SUBCODES = frozenset({2108006})
POLICY_WINDOW_SUBCODES = frozenset({2018278})
POLICY_WINDOW_CODES = frozenset({131047})


class GraphAPIError(Exception):
    """An error answered by the Graph API (or a transport failure talking to it)."""

    #: What the user must do; subclasses override, ``classify`` may refine.
    action: str = "Check the request against Meta's Graph API documentation."
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        type: str | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        is_transient: bool = False,
        error_user_title: str | None = None,
        error_user_msg: str | None = None,
        action: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.type = type
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.is_transient = is_transient
        self.error_user_title = error_user_title
        self.error_user_msg = error_user_msg
        self.body = body
        if action is not None:
            self.action = action

    def __str__(self) -> str:
        parts = [f"code {self.code}" if self.code is not None else "no error code"]
        parts.append(f"subcode {self.subcode}" if self.subcode is not None else "no subcode")
        parts.append(f"fbtrace_id {self.fbtrace_id or 'n/a'}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        text = f"Graph API error ({', '.join(parts)}): {self.message}"
        if self.error_user_msg and self.error_user_msg not in self.message:
            text += f" [{self.error_user_msg}]"
        return f"{text}. What to do: {self.action}"


class TransientGraphError(GraphAPIError):
    """A temporary failure: retry later with exponential backoff and jitter."""

    action = (
        "Temporary Meta-side failure; it is retried automatically. If it persists, "
        "check https://metastatus.com and retry later."
    )
    retryable = True


class ThrottledError(TransientGraphError):
    """A rate limit was hit: wait (``estimated_time_to_regain_access`` when given)."""

    action = (
        "Rate limit reached; the client waits and retries. Lower concurrency or the "
        "request rate if this keeps happening."
    )


class ReduceDataError(GraphAPIError):
    """Meta asks for less data: shrink the page or split the request, then retry."""

    action = (
        "Request less data: a smaller page (limit), a shorter time range, fewer "
        "fields, or split the request by campaign/ad set/ad."
    )


class GraphConfigurationError(GraphAPIError):
    """A setup problem a person has to fix; retrying cannot help."""

    action = "Fix the configuration named in the message and run again."


class TokenInvalidError(GraphConfigurationError):
    """Code 190/102/104: the access token is missing, invalid or expired."""

    action = (
        "Generate a new access token (a long-lived System User token is recommended) "
        "and set it in META_ACCESS_TOKEN (or the per-account token setting)."
    )


class MissingPermissionError(GraphConfigurationError):
    """Code 10 / 200-299 / "(#100) Missing permissions": the token lacks a scope."""

    action = (
        "Grant the missing permission (e.g. ads_read, read_insights, "
        "instagram_manage_insights, pages_read_engagement) to the app/System User and "
        "issue a new token."
    )


class DeprecatedVersionError(GraphConfigurationError):
    """Code 2635 (or 12): the API version is no longer served."""

    action = "Set META_GRAPH_API_VERSION to a current version (v25.0 or newer)."


class InvalidMetricError(GraphConfigurationError):
    """Code 100 naming a field/metric that is not valid for this object or version."""

    action = (
        "Remove or rename the metric/field named in the message (Meta deprecates "
        "metrics between versions; valid ones differ by object and media type)."
    )


class SkipItemError(GraphAPIError):
    """This item has no data to give (IG 2108006, "not enough viewers"): skip it."""

    action = "Nothing to fix: the item has no insights available; it is skipped."


class PolicyWindowError(GraphAPIError):
    """A message was sent outside the allowed messaging window (10/2018278, WA 131047)."""

    action = (
        "Reply within the 24-hour window, use the HUMAN_AGENT tag (Messenger/IG, "
        "7 days), or send an approved template (WhatsApp)."
    )


class AsyncJobFailedError(GraphAPIError):
    """An async insights report run ended in "Job Failed" or "Job Skipped"."""

    action = "The report job failed on Meta's side; it is restarted once, then split."


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def classify(http_status: int | None, body: Any) -> GraphAPIError:
    """Turn an HTTP status and a (parsed) Graph error body into a typed exception."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        message = f"HTTP {http_status} without a Graph error body"
        if http_status is not None and (http_status >= 500 or http_status == 429):
            return TransientGraphError(message, http_status=http_status, body=body)
        return GraphAPIError(message, http_status=http_status, body=body)
    message = str(err.get("message") or "")
    code = _int(err.get("code"))
    subcode = _int(err.get("error_subcode"))
    kwargs: dict[str, Any] = {
        "code": code,
        "subcode": subcode,
        "type": err.get("type"),
        "fbtrace_id": err.get("fbtrace_id"),
        "http_status": http_status,
        "is_transient": bool(err.get("is_transient", False)),
        "error_user_title": err.get("error_user_title"),
        "error_user_msg": err.get("error_user_msg"),
        "body": body,
    }
    lower = f"{message} {err.get('error_user_msg') or ''}".lower()
    # Order matters: the specific meanings of code 1/10/100 come before the generic ones.
    if "reduce the amount of data" in lower:
        return ReduceDataError(message, **kwargs)
    if subcode in SKIP_SUBCODES or "not enough viewers" in lower:
        return SkipItemError(message, **kwargs)
    if (
        code in POLICY_WINDOW_CODES
        or subcode in POLICY_WINDOW_SUBCODES
        or "outside of allowed window" in lower
        or "outside the allowed window" in lower
    ):
        return PolicyWindowError(message, **kwargs)
    if code in TOKEN_CODES:
        return TokenInvalidError(message, **kwargs)
    if code == 2635 or (code == 12 and "deprecated" in lower):
        return DeprecatedVersionError(message, **kwargs)
    if code in PERMISSION_CODES or (code == 100 and "missing permission" in lower):
        return MissingPermissionError(message, **kwargs)
    if code == 100 and any(
        s in lower
        for s in (
            "is not valid for fields param",
            "valid insights metric",
            "must be one of the following values",
            "nonexisting field",
            "invalid metric",
            "metric[",
        )
    ):
        return InvalidMetricError(message, **kwargs)
    if code in THROTTLE_CODES:
        return ThrottledError(message, **kwargs)
    if (
        code in TRANSIENT_CODES
        or kwargs["is_transient"]
        or (http_status is not None and http_status in (500, 502, 503, 504))
    ):
        return TransientGraphError(message, **kwargs)
    return GraphAPIError(message, **kwargs)
