"""Snap's normalization and hashing rules for `user_data`, one small pure rule per field.

Each rule takes one text value and returns what Snap wants (before SHA-256 for the hashed fields), or
raises `IdentifierError`. Which key gets which rule is said once, in `fields.py`; `user_data.py` applies
them to one event's `user_data`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from functools import cache

import phonenumbers

from .geo import country_code, us_state_code

Rule = Callable[[str], str]

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_SPACES = re.compile(r"\s+")


class IdentifierError(ValueError):
    """A value that cannot be normalized. The message never contains the value itself."""


#: What an email address or a phone number as people write them has: an `@`, or seven digits with at most
#: spaces, dots, dashes, parentheses or a `+` between them.
_PERSONAL = re.compile(r"@|\d(?:[\s().+-]{0,3}\d){6}")
#: What a message or a row says instead of such a value.
MASKED = "[an email address or phone number]"


def masked(text: str) -> str:
    """`text` as a message or a row may quote it (an unknown event name, field or action source), unless it may be
    an email address or a phone number, put where it does not belong: those leave the run hashed, never in clear."""
    return MASKED if _PERSONAL.search(text) else text


def is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and _SHA256_HEX.fullmatch(value) is not None


def _text(value: str) -> str:
    """Trim, fold runs of white space and lowercase; letters outside ASCII are kept as they are."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", value).strip()).lower()


def normalize_email(value: str) -> str:
    """Snap's rule and nothing more: trim, lowercase. RFC 5322 allows a quoted local part with spaces or
    `@` in it (`"a b"@c.d`): such an address is hashed, not dropped. Refused: no `@`, an empty local
    part or domain, and spaces or `@` outside quotes (`Secret Person@x.com`, `a@@x.com`)."""
    email = value.strip().lower()
    local, at, domain = email.rpartition("@")
    quoted = len(local) >= 2 and local.startswith('"') and local.endswith('"')
    unquoted_specials = not quoted and ("@" in local or " " in local)
    if not at or not local or not domain or unquoted_specials or " " in domain:
        raise IdentifierError("is not an email address")
    return email


def _parse_phone(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _e164_digits(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


_MAX_COUNTRY_CODE_LENGTH = 3
_MIN_NSN_LENGTH, _MAX_NSN_LENGTH = 2, 17  # `phonenumbers`' own bounds for a national number
#: What a country calling code says about the national number after it: the national prefix `parse` would
#: try to strip (None: none), and the lengths `is_possible_number` calls possible (not counting local-only ones).
CodeRule = tuple[Callable[[str], object] | None, frozenset[int]]


def _calling_code_rule(code: str) -> CodeRule | None:
    """`code`'s rule from `phonenumbers`' metadata; None for a code without metadata."""
    number = int(code)
    region = phonenumbers.region_code_for_country_code(number)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(number, region)
    if metadata is None or metadata.general_desc is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    lengths = frozenset(length for length in metadata.general_desc.possible_length if length > 0)
    return (re.compile(prefix).match if prefix else None, lengths)


@cache
def _calling_code_at(prefix: str) -> tuple[int, CodeRule | None] | None:
    """The calling code a number's first three digits begin with, as its length and rule; None: none does.
    Cached: at most 1,110 prefixes, and an export has a few."""
    for size in range(1, _MAX_COUNTRY_CODE_LENGTH + 1):
        code = prefix[:size]
        if int(code) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return size, _calling_code_rule(code)
    return None


def _plus_digits_e164(text: str) -> str | None:
    """The fast path of `normalize_phone` for the common case, `+` then digits and plain punctuation:
    the same answer `phonenumbers.parse` + `is_possible_number` + E.164 give, from the same metadata,
    or None to let `phonenumbers` decide (anything unusual: a national prefix to strip, a length that
    is not plainly possible, other characters). tests/test_phone_fast_path.py proves the two agree."""
    # The punctuation `phonenumbers` ignores between the digits of a number; the fast path takes no other.
    digits = text[1:].replace(" ", "").replace("-", "").replace("(", "").replace(")", "").replace(".", "")
    if not (digits.isascii() and digits.isdigit()) or digits[0] == "0":
        return None
    found = _calling_code_at(digits[:_MAX_COUNTRY_CODE_LENGTH])
    if found is None:
        return None
    size, rule = found
    if rule is None:
        return None
    strip_prefix, lengths = rule
    national = digits[size:]
    if not _MIN_NSN_LENGTH <= len(national) <= _MAX_NSN_LENGTH or len(national) not in lengths:
        return None
    if strip_prefix is not None and strip_prefix(national):
        return None
    return digits


def normalize_phone(value: str, default_country: str | None = None) -> str:
    """Digits with the country code: no `+`, no `00` prefix, no trunk `0`, no punctuation.

    A number written with `+` or `00` is international. Digits without either need
    `default_country` (with none the number is refused: no country is guessed), and are then read,
    by `phonenumbers`' validity, as the first of:

    1. already international with the default country's own code (`4915112345678` in DE);
    2. a valid national number of the default country (`030 1234567` in DE);
    3. a valid international number (`14155550100` in DE is +1 415..., not +49 14155550100);
    4. a possible national number of the default country (as before: test ranges such as 555).
    """
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        fast = _plus_digits_e164(text)
        if fast is not None:
            return fast
        number = _parse_phone(text, None)
        if number is None:
            raise IdentifierError("is not a phone number")
        if not phonenumbers.is_possible_number(number):
            raise IdentifierError("is not a possible phone number")
        return _e164_digits(number)
    if not default_country:
        raise IdentifierError("has no country code (+ or 00); set defaultPhoneCountry")
    region = default_country.upper()
    digits = "".join(char for char in text if char.isdigit())
    national = _parse_phone(text, region)
    international = _parse_phone("+" + digits, None) if digits and not digits.startswith("0") else None
    own_code = str(phonenumbers.country_code_for_region(region))
    if (
        international is not None
        and digits.startswith(own_code)
        and phonenumbers.is_valid_number_for_region(international, region)
    ):
        return _e164_digits(international)
    if national is not None and phonenumbers.is_valid_number(national):
        return _e164_digits(national)
    if international is not None and phonenumbers.is_valid_number(international):
        return _e164_digits(international)
    if national is not None and phonenumbers.is_possible_number(national):
        return _e164_digits(national)
    raise IdentifierError("is not a phone number")


def normalize_name(value: str) -> str:
    """Snap's Parameters page for `fn`/`ln`: "lower case letters only", punctuation removed, UTF-8
    letters kept: `O'Brien` -> `obrien`, `Jean-Luc` -> `jeanluc`, `Raphaël` -> `raphaël`. Only letters
    (and the accents combined with them) stay, so spaces go too: `Mary Ann` -> `maryann`."""
    name = "".join(char for char in unicodedata.normalize("NFC", value).lower() if _is_letter(char))
    if not name:
        raise IdentifierError("has no letters")
    return name


def _is_letter(char: str) -> bool:
    return unicodedata.category(char)[0] in ("L", "M")


def normalize_city(value: str) -> str:
    """Same rule as names (see docs/snap-fidelity.md): `San Francisco` -> `sanfrancisco`,
    `St. Louis` -> `stlouis`, `Zürich` -> `zürich`; Segment's Snap destination and Meta agree."""
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
