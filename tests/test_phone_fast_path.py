"""Differential test of the phone fast path (issue 9): `normalize_phone` must give exactly the answer of
the `phonenumbers`-only rule it replaced, kept below as `reference_normalize_phone`, on a large varied
corpus: every region and non-geographic calling code `phonenumbers` knows, every number type's example,
in E.164, international, national and RFC 3966 forms, with `00`, with punctuation, with digits added,
dropped and changed, with a trunk 0 after the country code, and junk. Same result or same refusal."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator

import phonenumbers
import pytest

from src.rules.identifiers import IdentifierError, normalize_phone

#: The corpus is built once, on the worker that runs these tests.
pytestmark = pytest.mark.xdist_group("phone-corpus")

FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.RFC3966,
)
NUMBER_TYPES = tuple(
    value for name, value in vars(phonenumbers.PhoneNumberType).items() if name.isupper() and name != "UNKNOWN"
)
DEFAULT_COUNTRIES = (None, "US", "DE", "IT", "GB", "FR", "BR", "IN", "AR", "MX", "JP", "CN", "AU", "RU", "ZA", "xx")
JUNK = ("", "+", "++1", "+0", "+00", "00", "+1", "+12", "+123", "abc", "+1 ext 5", "+1-800-FLOWERS",
        "+44 (0) 20 7946 0958", "+1 415 555 0100 x12", "+49 30/1234567", "+7 (495) 123-45-67", "tel:+1-415-555-0100",
        "+ 1 415 555 0100", "+1..415..555..0100", "+1 (((415))) 555-0100", "+999 1234567", "+800 1234 5678",
        "+882 1234 5678", "+39 0", "+39 00000000", "+1 0000000000", "+61 4 1234 5678 9",
        "+\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff10\uff10")  # fmt: skip


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def reference_normalize_phone(value: str, default_country: str | None = None) -> str:
    """The rule before the fast path, verbatim: `phonenumbers` for every number."""
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        number = _parse(text, None)
        if number is None:
            raise IdentifierError("is not a phone number")
        if not phonenumbers.is_possible_number(number):
            raise IdentifierError("is not a possible phone number")
        return _e164(number)
    if not default_country:
        raise IdentifierError("has no country code (+ or 00); set defaultPhoneCountry")
    region = default_country.upper()
    digits = "".join(char for char in text if char.isdigit())
    national = _parse(text, region)
    international = _parse("+" + digits, None) if digits and not digits.startswith("0") else None
    own_code = str(phonenumbers.country_code_for_region(region))
    if (
        international is not None
        and digits.startswith(own_code)
        and phonenumbers.is_valid_number_for_region(international, region)
    ):
        return _e164(international)
    if national is not None and phonenumbers.is_valid_number(national):
        return _e164(national)
    if international is not None and phonenumbers.is_valid_number(international):
        return _e164(international)
    if national is not None and phonenumbers.is_possible_number(national):
        return _e164(national)
    raise IdentifierError("is not a phone number")


def _outcome(rule: object, value: str, country: str | None) -> str:
    try:
        return "ok " + rule(value, country)  # type: ignore[operator]
    except IdentifierError as error:
        return f"refused {error}"


def _examples() -> Iterator[phonenumbers.PhoneNumber]:
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in NUMBER_TYPES:
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                yield example
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            yield example


def _variants(number: phonenumbers.PhoneNumber, rng: random.Random) -> Iterator[str]:
    for number_format in FORMATS:
        yield phonenumbers.format_number(number, number_format)
    code = str(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    punctuated = " ".join(nsn[i : i + rng.randint(1, 4)] for i in range(0, len(nsn), 3))
    yield f"+{code}{nsn}"
    yield f"00{code}{nsn}"
    yield f"+{code} 0{nsn}"  # a trunk 0 written after the country code
    yield f"+{code} ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}"
    yield f"+{code}.{punctuated.replace(' ', '.')}"
    yield f" +{code} {punctuated} "
    yield f"{code}{nsn}"  # international digits without +
    yield f"0{nsn}"
    yield nsn
    for _ in range(6):  # a digit dropped, added, changed
        digits = list(nsn)
        where = rng.randrange(len(digits) + 1)
        action = rng.randrange(3)
        if action == 0 and len(digits) > 1:
            del digits[min(where, len(digits) - 1)]
        elif action == 1:
            digits.insert(where, str(rng.randrange(10)))
        elif digits:
            digits[min(where, len(digits) - 1)] = str(rng.randrange(10))
        yield f"+{code}{''.join(digits)}"
        yield f"+{code} {''.join(digits)}"


def _random_plus_numbers(rng: random.Random, count: int) -> Iterator[str]:
    separators = ("", " ", "-", ".", "(", ")", "/", "x", "#", "*", ",", "a", "\u00a0")
    for _ in range(count):
        digits = "".join(str(rng.randrange(10)) for _ in range(rng.randint(1, 20)))
        text = "".join(char + (rng.choice(separators) if rng.random() < 0.2 else "") for char in digits)
        yield rng.choice(("+", "+", "+", "00", "", "++", "+ ")) + text


@functools.cache
def corpus() -> list[tuple[str, str | None]]:
    """Built on first use, not at collection (each pytest-xdist worker collects every module)."""
    rng = random.Random(9)
    values: list[str] = list(JUNK)
    for example in _examples():
        values.extend(_variants(example, rng))
    values.extend(_random_plus_numbers(rng, 60_000))
    cases = [(value, None) for value in values]
    cases += [(value, rng.choice(DEFAULT_COUNTRIES)) for value in values if not value.strip().startswith(("+", "00"))]
    return cases


def test_corpus_is_large_and_varied() -> None:
    assert len(corpus()) > 80_000
    regions = {phonenumbers.region_code_for_country_code(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    assert len(regions) > 200


@pytest.mark.parametrize("chunk", range(8))
def test_fast_path_gives_the_phonenumbers_answer(chunk: int) -> None:
    differences = []
    for value, country in corpus()[chunk::8]:
        expected = _outcome(reference_normalize_phone, value, country)
        got = _outcome(normalize_phone, value, country)
        if got != expected:
            differences.append((value, country, expected, got))
    assert differences == []


def test_fast_path_is_taken_for_plain_international_numbers() -> None:
    from src.rules.identifiers import _plus_digits_e164

    taken = sum(_plus_digits_e164(value) is not None for value, _ in corpus() if value.startswith("+"))
    assert taken > 10_000
