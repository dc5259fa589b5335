"""One raw event in, one Snap v3 payload (or the reason there can be none) out.

This is the per-event hot path of every task: shape, name, time, identifiers, custom data,
dedup id and the preflight rules, in that order, with no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import orjson

from ..fields import APP_RULES, CUSTOM_RULES, MATCH_RANK
from ..rules.identifiers import masked
from ..rules.values import MAX_AMOUNT, FieldError, check_prices
from ..rules.yes_no import is_yes
from .names import EventNameResolver, unknown_event_message
from .preflight import preflight
from .shape import NativeEvent, SourceEvent, to_native
from .user_data import UserDataNormalizer

INTEGRATION = "apify-snapchat-conversions-actor"
ACTION_SOURCES = frozenset({"WEB", "MOBILE_APP", "OFFLINE"})
_CLICK_ID_PARAMS = frozenset({"sccid", "sscid"})
_MS_THRESHOLD = 10**11  # 10**11 seconds is the year 5138; anything larger is milliseconds.
OPTED_OUT = "not sent: the event is marked opted out (optOut); set sendOptedOutEvents to send it with limited data use"


#: The row error of an event that broke a rule in an unforeseen way (the fuzz tests make sure none does).
UNPREPARABLE = "the event could not be prepared: a field holds a value of an unexpected kind"


class EventError(ValueError):
    """Why an event cannot be sent; shown to the user as the row's `error`."""


class PreparedEvent(NamedTuple):
    """A payload ready for Snap, and what its result row needs to say about it.

    The payload is kept as the compact JSON that goes into the request (`body`): encoded once, joined into
    the request as it is. Immutable like a frozen dataclass, built in a third of the time (one per event)."""

    index: int  # type: ignore[assignment]  # the event's place in the input; shadows `tuple.index`, never called
    asset_id: str
    body: bytes
    event_id: str
    event_name: str
    action_source: str
    match_keys: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    #: The event id names this event in any run (given, the order id, or content with the event's time), so the
    #: ledger may remember it. An id from content without a time names every repeat of the same purchase.
    lasting_id: bool = True

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as data, for whatever needs to look inside it."""
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; what orjson cannot encode (integers beyond 64 bits) goes through `json`."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An event that is not sent: bad shape, unknown name or a preflight rule (`invalid`), or opted out (`skipped`)."""

    index: int
    error: str
    event_name: str | None = None
    event_id: str | None = None
    action_source: str | None = None
    match_keys: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    status: Literal["invalid", "skipped"] = "invalid"


@dataclass(frozen=True, slots=True)
class Destinations:
    """Where each action source's events go: pixel for WEB/OFFLINE, Snap App ID for MOBILE_APP."""

    pixel_id: str | None
    snap_app_id: str | None

    def asset_for(self, action_source: str) -> str:
        if action_source == "MOBILE_APP":
            if not self.snap_app_id:
                raise EventError("MOBILE_APP events need snapAppId")
            return self.snap_app_id
        if not self.pixel_id:
            raise EventError(f"{action_source} events need pixelId")
        return self.pixel_id


def parse_event_time(value: object, now: float) -> int:
    """Unix seconds from Unix seconds or milliseconds (number or digits) or ISO 8601; none is now."""
    if type(value) is int and 0 <= value < _MS_THRESHOLD:  # Unix seconds as JSON gives them: nothing to convert
        return value
    if value is None or value == "":
        return int(now)
    if isinstance(value, bool):
        raise EventError("eventTime must be Unix seconds, Unix milliseconds or an ISO 8601 date")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int of more than 308 digits
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
    return int(number / 1000 if number >= _MS_THRESHOLD else number)


def click_id_from_url(url: str) -> str | None:
    """The `ScCid` parameter of a landing URL, whatever the name's case; the value keeps its case."""
    if "?" not in url:  # no query, no click id: skips parsing the URL of nearly every event
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for name, value in parse_qsl(query):
        if name.lower() in _CLICK_ID_PARAMS and value:
            return value
    return None


def content_event_id(payload: Mapping[str, Any], *, time_given: bool = True) -> str:
    """A dedup id from the event's content, so that a retried or resumed send is deduplicated by Snap.

    A time the event did not give (it defaults to now) is left out: a resumed run must come up with
    the same id as the attempt before it.
    """
    if not time_given:
        payload = {key: value for key, value in payload.items() if key != "event_time"}
    return hashlib.sha256(_canonical(payload)).hexdigest()[:32]


#: orjson's exponent (`1e16`, `2.5e-7`; `json` writes `1e+16`, `2.5e-07`): an `e`, digits, and the end of a number.
#: A string holding the same only sends its event the long way.
_EXPONENT = re.compile(rb"e-?[0-9]+[,}\]]")
_SORTED_PLAIN = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)  # a type `json` writes with `str` (a date, a dataclass, a str subclass) goes the long way


def _canonical(payload: Mapping[str, Any]) -> bytes:
    """The payload as `json.dumps(sort_keys=True, separators=(",", ":"), default=str)` writes it, byte for byte:
    the content ids of earlier versions must not change (a resumed run, the ledger and Snap's deduplication go by
    them). orjson writes the same bytes, several times faster, when its output shows none of the marks where
    the two can differ (nearly every event's); anything else goes through `json`."""
    try:
        fast = orjson.dumps(payload, option=_SORTED_PLAIN)
    except (orjson.JSONEncodeError, TypeError):
        fast = b"\x80"  # not ASCII: the long way
    # Where the two can differ: non-ASCII text (`json` escapes it), DEL (escaped too), `null` (orjson's NaN and
    # infinity), a float under 1e-4 (`0.00001`; `json` writes `1e-05`) and an exponent. Each looked for in C.
    plain = fast.isascii() and b"\x7f" not in fast and b"null" not in fast and b"0.0000" not in fast
    if plain and _EXPONENT.search(fast) is None:
        return fast
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


class ConversionBuilder:
    """Builds Snap payloads for one run; holds the run's settings so each call only sees its event."""

    def __init__(
        self,
        *,
        destinations: Destinations,
        normalizer: UserDataNormalizer,
        names: EventNameResolver,
        defaults: Mapping[str, Any] | None = None,
        limited_data_use: bool = False,
        send_opted_out: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._destinations = destinations
        self._normalizer = normalizer
        self._names = names
        self._defaults = dict(defaults or {})
        self._limited_data_use = limited_data_use
        self._send_opted_out = send_opted_out
        self._now = now

    def build(self, source: SourceEvent) -> PreparedEvent | RejectedEvent:
        if source.data is None:
            return RejectedEvent(source.index, source.error or "not an event object")
        native = to_native(source.data, self._defaults)
        try:
            return self._build(source.index, native)
        except (EventError, FieldError) as error:
            return _rejected(source.index, native, str(error))
        except Exception as error:  # a value no rule foresaw: one event's row, never the whole run
            return _rejected(source.index, native, f"{UNPREPARABLE} ({type(error).__name__})")

    def _build(self, index: int, native: NativeEvent) -> PreparedEvent | RejectedEvent:
        raw = native.event
        now = self._now()
        raw_name = raw.get("event_name")
        event_name = self._names.resolve(str(raw_name)) if raw_name else None
        if event_name is None:
            raise EventError(unknown_event_message(str(raw_name)) if raw_name else "eventType is missing")
        action_source = str(raw.get("action_source") or "WEB").strip().upper()
        if action_source not in ACTION_SOURCES:
            raise EventError("actionSource must be WEB, MOBILE_APP or OFFLINE")
        asset_id = self._destinations.asset_for(action_source)
        flags = native.flags
        opted_out = bool(flags) and is_yes(flags.get("optOut"))
        if opted_out and not self._send_opted_out:
            return _rejected(index, native, OPTED_OUT, event_name=event_name, status="skipped")

        user_data = raw.get("user_data") or {}
        custom_data = raw.get("custom_data") or {}
        app_data = raw.get("app_data") or {}
        # `to_native` made every section given as an object a dict: anything else is not one.
        if not (type(user_data) is type(custom_data) is type(app_data) is dict):
            raise EventError("user_data, custom_data and app_data must be JSON objects")
        user, user_warnings = self._normalizer.normalize(user_data)
        url = raw.get("event_source_url")
        if url and "sc_click_id" not in user and (click_id := click_id_from_url(str(url))):
            user["sc_click_id"] = click_id

        payload: dict[str, Any] = {
            "event_name": event_name,
            "event_time": parse_event_time(raw.get("event_time"), now),
            "action_source": action_source,
            "user_data": user,
            "integration": raw.get("integration") or INTEGRATION,
        }
        if url:
            payload["event_source_url"] = str(url)
        custom = tidy_custom_data(custom_data)
        if custom:
            payload["custom_data"] = custom
        if action_source == "MOBILE_APP":
            app = tidy_app_data(app_data)
            if opted_out:
                app.setdefault("advertiser_tracking_enabled", False)
            if app:
                payload["app_data"] = app
        elif app_data:
            native.warnings.append("app_data is for MOBILE_APP events and was left out")
        if self._limited_data_use or opted_out or (flags and is_yes(flags.get("limitedDataUse"))):
            payload["data_processing_options"] = ["LDU"]
        elif raw.get("data_processing_options"):
            payload["data_processing_options"] = raw["data_processing_options"]
        given_id = raw.get("event_id") or custom.get("order_id")
        time_given = raw.get("event_time") not in (None, "")
        event_id = str(given_id or content_event_id(payload, time_given=time_given))
        payload["event_id"] = event_id

        match_keys = _ranked_match_keys(tuple(user))
        warnings: tuple[str, ...] = ()
        if native.warnings or user_warnings:
            warnings = tuple([shown(warning, 500) for warning in native.warnings + user_warnings])
        try:
            body: bytes | None = orjson.dumps(payload)
        except (orjson.JSONEncodeError, TypeError):
            body = None  # preflight says why (a lone surrogate), or `encode_payload` copes (an int beyond 64 bits)
        reason = preflight(payload, now, body)
        if reason is not None:
            detail = f"{reason} ({'; '.join(user_warnings)})" if user_warnings else reason
            return RejectedEvent(index, shown(detail), event_name, shown(event_id), action_source, match_keys, warnings)
        body = body if body is not None else encode_payload(payload)
        lasting = bool(given_id) or time_given
        return PreparedEvent(index, asset_id, body, event_id, event_name, action_source, match_keys, warnings, lasting)


def shown(text: str, limit: int = 2000) -> str:
    """Text from an event as a result row can store it: valid UTF-8 (a lone surrogate becomes `?`), and cut
    short, so that a runaway cell does not become a runaway row."""
    safe = text.encode("utf-8", "replace").decode("utf-8")
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


@lru_cache(maxsize=1024)
def _ranked_match_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The match keys among an event's `user_data` keys, in the order Snap weighs them. Cached: an export's
    events carry the same few combinations of identifiers."""
    return tuple(sorted(MATCH_RANK.keys() & keys, key=MATCH_RANK.__getitem__))


def tidy_custom_data(custom: Mapping[str, Any]) -> dict[str, Any]:
    tidy = _apply(CUSTOM_RULES, custom)
    if "contents" in tidy or tidy.get("value", 0) > MAX_AMOUNT:  # a price any currency allows needs no more look
        check_prices(tidy)
    return tidy


def tidy_app_data(app: Mapping[str, Any]) -> dict[str, Any]:
    return _apply(APP_RULES, app)


def _apply(rules: Mapping[str, Callable[[object], object]], data: Mapping[str, Any]) -> dict[str, Any]:
    tidy: dict[str, Any] = {}
    for key, item in data.items():
        if item is not None:
            rule = rules.get(key)
            tidy[key] = item if rule is None else rule(item)
    return tidy


def _rejected(
    index: int,
    native: NativeEvent,
    error: str,
    *,
    event_name: str | None = None,
    status: Literal["invalid", "skipped"] = "invalid",
) -> RejectedEvent:
    raw = native.event
    name = event_name or raw.get("event_name")
    custom = raw.get("custom_data")
    event_id = raw.get("event_id") or (custom.get("order_id") if isinstance(custom, Mapping) else None)
    return RejectedEvent(
        index,
        shown(error),
        event_name=shown(masked(str(name))) if name else None,
        event_id=shown(str(event_id)) if event_id else None,
        action_source=shown(masked(str(raw.get("action_source") or "WEB")), 100),
        warnings=tuple(shown(warning, 500) for warning in native.warnings),
        status=status,
    )
