"""Users' URLs connect only to an address the guard checked: a name that answers a public address to the check
and a private one to the connection (DNS rebinding) never reaches the private one. In-process, against
loopback servers; the resolver and, where the checked address is public, the connecting backend are the
tests' own."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpcore
import httpx
import pytest
from loopback_http import loopback

from src.errors import ServiceUnavailableError, SourceError
from src.net.transport import PinnedTransport, RetryPolicy, Transport, tls_context
from src.net.url_guard import PublicOnlyBackend, UnsafeUrlError, UrlGuard
from src.results.webhook import post_results
from src.sources.files import url_events
from src.sources.mapping import FieldMapping

PUBLIC = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Rebinding:
    """Answers a public address to the first lookup and 127.0.0.1 to every later one (TTL 0)."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return [PUBLIC] if len(self.lookups) == 1 else ["127.0.0.1"]


class Fixed:
    """Answers the same addresses every time, or fails the lookups listed in `fail` (1-based)."""

    def __init__(self, *addresses: str, fail: Iterable[int] = ()) -> None:
        self.addresses = list(addresses)
        self.fail = set(fail)
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        if len(self.lookups) in self.fail:
            raise OSError("temporary failure in name resolution")
        return self.addresses


class Anything(BaseHTTPRequestHandler):
    """Answers any GET or POST with one event; every connection it is handed is recorded."""

    protocol_version = "HTTP/1.1"
    connections: list[str]

    def setup(self) -> None:
        self.connections.append(self.client_address[0])
        super().setup()

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        body = b'{"email": "a@x.com"}\n'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def handler() -> type[Anything]:
    return type("Handler", (Anything,), {"connections": []})


class Connects(httpcore.AsyncNetworkBackend):
    """Stands in for the network past the guard: records each connection (and the name TLS verifies) and
    answers `answer`; addresses in `refuse` refuse the connection."""

    def __init__(self, answer: bytes = OK, refuse: Iterable[str] = (), silent: Iterable[str] = ()) -> None:
        """`silent` addresses never answer: the connection times out."""
        self.answer = answer
        self.refuse = set(refuse)
        self.silent = set(silent)
        self.connects: list[tuple[str, int, float | None]] = []
        self.tls_names: list[str | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port, timeout))
        if host in self.refuse:
            raise httpcore.ConnectError("[Errno 101] Network is unreachable")
        if host in self.silent:
            raise httpcore.ConnectTimeout("timed out")
        return _Stream(self, [self.answer])

    async def sleep(self, seconds: float) -> None:
        pass


class _Stream(httpcore.AsyncMockStream):
    def __init__(self, backend: Connects, buffer: list[bytes]) -> None:
        super().__init__(buffer)
        self._backend = backend

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self._backend.tls_names.append(server_hostname)
        return self


def pinned(guard: UrlGuard, connects: Connects, retry: RetryPolicy | None = None) -> Transport:
    backend = PublicOnlyBackend(guard, connects)
    client = httpx.AsyncClient(transport=PinnedTransport(backend, httpx.Limits()), timeout=httpx.Timeout(30, connect=7))
    return Transport(client=client, url_guard=guard, retry=retry, sleep=no_wait)


def fetch(url: str, guard: UrlGuard, connects: Connects, retry: RetryPolicy | None = None) -> httpx.Response:
    """A guarded GET whose connections go through `connects` once the guard's backend has checked the address."""

    async def scenario() -> httpx.Response:
        async with pinned(guard, connects, retry) as transport:
            return await transport.request("GET", url, what="eventsUrl download")

    return asyncio.run(scenario())


async def no_wait(seconds: float) -> None:
    pass


# --- DNS rebinding -----------------------------------------------------------------------------------


def test_a_download_from_a_name_that_rebinds_to_loopback_is_refused_and_never_connects() -> None:
    served = handler()
    resolver = Rebinding()

    async def read(url: str) -> None:
        guard = UrlGuard(allow_private=False, resolve=resolver)
        async for _ in url_events(url, FieldMapping(None), url_guard=guard, retry=RetryPolicy(max_retries=2)):
            pass

    with loopback(served) as base, pytest.raises(SourceError) as refused:
        asyncio.run(read(base.replace("127.0.0.1", "export.rebind.test") + "/events.jsonl"))
    assert served.connections == []
    assert resolver.lookups == ["export.rebind.test", "export.rebind.test"]  # the check, then the connection
    # the message a name answering 127.0.0.1 from the start gets from the check before the request
    assert str(refused.value) == (
        "eventsUrl: eventsUrl download: the host export.rebind.test is a private, loopback or link-local address: "
        "runs may not reach it"
    )


def test_a_webhook_to_a_name_that_rebinds_to_loopback_is_not_delivered_and_never_connects() -> None:
    served = handler()

    async def post(url: str) -> dict[str, Any]:
        guard = UrlGuard(allow_private=False, resolve=Rebinding())
        return await post_results(url, {"succeeded": True}, max_retries=2, url_guard=guard)

    with loopback(served) as base:
        outcome = asyncio.run(post(base.replace("127.0.0.1", "hooks.rebind.test") + "/hook?key=secret"))
    assert served.connections == []
    assert outcome == {
        "delivered": False,
        "statusCode": None,
        "error": "webhook POST: the host hooks.rebind.test is a private, loopback or link-local address: "
        "runs may not reach it",
    }


def test_an_answer_with_any_private_address_is_refused_before_connecting() -> None:
    connects = Connects()
    guard = UrlGuard(allow_private=False, resolve=Fixed(PUBLIC))
    mixed = UrlGuard(allow_private=False, resolve=Fixed(PUBLIC, "10.0.0.5"))
    backend = PublicOnlyBackend(mixed, connects)
    client = httpx.AsyncClient(transport=PinnedTransport(backend, httpx.Limits()))

    async def scenario() -> None:
        async with Transport(client=client, url_guard=guard) as transport:  # the check before: public
            await transport.request("GET", "http://export.example/e.jsonl", what="eventsUrl download")

    with pytest.raises(UnsafeUrlError, match=r"^eventsUrl download: the host export\.example is a private"):
        asyncio.run(scenario())
    assert connects.connects == []


# --- the checked address is the one connected to -------------------------------------------------------


def test_a_public_name_connects_to_exactly_the_address_that_was_checked() -> None:
    resolver = Fixed(PUBLIC)
    connects = Connects()
    response = fetch("http://export.example/e.jsonl", UrlGuard(allow_private=False, resolve=resolver), connects)
    assert response.status_code == 200 and response.text == "ok"
    assert resolver.lookups == [("export.example", 80), ("export.example", 80)]  # the check, the connection
    assert connects.connects == [(PUBLIC, 80, 7.0)]  # with the client's connect timeout


def test_an_address_that_cannot_be_reached_gives_way_to_the_next_checked_one() -> None:
    connects = Connects(refuse=[PUBLIC_V6])
    guard = UrlGuard(allow_private=False, resolve=Fixed(PUBLIC_V6, PUBLIC))
    response = fetch("http://export.example/", guard, connects)
    assert response.status_code == 200
    assert [host for host, _, _ in connects.connects] == [PUBLIC_V6, PUBLIC]


def test_an_address_that_never_answers_gives_way_to_the_next_checked_one() -> None:
    """IPv6 routed but dropped (an IPv4-only network): the connection times out there and goes to IPv4."""
    connects = Connects(silent=[PUBLIC_V6])
    guard = UrlGuard(allow_private=False, resolve=Fixed(PUBLIC_V6, PUBLIC))
    response = fetch("http://export.example/", guard, connects, RetryPolicy(max_retries=0))
    assert response.status_code == 200
    assert [host for host, _, _ in connects.connects] == [PUBLIC_V6, PUBLIC]


def test_a_webhook_to_a_host_name_that_cannot_be_encoded_is_not_delivered_and_the_run_goes_on() -> None:
    """`a..b.example` passes the input's URL check; the lookup refuses it with a UnicodeError, not an OSError."""

    async def post(url: str) -> dict[str, Any]:
        return await post_results(url, {"succeeded": True}, max_retries=0, url_guard=UrlGuard(allow_private=False))

    for url in ("https://hooks..example.com/x", "https://" + "a" * 64 + ".example.com/x"):
        outcome = asyncio.run(post(url))
        assert outcome["delivered"] is False and "could not be resolved" in outcome["error"], outcome


def test_https_verifies_the_certificate_against_the_url_s_host_not_the_address() -> None:
    connects = Connects()
    response = fetch("https://export.example/e.jsonl", UrlGuard(allow_private=False, resolve=Fixed(PUBLIC)), connects)
    assert response.status_code == 200
    assert connects.connects == [(PUBLIC, 443, 7.0)]
    assert connects.tls_names == ["export.example"]


def test_the_check_and_the_connection_resolve_with_the_scheme_s_default_port() -> None:
    resolver = Fixed(PUBLIC)
    fetch("https://export.example/e.jsonl", UrlGuard(allow_private=False, resolve=resolver), Connects())
    assert resolver.lookups == [("export.example", 443), ("export.example", 443)]


def test_a_lookup_that_fails_at_connect_time_is_a_connection_error_and_retried() -> None:
    resolver = Fixed(PUBLIC, fail=[2])  # the check resolves, the first connection's lookup does not
    retry = RetryPolicy(max_retries=1)
    response = fetch("http://export.example/", UrlGuard(allow_private=False, resolve=resolver), Connects(), retry)
    assert response.status_code == 200
    assert len(resolver.lookups) == 3


def test_a_lookup_that_outlasts_the_connect_timeout_is_a_connect_timeout_and_retried() -> None:
    class Slow(Fixed):
        async def __call__(self, host: str, port: int) -> list[str]:
            if len(self.lookups) == 1:  # the connection's first lookup hangs
                self.lookups.append((host, port))
                await asyncio.sleep(5)
            return await super().__call__(host, port)

    resolver = Slow(PUBLIC)
    guard = UrlGuard(allow_private=False, resolve=resolver)
    connects = Connects()
    backend = PublicOnlyBackend(guard, connects)
    timeout = httpx.Timeout(5, connect=0.05)
    client = httpx.AsyncClient(transport=PinnedTransport(backend, httpx.Limits()), timeout=timeout)
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> httpx.Response:
        retry = RetryPolicy(max_retries=1)
        async with Transport(client=client, url_guard=guard, retry=retry, sleep=wait) as transport:
            return await transport.request("GET", "http://export.example/", what="eventsUrl download")

    response = asyncio.run(scenario())
    assert response.status_code == 200
    assert len(resolver.lookups) == 3 and len(waits) == 1  # the check, the lookup that timed out, the retry's
    assert connects.connects == [(PUBLIC, 80, 0.05)]


def test_a_name_with_no_address_is_a_connection_error_naming_the_host() -> None:
    connects = Connects()
    with pytest.raises(ServiceUnavailableError) as failed:
        fetch("http://export.example/", UrlGuard(allow_private=False, resolve=Fixed()), connects)
    assert str(failed.value) == (
        "eventsUrl download failed after 6 attempts: ConnectError (export.example has no address)"
    )
    assert connects.connects == []


def test_when_every_checked_address_refuses_the_error_is_the_last_refusal() -> None:
    connects = Connects(refuse=[PUBLIC_V6, PUBLIC])
    with pytest.raises(ServiceUnavailableError) as failed:
        fetch("http://export.example/", UrlGuard(allow_private=False, resolve=Fixed(PUBLIC_V6, PUBLIC)), connects)
    assert str(failed.value).endswith("attempts: ConnectError ([Errno 101] Network is unreachable)")
    assert [host for host, _, _ in connects.connects][:2] == [PUBLIC_V6, PUBLIC]


def test_a_body_cut_short_is_an_httpx_error_the_download_resumes_on() -> None:
    connects = Connects(answer=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    guard = UrlGuard(allow_private=False, resolve=Fixed(PUBLIC))

    async def scenario() -> None:
        async with pinned(guard, connects) as transport, transport.stream("http://export.example/", what="x") as body:
            await body.aread()

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(scenario())


def test_the_pinned_transport_carries_real_requests_over_sockets() -> None:
    """Its plumbing over anyio's backend, on loopback (the guard's check aside): a POST body goes out, an
    answer comes back read and streamed, and one kept-alive connection serves both."""
    served = handler()

    async def scenario(base: str) -> tuple[httpx.Response, bytes]:
        client = httpx.AsyncClient(transport=PinnedTransport(httpcore.AnyIOBackend(), httpx.Limits()))
        async with Transport(client=client) as transport:
            posted = await transport.request("POST", f"{base}/hook", what="webhook POST", json={"a": 1})
            async with transport.stream(f"{base}/e.jsonl", what="eventsUrl download") as response:
                return posted, await response.aread()

    with loopback(served) as base:
        posted, streamed = asyncio.run(scenario(base))
    assert posted.status_code == 200 and posted.text == streamed.decode() == '{"email": "a@x.com"}\n'
    assert served.connections == ["127.0.0.1"]


def test_closing_a_pinned_client_closes_its_kept_alive_connections() -> None:
    served = handler()

    async def scenario(base: str) -> tuple[int, int]:
        pool = PinnedTransport(httpcore.AnyIOBackend(), httpx.Limits())
        async with Transport(client=httpx.AsyncClient(transport=pool)) as transport:
            await transport.request("GET", f"{base}/e.jsonl", what="eventsUrl download")
            open_before = len(pool._pool.connections)
        return open_before, len(pool._pool.connections)

    with loopback(served) as base:
        assert asyncio.run(scenario(base)) == (1, 0)


def test_every_client_verifies_certificates_and_host_names_with_the_one_tls_context() -> None:
    context = tls_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded

    async def contexts() -> list[object]:
        found = []
        for transport in (Transport(), Transport(url_guard=UrlGuard(allow_private=False))):
            async with transport:
                found.append(transport._client._transport._pool._ssl_context)  # type: ignore[attr-defined]
        return found

    assert asyncio.run(contexts()) == [context, context]


def test_a_guarded_transport_pins_with_the_same_limits_timeouts_and_tls_context() -> None:
    transport = Transport(max_connections=2, timeout=120.0, url_guard=UrlGuard(allow_private=False))
    client = transport._client
    pinned_transport = client._transport
    assert isinstance(pinned_transport, PinnedTransport)
    pool = pinned_transport._pool
    assert isinstance(pool._network_backend, PublicOnlyBackend)
    assert pool._max_connections == 2 and pool._ssl_context is tls_context()
    assert client.timeout == httpx.Timeout(120.0, connect=15.0)
    snaps = Transport()  # Snap's hosts: httpx's own transport
    assert not isinstance(snaps._client._transport, PinnedTransport)

    async def close() -> None:
        await transport.aclose()
        await snaps.aclose()

    asyncio.run(close())


# --- where every address is allowed ------------------------------------------------------------------


def test_with_private_addresses_allowed_a_loopback_server_is_reached_by_httpx_itself() -> None:
    served = handler()
    resolver = Fixed("127.0.0.1")
    guard = UrlGuard(allow_private=True, resolve=resolver)
    assert guard.network_backend() is None

    async def scenario(url: str) -> httpx.Response:
        async with Transport(url_guard=guard) as transport:
            return await transport.request("POST", url, what="webhook POST", json={})

    with loopback(served) as base:
        response = asyncio.run(scenario(base.replace("127.0.0.1", "localhost") + "/hook"))
    assert response.status_code == 200 and served.connections
    assert resolver.lookups == []
