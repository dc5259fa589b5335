"""No value can crash a run: every field of the single-event vocabulary and of the actor input, fuzzed with
random JSON values (hypothesis). An event ends as a clean payload or an `invalid`/`skipped` row; an input
either validates or fails with an error naming the field. Derandomized, with no example database, so CI
sees the same examples every time."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_conversion import NOW, builder

from src.errors import ActorInputError
from src.events.build import UNPREPARABLE, PreparedEvent, RejectedEvent
from src.events.shape import SourceEvent
from src.fields import (
    APP_RULES,
    CUSTOM_RULES,
    FLAG_FIELDS,
    FLAT_FIELDS,
    HASHED_RULES,
    NATIVE_FIELDS,
    RAW_RULES,
    USER_DATA_ALIASES,
)
from src.input import ActorInput, parse_input
from src.results.rows import event_row
from src.rules.values import MAX_AMOUNT, broken_text, max_price
from src.snap.conversions import encode_body

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Values that broke runs before, or sit on a rule's edge.
HOSTILE = [
    "NaN", "nan", "Infinity", "-Infinity", "inf", "1e308", "-1e308", "1e400", "-1", "0", "-0.0", "1e9", "1000000001",
    "2.5", "1_000", " 42 ", "\ufffd", "caf\ufffd", "\ud800", "a\udfffb", "\x00", "a\x1fb", "\x7f", "\u0085",
    "2023-11-14T22:13:20Z", "2023-11-14T22:13:20+14:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59",
    "i2", "a2", "PURCHASE", "MOBILE_APP", "https://x.example/?ScCid=a\ud800", "USD", "[]", "{}", "true", "null",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN, +-inf, +-1e308, -0.0 included
    st.text(st.characters(exclude_categories=()), max_size=20),  # control chars, lone surrogates, astral
    st.sampled_from(HOSTILE),
    st.builds(lambda char, n: char * n, st.characters(exclude_categories=()), st.integers(5_000, 100_000)),
)
HOSTILE_NUMBERS = [math.nan, math.inf, -math.inf, 1e308, -1e308, -1, -0.01, 0, 0.5, 2.5, 1e9 + 1, 10**30, -(10**400)]
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=6,
)
#: Mostly single values (hostile ones often), sometimes lists and objects.
JSON_VALUES = st.one_of(st.sampled_from(HOSTILE), st.sampled_from(HOSTILE_NUMBERS), SCALARS, NESTED)

WEB = {
    "eventType": "PURCHASE",
    "eventTime": NOW - 60,
    "eventSourceUrl": "https://shop.example.com/thanks",
    "email": "person@example.com",
    "ipAddress": "203.0.113.9",
    "userAgent": "Mozilla/5.0",
    "price": 10,
    "currency": "USD",
    "transactionId": "T-1",
    "contents": [{"id": "sku-1", "quantity": 1, "item_price": 10}],
}
APP = {
    "eventType": "APP_OPEN",
    "actionSource": "MOBILE_APP",
    "mobileAdId": "6d92078a-8246-4ba4-ae5b-76104861e7dc",
    "extinfo": ["i2", "com.example.app"],
    "appId": "123",
}

USER_KEYS = sorted({*HASHED_RULES, *RAW_RULES, *USER_DATA_ALIASES})
CONTENT_KEYS = ("id", "quantity", "item_price", "brand", "category", "other")
#: Every place a value can sit in one event: (shape, path), a path into the event object.
FIELDS: list[tuple[str, ...]] = [
    *((name,) for name in sorted(FLAT_FIELDS)),
    *((name,) for name in sorted(FLAG_FIELDS)),
    *((name,) for name in sorted(NATIVE_FIELDS)),
    *(("user_data", key) for key in USER_KEYS),
    *(("custom_data", key) for key in sorted(CUSTOM_RULES)),
    *(("app_data", key) for key in sorted(APP_RULES)),
    *(("contents", key) for key in CONTENT_KEYS),
]


def with_value(base: dict[str, Any], path: tuple[str, ...], value: object) -> dict[str, Any]:
    event = json.loads(json.dumps(base))
    if len(path) == 1:
        event[path[0]] = value
    elif path[0] == "contents":
        event["contents"] = [{"id": "sku-1", "quantity": 1} | {path[1]: value}]
    else:
        event[path[0]] = {path[1]: value}
    return event


def assert_clean_outcome(result: PreparedEvent | RejectedEvent) -> None:
    """What a user would check: the row can be stored, and a sent payload is one Snap can take as it is."""
    row = event_row("send_batch_events", result, "sent" if isinstance(result, PreparedEvent) else result.status)
    json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert len(json.dumps(row)) < 100_000, "a runaway cell must not become a runaway row"
    if isinstance(result, RejectedEvent):
        assert result.status in ("invalid", "skipped")
        assert result.error
        assert not result.error.startswith(UNPREPARABLE), result.error
        return
    payload = result.payload
    body = encode_body([result.body])
    assert json.loads(body)["data"][0] == payload and payload["event_name"] == result.event_name
    json.dumps(payload, allow_nan=False, ensure_ascii=False).encode("utf-8")
    custom = payload.get("custom_data", {})
    if "value" in custom:
        assert 0 <= custom["value"] <= max_price(custom.get("currency"))
    if "num_items" in custom:
        assert isinstance(custom["num_items"], int) and 0 <= custom["num_items"] <= MAX_AMOUNT
    for item in custom.get("contents", []):
        if "quantity" in item:
            assert isinstance(item["quantity"], int) and 1 <= item["quantity"] <= MAX_AMOUNT
        if "item_price" in item:
            assert 0 <= item["item_price"] <= max_price(custom.get("currency"))
    for key, value in payload["user_data"].items():
        for text in value if isinstance(value, list) else [value]:
            assert broken_text(text) is None, key
    assert broken_text(result.event_id) is None
    assert isinstance(payload["event_time"], int) and abs(payload["event_time"] - NOW) < 40 * 24 * 3600


#: The run settings that change how an event is built: none, a phone country and a name mapping, opted-out
#: events sent with limited data use.
OPTIONS: list[dict[str, Any]] = [
    {},
    {"phone_country": "US", "mapping": {"order": "PURCHASE"}},
    {"limited_data_use": True, "defaults": {"eventSourceUrl": "https://shop.example.com/"}},
]


@pytest.mark.parametrize("path", FIELDS, ids=".".join)
@FUZZ
@given(value=JSON_VALUES, base=st.sampled_from([WEB, APP]), options=st.sampled_from(OPTIONS))
def test_no_event_field_value_crashes_the_build(
    path: tuple[str, ...], value: object, base: dict[str, Any], options: dict[str, Any]
) -> None:
    result = builder(**options).build(SourceEvent(7, with_value(base, path, value)))
    assert result.index == 7
    assert_clean_outcome(result)


@FUZZ
@given(event=st.dictionaries(st.sampled_from([name for (name, *_) in FIELDS]), JSON_VALUES, max_size=8))
def test_no_combination_of_event_fields_crashes_the_build(event: dict[str, Any]) -> None:
    assert_clean_outcome(builder().build(SourceEvent(0, event)))


@FUZZ
@given(data=JSON_VALUES)
def test_no_event_object_of_any_shape_crashes_the_build(data: Any) -> None:
    not_object = "events[0] is not a JSON object"
    source = SourceEvent(0, data) if isinstance(data, dict) else SourceEvent(0, None, error=not_object)
    assert_clean_outcome(builder().build(source))


INPUT_FIELDS = sorted(info.alias or name for name, info in ActorInput.model_fields.items())
TASKS = ["send_event", "send_batch_events", "validate_events", "list_pixels", "get_pixel_info", "get_event_quality"]


def exercise(actor_input: ActorInput) -> None:
    """Everything a run does with a parsed input before its task starts."""
    for call in (actor_input.check_ready, lambda: actor_input.batch_source, actor_input.ignored_fields):
        named = None
        try:
            call()
        except ActorInputError as error:
            named = error.field
        assert named is None or named in INPUT_FIELDS
    actor_input.single_event()
    actor_input.event_defaults()


@pytest.mark.parametrize("field", INPUT_FIELDS)
@FUZZ
@given(value=JSON_VALUES, task=st.sampled_from(TASKS))
def test_no_input_value_crashes_parse_input(field: str, value: object, task: str) -> None:
    raw = {"task": task, "pixelId": "pixel-1", "email": "person@example.com", field: value}
    refused: ActorInputError | None = None
    try:
        actor_input = parse_input(raw)
    except ActorInputError as error:
        refused = error
    if refused is not None:
        assert refused.field.split("[")[0] == field, (refused.field, field)
        message = str(refused)
        assert message.startswith(f"Input field '{refused.field}'")
        if isinstance(value, str) and len(value.strip()) >= 12:
            assert value.strip() not in message, "an input error must never echo the value"
        return
    exercise(actor_input)
    if isinstance(value, str) and len(value.strip()) > 10_000:
        assert field in ("events",), f"{field} took a {len(value)}-character value"


def test_the_fuzz_covers_every_field() -> None:
    """A field added to the vocabulary or the input is fuzzed without anyone remembering to add it."""
    covered = {path[0] for path in FIELDS}
    assert set(FLAT_FIELDS) | FLAG_FIELDS | NATIVE_FIELDS <= covered
    assert {"user_data", "custom_data", "app_data", "contents"} <= covered
    assert len(INPUT_FIELDS) == len(ActorInput.model_fields) > 50
    assert not math.isnan(NOW)
