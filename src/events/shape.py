"""Events as users write them, in either accepted shape, brought into Snap's native v3 layout.

An event object may use the single-event input names (`eventType`, `email`, `price`, ...) or
Snap's own (`event_name`, `user_data`, `custom_data`, ...), even both at once. Values stay raw
here; `conversion` normalizes and hashes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..fields import FLAG_FIELDS, FLAT_FIELDS, NATIVE_FIELDS, SECTIONS, event_field
from ..rules.identifiers import masked


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

    Native keys win over single-event names, and an event's own fields over `defaults`, whatever their
    order: one pass over the event routes each key by the `_ROUTES` table; a single-event value fills its
    place unless it is taken, and a native key takes its place (a native section keeps the single-event
    values put in it before, under the keys it lacks).
    """
    event: dict[str, Any] = {}
    flags: dict[str, Any] = {}
    warnings: list[str] = []
    routes = _ROUTES
    for key, value in data.items():
        route = routes.get(key)
        if route is None and (named := event_field(str(key))) is not None:  # `Email`: an export's own case
            key, route = named, routes[named]
        if route is None:
            warnings.append(f"field '{masked(str(key))}' is not an event field and was ignored")
        elif route is _NATIVE:
            if key in SECTIONS and isinstance(value, Mapping):
                given = dict(value)
                earlier = event.get(key)  # only single-event values can be there: a key comes once
                if earlier:
                    for name, item in earlier.items():
                        given.setdefault(name, item)
                value = given
            event[key] = value
        elif route is _FLAG:
            flags[key] = value
        elif value is not None and value != "":  # a single-event value: `_put`, inlined (the hot path)
            section, name = route  # type: ignore[str-unpack]
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
