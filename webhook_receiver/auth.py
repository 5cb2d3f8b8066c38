"""Bearer-token authentication for the receiver's API endpoints (CAPI intake, sends).

The tokens are the EverReach app's user JWTs: HS256, signed with ``API_JWT_SECRET``,
``sub`` = user id, ``exp`` required. Only HS256 is accepted, so a token cannot choose a
weaker algorithm (``none``) or an asymmetric one whose public key an attacker knows.
"""

from __future__ import annotations

import logging
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["AuthError", "unauthorized_response", "verify_bearer"]

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


def verify_bearer(request: Request, secret: str, *, audience: str | None = None) -> dict[str, Any]:
    """The verified claims of the request's ``Authorization: Bearer <JWT>``.

    Raises :class:`AuthError` when the header is missing or malformed, the signature or
    algorithm is wrong, the token has expired or lacks ``exp``/``sub``, or no secret is
    configured (an empty secret would make forged tokens verify).
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
            options={"require": ["exp", "sub"], "verify_aud": audience is not None},
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
    if not isinstance(sub, str) or not sub.strip():
        raise AuthError("token 'sub' must be a non-empty string")
    return claims


def unauthorized_response(error: AuthError) -> JSONResponse:
    """The 401 answer for ``error``, with the ``WWW-Authenticate`` challenge."""
    return JSONResponse(
        {"error": "unauthorized", "detail": error.description},
        status_code=401,
        headers={"WWW-Authenticate": error.www_authenticate},
    )
