"""Snap's normalization and hashing rules for `user_data` (src/normalize.py, src/geo.py).

Expected hashes are either Snap's published vectors (reference/snap-api.md, seed 001) or
`hashlib.sha256` of a normalized string written out literally here, never the code's own output.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from src.events.user_data import UserDataNormalizer


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize(user_data: dict[str, Any], **options: Any) -> tuple[dict[str, Any], list[str]]:
    return UserDataNormalizer(**options).normalize(user_data)


# --- Published vectors -------------------------------------------------------------------------

PUBLISHED_EMAIL = "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"
PUBLISHED_PHONE = "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"
PUBLISHED_NAME = "96d9632f363564cc3032521409cf22a852f2032eec099ed5967c0d000cec607a"
PUBLISHED_MAID = "b0f80a7d2c969156849f3cc97094c0fcbc2691692ef8c9feb8cda6a0a0b74a35"
PUBLISHED_IDFV = "f18c8b858e52b0c49f7db8f813538db0ecdc513357efd62c525784a9beb617d6"
PUBLISHED_HASHED_IP = "4d8c26c5d5502d0a1731905e362d0ba908ee2b66110b2a3b7e61d24961f18e0e"


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("em", "Person@Example.com", PUBLISHED_EMAIL),
        ("em", "  PERSON@example.COM \n", PUBLISHED_EMAIL),
        ("ph", "+44 844 412 4653", PUBLISHED_PHONE),
        ("fn", "John", PUBLISHED_NAME),
        ("ln", " JOHN ", PUBLISHED_NAME),
    ],
)
def test_published_hash_vectors(field: str, raw: str, expected: str) -> None:
    user, warnings = normalize({field: raw})
    assert user == {field: expected}
    assert warnings == []


def test_published_vectors_match_their_normalized_text() -> None:
    """The literals this file relies on agree with Snap's published digests."""
    assert sha("person@example.com") == PUBLISHED_EMAIL
    assert sha("448444124653") == PUBLISHED_PHONE
    assert sha("john") == PUBLISHED_NAME
    assert sha("402da762-201e-42c1-961b-c1fa6cbcf566") == PUBLISHED_MAID
    assert sha("c305f2db-56fc-404f-b6c1-bc52e0b680d8") == PUBLISHED_IDFV
    assert sha("104.124.214.254") == PUBLISHED_HASHED_IP


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("madid", "402DA762-201E-42C1-961B-C1fA6CBCF566", "402da762-201e-42c1-961b-c1fa6cbcf566"),
        ("idfv", "C305F2DB-56FC-404F-B6C1-BC52E0B680D8", "c305f2db-56fc-404f-b6c1-bc52e0b680d8"),
    ],
)
def test_mobile_ids_are_lowercased_and_sent_raw_in_v3(field: str, raw: str, expected: str) -> None:
    user, warnings = normalize({field: raw})
    assert user == {field: expected}
    assert user[field] not in (PUBLISHED_MAID, PUBLISHED_IDFV)
    assert warnings == []


def test_mobile_ids_stay_raw_even_when_input_is_marked_already_hashed() -> None:
    user, warnings = normalize({"madid": "402DA762-201E-42C1-961B-C1fA6CBCF566"}, already_hashed=True)
    assert user == {"madid": "402da762-201e-42c1-961b-c1fa6cbcf566"}
    assert warnings == []


# --- Phones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "default_country", "normalized"),
    [
        ("001-234-567-8910", None, "12345678910"),  # 00 international prefix dropped
        ("+44 844 412 4653", None, "448444124653"),
        ("+44 (0)20 7946 0958", None, "442079460958"),  # trunk 0 after the country code dropped
        ("0044 20 7946 0958", None, "442079460958"),
        ("020 7946 0958", "GB", "442079460958"),  # national number, default country supplies +44
        ("07911 123456", "gb", "447911123456"),
        ("(415) 555-2671", "US", "14155552671"),
        ("415.555.2671", "us", "14155552671"),
        ("+1 415 555 2671", "GB", "14155552671"),  # an explicit country code beats the default
        # Digits that already carry a country code (issue 10): the default country's validity first,
        # then the digits as an international number.
        ("14155550100", "DE", "14155550100"),  # not a valid German number: +1 415, never +49 14155550100
        ("4915112345678", "DE", "4915112345678"),  # already carries DE's own +49
        ("0151 12345678", "DE", "4915112345678"),  # German mobile with trunk 0
        ("030 1234567", "DE", "49301234567"),  # Berlin landline
        ("447911123456", "GB", "447911123456"),  # already carries GB's own +44
        ("12025550123", "US", "12025550123"),  # already carries +1
        ("2025550123", "US", "12025550123"),
        ("06 12 34 56 78", "FR", "33612345678"),
        ("33612345678", "FR", "33612345678"),
        ("4930123456", "US", "4930123456"),  # not a valid US number; valid as +49 30 123456
        ("+49 151 12345678", "US", "4915112345678"),
        ("0049 151 12345678", "US", "4915112345678"),
    ],
)
def test_phone_normalization(raw: str, default_country: str | None, normalized: str) -> None:
    user, warnings = normalize({"ph": raw}, default_phone_country=default_country)
    assert user == {"ph": sha(normalized)}
    assert warnings == []


@pytest.mark.parametrize("raw", ["(415) 555-2671", "415-555-2671", "020 7946 0958"])
def test_national_phone_without_default_country_is_left_out_never_assumed_us(raw: str) -> None:
    user, warnings = normalize({"ph": raw, "em": "person@example.com"})
    assert "ph" not in user
    assert sha("14155552671") not in str(user)
    assert user == {"em": PUBLISHED_EMAIL}
    assert len(warnings) == 1
    assert "user_data.ph" in warnings[0]
    assert raw not in warnings[0]


@pytest.mark.parametrize(("raw", "default_country"), [("3312345678", "FR"), ("123", "US"), ("0000", "US")])
def test_digits_valid_neither_way_are_left_out(raw: str, default_country: str) -> None:
    user, warnings = normalize({"ph": raw}, default_phone_country=default_country)
    assert user == {}
    assert "user_data.ph" in warnings[0]
    assert raw not in warnings[0]


def test_phone_given_as_a_json_number_takes_the_default_country() -> None:
    user, _ = normalize({"ph": 448444124653}, default_phone_country="GB")
    assert user == {"ph": PUBLISHED_PHONE}


@pytest.mark.parametrize("raw", ["448444124653", "2708326229"])
def test_digits_without_plus_or_default_country_are_never_guessed(raw: str) -> None:
    """`2708326229` is a valid US number that also parses as South African (+27 0832...)."""
    user, warnings = normalize({"ph": raw})
    assert user == {}
    assert "no country code" in warnings[0]


# --- Raw fields: IP, user agent, click id, cookie --------------------------------------------


def test_ip_and_user_agent_are_sent_raw() -> None:
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
    user, warnings = normalize(
        {
            "client_ip_address": " 104.124.214.254 ",
            "client_user_agent": ua,
            "sc_click_id": "AbC-123_xyz",
            "sc_cookie1": "57cf8a96-99ff-4260-a6b0-219820d2860e",
        }
    )
    assert user == {
        "client_ip_address": "104.124.214.254",
        "client_user_agent": ua,
        "sc_click_id": "AbC-123_xyz",  # click id keeps its case
        "sc_cookie1": "57cf8a96-99ff-4260-a6b0-219820d2860e",
    }
    assert warnings == []


def test_ipv6_is_kept_raw() -> None:
    user, _ = normalize({"client_ip_address": "2001:db8::1"})
    assert user == {"client_ip_address": "2001:db8::1"}


@pytest.mark.parametrize("hashed_ip", [PUBLISHED_HASHED_IP, PUBLISHED_HASHED_IP.upper()])
def test_hashed_ip_is_refused(hashed_ip: str) -> None:
    user, warnings = normalize({"client_ip_address": hashed_ip, "em": "person@example.com"})
    assert "client_ip_address" not in user
    assert len(warnings) == 1
    assert "client_ip_address" in warnings[0]
    assert hashed_ip not in warnings[0]


# --- Already hashed values ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"])
def test_sha256_hex_is_never_rehashed(field: str) -> None:
    user, warnings = normalize({field: PUBLISHED_EMAIL})
    assert user == {field: PUBLISHED_EMAIL}
    assert warnings == []


def test_uppercase_sha256_hex_is_lowercased_not_rehashed() -> None:
    user, warnings = normalize({"em": PUBLISHED_EMAIL.upper(), "ph": PUBLISHED_PHONE.upper()})
    assert user == {"em": PUBLISHED_EMAIL, "ph": PUBLISHED_PHONE}
    assert warnings == []


def test_sha256_hex_with_surrounding_spaces_is_not_rehashed() -> None:
    user, warnings = normalize({"em": f" {PUBLISHED_EMAIL.upper()} ", "fn": f"{PUBLISHED_NAME}\n"})
    assert user == {"em": PUBLISHED_EMAIL, "fn": PUBLISHED_NAME}
    assert warnings == []


def test_already_hashed_input_accepts_digests() -> None:
    user, warnings = normalize({"em": PUBLISHED_EMAIL, "ph": PUBLISHED_PHONE.upper()}, already_hashed=True)
    assert user == {"em": PUBLISHED_EMAIL, "ph": PUBLISHED_PHONE}
    assert warnings == []


def test_already_hashed_input_with_a_plain_value_is_left_out_with_a_warning() -> None:
    raw_email = "Person@Example.com"
    user, warnings = normalize({"em": raw_email, "fn": PUBLISHED_NAME}, already_hashed=True)
    assert user == {"fn": PUBLISHED_NAME}
    assert sha("person@example.com") not in str(user)  # not hashed on the user's behalf either
    assert len(warnings) == 1
    assert "user_data.em" in warnings[0]
    assert "hash" in warnings[0]
    assert raw_email not in warnings[0]
    assert raw_email.lower() not in warnings[0]


# --- Lists of values ---------------------------------------------------------------------------


def test_list_of_emails_becomes_list_of_hashes() -> None:
    user, warnings = normalize({"em": ["Person@Example.com", "other@example.org"]})
    assert user == {"em": [PUBLISHED_EMAIL, sha("other@example.org")]}
    assert warnings == []


def test_duplicate_values_in_a_list_are_sent_once() -> None:
    user, _ = normalize({"em": ["Person@Example.com", " person@example.com ", PUBLISHED_EMAIL.upper()]})
    assert user == {"em": [PUBLISHED_EMAIL]}


def test_one_bad_value_in_a_list_does_not_drop_the_others() -> None:
    user, warnings = normalize({"em": ["not-an-email", "Person@Example.com"]})
    assert user == {"em": [PUBLISHED_EMAIL]}
    assert len(warnings) == 1
    assert "not-an-email" not in warnings[0]


def test_a_single_value_stays_a_string() -> None:
    user, _ = normalize({"em": "Person@Example.com"})
    assert user["em"] == PUBLISHED_EMAIL


@pytest.mark.parametrize("empty", [None, "", []])
def test_empty_values_are_skipped_silently(empty: Any) -> None:
    user, warnings = normalize({"em": empty, "fn": "John"})
    assert user == {"fn": PUBLISHED_NAME}
    assert warnings == []


# --- Names, address, demographics --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "normalized"),
    [
        ("fn", "  JOSÉ ", "josé"),
        ("fn", "JOSE\u0301", "josé"),  # decomposed accent composes to the same letters (NFC)
        ("ln", "Müller", "müller"),
        ("ln", "O'Brien", "obrien"),
        ("ct", "  São   Paulo ", "sãopaulo"),
        ("ct", "NEW YORK", "newyork"),
        ("st", "California", "ca"),
        ("st", "CA", "ca"),
        ("st", " new york ", "ny"),
        ("country", "United Kingdom", "gb"),
        ("country", "GBR", "gb"),
        ("country", "uk", "gb"),
        ("country", "GB", "gb"),
        ("country", "United States", "us"),
        ("country", "USA", "us"),
        ("country", "Germany", "de"),
        ("country", "deu", "de"),
        ("ge", "Female", "f"),
        ("ge", "F", "f"),
        ("ge", "male", "m"),
        ("ge", " M ", "m"),
        ("db", "1990-07-04", "19900704"),
        ("db", "07/04/1990", "19900704"),
        ("db", "19900704", "19900704"),
        ("db", "1990/07/04", "19900704"),
        ("db", "July 4, 1990", "19900704"),
        ("zp", "94105-1234", "94105"),
        ("zp", "94105", "94105"),
        ("zp", " 02139 ", "02139"),
        ("zp", "SW1A 1AA", "sw1a1aa"),
        ("external_id", " Customer-42 ", "Customer-42"),
    ],
)
def test_field_normalization_before_hashing(field: str, raw: str, normalized: str) -> None:
    user, warnings = normalize({field: raw})
    assert user == {field: sha(normalized)}
    assert warnings == []


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("em", "Person.Example.com"),
        ("em", "person@@example.com"),
        ("ph", "call me maybe"),
        ("ph", "+44 12"),
        ("ge", "unknown"),
        ("db", "sometime in 1990"),
        ("db", "2190-01-01"),
        ("st", "Atlantis"),
        ("country", "Narnia"),
        ("fn", "   "),
    ],
)
def test_invalid_values_are_left_out_with_a_warning_naming_the_field(field: str, raw: str) -> None:
    user, warnings = normalize({field: raw})
    assert field not in user
    assert len(warnings) == 1
    assert f"user_data.{field}" in warnings[0]
    if raw.strip():
        assert raw.strip() not in warnings[0]


def test_unknown_user_data_key_is_left_out_with_a_warning() -> None:
    user, warnings = normalize({"email": "Person@Example.com", "em": "Person@Example.com"})
    assert user == {"em": PUBLISHED_EMAIL}
    assert warnings == ["user_data.email is not a Snap identifier and was left out"]


def test_non_text_value_is_left_out() -> None:
    user, warnings = normalize({"em": {"address": "person@example.com"}, "fn": True})
    assert user == {}
    assert len(warnings) == 2
    assert all("person@example.com" not in warning for warning in warnings)


# --- Warnings never carry the raw value --------------------------------------------------------

RAW_EMAIL = "Secret.Person@Example.com"
RAW_PHONE = "(415) 555-2671"


@pytest.mark.parametrize(
    ("user_data", "options"),
    [
        ({"em": RAW_EMAIL}, {"already_hashed": True}),
        ({"ph": RAW_PHONE}, {}),
        ({"ph": [RAW_PHONE, "+44 844 412 4653"]}, {}),
        ({"ph": RAW_PHONE}, {"already_hashed": True}),
        ({"em": "Secret Person@Example.com"}, {}),
        ({"ph": "+1 415 555 26"}, {}),
        ({"db": "31/31/1990"}, {}),
    ],
)
def test_warnings_never_contain_the_raw_value(user_data: dict[str, Any], options: dict[str, Any]) -> None:
    _, warnings = normalize(user_data, **options)
    assert warnings
    raw_values = [v for value in user_data.values() for v in (value if isinstance(value, list) else [value])]
    digits = ["".join(ch for ch in v if ch.isdigit()) for v in raw_values]
    for warning in warnings:
        for raw in raw_values:
            assert raw not in warning
            assert raw.lower() not in warning
        for number in digits:
            if len(number) >= 6:
                assert number not in warning


# --- Issue 10: Snap's rules for names, cities and unusual emails --------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "normalized"),
    [
        # Snap's Parameters page (fn/ln): lower case letters only, punctuation removed, UTF-8 letters kept.
        ("fn", "John", "john"),
        ("fn", "Raphaël", "raphaël"),
        ("fn", "Jean-Luc", "jeanluc"),
        ("ln", "O'Brien", "obrien"),
        ("ln", "St. John-Smythe", "stjohnsmythe"),
        ("fn", "Mary Ann", "maryann"),
        ("ln", "Nuñez", "nuñez"),
        ("fn", "Zoë!", "zoë"),
        ("ln", "Ørsted", "ørsted"),
        ("fn", "李", "李"),
        # City: the same rule (Segment's Snap destination: Menlo Park -> menlopark).
        ("ct", "Menlo Park", "menlopark"),
        ("ct", "San Francisco", "sanfrancisco"),
        ("ct", "St. Louis", "stlouis"),
        ("ct", "Winston-Salem", "winstonsalem"),
        ("ct", "Zürich", "zürich"),
        # Email: Snap's rule is trim and lowercase; RFC-valid but unusual addresses are hashed, not dropped.
        ("em", ' "A B"@C.D ', '"a b"@c.d'),
        ("em", '"a@b"@example.com', '"a@b"@example.com'),
        ("em", "user+tag@example.com", "user+tag@example.com"),
        ("em", "Person@Example.com", "person@example.com"),
    ],
)
def test_snap_rules_for_names_cities_and_emails(field: str, raw: str, normalized: str) -> None:
    user, warnings = normalize({field: raw})
    assert user == {field: sha(normalized)}
    assert warnings == []


def test_punctuation_only_name_is_left_out() -> None:
    user, warnings = normalize({"fn": "--'"})
    assert user == {}
    assert "user_data.fn" in warnings[0]


def test_every_device_identifier_given_is_kept() -> None:
    user, warnings = normalize(
        {"idfa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "idfv": "C305F2DB-56FC", "mobile_ad_id": "AA-BB"}
    )
    assert user == {"idfa": "6d92078a-8246-4ba4-ae5b-76104861e7dc", "idfv": "c305f2db-56fc", "madid": "aa-bb"}
    assert warnings == []


def test_madid_and_its_java_sdk_spelling_are_both_kept() -> None:
    user, _ = normalize({"madid": "AA-BB", "mobile_ad_id": "CC-DD"})
    assert user == {"madid": ["aa-bb", "cc-dd"]}
