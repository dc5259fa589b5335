"""The actor's input: the seed actor's field names, validated once, with errors that name the field."""

from __future__ import annotations

import hashlib
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake

from .errors import ActorInputError, MissingInputError
from .fields import FIELDS, INHERITED_EVENT_FIELDS, MAX_LIST, MAX_URL, SINGLE_EVENT_FIELDS, Text
from .fields import Field as EventField
from .net.transport import hide
from .rules.values import broken_text, number_text

#: Longest accepted ids (pixel, app, ad account, dataset, client), secrets and URLs (event fields: `fields.py`):
#: far above any real value, so that a runaway cell is refused by name before it reaches a URL or a log.
MAX_ID = 200
MAX_SECRET = 8192


#: Characters a paste brings along that show as nothing: zero-width spaces and joiners, a byte order mark.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def _trimmed(value: str) -> str:
    """Without the blanks a paste brings along (a file's last line break, a zero-width space)."""
    return value.strip().strip(_INVISIBLE).strip()


def _clean(value: str) -> str:
    """An id or secret goes into URLs and headers: trimmed (`_trimmed`); control characters or broken UTF-8 inside
    are refused."""
    value = _trimmed(value)
    if (problem := broken_text(value)) is not None:
        raise ValueError(problem)
    return value


def _clean_secret(value: SecretStr) -> SecretStr:
    """A token, trimmed; one with a line break or a space inside is two pastes or not a token at all, and would
    be sent as a header Snap refuses (or the HTTP client will not send), so it is refused by name."""
    secret = value.get_secret_value()
    if len(secret) > MAX_SECRET:
        raise ValueError(f"is longer than {MAX_SECRET} characters")
    secret = _trimmed(secret)
    if "\n" in secret or "\r" in secret:
        raise ValueError("contains a line break; a token is one line: paste it alone")
    if any(char.isspace() or char in _INVISIBLE for char in secret):
        raise ValueError("contains a space, tab or invisible character; a token has none: paste it alone")
    secret = _clean(secret)
    hide(secret)  # should a service quote it back in an error, `redact` takes it out
    return SecretStr(secret)


IdText = Annotated[str, Field(max_length=MAX_ID), AfterValidator(_clean)]
Secret = Annotated[SecretStr, AfterValidator(_clean_secret)]
UrlText = Annotated[str, Field(max_length=MAX_URL, pattern=r"^https?://"), AfterValidator(_clean)]

Task = Literal[
    "send_event",
    "send_batch_events",
    "validate_events",
    "list_pixels",
    "get_pixel_info",
    "get_test_event_logs",
    "get_test_event_stats",
    "get_event_quality",
]

#: Fields every task reads.
_COMMON = frozenset({"task", "demoMode", "accessToken", "webhookUrl", "maxRetries"})
#: Fields of the send and validate tasks, whatever their source of events.
_CONVERSION = _COMMON | {
    "pixelId", "snapAppId", "defaultPhoneCountry", "isAlreadyHashed", "eventNameMapping",
    "sendOptedOutEvents", "limitedDataUse", "maxConcurrency", "maxRequestsPerSecond",
}  # fmt: skip
#: Where the batch tasks read their events from; `send_event` never reads them.
BATCH_SOURCE_FIELDS = ("events", "eventsDatasetId", "eventsUrl")
_BATCH = _CONVERSION | {*BATCH_SOURCE_FIELDS, "fieldMapping", "resultRows", *INHERITED_EVENT_FIELDS}
_OAUTH = frozenset({"refreshToken", "clientId", "clientSecret"})

#: The input fields each task reads, by input name; any other field a run is given is ignored.
TASK_FIELDS: dict[str, frozenset[str]] = {
    "send_event": _CONVERSION | set(SINGLE_EVENT_FIELDS) | {"skipAlreadySent"},
    "send_batch_events": _BATCH | {"skipAlreadySent"},
    "validate_events": _BATCH,
    "list_pixels": _COMMON | _OAUTH | {"adAccountId"},
    "get_pixel_info": _COMMON | _OAUTH | {"pixelId"},
    "get_test_event_logs": _COMMON | {"pixelId", "snapAppId"},
    "get_test_event_stats": _COMMON | {"pixelId", "snapAppId"},
    "get_event_quality": _COMMON | _OAUTH | {"pixelId"},
}
#: Tasks that read Snap's Marketing API, whose OAuth token the run can get itself with the `_OAUTH` fields.
OAUTH_TASKS = frozenset(task for task, fields in TASK_FIELDS.items() if fields >= _OAUTH)

NEEDS_IDENTIFIER = "a customer identifier: email, phone, mobileAdId, or ipAddress together with userAgent"


def _blank(value: object) -> bool:
    """Not given: null (integrations send it for what they have no value for) or blank text (the Console's cleared
    field)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _without_blank_values(value: object) -> object:
    """A mapping's entry with a blank value maps nothing (an integration's unmapped row): left out, as a blank field
    is (it failed the run: "Input field 'fieldMapping' Input should be a valid string")."""
    return {key: item for key, item in value.items() if not _blank(item)} if isinstance(value, dict) else value


def _list_numbers_as_text(value: object) -> object:
    """The schema lets a list field's items be anything: `"itemIds": [123, 456]` is ["123", "456"], as in a batch
    event (`rules.values.number_text`); what is no number stays as given, to be refused as not text. (A single
    text field's number is refused, as the schema refuses it before the run.)"""
    if not isinstance(value, list):
        return value
    return [item if (text := number_text(item)) is None else text for item in value]


def _event_input(field: EventField) -> tuple[Any, Any]:
    """An event field's type in the input form, from its row in `fields.FIELDS`."""
    assert field.form is not None
    form = field.form
    optional = form.optional if form.optional is not None else form.default is None
    annotation = form.type | None if optional else form.type
    if form.before is not None:
        annotation = Annotated[annotation, BeforeValidator(form.before)]
    if form.takes_a_list:
        annotation = Annotated[annotation, BeforeValidator(_list_numbers_as_text)]
    return annotation, Field(form.default, alias=field.input, **(form.limits or {}))


_CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
if TYPE_CHECKING:
    _EventFields = BaseModel
else:  # the single-event fields of the form, one per row of `fields.FIELDS` that has a form
    _EventFields = create_model(
        "EventFields", __config__=_CONFIG, **{to_snake(f.input): _event_input(f) for f in FIELDS if f.form}
    )


class ActorInput(_EventFields):
    model_config = _CONFIG

    task: Task = "send_event"
    demo_mode: bool | None = None
    access_token: Secret | None = None
    pixel_id: IdText | None = None
    snap_app_id: IdText | None = None
    ad_account_id: IdText | None = None
    refresh_token: Secret | None = None
    client_id: IdText | None = None
    client_secret: Secret | None = None

    default_phone_country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    is_already_hashed: bool = False
    send_opted_out_events: bool = False
    skip_already_sent: bool = True

    events: list[Any] | None = None
    events_dataset_id: IdText | None = None
    events_url: UrlText | None = None
    field_mapping: (
        Annotated[dict[Text, Text], Field(max_length=MAX_LIST), BeforeValidator(_without_blank_values)] | None
    ) = None
    event_name_mapping: (
        Annotated[dict[Text, Text], Field(max_length=MAX_LIST), BeforeValidator(_without_blank_values)] | None
    ) = None

    webhook_url: UrlText | None = None
    result_rows: Literal["all", "problems"] = "all"
    max_retries: int = Field(default=5, ge=0, le=10)
    max_concurrency: int = Field(default=4, ge=1, le=16)
    max_requests_per_second: float = Field(default=50, gt=0, le=1000)

    @field_validator("events", mode="before")
    @classmethod
    def _events_from_json_text(cls, value: object) -> object:
        """The seed actor took `events` as a JSON string; a real array is accepted too."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
        except RecursionError:
            raise ValueError("holds a value nested too deeply to read; an event is an object of fields") from None
        except ValueError:  # the only other: an integer past Python's limit, whose own message suggests a setting
            digits = sys.get_int_max_str_digits()
            raise ValueError(f"holds a number of more than {digits} digits; no event field takes one") from None
        if not isinstance(parsed, list):
            raise ValueError("must be a JSON array of event objects")
        return parsed

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: object) -> object:
        """The Console sends empty strings for cleared fields, integrations (Make, Zapier, n8n) null for unmapped
        ones: both mean "not given", so defaults apply."""
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items() if not _blank(value)}

    def fingerprint(self) -> str:
        """A digest of the input: the same in every attempt of a run given the same input (a migrated run finds
        its checkpoint by it), and there for any input that validated, however deep or long its values."""
        return _digest({name: getattr(self, name) for name in sorted(type(self).model_fields)})

    @property
    def is_demo(self) -> bool:
        """An explicit `demoMode` wins; otherwise a run without a token is a demo. For the OAuth tasks a refresh
        token is one: a scheduled run gives it alone, as access tokens expire in about 30 minutes, and must not
        answer with sample data (`check_ready` then names what else it needs)."""
        if self.demo_mode is not None:
            return self.demo_mode
        return self.access_token is None and not (self.task in OAUTH_TASKS and self.refresh_token is not None)

    def token(self) -> str:
        if self.access_token is None:
            raise ActorInputError("accessToken", "is required when demo mode is off (API key is required)")
        return self.access_token.get_secret_value()

    def required(self, field: str) -> str:
        """A string field the task cannot do without (`check_ready` has named it up front)."""
        value = getattr(self, _ATTRS[field])
        if not value:
            raise ActorInputError(field, f"is required for {self.task}")
        return str(value)

    @property
    def batch_source(self) -> str | None:
        """The batch source field given (`events`, `eventsDatasetId` or `eventsUrl`), if any."""
        given = [name for name in BATCH_SOURCE_FIELDS if getattr(self, _ATTRS[name]) is not None]
        if len(given) > 1:
            raise ActorInputError(given[1], f"cannot be combined with {given[0]}: give one source of events")
        return given[0] if given else None

    def event_field(self, name: str) -> Any:
        """The single event's value of an event field, by input name (`fields.FIELDS`)."""
        return getattr(self, _ATTRS[name])

    def has_identifier(self) -> bool:
        """The single event names someone Snap can match (`preflight` has the final word per event)."""
        value = self.event_field
        return bool(
            value("email") or value("phone") or value("mobileAdId") or (value("ipAddress") and value("userAgent"))
        )

    def fields_read(self) -> frozenset[str]:
        """Input names this run reads. `validate_events` without a batch source checks the single event."""
        read = TASK_FIELDS[self.task]
        if self.task == "validate_events" and self.batch_source is None:
            read |= set(SINGLE_EVENT_FIELDS)
        return read

    def ignored_fields(self) -> list[str]:
        """Fields given a value of their own that this task never reads (a form filled for another task)."""
        read = self.fields_read()
        ignored = []
        for name in sorted(self.model_fields_set):
            info = ActorInput.model_fields[name]
            alias = info.alias or name
            value = getattr(self, name)
            if alias in read or value in (None, False, "", [], {}) or value == info.default:
                continue
            ignored.append(alias)
        return ignored

    def check_ready(self) -> None:
        """Everything a real run of this task needs, named in one message that says what to add."""
        if self.is_demo:
            return
        missing = []
        oauth_refresh = bool(self.refresh_token and self.client_id and self.client_secret)
        if self.access_token is None and not (self.task in OAUTH_TASKS and oauth_refresh):
            missing.append(("accessToken", f"accessToken ({_token_help(self.task)})"))
        if self.task == "list_pixels" and not self.ad_account_id:
            missing.append(("adAccountId", "adAccountId (the ad account whose pixels to list)"))
        if self.task in ("get_pixel_info", "get_event_quality") and not self.pixel_id:
            missing.append(("pixelId", "pixelId (the Snap Pixel ID to look up)"))
        if self.task not in (*_PIXEL_TASKS, "get_event_quality") and not (self.pixel_id or self.snap_app_id):
            missing.append(("pixelId", "pixelId (your Snap Pixel ID, in Events Manager; snapAppId for app events)"))
        if self.task == "send_batch_events" and self.batch_source is None:
            missing.append(("events", f"events to send ({_SOURCES})"))
        if self.task == "validate_events" and self.batch_source is None and not self.has_identifier():
            missing.append(("events", f"events to check ({_SOURCES}; or one event with {NEEDS_IDENTIFIER})"))
        if self.task == "send_event" and not self.has_identifier():
            missing.append(("email", NEEDS_IDENTIFIER))
        if missing:
            raise MissingInputError(self.task, missing)

    def single_event(self) -> dict[str, Any]:
        """The `send_event` fields in their input names, unset ones left out."""
        data = self.model_dump(by_alias=True, include=_single_event_attrs(), exclude_none=True)
        for switch in ("limitedDataUse", "optOut"):
            if not data.get(switch):
                data.pop(switch, None)
        return data

    def event_defaults(self) -> dict[str, Any]:
        """Top-level fields batch events fall back on, defaults included: the platform fills schema
        defaults into every run's input, so a local run must read them the same way."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        return {name: data[name] for name in INHERITED_EVENT_FIELDS if name in data}


_PIXEL_TASKS = ("list_pixels", "get_pixel_info")
_SOURCES = "events: a JSON array of event objects; or eventsDatasetId, eventsUrl"
#: Input name -> attribute name.
_ATTRS = {info.alias or name: name for name, info in ActorInput.model_fields.items()}


def _token_help(task: str) -> str:
    """Which token the task takes: get_event_quality, Snap's Signal Readiness API, takes either kind."""
    capi = "your Conversions API token: Business Manager > Business Details > Conversions API Tokens"
    oauth = "an OAuth token of Snap's Marketing API, or refreshToken, clientId and clientSecret"
    if task in _PIXEL_TASKS:
        return oauth
    return f"{capi}; or {oauth}" if task in OAUTH_TASKS else capi


def _single_event_attrs() -> set[str]:
    return {_ATTRS[alias] for alias in SINGLE_EVENT_FIELDS}


def _digest(value: object) -> str:
    """SHA-256 of a JSON-like value, walked without recursion and without converting integers to decimal text
    (the two ways `json.dumps` fails on input the model accepts); a secret counts by its presence only."""
    digest = hashlib.sha256()
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            digest.update(b"{%d:" % len(item))
            for key in sorted(item, key=str, reverse=True):
                stack += [item[key], str(key)]
        elif isinstance(item, list):
            digest.update(b"[%d:" % len(item))
            stack.extend(reversed(item))
        elif isinstance(item, str):
            text = item.encode("utf-8", "surrogatepass")  # the events may hold lone surrogates
            digest.update(b"s%d:%s" % (len(text), text))
        elif isinstance(item, SecretStr):
            digest.update(b"secret;")
        elif isinstance(item, bool) or item is None:
            digest.update(b"%r;" % item)
        elif isinstance(item, int):
            digest.update(b"i%x;" % item)  # hexadecimal: Python limits only decimal conversions
        else:
            digest.update(b"%s:%r;" % (type(item).__name__.encode(), item))
    return digest.hexdigest()


def parse_input(raw: dict[str, Any] | None) -> ActorInput:
    """Validate the raw input. The error names the first bad field, never its value."""
    try:
        return ActorInput.model_validate(raw or {})
    except ValidationError as error:
        errors = error.errors(include_input=False, include_url=False)
        # Of a union's errors for the first bad field, the deepest says most (`itemIds[3]` is too long).
        first = max((e for e in errors if e["loc"][:1] == errors[0]["loc"][:1]), key=lambda e: len(e["loc"]))
        # The field and any list positions; never a dict key or a union member's type name.
        loc = first["loc"]
        positions = (f"[{part}]" for part in loc[1:] if isinstance(part, int))
        location = "".join([str(loc[0]) if loc else "input", *positions])
        message = first["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        raise ActorInputError(location, message) from None
