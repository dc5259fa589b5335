"""Differential tests of the per-event build's fast paths (issue 9): each optimized rule must give exactly the
answer of the straightforward rule it replaced, kept below verbatim as `reference_*`, on a large varied corpus
(printable ASCII, every control and C1 character, U+FFFD, lone surrogates, astral characters, numbers of every
kind, NaN and infinity, huge ints, bools, lists, dicts, None, str and int subclasses). Same result (value and
type) or the same refusal (error type and message). Each corpus holds values of the fast path and of the slow
path, so that a change to either is caught.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import struct
import types
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import orjson
import pycountry
import pytest

from src.events import build as build_module
from src.events import preflight as preflight_module
from src.events.build import EventError, _ranked_match_keys, content_event_id, parse_event_time
from src.events.preflight import MAX_CHARS, _clean_at_a_glance
from src.events.shape import SourceEvent, iter_events, to_native
from src.events.user_data import UserDataNormalizer
from src.fields import (
    FLAG_FIELDS,
    FLAT_FIELDS,
    HASHED_RULES,
    MATCH_RANK,
    NATIVE_FIELDS,
    RAW_RULES,
    SECTIONS,
    USER_DATA_ALIASES,
)
from src.rules import values
from src.rules.identifiers import IdentifierError, is_sha256_hex, normalize_phone
from src.rules.values import FieldError, as_number, broken_text, currency

HEX = "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"


class Text(str):
    """A str subclass: the fast paths take exact str only, a subclass goes the long way."""


class Count(int):
    """An int subclass (not bool)."""


class Price(float):
    """A float subclass: not a JSON float, so the long way too."""


# --- the rules before issue 9's build changes, verbatim ----------------------------------------------------------

_BROKEN = re.compile("[\x00-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")


def reference_broken_text(text: str) -> str | None:
    found = _BROKEN.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\ufffd":
        return "contains U+FFFD replacement characters (broken UTF-8 in the source)"
    if char >= "\ud800":
        return "contains broken UTF-8 (a lone surrogate)"
    return "contains control characters"


def reference_as_number(value: object, field: str = "price") -> float | int:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError(f"{field} must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    else:
        try:
            number = float(value.strip())
        except ValueError:
            raise FieldError(f"{field} must be a number") from None
    if not math.isfinite(number):
        raise FieldError(f"{field} must be a finite number (not NaN or infinity)")
    if isinstance(value, str) and number.is_integer() and "." not in value:
        return int(number)
    return number


def reference_text(value: object, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError(f"{field} must be text")
    if isinstance(value, float) and not math.isfinite(value):
        raise FieldError(f"{field} must be text")
    text = str(value).strip()
    if (problem := reference_broken_text(text)) is not None:
        raise FieldError(f"{field} {problem}")
    if len(text) > 1000:  # MAX_TEXT, as a number: a changed constant in the module must show
        raise FieldError(f"{field} is longer than 1000 characters")
    return text


def reference_currency(value: object) -> str:
    code = reference_text(value, "currency").upper()
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise FieldError("currency must be an ISO 4217 code such as USD or EUR")
    return code


def reference_as_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise IdentifierError("must be text")
    text = str(value)
    if (problem := reference_broken_text(text.strip())) is not None:
        raise IdentifierError(problem)
    return text


class ReferenceNormalizer:
    """`UserDataNormalizer` before issue 9's build changes."""

    def __init__(self, *, default_phone_country: str | None = None, already_hashed: bool = False) -> None:
        self._already_hashed = already_hashed
        hashed: dict[str, Callable[[str], str]] = dict(HASHED_RULES)
        hashed["ph"] = lambda value: normalize_phone(value, default_country=default_phone_country)
        self._transforms: dict[str, Callable[[str], str]] = {
            key: (lambda value, rule=rule: self._hash(rule, value)) for key, rule in hashed.items()
        }
        self._transforms.update(RAW_RULES)

    def normalize(self, user_data: Mapping[str, object]) -> tuple[dict[str, str | list[str]], list[str]]:
        result: dict[str, str | list[str]] = {}
        warnings: list[str] = []
        for given_key, value in user_data.items():
            if value is None or value == "" or value == []:
                continue
            key = USER_DATA_ALIASES.get(given_key, given_key)
            transform = self._transforms.get(key)
            if transform is None:
                warnings.append(f"user_data.{key} is not a Snap identifier and was left out")
                continue
            earlier = result.get(key)
            kept: list[str] = [] if earlier is None else [earlier] if isinstance(earlier, str) else earlier
            many = isinstance(value, list) or earlier is not None
            for item in value if isinstance(value, list) else [value]:
                try:
                    out = transform(reference_as_text(item))
                except IdentifierError as error:
                    warnings.append(f"user_data.{key} {error}; left out")
                    continue
                if out not in kept:
                    kept.append(out)
            if kept:
                result[key] = kept if (many and len(kept) > 1) or isinstance(value, list) else kept[0]
        return result, warnings

    def _hash(self, rule: Callable[[str], str], value: str) -> str:
        value = value.strip()
        if is_sha256_hex(value):
            return value.lower()
        if self._already_hashed:
            raise IdentifierError("is marked as already hashed but is not a SHA-256 hex digest")
        return sha256(rule(value).encode()).hexdigest()


_SUSPECT_JSON = re.compile(rb"\\u00[01][0-9a-f]|\\[bfnrt]|\x7f|\xc2[\x80-\x9f]|\xef\xbf\xbd|null")


def reference_clean_at_a_glance(event: Mapping[str, Any]) -> bool:
    try:
        body = orjson.dumps(event)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return len(body) <= MAX_CHARS and _SUSPECT_JSON.search(body) is None


_ROUTES: dict[str, Any] = {
    **FLAT_FIELDS,
    **dict.fromkeys(FLAG_FIELDS, "flag"),
    **dict.fromkeys(NATIVE_FIELDS, "native"),
}


def reference_to_native(data: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> Any:
    """Two passes: native keys first, then the single-event names fill what is left."""
    event: dict[str, Any] = {}
    flags: dict[str, Any] = {}
    warnings: list[str] = []
    flat: list[tuple[Any, Any]] = []
    for key, value in data.items():
        route = _ROUTES.get(key)
        if route is None:
            warnings.append(f"field '{key}' is not an event field and was ignored")
        elif route == "native":
            event[key] = dict(value) if key in SECTIONS and isinstance(value, Mapping) else value
        elif route == "flag":
            flags[key] = value
        else:
            flat.append((route, value))
    for where, value in [*flat, *((FLAT_FIELDS[key], value) for key, value in (defaults or {}).items())]:
        if value is None or value == "":
            continue
        section, name = where
        if section is None:
            if name not in event:
                event[name] = value
            continue
        target = event[section] if section in event else event.setdefault(section, {})
        if isinstance(target, dict) and name not in target:
            target[name] = value
    return event, flags, warnings


def reference_parse_event_time(value: object, now: float) -> int:
    if value is None or value == "":
        return int(now)
    if isinstance(value, bool):
        raise EventError("eventTime must be Unix seconds, Unix milliseconds or an ISO 8601 date")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise EventError("eventTime must be Unix seconds, Unix milliseconds or an ISO 8601 date") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp())
    if not math.isfinite(number):
        raise EventError("eventTime must be Unix seconds, Unix milliseconds or an ISO 8601 date, not NaN or infinity")
    return int(number / 1000 if number >= 10**11 else number)


# --- the corpus -------------------------------------------------------------------------------------------------

ODD_CHARS = [chr(code) for code in range(0x00, 0x110)] + [
    "\u00a0", "\u0085", "\u200b", "\u2028", "\ufeff", "\ufffd", "\ufffe", "\ud800", "\udbff", "\udc00", "\udfff",
    "\U0001f600", "\U0010ffff", "\u212a", "\u017f", "ß", "ǅ", "İ", "é", "ü", "\u0301",
]  # fmt: skip
WORDS = [
    "", " ", "  x  ", "usd", "USD", " eur ", "Jpy", "XTS", "XXX", "ABC", "US", "USDD", "dollars", "uſd", "\u212aES",
    "ÜSD", "42", "42.0", " 7 ", "4.2e1", "1e3", "-1", "+5", "5.", ".5", "nan", "NaN", "inf", "-Infinity", "1e400",
    "0x10", "1_000", "٤٢", "４２", "00042", "1000000000", "1000000000.5", "order-12345", "Buyer.1@Example.com",
    "+1 (415) 200-0001", "a,b;c", HEX, HEX.upper(), " " + HEX + " ", HEX[:63], "g" * 64, "x" * 1000, "x" * 1001,
    " " * 3 + "x" * 1000 + " ", "a\"b", "a\\b", "tab\there", "line\nbreak", "caf\ufffd", "a\ud800b", "\x7f", "\x9f",
    "null", "nullable", "é" * 10,
]  # fmt: skip
NUMBERS: list[object] = [
    0, 1, -1, 42, 10**9, 10**9 + 1, 10**30, -(10**400), 10**400, 0.0, -0.0, 0.5, 42.0, 1e9, 1e9 + 1, 1e308, -1e308,
    1e-300, math.nan, -math.nan, math.inf, -math.inf, True, False, Count(7), Count(-3), Price(2.5), Price(math.nan),
]  # fmt: skip
OTHERS: list[object] = [None, [], ["USD"], {}, {"a": 1}, (), b"USD", Text("usd"), Text(" 42 "), Text("a\x00")]


def text_corpus(rng: random.Random, count: int = 3000) -> list[str]:
    texts = list(WORDS) + ODD_CHARS + [f"ab{char}cd" for char in ODD_CHARS] + [f" {char} " for char in ODD_CHARS]
    alphabet = [*ODD_CHARS, *"abcXYZ019 .-@+"]
    for _ in range(count):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
        plain = "".join(rng.choice("abcXYZ019 .-@+()") for _ in range(rng.randint(1, 30)))
        texts.append(plain)  # the fast path's own cases, in number
    return texts


def value_corpus(rng: random.Random) -> list[object]:
    return [*text_corpus(rng, 500), *NUMBERS, *OTHERS]


def outcome(rule: Callable[..., Any], *args: object) -> tuple[str, object, str]:
    """What a call gives: the result and its type, or the error type and message."""
    try:
        result = rule(*args)
    except (FieldError, IdentifierError) as error:
        return "refused", type(error).__name__, str(error)
    return "ok", result if not isinstance(result, float) or not math.isnan(result) else "nan", type(result).__name__


# --- the tests --------------------------------------------------------------------------------------------------


def test_broken_text_agrees_with_the_regex_alone() -> None:
    texts = text_corpus(random.Random(1))
    assert sum(text.isascii() and text.isprintable() for text in texts) > 3000  # the fast path is exercised
    assert sum(reference_broken_text(text) is not None for text in texts) > 1000  # and the slow one
    for text in texts:
        assert broken_text(text) == reference_broken_text(text), ascii(text)


class NoRegex:
    """Stands in for a compiled pattern that the fast path must not need."""

    def search(self, text: str) -> None:
        raise AssertionError("the regex was consulted")


def test_printable_ascii_is_clean_without_the_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "_BROKEN", NoRegex())
    for text in ("", " ", "Buyer.1@Example.com", "~!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}"):
        assert broken_text(text) is None
    with pytest.raises(AssertionError, match="consulted"):
        broken_text("café")  # outside ASCII: the regex decides


def test_a_clean_plain_body_is_clean_without_the_regex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight_module, "_SUSPECT_JSON", NoRegex())
    assert _clean_at_a_glance({"event_id": "plain", "event_time": 1, "custom_data": {"value": 1.5}}) is True
    for text in ('a"quote', "café", "a\x7fb", "nullable"):
        with pytest.raises(AssertionError, match="consulted"):
            _clean_at_a_glance({"event_id": text})


@pytest.mark.parametrize("field", ["price", "numberOfItems (num_items)"])
def test_as_number_agrees_with_the_reference(field: str) -> None:
    for value in value_corpus(random.Random(2)):
        assert outcome(as_number, value, field) == outcome(reference_as_number, value, field), ascii(value)


def test_as_number_returns_json_numbers_as_they_are() -> None:
    big = 10**30
    assert as_number(big) is big
    assert as_number(2.5) == 2.5 and type(as_number(2.5)) is float
    assert type(as_number(Count(3))) is Count  # a subclass as the reference returns it
    with pytest.raises(FieldError, match="finite"):
        as_number(math.inf)
    with pytest.raises(FieldError, match="must be a number"):
        as_number(True)


@pytest.mark.parametrize("field", ["currency", "transactionId (order_id)", "extinfo[3]"])
def test_text_agrees_with_the_reference(field: str) -> None:
    for value in value_corpus(random.Random(3)):
        assert outcome(values._text, value, field) == outcome(reference_text, value, field), ascii(value)


def test_currency_agrees_with_a_pycountry_lookup_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "_CURRENCIES_SEEN", {})
    corpus = value_corpus(random.Random(4)) + [code.alpha_3.lower() for code in pycountry.currencies]
    for value in corpus + corpus:  # the second time from the memo
        assert outcome(currency, value) == outcome(reference_currency, value), ascii(value)
    assert values._CURRENCIES_SEEN["USD"] is True
    assert values._CURRENCIES_SEEN["ABC"] is False


def test_the_currency_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, bool] = {}
    monkeypatch.setattr(values, "_CURRENCIES_SEEN", seen)
    monkeypatch.setattr(values, "_SEEN_LIMIT", 3)
    assert (currency("usd"), currency("eur")) == ("USD", "EUR")
    with pytest.raises(FieldError):
        currency("zzz")
    assert seen == {"USD": True, "EUR": True, "ZZZ": False}
    assert currency("jpy") == "JPY" and "JPY" not in seen  # past the bound: looked up, not kept
    with pytest.raises(FieldError):
        currency("qqq")


def test_a_memoized_currency_is_not_looked_up_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "_CURRENCIES_SEEN", {})
    calls: list[str] = []
    real_get = pycountry.currencies.get

    def counting_get(**kwargs: str) -> object:
        calls.append(kwargs["alpha_3"])
        return real_get(**kwargs)

    monkeypatch.setattr(pycountry.currencies, "get", counting_get)
    for _ in range(3):
        assert currency("usd") == "USD"
        with pytest.raises(FieldError):
            currency("ZZZ")
    assert calls == ["USD", "ZZZ"]


def user_data_corpus(rng: random.Random, count: int = 2500) -> Iterator[dict[str, object]]:
    keys = sorted({*HASHED_RULES, *RAW_RULES, *USER_DATA_ALIASES, "not_a_key"})
    identifiers = [
        "Person@Example.com", " a@b.c ", "a@@b.c", "no-at", "+1 (415) 200-0001", "+44 844 412 4653", "030 1234567",
        "4155550100", "+0123", "O'Brien", "Raphaël", "1990-01-31", "bad", "CA", "california", "94105-1234", "usa",
        "xx", "m", "Female", "203.0.113.9", "Mozilla/5.0", "6D92078A-8246-4BA4-AE5B-76104861E7DC", HEX, HEX.upper(),
        f" {HEX} ", "g" * 64, "", " ", "a\x00b", "\x00", " \t", "caf\ufffd", "\ud800", "é", "x" * 300,
    ]  # fmt: skip
    pool: list[object] = [*identifiers, *NUMBERS, *OTHERS, ["a@b.c", "A@B.C", "bad"], ["+14155550100", 4155550100]]
    for key in keys:
        for value in pool:
            yield {key: value}
    for _ in range(count):
        data = {rng.choice(keys): rng.choice(pool) for _ in range(rng.randint(0, 6))}
        if rng.random() < 0.3:  # one key given twice, once by its alias
            data["mobile_ad_id"], data["madid"] = rng.choice(pool), rng.choice(pool)
        yield data


@pytest.mark.parametrize(
    "options", [{}, {"default_phone_country": "US"}, {"already_hashed": True}, {"default_phone_country": ""}]
)
def test_the_normalizer_agrees_with_the_reference(options: dict[str, Any]) -> None:
    normalizer, reference = UserDataNormalizer(**options), ReferenceNormalizer(**options)
    for user_data in user_data_corpus(random.Random(5)):
        got, expected = normalizer.normalize(user_data), reference.normalize(user_data)
        assert got == expected, user_data
        assert list(got[0]) == list(expected[0])  # the same key order in the payload


def glance_payloads(rng: random.Random) -> Iterator[dict[str, Any]]:
    base: dict[str, Any] = {"event_name": "PURCHASE", "event_time": 1_700_000_000, "user_data": {"em": HEX}}
    for text in text_corpus(rng, 300):
        yield base | {"event_id": text}
        yield base | {"custom_data": {"brands": text, "value": 1.5}}
    for value in (None, math.nan, math.inf, 10**30, 2**64, [None], {"a": None}, "x" * MAX_CHARS, "é" * 3000):
        yield base | {"event_id": "e", "custom_data": {"other": value}}


def test_the_glance_agrees_with_the_regex_alone() -> None:
    payloads = list(glance_payloads(random.Random(6)))
    glances = [_clean_at_a_glance(payload) for payload in payloads]
    assert glances == [reference_clean_at_a_glance(payload) for payload in payloads]
    assert 500 < sum(glances) < len(payloads) - 500


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("plain", True),  # no backslash, DEL, non-ASCII or null: clean without the regex
        ('a"quote', True),  # a backslash (the quote's escape), nothing suspect: the regex says clean
        ("a\\z", True),
        ("a\\b", False),  # `\\b` in the JSON looks like an escaped backspace: a hint, no more
        ("café", True),  # outside ASCII, nothing suspect
        ("a\x7fb", False),  # DEL, ASCII
        ("nullable", False),  # `null`, even inside text: only a hint, the rules decide
        ("tab\there", False),
        ("\x85", False),  # a C1 control character
        ("caf\ufffd", False),
    ],
)
def test_the_glance_on_each_kind_of_text(text: str, clean: bool) -> None:
    assert _clean_at_a_glance({"event_id": text}) is clean
    assert reference_clean_at_a_glance({"event_id": text}) is clean


def test_a_long_payload_is_never_clean_at_a_glance() -> None:
    assert _clean_at_a_glance({"event_id": "x" * (MAX_CHARS - 20)}) is True
    assert _clean_at_a_glance({"event_id": "x" * MAX_CHARS}) is False
    assert preflight_module.check_sendable({"event_id": "x" * MAX_CHARS}, 0) is None


def native_corpus(rng: random.Random, count: int = 4000) -> Iterator[dict[str, Any]]:
    keys = [*sorted(FLAT_FIELDS), *sorted(FLAG_FIELDS), *sorted(NATIVE_FIELDS), "notAField"]
    values_: list[object] = [None, "", "x", 0, 5, [], ["a"], {"em": "native"}, {"value": 1, "currency": "eur"}, "nat"]
    for _ in range(count):
        yield {rng.choice(keys): rng.choice(values_) for _ in range(rng.randint(0, 10))}


@pytest.mark.parametrize(
    "defaults", [None, {}, {"currency": "USD", "eventSourceUrl": "https://x.example/", "email": "d"}]
)
def test_to_native_agrees_with_the_two_pass_reference(defaults: dict[str, Any] | None) -> None:
    for data in native_corpus(random.Random(7)):
        native = to_native(data, defaults)
        event, flags, warnings = reference_to_native(data, defaults)
        assert (native.event, native.flags, native.warnings) == (event, flags, warnings), data
        for section in SECTIONS:  # the order of a section's keys is the order Snap gets them in
            if isinstance(event.get(section), dict):
                assert list(native.event[section]) == list(event[section]), data


def test_a_native_section_after_single_event_names_keeps_them_under_its_missing_keys() -> None:
    data = {"email": "flat@x.y", "phone": "+1", "user_data": {"em": "native@x.y"}, "ipAddress": "1.2.3.4"}
    assert to_native(data).event["user_data"] == {"em": "native@x.y", "ph": "+1", "client_ip_address": "1.2.3.4"}
    assert list(to_native(data).event["user_data"]) == ["em", "ph", "client_ip_address"]
    assert to_native({"eventType": "LOGIN", "event_name": "PURCHASE"}).event == {"event_name": "PURCHASE"}
    assert to_native({"email": "a@b.c", "user_data": "not an object"}).event == {"user_data": "not an object"}


def test_empty_defaults_fill_nothing() -> None:
    defaults = {"currency": None, "eventSourceUrl": "", "eventType": "LOGIN", "email": ""}
    assert to_native({}, defaults).event == {"event_name": "LOGIN"}
    assert to_native({"price": 5}, {"currency": None}).event == {"custom_data": {"value": 5}}


def test_iter_events_streams_objects_and_marks_the_rest() -> None:
    async def collect() -> list[SourceEvent]:
        return [event async for event in iter_events([{"eventType": "LOGIN"}, 5, types.MappingProxyType({})])]

    events = asyncio.run(collect())
    assert [(event.index, event.error) for event in events] == [
        (0, None),
        (1, "events[1] is not a JSON object"),
        (2, None),
    ]
    assert events[0].data == {"eventType": "LOGIN"} and events[1].data is None and events[2].data == {}


def test_parse_event_time_agrees_with_the_reference() -> None:
    rng = random.Random(9)
    edges = [0, 1, -1, 1_700_000_000, 10**11 - 1, 10**11, 10**11 + 1, 1_700_000_000_123, 2**53 + 1, 10**400]
    times: list[object] = [*edges, *(-edge for edge in edges), *(float(edge) for edge in edges[:-1]), 1.7e9 + 0.5]
    times += [Count(5), Count(10**12), True, False, None, "", " ", "1700000000", "1.7e12", "2023-11-14T22:13:20Z"]
    times += [rng.randrange(-(10**14), 10**14) for _ in range(2000)] + [rng.uniform(-1e14, 1e14) for _ in range(500)]
    times += [*value_corpus(rng)]
    for value in times:
        try:
            expected: object = reference_parse_event_time(value, 1_700_000_000.5)
        except (EventError, TypeError, ValueError, OverflowError) as error:
            expected = f"{type(error).__name__}: {error}"
        try:
            got: object = parse_event_time(value, 1_700_000_000.5)
        except (EventError, TypeError, ValueError, OverflowError) as error:
            got = f"{type(error).__name__}: {error}"
        assert (got, type(got)) == (expected, type(expected)), ascii(value)


def test_match_keys_are_ranked_as_the_plain_sort_ranks_them() -> None:
    rng = random.Random(8)
    keys = sorted(MATCH_RANK)
    for _ in range(500):
        given = tuple(rng.sample(keys, rng.randint(0, len(keys))))
        expected = tuple(sorted(set(given) & MATCH_RANK.keys(), key=MATCH_RANK.__getitem__))
        assert _ranked_match_keys(given) == expected
        assert _ranked_match_keys(given) == expected  # from the cache
    assert _ranked_match_keys(("ph", "not_a_key", "em")) == ("em", "ph")


def reference_content_event_id(payload: Mapping[str, Any], *, time_given: bool = True) -> str:
    if not time_given:
        payload = {key: value for key, value in payload.items() if key != "event_time"}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return sha256(canonical.encode()).hexdigest()[:32]


def _payloads(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """Payload-shaped objects whose values cover both encodings: plain ASCII and normal floats (orjson's fast
    path), and what only `json` writes its own way (exponents, tiny floats, NaN, DEL, escapes, non-ASCII text,
    huge ints, subclasses, a date, None)."""
    rnd = random.Random(seed)
    alphabet = "abcXYZ019 .-_/\\\"'\n\t\r\b\f\x00\x1f\x7f\x80é€😀\u2028eE+"

    def number() -> Any:
        if rnd.random() < 0.3:
            return struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0]
        if rnd.random() < 0.6:
            return round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 6))
        return rnd.choice([0.0, -0.0, 1e-4, 1e-5, 9.99e-5, 1e15, 1e16, 2.5e-7, 123.0, math.nan, math.inf, Price(1.5)])

    def value(depth: int = 0) -> Any:
        pick = rnd.random()
        if depth < 3 and pick < 0.15:
            return {"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6))): value(depth + 1) for _ in range(3)}
        if depth < 3 and pick < 0.25:
            return [value(depth + 1) for _ in range(rnd.randint(0, 4))]
        if pick < 0.45:
            return number()
        if pick < 0.6:
            return rnd.choice([rnd.randint(-(10**6), 10**6), rnd.getrandbits(70), 2**63, True, False, None,
                               Count(3), Text("x"), datetime(2026, 1, 2, tzinfo=UTC)])  # fmt: skip
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))

    for _ in range(n):
        plain = rnd.random() < 0.5  # half of them as real events are: ASCII text, prices in cents
        yield {
            "event_name": "PURCHASE",
            "event_time": 1_790_000_000 + rnd.randint(0, 10**6),
            "action_source": "WEB",
            "user_data": {"em": HEX, "client_user_agent": "Mozilla/5.0 (X11)"} if plain else {"em": value()},
            "custom_data": {"value": round(rnd.uniform(0, 1e4), 2), "currency": "USD"} if plain else value(),
            "event_source_url": "https://shop.example.com/thanks?a=1&b=%20",
        }


def test_content_event_id_agrees_with_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same id as before, byte for byte, on orjson's path and on json's: a resumed run, the ledger and Snap's
    deduplication go by it. A real event's payload (hashes, a price, a URL) takes orjson's path."""
    by_json: list[object] = []

    def counted(*args: Any, **options: Any) -> str:
        by_json.append(args)
        return json.dumps(*args, **options)

    monkeypatch.setattr(build_module, "json", types.SimpleNamespace(dumps=counted))
    payloads = list(_payloads(4000, 11))
    for payload in payloads:
        for time_given in (True, False):
            assert content_event_id(payload, time_given=time_given) == reference_content_event_id(
                payload, time_given=time_given
            ), payload
    assert 1000 < 2 * len(payloads) - len(by_json) < 2 * len(payloads) - 1000  # both paths were taken
    by_json.clear()
    real = {"event_name": "PURCHASE", "event_time": 1_790_000_000, "user_data": {"em": HEX, "ph": HEX},
            "custom_data": {"value": 19.9, "currency": "USD"}, "event_source_url": "https://a.example/t"}  # fmt: skip
    content_event_id(real)
    assert by_json == []
