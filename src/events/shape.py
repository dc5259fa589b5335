"""Events as users write them, in either accepted shape, brought into Snap's native v3 layout.

An event object may use the single-event input names (`eventType`, `email`, `price`, ...) or
Snap's own (`event_name`, `user_data`, `custom_data`, ...), even both at once. Values stay raw
here; `conversion` normalizes and hashes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Single-event input name -> (section of the Snap event or None for the top level, Snap's key).
FLAT_FIELDS: Mapping[str, tuple[str | None, str]] = {
    "eventType": (None, "event_name"),
    "eventTime": (None, "event_time"),
    "actionSource": (None, "action_source"),
    "eventSourceUrl": (None, "event_source_url"),
    "eventId": (None, "event_id"),
    "email": ("user_data", "em"),
    "phone": ("user_data", "ph"),
    "firstName": ("user_data", "fn"),
    "lastName": ("user_data", "ln"),
    "gender": ("user_data", "ge"),
    "dateOfBirth": ("user_data", "db"),
    "city": ("user_data", "ct"),
    "state": ("user_data", "st"),
    "zip": ("user_data", "zp"),
    "country": ("user_data", "country"),
    "externalId": ("user_data", "external_id"),
    "mobileAdId": ("user_data", "madid"),
    "idfv": ("user_data", "idfv"),
    "idfa": ("user_data", "idfa"),
    "scClickId": ("user_data", "sc_click_id"),
    "uuid1": ("user_data", "sc_cookie1"),
    "ipAddress": ("user_data", "client_ip_address"),
    "userAgent": ("user_data", "client_user_agent"),
    "price": ("custom_data", "value"),
    "currency": ("custom_data", "currency"),
    "transactionId": ("custom_data", "order_id"),
    "itemCategory": ("custom_data", "content_category"),
    "itemIds": ("custom_data", "content_ids"),
    "numberOfItems": ("custom_data", "num_items"),
    "contents": ("custom_data", "contents"),
    "brands": ("custom_data", "brands"),
    "searchString": ("custom_data", "search_string"),
    "signUpMethod": ("custom_data", "sign_up_method"),
    "advertiserTrackingEnabled": ("app_data", "advertiser_tracking_enabled"),
    "extinfo": ("app_data", "extinfo"),
    "appId": ("app_data", "app_id"),
}

#: Per-event switches that are not part of Snap's event (`optOut`: see `conversion.OPTED_OUT`).
FLAG_FIELDS = frozenset({"limitedDataUse", "optOut"})

NATIVE_FIELDS = frozenset(
    {
        "event_name", "event_time", "action_source", "event_source_url", "event_id", "user_data",
        "custom_data", "app_data", "data_processing_options", "integration",
    }
)  # fmt: skip
_SECTIONS = ("user_data", "custom_data", "app_data")


@dataclass(slots=True)
class SourceEvent:
    """One event as read from the input, with where it came from for the result row."""

    index: int
    data: Mapping[str, Any] | None
    error: str | None = None


@dataclass(slots=True)
class NativeEvent:
    """A raw event in Snap's layout, plus what did not fit it."""

    event: dict[str, Any]
    flags: dict[str, Any]
    warnings: list[str]


#: Every top-level key an event object may have, compiled once: where its value goes.
_NATIVE, _FLAG = "native", "flag"
_ROUTES: Mapping[str, str | tuple[str | None, str]] = {
    **FLAT_FIELDS,
    **dict.fromkeys(FLAG_FIELDS, _FLAG),
    **dict.fromkeys(NATIVE_FIELDS, _NATIVE),
}


def to_native(data: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> NativeEvent:
    """Bring one event object into Snap's layout; `defaults` fill single-event names it lacks.

    Native keys win over single-event names, and an event's own fields over `defaults`: one pass over
    the event sorts its keys by the `_ROUTES` table, then the single-event values fill what is left.
    """
    event: dict[str, Any] = {}
    flags: dict[str, Any] = {}
    warnings: list[str] = []
    flat: list[tuple[tuple[str | None, str], Any]] = []
    routes = _ROUTES
    for key, value in data.items():
        route = routes.get(key)
        if route is None:
            warnings.append(f"field '{key}' is not an event field and was ignored")
        elif route is _NATIVE:
            event[key] = dict(value) if key in _SECTIONS and isinstance(value, Mapping) else value
        elif route is _FLAG:
            flags[key] = value
        else:
            flat.append((route, value))  # type: ignore[arg-type]
    for (section, name), value in flat:  # `_put`, inlined: the hot path of every event
        if value is None or value == "":
            continue
        if section is None:
            if name not in event:
                event[name] = value
            continue
        target = event.get(section)
        if target is None and section not in event:
            target = event[section] = {}
        if isinstance(target, dict) and name not in target:
            target[name] = value
    if defaults:
        for key, value in defaults.items():
            _put(event, FLAT_FIELDS[key], value)
    return NativeEvent(event, flags, warnings)


def _put(event: dict[str, Any], where: tuple[str | None, str], value: Any) -> None:
    """Set a value unless the event already has one: native keys and the event's own fields win."""
    if value is None or value == "":
        return
    section, name = where
    if section is None:
        if name not in event:
            event[name] = value
        return
    target = event[section] if section in event else event.setdefault(section, {})
    if isinstance(target, dict) and name not in target:
        target[name] = value


async def iter_events(objects: Iterable[Any]) -> AsyncIterator[SourceEvent]:
    """The `events` input (or the single event) as a stream, so that bulk sources fit the same pipeline."""
    for index, data in enumerate(objects):
        if isinstance(data, Mapping):
            yield SourceEvent(index, data)
        else:
            yield SourceEvent(index, None, error=f"events[{index}] is not a JSON object")
