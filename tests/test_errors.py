"""Errors are grouped by layer: a host that never answered is Snap's error only when the host is Snap."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from src.errors import ServiceUnavailableError, SnapError, SnapUnavailableError
from src.snap.answers import snap_request


def test_transport_failure_is_not_a_snap_error() -> None:
    """A failing eventsUrl or webhook must not be caught by code that handles Snap's errors."""
    assert not issubclass(ServiceUnavailableError, SnapError)
    assert issubclass(SnapUnavailableError, SnapError)


class _DownTransport:
    async def request(self, method: str, url: str, **options: Any) -> Any:
        raise ServiceUnavailableError(f"{options['what']} failed after 3 attempts: HTTP 503", status=503)


def test_snap_request_reports_an_unreachable_snap_as_a_snap_error() -> None:
    with pytest.raises(SnapUnavailableError, match="Snap send failed after 3 attempts") as caught:
        asyncio.run(snap_request(_DownTransport(), "POST", "https://tr.snapchat.com/v3/x/events", what="Snap send"))  # type: ignore[arg-type]
    assert caught.value.status == 503
