"""Broken and hostile `eventsUrl` files, and URLs that point where a run must not go. In-process.

Each test reads the source the way a run does (`url_events` over HTTP from a loopback server) and
checks what a user would: which events came out, which lines were reported, and that the run's
memory and time stay bounded whatever the file holds.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import threading
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from bulk_support import FileServer
from conftest import CAPI_TOKEN
from fake_snap import FakeSnap
from in_process import InProcessRun, run_in_process
from loopback_http import loopback
from memory_platform import MemoryEvents

from src.errors import SourceError
from src.events.shape import SourceEvent
from src.net.transport import RetryPolicy, Transport
from src.net.url_guard import UnsafeUrlError, UrlGuard, is_public
from src.sources.files import DownloadLimits, url_events
from src.sources.mapping import FieldMapping
from src.sources.parsers import MAX_LINE_CHARS, JsonLinesParser, LineSplitter

OPEN = UrlGuard(allow_private=True)
NO_MAPPING = FieldMapping(None)


async def collect(events: AsyncIterator[SourceEvent]) -> tuple[list[SourceEvent], Exception | None]:
    read: list[SourceEvent] = []
    try:
        async for event in events:
            read.append(event)
    except Exception as error:
        return read, error
    return read, None


def read_url(url: str, **options: Any) -> tuple[list[SourceEvent], Exception | None]:
    options.setdefault("retry", RetryPolicy(max_retries=1, backoff_base=0.01))
    return asyncio.run(collect(url_events(url, NO_MAPPING, url_guard=OPEN, **options)))


@pytest.fixture
def files() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


def jsonl(start: int, count: int) -> bytes:
    return b"".join(b'{"eventType": "SIGN_UP", "email": "u%d@example.com"}\n' % i for i in range(start, start + count))


def cut_then(
    body: bytes, calls: list[str], *, status: int | None = None, retry_after: str | None = None
) -> type[BaseHTTPRequestHandler]:
    """A server that sends half of `body` and breaks the connection off; with `status`, only the first time: every
    later request gets that status, and `retry_after` as its Retry-After (with an empty `body`, every request does)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(self.path)
            if status is not None and (len(calls) > 1 or not body):
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# ----- gzip -----


def test_every_member_of_a_multi_member_gzip_is_read(files: FileServer) -> None:
    """`cat a.gz b.gz`, pigz and bgzip write several members; the old reader stopped after the first."""
    body = gzip.compress(jsonl(0, 3)) + gzip.compress(jsonl(3, 4)) + gzip.compress(b"") + b"\0" * 16
    read, error = read_url(files.add("/parts.jsonl.gz", body))
    assert error is None
    assert [event.data["email"] for event in read if event.data] == [f"u{i}@example.com" for i in range(7)]


def test_a_gzip_bomb_is_read_at_bounded_memory(files: FileServer) -> None:
    """40 MB of one endless line, 40 KB compressed: reported as one over-long line, memory stays small."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = bomb.compress(b'{"email": "a@b.example"}\n') + bomb.compress(b"x" * (40 << 20)) + bomb.compress(b"\n")
    body += bomb.compress(jsonl(1, 1)) + bomb.flush()
    assert len(body) < 100_000
    tracemalloc.start()
    try:
        read, error = read_url(files.add("/bomb.jsonl.gz", body))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error is None
    assert [(e.index, e.error) for e in read if e.error] == [(1, f"line 2: longer than {MAX_LINE_CHARS:,} characters")]
    assert [e.data["email"] for e in read if e.data] == ["a@b.example", "u1@example.com"]
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB while reading a 40 MiB line"


# ----- long lines -----


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_line_splitter_gives_whole_lines_whatever_the_chunking(chunk: int) -> None:
    text = "a\nbb\n\nccc\r\nlast"
    splitter = LineSplitter(limit=10)
    lines: list[str | None] = []
    for start in range(0, len(text), chunk):
        lines += splitter.feed(text[start : start + chunk])
    lines += splitter.end()
    assert lines == ["a", "bb", "", "ccc\r", "last"]


def test_line_splitter_drops_an_overlong_line_as_it_arrives() -> None:
    splitter = LineSplitter(limit=10)
    assert splitter.feed("ok\n" + "x" * 8) == ["ok"]
    assert splitter.feed("x" * 8) == []  # over the limit: nothing of it is kept
    assert splitter._parts == []
    assert splitter.feed("xx\nnext\n") == [None, "next"]
    assert splitter.end() == []


def test_an_overlong_json_line_is_reported_and_the_next_ones_read() -> None:
    parser = JsonLinesParser(NO_MAPPING)
    huge = '{"email": "' + "a" * (MAX_LINE_CHARS + 10) + '"}'
    events = [*parser.feed('{"email": "x@y.example"}\n' + huge + "\n"), *parser.feed('{"phone": "+1"}'), *parser.end()]
    assert [(e.index, e.error) for e in events] == [
        (0, None), (1, f"line 2: longer than {MAX_LINE_CHARS:,} characters"), (2, None)
    ]  # fmt: skip


def test_an_overlong_csv_line_is_reported_by_its_line(files: FileServer) -> None:
    body = "email,price\na@example.com,3\n" + "b" * (MAX_LINE_CHARS + 1) + ",4\nc@example.com,5\n"
    read, error = read_url(files.add("/long.csv", body, "text/csv"))
    assert error is None
    assert [(e.index, e.error) for e in read] == [
        (0, None), (1, f"line 3: longer than {MAX_LINE_CHARS:,} characters"), (2, None)
    ]  # fmt: skip


def test_a_csv_header_that_never_ends_stops_the_source(files: FileServer) -> None:
    read, error = read_url(files.add("/header.csv", "email" + ",x" * MAX_LINE_CHARS + "\n", "text/csv"))
    assert read == []
    assert isinstance(error, SourceError) and "header line is longer than" in str(error)


def test_a_quote_left_open_over_many_long_lines_is_reported_not_held(files: FileServer) -> None:
    lines = [f'"{"q" * (MAX_LINE_CHARS // 4)}' for _ in range(6)]
    body = "email,price\n" + '"' + "\n".join(lines) + "\nz@example.com,1\n"
    read, error = read_url(files.add("/quote.csv", body, "text/csv"))
    assert error is None
    assert read[0].error is not None and read[0].error.startswith("line 2:")
    assert read[-1].data == {"email": "z@example.com", "price": "1"}


# ----- slow and failing servers -----


class Trickle:
    """Answers with a JSON Lines body: `fast` bytes at once, then one byte every `pause` seconds."""

    def __init__(self, body: bytes, fast: int, pause: float) -> None:
        trickle = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body[:fast])
                    self.wfile.flush()
                    for i in range(fast, len(body)):
                        if trickle.stop.wait(pause):
                            return
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slow.jsonl"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_stalled_server_fails_the_source_after_delivering_what_arrived() -> None:
    body = jsonl(0, 50)
    trickle = Trickle(body, fast=len(jsonl(0, 5)), pause=0.02)
    try:
        read, error = read_url(trickle.url, limits=DownloadLimits(min_bytes=500, window=0.5))
    finally:
        trickle.close()
    assert isinstance(error, SourceError) and "stalled" in str(error)
    assert [e.index for e in read] == [0, 1, 2, 3, 4]


def test_the_deadline_counts_only_time_waiting_on_the_network() -> None:
    """A reader that stops to deliver (Snap's rate limit) is not a slow source."""
    trickle = Trickle(jsonl(0, 20), fast=1 << 20, pause=0)

    async def slow_consumer() -> tuple[int, Exception | None]:
        count = 0
        try:
            async for _ in url_events(trickle.url, NO_MAPPING, url_guard=OPEN, limits=DownloadLimits(deadline=0.5)):
                count += 1
                await asyncio.sleep(0.05)  # 20 events: 1 s spent delivering, twice the deadline
        except Exception as error:
            return count, error
        return count, None

    try:
        count, error = asyncio.run(slow_consumer())
    finally:
        trickle.close()
    assert (count, error) == (20, None)


def test_a_server_that_fails_after_a_cut_is_a_source_error_not_a_snap_error() -> None:
    """Cut mid-file, then 503 on every retry: the events read are kept, the error names eventsUrl."""
    calls: list[str] = []
    with loopback(cut_then(jsonl(0, 20), calls, status=503)) as base:
        read, error = read_url(f"{base}/cut.jsonl")
    assert isinstance(error, SourceError)
    assert str(error).startswith("eventsUrl: eventsUrl download failed after") and "HTTP 503" in str(error)
    assert [e.index for e in read] == list(range(len(read))) and 5 <= len(read) < 20


# ----- where users' URLs may go -----


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "0.0.0.0", "::1", "fe80::1",
     "::ffff:127.0.0.1", "100.64.0.1", "224.0.0.1", "::ffff:224.0.0.1", "::ffff:100.64.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]/x",
     "http://10.0.0.5/export.csv", "file:///etc/passwd"],
)  # fmt: skip
def test_the_platform_guard_refuses_private_urls(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        asyncio.run(UrlGuard(allow_private=False)(httpx.URL(url)))


def test_the_guard_lets_public_literal_addresses_through_without_connecting() -> None:
    asyncio.run(UrlGuard(allow_private=False)(httpx.URL("https://93.184.216.34/export.csv")))


def test_each_redirect_hop_is_checked_before_anything_is_sent_to_it() -> None:
    """A public-looking export that redirects to the cloud metadata address is refused at the hop."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            target = "/step2" if self.path == "/step1" else "http://169.254.169.254/latest/meta-data/"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    checked: list[str] = []

    async def loopback_only_here(url: httpx.URL) -> None:
        checked.append(str(url))
        if url.host != "127.0.0.1":
            await UrlGuard(allow_private=False)(url)

    async def fetch(base: str) -> None:
        # The check before each hop alone: an ordinary client reaches the loopback server the guard lets through.
        async with Transport(url_guard=loopback_only_here, client=httpx.AsyncClient()) as transport:  # type: ignore[arg-type]
            await transport.request("GET", f"{base}/step1", what="eventsUrl")

    refused = r"eventsUrl: the host 169\.254\.169\.254 is a private"
    with loopback(Handler) as base, pytest.raises(UnsafeUrlError, match=refused):
        asyncio.run(fetch(base))
    assert hits == ["/step1", "/step2"]
    assert checked[-1] == "http://169.254.169.254/latest/meta-data/"


def test_redirects_within_the_limit_are_followed(files: FileServer) -> None:
    target = files.add("/real.jsonl", jsonl(0, 2), "application/x-ndjson")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with loopback(Handler) as base:
        read, error = read_url(f"{base}/moved.jsonl")
    assert error is None and len(read) == 2


# --- a user's hand-made or exported file, end to end ------------------------------------------------

BATCH = {
    "demoMode": False,
    "accessToken": CAPI_TOKEN,
    "pixelId": "pixel-hostile-1",
    "task": "send_batch_events",
    "eventSourceUrl": "https://shop.example.com/thanks",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_file(snap: FakeSnap, files: FileServer, path: str, body: str, content_type: str) -> InProcessRun:
    run = run_in_process({**BATCH, "eventsUrl": files.add(path, body, content_type)}, snap=snap, ppe=True)
    assert "unexpected error" not in run.final_message
    return run


def sent_emails(snap: FakeSnap) -> list[list[str] | str]:
    return [event["user_data"]["em"] for event in snap.accepted]


def test_a_csv_with_old_mac_line_endings_is_read(snap: FakeSnap, files: FileServer) -> None:
    """Scenario: a CSV whose lines end in a bare CR (classic Mac, Excel's "CSV (Macintosh)"). Its events are
    read and sent; it used to stop the run with an unexpected error (csv.Error)."""
    body = "eventType,email,price\rPURCHASE,a@example.com,5\rPURCHASE,b@example.com,6\r"
    run = run_file(snap, files, "/mac.csv", body, "text/csv")
    assert run.output["counts"] == {"sent": 2}
    assert sent_emails(snap) == [sha("a@example.com"), sha("b@example.com")]


@pytest.mark.parametrize(
    ("element", "why"),
    [
        ("[" * 2000 + "]" * 2000, "is nested too deeply to read"),
        ('{"email": "b@example.com", "price": 5, "eventTime": 1' + "0" * 5000 + "}", "holds a number too long to read"),
    ],
    ids=["nested-2000-deep", "integer-of-5001-digits"],
)
def test_a_hostile_element_in_a_json_array_file_is_one_bad_row(
    snap: FakeSnap, files: FileServer, element: str, why: str
) -> None:
    """Scenario: a JSON array whose second element is nested 2,000 deep or holds a 5,001-digit integer. The
    first event is sent, the element is one `invalid` row saying why; it used to stop the run."""
    body = '[{"email": "a@example.com", "price": 5}, ' + element + "]"
    run = run_file(snap, files, "/deep.json", body, "application/json")
    assert run.output["counts"] == {"sent": 1, "invalid": 1}
    [bad] = [row for row in run.rows if row["status"] == "invalid"]
    assert bad["error"] == f"line 1: element 1 {why}"


def test_a_pretty_printed_json_object_in_a_json_file_is_one_event(snap: FakeSnap, files: FileServer) -> None:
    """Scenario: a `.json` file holding one event as `json.dump(event, f, indent=2)` writes it. One event is
    sent; it used to be read as JSON Lines, 4 `invalid` rows "not valid JSON"."""
    body = '{\n  "email": "a@example.com",\n  "price": 5\n}\n'
    run = run_file(snap, files, "/event.json", body, "application/json")
    assert run.output["counts"] == {"sent": 1}
    assert sent_emails(snap) == [sha("a@example.com")]


def test_json_arrays_one_after_another_are_all_read(snap: FakeSnap, files: FileServer) -> None:
    """Scenario: a `.json` file made by `cat a.json b.json`: two arrays. Both events are sent; the second
    array used to be ignored without a word."""
    body = '[{"email": "a@example.com", "price": 5}]\n[{"email": "b@example.com", "price": 6}]\n'
    run = run_file(snap, files, "/two.json", body, "application/json")
    assert run.output["counts"] == {"sent": 2}
    assert sent_emails(snap) == [sha("a@example.com"), sha("b@example.com")]


def test_junk_after_a_json_array_fails_the_run_after_sending_its_events(snap: FakeSnap, files: FileServer) -> None:
    """Scenario: a `.json` file whose array is followed by stray text. The array's event is sent, then the
    run fails naming eventsUrl and the line; the junk used to be ignored."""
    body = '[{"email": "a@example.com", "price": 5}]\n<html>oops</html>\n'
    run = run_file(snap, files, "/junk.json", body, "application/json")
    assert run.returncode != 0
    assert run.output["counts"] == {"sent": 1}
    assert run.output["error"] == (
        "eventsUrl: line 2: after its JSON the file goes on with text that is not a JSON array or object"
    )


def test_a_semicolon_csv_is_read(snap: FakeSnap, files: FileServer) -> None:
    """Scenario: a CSV from Excel in a European locale, `;` between the fields. Its event is sent; it used to
    fail with "names no event field; is its header row missing?"."""
    run = run_file(snap, files, "/orders.csv", "eventType;email;price\nPURCHASE;a@example.com;5\n", "text/csv")
    assert run.output["counts"] == {"sent": 1}
    assert sent_emails(snap) == [sha("a@example.com")]


def test_a_csv_header_in_another_case_is_read(snap: FakeSnap, files: FileServer) -> None:
    """Scenario: a CSV whose header is `EventType,Email,Price`, as most exports write it. Its event is sent; it
    used to fail with a message naming neither the cause (case) nor the fix (fieldMapping)."""
    run = run_file(snap, files, "/orders.csv", "EventType,Email,Price\nPURCHASE,a@example.com,5\n", "text/csv")
    assert run.output["counts"] == {"sent": 1}
    assert snap.accepted[0]["custom_data"]["value"] == 5


def test_two_csv_email_columns_send_both_addresses(snap: FakeSnap, files: FileServer) -> None:
    """Scenario: a CSV with two `email` columns (a customer's two addresses). Both reach Snap; the later
    used to overwrite the earlier without a word."""
    body = "eventType,email,email,price\nPURCHASE,a@example.com,b@example.com,5\n"
    run = run_file(snap, files, "/orders.csv", body, "text/csv")
    assert run.output["counts"] == {"sent": 1}
    assert sent_emails(snap) == [[sha("a@example.com"), sha("b@example.com")]]


def test_a_field_mapping_onto_an_email_the_event_has_sends_both(snap: FakeSnap) -> None:
    """Scenario: `events` carry `email`, and `mail` that fieldMapping maps to `email`. Both addresses reach
    Snap; the mapped one used to replace the event's own without a word."""
    events = [{"email": "a@example.com", "mail": "b@example.com", "price": 5}]
    run = run_in_process({**BATCH, "events": events, "fieldMapping": {"mail": "email"}}, snap=snap, ppe=True)
    assert run.output["counts"] == {"sent": 1}
    assert sent_emails(snap) == [[sha("a@example.com"), sha("b@example.com")]]


def test_an_abort_while_the_events_url_waits_to_retry_ends_the_run_saying_so(
    snap: FakeSnap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eventsUrl server answers 503 with Retry-After: 60 and the user aborts while the run waits to try again:
    the wait ends at once and the run ends as an aborted one (OUTPUT `interrupted`, the status names the abort),
    as it does during Snap's Retry-After. (It failed with "the run is stopping: not retried", which said neither.)"""
    signals = MemoryEvents()
    original = RetryPolicy.delay

    def abort_as_the_wait_begins(self: RetryPolicy, attempt: int, response: httpx.Response | None) -> float:
        signals.abort()
        return original(self, attempt, response)

    monkeypatch.setattr(RetryPolicy, "delay", abort_as_the_wait_begins)
    with loopback(cut_then(b"", [], status=503, retry_after="60")) as base:  # every request
        run = run_in_process({**BATCH, "eventsUrl": f"{base}/events.jsonl"}, snap=snap, ppe=True, events=signals)
    assert snap.accepted == [] and run.returncode != 0
    assert run.output.get("interrupted"), run.output
    assert "abort" in run.final_message, run.final_message


def test_an_abort_while_a_broken_off_download_waits_to_resume_ends_the_wait(
    snap: FakeSnap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eventsUrl download breaks off mid-file and the user aborts as the run waits to resume it: the wait
    ends, nothing more is downloaded, and the run ends as an aborted one (the wait was a plain sleep: the run
    resumed the download after it, aborted)."""
    calls: list[str] = []
    signals = MemoryEvents()

    def abort_as_the_wait_begins(self: RetryPolicy, attempt: int, response: httpx.Response | None) -> float:
        signals.abort()
        return 3.0

    monkeypatch.setattr(RetryPolicy, "delay", abort_as_the_wait_begins)
    with loopback(cut_then(jsonl(0, 20), calls)) as base:
        run = run_in_process({**BATCH, "eventsUrl": f"{base}/cut.jsonl"}, snap=snap, ppe=True, events=signals)
    assert calls == ["/cut.jsonl"]
    assert run.output.get("interrupted"), run.output
    assert "abort" in run.final_message, run.final_message
