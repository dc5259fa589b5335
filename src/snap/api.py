"""Snap's Conversions API v3, its Marketing API pixel endpoints, and OAuth refresh.

Thin typed calls over `Transport`: each turns Snap's answers into data or into one of the
errors in `errors`, with messages that say what to do and never carry the token.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from ..errors import (
    ServiceUnavailableError,
    SnapAuthError,
    SnapError,
    SnapNotFoundError,
    SnapRejectedError,
    SnapUnavailableError,
)
from ..net.transport import Transport, redact, response_json


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Snap's hosts; the environment can point them elsewhere (tests use a loopback Snap)."""

    capi: str = "https://tr.snapchat.com"
    ads: str = "https://adsapi.snapchat.com"
    auth: str = "https://accounts.snapchat.com"

    @classmethod
    def from_env(cls) -> Endpoints:
        defaults = cls()
        return cls(
            capi=os.environ.get("SNAP_CAPI_BASE_URL", defaults.capi).rstrip("/"),
            ads=os.environ.get("SNAP_ADS_API_BASE_URL", defaults.ads).rstrip("/"),
            auth=os.environ.get("SNAP_AUTH_BASE_URL", defaults.auth).rstrip("/"),
        )


def _strings(value: object) -> list[str]:
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
            codes += _strings(errors.get("codes"))
            messages += _strings(errors.get("error_msgs"))
        else:
            messages += [f"{key}: {value}" for key, value in errors.items()]
    elif isinstance(errors, list):
        messages += _strings(errors)
    messages += _strings(body.get("error_msgs"))
    codes += _strings(body.get("codes"))
    return list(dict.fromkeys(codes)), list(dict.fromkeys(redact(message) for message in messages))


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
        messages += [redact(text) for text in _strings(log.get("error_records")) if redact(text) not in messages]
        warnings = tuple(_strings(log.get("warnings")) + _strings(log.get("warning_records")))
        status = str(log.get("status") or "").upper()
        valid = not messages and not codes and status != "INVALID"
        verdicts.append(EventVerdict(valid, tuple(codes), tuple(messages), warnings))
    return verdicts


def _reason(body: dict[str, Any], response: httpx.Response) -> str:
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
        raise SnapUnavailableError(str(error), status=error.status) from None


def raise_for_snap(response: httpx.Response, what: str, *, advice: str) -> dict[str, Any]:
    """The JSON body of a success, or the matching `SnapError` for a failure."""
    body = response_json(response)
    status = response.status_code
    if 200 <= status < 300:
        return body
    reason = _reason(body, response)
    if status in (401, 403):
        raise SnapAuthError(f"{what}: Snap refused the access token (HTTP {status}: {reason}). {advice}", status=status)
    if status == 404:
        raise SnapNotFoundError(f"{what}: not found (HTTP 404: {reason})", status=status)
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


CAPI_AUTH_ADVICE = (
    "Use a Conversions API token from Business Manager > Business Details > Conversions API Tokens, "
    "created in the organization that owns this pixel or app."
)
SIGNAL_READINESS_AUTH_ADVICE = (
    "Snap's Signal Readiness API takes the Conversions API token (or a Marketing API OAuth token) of an "
    "organization that can see this pixel; Snap may also limit it to approved partners and advertisers."
)
MARKETING_AUTH_ADVICE = (
    "list_pixels and get_pixel_info need an OAuth access token with the snapchat-marketing-api scope; "
    "tokens expire after about 30 minutes, so give refreshToken, clientId and clientSecret to refresh it."
)


def encode_body(events: Sequence[dict[str, Any]]) -> bytes:
    """`{"data": [...]}` as compact UTF-8 JSON. orjson is several times faster than `json` on a 2,000-event
    body; what it cannot encode (integers beyond 64 bits) goes through `json`."""
    try:
        return orjson.dumps({"data": list(events)})
    except orjson.JSONEncodeError:
        return json.dumps({"data": list(events)}, separators=(",", ":"), ensure_ascii=False).encode()


class ConversionsApi:
    """`/v3/{asset_id}/events` and its test-event tools. The token rides in the query string."""

    def __init__(self, transport: Transport, token: str, base_url: str) -> None:
        self._transport = transport
        self._params = {"access_token": token}
        self._base = base_url.rstrip("/")

    async def send(self, asset_id: str, events: Sequence[dict[str, Any]], *, validate: bool = False) -> dict[str, Any]:
        suffix = "/events/validate" if validate else "/events"
        what = "Snap Conversions API validate" if validate else "Snap Conversions API send"
        body = encode_body(events)
        response = await snap_request(self._transport,
            "POST",
            f"{self._base}/v3/{quote(asset_id, safe='')}{suffix}",
            what=what,
            params=self._params,
            content=body,
            headers={"Content-Type": "application/json"},
        )
        return raise_for_snap(response, what, advice=CAPI_AUTH_ADVICE)

    async def test_events(self, asset_id: str, kind: str) -> dict[str, Any]:
        """`kind` is `logs` (the last 24 hours of test events) or `stats`."""
        what = f"Snap test event {kind}"
        response = await snap_request(self._transport,
            "GET",
            f"{self._base}/v3/{quote(asset_id, safe='')}/events/validate/{kind}",
            what=what,
            params=self._params,
        )
        return raise_for_snap(response, what, advice=CAPI_AUTH_ADVICE)


@dataclass(slots=True)
class OAuthCredentials:
    """An access token, and what it takes to get a new one when it expires."""

    access_token: str | None
    refresh_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    @property
    def can_refresh(self) -> bool:
        return bool(self.refresh_token and self.client_id and self.client_secret)


class MarketingApi:
    """The Marketing API's pixel endpoints, with a Bearer token refreshed once on a 401."""

    PAGE_SIZE = 1000

    def __init__(self, transport: Transport, credentials: OAuthCredentials, endpoints: Endpoints) -> None:
        self._transport = transport
        self._credentials = credentials
        self._endpoints = endpoints

    async def iter_pixels(self, ad_account_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every pixel of the ad account, following `paging.next_link` to the end."""
        url: str | None = f"{self._endpoints.ads}/v1/adaccounts/{quote(ad_account_id, safe='')}/pixels"
        params: dict[str, str] | None = {"limit": str(self.PAGE_SIZE)}
        while url is not None:
            body = await self._get(url, params, f"Snap Marketing API pixels of ad account {ad_account_id}")
            for item in body.get("pixels") or []:
                if isinstance(item, dict) and isinstance(item.get("pixel"), dict):
                    yield item["pixel"]
            url, params = self._next_page(body), None

    async def get_pixel(self, pixel_id: str) -> dict[str, Any]:
        what = f"Snap Marketing API pixel {pixel_id}"
        body = await self._get(f"{self._endpoints.ads}/v1/pixels/{quote(pixel_id, safe='')}", None, what)
        for item in body.get("pixels") or []:
            if isinstance(item, dict) and isinstance(item.get("pixel"), dict):
                return dict(item["pixel"])
        raise SnapNotFoundError(f"{what}: not found (Snap returned no pixel)", status=404)

    async def event_quality_scores(self, pixel_id: str) -> dict[str, Any]:
        """Snap's Signal Readiness answer for a pixel (`quality_scores` reads it); free, nothing is sent."""
        what = f"Snap Signal Readiness API for pixel {pixel_id}"
        url = f"{self._endpoints.ads}/v1/pixels/{quote(pixel_id, safe='')}/event_quality_scores"
        return await self._get(url, None, what, advice=SIGNAL_READINESS_AUTH_ADVICE)

    def _next_page(self, body: dict[str, Any]) -> str | None:
        """The next page on our own Ads API host: the token is never sent to a host Snap names."""
        link = (body.get("paging") or {}).get("next_link")
        if not link:
            return None
        parts = urlsplit(str(link))
        return f"{self._endpoints.ads}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    async def _get(
        self, url: str, params: dict[str, str] | None, what: str, *, advice: str = MARKETING_AUTH_ADVICE
    ) -> dict[str, Any]:
        if self._credentials.access_token is None:
            await self.refresh()
        for attempt in range(2):
            response = await snap_request(self._transport,
                "GET", url, what=what, params=params,
                headers={"Authorization": f"Bearer {self._credentials.access_token}"},
            )  # fmt: skip
            if response.status_code == 401 and attempt == 0 and self._credentials.can_refresh:
                await self.refresh()
                continue
            break
        body = raise_for_snap(response, what, advice=advice)
        if body.get("request_status") not in (None, "SUCCESS"):
            raise SnapError(f"{what}: {_reason(body, response)}")
        return body

    async def refresh(self) -> None:
        """Trade the refresh token for a new access token at Snap's OAuth endpoint."""
        credentials = self._credentials
        if not credentials.can_refresh:
            raise SnapAuthError("No access token, and no refreshToken, clientId and clientSecret to get one.")
        what = "Snap OAuth token refresh"
        response = await snap_request(self._transport,
            "POST",
            f"{self._endpoints.auth}/login/oauth2/access_token",
            what=what,
            data={
                "grant_type": "refresh_token",
                "client_id": credentials.client_id or "",
                "client_secret": credentials.client_secret or "",
                "refresh_token": credentials.refresh_token or "",
            },
        )
        if response.status_code == 400:
            raise SnapAuthError(
                f"{what}: Snap refused the refresh token ({_reason(response_json(response), response)})."
            )
        body = raise_for_snap(response, what, advice=MARKETING_AUTH_ADVICE)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SnapAuthError(f"{what}: Snap returned no access token.")
        credentials.access_token = token
