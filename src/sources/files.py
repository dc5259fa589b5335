"""A CSV / JSON Lines / JSON array file at a URL (`eventsUrl`), streamed: download (resumed when it breaks
off), gunzip and UTF-8 decoding, and a watch on its size and progress; `parsers` turns the text into events.
"""

from __future__ import annotations

import codecs
import logging
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import ServiceUnavailableError, SourceError
from ..events.shape import SourceEvent
from ..net.transport import RetryPolicy, Transport, sleep_unless_stopping
from ..net.url_guard import UnsafeUrlError, UrlGuard
from .mapping import FieldMapping
from .parsers import PARSERS, RecordParser, file_format

_log = logging.getLogger(__name__)


#: Text handed on from one gunzip step at most, so a small file that inflates hugely never floods memory.
INFLATE_PIECE = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


class _Decoder:
    """Bytes -> text: gunzips when the body is still gzip after HTTP decoding (a `.gz` file), then UTF-8.

    Every gzip member is read (`cat a.gz b.gz`, pigz, bgzip), and inflation is handed on in pieces
    of at most `INFLATE_PIECE`, so a small file that inflates to gigabytes is read at constant memory.
    """

    def __init__(self) -> None:
        self._gunzip: Any = None
        self._sniffed = False
        self._text = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")

    def feed(self, data: bytes) -> Iterator[str]:
        if not self._sniffed:
            self._sniffed = True
            if data.startswith(_GZIP_MAGIC):
                self._gunzip = zlib.decompressobj(wbits=47)
        if self._gunzip is None:
            yield self._text.decode(data)
            return
        more = True
        while data or more:
            if self._gunzip.eof:  # the member before ended: what follows is the next member (or padding)
                if not data.strip(b"\0"):
                    return
                self._gunzip = zlib.decompressobj(wbits=47)
            piece = self._gunzip.decompress(data, INFLATE_PIECE)
            data = self._gunzip.unused_data if self._gunzip.eof else self._gunzip.unconsumed_tail
            more = len(piece) == INFLATE_PIECE and not self._gunzip.eof
            yield self._text.decode(piece)

    def end(self) -> str:
        tail = self._gunzip.flush() if self._gunzip is not None and not self._gunzip.eof else b""
        return self._text.decode(tail, final=True)


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    """How slow a download may be. Only time spent waiting on the network counts, never time the run
    spends delivering what it read, so a run held back by Snap's rate limit is not a slow source."""

    #: Fewer bytes than this in `window` seconds of waiting: the source is stalled.
    min_bytes: int = 1024
    window: float = 60.0
    #: Waiting on the network for longer than this in all: the source is too slow to finish.
    deadline: float = 6 * 3600.0


async def url_events(
    url: str,
    mapping: FieldMapping,
    start: int = 0,
    *,
    retry: RetryPolicy | None = None,
    url_guard: UrlGuard | None = None,
    limits: DownloadLimits | None = None,
) -> AsyncIterator[SourceEvent]:
    """A file's events, streamed; a connection lost mid-file is reopened past the records already read.

    Anything that ends the download for good (retries used up, a refused address, a stalled server)
    is a `SourceError`: the events read before it are still delivered, then the run fails.
    """
    retry = retry or RetryPolicy()
    watch = _Watch(limits or DownloadLimits())
    next_index, attempt = start, 0
    async with Transport(retry=retry, timeout=120.0, max_connections=2, url_guard=url_guard) as transport:
        while True:
            try:
                async for event in _download(transport, url, mapping, next_index, watch):
                    next_index = event.index + 1
                    yield event
                return
            except (httpx.TransportError, zlib.error) as error:
                if attempt >= retry.max_retries:
                    raise SourceError(f"eventsUrl: the download failed ({type(error).__name__})") from None
                _log.warning(f"eventsUrl: the download broke off ({type(error).__name__}); resuming")
                await sleep_unless_stopping(retry.delay(attempt, None))  # an abort ends the wait
                attempt += 1
            except (ServiceUnavailableError, UnsafeUrlError) as error:
                raise SourceError(f"eventsUrl: {error}") from None


class _Watch:
    """Time spent waiting for the next chunk, across every attempt of one download."""

    def __init__(self, limits: DownloadLimits) -> None:
        self._limits = limits
        self._waited = 0.0
        self._window_waited = 0.0
        self._window_bytes = 0

    async def chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        chunks = response.aiter_bytes()  # as they arrive: a chunk size would wait to fill it
        while True:
            began = time.monotonic()
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            self._count(time.monotonic() - began, len(chunk))
            yield chunk

    def _count(self, waited: float, size: int) -> None:
        limits = self._limits
        self._waited += waited
        self._window_waited += waited
        self._window_bytes += size
        if self._waited > limits.deadline:
            raise SourceError(f"eventsUrl: the download took longer than {limits.deadline:,.0f} s; split the file")
        if self._window_waited >= limits.window:
            if self._window_bytes < limits.min_bytes:
                raise SourceError(
                    f"eventsUrl: the server sent {self._window_bytes:,} bytes in {self._window_waited:,.0f} s; "
                    "the download is stalled"
                )
            self._window_waited, self._window_bytes = 0.0, 0


async def _download(
    transport: Transport, url: str, mapping: FieldMapping, start: int, watch: _Watch
) -> AsyncIterator[SourceEvent]:
    async with transport.stream(url, what="eventsUrl download") as response:
        if response.status_code != 200:
            raise SourceError(f"eventsUrl: the server answered HTTP {response.status_code}")
        decoder = _Decoder()
        parser: RecordParser | None = None
        async for chunk in watch.chunks(response):
            for text in decoder.feed(chunk):
                if parser is None:
                    if not text.strip():
                        continue
                    kind = file_format(url, response.headers.get("content-type", ""), text.lstrip()[0])
                    parser = PARSERS[kind](mapping, start)
                for event in parser.feed(text):
                    yield event
        text = decoder.end()
        if parser is None:
            raise SourceError("eventsUrl: the file is empty")
        for event in parser.feed(text):
            yield event
        for event in parser.end():
            yield event
