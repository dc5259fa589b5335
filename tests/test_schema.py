"""The input schema is what the Console form, the API, integrations and AI agents see: it must accept
every shape the README documents, prefill nothing a run would send, and agree with the code."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from conftest import ROOT

from src.events.names import SNAP_EVENT_NAMES
from src.fields import FLAT_FIELDS, SINGLE_EVENT_FIELDS
from src.input import ActorInput, parse_input

SCHEMA: dict[str, Any] = json.loads((ROOT / "INPUT_SCHEMA.json").read_text(encoding="utf-8"))
PROPS: dict[str, dict[str, Any]] = SCHEMA["properties"]
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: Apify's MCP server cuts descriptions here; AI agents see nothing after it.
MAX_DESCRIPTION = 500

#: Keys of the Apify input schema that are not JSON Schema (UI hints, secrets, Console sections).
APIFY_ONLY_KEYS = frozenset({
    "editor", "prefill", "example", "sectionCaption", "sectionDescription", "enumTitles",
    "enumSuggestedValues", "isSecret", "nullable", "errorMessage", "placeholderKey",
    "placeholderValue", "dateType", "resourceType", "schemaVersion",
})  # fmt: skip

#: What most runs need, in the order the form shows it, before the first section.
FIRST_SCREEN = [
    "task", "demoMode", "accessToken", "pixelId",
    "eventType", "eventSourceUrl", "email", "phone", "price", "currency", "transactionId", "eventTime",
]  # fmt: skip

IDENTIFIERS = frozenset(name for name, (section, _) in FLAT_FIELDS.items() if section == "user_data")
#: Fields whose value is event data: a prefill or default on any of them would reach Snap from the form.
EVENT_DATA = (
    (
        frozenset(SINGLE_EVENT_FIELDS)
        - {"eventType", "actionSource", "currency", "numberOfItems", "limitedDataUse", "optOut"}
    )
    | IDENTIFIERS
    | {"events", "eventsDatasetId", "eventsUrl", "fieldMapping", "eventNameMapping"}
)
#: Ids and secrets: a sample value there would point a real run at someone else's asset.
ACCOUNT_FIELDS = frozenset(
    {"accessToken", "pixelId", "snapAppId", "adAccountId", "refreshToken", "clientId", "clientSecret"}
)


def plain(prop: dict[str, Any]) -> dict[str, Any]:
    """One property as JSON Schema; Apify's `nullable` lets null through besides the property's own type."""
    own = {key: value for key, value in prop.items() if key not in APIFY_ONLY_KEYS}
    return {"anyOf": [{"type": "null"}, own]} if prop.get("nullable") else own


def json_schema() -> dict[str, Any]:
    """The Apify input schema as plain JSON Schema: what the platform checks before a run."""
    properties = {name: plain(prop) for name, prop in PROPS.items()}
    return {
        "type": "object",
        "properties": properties,
        "required": SCHEMA.get("required", []),
        "additionalProperties": SCHEMA.get("additionalProperties", True),
    }


VALIDATOR = jsonschema.Draft7Validator(json_schema())
#: The same, refusing unknown fields: a README example with a misspelt field name fails here.
STRICT = jsonschema.Draft7Validator(json_schema() | {"additionalProperties": False})


def errors(validator: jsonschema.Draft7Validator, data: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(input)'}: {e.message}" for e in validator.iter_errors(data)]


# --- (1) every field is complete and fits what an AI agent reads -------------------------------------------------


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft7Validator.check_schema(json_schema())


@pytest.mark.parametrize("name", list(PROPS))
def test_every_field_has_title_type_description_and_editor(name: str) -> None:
    prop = PROPS[name]
    for key in ("title", "type", "description", "editor"):
        assert prop.get(key), f"{name} has no {key}"
    if isinstance(prop["type"], list):
        assert prop["editor"] in {"json", "hidden"}, f"{name}: a field of several types needs the json editor"


@pytest.mark.parametrize("name", list(PROPS))
def test_descriptions_fit_the_mcp_limit(name: str) -> None:
    description = PROPS[name]["description"]
    assert len(description) <= MAX_DESCRIPTION, f"{name}: {len(description)} characters, Apify's MCP cuts at 500"
    assert len(SCHEMA["description"]) <= MAX_DESCRIPTION


def test_section_descriptions_fit_the_mcp_limit() -> None:
    for name, prop in PROPS.items():
        assert len(prop.get("sectionDescription", "")) <= MAX_DESCRIPTION, name


@pytest.mark.parametrize("name", [n for n in PROPS if n not in {"demoMode", "task"}])
def test_each_description_says_which_task_reads_it(name: str) -> None:
    description = PROPS[name]["description"]
    names = ("send_event", "send_batch_events", "validate_events", "list_pixels", "get_pixel_info", "get_test_event_")
    groups = ("All tasks", "send and validate tasks", "test-event tasks")
    said = any(task in description for task in names) or any(g.lower() in description.lower() for g in groups)
    assert said, f"{name}: an agent reading only this description cannot tell which task uses it"


def test_the_first_screen_holds_only_what_most_runs_need() -> None:
    names = list(PROPS)
    first_section = next(i for i, name in enumerate(names) if "sectionCaption" in PROPS[name])
    assert names[:first_section] == FIRST_SCREEN


def test_url_fields_need_a_scheme() -> None:
    for name in ("webhookUrl", "eventsUrl", "eventSourceUrl"):
        assert errors(VALIDATOR, {name: "https://example.com/x"}) == []
        assert errors(VALIDATOR, {name: "http://example.com/x"}) == []
        assert errors(VALIDATOR, {name: "example.com/x"}), f"{name} accepts a URL without http(s)://"
        assert errors(VALIDATOR, {name: "ftp://example.com/x"}), f"{name} accepts ftp://"


def test_event_type_suggests_snaps_names_without_restricting() -> None:
    prop = PROPS["eventType"]
    assert prop["editor"] == "select"
    assert "enum" not in prop, "an enum would refuse GA4, Segment and mapped names"
    assert prop["enumSuggestedValues"] == list(SNAP_EVENT_NAMES)
    for name in ("PURCHASE", "purchase", "Order Completed", "ADD_TO_CART", "newsletter_signup"):
        assert errors(VALIDATOR, {"eventType": name}) == []


@pytest.mark.parametrize(
    ("name", "literal"), [("task", "task"), ("actionSource", "action_source"), ("resultRows", "result_rows")]
)
def test_select_options_are_the_codes_own(name: str, literal: str) -> None:
    annotation = ActorInput.model_fields[literal].annotation
    assert PROPS[name]["enum"] == list(typing.get_args(annotation))
    assert len(PROPS[name]["enumTitles"]) == len(PROPS[name]["enum"])


# --- defaults and prefills: the form must not send data, and the schema must not disagree with the code ---------


def by_alias() -> dict[str, str]:
    return {info.alias or name: name for name, info in ActorInput.model_fields.items()}


def test_every_input_field_is_in_the_schema_and_nothing_else() -> None:
    assert set(PROPS) == set(by_alias())


def test_schema_defaults_are_the_codes_defaults() -> None:
    """The platform fills schema defaults into API calls; the code fills its own into local runs. Same values."""
    aliases = by_alias()
    for alias, attr in aliases.items():
        code_default = ActorInput.model_fields[attr].default
        if alias in PROPS and "default" in PROPS[alias]:
            assert PROPS[alias]["default"] == code_default, (
                f"{alias}: schema {PROPS[alias]['default']!r}, code {code_default!r}"
            )
        elif code_default is not None:
            pytest.fail(f"{alias}: the code defaults to {code_default!r}, the schema has no default")


def test_demo_mode_has_no_default_so_a_token_decides() -> None:
    assert "default" not in PROPS["demoMode"]
    assert PROPS["demoMode"].get("prefill") is True
    assert parse_input({}).is_demo
    assert not parse_input({"accessToken": "t"}).is_demo
    assert parse_input({"accessToken": "t", "demoMode": True}).is_demo


def test_no_prefill_or_default_on_event_data_identifiers_or_accounts() -> None:
    for name in EVENT_DATA | ACCOUNT_FIELDS:
        if name in PROPS:
            assert "prefill" not in PROPS[name], f"{name} is prefilled: the form would send it"
            assert "default" not in PROPS[name], f"{name} has a default: every API run would send it"


def console_form_input() -> dict[str, Any]:
    """What the Console sends for a user who touches nothing: every default, overlaid with every prefill."""
    data = {name: prop["default"] for name, prop in PROPS.items() if "default" in prop}
    return data | {name: prop["prefill"] for name, prop in PROPS.items() if "prefill" in prop}


def test_the_console_form_untouched_holds_no_event_data_and_is_a_demo() -> None:
    form = console_form_input()
    assert EVENT_DATA.isdisjoint(form), sorted(EVENT_DATA & set(form))
    assert errors(VALIDATOR, form) == []
    parsed = parse_input(form)
    assert parsed.is_demo
    assert parsed.events is None
    assert IDENTIFIERS.isdisjoint(parsed.single_event())


def test_the_console_form_with_a_users_event_sends_only_that_event() -> None:
    """A user who unticks demo and fills in token, pixel and their own event: nothing else rides along."""
    mine = {"demoMode": False, "accessToken": "t", "pixelId": "p", "email": "me@shop.example", "price": 10}
    parsed = parse_input(console_form_input() | mine)
    assert not parsed.is_demo
    assert parsed.events is None and parsed.events_url is None and parsed.events_dataset_id is None
    event = parsed.single_event()
    assert IDENTIFIERS & set(event) == {"email"}
    assert event["email"] == "me@shop.example"


def test_null_for_any_field_passes_the_platform_and_means_not_given() -> None:
    """Integrations (Make, Zapier, n8n) send null for the fields they have no value for: every field is `nullable`,
    so the platform lets the run start, and the code reads null as the field left out (its default applies)."""
    nulls = {name: None for name in PROPS}
    assert errors(STRICT, nulls) == []
    assert parse_input(nulls) == parse_input({})


# --- (2) every input example in the README validates --------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
CURL_BODY = re.compile(r"-d\s+'(\{.*?\})'", re.DOTALL)

#: JSON blocks in the README that are not actor inputs, told apart by a key only they have.
OUTPUT_MARKERS = {
    "eventIndex": "a result row",
    "counts": "the OUTPUT record",
    "summary": "the webhook body",
}


def readme_json_blocks() -> Iterator[tuple[int, str]]:
    for match in FENCE.finditer(README):
        lang, body = match.group(1), match.group(2)
        line = README.count("\n", 0, match.start()) + 1
        if lang == "json":
            yield line, body
        elif lang in {"bash", "sh", "shell"}:
            for curl in CURL_BODY.finditer(body):
                yield line, curl.group(1)


def readme_inputs() -> list[tuple[str, Any]]:
    found = []
    for line, text in readme_json_blocks():
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            pytest.fail(f"README.md line {line}: a json block that is not JSON ({error})")
        if isinstance(data, list):  # a documented batch: what goes into `events`
            found.append((f"line {line} (events array)", {"events": data}))
        elif isinstance(data, dict) and not OUTPUT_MARKERS.keys() & data.keys():
            found.append((f"line {line}", data))
    return found


def test_the_readme_shows_input_examples() -> None:
    assert len(readme_inputs()) >= 6


@pytest.mark.parametrize(("where", "example"), readme_inputs())
def test_readme_input_examples_validate(where: str, example: dict[str, Any]) -> None:
    assert errors(STRICT, example) == [], f"README.md {where}"
    parse_input(example)  # and the code takes it too


# --- (3) the documented shapes, including what integrations send ---------------------------------------------------

EVENT = {"eventType": "PURCHASE", "eventSourceUrl": "https://shop.example/thanks", "price": 42.5}
DOCUMENTED_SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("email as text", {"email": "person@example.com"}),
    ("several emails", {"email": "a@example.com, b@example.com"}),
    ("several phones", {"phone": "+1 415 555 0100, +44 20 7946 0958"}),
    ("externalId list", {"externalId": ["cust-1", "loyalty-9"]}),
    ("eventTime Unix ms as number", {"eventTime": 1763800000000}),
    ("eventTime Unix s as number", {"eventTime": 1763800000}),
    ("eventTime Unix ms as text", {"eventTime": "1763800000000"}),
    ("eventTime ISO 8601", {"eventTime": "2026-11-20T10:00:00Z"}),
    ("brands text", {"brands": "Acme, Inc."}),
    ("brands array", {"brands": ["Acme", "Globex"]}),
    ("itemIds text", {"itemIds": "sku-1,sku-2"}),
    ("itemIds array", {"itemIds": ["sku-1", "sku-2"]}),
    ("custom event names", {"eventType": "Order Completed", "eventNameMapping": {"Lead Form Sent": "SIGN_UP"}}),
    ("events array", {"task": "send_batch_events", "events": [{"eventType": "PURCHASE", "email": "a@example.com"}]}),
    (
        "events JSON string",
        {"task": "send_batch_events", "events": '[{"eventType": "PURCHASE", "email": "a@example.com"}]'},
    ),
    (
        "native v3 events",
        {
            "task": "validate_events",
            "events": [
                {
                    "event_name": "SIGN_UP",
                    "event_time": 1763800000,
                    "action_source": "WEB",
                    "event_source_url": "https://example.com/welcome",
                    "user_data": {"em": "b@example.com"},
                }
            ],
        },
    ),
    ("seed 000 demo", {"demoMode": True, "eventSourceUrl": "https://example.com"}),
    (
        "seed 000 real",
        {
            "demoMode": False,
            "task": "send_event",
            "accessToken": "YOUR_API_KEY_HERE",
            "eventType": "PURCHASE",
            "eventSourceUrl": "https://example.com",
            "currency": "USD",
            "numberOfItems": 1,
            "isAlreadyHashed": False,
        },
    ),
    (
        "Zapier: one order, numbers as numbers",
        {
            "task": "send_event",
            "accessToken": "t",
            "pixelId": "p",
            **EVENT,
            "email": "buyer@example.com",
            "transactionId": "1001",
            "eventTime": "2026-11-20T10:00:00+01:00",
        },
    ),
    (
        "Make: empty mapped fields come as empty strings",
        {
            "task": "send_event",
            "accessToken": "t",
            "pixelId": "p",
            **EVENT,
            "email": "buyer@example.com",
            "phone": "",
            "webhookUrl": "",
            "defaultPhoneCountry": "",
            "eventSourceUrl": "",
        },
    ),
    (
        "n8n: a batch as a real JSON array",
        {
            "task": "send_batch_events",
            "accessToken": "t",
            "pixelId": "p",
            "events": [
                {
                    "eventType": "purchase",
                    "email": "a@example.com",
                    "price": 19.9,
                    "currency": "EUR",
                    "transactionId": "o-1",
                    "eventTime": 1763800000,
                    "eventSourceUrl": "https://shop.example/thanks",
                },
                {"eventType": "Order Completed", "phone": "+14155550100", "price": 5, "transactionId": "o-2"},
            ],
        },
    ),
    (
        "bulk file",
        {
            "task": "send_batch_events",
            "eventsUrl": "https://files.example/orders.csv.gz",
            "fieldMapping": {"Email Address": "email"},
            "resultRows": "problems",
        },
    ),
    (
        "app event",
        {
            "actionSource": "MOBILE_APP",
            "snapAppId": "app",
            "mobileAdId": "ab-cd",
            "extinfo": ["i2"] + [""] * 15,
            "advertiserTrackingEnabled": False,
        },
    ),
]


@pytest.mark.parametrize(("label", "data"), DOCUMENTED_SHAPES, ids=[label for label, _ in DOCUMENTED_SHAPES])
def test_documented_shapes_validate(label: str, data: dict[str, Any]) -> None:
    assert errors(STRICT, data) == [], label
    parse_input(data)  # the code accepts what the platform lets through


REFUSED_SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("webhook without scheme", {"webhookUrl": "hooks.example/abc"}),
    ("unknown task", {"task": "send"}),
    ("three-letter phone country", {"defaultPhoneCountry": "USA"}),
    ("too many retries", {"maxRetries": 11}),
    ("email as a number", {"email": 42}),
    ("events as an object", {"events": {"eventType": "PURCHASE"}}),
    ("unknown action source", {"actionSource": "STORE"}),
]


@pytest.mark.parametrize(("label", "data"), REFUSED_SHAPES, ids=[label for label, _ in REFUSED_SHAPES])
def test_bad_shapes_are_refused_before_the_run(label: str, data: dict[str, Any]) -> None:
    assert errors(VALIDATOR, data), f"{label} passes the schema"
