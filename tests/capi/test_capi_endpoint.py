"""``POST /api/v1/integrations/meta/conversions``: JWT auth, validation, hashing, dedup."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import jwt
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.testclient import TestClient

from everreach.capi.settings import CapiSettings
from webhook_receiver.conversions import PATH, routes

SECRET = "test-secret-that-is-long-enough-for-hs256"
PIXEL = "700000000000001"


def make_app(database_url: str, **settings: object) -> Starlette:
    """The receiver's state contract (settings + async pool), around our routes only."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncConnectionPool(
            database_url, min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
        ) as pool:
            app.state.pool = pool
            yield

    app = Starlette(routes=routes(), lifespan=lifespan)
    app.state.settings = SimpleNamespace(
        jwt_secret=SECRET, capi=CapiSettings(pixel_id=PIXEL), **settings
    )
    return app


@pytest.fixture
def client(database_url: str, db: psycopg.Connection) -> Iterator[TestClient]:
    with TestClient(make_app(database_url)) as c:
        yield c


def token(
    sub: str | None = "00000000-0000-0000-0000-000000000001",
    *,
    exp_in: int = 3600,
    secret: str = SECRET,
    algorithm: str = "HS256",
    **extra: object,
) -> str:
    claims: dict[str, object] = {"exp": int(time.time()) + exp_in, **extra}
    if sub is not None:
        claims["sub"] = sub
    return jwt.encode(claims, secret, algorithm=algorithm)


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


EXAMPLE = {
    "event_name": "Purchase",
    "email": "user@example.com",
    "value": 29.99,
    "currency": "USD",
    "test_event_code": "TEST12345",
}


def test_issue_example_is_queued_hashed_and_flagged_as_test(
    client: TestClient, db: psycopg.Connection
) -> None:
    user_id = db.execute(
        "insert into auth.users (email) values ('x@example.com') returning id"
    ).fetchone()[0]
    resp = client.post(PATH, json=EXAMPLE, headers=auth(token(str(user_id))))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["queued"] == 1 and body["duplicates"] == 0
    row = db.execute(
        "select pixel_id, event_name, user_id, user_data, value, currency, "
        "test_event_code, is_test, status, source from meta_conversion_event"
    ).fetchone()
    assert row[0] == PIXEL and row[1] == "Purchase" and row[2] == user_id
    assert set(row[3]) == {"em", "external_id"}
    assert "user@example.com" not in str(row[3])
    assert float(row[4]) == 29.99 and row[5] == "USD"
    assert row[6] == "TEST12345" and row[7] is True
    assert row[8] == "pending" and row[9] == "api"


def test_resubmission_is_a_duplicate(client: TestClient, db: psycopg.Connection) -> None:
    payload = {**EXAMPLE, "event_time": int(time.time()) - 60}
    first = client.post(PATH, json=payload, headers=auth(token()))
    again = client.post(PATH, json=payload, headers=auth(token()))
    assert first.json()["queued"] == 1
    assert again.status_code == 202 and again.json()["duplicates"] == 1
    assert db.execute("select count(*) from meta_conversion_event").fetchone()[0] == 1


def test_list_body_and_meta_user_data(client: TestClient, db: psycopg.Connection) -> None:
    body = [
        {
            "event_name": "Lead",
            "event_id": "lead-1",
            "user_data": {"em": ["a@example.com"], "ph": "+1 650 555 1212"},
        },
        {
            "event_name": "ViewContent",
            "event_id": "vc-1",
            "action_source": "website",
            "event_source_url": "https://shop.example.com/p/1",
            "client_user_agent": "Mozilla/5.0",
            "fbp": "fb.1.1558571054389.1098115397",
        },
    ]
    resp = client.post(PATH, json=body, headers=auth(token(sub="not-a-uuid")))
    assert resp.status_code == 202, resp.text
    assert resp.json()["queued"] == 2
    rows = db.execute(
        "select event_id, user_id, user_data from meta_conversion_event order by event_id"
    ).fetchall()
    assert [r[0] for r in rows] == ["lead-1", "vc-1"]
    assert all(r[1] is None for r in rows)  # the subject is not an app user id
    assert rows[1][2]["fbp"] == "fb.1.1558571054389.1098115397"


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": "Basic abc"}, "invalid_token"),
        ({"Authorization": "Bearer "}, "invalid_token"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid_token"),
    ],
)
def test_missing_or_malformed_token_is_401(
    client: TestClient, headers: dict[str, str], error: str | None
) -> None:
    resp = client.post(PATH, json=EXAMPLE, headers=headers)
    assert resp.status_code == 401
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="everreach"')
    assert (f'error="{error}"' in challenge) if error else ("error=" not in challenge)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: token(exp_in=-120), id="expired"),
        pytest.param(lambda: token(secret="another-secret-of-sufficient-length!!"), id="wrong-key"),
        pytest.param(lambda: token(sub=None), id="no-sub"),
        pytest.param(lambda: jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(
            lambda: token(algorithm="HS512"),
            id="hs512",
            marks=pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
        ),
        pytest.param(
            lambda: jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, None, algorithm="none"),
            id="alg-none",
        ),
        pytest.param(lambda: token(sub=""), id="empty-sub"),
    ],
)
def test_invalid_tokens_are_401(client: TestClient, db: psycopg.Connection, bad) -> None:
    resp = client.post(PATH, json=EXAMPLE, headers=auth(bad()))
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert db.execute("select count(*) from meta_conversion_event").fetchone()[0] == 0


def test_token_with_audience_claim_is_accepted(client: TestClient) -> None:
    # Supabase-style app tokens carry aud="authenticated".
    resp = client.post(PATH, json=EXAMPLE, headers=auth(token(aud="authenticated")))
    assert resp.status_code == 202


def _sign_with_empty_key(claims: dict[str, object]) -> str:
    # PyJWT refuses to sign with an empty key; an attacker would not.
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(b"", signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def test_empty_secret_refuses_everything(database_url: str, db: psycopg.Connection) -> None:
    app = make_app(database_url)
    app.state.settings.jwt_secret = ""
    forged = _sign_with_empty_key({"sub": "u", "exp": int(time.time()) + 60})
    with TestClient(app) as c:
        assert c.post(PATH, json=EXAMPLE, headers=auth(forged)).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com"}, "event_name"),
        ({**EXAMPLE, "email": "not-an-email"}, "email"),
        ({**EXAMPLE, "phone": "call me"}, "phone"),
        ({**EXAMPLE, "currency": "dollars"}, "currency"),
        ({**EXAMPLE, "value": "lots"}, "value"),
        ({**EXAMPLE, "event_time": "yesterday"}, "event_time"),
        ({**EXAMPLE, "action_source": "website"}, "event_source_url"),
        ({**EXAMPLE, "action_source": "teleport"}, "action_source"),
        ({**EXAMPLE, "user_data": {"em": "bad"}}, "user_data.em"),
        ({**EXAMPLE, "ssn": "123-45-6789"}, "ssn"),
        ({"event_name": "Purchase", "email": "a@example.com"}, "value"),
        ([EXAMPLE, {**EXAMPLE, "zip": "12#45"}], "[1].zip"),
        ([], "body"),
        ("just a string", "body"),
    ],
)
def test_malformed_body_is_422_naming_the_field(
    client: TestClient, db: psycopg.Connection, body: object, field: str
) -> None:
    resp = client.post(PATH, json=body, headers=auth(token()))
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field
    assert db.execute("select count(*) from meta_conversion_event").fetchone()[0] == 0
    # The error never echoes the personal data it refused.
    for secret in ("not-an-email", "call me", "12#45", "123-45-6789"):
        assert secret not in resp.text


def test_stale_or_future_event_is_422_naming_event_time(
    client: TestClient, db: psycopg.Connection
) -> None:
    """An event older than Meta's 7 days (or beyond the clock skew in the future) is refused at
    the door, not queued as pending to be rejected at delivery; one inside the limit passes."""
    now = int(time.time())
    day = 86400
    for event_time, field in (
        (now - 7 * day - 3600, "event_time"),
        (now + 3600, "event_time"),
    ):
        resp = client.post(PATH, json={**EXAMPLE, "event_time": event_time}, headers=auth(token()))
        assert resp.status_code == 422, resp.text
        assert resp.json()["field"] == field and "event_time" in resp.json()["detail"]
    stale = [EXAMPLE, {**EXAMPLE, "event_id": "old-1", "event_time": now - 8 * day}]
    resp = client.post(PATH, json=stale, headers=auth(token()))
    assert resp.status_code == 422 and resp.json()["field"] == "[1].event_time"
    assert "7 days old" in resp.json()["detail"]
    assert db.execute("select count(*) from meta_conversion_event").fetchone()[0] == 0
    recent = {**EXAMPLE, "event_time": now - 7 * day + 3600}
    assert client.post(PATH, json=recent, headers=auth(token())).status_code == 202


def test_invalid_json_is_422(client: TestClient) -> None:
    resp = client.post(
        PATH,
        content=b'{"email": "a@example.com",',
        headers={**auth(token()), "content-type": "application/json"},
    )
    assert resp.status_code == 422 and resp.json()["field"] == "body"
    assert "a@example.com" not in resp.text


def test_global_test_mode_setting(database_url: str, db: psycopg.Connection) -> None:
    app = make_app(database_url)
    app.state.settings.capi = CapiSettings(pixel_id=PIXEL, test_event_code="GLOBAL42")
    payload = {"event_name": "Lead", "email": "b@example.com"}
    with TestClient(app) as c:
        assert c.post(PATH, json=payload, headers=auth(token(str(uuid.uuid4())))).status_code == 202
    assert db.execute("select test_event_code, is_test from meta_conversion_event").fetchone() == (
        "GLOBAL42",
        True,
    )
