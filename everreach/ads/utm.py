"""Landing URLs of ad creatives and their tracking (UTM) parameters.

Meta sends a click to the creative's destination URL with the creative's `url_tags`
appended to its query string. Advertisers write those by hand, so the parsing has to take
what they write:

* values are percent-decoded as UTF-8 (``Caf%C3%A9`` → ``Café``) and ``+`` is a space, as
  browsers and analytics tools decode a query string;
* parameter names are compared case-insensitively (``UTM_Source`` is ``utm_source``);
* a repeated parameter keeps its first non-empty value (analytics tools read the first one;
  the advertiser's own URL comes before the `url_tags` Meta appends), and every value is kept
  in ``params``;
* parameters after a ``#`` count only when the fragment carries a query string (single-page
  apps route with ``#/path?utm_source=…``) and the real query string lacks them; a plain
  anchor (``#pricing``) is ignored;
* Meta's dynamic parameters (``{{campaign.name}}``, ``{{ad.id}}``, …) are kept as written and
  flagged: Meta fills them in per click, and the marts resolve them per ad.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


@dataclass(frozen=True)
class Landing:
    """A creative's landing URL and what its query string says."""

    url: str | None  # the full landing URL (destination + url_tags)
    page: str | None  # scheme://host/path, host lower-cased, no query or fragment
    utm: dict[str, str | None] = field(default_factory=dict)  # the five UTM values
    params: dict[str, list[str]] = field(default_factory=dict)  # every parameter, decoded
    has_dynamic_params: bool = False


def landing_url(link: str | None, url_tags: str | None) -> str | None:
    """`link` with `url_tags` appended to its query string (before any fragment), the way
    Meta builds the URL a click lands on."""
    link = (link or "").strip() or None
    tags = (url_tags or "").strip().lstrip("?&")
    if link is None or not tags:
        return link
    base, hash_sign, fragment = link.partition("#")
    joiner = "&" if "?" in base else "?"
    if base.endswith(("?", "&")):
        joiner = ""
    return f"{base}{joiner}{tags}{hash_sign}{fragment}"


def _pairs(query: str) -> list[tuple[str, str]]:
    return [
        (k.strip().lower(), v.strip())
        for k, v in parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
        if k.strip()
    ]


def parse_landing(url: str | None) -> Landing:
    """The page and parameters of a landing URL (see the module docstring for the rules).
    A missing or unparsable URL gives an empty result, never an error: one odd creative
    must not stop a sync."""
    if not url or not url.strip():
        return Landing(None, None)
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return Landing(url, None)
    page = None
    if parts.scheme and parts.netloc:
        page = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))
    pairs = _pairs(parts.query)
    fragment = parts.fragment
    if "?" in fragment or fragment.lower().startswith("utm_"):
        fragment_query = fragment.split("?", 1)[1] if "?" in fragment else fragment
        pairs += _pairs(fragment_query)
    params: dict[str, list[str]] = {}
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    utm = {key: next((v for v in params.get(key, []) if v), None) for key in UTM_KEYS}
    dynamic = "{{" in url
    return Landing(url, page, utm, params, dynamic)


__all__ = ["UTM_KEYS", "Landing", "landing_url", "parse_landing"]
