"""The official facebook-business SDK as a test oracle — where it follows Meta's written rules.

Where it deviates (listed in ``everreach.capi.normalize``'s docstring), the written rules
win: those cases assert that the SDK differs *and* that we produce what the rules say.
"""

from __future__ import annotations

import hashlib

import pytest

from everreach.capi.normalize import hash_field, normalize_user_data

sdk = pytest.importorskip("facebook_business.adobjects.serverside.normalize")
user_data_mod = pytest.importorskip("facebook_business.adobjects.serverside.user_data")
Normalize = sdk.Normalize


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


AGREE = [
    ("em", "John_Smith@gmail.com"),
    ("em", "  Person@Example.COM "),
    ("ph", "+1 (650) 555-1212"),
    ("ph", "16505551212"),
    ("ph", "+44 844 412 4653"),
    ("ph", "0044 844 412 4653"),
    ("ph", "+7 912 345-67-89"),
    ("ph", "+36 20 123 4567"),
    ("ph", "+54 9 11 2345-6789"),
    ("fn", "Mary"),
    ("ln", "SMITH"),
    ("ge", "f"),
    ("ge", "M"),
    ("ct", "Menlo Park"),
    ("ct", "Paris"),
    ("st", "CA"),
    ("st", "tx"),
    ("st", "N.Y."),
    ("zp", "94025"),
    ("zp", "94025-1234"),
    ("zp", "M1 1AE"),
    ("country", "US"),
    ("country", "gb"),
    ("country", "VN"),
    ("db", "19970216"),
]


@pytest.mark.parametrize(("field", "raw"), AGREE)
def test_sdk_agrees(field: str, raw: str) -> None:
    assert hash_field(field, raw) == Normalize.normalize_field(field, raw)


def test_sdk_agrees_on_already_hashed_values() -> None:
    digest = sha("someone@example.com")
    assert hash_field("em", digest.upper()) == Normalize.normalize_field("em", digest.upper())


# (field, raw, what the written rules give). The SDK returns something else or raises.
DEVIATIONS = [
    ("zp", "940251234", "94025"),  # SDK: no cut to 5 digits without a dash
    ("st", "California", "ca"),  # SDK: no state-name mapping
    ("db", "2/16/1997", "19970216"),  # SDK: dates are not reformatted
    ("db", "1997-02-16", "19970216"),
    ("fn", "Jean-Luc", "jeanluc"),  # SDK: punctuation kept in names
    ("ln", "O'Brien", "obrien"),
    ("ph", "650.555.1212", "16505551212"),  # SDK: refuses dots
    ("ph", "(650)555-1212", "16505551212"),  # SDK: no country code added
    ("ph", "+44 (0)20 7946 0958", "442079460958"),  # SDK: keeps the trunk 0 after the code
    ("country", "United States", "us"),  # SDK: refuses names
    ("ge", "Female", "f"),  # SDK: hashes "female"
]


@pytest.mark.parametrize(("field", "raw", "expected"), DEVIATIONS)
def test_written_rules_win_where_sdk_deviates(field: str, raw: str, expected: str) -> None:
    assert hash_field(field, raw) == sha(expected)
    try:
        theirs = Normalize.normalize_field(field, raw)
    except (TypeError, ValueError):
        theirs = None  # the SDK refuses a value the rules accept
    assert theirs != sha(expected)


def test_sdk_does_not_hash_external_id_but_we_do() -> None:
    theirs = user_data_mod.UserData(external_id="User-7").normalize()
    assert theirs["external_id"] == ["User-7"]  # sent in clear by the SDK
    assert normalize_user_data({"external_id": "User-7"})["external_id"] == sha("user-7")


def test_sdk_keeps_a_trunk_prefix_but_we_use_the_events_country() -> None:
    # A Russian number written nationally: trunk prefix 8, calling code 7.
    theirs = Normalize.normalize_field("ph", "8 (912) 345-67-89")
    assert theirs == sha("89123456789")
    ours = normalize_user_data({"country": "RU", "ph": "8 (912) 345-67-89"})["ph"]
    assert ours == sha("79123456789")
