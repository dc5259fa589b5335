"""Snap's Marketing API pixel endpoints (Bearer token) and OAuth refresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ..errors import (
    SnapAuthError,
    SnapError,
    SnapNotFoundError,
)
from ..net.transport import Transport, hide, json_object
from .answers import Lookup, raise_for_snap, snap_reason, snap_request
from .endpoints import Endpoints

SIGNAL_READINESS_LIMITS = "Snap may also limit its Signal Readiness API to approved partners and advertisers."
SIGNAL_READINESS_AUTH_ADVICE = (
    "Snap's Signal Readiness API takes the Conversions API token (or a Marketing API OAuth token) of an "
    f"organization that can see this pixel. {SIGNAL_READINESS_LIMITS}"
)
MARKETING_AUTH_ADVICE = (
    "list_pixels and get_pixel_info need an OAuth access token with the snapchat-marketing-api scope; "
    "tokens expire after about 30 minutes, so give refreshToken, clientId and clientSecret to refresh it."
)
AD_ACCOUNT = Lookup("adAccountId", "ad account", "Ads Manager")
PIXEL = Lookup("pixelId", "pixel", "Events Manager")
PIXEL_QUALITY = Lookup("pixelId", "pixel", "Events Manager", forbidden_note=SIGNAL_READINESS_LIMITS)


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
            body = await self._get(url, params, f"Snap Marketing API pixels of ad account {ad_account_id}", AD_ACCOUNT)
            for item in body.get("pixels") or []:
                if isinstance(item, dict) and isinstance(item.get("pixel"), dict):
                    yield item["pixel"]
            url, params = self._next_page(body), None

    async def get_pixel(self, pixel_id: str) -> dict[str, Any]:
        what = f"Snap Marketing API pixel {pixel_id}"
        body = await self._get(f"{self._endpoints.ads}/v1/pixels/{quote(pixel_id, safe='')}", None, what, PIXEL)
        for item in body.get("pixels") or []:
            if isinstance(item, dict) and isinstance(item.get("pixel"), dict):
                return dict(item["pixel"])
        raise SnapNotFoundError(f"{what}: not found (Snap returned no pixel). {PIXEL.check()}.", status=404)

    async def event_quality_scores(self, pixel_id: str) -> dict[str, Any]:
        """Snap's Signal Readiness answer for a pixel (`quality_scores` reads it); free, nothing is sent."""
        what = f"Snap Signal Readiness API for pixel {pixel_id}"
        url = f"{self._endpoints.ads}/v1/pixels/{quote(pixel_id, safe='')}/event_quality_scores"
        return await self._get(url, None, what, PIXEL_QUALITY, advice=SIGNAL_READINESS_AUTH_ADVICE)

    def _next_page(self, body: dict[str, Any]) -> str | None:
        """The next page on our own Ads API host: the token is never sent to a host Snap names."""
        link = (body.get("paging") or {}).get("next_link")
        if not link:
            return None
        parts = urlsplit(str(link))
        return f"{self._endpoints.ads}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    async def _get(
        self,
        url: str,
        params: dict[str, str] | None,
        what: str,
        lookup: Lookup,
        *,
        advice: str = MARKETING_AUTH_ADVICE,
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
        body = raise_for_snap(response, what, advice=advice, lookup=lookup)
        if body.get("request_status") not in (None, "SUCCESS"):
            raise SnapError(f"{what}: {snap_reason(body, response)}")
        return body

    async def refresh(self) -> None:
        """Trade the refresh token for a new access token at Snap's OAuth endpoint."""
        credentials = self._credentials
        if not credentials.can_refresh:
            raise SnapAuthError("No access token, and no refreshToken, clientId and clientSecret to get one.")
        what = "Snap OAuth token refresh"
        response = await snap_request(
            self._transport,
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
        if response.status_code in (400, 401):
            raise SnapAuthError(_refresh_refused(what, response), status=response.status_code)
        body = raise_for_snap(response, what, advice=MARKETING_AUTH_ADVICE)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SnapAuthError(f"{what}: Snap returned no access token.")
        credentials.access_token = token
        hide(token)


def _refresh_refused(what: str, response: httpx.Response) -> str:
    """Snap's OAuth refusal (RFC 6749 5.2: 400, or 401 for the client) named by the field to fix: `invalid_client`
    is clientId / clientSecret, `invalid_grant` the refresh token; the access token is never the problem here."""
    body = json_object(response) or {}
    reason = snap_reason(body, response)
    error = body.get("error")
    if error == "invalid_client":
        return (
            f"{what}: Snap refused the OAuth client (HTTP {response.status_code}: {reason}). Check clientId and "
            "clientSecret: they must be those of the Snap OAuth app the refresh token was issued to."
        )
    if error == "invalid_grant":
        return (
            f"{what}: Snap refused the refresh token (HTTP {response.status_code}: {reason}). Check refreshToken: "
            "it may have been revoked or issued to another OAuth app (clientId); get a new one through Snap's "
            "OAuth flow."
        )
    return (
        f"{what}: Snap refused the refresh (HTTP {response.status_code}: {reason}). Check refreshToken, clientId "
        "and clientSecret."
    )
