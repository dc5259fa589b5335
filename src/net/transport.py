"""The one HTTP wrapper: retries with backoff, Retry-After, and no token in any message.

Every request the actor makes (Snap's Conversions API, its Marketing API, OAuth, the user's
webhook) goes through `Transport.request`, so retry policy and redaction live in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from ..errors import ServiceUnavailableError
from .url_guard import MAX_REDIRECTS, UnsafeUrlError, UrlGuard

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_TOKEN_IN_TEXT = re.compile(r"(access_token|refresh_token|client_secret|token|signature)=[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")

#: Retries show in the run log (`main.py` routes the `src` loggers there and quiets httpx, whose INFO lines
#: carry request URLs, and so the Conversions API token).
_log = logging.getLogger(__name__)


class RunStoppingError(Exception):
    """A retry's wait was cut short because the run is stopping (abort, SIGTERM): the request is left without an
    answer. It is no `ServiceUnavailableError`: the host did not fail, the run ended first."""


#: The run's stop, while a task runs (`stopping_ends_waits`); None: waits are never cut short.
_stop: ContextVar[asyncio.Event | None] = ContextVar("transport_stop", default=None)


@contextmanager
def stopping_ends_waits(stop: asyncio.Event) -> Iterator[None]:
    """Within it (and in the tasks started within it), once `stop` is set every retry wait and rate-limit wait ends
    at once with `RunStoppingError`: a batch waiting out Snap's Retry-After (up to 120 s) outlasted the platform's
    graceful abort (about 30 s), which then killed the run before it saved OUTPUT."""
    token = _stop.set(stop)
    try:
        yield
    finally:
        _stop.reset(token)


async def sleep_unless_stopping(delay: float) -> None:
    """`asyncio.sleep`, ended by the run's stop (`stopping_ends_waits`) with `RunStoppingError`."""
    stop = _stop.get()
    if stop is None:
        await asyncio.sleep(delay)
        return
    if not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
    if stop.is_set():
        raise RunStoppingError("the run is stopping: not retried")


#: The run's own secrets (its tokens and OAuth client secret, a token a refresh gave it): `redact` takes them out
#: of any text, whatever its shape, should a service quote one back in an error ("refresh_token X is invalid").
#: One set per run (`keeping_secrets`), shared by the run's tasks; none outside a run.
_SECRETS: ContextVar[set[str] | None] = ContextVar("run_secrets", default=None)
#: Shorter values are no secret (and replacing them would mangle ordinary words).
_SECRET_CHARS = 6


@contextmanager
def keeping_secrets() -> Iterator[None]:
    """The run's scope for `hide`: what is hidden in it is taken out of every text `redact` is given in it."""
    scope = _SECRETS.set(set())
    try:
        yield
    finally:
        _SECRETS.reset(scope)


def hide(secret: str) -> None:
    """Have `redact` take `secret` out of every text for the rest of the run."""
    if (secrets := _SECRETS.get()) is not None and len(secret) >= _SECRET_CHARS:
        secrets.add(secret)


def error_named(error: BaseException, limit: int = 200) -> str:
    """An error for a message: its type, and its text's first line redacted and cut (`Type: text`, or `Type`)."""
    detail = redact(str(error)).split("\n", 1)[0][:limit]
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def redact(text: str) -> str:
    """Text with the run's own secrets (`hide`), and any token in a query string or a Bearer header, as `***`."""
    for secret in _SECRETS.get() or ():
        if secret in text:
            text = text.replace(secret, "***")
    return _BEARER.sub(r"\1***", _TOKEN_IN_TEXT.sub(r"\1=***", text))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Snap's Retry-After when it sends one (capped), else exponential backoff with jitter."""
        if response is not None and (header := response.headers.get("Retry-After")):
            seconds = _retry_after_seconds(header)
            if seconds is not None:
                return float(min(seconds, self.retry_after_max))
        ceiling: float = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retry_after_seconds(header: str) -> float | None:
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class RateLimiter:
    """Spaces request attempts at least `1 / rate` seconds apart, retries included, with no burst.

    Concurrent batches share it, so `maxConcurrency` decides how many requests overlap and this
    decides how many start per second: the two knobs Snap's guidance is about.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = sleep_unless_stopping,
    ) -> None:
        """`clock` and `sleep` are the real ones; tests pass their own to see the waits."""
        self._interval = 1.0 / rate
        self._next = 0.0
        self._clock = clock
        self._sleep = sleep

    async def wait(self) -> None:
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await self._sleep(start - now)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The run's one TLS context, as httpx would make it (certifi's CA bundle, `SSL_CERT_FILE` honoured): making
    one loads the whole CA bundle, about 15 ms, and a run opens a client for Snap, for its score, for the file."""
    return httpx.create_ssl_context()


#: httpcore's errors as the httpx ones callers catch, the most specific first (the pairs httpx's own transport maps).
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for core, mapped in _HTTPX_ERRORS:
            if isinstance(error, core):
                raise mapped(str(error)) from error
        raise


class PinnedTransport(httpx.AsyncBaseTransport):
    """httpx's connection pool with a network backend of our choosing (users' URLs: the guard's).

    httpx 0.28's `AsyncHTTPTransport` builds its httpcore pool itself and takes no backend, so this is its
    request and response plumbing over a pool made here, through the public APIs of both libraries.
    """

    def __init__(self, network_backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=network_backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            request.method,
            httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            response.status, headers=response.headers, stream=_Body(response), extensions=response.extensions
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Body(httpx.AsyncByteStream):
    """A pooled response body whose network errors read as httpx's (a download resumes on `httpx.ReadError`)."""

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._response.aiter_stream():
                yield part

    async def aclose(self) -> None:
        with _as_httpx_errors():
            await self._response.aclose()


class Transport:
    """An `httpx.AsyncClient` that retries what is worth retrying and describes failures safely."""

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        max_connections: int = 32,
        client: httpx.AsyncClient | None = None,
        max_requests_per_second: float | None = None,
        url_guard: UrlGuard | None = None,
        sleep: Callable[[float], Awaitable[None]] = sleep_unless_stopping,
    ) -> None:
        """`url_guard` is for users' URLs: it checks the first URL and follows up to `MAX_REDIRECTS`
        redirects, checking each hop, and its network backend connects only to addresses it checked;
        without it (Snap's own hosts) a redirect is returned as is.
        `sleep` waits between retries and for the rate limit; by default the run's stop ends it
        (`stopping_ends_waits`); tests pass one that records the waits."""
        self.retry = retry or RetryPolicy()
        self._guard = url_guard
        self._sleep = sleep
        self._client = client or _new_client(timeout, max_connections, url_guard)
        self._limiter = RateLimiter(max_requests_per_second, sleep=sleep) if max_requests_per_second else None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send, retrying 408/425/429/5xx, time-outs and dropped connections up to `max_retries` times.

        Any other answer, 4xx included, is returned to the caller to interpret. `what` names the
        request in messages ("Snap Conversions API send"); the URL never appears in them.
        """
        request = self._client.build_request(
            method, url, params=params, json=json, content=content, data=data, headers=headers
        )
        return await self._send(request, what=what, stream=False)

    @asynccontextmanager
    async def stream(
        self, url: str, *, what: str, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """GET with the same retries, the body left unread: for files too big to hold in memory."""
        response = await self._send(self._client.build_request("GET", url, headers=headers), what=what, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def _send(self, request: httpx.Request, *, what: str, stream: bool) -> httpx.Response:
        attempt = hops = 0
        guard = self._guard
        if guard is not None:
            await _check(guard, request.url, what)
        while True:
            if self._limiter is not None:
                await self._limiter.wait()
            response: httpx.Response | None = None
            try:
                response = await self._client.send(request, stream=stream)
            except UnsafeUrlError as error:  # the address the guard's backend was about to connect to
                raise UnsafeUrlError(f"{what}: {error}") from None
            except (httpx.TimeoutException, httpx.TransportError) as error:
                problem = f"{type(error).__name__} ({redact(str(error)) or 'connection failed'})"
            else:
                if guard is not None and response.next_request is not None:
                    await response.aclose()
                    hops += 1
                    if hops > MAX_REDIRECTS:
                        raise UnsafeUrlError(f"{what}: more than {MAX_REDIRECTS} redirects")
                    request = response.next_request
                    await _check(guard, request.url, what)
                    continue
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                if stream:
                    await response.aclose()
                problem = f"HTTP {response.status_code}"
            if attempt >= self.retry.max_retries:
                raise ServiceUnavailableError(
                    f"{what} failed after {attempt + 1} attempts: {problem}",
                    status=response.status_code if response is not None else None,
                )
            delay = self.retry.delay(attempt, response)
            attempt += 1
            _log.warning(f"{what}: {problem}; retry {attempt} of {self.retry.max_retries} in {delay:.1f} s")
            await self._sleep(delay)


def _new_client(timeout: float, max_connections: int, url_guard: UrlGuard | None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    backend = url_guard.network_backend() if url_guard is not None else None
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=15.0),
        limits=limits,
        headers={"User-Agent": "apify-snapchat-conversions-actor/1.0"},
        verify=tls_context(),
        # A pinned connection goes straight to the checked address; an HTTP(S)_PROXY from the environment (which
        # httpx leaves out once given a transport) would resolve the host again, so guarded clients go direct.
        transport=PinnedTransport(backend, limits) if backend is not None else None,
    )


async def _check(guard: UrlGuard, url: httpx.URL, what: str) -> None:
    try:
        await guard(url)
    except UnsafeUrlError as error:
        raise UnsafeUrlError(f"{what}: {error}") from None


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is none (an HTML page from a proxy, an empty body)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
