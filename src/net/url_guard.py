"""Which addresses a user's URL (`eventsUrl`, `webhookUrl`) may reach, checked at every redirect hop.

On the platform a run must not be turned against the network it runs in: a URL that resolves to a
private, loopback, link-local (the cloud metadata address) or otherwise non-public address is
refused before anything is sent to it. Locally, and where an explicit setting allows it (the
tests' loopback servers), every address is fine.

The check before each request names the host in its message, but it cannot be the guarantee: the
connection resolves the host again, and a name can answer a public address to the check and a private
one to the connection (DNS rebinding). So guarded connections go through `PublicOnlyBackend`, which
resolves once, checks, and connects to the very address it checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx

#: How many redirects a user's URL may take; each hop is checked like the first.
MAX_REDIRECTS = 5
#: Setting this environment variable to 1 lets a platform run reach private addresses (tests, own infrastructure).
ALLOW_PRIVATE_ENV = "SNAP_ACTOR_ALLOW_PRIVATE_URLS"

#: A host and port -> its addresses, as a DNS lookup answers them now (an `OSError` when it cannot).
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeUrlError(ValueError):
    """The URL points where this run may not go; the message says why, never the URL's query."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    """The event loop's getaddrinfo, in its order (IPv6 first where the system prefers it), without repeats."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as error:  # `a..b.com`, a label over 63 characters: no name IDNA can encode
        raise OSError(f"not a valid host name ({error})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True, slots=True)
class UrlGuard:
    """Awaited with each URL before a request goes to it (the first and every redirect)."""

    allow_private: bool
    #: Tests pass one that answers differently from one lookup to the next (DNS rebinding).
    resolve: Resolver = system_resolver

    async def __call__(self, url: httpx.URL) -> None:
        if url.scheme not in ("http", "https"):
            raise UnsafeUrlError(f"only http and https URLs are allowed, not {url.scheme or 'a relative URL'}")
        if self.allow_private:
            return
        try:
            await self.public_addresses(url.host, url.port or (443 if url.scheme == "https" else 80))
        except OSError:
            raise UnsafeUrlError(f"the host {url.host} could not be resolved") from None

    async def public_addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses (an IP address is its own), refused if any of them is not public."""
        try:
            addresses = [ipaddress.ip_address(host).compressed]
        except ValueError:
            addresses = await self.resolve(host, port)
        if not all(is_public(address) for address in addresses):
            raise UnsafeUrlError(f"the host {host} is a private, loopback or link-local address: runs may not reach it")
        return addresses

    def network_backend(self) -> httpcore.AsyncNetworkBackend | None:
        """What guarded connections connect with; None when every address is allowed (httpx's own)."""
        return None if self.allow_private else PublicOnlyBackend(self)


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for users' URLs: the host is resolved here, once, and the connection goes
    to an address that passed the guard. TLS is untouched: httpcore still calls `start_tls` with the URL's
    host, so the certificate is verified against the name, not the address."""

    def __init__(self, guard: UrlGuard, connect_with: httpcore.AsyncNetworkBackend | None = None) -> None:
        """`connect_with` opens the connection to the checked address (anyio's, as httpx's default; tests
        pass one that records it)."""
        self._guard = guard
        self._inner = connect_with or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """The first checked address that takes the connection. A lookup that fails or times out is a
        connection error (retried as before); an address that is not public is an `UnsafeUrlError`."""
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._guard.public_addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(f"{host} could not be resolved ({error})") from None
        failed: httpcore.ConnectError | httpcore.ConnectTimeout = httpcore.ConnectError(f"{host} has no address")
        # The next one when an address refuses, has no route or never answers (IPv6 routed but dropped on an
        # IPv4-only network): httpx's own transport would have tried the others too.
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failed = error
        raise failed

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
