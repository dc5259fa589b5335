"""What reaches Snap in `user_data` for the edge cases the mutation baseline found untested (issue 11)."""

from __future__ import annotations

from hashlib import sha256

import pytest

from src.events.user_data import UserDataNormalizer
from src.rules.identifiers import (
    IdentifierError,
    is_sha256_hex,
    normalize_date_of_birth,
    normalize_phone,
    normalize_zip,
)


def digest(text: str) -> str:
    return sha256(text.encode()).hexdigest()


def normalized(user: dict[str, object], **options: object) -> tuple[dict[str, object], list[str]]:
    return UserDataNormalizer(**options).normalize(user)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["zp", "external_id"])
@pytest.mark.parametrize("blank", ["   ", "\t", " \n "])
def test_a_whitespace_only_value_is_left_out_not_hashed_as_empty(key: str, blank: str) -> None:
    user, warnings = normalized({key: blank, "em": "a@example.com"})
    assert key not in user
    assert digest("") not in str(user)
    assert warnings == [f"user_data.{key} is empty; left out"]


def test_zip_and_external_id_are_hashed_trimmed() -> None:
    user, warnings = normalized({"zp": " 12345-6789 ", "external_id": "  crm-7 "})
    assert user == {"zp": digest("12345"), "external_id": digest("crm-7")}
    assert warnings == []


def test_only_a_real_zip_plus_4_is_cut_to_five_digits() -> None:
    assert normalize_zip("12345-6789") == "12345"
    assert normalize_zip("12345-A678") == "12345-a678"
    assert normalize_zip("12345-67X9") == "12345-67x9"
    assert normalize_zip("1234A-6789") == "1234a-6789"
    assert normalize_zip("SW1A 1AA") == "sw1a1aa"
    with pytest.raises(IdentifierError, match="is empty"):
        normalize_zip("  ")


def test_a_64_character_value_that_is_not_hex_is_hashed_not_passed_through() -> None:
    text = "z" * 64
    assert not is_sha256_hex(text)
    assert not is_sha256_hex("a" * 63)
    assert is_sha256_hex("A" * 64)
    user, _ = normalized({"external_id": text})
    assert user == {"external_id": digest(text)}
    already = "AB" * 32
    assert normalized({"external_id": already})[0] == {"external_id": already.lower()}


def test_an_identifier_with_control_characters_is_left_out() -> None:
    user, warnings = normalized({"em": "a\x01b@example.com", "external_id": "x\x00", "ph": "+1 415 555 0100"})
    assert set(user) == {"ph"}
    assert "user_data.em contains control characters; left out" in warnings
    assert "user_data.external_id contains control characters; left out" in warnings


def test_the_same_identifier_given_twice_is_sent_once_as_text() -> None:
    madid = "402da762-201e-42c1-961b-c1fa6cbcf566"
    user, _ = normalized({"mobile_ad_id": madid, "madid": madid.upper()})
    assert user == {"madid": madid}
    user, _ = normalized({"mobile_ad_id": madid, "madid": "other-id"})
    assert user == {"madid": [madid, "other-id"]}
    user, _ = normalized({"em": ["a@example.com"]})
    assert user == {"em": [digest("a@example.com")]}


def test_date_of_birth_bounds() -> None:
    assert normalize_date_of_birth("1900-01-01") == "19000101"
    with pytest.raises(IdentifierError):
        normalize_date_of_birth("1899-12-31")


@pytest.mark.parametrize("phone", ["+abc", "+", "00", "+0123456", "+(((", "+1 2"])
def test_a_phone_the_parser_refuses_is_an_identifier_error(phone: str) -> None:
    with pytest.raises(IdentifierError):
        normalize_phone(phone)
    user, warnings = normalized({"ph": phone, "em": "a@example.com"})
    assert "ph" not in user
    assert len(warnings) == 1 and warnings[0].startswith("user_data.ph ")


def test_a_phone_without_a_country_code_needs_a_default_country() -> None:
    with pytest.raises(IdentifierError, match="defaultPhoneCountry"):
        normalize_phone("030 1234567")
    assert normalize_phone("030 1234567", "de") == "49301234567"
    user, _ = normalized({"ph": "030 1234567"}, default_phone_country="DE")
    assert user == {"ph": digest("49301234567")}


@pytest.mark.parametrize("value", [True, False, {"a": 1}, [["x"]]])
def test_a_value_that_is_not_text_is_left_out(value: object) -> None:
    user, warnings = normalized({"external_id": value, "em": "a@example.com"})
    assert set(user) == {"em"}
    assert warnings == ["user_data.external_id must be text; left out"]


def test_numbers_are_read_as_text() -> None:
    assert normalized({"external_id": 42})[0] == {"external_id": digest("42")}


def test_a_hash_given_with_spaces_around_it_is_sent_as_that_hash() -> None:
    hashed = digest("a@example.com")
    assert normalized({"em": f"  {hashed.upper()} "})[0] == {"em": hashed}


def test_already_hashed_input_refuses_plain_values() -> None:
    hashed = digest("a@example.com")
    user, warnings = normalized({"em": "a@example.com", "ph": hashed}, already_hashed=True)
    assert user == {"ph": hashed}
    assert warnings == ["user_data.em is marked as already hashed but is not a SHA-256 hex digest; left out"]


def test_empty_values_are_skipped_without_a_warning() -> None:
    assert normalized({"em": None, "ph": "", "external_id": [], "zp": "12345"}) == ({"zp": digest("12345")}, [])
