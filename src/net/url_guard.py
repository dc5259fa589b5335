"""Which addresses a user's URL (`eventsUrl`, `webhookUrl`) may reach, checked at every redirect hop.

On the platform a run must not be turned against the network it runs in: a URL that resolves to a
private, loopback, link-local (the cloud metadata address) or otherwise non-public address is
refused before anything is sent to it. Locally, and where an explicit setting allows it (the
tests' loopback servers), every address is fine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

#: How many redirects a user's URL may take; each hop is checked like the first.
MAX_REDIRECTS = 5
#: Setting this environment variable to 1 lets a platform run reach private addresses (tests, own infrastructure).
ALLOW_PRIVATE_ENV = "SNAP_ACTOR_ALLOW_PRIVATE_URLS"


class UnsafeUrlError(ValueError):
    """The URL points where this run may not go; the message says why, never the URL's query."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class UrlGuard:
    """Awaited with each URL before a request goes to it (the first and every redirect)."""

    allow_private: bool

    async def __call__(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https"):
            raise UnsafeUrlError(f"only http and https URLs are allowed, not {url.scheme or 'a relative URL'}")
        if self.allow_private:
            return
        host = url.host
        try:
            addresses = {ipaddress.ip_address(host).compressed}
        except ValueError:
            try:
                found = await asyncio.get_running_loop().getaddrinfo(host, url.port or 443, type=socket.SOCK_STREAM)
            except OSError:
                raise UnsafeUrlError(f"the host {host} could not be resolved") from None
            addresses = {str(info[4][0]) for info in found}
        if not all(is_public(address) for address in addresses):
            raise UnsafeUrlError(f"the host {host} is a private, loopback or link-local address: runs may not reach it")
