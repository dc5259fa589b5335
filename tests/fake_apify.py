"""Loopback fake of the Apify API calls the SDK makes when an actor runs with ``APIFY_IS_AT_HOME=1``.

Built from the installed SDK's own client code (apify 4.1, apify_client 3.x, crawlee): every answer is
shaped so that apify_client's pydantic models (``RunResponse``, ``DatasetResponse``, ``KeyValueStoreResponse``,
``ListOfKeysResponse``) accept it; ``tests/test_platform.py`` checks that against the models.

Endpoints (all under ``/v2``, ``Authorization: Bearer <token>`` required, bodies gzip/br/deflate-decoded):

==============================================  =====================  =======================================
request                                         endpoint name (faults)  SDK caller
==============================================  =====================  =======================================
GET    /actor-runs/{run}                        run.get                ChargingManager (pricing, counts, cap)
PUT    /actor-runs/{run}                        run.update             Actor.set_status_message
POST   /actor-runs/{run}/charge                 charge                 Actor.charge (``idempotency-key``)
GET    /datasets/{id}                           dataset.get            opening the default dataset
POST   /datasets?name=                          dataset.create         opening a named / missing dataset
GET    /datasets/{id}/items                     dataset.items          Dataset.get_data / iterate_items
POST   /datasets/{id}/items                     dataset.push           Actor.push_data
DELETE /datasets/{id}                           dataset.delete         Dataset.drop
GET    /key-value-stores/{id}                   kv.get                 opening the default store
POST   /key-value-stores?name=                  kv.create              opening a named / missing store
DELETE /key-value-stores/{id}                   kv.delete              KeyValueStore.drop
GET    /key-value-stores/{id}/keys              kv.keys                KeyValueStore.iterate_keys
GET    /key-value-stores/{id}/records/{key}     record.get             Actor.get_input / get_value
HEAD   /key-value-stores/{id}/records/{key}     record.head            KeyValueStore.record_exists
PUT    /key-value-stores/{id}/records/{key}     record.put             Actor.set_value
DELETE /key-value-stores/{id}/records/{key}     record.delete          KeyValueStore.delete_value
==============================================  =====================  =======================================

Plus the platform events websocket (``ACTOR_EVENTS_WEBSOCKET_URL``) on a second port: ``send_event``
pushes ``{"name": "migrating" | "aborting" | "persistState", "data": {...}}`` to every connected actor.

Everything is recorded: requests, pushes and items, charges (name, count, idempotency key; a repeated key
is recorded as a duplicate and not counted, like the platform; keys are kept until
``forget_idempotency_keys``, the platform forgets them after a few minutes), records with content types,
status messages with ``isStatusMessageTerminal``. Faults per endpoint name: queued (each request consumes one:
``Fault.status(500)``, ``Fault.drop()``, ``Fault.lose_answer()`` (stored, then the connection is closed
without an answer), ``Fault.delay(s)``) or permanent (``set_outage``).

Two uses, like ``fake_snap.py``:

* in tests: ``with FakeApify(...) as apify: ...`` then run the actor with ``apify.actor_env()``;
* as a process for benchmarks::

      python tests/fake_apify.py --input input.json --ppe-price 0.01

  prints ``LISTENING <base url>`` and ``ENV <json>`` (the actor's environment), serves until
  SIGTERM/SIGINT, then prints one JSON line of ``stats()``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gzip
import json
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from loopback_http import FakeHandler, FakeServer

ENDPOINTS = frozenset(
    {
        "run.get", "run.update", "charge",
        "dataset.get", "dataset.create", "dataset.items", "dataset.push", "dataset.delete",
        "kv.get", "kv.create", "kv.delete", "kv.keys",
        "record.get", "record.head", "record.put", "record.delete",
    }
)  # fmt: skip
USER_ID = "fake-user"
ACTOR_ID = "fake-actor"
NO_LIMIT = 999_999_999_999


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour of an endpoint (see ``FakeApify.add_faults`` / ``set_outage``)."""

    kind: str  # "status" | "drop" | "lose_answer" | "delay"
    code: int = 0
    seconds: float = 0.0

    @classmethod
    def status(cls, code: int = 500) -> Fault:
        """Answer ``code`` with an Apify-style error body; nothing is stored."""
        return cls("status", code=code)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without an answer; nothing is stored."""
        return cls("drop")

    @classmethod
    def lose_answer(cls) -> Fault:
        """Handle the request (store, charge), then close the connection without an answer."""
        return cls("lose_answer")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep ``seconds``, then handle normally."""
        return cls("delay", seconds=seconds)


@dataclass
class RecordedRequest:
    """One request as the server saw it (no Authorization header kept). ``status`` None: no answer sent."""

    method: str
    path: str
    endpoint: str | None
    query: dict[str, str]
    at: float
    fault: Fault | None = None
    status: int | None = None


@dataclass
class Charge:
    event_name: str
    count: int
    idempotency_key: str | None
    #: The key was seen before: the platform answers as if charged, and counts nothing.
    duplicate: bool = False


@dataclass
class Push:
    dataset_id: str
    count: int
    content_encoding: str | None


@dataclass
class Record:
    value: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass
class StatusMessage:
    message: str | None
    terminal: bool | None


@dataclass
class _Store:
    id: str
    name: str | None
    created: str
    records: dict[str, Record] = field(default_factory=dict)


@dataclass
class _Dataset:
    id: str
    name: str | None
    created: str
    #: Decoded push bodies (JSON arrays or objects), parsed on demand: 1M rows stay compact.
    bodies: list[bytes] = field(default_factory=list)
    item_count: int = 0


@dataclass
class _Response:
    code: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _json(code: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Response:
    return _Response(code, json.dumps(payload).encode(), headers=dict(headers or {}))


def _error(code: int, error_type: str, message: str) -> _Response:
    return _json(code, {"error": {"type": error_type, "message": message}})


def _decode(body: bytes, encoding: str | None) -> bytes:
    encoding = (encoding or "identity").strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        import brotli  # the SDK's own dependency (apify_client[brotli])

        return bytes(brotli.decompress(body))
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _count_items(body: bytes) -> int:
    payload = json.loads(body)
    return len(payload) if isinstance(payload, list) else 1


def _route(method: str, path: str) -> tuple[str | None, list[str]]:
    """Endpoint name and path parameters for a request path, or (None, []) if the fake does not serve it."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if not parts or parts[0] != "v2":
        return None, []
    parts = parts[1:]
    table: dict[tuple[str, ...], str] = {
        ("GET", "actor-runs", "*"): "run.get",
        ("PUT", "actor-runs", "*"): "run.update",
        ("POST", "actor-runs", "*", "charge"): "charge",
        ("POST", "datasets"): "dataset.create",
        ("GET", "datasets", "*"): "dataset.get",
        ("DELETE", "datasets", "*"): "dataset.delete",
        ("GET", "datasets", "*", "items"): "dataset.items",
        ("POST", "datasets", "*", "items"): "dataset.push",
        ("POST", "key-value-stores"): "kv.create",
        ("GET", "key-value-stores", "*"): "kv.get",
        ("DELETE", "key-value-stores", "*"): "kv.delete",
        ("GET", "key-value-stores", "*", "keys"): "kv.keys",
        ("GET", "key-value-stores", "*", "records", "*"): "record.get",
        ("HEAD", "key-value-stores", "*", "records", "*"): "record.head",
        ("PUT", "key-value-stores", "*", "records", "*"): "record.put",
        ("DELETE", "key-value-stores", "*", "records", "*"): "record.delete",
    }
    for pattern, name in table.items():
        if pattern[0] != method or len(pattern) - 1 != len(parts):
            continue
        params = []
        for want, got in zip(pattern[1:], parts, strict=True):
            if want == "*":
                params.append(got)
            elif want != got:
                break
        else:
            return name, params
    return None, []


class _Server(FakeServer):
    fake: FakeApify


class _Handler(FakeHandler):
    server: _Server

    def _serve(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = self.server.fake._dispatch(self.command, self.path, headers, body)
        if resp is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.code)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve


class FakeApify:
    """Threaded loopback Apify API (HTTP) plus the platform events websocket, for one actor run."""

    def __init__(
        self,
        *,
        token: str = "apify-api-token-secret-9c1d",
        run_id: str = "fake-run-1",
        event_prices: Mapping[str, float] | None = None,
        charged_event_counts: Mapping[str, int] | None = None,
        max_total_charge_usd: float | None = None,
        pricing_via: str = "api",
        actor_input: Any = None,
        record_items: bool = True,
        websocket: bool = True,
    ) -> None:
        """``event_prices`` makes the run pay-per-event (None: free). ``pricing_via`` is ``"api"`` (the SDK
        reads pricing, counts and cap from the run object) or ``"env"`` (from ``APIFY_ACTOR_PRICING_INFO`` /
        ``APIFY_CHARGED_ACTOR_EVENT_COUNTS`` / ``ACTOR_MAX_TOTAL_CHARGE_USD``, as the platform also sets them).
        ``record_items=False`` keeps counts, not pushed bodies (1M-row benchmarks)."""
        if pricing_via not in ("api", "env"):
            raise ValueError("pricing_via must be 'api' or 'env'")
        self.token = token
        self.run_id = run_id
        self.event_prices = dict(event_prices) if event_prices is not None else None
        self.max_total_charge_usd = max_total_charge_usd
        self.pricing_via = pricing_via
        self.record_items = record_items
        self.started_at = _now_iso()
        self.dataset_id = "default-dataset-1"
        self.store_id = "default-store-1"
        self.request_queue_id = "default-queue-1"
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[str] = []
        self.auth_failures = 0
        self.charges: list[Charge] = []
        self.pushes: list[Push] = []
        self.status_messages: list[StatusMessage] = []
        self.events_sent: list[dict[str, Any]] = []
        self.ws_connections = 0
        #: Per run (a new `run_id` starts at 0, as a new run on the platform does), event name -> count.
        self._charged_counts: dict[str, dict[str, int]] = {run_id: dict(charged_event_counts or {})}
        self._seen_keys: set[str] = set()
        self._lock = threading.Lock()
        self._faults: dict[str, collections.deque[Fault]] = {k: collections.deque() for k in ENDPOINTS}
        self._outages: dict[str, Fault] = {}
        self._datasets: dict[str, _Dataset] = {self.dataset_id: _Dataset(self.dataset_id, None, self.started_at)}
        self._stores: dict[str, _Store] = {self.store_id: _Store(self.store_id, None, self.started_at)}
        self._status_message: str | None = None
        self._status_terminal: bool | None = None
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._websocket = websocket
        self._ws_loop: asyncio.AbstractEventLoop | None = None
        self._ws_thread: threading.Thread | None = None
        self._ws_port = 0
        self._ws_clients: set[Any] = set()
        self._ws_stop: asyncio.Event | None = None
        self._ws_ready = threading.Event()
        if actor_input is not None:
            self.set_input(actor_input)

    # ----- lifecycle -----
    def start(self, port: int = 0) -> FakeApify:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-apify", daemon=True
        )
        self._thread.start()
        if self._websocket:
            self._ws_thread = threading.Thread(target=self._ws_main, name="fake-apify-ws", daemon=True)
            self._ws_thread.start()
            if not self._ws_ready.wait(10):
                raise RuntimeError("the events websocket did not start")
        return self

    def stop(self) -> None:
        if self._ws_loop is not None and self._ws_stop is not None:
            self._ws_loop.call_soon_threadsafe(self._ws_stop.set)
            if self._ws_thread is not None:
                self._ws_thread.join(timeout=5)
            self._ws_loop = None
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeApify:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeApify is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ws_url(self) -> str | None:
        return f"ws://127.0.0.1:{self._ws_port}/events/{self.run_id}" if self._ws_port else None

    def actor_env(self) -> dict[str, str]:
        """The ``APIFY_*`` / ``ACTOR_*`` variables the platform sets for this run (add them to a clean env)."""
        env = {
            "APIFY_IS_AT_HOME": "1",
            "APIFY_TOKEN": self.token,
            "APIFY_API_BASE_URL": self.base_url,
            "APIFY_API_PUBLIC_BASE_URL": self.base_url,
            "ACTOR_ID": ACTOR_ID,
            "ACTOR_RUN_ID": self.run_id,
            "APIFY_ACTOR_RUN_ID": self.run_id,
            "APIFY_USER_ID": USER_ID,
            "ACTOR_DEFAULT_DATASET_ID": self.dataset_id,
            "ACTOR_DEFAULT_KEY_VALUE_STORE_ID": self.store_id,
            "ACTOR_DEFAULT_REQUEST_QUEUE_ID": self.request_queue_id,
            "ACTOR_STARTED_AT": self.started_at,
            "ACTOR_MEMORY_MBYTES": "1024",
        }
        if self.ws_url:
            env["ACTOR_EVENTS_WEBSOCKET_URL"] = self.ws_url
        if self.max_total_charge_usd is not None:
            env["ACTOR_MAX_TOTAL_CHARGE_USD"] = str(self.max_total_charge_usd)
        if self.pricing_via == "env" and self.event_prices is not None:
            env["APIFY_ACTOR_PRICING_INFO"] = json.dumps(self._pricing_info())
            with self._lock:
                counts = {name: 0 for name in self._prices()} | self._run_counts()
            env["APIFY_CHARGED_ACTOR_EVENT_COUNTS"] = json.dumps(counts)
        return env

    # ----- test controls -----
    def set_input(self, actor_input: Any) -> None:
        """Write the INPUT record of the default store (what the Console does before a run starts)."""
        self.put_record("INPUT", json.dumps(actor_input).encode(), "application/json; charset=utf-8")

    def put_record(self, key: str, value: bytes, content_type: str, store_id: str | None = None) -> None:
        with self._lock:
            self._stores[store_id or self.store_id].records[key] = Record(value, content_type)

    def add_dataset(self, items: list[Any], name: str | None = None) -> str:
        """A dataset of the user's account (e.g. the events a run reads by ``eventsDatasetId``); returns its id."""
        with self._lock:
            dataset = _Dataset(f"dataset-{len(self._datasets) + 1}", name, _now_iso())
            dataset.bodies.append(json.dumps(items).encode())
            dataset.item_count = len(items)
            self._datasets[dataset.id] = dataset
            return dataset.id

    def add_faults(self, endpoint: str, *faults: Fault) -> None:
        """Queue faults for ``endpoint``; each request to it consumes one, in order."""
        self._check(endpoint)
        with self._lock:
            self._faults[endpoint].extend(faults)

    def set_outage(self, endpoint: str, fault: Fault | None = None) -> None:
        """Every request to ``endpoint`` gets ``fault`` (default 500) until ``clear_outage``."""
        self._check(endpoint)
        with self._lock:
            self._outages[endpoint] = fault or Fault.status(500)

    def clear_outage(self, endpoint: str) -> None:
        with self._lock:
            self._outages.pop(endpoint, None)

    def forget_idempotency_keys(self) -> None:
        """The platform remembers a charge's idempotency key for a few minutes only (the SDK's docstring says
        three); this fake remembers them until told to forget, e.g. to stand for a run resurrected later."""
        with self._lock:
            self._seen_keys.clear()

    def pending_faults(self, endpoint: str) -> int:
        with self._lock:
            return len(self._faults[endpoint])

    @staticmethod
    def _check(endpoint: str) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")

    def send_event(self, name: str, data: Mapping[str, Any] | None = None) -> int:
        """Send a platform event (``migrating``, ``aborting``, ``persistState``) to every connected actor;
        returns how many connections it went to."""
        message = {"name": name, "data": dict(data or {})}
        loop = self._ws_loop
        if loop is None:
            raise RuntimeError("the events websocket is not running")

        async def broadcast() -> int:
            sent = 0
            for client in list(self._ws_clients):
                with contextlib.suppress(Exception):
                    await client.send(json.dumps(message))
                    sent += 1
            return sent

        sent = asyncio.run_coroutine_threadsafe(broadcast(), loop).result(timeout=10)
        with self._lock:
            self.events_sent.append(message | {"delivered": sent})
        return sent

    def wait_for_websocket(self, timeout: float = 30) -> bool:
        """Wait until an actor is connected to the events websocket."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ws_clients:
                return True
            time.sleep(0.02)
        return False

    def wait_for(self, predicate: Any, timeout: float = 60) -> bool:
        """Poll ``predicate(self)`` until true (for tests that act mid-run, e.g. after the first push)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return False

    # ----- what was recorded -----
    def items(self, dataset_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            bodies = list(self._datasets[dataset_id or self.dataset_id].bodies)
        items: list[dict[str, Any]] = []
        for body in bodies:
            payload = json.loads(body)
            items.extend(payload if isinstance(payload, list) else [payload])
        return items

    def item_count(self, dataset_id: str | None = None) -> int:
        with self._lock:
            return self._datasets[dataset_id or self.dataset_id].item_count

    def delete_record(self, key: str, store_id: str | None = None) -> None:
        with self._lock:
            self._stores[store_id or self.store_id].records.pop(key, None)

    def record(self, key: str, store_id: str | None = None) -> Record | None:
        with self._lock:
            store = self._stores.get(store_id or self.store_id)
            return store.records.get(key) if store else None

    def record_json(self, key: str, store_id: str | None = None) -> Any:
        record = self.record(key, store_id)
        return record.json() if record is not None else None

    def records(self, store_id: str | None = None) -> dict[str, Record]:
        with self._lock:
            return dict(self._stores[store_id or self.store_id].records)

    def store_id_by_name(self, name: str) -> str | None:
        with self._lock:
            return next((s.id for s in self._stores.values() if s.name == name), None)

    def charged_count(self, event_name: str) -> int:
        """Events of ``event_name`` the platform counted (duplicates by idempotency key excluded)."""
        with self._lock:
            return sum(c.count for c in self.charges if c.event_name == event_name and not c.duplicate)

    def charged_usd(self) -> float:
        prices = self.event_prices or {}
        with self._lock:
            return sum(c.count * prices.get(c.event_name, 0.0) for c in self.charges if not c.duplicate)

    @property
    def final_status(self) -> StatusMessage | None:
        with self._lock:
            return self.status_messages[-1] if self.status_messages else None

    def calls(self, endpoint: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            charges = [c for c in self.charges if not c.duplicate]
            final = self.status_messages[-1] if self.status_messages else None
            output = self._stores[self.store_id].records.get("OUTPUT")
            return {
                "requests": len(self.requests),
                "pushes": len(self.pushes),
                "pushed_items": sum(p.count for p in self.pushes),
                "stored_items": self._datasets[self.dataset_id].item_count,
                "charge_calls": len(self.charges),
                "duplicate_charges": len(self.charges) - len(charges),
                "charged": {name: sum(c.count for c in charges if c.event_name == name) for name in self._prices()},
                "status_messages": len(self.status_messages),
                "final_status": {"message": final.message, "terminal": final.terminal} if final else None,
                "output": json.loads(output.value) if output else None,
                "unhandled": list(self.unhandled),
                "auth_failures": self.auth_failures,
                "first_request_at": self.requests[0].at if self.requests else None,
            }

    def _prices(self) -> dict[str, float]:
        return self.event_prices or {}

    # ----- answers -----
    def _pricing_info(self) -> dict[str, Any]:
        return {
            "pricingModel": "PAY_PER_EVENT",
            "apifyMarginPercentage": 0.2,
            "createdAt": self.started_at,
            "startedAt": self.started_at,
            "pricingPerEvent": {
                "actorChargeEvents": {
                    name: {"eventTitle": name, "eventDescription": f"{name} (fake)", "eventPriceUsd": price}
                    for name, price in self._prices().items()
                }
            },
        }

    def run_object(self) -> dict[str, Any]:
        """The run as ``GET /v2/actor-runs/{id}`` returns it (``data`` of a ``RunResponse``)."""
        run: dict[str, Any] = {
            "id": self.run_id,
            "actId": ACTOR_ID,
            "userId": USER_ID,
            "startedAt": self.started_at,
            "status": "RUNNING",
            "statusMessage": self._status_message,
            "isStatusMessageTerminal": self._status_terminal,
            "meta": {"origin": "API"},
            "stats": {"inputBodyLen": 0, "restartCount": 0, "resurrectCount": 0, "migrationCount": 0},
            "options": {"build": "latest", "timeoutSecs": 3600, "memoryMbytes": 1024, "diskMbytes": 2048},
            "buildId": "fake-build",
            "buildNumber": "0.0.1",
            "defaultKeyValueStoreId": self.store_id,
            "defaultDatasetId": self.dataset_id,
            "defaultRequestQueueId": self.request_queue_id,
            "generalAccess": "FOLLOW_USER_SETTING",
        }
        if self.max_total_charge_usd is not None:
            run["options"]["maxTotalChargeUsd"] = self.max_total_charge_usd
        if self.event_prices is not None:
            run["pricingInfo"] = self._pricing_info()
            run["chargedEventCounts"] = dict(self._run_counts())
        return run

    def _run_counts(self) -> dict[str, int]:
        """The current run's charged event counts (the caller holds the lock or reads a snapshot)."""
        return self._charged_counts.setdefault(self.run_id, {})

    def _dataset_object(self, dataset: _Dataset) -> dict[str, Any]:
        return {
            "id": dataset.id,
            "name": dataset.name,
            "userId": USER_ID,
            "createdAt": dataset.created,
            "modifiedAt": _now_iso(),
            "accessedAt": _now_iso(),
            "itemCount": dataset.item_count,
            "cleanItemCount": dataset.item_count,
            "actRunId": self.run_id,
            "consoleUrl": f"https://console.apify.com/storage/datasets/{dataset.id}",
        }

    def _store_object(self, store: _Store) -> dict[str, Any]:
        return {
            "id": store.id,
            "name": store.name,
            "userId": USER_ID,
            "createdAt": store.created,
            "modifiedAt": _now_iso(),
            "accessedAt": _now_iso(),
            "actRunId": self.run_id,
            "consoleUrl": f"https://console.apify.com/storage/key-value-stores/{store.id}",
        }

    # ----- internals -----
    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Response | None:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        endpoint, params = _route(method, split.path)
        rec = RecordedRequest(method, split.path, endpoint, query, time.time())
        with self._lock:
            self.requests.append(rec)
            if endpoint is None:
                self.unhandled.append(f"{method} {split.path}")
            if headers.get("authorization") != f"Bearer {self.token}":
                self.auth_failures += 1
                rec.status = 401
                return _error(401, "token-not-provided", "Authentication token is not valid")
            fault = self._outages.get(endpoint or "")
            if fault is None:
                queue = self._faults.get(endpoint or "")
                fault = queue.popleft() if queue else None
        if endpoint is None:
            rec.status = 404
            return _error(404, "page-not-found", f"The fake Apify API does not serve {method} {split.path}")
        rec.fault = fault
        if fault is not None:
            if fault.kind == "status":
                rec.status = fault.code
                return _error(fault.code, "internal-error", f"Injected fault: {HTTPStatus(fault.code).phrase}")
            if fault.kind == "drop":
                return None
            if fault.kind == "delay":
                time.sleep(fault.seconds)
        try:
            decoded = _decode(body, headers.get("content-encoding"))
        except (OSError, ValueError, zlib.error) as error:
            rec.status = 400
            return _error(400, "invalid-content-encoding", str(error))
        resp = self._handle(endpoint, params, query, headers, decoded)
        if fault is not None and fault.kind == "lose_answer":
            return None
        rec.status = resp.code
        return resp

    def _handle(
        self, endpoint: str, params: list[str], query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        if endpoint.startswith("run."):
            return self._run(endpoint, params[0], body)
        if endpoint == "charge":
            return self._charge(params[0], headers, body)
        if endpoint.startswith("dataset."):
            return self._dataset(endpoint, params, query, headers, body)
        return self._kv(endpoint, params, query, headers, body)

    def _run(self, endpoint: str, run_id: str, body: bytes) -> _Response:
        if run_id != self.run_id:
            return _error(404, "record-not-found", "Actor run was not found")
        with self._lock:
            if endpoint == "run.update":
                fields = json.loads(body or b"{}")
                if "statusMessage" in fields or "isStatusMessageTerminal" in fields:
                    self._status_message = fields.get("statusMessage", self._status_message)
                    self._status_terminal = fields.get("isStatusMessageTerminal")
                    self.status_messages.append(StatusMessage(self._status_message, self._status_terminal))
            return _json(200, {"data": self.run_object()})

    def _charge(self, run_id: str, headers: dict[str, str], body: bytes) -> _Response:
        if run_id != self.run_id:
            return _error(404, "record-not-found", "Actor run was not found")
        payload = json.loads(body or b"{}")
        name, count = payload.get("eventName"), payload.get("count", 1)
        if not isinstance(name, str) or not isinstance(count, int) or count < 1:
            return _error(400, "invalid-input", "eventName and a positive count are required")
        key = headers.get("idempotency-key")
        with self._lock:
            if name not in self._prices():
                return _error(400, "invalid-input", f"Event {name!r} is not in the actor's pricing")
            duplicate = key is not None and key in self._seen_keys
            if key is not None:
                self._seen_keys.add(key)
            self.charges.append(Charge(name, count, key, duplicate))
            if not duplicate:
                counts = self._run_counts()
                counts[name] = counts.get(name, 0) + count
        return _Response(201)

    def _dataset(
        self, endpoint: str, params: list[str], query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        with self._lock:
            if endpoint == "dataset.create":
                name = query.get("name") or None
                found = next((d for d in self._datasets.values() if name and d.name == name), None)
                if found is None:
                    found = _Dataset(f"dataset-{len(self._datasets) + 1}", name, _now_iso())
                    self._datasets[found.id] = found
                return _json(201, {"data": self._dataset_object(found)})
            dataset = self._datasets.get(params[0]) or next(
                (d for d in self._datasets.values() if d.name and d.name == params[0].split("~")[-1]), None
            )
            if dataset is None:
                return _error(404, "record-not-found", "Dataset was not found")
            if endpoint == "dataset.get":
                return _json(200, {"data": self._dataset_object(dataset)})
            if endpoint == "dataset.delete":
                del self._datasets[dataset.id]
                return _Response(204)
            if endpoint == "dataset.push":
                try:
                    count = _count_items(body)
                except (ValueError, UnicodeDecodeError):
                    return _error(400, "invalid-input", "The request body is not valid JSON")
                self.pushes.append(Push(dataset.id, count, headers.get("content-encoding")))
                dataset.item_count += count
                if self.record_items:
                    dataset.bodies.append(body)
                return _Response(201, b"{}")
            bodies = list(dataset.bodies)
            total = dataset.item_count
        items: list[Any] = []
        for raw in bodies:
            payload = json.loads(raw)
            items.extend(payload if isinstance(payload, list) else [payload])
        if query.get("desc") in ("1", "true"):
            items.reverse()
        offset = int(query.get("offset") or 0)
        limit = int(query.get("limit") or NO_LIMIT)
        page = items[offset : offset + limit]
        return _json(
            200,
            page,
            {
                "x-apify-pagination-total": str(total),
                "x-apify-pagination-offset": str(offset),
                "x-apify-pagination-count": str(len(page)),
                "x-apify-pagination-limit": str(limit),
                "x-apify-pagination-desc": "true" if query.get("desc") in ("1", "true") else "false",
            },
        )

    def _kv(
        self, endpoint: str, params: list[str], query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        with self._lock:
            if endpoint == "kv.create":
                name = query.get("name") or None
                found = next((s for s in self._stores.values() if name and s.name == name), None)
                if found is None:
                    found = _Store(f"store-{len(self._stores) + 1}", name, _now_iso())
                    self._stores[found.id] = found
                return _json(201, {"data": self._store_object(found)})
            store = self._stores.get(params[0]) or next(
                (s for s in self._stores.values() if s.name and s.name == params[0].split("~")[-1]), None
            )
            if store is None:
                return _error(404, "record-not-found", "Key-value store was not found")
            if endpoint == "kv.get":
                return _json(200, {"data": self._store_object(store)})
            if endpoint == "kv.delete":
                del self._stores[store.id]
                return _Response(204)
            if endpoint == "kv.keys":
                keys = sorted(store.records)
                start = query.get("exclusiveStartKey")
                if start:
                    keys = [k for k in keys if k > start]
                limit = int(query.get("limit") or 1000)
                page = keys[:limit]
                items = [
                    {"key": k, "size": len(store.records[k].value),
                     "recordPublicUrl": f"{self.base_url}/v2/key-value-stores/{store.id}/records/{k}"}
                    for k in page
                ]  # fmt: skip
                truncated = len(keys) > limit
                return _json(200, {"data": {
                    "items": items, "count": len(page), "limit": limit, "exclusiveStartKey": start,
                    "isTruncated": truncated, "nextExclusiveStartKey": page[-1] if truncated else None,
                }})  # fmt: skip
            key = params[1]
            if endpoint == "record.put":
                content_type = headers.get("content-type", "application/octet-stream")
                store.records[key] = Record(body, content_type)
                return _Response(201)
            if endpoint == "record.delete":
                store.records.pop(key, None)
                return _Response(204)
            record = store.records.get(key)
            if record is None:
                return _error(404, "record-not-found", "Record was not found")
            if endpoint == "record.head":
                return _Response(200, b"", record.content_type, {"X-Fake-Length": str(len(record.value))})
            return _Response(200, record.value, record.content_type)

    # ----- events websocket -----
    def _ws_main(self) -> None:
        asyncio.run(self._ws_serve())

    async def _ws_serve(self) -> None:
        from websockets.asyncio.server import ServerConnection, serve  # the SDK's own dependency

        async def handler(connection: ServerConnection) -> None:
            self._ws_clients.add(connection)
            with self._lock:
                self.ws_connections += 1
            try:
                await connection.wait_closed()
            finally:
                self._ws_clients.discard(connection)

        self._ws_loop = asyncio.get_running_loop()
        self._ws_stop = asyncio.Event()
        async with serve(handler, "127.0.0.1", 0) as server:
            self._ws_port = next(iter(server.sockets)).getsockname()[1]
            self._ws_ready.set()
            await self._ws_stop.wait()
            for client in list(self._ws_clients):
                with contextlib.suppress(Exception):
                    await client.close()


def main(argv: list[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT; print LISTENING and ENV first, a JSON stats line last."""
    parser = argparse.ArgumentParser(description="Fake Apify API (the SDK's platform calls) on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="apify-api-token-secret-9c1d")
    parser.add_argument("--input", help="JSON file written to the default store's INPUT record")
    parser.add_argument("--ppe-price", type=float, help="price of 'conversion-sent': makes the run pay-per-event")
    parser.add_argument("--max-total-charge-usd", type=float)
    parser.add_argument("--pricing-via", choices=("api", "env"), default="api")
    parser.add_argument("--record-items", action="store_true", help="keep pushed rows in memory")
    args = parser.parse_args(argv)
    prices = {"conversion-sent": args.ppe_price, "apify-default-dataset-item": 0.0} if args.ppe_price else None
    fake = FakeApify(
        token=args.token,
        event_prices=prices,
        max_total_charge_usd=args.max_total_charge_usd,
        pricing_via=args.pricing_via,
        record_items=args.record_items,
    )
    if args.input:
        with open(args.input, encoding="utf-8") as fh:
            fake.set_input(json.load(fh))
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    fake.start(args.port)
    print(f"LISTENING {fake.base_url}", flush=True)
    print(f"ENV {json.dumps(fake.actor_env())}", flush=True)
    while not stop.wait(0.2):
        pass
    fake.stop()
    print(json.dumps(fake.stats()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
