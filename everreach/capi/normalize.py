"""Normalization and SHA-256 hashing of Conversions API customer information.

Implements Meta's written "customer information parameters" rules field by field
(https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/
customer-information-parameters):

=============  ==============================================================
``em``          trim, lowercase; must look like ``local@domain.tld``
``ph``          digits only, with the country code, no ``+``/``00``/leading
                zeros (a national number gets the country's calling code)
``fn``/``ln``   lowercase, no punctuation, no spaces; accents kept (UTF-8)
``ge``          ``f`` or ``m``
``db``          ``YYYYMMDD``
``ct``          lowercase, no punctuation, no spaces, no digits; accents kept
``st``          2-letter ANSI code for US states (full names mapped), else
                lowercase without punctuation or spaces
``zp``          lowercase, no spaces or dashes; US: first 5 digits
``country``     ISO 3166-1 alpha-2, lowercase (alpha-3 and common names mapped)
``external_id`` trimmed, lowercase; hashing recommended, so we hash it
=============  ==============================================================

A value that already is 64 hex characters is taken as a SHA-256 digest and passes
through (lowercased). Identifiers Meta needs in clear (client IP, user agent, fbp,
fbc, lead id, ctwa_clid, …) are never hashed.

Errors are :class:`NormalizationError`; their message names the field and what is
wrong, never the value, so they are safe to log and to return to callers.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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

#: The seed's flat body keys that carry customer information → Meta's user_data keys.
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

# Country calling codes for the countries a national number is most often written in.
# NANP members share "1" and write 10-digit national numbers.
_NANP = frozenset({"us", "ca", "pr", "vi", "gu", "as", "mp"})
_CALLING_CODES: dict[str, str] = {
    **{c: "1" for c in _NANP},
    "gb": "44",
    "ie": "353",
    "de": "49",
    "fr": "33",
    "es": "34",
    "it": "39",
    "pt": "351",
    "nl": "31",
    "be": "32",
    "ch": "41",
    "at": "43",
    "se": "46",
    "no": "47",
    "dk": "45",
    "fi": "358",
    "pl": "48",
    "cz": "420",
    "gr": "30",
    "br": "55",
    "mx": "52",
    "ar": "54",
    "co": "57",
    "cl": "56",
    "pe": "51",
    "in": "91",
    "au": "61",
    "nz": "64",
    "jp": "81",
    "kr": "82",
    "cn": "86",
    "sg": "65",
    "ph": "63",
    "id": "62",
    "my": "60",
    "th": "66",
    "vn": "84",
    "za": "27",
    "ng": "234",
    "ke": "254",
    "eg": "20",
    "tr": "90",
    "ae": "971",
    "sa": "966",
    "il": "972",
    "ru": "7",
    "ua": "380",
}
# What a written phone number may contain besides digits.
_PHONE_ALLOWED = frozenset("0123456789 +-().\t/")
_DIGITS_ONLY = str.maketrans("", "", " +-().\t/")


def normalize_phone(value: str | int, default_country: str | None = "us") -> str:
    """Digits only, with the country calling code, no ``+``, ``00`` or leading zeros.

    A number written internationally (``+44 …`` or ``0044 …``) keeps its own country
    code. A national number gets the calling code of ``default_country`` (the event's
    country when known): for NANP countries a 10-digit number gets a leading ``1``
    (Meta's example: ``(650)555-1212`` → ``16505551212``); elsewhere the trunk ``0``
    is replaced by the calling code. The result must have 7–15 digits (E.164).
    """
    text = _as_text("ph", value)
    if not _PHONE_ALLOWED.issuperset(text):
        raise NormalizationError("ph", "may only contain digits, spaces and + - ( ) . /")
    digits = text.translate(_DIGITS_ONLY)
    if not digits:
        raise NormalizationError("ph", "has no digits")
    international = text.startswith("+")
    if digits.startswith("00"):  # the international call prefix used outside NANP
        international = True
        digits = digits[2:]
    if international:
        digits = digits.lstrip("0")
    else:
        code = _CALLING_CODES.get((default_country or "").lower())
        if code == "1":
            if len(digits) == 10 and digits[0] != "1":
                digits = "1" + digits
        elif code is not None:
            if digits.startswith("0"):  # national trunk prefix
                digits = code + digits.lstrip("0")
            elif not (digits.startswith(code) and len(digits) >= len(code) + 8):
                # A national number written without its trunk zero; one that already
                # starts with the code and is long enough is taken as international.
                digits = code + digits
        digits = digits.lstrip("0")
    if not 7 <= len(digits) <= 15:
        raise NormalizationError("ph", "must have 7 to 15 digits including the country code")
    return digits


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


_US_STATES: dict[str, str] = {
    "alabama": "al",
    "alaska": "ak",
    "arizona": "az",
    "arkansas": "ar",
    "california": "ca",
    "colorado": "co",
    "connecticut": "ct",
    "delaware": "de",
    "florida": "fl",
    "georgia": "ga",
    "hawaii": "hi",
    "idaho": "id",
    "illinois": "il",
    "indiana": "in",
    "iowa": "ia",
    "kansas": "ks",
    "kentucky": "ky",
    "louisiana": "la",
    "maine": "me",
    "maryland": "md",
    "massachusetts": "ma",
    "michigan": "mi",
    "minnesota": "mn",
    "mississippi": "ms",
    "missouri": "mo",
    "montana": "mt",
    "nebraska": "ne",
    "nevada": "nv",
    "newhampshire": "nh",
    "newjersey": "nj",
    "newmexico": "nm",
    "newyork": "ny",
    "northcarolina": "nc",
    "northdakota": "nd",
    "ohio": "oh",
    "oklahoma": "ok",
    "oregon": "or",
    "pennsylvania": "pa",
    "rhodeisland": "ri",
    "southcarolina": "sc",
    "southdakota": "sd",
    "tennessee": "tn",
    "texas": "tx",
    "utah": "ut",
    "vermont": "vt",
    "virginia": "va",
    "washington": "wa",
    "westvirginia": "wv",
    "wisconsin": "wi",
    "wyoming": "wy",
    "districtofcolumbia": "dc",
    "washingtondc": "dc",
    "puertorico": "pr",
    "guam": "gu",
    "americansamoa": "as",
    "usvirginislands": "vi",
    "northernmarianaislands": "mp",
}


def normalize_state(value: str) -> str:
    """US state → 2-letter ANSI code; other regions lowercase without punctuation/spaces."""
    state = _letters_only(_as_text("st", value))
    if not state:
        raise NormalizationError("st", "has no letters")
    return _US_STATES.get(state, state)


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


_ALPHA2 = frozenset(
    [
        "ad",
        "ae",
        "af",
        "ag",
        "ai",
        "al",
        "am",
        "ao",
        "aq",
        "ar",
        "as",
        "at",
        "au",
        "aw",
        "ax",
        "az",
        "ba",
        "bb",
        "bd",
        "be",
        "bf",
        "bg",
        "bh",
        "bi",
        "bj",
        "bl",
        "bm",
        "bn",
        "bo",
        "bq",
        "br",
        "bs",
        "bt",
        "bv",
        "bw",
        "by",
        "bz",
        "ca",
        "cc",
        "cd",
        "cf",
        "cg",
        "ch",
        "ci",
        "ck",
        "cl",
        "cm",
        "cn",
        "co",
        "cr",
        "cu",
        "cv",
        "cw",
        "cx",
        "cy",
        "cz",
        "de",
        "dj",
        "dk",
        "dm",
        "do",
        "dz",
        "ec",
        "ee",
        "eg",
        "eh",
        "er",
        "es",
        "et",
        "fi",
        "fj",
        "fk",
        "fm",
        "fo",
        "fr",
        "ga",
        "gb",
        "gd",
        "ge",
        "gf",
        "gg",
        "gh",
        "gi",
        "gl",
        "gm",
        "gn",
        "gp",
        "gq",
        "gr",
        "gs",
        "gt",
        "gu",
        "gw",
        "gy",
        "hk",
        "hm",
        "hn",
        "hr",
        "ht",
        "hu",
        "id",
        "ie",
        "il",
        "im",
        "in",
        "io",
        "iq",
        "ir",
        "is",
        "it",
        "je",
        "jm",
        "jo",
        "jp",
        "ke",
        "kg",
        "kh",
        "ki",
        "km",
        "kn",
        "kp",
        "kr",
        "kw",
        "ky",
        "kz",
        "la",
        "lb",
        "lc",
        "li",
        "lk",
        "lr",
        "ls",
        "lt",
        "lu",
        "lv",
        "ly",
        "ma",
        "mc",
        "md",
        "me",
        "mf",
        "mg",
        "mh",
        "mk",
        "ml",
        "mm",
        "mn",
        "mo",
        "mp",
        "mq",
        "mr",
        "ms",
        "mt",
        "mu",
        "mv",
        "mw",
        "mx",
        "my",
        "mz",
        "na",
        "nc",
        "ne",
        "nf",
        "ng",
        "ni",
        "nl",
        "no",
        "np",
        "nr",
        "nu",
        "nz",
        "om",
        "pa",
        "pe",
        "pf",
        "pg",
        "ph",
        "pk",
        "pl",
        "pm",
        "pn",
        "pr",
        "ps",
        "pt",
        "pw",
        "py",
        "qa",
        "re",
        "ro",
        "rs",
        "ru",
        "rw",
        "sa",
        "sb",
        "sc",
        "sd",
        "se",
        "sg",
        "sh",
        "si",
        "sj",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sr",
        "ss",
        "st",
        "sv",
        "sx",
        "sy",
        "sz",
        "tc",
        "td",
        "tf",
        "tg",
        "th",
        "tj",
        "tk",
        "tl",
        "tm",
        "tn",
        "to",
        "tr",
        "tt",
        "tv",
        "tw",
        "tz",
        "ua",
        "ug",
        "um",
        "us",
        "uy",
        "uz",
        "va",
        "vc",
        "ve",
        "vg",
        "vi",
        "vn",
        "vu",
        "wf",
        "ws",
        "ye",
        "yt",
        "za",
        "zm",
        "zw",
    ]
)
# alpha-3 → alpha-2, written as 5-letter pairs to keep the table compact.
_ALPHA3 = {
    pair[:3]: pair[3:]
    for pair in [
        "abwaw",
        "afgaf",
        "agoao",
        "aiaai",
        "alaax",
        "albal",
        "andad",
        "areae",
        "argar",
        "armam",
        "asmas",
        "ataaq",
        "atftf",
        "atgag",
        "ausau",
        "autat",
        "azeaz",
        "bdibi",
        "belbe",
        "benbj",
        "besbq",
        "bfabf",
        "bgdbd",
        "bgrbg",
        "bhrbh",
        "bhsbs",
        "bihba",
        "blmbl",
        "blrby",
        "blzbz",
        "bmubm",
        "bolbo",
        "brabr",
        "brbbb",
        "brnbn",
        "btnbt",
        "bvtbv",
        "bwabw",
        "cafcf",
        "canca",
        "cckcc",
        "chech",
        "chlcl",
        "chncn",
        "civci",
        "cmrcm",
        "codcd",
        "cogcg",
        "cokck",
        "colco",
        "comkm",
        "cpvcv",
        "cricr",
        "cubcu",
        "cuwcw",
        "cxrcx",
        "cymky",
        "cypcy",
        "czecz",
        "deude",
        "djidj",
        "dmadm",
        "dnkdk",
        "domdo",
        "dzadz",
        "ecuec",
        "egyeg",
        "erier",
        "esheh",
        "espes",
        "estee",
        "ethet",
        "finfi",
        "fjifj",
        "flkfk",
        "frafr",
        "frofo",
        "fsmfm",
        "gabga",
        "gbrgb",
        "geoge",
        "ggygg",
        "ghagh",
        "gibgi",
        "gingn",
        "glpgp",
        "gmbgm",
        "gnbgw",
        "gnqgq",
        "grcgr",
        "grdgd",
        "grlgl",
        "gtmgt",
        "gufgf",
        "gumgu",
        "guygy",
        "hkghk",
        "hmdhm",
        "hndhn",
        "hrvhr",
        "htiht",
        "hunhu",
        "idnid",
        "imnim",
        "indin",
        "iotio",
        "irlie",
        "irnir",
        "irqiq",
        "islis",
        "isril",
        "itait",
        "jamjm",
        "jeyje",
        "jorjo",
        "jpnjp",
        "kazkz",
        "kenke",
        "kgzkg",
        "khmkh",
        "kirki",
        "knakn",
        "korkr",
        "kwtkw",
        "laola",
        "lbnlb",
        "lbrlr",
        "lbyly",
        "lcalc",
        "lieli",
        "lkalk",
        "lsols",
        "ltult",
        "luxlu",
        "lvalv",
        "macmo",
        "mafmf",
        "marma",
        "mcomc",
        "mdamd",
        "mdgmg",
        "mdvmv",
        "mexmx",
        "mhlmh",
        "mkdmk",
        "mliml",
        "mltmt",
        "mmrmm",
        "mneme",
        "mngmn",
        "mnpmp",
        "mozmz",
        "mrtmr",
        "msrms",
        "mtqmq",
        "musmu",
        "mwimw",
        "mysmy",
        "mytyt",
        "namna",
        "nclnc",
        "nerne",
        "nfknf",
        "ngang",
        "nicni",
        "niunu",
        "nldnl",
        "norno",
        "nplnp",
        "nrunr",
        "nzlnz",
        "omnom",
        "pakpk",
        "panpa",
        "pcnpn",
        "perpe",
        "phlph",
        "plwpw",
        "pngpg",
        "polpl",
        "pripr",
        "prkkp",
        "prtpt",
        "prypy",
        "pseps",
        "pyfpf",
        "qatqa",
        "reure",
        "rouro",
        "rusru",
        "rwarw",
        "sausa",
        "sdnsd",
        "sensn",
        "sgpsg",
        "sgsgs",
        "shnsh",
        "sjmsj",
        "slbsb",
        "slesl",
        "slvsv",
        "smrsm",
        "somso",
        "spmpm",
        "srbrs",
        "ssdss",
        "stpst",
        "sursr",
        "svksk",
        "svnsi",
        "swese",
        "swzsz",
        "sxmsx",
        "sycsc",
        "syrsy",
        "tcatc",
        "tcdtd",
        "tgotg",
        "thath",
        "tjktj",
        "tkltk",
        "tkmtm",
        "tlstl",
        "tonto",
        "ttott",
        "tuntn",
        "turtr",
        "tuvtv",
        "twntw",
        "tzatz",
        "ugaug",
        "ukrua",
        "umium",
        "uryuy",
        "usaus",
        "uzbuz",
        "vatva",
        "vctvc",
        "venve",
        "vgbvg",
        "virvi",
        "vnmvn",
        "vutvu",
        "wlfwf",
        "wsmws",
        "yemye",
        "zafza",
        "zmbzm",
        "zwezw",
    ]
}
# Names people actually type into a country field (letters only, lowercase).
_COUNTRY_NAMES = {
    "unitedstates": "us",
    "unitedstatesofamerica": "us",
    "america": "us",
    "unitedkingdom": "gb",
    "greatbritain": "gb",
    "uk": "gb",
    "england": "gb",
    "scotland": "gb",
    "wales": "gb",
    "northernireland": "gb",
    "canada": "ca",
    "mexico": "mx",
    "méxico": "mx",
    "brazil": "br",
    "brasil": "br",
    "argentina": "ar",
    "germany": "de",
    "deutschland": "de",
    "france": "fr",
    "spain": "es",
    "españa": "es",
    "italy": "it",
    "italia": "it",
    "portugal": "pt",
    "netherlands": "nl",
    "thenetherlands": "nl",
    "holland": "nl",
    "belgium": "be",
    "switzerland": "ch",
    "austria": "at",
    "ireland": "ie",
    "sweden": "se",
    "norway": "no",
    "denmark": "dk",
    "finland": "fi",
    "poland": "pl",
    "india": "in",
    "australia": "au",
    "newzealand": "nz",
    "japan": "jp",
    "china": "cn",
    "southkorea": "kr",
    "singapore": "sg",
    "philippines": "ph",
    "indonesia": "id",
    "southafrica": "za",
    "nigeria": "ng",
    "kenya": "ke",
    "egypt": "eg",
    "turkey": "tr",
    "türkiye": "tr",
    "unitedarabemirates": "ae",
    "saudiarabia": "sa",
    "israel": "il",
    "ukraine": "ua",
    "colombia": "co",
    "chile": "cl",
    "peru": "pe",
}


def normalize_country(value: str) -> str:
    """ISO 3166-1 alpha-2, lowercase (``US``, ``usa``, ``United States`` → ``us``)."""
    letters = _letters_only(_as_text("country", value))
    if len(letters) == 2 and letters in _ALPHA2:
        return letters
    code = _ALPHA3.get(letters) if len(letters) == 3 else None
    code = code or _COUNTRY_NAMES.get(letters)
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
