"""Normalization and SHA-256 hashing of Conversions API customer information.

Implements Meta's written "customer information parameters" rules field by field
(https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/
customer-information-parameters):

=============  ==============================================================
``em``          trim, lowercase; must look like ``local@domain.tld``
``ph``          digits only, with the country code, no ``+``/``00``/leading
                zeros (a national number loses its trunk prefix and gets its
                country's calling code, by that country's numbering plan)
``fn``/``ln``   lowercase, no punctuation, no spaces; accents kept (UTF-8)
``ge``          ``f`` or ``m``
``db``          ``YYYYMMDD``
``ct``          lowercase, no punctuation, no spaces, no digits; accents kept
``st``          2-letter ANSI code for US states (full names of states, DC and
                territories mapped), else lowercase without punctuation or spaces
``zp``          lowercase, no spaces or dashes; US: first 5 digits
``country``     ISO 3166-1 alpha-2, lowercase (alpha-3 codes and country names
                mapped)
``external_id`` trimmed, lowercase; hashing recommended, so we hash it
=============  ==============================================================

A value that already is 64 hex characters is taken as a SHA-256 digest and passes
through (lowercased). Identifiers Meta needs in clear (client IP, user agent, fbp,
fbc, lead id, ctwa_clid, …) are never hashed.

Every country's numbering plan (calling code, trunk and call-abroad prefixes, number
lengths) comes from ``phonenumbers``; ISO 3166 country codes and names, and the names
of US states and territories, from ``pycountry``. Neither is copied into this module.

Meta's official Python SDK (``facebook-business``) departs from the written rules in
places; here the written rules win, deliberately: the SDK sends ``external_id`` in
clear, keeps a 9-digit zip whole, maps no state names, does not reformat dates, keeps
punctuation in names, refuses country names and phones written with dots, hashes
``female`` as written, adds no calling code to a national number and keeps a trunk
prefix (``8 (912) 345-67-89`` in Russia; the ``0`` of ``+44 (0)20 …``). The SDK-oracle
tests assert each difference.

Errors are :class:`NormalizationError`; their message names the field and what is
wrong, never the value, so they are safe to log and to return to callers.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import phonenumbers
import pycountry

__all__ = [
    "HASHED_FIELDS",
    "PASS_THROUGH_FIELDS",
    "FLAT_KEY_TO_FIELD",
    "NormalizationError",
    "sha256_hex",
    "is_sha256_hex",
    "normalize_email",
    "normalize_phone",
    "normalize_name",
    "normalize_gender",
    "normalize_date_of_birth",
    "normalize_city",
    "normalize_state",
    "normalize_zip",
    "normalize_country",
    "normalize_external_id",
    "normalize_field",
    "hash_field",
    "normalize_user_data",
]

#: user_data keys that Meta requires (or recommends) to be SHA-256 hashed.
HASHED_FIELDS: tuple[str, ...] = (
    "em",
    "ph",
    "fn",
    "ln",
    "ge",
    "db",
    "ct",
    "st",
    "zp",
    "country",
    "external_id",
)

#: user_data keys Meta needs in clear text. fbc/fbp carry a case-sensitive fbclid.
PASS_THROUGH_FIELDS: tuple[str, ...] = (
    "client_ip_address",
    "client_user_agent",
    "fbc",
    "fbp",
    "subscription_id",
    "fb_login_id",
    "lead_id",
    "anon_id",
    "madid",
    "page_id",
    "page_scoped_user_id",
    "ctwa_clid",
    "ig_account_id",
    "ig_sid",
)

#: Flat body keys an intake payload may use for customer information → Meta's user_data keys.
FLAT_KEY_TO_FIELD: dict[str, str] = {
    "email": "em",
    "phone": "ph",
    "first_name": "fn",
    "last_name": "ln",
    "gender": "ge",
    "date_of_birth": "db",
    "city": "ct",
    "state": "st",
    "zip": "zp",
    "country": "country",
    "external_id": "external_id",
    "client_ip_address": "client_ip_address",
    "client_user_agent": "client_user_agent",
    "fbp": "fbp",
    "fbc": "fbc",
}


class NormalizationError(ValueError):
    """A customer-information value that cannot be normalized.

    ``field`` is the user_data key (``em``, ``ph``…); the message never contains the
    offending value, because it is personal data.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def sha256_hex(normalized: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of an already normalized value."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


_HEX = frozenset(string.hexdigits)


def is_sha256_hex(value: str) -> bool:
    """True when ``value`` (already stripped) is 64 hexadecimal characters."""
    return len(value) == 64 and _HEX.issuperset(value)


# --- helpers ---------------------------------------------------------------------

# ASCII punctuation, whitespace and digits, deleted in one C-level translate call on
# the common all-ASCII path; non-ASCII input takes the Unicode-category path.
_ASCII_DROP_ALL = str.maketrans("", "", string.punctuation + string.whitespace + string.digits)


def _letters_only(value: str) -> str:
    """Lowercase letters (with their accents) only: no punctuation, spaces, digits."""
    if value.isascii():
        return value.translate(_ASCII_DROP_ALL).lower()
    # NFC so "é" typed as e + combining accent hashes like the precomposed letter.
    value = unicodedata.normalize("NFC", value).lower()
    return "".join(ch for ch in value if unicodedata.category(ch)[0] in "LM")


def _as_text(field: str, value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):  # bool is an int: refuse it explicitly
        raise NormalizationError(field, "must be a string")
    if isinstance(value, int):
        return str(value)
    raise NormalizationError(field, "must be a string")


# --- email -----------------------------------------------------------------------

_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")


def normalize_email(value: str) -> str:
    """Trim and lowercase an email address; reject what is not ``local@domain.tld``."""
    email = _as_text("em", value).lower()
    if not _EMAIL.fullmatch(email):
        raise NormalizationError("em", "not a valid email address")
    return email


# --- phone -----------------------------------------------------------------------

# What a written phone number may contain besides digits. Letters are refused rather
# than read as keypad digits (1-800-FLOWERS), like the SDK does.
_PHONE_ALLOWED = frozenset("0123456789 +-().\t/")
_DIGITS_ONLY = str.maketrans("", "", " +-().\t/")

_POSSIBLE_PROBLEMS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "has no known country calling code",
    phonenumbers.ValidationResult.TOO_SHORT: "is too short for a phone number of its country",
    phonenumbers.ValidationResult.TOO_LONG: "is too long for a phone number of its country",
    phonenumbers.ValidationResult.INVALID_LENGTH: "has a length no phone number of its country has",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "lacks its area code",
}
_PARSE_PROBLEMS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has no known country calling code",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short to be a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    phonenumbers.NumberParseException.TOO_LONG: "is too long to be a phone number",
}


def _phone_region(country: str | None) -> str | None:
    """The region phonenumbers knows for a lowercase alpha-2 code, else None."""
    region = (country or "").upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def _library_e164(digits: str, international: bool, region: str | None) -> str:
    """E.164 digits as phonenumbers reads them: the reference for every phone.

    ``digits`` follow a ``+`` when ``international``, else they are written as dialled
    in ``region``. A leading ``00`` is the international call prefix in most of the
    world, so it is read as one even where the region's own prefix differs (``011`` in
    the US), unless the region's own prefix (``0011`` in Australia) explains it.
    """
    try:
        if international:
            number = phonenumbers.parse("+" + digits)
        elif digits.startswith("00") and region is not None:
            number = phonenumbers.parse(digits, region, keep_raw_input=True)
            if number.country_code_source != phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD:
                number = phonenumbers.parse("+" + digits[2:].lstrip("0"))
        else:
            number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException as exc:
        raise NormalizationError(
            "ph", _PARSE_PROBLEMS.get(exc.error_type, "is not a phone number")
        ) from None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise NormalizationError("ph", _POSSIBLE_PROBLEMS.get(reason, "is not a phone number"))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


# Parsing with phonenumbers costs several times what hashing a whole event does, and
# most numbers need none of its judgement. The fast paths below follow the library's
# own reading for the plain cases, with its own metadata: a call-abroad prefix or a
# leading calling code is left to the library; a national prefix (trunk prefix) is
# dropped, or rewritten as the library's metadata says, only where the library
# certainly does so (the result is a complete national number of the country);
# anything else goes to the library. A test checks that both give the same answer on
# numbers of every region.


@dataclasses.dataclass(frozen=True, slots=True)
class _PlanFacts:
    code: str  # the calling code, as digits
    national_prefix: re.Pattern[str] | None  # the trunk prefixes phonenumbers strips
    rewrite: str | None  # how phonenumbers rewrites a prefix (Argentina's 0 + area + 15)
    international_prefix: re.Pattern[str] | None  # the region's own call-abroad prefix
    national_number: re.Pattern[str] | None  # every national number of the region
    own_lengths: frozenset[int]  # lengths of its complete national numbers
    possible_lengths: frozenset[int]  # the same for the calling code's main region


def _lengths(metadata: Any) -> frozenset[int]:
    general = metadata.general_desc
    return frozenset(general.possible_length) - frozenset(general.possible_length_local_only)


def _facts(metadata: Any, main: Any) -> _PlanFacts:
    prefix = metadata.national_prefix_for_parsing
    idd = metadata.international_prefix
    pattern = metadata.general_desc.national_number_pattern
    return _PlanFacts(
        code=str(metadata.country_code),
        national_prefix=re.compile(prefix) if prefix else None,
        rewrite=metadata.national_prefix_transform_rule or None,
        international_prefix=re.compile(idd) if idd else None,
        national_number=re.compile(pattern) if pattern else None,
        own_lengths=_lengths(metadata),
        possible_lengths=_lengths(main),
    )


@functools.cache
def _calling_code_facts(code: str) -> _PlanFacts | None:
    """How phonenumbers reads ``+<code>…``: with the metadata of the code's main region."""
    main_region = phonenumbers.region_code_for_country_code(int(code))
    main = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(int(code), main_region)
    return None if main is None else _facts(main, main)


@functools.cache
def _region_facts(region: str) -> _PlanFacts:
    """How phonenumbers reads a number dialled in ``region``; lengths of its code's main region."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    main_region = phonenumbers.region_code_for_country_code(metadata.country_code)
    main = phonenumbers.PhoneMetadata.metadata_for_region(main_region)
    return _facts(metadata, main)


def _national_number(digits: str, facts: _PlanFacts) -> str | None:
    """``digits`` without their trunk prefix, as phonenumbers would take them, or None
    when only the library can tell."""
    match = facts.national_prefix.match(digits) if facts.national_prefix is not None else None
    if match is not None:
        groups = match.groups()
        if facts.rewrite is not None and groups and groups[-1] is not None:
            # The library replaces the prefix it matched by its rewrite of it.
            digits = match.expand(facts.rewrite) + digits[match.end() :]
        else:
            digits = digits[match.end() :]
        # The library keeps the number as written when what it would make of it is no
        # national number of the country, or is too short for one.
        if (
            facts.national_number is None
            or not facts.national_number.fullmatch(digits)
            or len(digits) not in facts.own_lengths
        ):
            return None
    if not digits or digits[0] == "0" or len(digits) not in facts.possible_lengths:
        return None
    return digits


_CALLING_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _fast_international(digits: str) -> str | None:
    """E.164 digits of a number written ``+<digits>``, or None to ask the library."""
    for size in (1, 2, 3):  # calling codes are prefix-free: the first known one is it
        code = digits[:size]
        if code in _CALLING_CODES:
            break
    else:
        return None
    facts = _calling_code_facts(code)
    national = _national_number(digits[size:], facts) if facts is not None else None
    return None if national is None else code + national


def _fast_national(digits: str, region: str) -> str | None:
    """E.164 digits of a number dialled in ``region``, or None to ask the library."""
    facts = _region_facts(region)
    if digits.startswith(facts.code) or (
        facts.international_prefix is not None and facts.international_prefix.match(digits)
    ):
        return None  # it may carry a calling code: the library decides
    national = _national_number(digits, facts)
    return None if national is None else facts.code + national


def normalize_phone(value: str | int, default_country: str | None = "us") -> str:
    """Digits only, with the country calling code, no ``+``, ``00`` or leading zeros.

    A number written internationally (``+44 …``, ``0044 …``, or with the region's own
    call-abroad prefix such as ``011`` in the US) keeps its own country code. A national
    number is read as dialled in ``default_country`` (the event's country when known):
    the country's trunk prefix is dropped (``0`` in most of Europe, ``8`` in Russia,
    ``06`` in Hungary) and its calling code added, so Meta's example ``(650)555-1212``
    becomes ``16505551212``. Without a country (or one without a numbering plan) the
    digits are taken as written internationally. phonenumbers decides all of this from
    every country's numbering plan; a number that cannot be complete in its country
    (too short, too long, no area code, unknown calling code) is refused.
    """
    text = _as_text("ph", value)
    if not _PHONE_ALLOWED.issuperset(text):
        raise NormalizationError("ph", "may only contain digits, spaces and + - ( ) . /")
    digits = text.translate(_DIGITS_ONLY)
    if not digits:
        raise NormalizationError("ph", "has no digits")
    region = _phone_region(default_country)
    international = text.startswith("+") or region is None
    if international:
        # No calling code starts with 0: zeros before it are a call-abroad prefix ("+00 44").
        digits = digits.lstrip("0")
        if not digits:
            raise NormalizationError("ph", "is not a phone number")
        fast = _fast_international(digits)
    else:
        fast = _fast_national(digits, region)
    return fast if fast is not None else _library_e164(digits, international, region)


# --- names, city, state ------------------------------------------------------------


def normalize_name(value: str, field: str = "fn") -> str:
    """Lowercase, no punctuation, spaces or digits; accents kept (``Valéry`` → ``valéry``)."""
    name = _letters_only(_as_text(field, value))
    if not name:
        raise NormalizationError(field, "has no letters")
    return name


def normalize_city(value: str) -> str:
    """Lowercase, no punctuation, spaces or digits (``Menlo Park`` → ``menlopark``)."""
    city = _letters_only(_as_text("ct", value))
    if not city:
        raise NormalizationError("ct", "has no letters")
    return city


# Spellings of US states and territories that their ISO 3166-2 names do not cover.
_US_STATE_ALIASES = {"washingtondc": "dc", "usvirginislands": "vi"}


@functools.cache
def _us_state_codes() -> dict[str, str]:
    """US state, district and territory names (letters only) → 2-letter code."""
    codes = {
        _letters_only(subdivision.name): subdivision.code.split("-")[1].lower()
        for subdivision in pycountry.subdivisions.get(country_code="US")
    }
    for alias, code in _US_STATE_ALIASES.items():
        codes.setdefault(alias, code)
    return codes


def normalize_state(value: str) -> str:
    """US state → 2-letter ANSI code; other regions lowercase without punctuation/spaces."""
    state = _letters_only(_as_text("st", value))
    if not state:
        raise NormalizationError("st", "has no letters")
    return _us_state_codes().get(state, state)


# --- gender, date of birth ----------------------------------------------------------

_GENDERS = {"f": "f", "female": "f", "woman": "f", "m": "m", "male": "m", "man": "m"}


def normalize_gender(value: str) -> str:
    """``f`` or ``m`` (``Female``/``MALE``/``f`` accepted)."""
    gender = _GENDERS.get(_letters_only(_as_text("ge", value)))
    if gender is None:
        raise NormalizationError("ge", "must be f or m (female or male)")
    return gender


_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_DATE_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_SLASH = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_DATE_DOT_DASH = re.compile(r"(\d{1,2})[.-](\d{1,2})[.-](\d{4})")
_DATE_DAY_MONTH_NAME = re.compile(r"(\d{1,2})[ -]([a-z]+)\.?,?[ -](\d{4})")
_DATE_MONTH_NAME_DAY = re.compile(r"([a-z]+)\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})")


def _parse_date(text: str) -> tuple[int, int, int] | None:
    """(year, month, day) from the written forms of a date we accept, else None."""
    if m := _DATE_COMPACT.fullmatch(text):
        return int(m[1]), int(m[2]), int(m[3])
    if m := _DATE_YMD.fullmatch(text):
        return int(m[1]), int(m[2]), int(m[3])
    if m := _DATE_SLASH.fullmatch(text):
        # US order (Meta's example 2/16/1997) unless the first part cannot be a month.
        a, b = int(m[1]), int(m[2])
        return (int(m[3]), b, a) if a > 12 else (int(m[3]), a, b)
    if m := _DATE_DOT_DASH.fullmatch(text):
        # Dots and dashes are day-first outside the US, unless the day part can't be one.
        a, b = int(m[1]), int(m[2])
        return (int(m[3]), a, b) if b > 12 else (int(m[3]), b, a)
    lowered = text.lower()
    if m := _DATE_DAY_MONTH_NAME.fullmatch(lowered):
        month = _MONTHS.get(m[2])
        return (int(m[3]), month, int(m[1])) if month else None
    if m := _DATE_MONTH_NAME_DAY.fullmatch(lowered):
        month = _MONTHS.get(m[1])
        return (int(m[3]), month, int(m[2])) if month else None
    return None


def normalize_date_of_birth(value: str | _dt.date) -> str:
    """``YYYYMMDD`` from a date, or from ``1997-02-16``, ``19970216``, ``2/16/1997``,
    ``16.02.1997``, ``16 Feb 1997``, ``February 16, 1997`` and similar."""
    if isinstance(value, _dt.datetime):
        value = value.date()
    if isinstance(value, _dt.date):
        parts: tuple[int, int, int] | None = (value.year, value.month, value.day)
    else:
        parts = _parse_date(_as_text("db", value))
    if parts is None:
        raise NormalizationError("db", "is not a date (use YYYY-MM-DD)")
    year, month, day = parts
    try:
        birth = _dt.date(year, month, day)
    except ValueError:
        raise NormalizationError("db", "is not a valid calendar date") from None
    if not 1900 <= birth.year <= _dt.date.today().year:
        raise NormalizationError("db", "year is out of range")
    return f"{birth.year:04d}{birth.month:02d}{birth.day:02d}"


# --- zip, country, external id ------------------------------------------------------

_ZIP_DROP = str.maketrans("", "", " \t-")
_US_ZIP = re.compile(r"\d{5}(?:\d{4})?")


def normalize_zip(value: str | int, country: str | None = None) -> str:
    """Lowercase, no spaces or dashes; US zip codes cut to their first 5 digits.

    When ``country`` is unknown a 5- or 9-digit code is taken as a US zip (zip+4).
    """
    text = _as_text("zp", value)
    if isinstance(value, int):
        text = text.zfill(5)  # leading zeros lost to an integer type (e.g. 02134)
    zp = text.translate(_ZIP_DROP).lower()
    if not zp:
        raise NormalizationError("zp", "is empty")
    if not zp.isalnum():
        raise NormalizationError("zp", "may only contain letters, digits, spaces and dashes")
    if country in (None, "", "us") and _US_ZIP.fullmatch(zp):
        return zp[:5]
    if country == "us":
        raise NormalizationError("zp", "is not a US zip code (5 digits, or zip+4)")
    return zp


# ISO 3166 lists each country's short, official and common name, but not the
# colloquial and native names people also type into a country field. Written without
# accents: a name is also looked up without its accents ("España" finds "espana").
_COUNTRY_ALIASES = {
    "america": "us",
    "uk": "gb",
    "greatbritain": "gb",
    "britain": "gb",
    "england": "gb",
    "scotland": "gb",
    "wales": "gb",
    "northernireland": "gb",
    "holland": "nl",
    "thenetherlands": "nl",
    "russia": "ru",
    "turkey": "tr",
    "ivorycoast": "ci",
    "deutschland": "de",
    "espana": "es",
    "italia": "it",
    "brasil": "br",
}


def _without_accents(letters: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFD", letters) if not unicodedata.combining(ch)
    )


@functools.cache
def _country_codes() -> dict[str, str]:
    """Every spelling :func:`normalize_country` accepts (letters only) → alpha-2."""
    codes: dict[str, str] = {}
    for country in pycountry.countries:
        alpha_2 = country.alpha_2.lower()
        codes[alpha_2] = alpha_2
        codes[country.alpha_3.lower()] = alpha_2
        for attribute in ("name", "official_name", "common_name"):
            name = getattr(country, attribute, None)
            if name:
                letters = _letters_only(name)
                # "Cote d'Ivoire" typed without its accent must find "Côte d'Ivoire".
                codes.setdefault(letters, alpha_2)
                codes.setdefault(_without_accents(letters), alpha_2)
    for alias, alpha_2 in _COUNTRY_ALIASES.items():
        codes.setdefault(alias, alpha_2)
    return codes


def normalize_country(value: str) -> str:
    """ISO 3166-1 alpha-2, lowercase, from an alpha-2 or alpha-3 code or a country name,
    via pycountry (``US``, ``usa``, ``United States`` → ``us``; ``Viet Nam`` → ``vn``)."""
    letters = _letters_only(_as_text("country", value))
    codes = _country_codes()
    code = codes.get(letters) or codes.get(_without_accents(letters))
    if code is None:
        raise NormalizationError("country", "is not an ISO 3166-1 alpha-2 country code")
    return code


def normalize_external_id(value: str | int) -> str:
    """Trim and lowercase, so an id written in either case (UUIDs) hashes the same."""
    external_id = _as_text("external_id", value).lower()
    if not external_id:
        raise NormalizationError("external_id", "is empty")
    return external_id


# --- field dispatch -----------------------------------------------------------------

_NORMALIZERS: dict[str, Callable[..., str]] = {
    "em": normalize_email,
    "fn": lambda v: normalize_name(v, "fn"),
    "ln": lambda v: normalize_name(v, "ln"),
    "ge": normalize_gender,
    "db": normalize_date_of_birth,
    "ct": normalize_city,
    "st": normalize_state,
    "country": normalize_country,
    "external_id": normalize_external_id,
}


def normalize_field(
    field: str, value: Any, *, country: str | None = None, default_phone_country: str | None = "us"
) -> str:
    """The normalized (not yet hashed) form of one customer-information value.

    ``country`` (the event's normalized country, when known) decides zip rules and
    the calling code added to national phone numbers; ``default_phone_country`` is
    used for phones when the event has no country.
    """
    if field == "ph":
        return normalize_phone(value, country or default_phone_country)
    if field == "zp":
        return normalize_zip(value, country)
    normalizer = _NORMALIZERS.get(field)
    if normalizer is None:
        raise NormalizationError(field, "is not a hashed customer-information field")
    return normalizer(value)


# Fields whose values repeat across many people (a handful of genders, countries,
# states, cities, common names, birthdays, zips): their digests are memoized, which is
# most of the speed of bulk hashing. Email, phone and external id are one per person
# and gain nothing; they are not cached. The caches live in process memory only and
# are bounded (emptied when full).
_CACHED_FIELDS = frozenset({"ge", "country", "st", "ct", "fn", "ln", "zp", "db"})
_CACHE_LIMIT = 1 << 16
_caches: dict[str, dict[Any, str]] = {f: {} for f in _CACHED_FIELDS}


def _digest(field: str, value: str, country: str | None, default_phone_country: str | None) -> str:
    stripped = value.strip()
    if len(stripped) == 64 and is_sha256_hex(stripped):
        return stripped.lower()
    return sha256_hex(
        normalize_field(field, value, country=country, default_phone_country=default_phone_country)
    )


def _cached_digest(field: str, value: str, country: str | None) -> str:
    cache = _caches[field]
    key = (value, country) if field == "zp" else value  # only zip rules vary by country
    digest = cache.get(key)
    if digest is None:
        digest = _digest(field, value, country, None)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = digest
    return digest


def _email_digest(value: str) -> str:
    # The hot path of bulk intake, inlined: trim, lowercase, pass-through, check, hash.
    email = value.strip().lower()
    if len(email) == 64 and _HEX.issuperset(email):
        return email
    if not _EMAIL.fullmatch(email):
        raise NormalizationError("em", "not a valid email address")
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def _external_id_digest(value: str) -> str:
    external_id = value.strip().lower()
    if len(external_id) == 64 and _HEX.issuperset(external_id):
        return external_id
    if not external_id:
        raise NormalizationError("external_id", "is empty")
    return hashlib.sha256(external_id.encode("utf-8")).hexdigest()


def _phone_digest(value: str, country: str | None) -> str:
    stripped = value.strip()
    if len(stripped) == 64 and is_sha256_hex(stripped):
        return stripped.lower()
    return hashlib.sha256(normalize_phone(stripped, country).encode()).hexdigest()


def hash_field(
    field: str, value: Any, *, country: str | None = None, default_phone_country: str | None = "us"
) -> str:
    """SHA-256 hex of the normalized value; a 64-hex value passes through lowercased."""
    if type(value) is str:
        if field in _CACHED_FIELDS:
            return _cached_digest(field, value, country)
        if field == "em":
            return _email_digest(value)
        return _digest(field, value, country, default_phone_country)
    return sha256_hex(
        normalize_field(field, value, country=country, default_phone_country=default_phone_country)
    )


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def normalize_user_data(
    user_data: Mapping[str, Any], *, default_phone_country: str | None = "us"
) -> dict[str, Any]:
    """Hash every customer-information field of a Meta ``user_data`` mapping.

    Hashed fields accept a value or a list of values (a list stays a list, without
    duplicates); blank values are dropped. Pass-through identifiers are kept as
    strings. Unknown keys are refused, because an unknown key could carry clear-text
    personal data into storage. Raises :class:`NormalizationError` naming the field.
    """
    country: str | None = None
    raw_country = user_data.get("country")
    # The country (if given in clear) decides zip and phone rules of the same event.
    if type(raw_country) is str and raw_country and not raw_country.isspace():
        country = _event_country(raw_country)
    out: dict[str, Any] = {}
    for key, value in user_data.items():
        if value is None:
            continue
        if key in _HASHED_SET:
            if type(value) is str:
                if value and not value.isspace():
                    # Direct dispatch: this loop is the bulk-intake hot path.
                    if key in _CACHED_FIELDS:
                        out[key] = _cached_digest(key, value, country)
                    elif key == "em":
                        out[key] = _email_digest(value)
                    elif key == "ph":
                        out[key] = _phone_digest(value, country or default_phone_country)
                    elif key == "external_id":
                        out[key] = _external_id_digest(value)
                    else:
                        out[key] = _digest(key, value, country, default_phone_country)
            elif isinstance(value, list | tuple):
                hashed = _unique(
                    hash_field(key, v, country=country, default_phone_country=default_phone_country)
                    for v in value
                    if not _is_blank(v)
                )
                if hashed:
                    out[key] = hashed
            else:
                out[key] = hash_field(
                    key, value, country=country, default_phone_country=default_phone_country
                )
        elif key in _PASS_SET:
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise NormalizationError(key, "must be a string")
            text = str(value).strip()
            if text:
                out[key] = text
        else:
            raise NormalizationError(key, "is not a supported user_data field")
    return out


@functools.lru_cache(maxsize=1024)
def _event_country(raw: str) -> str | None:
    """The normalized country of an event (None when it came already hashed)."""
    stripped = raw.strip()
    return None if is_sha256_hex(stripped) else normalize_country(stripped)


_HASHED_SET = frozenset(HASHED_FIELDS)
_PASS_SET = frozenset(PASS_THROUGH_FIELDS)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
