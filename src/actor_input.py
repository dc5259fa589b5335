"""The actor's input: the seed actor's field names, validated once, with errors that name the field."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .errors import ActorInputError

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
ActionSource = Literal["WEB", "MOBILE_APP", "OFFLINE"]

#: Single-event fields a batch event takes from the top level when it has none of its own.
#: Identifiers are deliberately absent: one person's email must never spread over a batch.
INHERITED_EVENT_FIELDS = ("eventType", "actionSource", "eventSourceUrl", "currency")

#: Input fields that describe the single event of `send_event`.
SINGLE_EVENT_FIELDS = (
    "eventType", "actionSource", "eventTime", "eventSourceUrl", "eventId", "transactionId",
    "price", "currency", "itemCategory", "itemIds", "numberOfItems", "email", "phone",
    "firstName", "lastName", "gender", "dateOfBirth", "city", "state", "zip", "country",
    "externalId", "mobileAdId", "idfv", "scClickId", "uuid1", "ipAddress", "userAgent",
    "limitedDataUse", "optOut", "contents", "brands", "searchString", "signUpMethod",
    "advertiserTrackingEnabled", "extinfo", "appId",
)  # fmt: skip


class ActorInput(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    task: Task = "send_event"
    demo_mode: bool | None = None
    access_token: SecretStr | None = None
    pixel_id: str | None = None
    snap_app_id: str | None = None
    ad_account_id: str | None = None
    refresh_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None

    event_type: str = "PURCHASE"
    action_source: ActionSource = "WEB"
    event_time: str | int | float | None = None
    event_source_url: str | None = None
    event_id: str | None = None
    transaction_id: str | None = None
    price: float | None = None
    currency: str = "USD"
    item_category: str | None = None
    item_ids: str | list[str] | None = None
    number_of_items: int | None = Field(default=1, ge=0)
    contents: list[dict[str, Any]] | None = None
    brands: str | list[str] | None = None
    search_string: str | None = None
    sign_up_method: str | None = None
    advertiser_tracking_enabled: bool | None = None
    extinfo: list[str] | None = None
    app_id: str | None = None

    email: str | list[str] | None = None
    phone: str | list[str] | None = None
    default_phone_country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    date_of_birth: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    external_id: str | list[str] | None = None
    mobile_ad_id: str | None = None
    idfv: str | None = None
    sc_click_id: str | None = None
    uuid1: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    is_already_hashed: bool = False
    limited_data_use: bool = False
    opt_out: bool = False
    send_opted_out_events: bool = False

    events: list[Any] | None = None
    events_dataset_id: str | None = None
    events_url: str | None = Field(default=None, pattern=r"^https?://")
    field_mapping: dict[str, str] | None = None
    event_name_mapping: dict[str, str] | None = None

    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
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
        if not isinstance(parsed, list):
            raise ValueError("must be a JSON array of event objects")
        return parsed

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: object) -> object:
        """The Console sends empty strings for cleared fields; they mean "not given", so defaults apply."""
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items() if not (isinstance(value, str) and not value.strip())}

    @property
    def is_demo(self) -> bool:
        """An explicit `demoMode` wins; otherwise a run without a token is a demo."""
        return self.demo_mode if self.demo_mode is not None else self.access_token is None

    def token(self) -> str:
        if self.access_token is None:
            raise ActorInputError("accessToken", "is required when demo mode is off (API key is required)")
        return self.access_token.get_secret_value()

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


def _single_event_attrs() -> set[str]:
    by_alias = {info.alias: name for name, info in ActorInput.model_fields.items()}
    return {by_alias[alias] for alias in SINGLE_EVENT_FIELDS}


def parse_input(raw: dict[str, Any] | None) -> ActorInput:
    """Validate the raw input. The error names the first bad field, never its value."""
    try:
        return ActorInput.model_validate(raw or {})
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"]) or "input"
        message = first["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        raise ActorInputError(location, message) from None
