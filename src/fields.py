"""The one vocabulary of event fields: every field an event may carry, said once.

Each row names the field's flat input name (the single-event form and the flat event shape), where it
goes in Snap's v3 event (section and key), the small pure rule that makes its value what Snap accepts,
and what the rest of the actor needs to know about it: whether it is hashed, whether it identifies a
person, where it ranks among the match keys, its label in the report, whether batch events inherit it
from the top level, and its type in the input form. Every other table of fields (the input model, the
event shape router, the normalizer, the report, the match grade, the tests' coverage lists) is derived
from `FIELDS`. Adding a field means adding a row here.

Yes/no values (`optOut`, `limitedDataUse`, `advertiserTrackingEnabled`; CSV cells and JSON values alike) are
read by the one truth table in `rules/yes_no.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field as InputField

from .rules import identifiers as rules
from .rules import values as custom

#: Longest accepted text of an event field in the input form (the events' own rule's limit), and the longest list.
MAX_TEXT = custom.MAX_TEXT
MAX_LIST = 1000
MAX_URL = 8192


def _several_from_text(value: object) -> object:
    """The form has one text box per identifier: several values of one person come comma-separated."""
    if isinstance(value, str) and "," in value:
        values = [part.strip() for part in value.split(",") if part.strip()]
        return values if len(values) > 1 else (values[0] if values else None)
    return value


Text = Annotated[str, InputField(max_length=MAX_TEXT)]
TextList = Annotated[list[Text], InputField(max_length=MAX_LIST)]
TextOrList = Text | TextList
ActionSource = Literal["WEB", "MOBILE_APP", "OFFLINE"]

Section = Literal["user_data", "custom_data", "app_data"]
#: Where a field goes: the top level of Snap's event (None), a section, or a per-event switch (FLAG).
FLAG: Literal["flag"] = "flag"


@dataclass(frozen=True, slots=True)
class Form:
    """The field's place in the input form (`ActorInput`): its pydantic type, default and limits."""

    type: Any
    default: Any = None
    limits: Mapping[str, Any] | None = None
    #: Accepts null (an explicit `None`); every field without a default does.
    optional: bool | None = None
    #: Applied to the raw value before validation.
    before: Callable[[object], object] | None = None

    @property
    def takes_a_list(self) -> bool:
        """A list of text (or text or such a list): the input schema lets the list's items be anything."""
        return self.type in (TextList, TextOrList)


@dataclass(frozen=True, slots=True)
class Field:
    input: str
    section: Section | Literal["flag"] | None
    key: str
    #: The rule for one value: `user_data` rules take text, `custom_data`/`app_data` rules any JSON value.
    rule: Callable[..., Any] | None = None
    hashed: bool = False
    #: Names or describes a person beyond the strong keys (helps a match alongside them: the match grade).
    personal: bool = False
    #: Position among the match keys a row reports, in the order Snap weighs them; None: not a match key.
    match_rank: int | None = None
    label: str = ""
    #: A batch event without its own value takes the top-level input's. Identifiers never spread.
    inherited: bool = False
    #: Its field in the input form; None: accepted in events only.
    form: Form | None = None
    #: Other spellings accepted in `user_data` (the Java v3 SDK says `mobile_ad_id`).
    aliases: tuple[str, ...] = ()


_TEXT = Form(Text)
_SEVERAL = Form(TextOrList, before=_several_from_text)
_LIST = Form(TextOrList)
_URL = Form(Annotated[str, InputField(max_length=MAX_URL)])
_CONTENTS = Form(Annotated[list[dict[str, Any]], InputField(max_length=MAX_LIST)])
_EXTINFO = Form(TextList)


# fmt: off
def _user(
    input: str, key: str, rule: Callable[[str], str], rank: int, label: str, *, hashed: bool,
    personal: bool = False, form: Form | None = _TEXT, aliases: tuple[str, ...] = (),
) -> Field:
    return Field(input, "user_data", key, rule, hashed, personal, rank, label, form=form, aliases=aliases)


FIELDS: tuple[Field, ...] = (
    Field("eventType", None, "event_name", inherited=True, form=Form(Text, "PURCHASE")),
    Field("eventTime", None, "event_time", form=Form(Text | int | float)),
    Field("actionSource", None, "action_source", inherited=True, form=Form(ActionSource, "WEB")),
    Field("eventSourceUrl", None, "event_source_url", inherited=True, form=_URL),
    Field("eventId", None, "event_id", form=_TEXT),
    _user("email", "em", rules.normalize_email, 0, "Email", hashed=True, form=_SEVERAL),
    _user("phone", "ph", rules.normalize_phone, 1, "Phone", hashed=True, form=_SEVERAL),
    _user("mobileAdId", "madid", rules.normalize_lowercase_id, 2, "Mobile ad ID", hashed=False,
          aliases=("mobile_ad_id",)),
    _user("idfa", "idfa", rules.normalize_lowercase_id, 3, "IDFA", hashed=False, personal=True),
    _user("idfv", "idfv", rules.normalize_lowercase_id, 4, "IDFV", hashed=False, personal=True),
    _user("scClickId", "sc_click_id", rules.normalize_raw, 5, "Click ID (ScCid)", hashed=False),
    _user("uuid1", "sc_cookie1", rules.normalize_raw, 6, "Snap cookie (_scid)", hashed=False),
    _user("ipAddress", "client_ip_address", rules.normalize_ip, 7, "IP address", hashed=False),
    _user("userAgent", "client_user_agent", rules.normalize_raw, 8, "User agent", hashed=False),
    _user("externalId", "external_id", rules.normalize_external_id, 9, "External ID", hashed=True, personal=True,
          form=_LIST),
    _user("firstName", "fn", rules.normalize_name, 10, "First name", hashed=True, personal=True),
    _user("lastName", "ln", rules.normalize_name, 11, "Last name", hashed=True, personal=True),
    _user("gender", "ge", rules.normalize_gender, 12, "Gender", hashed=True, personal=True),
    _user("dateOfBirth", "db", rules.normalize_date_of_birth, 13, "Date of birth", hashed=True, personal=True),
    _user("city", "ct", rules.normalize_city, 14, "City", hashed=True, personal=True),
    _user("state", "st", rules.normalize_state, 15, "State", hashed=True, personal=True),
    _user("zip", "zp", rules.normalize_zip, 16, "Zip", hashed=True, personal=True),
    _user("country", "country", rules.normalize_country, 17, "Country", hashed=True, personal=True),
    Field("price", "custom_data", "value", custom.value, form=Form(float)),
    Field("currency", "custom_data", "currency", custom.currency, inherited=True, form=Form(Text, "USD")),
    Field("transactionId", "custom_data", "order_id", custom.order_id, form=_TEXT),
    Field("itemCategory", "custom_data", "content_category", custom.content_category, form=_TEXT),
    Field("itemIds", "custom_data", "content_ids", custom.content_ids, form=_LIST),
    Field("numberOfItems", "custom_data", "num_items", custom.num_items, form=Form(int, 1, {"ge": 0}, optional=True)),
    Field("contents", "custom_data", "contents", custom.contents, form=_CONTENTS),
    Field("brands", "custom_data", "brands", custom.brands, form=_LIST),
    Field("searchString", "custom_data", "search_string", custom.search_string, form=_TEXT),
    Field("signUpMethod", "custom_data", "sign_up_method", custom.sign_up_method, form=_TEXT),
    Field("advertiserTrackingEnabled", "app_data", "advertiser_tracking_enabled", custom.tracking_enabled,
          form=Form(bool)),
    Field("extinfo", "app_data", "extinfo", custom.extinfo, form=_EXTINFO),
    Field("appId", "app_data", "app_id", custom.app_id, form=_TEXT),
    Field("limitedDataUse", FLAG, "limitedDataUse", form=Form(bool, False)),
    Field("optOut", FLAG, "optOut", form=Form(bool, False)),
)
# fmt: on

SECTIONS: tuple[Section, ...] = ("user_data", "custom_data", "app_data")


# Derived tables: each consumer reads the one it needs; none is written out anywhere else.

#: Flat input name -> (section of the Snap event or None for the top level, Snap's key).
FLAT_FIELDS: Mapping[str, tuple[str | None, str]] = {f.input: (f.section, f.key) for f in FIELDS if f.section != FLAG}
#: Per-event switches that are not part of Snap's event.
FLAG_FIELDS = frozenset(f.input for f in FIELDS if f.section == FLAG)
#: Keys of Snap's own layout an event object may carry at its top level.
NATIVE_FIELDS = frozenset(
    {*(f.key for f in FIELDS if f.section is None), *SECTIONS, "data_processing_options", "integration"}
)
#: Every top-level key an event object may have.
EVENT_FIELDS = frozenset(FLAT_FIELDS) | FLAG_FIELDS | NATIVE_FIELDS
#: The same by their case-folded names: no two differ only by case.
_FOLDED_FIELDS = {name.casefold(): name for name in EVENT_FIELDS}


def event_field(name: str) -> str | None:
    """The event field a key or a column names: itself, else the one it names whatever its case and surrounding
    blanks (exports write `Email`, `Event Time` is no match); None if it names none."""
    if name in EVENT_FIELDS:
        return name
    return _FOLDED_FIELDS.get(name.strip().casefold())


#: Flat names of the identifiers (`user_data`).
IDENTIFIER_INPUTS = frozenset(f.input for f in FIELDS if f.section == "user_data")

#: Hashed `user_data` keys and the rule applied before SHA-256; raw keys and the rule that tidies them.
HASHED_RULES: Mapping[str, Callable[[str], str]] = {
    f.key: f.rule for f in FIELDS if f.section == "user_data" and f.hashed and f.rule
}
RAW_RULES: Mapping[str, Callable[[str], str]] = {
    f.key: f.rule for f in FIELDS if f.section == "user_data" and not f.hashed and f.rule
}
USER_DATA_ALIASES: Mapping[str, str] = {alias: f.key for f in FIELDS for alias in f.aliases}
#: `custom_data` rules (Snap's types), and `app_data` rules (MOBILE_APP events only).
CUSTOM_RULES: Mapping[str, Callable[[object], object]] = {
    f.key: f.rule for f in FIELDS if f.section == "custom_data" and f.rule
}
APP_RULES: Mapping[str, Callable[[object], object]] = {
    f.key: f.rule for f in FIELDS if f.section == "app_data" and f.rule
}

#: Identifiers reported in a row's `matchKeys`, in the order Snap weighs them.
MATCH_KEYS: tuple[str, ...] = tuple(
    f.key for f in sorted((f for f in FIELDS if f.match_rank is not None), key=lambda f: f.match_rank or 0)
)
MATCH_RANK: Mapping[str, int] = {key: rank for rank, key in enumerate(MATCH_KEYS)}
PERSONAL_KEYS = frozenset(f.key for f in FIELDS if f.personal)
IDENTIFIER_LABELS: Mapping[str, str] = {f.key: f.label for f in FIELDS if f.label}

#: Input fields that describe the single event of `send_event`.
SINGLE_EVENT_FIELDS: tuple[str, ...] = tuple(f.input for f in FIELDS if f.form is not None)
#: Single-event fields a batch event takes from the top level when it has none of its own.
INHERITED_EVENT_FIELDS: tuple[str, ...] = tuple(f.input for f in FIELDS if f.inherited)
