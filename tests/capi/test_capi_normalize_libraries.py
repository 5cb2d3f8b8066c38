"""Phone, country and state normalization through phonenumbers and pycountry.

What the libraries get right that a short hand-kept table did not (trunk prefixes other
than ``0``, call-abroad prefixes other than ``00``, countries and spellings outside a
50-country list), and that the fast paths for common numbers give exactly the library's
answer in every region.
"""

from __future__ import annotations

import hashlib
import random

import phonenumbers
import pycountry
import pytest

from everreach.capi import normalize
from everreach.capi.normalize import NormalizationError, hash_field, normalize_field


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- phones -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("8 (912) 345-67-89", "ru", "79123456789"),  # Russia's trunk prefix is 8
        ("06 20 123 4567", "hu", "36201234567"),  # Hungary's is 06
        ("011 15-2345-6789", "ar", "5491123456789"),  # Argentina: 0 + area, mobile 15 → 9
        ("0612-345678", "ma", "212612345678"),  # countries a short table lacked
        ("091 234 56 78", "vn", "84912345678"),
        ("611 1234", "is", "3546111234"),  # Iceland: no trunk prefix at all
        ("55 1234 5678", "mx", "525512345678"),  # Mexico dropped its trunk prefixes
        ("+44 (0)20 7946 0958", "us", "442079460958"),  # the "(0)" habit
        ("011 44 20 7946 0958", "us", "442079460958"),  # the US call-abroad prefix
        ("0011 44 20 7946 0958", "au", "442079460958"),  # Australia's
        ("8 10 44 20 7946 0958", "ru", "442079460958"),  # Russia's
        ("1 650 555 1212", "us", "16505551212"),  # NANP: trunk 1 is also the code
        ("+0044 844 412 4653", "us", "448444124653"),
        ("(650) 555-1212", "aq", "6505551212"),  # no numbering plan: read as written
    ],
)
def test_phone_follows_each_countrys_numbering_plan(
    raw: str, country: str, normalized: str
) -> None:
    assert normalize_field("ph", raw, country=country) == normalized
    assert hash_field("ph", raw, country=country) == sha(normalized)


@pytest.mark.parametrize(
    ("raw", "country", "problem"),
    [
        ("555-1212", "us", "lacks its area code"),
        ("+1 555 1212", "us", "lacks its area code"),
        ("+999 1234567", "us", "has no known country calling code"),
        ("16505551212", "gb", "is too long for a phone number of its country"),
        ("12", "us", "is too short for a phone number of its country"),
        ("00", "us", "is not a phone number"),
    ],
)
def test_phone_that_cannot_be_complete_is_refused(raw: str, country: str, problem: str) -> None:
    with pytest.raises(NormalizationError) as info:
        normalize_field("ph", raw, country=country)
    assert info.value.field == "ph"
    assert info.value.problem == problem


def _variants(rng: random.Random, region: str) -> list[str]:
    """Digit strings a person or a system could write for numbers of ``region``."""
    out = []
    for kind in (
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.TOLL_FREE,
    ):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        nsn = phonenumbers.national_significant_number(example)
        code = str(example.country_code)
        tail = "".join(rng.choice("0123456789") for _ in range(3))
        for national in (nsn, nsn[:-3] + tail):
            written = phonenumbers.format_number(
                phonenumbers.parse("+" + code + national),
                phonenumbers.PhoneNumberFormat.NATIONAL,
            )
            out.append("".join(ch for ch in written if ch.isdigit()))  # with trunk prefix
        for national in (nsn, nsn[:-3] + tail, nsn[:-1], nsn + tail[0], nsn[1:]):
            out += [national, code + national]
    for _ in range(8):
        length = rng.randint(4, 14)
        out.append("".join(rng.choice("0123456789") for _ in range(length)))
    return [d for d in out if d]


def test_fast_paths_agree_with_phonenumbers_in_every_region() -> None:
    rng = random.Random(20261202)
    taken = checked = 0

    def library(digits: str, international: bool, region: str | None) -> str | None:
        try:
            return normalize._library_e164(digits, international, region)
        except NormalizationError:
            return None

    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    for region in regions:
        for digits in _variants(rng, region):
            fast = normalize._fast_national(digits, region)
            if fast is not None:
                taken += 1
                assert fast == library(digits, False, region), (region, digits)
            international = digits.lstrip("0")
            fast = normalize._fast_international(international) if international else None
            if fast is not None:
                taken += 1
                assert fast == library(international, True, None), (region, digits)
            checked += 2
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        digits = str(code) + phonenumbers.national_significant_number(example)
        assert normalize._fast_international(digits) in (None, library(digits, True, None))
    # The fast paths must carry the common case, or they would not be worth having.
    assert taken > checked // 4, (taken, checked)
    assert normalize._fast_national("6505551212", "US") == "16505551212"
    assert normalize._fast_international("16505551212") == "16505551212"
    assert normalize._fast_international("447400123456") == "447400123456"
    assert normalize._fast_national("07400123456", "GB") == "447400123456"  # trunk 0
    assert normalize._fast_national("0111523456789", "AR") == "5491123456789"  # rewritten


@pytest.mark.parametrize(
    ("digits", "region"),
    [
        ("011151123456789", "AR"),  # the library rewrites 0 + area + 15 into 9 + area
        ("0111523456789", "AR"),
        ("015119612345678", "BR"),  # a carrier code after the trunk prefix
        ("4567890", "BB"),  # a local number gets the area code added
        ("07400123456", "GB"),
        ("8011234567", "BY"),  # trunk 8 followed by what is no national number
        ("0612345678", "FR"),
    ],
)
def test_prefix_rewrites_and_oddities_read_like_the_library(digits: str, region: str) -> None:
    try:
        expected: str | None = normalize._library_e164(digits, False, region)
    except NormalizationError:
        expected = None
    assert normalize._fast_national(digits, region) in (None, expected)


# --- countries and US states ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("Viet Nam", "vn"),
        ("Vietnam", "vn"),
        ("Côte d'Ivoire", "ci"),
        ("Cote d'Ivoire", "ci"),  # typed without the accent
        ("Russian Federation", "ru"),
        ("Russia", "ru"),
        ("Czechia", "cz"),
        ("Bosnia and Herzegovina", "ba"),
        ("Plurinational State of Bolivia", "bo"),
        ("Åland Islands", "ax"),
        ("Curacao", "cw"),
        ("Türkiye", "tr"),
        ("Taiwan", "tw"),
        ("KOR", "kr"),
        ("ISL", "is"),
    ],
)
def test_country_names_and_codes_come_from_iso_3166(raw: str, code: str) -> None:
    assert normalize_field("country", raw) == code


def test_every_iso_country_is_known_by_code_and_name() -> None:
    for country in pycountry.countries:
        code = country.alpha_2.lower()
        assert normalize_field("country", country.alpha_2) == code
        assert normalize_field("country", country.alpha_3) == code
        assert normalize_field("country", country.name) == code


def test_country_aliases_name_real_countries_and_shadow_no_iso_spelling() -> None:
    iso = {c.alpha_2.lower() for c in pycountry.countries}
    iso_spellings = set(iso)
    for country in pycountry.countries:
        iso_spellings.add(country.alpha_3.lower())
        for attribute in ("name", "official_name", "common_name"):
            if name := getattr(country, attribute, None):
                iso_spellings.add(normalize._letters_only(name))
    for alias, code in normalize._COUNTRY_ALIASES.items():
        assert code in iso, alias
        assert alias == normalize._without_accents(alias), alias  # looked up without accents
        assert alias not in iso_spellings, alias
        assert alias not in {normalize._without_accents(s) for s in iso_spellings}, alias


@pytest.mark.parametrize(
    ("raw", "code"),
    [("España", "es"), ("México", "mx"), ("Deutschland", "de"), ("Holland", "nl"), ("UK", "gb")],
)
def test_colloquial_and_native_country_names(raw: str, code: str) -> None:
    assert normalize_field("country", raw) == code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("Puerto Rico", "pr"),
        ("Virgin Islands, U.S.", "vi"),
        ("US Virgin Islands", "vi"),
        ("United States Minor Outlying Islands", "um"),
        ("Northern Mariana Islands", "mp"),
        ("Washington DC", "dc"),
    ],
)
def test_us_territories_map_to_their_codes(raw: str, code: str) -> None:
    assert normalize_field("st", raw) == code


def test_every_us_subdivision_name_maps_to_its_code() -> None:
    for subdivision in pycountry.subdivisions.get(country_code="US"):
        assert normalize_field("st", subdivision.name) == subdivision.code[3:].lower()
