"""Snap's normalization and hashing rules for `user_data`, one small pure rule per field.

Every identifier Snap matches on is listed once in a table: hashed fields map to the rule that
normalizes them before SHA-256, raw fields to the rule that tidies them. `UserDataNormalizer`
applies the table to one event's `user_data`; nothing else in the actor touches raw identifiers.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial

import phonenumbers

from .geo import country_code, us_state_code

Rule = Callable[[str], str]

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_SPACES = re.compile(r"\s+")


class IdentifierError(ValueError):
    """A value that cannot be normalized. The message never contains the value itself."""


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def is_sha256_hex(value: str) -> bool:
    return _SHA256_HEX.fullmatch(value) is not None


def _text(value: str) -> str:
    """Trim, fold runs of white space and lowercase; letters outside ASCII are kept as they are."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", value).strip()).lower()


def normalize_email(value: str) -> str:
    email = value.strip().lower()
    if email.count("@") != 1 or email.startswith("@") or email.endswith("@") or " " in email:
        raise IdentifierError("is not an email address")
    return email


def normalize_phone(value: str, default_country: str | None = None) -> str:
    """Digits with the country code: no `+`, no `00` prefix, no trunk `0`, no punctuation.

    A number written without `+` or `00` takes `default_country`; with none given it is refused:
    neither +1 nor any other country is guessed from the digits.
    """
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        if text.startswith("+"):
            number = phonenumbers.parse(text, None)
        elif default_country:
            number = phonenumbers.parse(text, default_country.upper())
        else:
            raise IdentifierError("has no country code (+ or 00); set defaultPhoneCountry")
    except phonenumbers.NumberParseException as error:
        raise IdentifierError("is not a phone number") from error
    if not phonenumbers.is_possible_number(number):
        raise IdentifierError("is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def normalize_name(value: str) -> str:
    name = _text(value)
    if not name:
        raise IdentifierError("is empty")
    return name


def normalize_city(value: str) -> str:
    return normalize_name(value)


def normalize_state(value: str) -> str:
    text = _text(value)
    code = us_state_code(text) if len(text) > 2 else text
    if code is None or len(code) != 2 or not code.isalpha():
        raise IdentifierError("is not a 2-letter state code or a US state name")
    return code


def normalize_zip(value: str) -> str:
    """US ZIP+4 keeps its first 5 digits; other postal codes are lowercased without spaces."""
    text = value.strip().lower().replace(" ", "")
    if len(text) == 10 and text[5] == "-" and text[:5].isdigit() and text[6:].isdigit():
        return text[:5]
    if not text:
        raise IdentifierError("is empty")
    return text


def normalize_country(value: str) -> str:
    text = _text(value)
    code = country_code(text)
    if code is None:
        raise IdentifierError("is not an ISO 3166 country code or name")
    return code


_GENDERS = {"m": "m", "male": "m", "man": "m", "f": "f", "female": "f", "woman": "f"}


def normalize_gender(value: str) -> str:
    gender = _GENDERS.get(_text(value))
    if gender is None:
        raise IdentifierError("must be m/male or f/female")
    return gender


_DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d.%m.%Y", "%Y.%m.%d", "%d %B %Y", "%B %d %Y")


def normalize_date_of_birth(value: str) -> str:
    """`YYYYMMDD` from the common spellings; ambiguous `dd/mm/yyyy` is read the US way, `mm/dd`."""
    text = _SPACES.sub(" ", value.strip().replace(",", ""))
    for pattern in _DATE_FORMATS:
        try:
            born = datetime.strptime(text, pattern).date()
        except ValueError:
            continue
        if date(1900, 1, 1) <= born <= date.today():
            return born.strftime("%Y%m%d")
    raise IdentifierError("is not a date of birth (use YYYY-MM-DD)")


def normalize_external_id(value: str) -> str:
    external_id = value.strip()
    if not external_id:
        raise IdentifierError("is empty")
    return external_id


def normalize_lowercase_id(value: str) -> str:
    """Mobile ad ids and IDFVs: lowercase, hyphens kept."""
    return value.strip().lower()


def normalize_raw(value: str) -> str:
    return value.strip()


def normalize_ip(value: str) -> str:
    ip = value.strip()
    if is_sha256_hex(ip):
        raise IdentifierError("must be the raw IP address; Snap rejects a hashed one")
    return ip


#: Hashed `user_data` fields and the rule applied before hashing.
HASHED_RULES: Mapping[str, Rule] = {
    "em": normalize_email,
    "ph": normalize_phone,
    "fn": normalize_name,
    "ln": normalize_name,
    "ge": normalize_gender,
    "db": normalize_date_of_birth,
    "ct": normalize_city,
    "st": normalize_state,
    "zp": normalize_zip,
    "country": normalize_country,
    "external_id": normalize_external_id,
}

#: `user_data` fields Snap takes unhashed.
RAW_RULES: Mapping[str, Rule] = {
    "client_ip_address": normalize_ip,
    "client_user_agent": normalize_raw,
    "sc_click_id": normalize_raw,
    "sc_cookie1": normalize_raw,
    "madid": normalize_lowercase_id,
    "idfv": normalize_lowercase_id,
}

UserDataValue = str | list[str]


@dataclass(frozen=True, slots=True)
class NormalizedUserData:
    user_data: dict[str, UserDataValue]
    warnings: list[str] = field(default_factory=list)


class UserDataNormalizer:
    """Turns one event's raw `user_data` into what Snap accepts: hashes where Snap wants hashes.

    A value that fails its rule is dropped with a warning naming the field, so that one bad phone
    number does not cost the conversion its email match.
    """

    def __init__(self, *, default_phone_country: str | None = None, already_hashed: bool = False) -> None:
        self._already_hashed = already_hashed
        self._hashed: dict[str, Rule] = dict(HASHED_RULES)
        self._hashed["ph"] = partial(normalize_phone, default_country=default_phone_country)

    def normalize(self, user_data: Mapping[str, object]) -> NormalizedUserData:
        result: dict[str, UserDataValue] = {}
        warnings: list[str] = []
        for key, value in user_data.items():
            if value is None or value == "" or value == []:
                continue
            rule = self._hashed.get(key)
            if rule is not None:
                transform: Rule = partial(self._hash, rule)
            elif key in RAW_RULES:
                transform = RAW_RULES[key]
            else:
                warnings.append(f"user_data.{key} is not a Snap identifier and was left out")
                continue
            kept: list[str] = []
            for item in value if isinstance(value, list) else [value]:
                try:
                    out = transform(_as_text(item))
                except IdentifierError as error:
                    warnings.append(f"user_data.{key} {error}; left out")
                    continue
                if out not in kept:
                    kept.append(out)
            if kept:
                result[key] = kept if isinstance(value, list) else kept[0]
        return NormalizedUserData(result, warnings)

    def _hash(self, rule: Rule, value: str) -> str:
        value = value.strip()
        if is_sha256_hex(value):
            return value.lower()
        if self._already_hashed:
            raise IdentifierError("is marked as already hashed but is not a SHA-256 hex digest")
        return sha256_hex(rule(value))


def _as_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise IdentifierError("must be text")
    return str(value)
