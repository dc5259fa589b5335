"""Snap's Conversions API v3: `/v3/{asset_id}/events`, its validate endpoint and test-event tools."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..net.transport import Transport, redact
from .answers import Lookup, error_details, raise_for_snap, snap_request, strings


@dataclass(frozen=True, slots=True)
class EventVerdict:
    """What `/events/validate` said about one event of a batch."""

    valid: bool
    codes: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def event_verdicts(body: dict[str, Any], count: int) -> list[EventVerdict] | None:
    """One verdict per event from a validate answer's `event_logs`, or None when it has no per-event answer.

    Logs are placed by their `event` index when they carry one, else by position; the shape is the Java
    v3 SDK's `EventLogs` (`event`, `status`, `errors: {codes, error_msgs}`, `warnings`), with the older
    `error_records`/`warning_records` read too.
    """
    logs = body.get("event_logs")
    if not isinstance(logs, list) or not logs:
        return None
    placed: dict[int, dict[str, Any]] = {}
    for position, log in enumerate(logs):
        if not isinstance(log, dict):
            return None
        index = log.get("event")
        placed[index if isinstance(index, int) and not isinstance(index, bool) else position] = log
    if sorted(placed) != list(range(count)):
        return None
    verdicts = []
    for index in range(count):
        log = placed[index]
        codes, messages = error_details(log)
        messages += [redact(text) for text in strings(log.get("error_records")) if redact(text) not in messages]
        warnings = tuple(strings(log.get("warnings")) + strings(log.get("warning_records")))
        status = str(log.get("status") or "").upper()
        valid = not messages and not codes and status != "INVALID"
        verdicts.append(EventVerdict(valid, tuple(codes), tuple(messages), warnings))
    return verdicts


#: What the test-event tools read: the pixel, or for app events the Snap app (`get_test_event_logs` takes either).
TEST_EVENTS_ASSET = Lookup("pixelId (or snapAppId)", "pixel or app", "Events Manager")

CAPI_AUTH_ADVICE = (
    "Use a Conversions API token from Business Manager > Business Details > Conversions API Tokens, "
    "created in the organization that owns this pixel or app."
)


def encode_body(events: Sequence[bytes]) -> bytes:
    """`{"data": [...]}` from the events' own compact JSON (`PreparedEvent.body`): joined, never encoded again."""
    return b'{"data":[' + b",".join(events) + b"]}"


class ConversionsApi:
    """`/v3/{asset_id}/events` and its test-event tools. The token rides in the query string."""

    def __init__(self, transport: Transport, token: str, base_url: str) -> None:
        self._transport = transport
        self._params = {"access_token": token}
        self._base = base_url.rstrip("/")

    async def send(self, asset_id: str, events: Sequence[bytes], *, validate: bool = False) -> dict[str, Any]:
        """`events` are the events' compact JSON (`PreparedEvent.body`)."""
        suffix = "/events/validate" if validate else "/events"
        what = "Snap Conversions API validate" if validate else "Snap Conversions API send"
        body = encode_body(events)
        headers = {"Content-Type": "application/json"}
        return await self._call("POST", f"{quote(asset_id, safe='')}{suffix}", what, content=body, headers=headers)

    async def test_events(self, asset_id: str, kind: str) -> dict[str, Any]:
        """`kind` is `logs` (the last 24 hours of test events) or `stats`."""
        what = f"Snap test event {kind} of {asset_id}"
        path = f"{quote(asset_id, safe='')}/events/validate/{kind}"
        return await self._call("GET", path, what, lookup=TEST_EVENTS_ASSET)

    async def _call(
        self, method: str, path: str, what: str, *, lookup: Lookup | None = None, **options: Any
    ) -> dict[str, Any]:
        """`/v3/{path}` with the token in the query string; Snap's answer as data, or a Snap error."""
        url = f"{self._base}/v3/{path}"
        response = await snap_request(self._transport, method, url, what=what, params=self._params, **options)
        return raise_for_snap(response, what, advice=CAPI_AUTH_ADVICE, lookup=lookup)
