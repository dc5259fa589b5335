"""The actor's input (src/actor_input.py): the seed's field names, validation errors naming the field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import test_schema as schema_tests

from src.errors import ActorInputError, MissingInputError
from src.input import TASK_FIELDS, ActorInput, parse_input

SEED_EXAMPLE: dict[str, Any] = {
    "demoMode": False,
    "task": "send_event",
    "accessToken": "YOUR_API_KEY_HERE",
    "eventType": "PURCHASE",
    "eventSourceUrl": "https://example.com",
    "currency": "USD",
    "numberOfItems": 1,
    "isAlreadyHashed": False,
}

EVENTS = [
    {"eventType": "PURCHASE", "email": "a@example.com", "price": 10, "currency": "USD"},
    {"event_name": "PAGE_VIEW", "user_data": {"em": "b@example.com"}},
]


def input_error(raw: dict[str, Any]) -> ActorInputError:
    with pytest.raises(ActorInputError) as caught:
        parse_input(raw)
    return caught.value


# --- The seed's example ------------------------------------------------------------------------


def test_seed_example_input_parses() -> None:
    settings = parse_input(SEED_EXAMPLE)
    assert isinstance(settings, ActorInput)
    assert settings.task == "send_event"
    assert settings.is_demo is False
    assert settings.token() == "YOUR_API_KEY_HERE"
    assert settings.event_type == "PURCHASE"
    assert settings.event_source_url == "https://example.com"
    assert settings.currency == "USD"
    assert settings.number_of_items == 1
    assert settings.is_already_hashed is False
    assert settings.events is None


def test_seed_example_single_event_uses_input_names() -> None:
    assert parse_input(SEED_EXAMPLE).single_event() == {
        "eventType": "PURCHASE",
        "actionSource": "WEB",
        "eventSourceUrl": "https://example.com",
        "currency": "USD",
        "numberOfItems": 1,
    }


def test_seed_example_token_is_not_shown_in_repr_or_dump() -> None:
    settings = parse_input(SEED_EXAMPLE)
    assert "YOUR_API_KEY_HERE" not in repr(settings)
    assert "YOUR_API_KEY_HERE" not in str(settings.model_dump())


def test_seed_demo_example_input_parses() -> None:
    settings = parse_input({"demoMode": True, "eventSourceUrl": "https://example.com"})
    assert settings.is_demo is True


@pytest.mark.parametrize("raw", [None, {}])
def test_empty_input_is_a_demo_with_defaults(raw: dict[str, Any] | None) -> None:
    settings = parse_input(raw)
    assert settings.is_demo is True
    assert settings.task == "send_event"
    assert settings.event_type == "PURCHASE"
    assert settings.action_source == "WEB"


def test_unknown_input_fields_are_ignored() -> None:
    assert parse_input({**SEED_EXAMPLE, "someOldField": 1}).task == "send_event"


# --- events -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "events", [EVENTS, json.dumps(EVENTS), json.dumps(EVENTS, indent=2)], ids=["array", "json", "pretty"]
)
def test_events_as_array_or_json_string(events: Any) -> None:
    assert parse_input({"task": "send_batch_events", "events": events}).events == EVENTS


@pytest.mark.parametrize("text", ['[{"eventType": "PURCHASE", "email": "secret@example.com"', "{not json}", "[1, 2,]"])
def test_malformed_events_json_names_events_without_echoing_it(text: str) -> None:
    error = input_error({"task": "send_batch_events", "events": text})
    assert error.field == "events"
    assert "'events'" in str(error)
    assert "JSON" in str(error)
    assert text not in str(error)
    assert "secret@example.com" not in str(error)


def test_events_json_that_is_not_an_array_is_refused() -> None:
    error = input_error({"events": '{"email": "secret@example.com"}'})
    assert error.field == "events"
    assert "array" in str(error)
    assert "secret@example.com" not in str(error)


@pytest.mark.parametrize(
    ("element", "words"),
    [("[" * 5000 + "]" * 5000, "nested too deeply"), ('{"eventTime": 1' + "0" * 5000 + "}", "more than 4300 digits")],
    ids=["nested-5000-deep", "integer-of-5001-digits"],
)
def test_a_hostile_events_json_string_is_an_input_error_naming_events(element: str, words: str) -> None:
    """An API caller sends `events` as JSON text (documented) whose second element is nested 5,000 deep, or holds
    an integer of 5,001 digits: an input error naming `events` and what is wrong with it; never a crash (the
    RecursionError escaped the run: no status, no OUTPUT) nor Python's advice to call sys.set_int_max_str_digits()."""
    error = input_error({"task": "send_batch_events", "events": f'[{{"email": "secret@example.com"}}, {element}]'})
    assert error.field == "events"
    assert words in str(error)
    assert "sys." not in str(error)
    assert "secret@example.com" not in str(error)


def hostile_events() -> list[Any]:
    """Values `json.dumps` cannot write: nested 3,000 deep, an integer of 5,001 digits, a lone surrogate."""
    deep: Any = "x"
    for _ in range(3000):
        deep = [deep]
    return [*EVENTS, {"contents": deep}, {"eventTime": 10**5000}, {"eventId": "evt-\ud800"}]


def test_the_inputs_fingerprint_is_the_same_for_the_same_input_and_never_fails() -> None:
    """A migrated or resurrected run finds its checkpoint by the input's fingerprint: the same input gives the same
    one in every attempt, another input another one, and values `json.dumps` cannot write have one too (that
    crash stopped the run before anything was sent)."""
    raw = {"task": "send_batch_events", "accessToken": "t", "events": hostile_events()}
    fingerprint = parse_input(raw).fingerprint()
    assert parse_input({**raw, "events": hostile_events()}).fingerprint() == fingerprint
    assert parse_input({**raw, "events": hostile_events()[:-1]}).fingerprint() != fingerprint
    assert parse_input({**raw, "events": [*hostile_events()[:-1], {"eventId": 10**5000}]}).fingerprint() != fingerprint
    assert parse_input({**raw, "maxRetries": 4}).fingerprint() != fingerprint
    assert parse_input({**raw, "accessToken": "another"}).fingerprint() == fingerprint  # a secret counts as given


def test_inputs_that_differ_only_in_shape_have_different_fingerprints() -> None:
    """Events whose values differ only in their type or in where one text ends and the next begins are other
    inputs: a resumed attempt must never take another input's checkpoint for its own."""
    shapes: list[list[Any]] = [
        [], [{}], [{"email": "a"}], [{"email": ["a"]}], [{"email": "ab"}], [{"emai": "la"}],
        [{"email": "a", "x": None}], [{"email": "a", "x": True}], [{"email": "a", "x": False}],
        [{"n": 1}], [{"n": "1"}], [{"n": 1.0}], [{"n": True}], [{"n": None}], [{"n": [1]}], [{"n": {"m": 1}}],
        [{"n": [[]]}], [[{}]], [{"n": {}}], ["n"], [{"n": 1.5}], [{"n": 2.5}],
    ]  # fmt: skip
    fingerprints = {parse_input({"task": "send_batch_events", "events": events}).fingerprint() for events in shapes}
    assert len(fingerprints) == len(shapes)


# --- Wrong types -------------------------------------------------------------------------------

EMAILISH = "private.person@example.com"


@pytest.mark.parametrize(
    "field",
    ["numberOfItems", "price", "isAlreadyHashed", "demoMode", "maxRetries", "defaultPhoneCountry", "webhookUrl",
     "actionSource", "task", "events"],
)  # fmt: skip
def test_wrong_typed_field_is_named_and_its_value_not_echoed(field: str) -> None:
    error = input_error({**SEED_EXAMPLE, field: EMAILISH})
    assert error.field == field
    assert f"'{field}'" in str(error)
    assert EMAILISH not in str(error)
    assert "private.person" not in str(error)


@pytest.mark.parametrize("field", ["email", "phone", "firstName"])
def test_object_where_text_is_expected_is_named_without_echo(field: str) -> None:
    error = input_error({field: {"value": EMAILISH}})
    assert error.field.split(".")[0] == field
    assert EMAILISH not in str(error)


@pytest.mark.parametrize(("field", "value"), [("maxRetries", 11), ("maxConcurrency", 0), ("numberOfItems", -1)])
def test_out_of_range_numbers_are_named(field: str, value: int) -> None:
    assert input_error({field: value}).field == field


def test_email_list_is_accepted() -> None:
    assert parse_input({"email": ["a@example.com", "b@example.com"]}).email == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("field", ["itemIds", "externalId", "brands", "email", "phone"])
def test_numbers_in_a_list_field_are_text_as_in_a_batch_event(field: str) -> None:
    """The schema lets a list field's items be anything, and a batch event's `[123, 456]` is sent as
    ["123", "456"]: the single event takes them too (send_event refused them: "Input should be a valid string").
    What is neither text nor a number is still refused by its position."""
    assert parse_input({field: [123, 4.5]}).event_field(field) == ["123", "4.5"]
    assert parse_input({"extinfo": ["i2", 7]}).event_field("extinfo") == ["i2", "7"]
    for item in (True, {"id": 1}, math.nan, 10**5000):
        error = input_error({field: ["sku-1", item]})
        assert error.field == f"{field}[1]"
        assert "sys." not in str(error)


@pytest.mark.parametrize("field", ["phone", "zip", "externalId", "transactionId", "currency"])
def test_a_number_for_a_single_text_field_is_refused_as_the_platform_refuses_it(field: str) -> None:
    """The input schema makes these fields text, so the platform refuses `"phone": 4155550100` before the run
    starts, naming the field; the actor says the same of such an input that reaches it (a local run), rather than
    taking what the platform never lets through. A list's items the schema leaves open (see above)."""
    assert schema_tests.errors(schema_tests.STRICT, {field: 4155550100})
    assert input_error({field: 4155550100}).field == field
    assert parse_input({"price": "5", "numberOfItems": 2}).price == 5.0


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("a@example.com, B@example.com", ["a@example.com", "B@example.com"]), ("a@example.com,", "a@example.com"),
     (" , ", None), ("a@example.com", "a@example.com")],
)  # fmt: skip
def test_the_forms_comma_separated_emails_are_several(text: str, parsed: Any) -> None:
    assert parse_input({"email": text, "phone": text}).email == parsed
    assert parse_input({"email": text, "phone": text}).phone == parsed


# --- Demo mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "demo"),
    [
        ({"demoMode": True, "accessToken": "tok"}, True),  # explicit wins
        ({"demoMode": False, "accessToken": "tok"}, False),
        ({"demoMode": False}, False),  # explicit wins even without a token
        ({"demoMode": True}, True),
        ({}, True),  # absent and no token: demo
        ({"accessToken": "tok"}, False),  # absent and a token: real
    ],
)
def test_demo_resolution(raw: dict[str, Any], demo: bool) -> None:
    assert parse_input(raw).is_demo is demo


def test_real_run_without_token_names_access_token() -> None:
    settings = parse_input({"demoMode": False})
    with pytest.raises(ActorInputError) as caught:
        settings.token()
    assert caught.value.field == "accessToken"


# --- Blank strings mean "not given" ------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_blank_token_is_absent_so_the_run_is_a_demo(blank: str) -> None:
    settings = parse_input({"accessToken": blank})
    assert settings.access_token is None
    assert settings.is_demo is True


@pytest.mark.parametrize(
    ("field", "attribute"),
    [
        ("pixelId", "pixel_id"),
        ("email", "email"),
        ("phone", "phone"),
        ("eventSourceUrl", "event_source_url"),
        ("events", "events"),
        ("eventNameMapping", "event_name_mapping"),
        ("defaultPhoneCountry", "default_phone_country"),
        ("webhookUrl", "webhook_url"),
        ("price", "price"),
        ("demoMode", "demo_mode"),
    ],
)
def test_blank_optional_fields_are_absent(field: str, attribute: str) -> None:
    assert getattr(parse_input({field: " "}), attribute) is None


def test_blank_fields_are_left_out_of_the_single_event() -> None:
    event = parse_input({**SEED_EXAMPLE, "email": "", "phone": " ", "transactionId": ""}).single_event()
    assert "email" not in event
    assert "phone" not in event
    assert "transactionId" not in event


@pytest.mark.parametrize(
    ("field", "attribute", "default"),
    [
        ("currency", "currency", "USD"),
        ("eventType", "event_type", "PURCHASE"),
        ("actionSource", "action_source", "WEB"),
        ("task", "task", "send_event"),
        ("maxRetries", "max_retries", 5),
    ],
)
def test_blank_field_with_a_default_takes_the_default(field: str, attribute: str, default: Any) -> None:
    assert getattr(parse_input({**SEED_EXAMPLE, field: ""}), attribute) == default


@pytest.mark.parametrize(
    "field", sorted(info.alias or name for name, info in ActorInput.model_fields.items() if info.default is not None)
)
def test_null_for_a_field_with_a_default_means_not_given(field: str) -> None:
    """Integrations (Make, Zapier, n8n) send null for a field they have no value for: it counts as not given, so
    the default applies, as for an empty string (it failed the run for every field with a default:
    "Input field 'currency' Input should be a valid string")."""
    given = {**SEED_EXAMPLE, field: None}
    assert parse_input(given) == parse_input({name: value for name, value in given.items() if name != field})


# --- Batch defaults ----------------------------------------------------------------------------


def test_event_defaults_carry_event_settings_but_never_identifiers() -> None:
    settings = parse_input(
        {
            "eventType": "SIGN_UP",
            "eventSourceUrl": "https://example.com",
            "currency": "EUR",
            "email": "owner@example.com",
            "phone": "+44 844 412 4653",
            "externalId": "u-1",
            "mobileAdId": "maid",
            "ipAddress": "10.0.0.1",
            "userAgent": "UA",
            "scClickId": "click",
            "uuid1": "cookie",
            "transactionId": "T-1",
            "eventId": "E-1",
            "price": 9.5,
            "events": EVENTS,
        }
    )
    assert settings.event_defaults() == {
        "eventType": "SIGN_UP",
        "actionSource": "WEB",
        "eventSourceUrl": "https://example.com",
        "currency": "EUR",
    }


# ----- what each task reads, and what a real run needs -----

REAL = {"demoMode": False, "accessToken": "t", "pixelId": "p"}


def missing(raw: dict[str, Any]) -> MissingInputError:
    with pytest.raises(MissingInputError) as caught:
        parse_input(raw).check_ready()
    return caught.value


@pytest.mark.parametrize(
    ("raw", "fields", "words"),
    [
        ({"task": "send_event", "demoMode": False}, ["accessToken", "pixelId", "email"],
         ["Conversions API Tokens", "Events Manager", "ipAddress together with userAgent"]),
        ({"task": "send_event", **REAL, "mobileAdId": ""}, ["email"], ["mobileAdId"]),
        ({"task": "send_event", **REAL, "ipAddress": "203.0.113.1"}, ["email"], ["userAgent"]),
        ({"task": "send_batch_events", **REAL, "email": "a@b.example"}, ["events"], ["eventsDatasetId", "eventsUrl"]),
        ({"task": "validate_events", **REAL}, ["events"], ["or one event with a customer identifier"]),
        ({"task": "list_pixels", "demoMode": False, "accessToken": "t"}, ["adAccountId"], ["ad account"]),
        ({"task": "list_pixels", "demoMode": False, "adAccountId": "a"}, ["accessToken"], ["refreshToken"]),
        ({"task": "get_pixel_info", "demoMode": False, "accessToken": "t"}, ["pixelId"], ["Pixel ID"]),
        ({"task": "get_test_event_logs", "demoMode": False, "accessToken": "t"}, ["pixelId"], ["snapAppId"]),
    ],
)  # fmt: skip
def test_a_real_run_names_everything_it_lacks_at_once(raw: dict[str, Any], fields: list[str], words: list[str]) -> None:
    error = missing(raw)
    assert error.fields == fields
    assert error.field == fields[0]
    for word in [*fields, *words, "or set demoMode to true"]:
        assert word in str(error)


@pytest.mark.parametrize(
    "raw",
    [
        {"task": "send_event", **REAL, "email": "a@b.example"},
        {"task": "send_event", **REAL, "ipAddress": "203.0.113.1", "userAgent": "UA"},
        {"task": "send_event", "demoMode": False, "accessToken": "t", "snapAppId": "app", "mobileAdId": "m"},
        {"task": "send_batch_events", **REAL, "eventsUrl": "https://files.example/e.csv"},
        {"task": "validate_events", **REAL, "phone": "+14155550100"},
        {"task": "list_pixels", "demoMode": False, "adAccountId": "a", "refreshToken": "r", "clientId": "c",
         "clientSecret": "s"},
        {"task": "get_pixel_info", "demoMode": True},
    ],
)  # fmt: skip
def test_ready_inputs_pass(raw: dict[str, Any]) -> None:
    parse_input(raw).check_ready()


def test_two_batch_sources_are_refused_naming_both() -> None:
    with pytest.raises(ActorInputError, match="'eventsUrl' cannot be combined with events"):
        parse_input(
            {"task": "send_batch_events", **REAL, "events": EVENTS, "eventsUrl": "https://x.example/a"}
        ).check_ready()


@pytest.mark.parametrize(
    ("raw", "ignored"),
    [
        ({"task": "send_event", **REAL, "email": "a@b.example", "events": EVENTS, "resultRows": "problems"},
         ["events", "resultRows"]),
        ({"task": "send_batch_events", **REAL, "events": EVENTS, "email": "a@b.example", "price": 3,
          "eventType": "SIGN_UP"}, ["email", "price"]),
        ({"task": "validate_events", **REAL, "email": "a@b.example", "price": 3}, []),
        ({"task": "validate_events", **REAL, "events": EVENTS, "email": "a@b.example"}, ["email"]),
        ({"task": "list_pixels", "accessToken": "t", "adAccountId": "a", "pixelId": "p", "email": "x@y.example"},
         ["email", "pixelId"]),
        ({"task": "get_pixel_info", "pixelId": "p", "adAccountId": "a", "isAlreadyHashed": False}, ["adAccountId"]),
    ],
)  # fmt: skip
def test_fields_a_task_does_not_read_are_named(raw: dict[str, Any], ignored: list[str]) -> None:
    assert parse_input(raw).ignored_fields() == ignored


def test_schema_defaults_are_never_reported_as_ignored() -> None:
    """The platform fills every default into every run's input: those are not the user's doing."""
    defaults = {"eventType": "PURCHASE", "actionSource": "WEB", "currency": "USD", "numberOfItems": 1,
                "isAlreadyHashed": False, "limitedDataUse": False, "resultRows": "all", "maxRetries": 5}  # fmt: skip
    assert parse_input({"task": "list_pixels", **defaults}).ignored_fields() == []


def test_every_task_reads_a_known_field() -> None:
    fields = {info.alias for info in ActorInput.model_fields.values()}
    for task, read in TASK_FIELDS.items():
        assert read <= fields, (task, read - fields)
    assert set(TASK_FIELDS) == set(ActorInput.model_fields["task"].annotation.__args__)  # type: ignore[union-attr]


def test_a_refresh_token_makes_an_oauth_task_a_real_run_as_an_access_token_does() -> None:
    """A scheduled list_pixels gives refreshToken, clientId and clientSecret (access tokens expire in about 30
    minutes) and leaves demoMode out: it was a silent demo answering with sample pixels."""
    refresh = {"refreshToken": "r", "clientId": "c", "clientSecret": "s"}
    assert parse_input({"task": "list_pixels", "adAccountId": "a", **refresh}).is_demo is False
    assert parse_input({"task": "get_event_quality", "pixelId": "p", **refresh}).is_demo is False
    assert parse_input({"task": "list_pixels", "demoMode": True, **refresh}).is_demo is True  # explicit wins
    assert parse_input({"task": "send_event", **refresh}).is_demo is True  # a Conversions API task never reads them
    # a refresh token without the rest: a real run, which names what it lacks rather than answering with samples
    error = missing({"task": "list_pixels", "adAccountId": "a", "refreshToken": "r"})
    assert str(error) == (
        "list_pixels needs accessToken (an OAuth token of Snap's Marketing API, or refreshToken, clientId and "
        "clientSecret). Add it to the input, or set demoMode to true to try the task on sample data."
    )


def test_get_event_quality_takes_the_oauth_refresh_fields() -> None:
    """Snap's Signal Readiness API takes an OAuth token too, which the run refreshes with these fields: they were
    reported as ignored, and without accessToken the run asked for one."""
    refresh = {"refreshToken": "r", "clientId": "c", "clientSecret": "s"}
    assert (
        parse_input({"task": "get_event_quality", "accessToken": "t", "pixelId": "p", **refresh}).ignored_fields() == []
    )
    parse_input({"task": "get_event_quality", "demoMode": False, "pixelId": "p", **refresh}).check_ready()
    error = missing({"task": "get_event_quality", "demoMode": False, "pixelId": "p"})
    assert str(error) == (
        "get_event_quality needs accessToken (your Conversions API token: Business Manager > Business Details > "
        "Conversions API Tokens; or an OAuth token of Snap's Marketing API, or refreshToken, clientId and "
        "clientSecret). Add it to the input, or set demoMode to true to try the task on sample data."
    )


@pytest.mark.parametrize("field", ["fieldMapping", "eventNameMapping"])
def test_a_mappings_entry_with_a_blank_value_maps_nothing(field: str) -> None:
    """An integration sends its unmapped rows as null (or ""): those entries are left out, the others kept (the run
    failed: "Input field 'fieldMapping' Input should be a valid string")."""
    parsed = parse_input({field: {"Customer Email": "email", "Unused": None, "Blank": " "}})
    mapping = parsed.field_mapping if field == "fieldMapping" else parsed.event_name_mapping
    assert mapping == {"Customer Email": "email"}
