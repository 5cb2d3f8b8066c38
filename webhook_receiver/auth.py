"""Bearer tokens on the receiver's API endpoints (CAPI intake, sends): who, and what they
may do.

The tokens are the EverReach app's JWTs: HS256, signed with ``API_JWT_SECRET``, ``exp``
required; ``sub`` = user id (required, except in the app backend's own service-role tokens,
which have none). Only HS256 is accepted, so a token cannot choose a weaker algorithm
(``none``) or an asymmetric one whose public key an attacker knows.

Authentication is not authorisation: an ordinary app user's token (``role:
authenticated``) proves who the user is, not that they may message contacts as the
business. :func:`authorize_send` lets through only a token whose ``role`` is one of
``EVERREACH_RECEIVER_SERVICE_ROLES`` (the app's backend) or that carries the agent claim
(``EVERREACH_RECEIVER_AGENT_CLAIM`` set to ``true``); others get 403 naming what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = [
    "AuthError",
    "Forbidden",
    "authorize_send",
    "forbidden_response",
    "is_service",
    "unauthorized_response",
    "verify_bearer",
]

log = logging.getLogger(__name__)

_REALM = "everreach"
_LEEWAY_SECONDS = 30  # clock skew between the app that issued the token and us


class AuthError(Exception):
    """The request is not authenticated; the route answers 401 with ``www_authenticate``.

    ``error`` is RFC 6750's code (``invalid_token``, or None when no token was sent at
    all); ``description`` says what is wrong without echoing the token.
    """

    def __init__(self, description: str, error: str | None = "invalid_token") -> None:
        super().__init__(description)
        self.description = description
        self.error = error

    @property
    def www_authenticate(self) -> str:
        """The ``WWW-Authenticate`` header value for the 401 answer."""
        header = f'Bearer realm="{_REALM}"'
        if self.error:
            safe = self.description.replace('"', "'")
            header += f', error="{self.error}", error_description="{safe}"'
        return header


def verify_bearer(
    request: Request,
    secret: str,
    *,
    audience: str | None = None,
    service_roles: Collection[str] = (),
) -> dict[str, Any]:
    """The verified claims of the request's ``Authorization: Bearer <JWT>``.

    Raises :class:`AuthError` when the header is missing or malformed, the signature or
    algorithm is wrong, the token has expired or lacks ``exp``/``sub`` (a token whose
    ``role`` is in ``service_roles`` may omit ``sub``), or no secret is configured (an
    empty secret would make forged tokens verify).
    """
    header = request.headers.get("authorization")
    if not header:
        raise AuthError("missing bearer token", error=None)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("authorization header must be 'Bearer <token>'")
    if not secret:
        log.error("API_JWT_SECRET is not set: refusing every API request")
        raise AuthError("authentication is not configured on this server")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=audience,
            leeway=_LEEWAY_SECONDS,
            options={"require": ["exp"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token lacks the '{exc.claim}' claim") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("token must be signed with HS256") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature is invalid") from None
    except jwt.InvalidTokenError:
        raise AuthError("token is malformed or invalid") from None
    sub = claims.get("sub")
    if sub is None and is_service(claims, service_roles):
        return claims
    if sub is None:
        raise AuthError("token lacks the 'sub' claim")
    if not isinstance(sub, str) or not sub.strip():
        raise AuthError("token 'sub' must be a non-empty string")
    return claims


def is_service(claims: dict[str, Any], service_roles: Collection[str]) -> bool:
    """Is this the app backend's own token (its ``role`` is a service role)?"""
    role = claims.get("role")
    return isinstance(role, str) and role in service_roles


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class Forbidden(Exception):
    """Authenticated, but not allowed to do this; the route answers 403 with the reason."""


def authorize_send(
    claims: dict[str, Any], service_roles: Collection[str], agent_claim: str | None
) -> tuple[str, str]:
    """(who sends, what allowed it) for a token that may send messages, else :class:`Forbidden`.

    The subject is the token's ``sub`` (a service token without one is named by its role);
    what allowed it is the service role, or ``agent`` for a token carrying the agent claim.
    """
    role = claims.get("role")
    sub = claims.get("sub")
    if is_service(claims, service_roles):
        return (sub if isinstance(sub, str) and sub else str(role)), str(role)
    if agent_claim and _claim(claims, agent_claim) is True:
        return str(sub), "agent"
    roles = ", ".join(sorted(service_roles))
    shown = f"'{role}'" if isinstance(role, str) else "no role"
    detail = (
        f"this token may not send messages: it has {shown}, not one of the service roles ({roles})"
    )
    detail += (
        f", and it lacks the agent claim {agent_claim} = true"
        if agent_claim
        else " (no agent claim is configured)"
    )
    raise Forbidden(detail)


def forbidden_response(error: Forbidden) -> JSONResponse:
    """The 403 answer for ``error``."""
    return JSONResponse({"error": "forbidden", "detail": str(error)}, status_code=403)


def unauthorized_response(error: AuthError) -> JSONResponse:
    """The 401 answer for ``error``, with the ``WWW-Authenticate`` challenge."""
    return JSONResponse(
        {"error": "unauthorized", "detail": error.description},
        status_code=401,
        headers={"WWW-Authenticate": error.www_authenticate},
    )
