"""Property-based: malformed, truncated, unknown and odd payloads never make a 5xx.

Every well-signed body ends up in the raw log (one row per 200); badly signed ones are
refused without touching it.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from receiver_helpers import Rig

from everreach.sandbox.messaging import build_burst, serialize

_KEYS = [
    "object",
    "entry",
    "id",
    "time",
    "messaging",
    "standby",
    "changes",
    "sender",
    "recipient",
    "timestamp",
    "message",
    "mid",
    "text",
    "is_echo",
    "is_deleted",
    "attachments",
    "type",
    "payload",
    "delivery",
    "read",
    "watermark",
    "mids",
    "postback",
    "reaction",
    "referral",
    "ad_id",
    "ref",
    "message_edit",
    "value",
    "field",
    "metadata",
    "phone_number_id",
    "messages",
    "statuses",
    "status",
    "from",
    "contacts",
    "wa_id",
    "profile",
    "name",
    "errors",
    "code",
    "reply_to",
]
_OBJECTS = ["page", "instagram", "whatsapp_business_account", "user", ""]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        ["1700000000000", "1700000000", "sent", "read", "failed", "text", "\x00", "9" * 300]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS), children, max_size=6),
    ),
    max_leaves=25,
)
meta_like = st.builds(
    lambda obj, entries: {"object": obj, "entry": entries},
    st.sampled_from(_OBJECTS),
    st.one_of(
        json_values,
        st.lists(st.dictionaries(st.sampled_from(_KEYS), json_values, max_size=5), max_size=3),
    ),
)

_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _raw_count(rig: Rig) -> int:
    return rig.scalar("select count(*) from meta_webhook_event")


@_SETTINGS
@given(body=meta_like)
def test_meta_shaped_garbage_is_stored_and_acknowledged(rig: Rig, body: dict) -> None:
    before = _raw_count(rig)
    response = rig.post_raw(serialize(body))
    assert response.status_code == 200, response.text
    assert _raw_count(rig) == before + 1


@_SETTINGS
@given(
    raw=st.one_of(
        st.binary(max_size=300), st.text(alphabet=string.printable, max_size=200).map(str.encode)
    )
)
def test_arbitrary_bytes_signed_and_unsigned(rig: Rig, raw: bytes) -> None:
    before = _raw_count(rig)
    assert rig.post_raw(raw, signature=None).status_code == 401
    assert rig.post_raw(raw, signature="sha256=" + "ab" * 32).status_code == 403
    assert _raw_count(rig) == before
    assert rig.post_raw(raw).status_code == 200
    assert _raw_count(rig) == before + 1


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_truncated_real_bodies(rig: Rig, data: st.DataObject) -> None:
    bodies = build_burst(rig.sandbox.sandbox, 30, seed=3)
    raw = data.draw(st.sampled_from(bodies))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    before = _raw_count(rig)
    assert rig.post_raw(raw[:cut]).status_code == 200
    assert _raw_count(rig) == before + 1
    status = rig.scalar("select status from meta_webhook_event order by id desc limit 1")
    assert status in ("applied", "ignored", "failed")
    if cut == len(raw):
        assert status == "applied"


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a parsed JSON body."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            found += _paths(value, prefix + (n,))
    return found


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_real_bodies_with_one_value_replaced(rig: Rig, data: st.DataObject) -> None:
    import orjson

    raw = data.draw(st.sampled_from(build_burst(rig.sandbox.sandbox, 40, seed=4)))
    body = orjson.loads(raw)
    path = data.draw(st.sampled_from(_paths(body)[1:]))
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(json_values)
    before = _raw_count(rig)
    response = rig.post_raw(serialize(body))
    assert response.status_code == 200, (path, response.text)
    assert _raw_count(rig) == before + 1
