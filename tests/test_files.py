"""A file at a URL, in process: decoding (gzip members, a BOM, UTF-8 cut between chunks), the watch on
a slow download, and what a user sees for an empty file or an error answer."""

from __future__ import annotations

import asyncio
import gzip
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from bulk_support import FileServer
from loopback_http import loopback

from src.errors import SourceError
from src.events.shape import SourceEvent
from src.net.transport import RetryPolicy
from src.net.url_guard import UrlGuard
from src.sources.files import INFLATE_PIECE, DownloadLimits, _Decoder, _Watch, url_events
from src.sources.mapping import FieldMapping

OPEN = UrlGuard(allow_private=True)


def decode(*chunks: bytes) -> str:
    decoder = _Decoder()
    return "".join(text for chunk in chunks for text in decoder.feed(chunk)) + decoder.end()


def test_utf8_cut_between_chunks_and_a_bom_decode_whole() -> None:
    data = "\ufeffemail\nzoë@x.com\n".encode()
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == "email\nzoë@x.com\n"
    assert decode(b"caf\xff\n") == "caf\ufffd\n"  # a bad byte is replaced, not fatal


def test_a_text_file_is_never_taken_for_gzip_halfway_through() -> None:
    assert decode(b"email\n", b"\x1f\x8bxx\n") == "email\n\x1f\ufffdxx\n"


def test_every_gzip_member_is_read_and_padding_after_them_ignored() -> None:
    data = gzip.compress(b"email\na@x.com\n") + gzip.compress(b"b@x.com\n") + b"\0" * 8
    assert decode(data) == "email\na@x.com\nb@x.com\n"
    assert decode(*(data[i : i + 7] for i in range(0, len(data), 7))) == "email\na@x.com\nb@x.com\n"


def test_a_gzip_that_inflates_hugely_comes_out_in_pieces() -> None:
    decoder = _Decoder()
    pieces = list(decoder.feed(gzip.compress(b"x" * (INFLATE_PIECE * 2 + 5))))
    assert INFLATE_PIECE == 1 << 20  # at most a MiB of text handed on at a time
    assert [len(piece) for piece in pieces] == [1 << 20, 1 << 20, 5]
    assert decoder.end() == ""


def test_a_gzip_cut_before_its_trailer_gives_what_arrived() -> None:
    data = gzip.compress(b"email\na@x.com\n", compresslevel=0)
    assert decode(data[:-8]) == "email\na@x.com\n"


def test_the_watch_fails_a_stalled_download_and_one_past_its_deadline() -> None:
    watch = _Watch(DownloadLimits(min_bytes=100, window=10.0, deadline=60.0))
    watch._count(5.0, 60)
    watch._count(5.0, 40)  # 100 bytes in 10 s: enough, a new window starts
    watch._count(9.0, 99)
    with pytest.raises(SourceError, match="sent 99 bytes in 10 s; the download is stalled"):
        watch._count(1.0, 0)

    fresh = _Watch(DownloadLimits(min_bytes=100, window=10.0, deadline=60.0))
    with pytest.raises(SourceError, match="sent 99 bytes in 10 s"):
        fresh._count(10.0, 99)  # the first window counts from zero

    slow = _Watch(DownloadLimits(min_bytes=1, window=10.0, deadline=30.0))
    for _ in range(3):
        slow._count(10.0, 5)  # exactly at the deadline: still allowed
    with pytest.raises(SourceError, match="took longer than 30 s"):
        slow._count(0.5, 5)


def read(url: str) -> tuple[list[SourceEvent], Exception | None]:
    async def collect() -> tuple[list[SourceEvent], Exception | None]:
        events: list[SourceEvent] = []
        try:
            async for event in url_events(url, FieldMapping(None), url_guard=OPEN):
                events.append(event)
        except SourceError as error:
            return events, error
        return events, None

    return asyncio.run(collect())


def test_a_gzipped_json_array_at_a_url_is_read() -> None:
    with FileServer() as server:
        url = server.add("/e.json.gz", gzip.compress(b'\n  [{"email": "a@x.com"}, {"email": "b@x.com"}]'))
        events, error = read(url)
    assert error is None
    assert [event.data for event in events] == [{"email": "a@x.com"}, {"email": "b@x.com"}]


def test_an_empty_file_and_an_error_answer_are_source_errors() -> None:
    with FileServer() as server:
        empty = server.add("/empty.csv", b"  \n\n")
        assert str(read(empty)[1]) == "eventsUrl: the file is empty"
        missing = read(server.add("/x", b"") + "-missing")
    assert str(missing[1]) == "eventsUrl: the server answered HTTP 404"


def test_a_private_address_is_refused_as_a_source_error() -> None:
    async def collect() -> list[SourceEvent]:
        guard = UrlGuard(allow_private=False)  # as on the platform: loopback is not public
        return [event async for event in url_events("http://127.0.0.1:9/e.jsonl", FieldMapping(None), url_guard=guard)]

    with pytest.raises(SourceError, match="eventsUrl: "):
        asyncio.run(collect())


def test_a_download_cut_off_midway_resumes_past_the_events_already_read(retry_waits: list[float]) -> None:
    body = b"".join(b'{"email": "%d@x.com"}\n' % n for n in range(20))
    gets: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            gets.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if len(gets) % 2 == 1 or self.path == "/always-cut.jsonl":  # every other answer breaks off halfway
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    async def collect(url: str, retries: int | None) -> list[SourceEvent]:
        retry = None if retries is None else RetryPolicy(max_retries=retries, backoff_base=0.01)
        return [event async for event in url_events(url, FieldMapping(None), retry=retry, url_guard=OPEN)]

    with loopback(Handler) as base:
        events = asyncio.run(collect(f"{base}/e.jsonl", None))  # the default policy: one wait of 0.25 to 0.5 s
        assert len(retry_waits) == 1 and 0.25 <= retry_waits[0] <= 0.5  # it waited before resuming
        assert [event.index for event in events] == list(range(20)) and len(gets) == 2
        with pytest.raises(SourceError, match="the download failed"):
            asyncio.run(collect(f"{base}/e.jsonl", 0))
        gets.clear()
        with pytest.raises(SourceError, match=r"the download failed \(RemoteProtocolError\)"):
            asyncio.run(collect(f"{base}/always-cut.jsonl", 2))
        assert len(gets) == 3  # the first try and two retries


def test_the_watch_is_applied_to_the_download() -> None:
    async def collect(url: str, limits: DownloadLimits) -> list[SourceEvent]:
        return [event async for event in url_events(url, FieldMapping(None), url_guard=OPEN, limits=limits)]

    with FileServer() as server:
        url = server.add("/e.jsonl", b'{"email": "a@x.com"}\n')
        with pytest.raises(SourceError, match="the download is stalled"):
            asyncio.run(collect(url, DownloadLimits(min_bytes=10**9, window=0.0)))
        with pytest.raises(SourceError, match="the download took longer than -1 s"):
            asyncio.run(collect(url, DownloadLimits(deadline=-1.0)))
        assert len(asyncio.run(collect(url, DownloadLimits()))) == 1

        async def unguarded() -> list[SourceEvent]:  # Snap-side callers and tests: no guard by default
            return [event async for event in url_events(url, FieldMapping(None))]

        assert len(asyncio.run(unguarded())) == 1


def test_the_last_line_is_read_without_a_final_newline_and_a_cut_character_kept_visible() -> None:
    with FileServer() as server:
        events, error = read(server.add("/e.jsonl", b'{"email": "a@x.com"}\n{"email": "b@x.com"}'))
        assert error is None and [event.data for event in events] == [{"email": "a@x.com"}, {"email": "b@x.com"}]
        events, error = read(server.add("/e.csv", b"email\nzo\xc3"))
        assert error is None and [event.data for event in events] == [{"email": "zo\ufffd"}]


def test_the_default_download_limits() -> None:
    # under 1 KiB in a minute of waiting is a stall; six hours of waiting in all is too slow
    assert DownloadLimits() == DownloadLimits(min_bytes=1024, window=60.0, deadline=21600.0)
