"""``X-Hub-Signature-256``: HMAC-SHA256 of the raw body keyed by the Meta app secret."""

from __future__ import annotations

import hashlib
import hmac

_PREFIX = "sha256="


def sign(app_secret: str, body: bytes) -> str:
    """The header value Meta would send for ``body``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def signature_matches(app_secret: str, body: bytes, header: str) -> bool:
    """Constant-time check of ``header`` against the body's HMAC (over the raw bytes)."""
    if not app_secret or not header.startswith(_PREFIX):
        return False
    expected = sign(app_secret, body)
    # Compare bytes of equal meaning: hex case should not matter, timing must not leak.
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())
