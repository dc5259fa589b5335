"""Helpers for bulk runs, shared by the tests and `bench/run_bench.py`: synthetic conversions and a
loopback file server (the `eventsUrl` a run streams from). Standard library only."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

COLUMNS = ("eventType", "email", "phone", "ipAddress", "userAgent", "price", "currency", "transactionId", "eventTime")


def conversion(i: int, now: int | None = None) -> dict[str, Any]:
    """Conversion number `i`: email, E.164 phone, IP, user agent, value and order id (its event_id)."""
    now = int(time.time()) if now is None else now
    return {
        "eventType": "PURCHASE",
        "email": f"Buyer.{i}@Example.com",
        "phone": f"+1 (415) {200 + i // 10000 % 800:03d}-{i % 10000:04d}",
        "ipAddress": f"198.51.{i // 256 % 256}.{i % 256}",
        "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        "price": round(5 + (i % 997) * 0.37, 2),
        "currency": "USD",
        "transactionId": f"order-{i}",
        "eventTime": now - 3600 - i % 7200,
    }


def conversions(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    now = int(time.time())
    return (conversion(i, now) for i in range(start, start + n))


def write_jsonl(path: Path, events: Iterator[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event) + "\n")
    return path


def csv_text(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


@dataclass
class Served:
    body: bytes | Path
    content_type: str
    headers: dict[str, str]


class FileServer:
    """Serves registered bodies (bytes or a file, streamed) on 127.0.0.1; `add` returns the URL."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.gets: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.gets.append(self.path)
                served = server.files.get(self.path)
                if served is None:
                    self.send_error(404)
                    return
                size = served.body.stat().st_size if isinstance(served.body, Path) else len(served.body)
                self.send_response(200)
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(size))
                for name, value in served.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    if isinstance(served.body, Path):
                        with served.body.open("rb") as source:
                            while chunk := source.read(1 << 16):
                                self.wfile.write(chunk)
                    else:
                        self.wfile.write(served.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll: shutting down waits for it, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def add(
        self, path: str, body: bytes | str | Path, content_type: str = "application/octet-stream", **headers: str
    ) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.files[path] = Served(data, content_type, {k.replace("_", "-"): v for k, v in headers.items()})
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
