"""Snap's hosts, from `SNAP_CAPI_BASE_URL`, `SNAP_ADS_API_BASE_URL` and `SNAP_AUTH_BASE_URL`."""

from __future__ import annotations

import os
from dataclasses import dataclass


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
