"""Snap's acceptance rules, checked locally so that a doomed event is never sent (or billed).

Each rule looks at one finished event payload and returns the reason it would be rejected, or
None. The messages use the input field names a user typed, not only Snap's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from ..rules.identifiers import masked
from ..rules.values import broken_text

MAX_AGE_SECONDS = 37 * 24 * 3600
MAX_FUTURE_SECONDS = 3600
#: Longest text sent in any field (a long landing URL fits); a longer cell is a broken source, not data.
MAX_CHARS = 8192
_CURRENCY = re.compile(r"[A-Z]{3}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")

Payload = Mapping[str, Any]


def check_time(event: Payload, now: float) -> str | None:
    event_time = event["event_time"]
    if event_time < now - MAX_AGE_SECONDS:
        return "eventTime is older than Snap's 37-day window"
    if event_time > now + MAX_FUTURE_SECONDS:
        return "eventTime is in the future"
    return None


def check_match_keys(event: Payload, now: float) -> str | None:
    user = event.get("user_data", {})
    if "em" in user or "ph" in user:
        return None
    if event["action_source"] == "MOBILE_APP" and "madid" in user:
        return None
    if "client_ip_address" in user and "client_user_agent" in user:
        return None
    return (
        "no identifier Snap can match on (Insufficient PII): give an email, a phone, a mobileAdId "
        "for app events, or both ipAddress and userAgent"
    )


def check_purchase(event: Payload, now: float) -> str | None:
    if event["event_name"] != "PURCHASE":
        return None
    custom = event.get("custom_data", {})
    if "value" not in custom:
        return "a PURCHASE needs a price (custom_data.value)"
    if not _CURRENCY.fullmatch(str(custom.get("currency", ""))):
        return "a PURCHASE needs an ISO 4217 currency such as USD (custom_data.currency)"
    return None


def check_web_url(event: Payload, now: float) -> str | None:
    url = event.get("event_source_url")
    if event["action_source"] == "WEB" and not url:
        return "WEB events need eventSourceUrl"
    if url and not _SCHEME.match(str(url)):
        return (
            "eventSourceUrl must include the protocol, such as https://www.example.com/thanks "
            "(Snap refuses a URL without it)"
        )
    return None


def check_app_data(event: Payload, now: float) -> str | None:
    if event["action_source"] == "MOBILE_APP" and not event.get("app_data", {}).get("extinfo"):
        return (
            "MOBILE_APP events need app_data.extinfo: add extinfo, the device array of up to 16 strings "
            "starting with 'a2' (Android) or 'i2' (iOS), e.g. ['i2', 'com.example.app', '1.0', ...]"
        )
    return None


#: Top-level payload keys by the input name a user gave them.
_INPUT_NAMES = {"event_id": "eventId", "event_source_url": "eventSourceUrl", "event_name": "eventType"}


def _leaves(value: object, path: str) -> Iterator[tuple[str, object]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            yield from _leaves(item, f"{path}[{position}]")
    else:
        yield path, value


#: In the compact JSON of a payload: an escaped control character, DEL, a C1 control, U+FFFD, or `null`
#: (orjson's NaN and infinity). Only a hint: what it finds is looked at field by field.
_SUSPECT_JSON = re.compile(rb"\\u00[01][0-9a-f]|\\[bfnrt]|\x7f|\xc2[\x80-\x9f]|\xef\xbf\xbd|null")
#: `null` alone: a regex finds it faster than `in` does in a body of a few hundred bytes.
_NULL = re.compile(rb"null")


def _clean_at_a_glance(event: Payload, body: bytes | None = None) -> bool:
    """The common case in about a microsecond: the payload encodes (no lone surrogate, no huge int), is short
    enough that no text in it can be too long, and its JSON shows nothing suspect. `body` is its compact JSON
    when the caller already has it."""
    if body is None:
        try:
            body = orjson.dumps(event)
        except (orjson.JSONEncodeError, TypeError):
            return False
    if len(body) > MAX_CHARS:
        return False
    # Each thing the regex looks for has a backslash, DEL, a byte outside ASCII or `null` in it: a body with
    # none of those (nearly every one) is clean without it, in a few fast scans instead of a regex search.
    if body.isascii() and b"\\" not in body and b"\x7f" not in body and _NULL.search(body) is None:
        return True
    return _SUSPECT_JSON.search(body) is None


def check_sendable(event: Payload, now: float, body: bytes | None = None) -> str | None:
    """Every value Snap would get is finite and clean text: no NaN or infinity (sent as null or refused),
    no control characters, U+FFFD or lone surrogates (ids Snap cannot match, or a body that cannot be
    encoded). Fields with their own rule are tidied before; this covers the rest (eventId, the URL,
    fields passed through as given). `body`: the payload's compact JSON, when the caller has it."""
    if _clean_at_a_glance(event, body):
        return None
    for path, value in _leaves(event, ""):
        name = _INPUT_NAMES.get(path) or masked(path)
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} must be a finite number (not NaN or infinity)"
        if isinstance(value, str) and (problem := broken_text(value)) is not None:
            return f"{name} {problem}"
        if isinstance(value, str) and len(value) > MAX_CHARS:
            return f"{name} is longer than {MAX_CHARS} characters"
    return None


#: The rules after `check_sendable`, in order.
RULES: tuple[Callable[[Payload, float], str | None], ...] = (
    check_time,
    check_match_keys,
    check_purchase,
    check_web_url,
    check_app_data,
)


def preflight(event: Payload, now: float, body: bytes | None = None) -> str | None:
    """The first reason Snap would refuse this event, or None when it should be accepted. `body`, the payload's
    compact JSON when the caller has it (the request's body), spares encoding it a second time."""
    if (reason := check_sendable(event, now, body)) is not None:
        return reason
    for rule in RULES:
        reason = rule(event, now)
        if reason is not None:
            return reason
    return None
