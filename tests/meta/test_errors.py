"""Classification of Graph API error bodies (examples shaped as in Meta's error docs)."""

from __future__ import annotations

import pytest

from everreach.meta.errors import (
    DeprecatedVersionError,
    GraphAPIError,
    GraphConfigurationError,
    InvalidMetricError,
    MissingPermissionError,
    PolicyWindowError,
    ReduceDataError,
    SkipItemError,
    ThrottledError,
    TokenInvalidError,
    TransientGraphError,
    classify,
)


def body(code, message="msg", subcode=None, **extra):
    err = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
        **extra,
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    return {"error": err}


@pytest.mark.parametrize(
    ("status", "payload", "cls"),
    [
        (
            400,
            body(190, "Error validating access token: Session has expired", 463),
            TokenInvalidError,
        ),
        (
            400,
            body(190, "Invalid OAuth access token - Cannot parse access token"),
            TokenInvalidError,
        ),
        (
            400,
            body(104, "An access token is required to request this resource."),
            TokenInvalidError,
        ),
        (403, body(200, "(#200) Requires ads_read permission"), MissingPermissionError),
        (
            400,
            body(10, "(#10) Application does not have permission for this action"),
            MissingPermissionError,
        ),
        (400, body(100, "(#100) Missing permissions"), MissingPermissionError),
        (
            400,
            body(2635, "(#2635) You are calling a deprecated version of the Ads API."),
            DeprecatedVersionError,
        ),
        (400, body(100, "(#100) impressions is not valid for fields param."), InvalidMetricError),
        (
            400,
            body(100, "(#100) metric[0] must be one of the following values: views, reach"),
            InvalidMetricError,
        ),
        (
            500,
            body(
                1, "Please reduce the amount of data you're asking for, then retry your request", 99
            ),
            ReduceDataError,
        ),
        (
            400,
            body(
                100, "Please reduce the amount of data you're asking for, then retry your request"
            ),
            ReduceDataError,
        ),
        (400, body(100, "Media posted before business account conversion", 2108006), SkipItemError),
        (400, body(10, "(#10) Not enough viewers for the media to show insights"), SkipItemError),
        (
            400,
            body(10, "(#10) This message is sent outside of allowed window.", 2018278),
            PolicyWindowError,
        ),
        (400, body(131047, "Re-engagement message"), PolicyWindowError),
        (500, body(1, "An unknown error occurred", 99), TransientGraphError),
        (503, body(2, "Service temporarily unavailable"), TransientGraphError),
        (400, body(17, "(#17) User request limit reached", 2446079), ThrottledError),
        (400, body(4, "(#4) Application request limit reached"), ThrottledError),
        (400, body(613, "(#613) Calls to this api have exceeded the rate limit."), ThrottledError),
        (
            400,
            body(80004, "(#80004) There have been too many calls to this ad-account."),
            ThrottledError,
        ),
        (400, body(999, "Weird", is_transient=True), TransientGraphError),
        (502, "<html>bad gateway</html>", TransientGraphError),
        (400, body(803, "(#803) Some of the aliases you requested do not exist"), GraphAPIError),
    ],
)
def test_classify(status, payload, cls):
    err = classify(status, payload)
    assert type(err) is cls
    assert err.http_status == status


def test_message_names_code_subcode_trace_and_action():
    err = classify(
        400,
        body(
            190,
            "Error validating access token: Session has expired",
            463,
            error_user_msg="Please log in again.",
        ),
    )
    text = str(err)
    for part in (
        "code 190",
        "subcode 463",
        "fbtrace_id AbCdEfGhIjK",
        "HTTP 400",
        "Session has expired",
        "What to do:",
        "META_ACCESS_TOKEN",
    ):
        assert part in text
    assert isinstance(err, GraphConfigurationError) and not err.retryable
    assert (err.code, err.subcode, err.fbtrace_id, err.type) == (
        190,
        463,
        "AbCdEfGhIjK",
        "OAuthException",
    )


def test_retryable_flags():
    assert classify(500, body(2)).retryable
    assert classify(400, body(17)).retryable
    assert not classify(400, body(100, "(#100) bogus is not valid for fields param")).retryable
    assert not classify(500, body(1, "Please reduce the amount of data")).retryable
