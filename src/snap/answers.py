"""Requests to Snap and its answers: each failure becomes one of the Snap errors of `errors`, with a message
that says what to do and never carries the token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import (
    ServiceUnavailableError,
    SnapAuthError,
    SnapError,
    SnapNotFoundError,
    SnapRejectedError,
    SnapUnavailableError,
)
from ..net.transport import Transport, json_object, redact

#: Added to a request Snap rate limited through every retry: what the user can change.
RATE_LIMIT_ADVICE = (
    "Snap's rate limit held through every retry: run again later, with fewer requests at once (fewer runs using "
    "this token; for the send and validate tasks a lower maxRequestsPerSecond or maxConcurrency), or raise maxRetries."
)


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a lookup asked Snap about: the id in input field `field`, of a `thing` the user finds in `where`.
    Its refusals then name the field to check, and an answer that is not Snap's JSON fails it (a lookup that
    read nothing must not report that it found nothing)."""

    field: str
    thing: str
    where: str
    #: Said after a 403 on top of the usual advice (an API Snap opens only to some).
    forbidden_note: str = ""

    def check(self) -> str:
        return f"Check {self.field}: copy the {self.thing} id from {self.where}"


def strings(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value if item not in (None, "")]
    return [str(value)] if isinstance(value, str | int) and value != "" else []


def error_details(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Snap's `(codes, messages)` from every shape of its error body: `errors: {codes, error_msgs}`
    (Java v3 SDK `ErrorDetails`), a top-level `error_msgs` list (what partners see from real Snap), and
    an older `errors: {field: message}` mapping. Messages are redacted; duplicates are dropped."""
    codes: list[str] = []
    messages: list[str] = []
    errors = body.get("errors")
    if isinstance(errors, dict):
        if "codes" in errors or "error_msgs" in errors:
            codes += strings(errors.get("codes"))
            messages += strings(errors.get("error_msgs"))
        else:
            messages += [f"{key}: {value}" for key, value in errors.items()]
    elif isinstance(errors, list):
        messages += strings(errors)
    messages += strings(body.get("error_msgs"))
    codes += strings(body.get("codes"))
    return list(dict.fromkeys(codes)), list(dict.fromkeys(redact(message) for message in messages))


def snap_reason(body: dict[str, Any], response: httpx.Response) -> str:
    reason = (
        body.get("reason")
        or body.get("display_message")
        or body.get("debug_message")
        or body.get("error_description")
        or body.get("error")
        or response.reason_phrase
        or "no reason given"
    )
    reason = redact(str(reason))
    _, messages = error_details(body)
    details = [message for message in messages if message != reason]
    return f"{reason} ({'; '.join(details)})" if details else reason


async def snap_request(transport: Transport, method: str, url: str, **options: Any) -> httpx.Response:
    """A request to Snap through the shared transport: a host that never answered is Snap's to report."""
    try:
        return await transport.request(method, url, **options)
    except ServiceUnavailableError as error:
        message = f"{error}. {RATE_LIMIT_ADVICE}" if error.status == 429 else str(error)
        raise SnapUnavailableError(message, status=error.status) from None


def raise_for_snap(response: httpx.Response, what: str, *, advice: str, lookup: Lookup | None = None) -> dict[str, Any]:
    """The JSON body of a success, or the matching `SnapError` for a failure. With a `lookup`, the messages
    name its input field, and a success whose body is not Snap's JSON is a failure too."""
    parsed = json_object(response)
    body = parsed if parsed is not None else {}
    status = response.status_code
    if 200 <= status < 300:
        if parsed is None and lookup is not None:
            kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
            raise SnapError(
                f"{what}: Snap answered with something that is not its API's JSON (HTTP {status}, {kind}), so "
                "nothing could be read from it; a proxy, firewall or maintenance page may stand between this run "
                "and Snap. Run it again later.",
                status=status,
            )
        return body
    reason = snap_reason(body, response)
    if status == 403 and lookup is not None:
        note = f" {lookup.forbidden_note}" if lookup.forbidden_note else ""
        raise SnapAuthError(
            f"{what}: the token has no access to this {lookup.thing} (HTTP 403: {reason}). Check {lookup.field}, "
            f"or use a token of the organization that owns the {lookup.thing}.{note}",
            status=status,
        )
    if status in (401, 403):
        raise SnapAuthError(f"{what}: Snap refused the access token (HTTP {status}: {reason}). {advice}", status=status)
    if status == 404:
        check = f" {lookup.check()}; the token must belong to the organization that owns it." if lookup else ""
        raise SnapNotFoundError(f"{what}: not found (HTTP 404: {reason}).{check}", status=status)
    if status == 400 and lookup is not None:
        raise SnapError(f"{what}: Snap refused the request (HTTP 400: {reason}). {lookup.check()}.", status=status)
    if status == 400:
        index = body.get("event")
        codes, messages = error_details(body)
        raise SnapRejectedError(
            reason,
            event_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            codes=tuple(codes),
            messages=tuple(messages),
        )
    raise SnapError(f"{what}: HTTP {status}: {reason}", status=status)
