"""Normalization + hashing of customer information, field by field (Meta's written rules)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from everreach.capi.normalize import (
    HASHED_FIELDS,
    PASS_THROUGH_FIELDS,
    NormalizationError,
    hash_field,
    normalize_field,
    normalize_user_data,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- Meta's published examples ------------------------------------------------------


def test_meta_published_email_example() -> None:
    assert normalize_field("em", "John_Smith@gmail.com") == "john_smith@gmail.com"
    assert hash_field("em", "John_Smith@gmail.com") == (
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )


def test_meta_published_us_phone_example() -> None:
    assert normalize_field("ph", "(650)555-1212") == "16505551212"


# --- the table: (field, input, normalized) -----------------------------------------

CASES: list[tuple[str, object, str]] = [
    # email: trim + lowercase
    ("em", "  Person@Example.COM ", "person@example.com"),
    ("em", "first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ("em", "ÉLODIE@exemple.fr", "élodie@exemple.fr"),
    # phone: digits only, country code, no + / 00 / leading zeros
    ("ph", "+1 (616) 954-78 88", "16169547888"),
    ("ph", "650.555.1212", "16505551212"),  # dots: the SDK refuses these
    ("ph", "1-650-555-1212", "16505551212"),
    ("ph", "+44 844 412 4653", "448444124653"),
    ("ph", "0044 844 412 4653", "448444124653"),
    ("ph", "+33 (0)6 12 34 56 78".replace("(0)", ""), "33612345678"),
    ("ph", 16505551212, "16505551212"),
    # first / last name: lowercase, no punctuation or spaces, accents kept
    ("fn", "Mary", "mary"),
    ("fn", "  JOHN ", "john"),
    ("fn", "Valéry", "valéry"),
    ("fn", "Jean-Luc", "jeanluc"),
    ("fn", "Mary Ann", "maryann"),
    ("ln", "O'Brien", "obrien"),
    ("ln", "Pérez-García", "pérezgarcía"),
    ("ln", "Smith, Jr.", "smithjr"),
    ("ln", "Müller", "müller"),
    ("ln", "Pe\u0301rez", "pérez"),  # decomposed accent → same as precomposed
    ("fn", "Zoë!", "zoë"),
    ("ln", "Ñúñez", "ñúñez"),
    # gender
    ("ge", "F", "f"),
    ("ge", "female", "f"),
    ("ge", " Male ", "m"),
    ("ge", "m", "m"),
    # date of birth → YYYYMMDD, several written forms
    ("db", "19970216", "19970216"),
    ("db", "1997-02-16", "19970216"),
    ("db", "1997/2/16", "19970216"),
    ("db", "2/16/1997", "19970216"),  # Meta's example (US order)
    ("db", "02/16/1997", "19970216"),
    ("db", "16/02/1997", "19970216"),  # day first: 16 cannot be a month
    ("db", "16.02.1997", "19970216"),
    ("db", "16-02-1997", "19970216"),
    ("db", "16 Feb 1997", "19970216"),
    ("db", "February 16, 1997", "19970216"),
    ("db", "Feb 16th 1997", "19970216"),
    ("db", "1997-02-16T00:00:00Z", "19970216"),
    ("db", dt.date(1997, 2, 16), "19970216"),
    ("db", dt.datetime(1997, 2, 16, 8, 30), "19970216"),
    # city: lowercase, no punctuation, no spaces
    ("ct", "Menlo Park", "menlopark"),
    ("ct", "St. Louis", "stlouis"),
    ("ct", "Winston-Salem", "winstonsalem"),
    ("ct", "São Paulo", "sãopaulo"),
    ("ct", "Zürich", "zürich"),
    # state: 2-letter code, full US names mapped, others stripped
    ("st", "CA", "ca"),
    ("st", "California", "ca"),
    ("st", "new york", "ny"),
    ("st", "N.Y.", "ny"),
    ("st", "District of Columbia", "dc"),
    ("st", "West Virginia", "wv"),
    ("st", "Île-de-France", "îledefrance"),
    ("st", "Bayern", "bayern"),
    # zip: lowercase, no spaces or dashes; US zip+4 → 5 digits
    ("zp", "94025", "94025"),
    ("zp", "94025-1234", "94025"),
    ("zp", "940251234", "94025"),
    ("zp", " 02134 ", "02134"),
    ("zp", 2134, "02134"),
    ("country", "US", "us"),
    ("country", "usa", "us"),
    ("country", "United States", "us"),
    ("country", "U.S.", "us"),
    ("country", "GBR", "gb"),
    ("country", "United Kingdom", "gb"),
    ("country", "uk", "gb"),
    ("country", "DE", "de"),
    ("country", "Deutschland", "de"),
    ("country", "fr", "fr"),
    ("country", "BRA", "br"),
    # external id: trimmed, lowercase
    ("external_id", " ABC-123 ", "abc-123"),
    ("external_id", 42, "42"),
]


@pytest.mark.parametrize(("field", "raw", "normalized"), CASES)
def test_normalizes_and_hashes(field: str, raw: object, normalized: str) -> None:
    assert normalize_field(field, raw) == normalized
    assert hash_field(field, raw) == sha(normalized)


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("M1 1AE", "gb", "m11ae"),  # UK: area/district/sector, no space
        ("SW1A 1AA", "gb", "sw1a1aa"),
        ("10115", "de", "10115"),
        ("K1A 0B1", "ca", "k1a0b1"),
        ("94025-1234", "us", "94025"),
        ("123456789", "br", "123456789"),  # not US: no cut
    ],
)
def test_zip_depends_on_country(raw: str, country: str, normalized: str) -> None:
    assert normalize_field("zp", raw, country=country) == normalized


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("020 7946 0958", "gb", "442079460958"),  # trunk 0 → country code
        ("07700 900123", "gb", "447700900123"),
        ("06 12 34 56 78", "fr", "33612345678"),
        ("030 123456", "de", "4930123456"),
        ("(650) 555-1212", "ca", "16505551212"),
        ("+49 30 123456", "us", "4930123456"),  # written internationally: its own code
    ],
)
def test_phone_uses_the_events_country(raw: str, country: str, normalized: str) -> None:
    assert normalize_field("ph", raw, country=country) == normalized


def test_user_data_country_drives_zip_and_phone() -> None:
    out = normalize_user_data(
        {"country": "United Kingdom", "zp": "SW1A 1AA", "ph": "020 7946 0958"}
    )
    assert out == {"country": sha("gb"), "zp": sha("sw1a1aa"), "ph": sha("442079460958")}


# --- already hashed ----------------------------------------------------------------


@pytest.mark.parametrize("field", HASHED_FIELDS)
def test_sha256_hex_passes_through_lowercased(field: str) -> None:
    digest = sha("anything")
    assert hash_field(field, digest) == digest
    assert hash_field(field, "  " + digest.upper() + " ") == digest


def test_hex_of_wrong_length_is_not_taken_as_a_hash() -> None:
    md5_like = "0123456789abcdef0123456789abcdef"
    assert hash_field("external_id", md5_like) == sha(md5_like)


# --- invalid values: refused, the message names the field and not the value -----------

INVALID = [
    ("em", "not-an-email"),
    ("em", "two@@example.com"),
    ("em", "spaces in@example.com"),
    ("ph", "call me maybe"),
    ("ph", "+1 555"),
    ("ph", "12345678901234567"),
    ("fn", "!!!"),
    ("ln", "  "),
    ("ge", "x"),
    ("ge", "other"),
    ("db", "yesterday"),
    ("db", "1997-02-30"),
    ("db", "13/13/1997"),
    ("db", "1850-01-01"),
    ("ct", "12345"),
    ("st", "..."),
    ("zp", "9402#5"),
    ("country", "Atlantis"),
    ("country", "zz"),
    ("fn", 3.14),
    ("em", True),
]


@pytest.mark.parametrize(("field", "raw"), INVALID)
def test_invalid_values_are_refused_without_echoing_them(field: str, raw: object) -> None:
    with pytest.raises(NormalizationError) as info:
        hash_field(field, raw)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    text = str(raw).strip()
    if len(text) > 2:
        assert text not in str(info.value)


def test_zip_with_us_country_must_be_a_us_zip() -> None:
    with pytest.raises(NormalizationError, match="^zp: "):
        normalize_field("zp", "SW1A 1AA", country="us")


# --- user_data as a whole -------------------------------------------------------------


def test_user_data_hashes_pii_and_keeps_identifiers_in_clear() -> None:
    raw = {
        "em": ["A@Example.com", "a@example.com ", ""],
        "ph": "650-555-1212",
        "fn": "Zoë",
        "ln": "O'Hara",
        "ge": "female",
        "db": "1990-01-31",
        "ct": "New York",
        "st": "New York",
        "zp": "10001-0001",
        "country": "US",
        "external_id": "User-7",
        "client_ip_address": "203.0.113.7",
        "client_user_agent": "Mozilla/5.0",
        "fbc": "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
        "fbp": "fb.1.1558571054389.1098115397",
        "lead_id": "525645896321548",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a",
        "subscription_id": "sub_1",
        "page_scoped_user_id": "998877",
    }
    out = normalize_user_data(raw)
    assert out["em"] == [sha("a@example.com")]  # duplicates collapse, blanks drop
    assert out["ph"] == sha("16505551212")
    assert out["fn"] == sha("zoë")
    assert out["ln"] == sha("ohara")
    assert out["ge"] == sha("f")
    assert out["db"] == sha("19900131")
    assert out["ct"] == sha("newyork")
    assert out["st"] == sha("ny")
    assert out["zp"] == sha("10001")
    assert out["country"] == sha("us")
    assert out["external_id"] == sha("user-7")
    for key in (
        "client_ip_address",
        "client_user_agent",
        "fbc",
        "fbp",
        "lead_id",
        "ctwa_clid",
        "subscription_id",
        "page_scoped_user_id",
    ):
        assert out[key] == raw[key], key  # never hashed; fbc keeps its case
    assert set(PASS_THROUGH_FIELDS) >= {"client_ip_address", "fbc", "fbp", "lead_id"}


def test_unknown_user_data_key_is_refused() -> None:
    with pytest.raises(NormalizationError, match="^email_address: "):
        normalize_user_data({"email_address": "a@example.com"})


def test_blank_values_are_dropped() -> None:
    assert normalize_user_data({"em": "  ", "ph": None, "fn": []}) == {}


# --- the bulk path (direct dispatch, digest caches) agrees with hash_field ----------------


@pytest.mark.parametrize(
    ("field", "raw", "normalized"), [c for c in CASES if isinstance(c[1], str)]
)
def test_user_data_fast_path_matches_hash_field(field: str, raw: str, normalized: str) -> None:
    assert normalize_user_data({field: raw}) == {field: sha(normalized)}
    digest = sha(normalized)
    assert normalize_user_data({field: f" {digest.upper()} "}) == {field: digest}


def test_cached_zip_digest_depends_on_country() -> None:
    us = hash_field("zp", "123456789")
    br = hash_field("zp", "123456789", country="br")
    assert us == sha("12345") and br == sha("123456789")
    assert hash_field("zp", "123456789") == us  # served from the cache, still per country


def test_cache_does_not_swallow_errors() -> None:
    for _ in range(2):
        with pytest.raises(NormalizationError, match="^ge: "):
            normalize_user_data({"ge": "unknown"})
