"""Loopback fake of Snap's Conversions API v3, Marketing API pixel reads and OAuth refresh.

Two uses:

* in tests: ``with FakeSnap(...) as snap: ...`` then point the actor at ``snap.base_url``;
* as a process for benchmarks::

      python tests/fake_snap.py --port 0 --token T --oauth-token O

  prints ``LISTENING http://127.0.0.1:PORT``, serves until SIGTERM/SIGINT, then prints
  ``{"accepted": N, "requests": M, "duplicates": D}``.

Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import json
import math
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from loopback_http import FakeHandler, FakeServer

EVENT_NAMES = frozenset(
    {
        "PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "ADD_TO_WISHLIST", "ADD_BILLING", "START_CHECKOUT",
        "PURCHASE", "SEARCH", "LIST_VIEW", "SIGN_UP", "SAVE", "SUBSCRIBE", "AD_CLICK", "AD_VIEW",
        "COMPLETE_TUTORIAL", "LEVEL_COMPLETE", "INVITE", "LOGIN", "SHARE", "RESERVE",
        "ACHIEVEMENT_UNLOCKED", "SPENT_CREDITS", "RATE", "START_TRIAL", "APP_INSTALL", "APP_OPEN",
        "CUSTOM_EVENT_1", "CUSTOM_EVENT_2", "CUSTOM_EVENT_3", "CUSTOM_EVENT_4", "CUSTOM_EVENT_5",
    }
)  # fmt: skip
ACTION_SOURCES = frozenset({"WEB", "MOBILE_APP", "OFFLINE"})
HASHED_FIELDS = frozenset({"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"})
PATH_KINDS = frozenset({"events", "validate", "pixels", "pixel", "logs", "stats", "token", "eqs"})
MAX_EVENTS_PER_REQUEST = 2000
MAX_EVENT_AGE_S = 37 * 86400
MAX_EVENT_FUTURE_S = 3600
MS_TIMESTAMP_THRESHOLD = 10**11
TEST_LOG_RETENTION_S = 86400

_CAPI_KINDS = frozenset({"events", "validate", "logs", "stats"})
_ADS_KINDS = frozenset({"pixels", "pixel", "eqs"})
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX64_ANY_CASE = re.compile(r"[0-9a-fA-F]{64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_NUMERIC = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*")

R_BAD_NAME = "Unrecognized event name"
R_MS_TIME = "invalid Unix timestamp"
R_BAD_TIME = "Timestamp invalid or out of range"
R_BAD_SOURCE = "Unrecognized action source"
R_NO_URL = "event_source_url is required for WEB events"
R_HASHED_IP = "hashed IP address is not accepted"
R_NO_PII = "Insufficient PII"
R_CURRENCY = "Missing or invalid custom_data.currency for PURCHASE"
R_VALUE = "Missing or invalid custom_data.value for PURCHASE"
R_NOT_OBJECT = "Event must be a JSON object"
R_NO_EXTINFO = "app_data.extinfo is required for MOBILE_APP events"
R_URL_SCHEME = "event_source_url must include the protocol"
R_BAD_CURRENCY = "Invalid custom_data.currency"
R_OK = "Events have been processed successfully."


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, consumed by one request of a path kind (see ``FakeSnap.add_faults``)."""

    kind: str  # "status" | "drop" | "drop_after_accept" | "delay" | "hold" | "hold_then_drop"
    code: int = 0
    body: Any = None
    headers: Mapping[str, str] | None = None
    seconds: float = 0.0
    gate: threading.Event | None = None

    @classmethod
    def status(cls, code: int, body: Any = None, headers: Mapping[str, str] | None = None) -> Fault:
        """Answer with ``code`` (body: dict/list -> JSON, str/bytes -> raw; None -> a Snap-like error)."""
        return cls("status", code=code, body=body, headers=dict(headers or {}))

    @classmethod
    def drop(cls) -> Fault:
        """Read the body, then close the connection without a response; nothing accepted."""
        return cls("drop")

    @classmethod
    def drop_after_accept(cls) -> Fault:
        """Handle normally (events accepted), then close the connection without a response."""
        return cls("drop_after_accept")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Sleep ``seconds``, then handle normally."""
        return cls("delay", seconds=seconds)

    @classmethod
    def hold(cls, gate: threading.Event, timeout: float = 60.0) -> Fault:
        """Wait until the test sets ``gate`` (at most ``timeout`` seconds), then handle normally: a request kept
        in flight exactly until the test has done what it needs done meanwhile (an abort, a signal)."""
        return cls("hold", seconds=timeout, gate=gate)

    @classmethod
    def hold_then_drop(cls, gate: threading.Event, timeout: float = 60.0) -> Fault:
        """Like ``hold``, then close the connection without handling the request: nothing accepted (a request
        still in flight when its sender was killed)."""
        return cls("hold_then_drop", seconds=timeout, gate=gate)


@dataclass
class RecordedRequest:
    """One request as the server saw it. ``headers`` keys are lower-case; ``status`` is None if dropped."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    form: dict[str, str] | None
    kind: str | None
    fault: Fault | None = None
    status: int | None = None
    event_count: int = 0


@dataclass
class _Response:
    code: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(code: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Response:
    return _Response(code, json.dumps(payload).encode(), headers=dict(headers or {}))


def make_pixel(pixel_id: str, ad_account_id: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """Build a pixel dict in the Marketing API shape (convenience for tests)."""
    pixel: dict[str, Any] = {
        "id": pixel_id,
        "name": name or f"Pixel {pixel_id}",
        "ad_account_id": ad_account_id,
        "status": "ACTIVE",
        "effective_status": "ACTIVE",
        "pixel_javascript": f"<script>snaptr('init', '{pixel_id}');</script>",
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
    }
    pixel.update(extra)
    return pixel


def _hashed_ok(value: Any, _match: Callable[[str], Any] = _HEX64.fullmatch) -> bool:
    if type(value) is str:
        return _match(value) is not None
    if type(value) is list:
        for item in value:  # noqa: SIM110 - a plain loop beats all(genexpr) on the hot path
            if type(item) is not str or _match(item) is None:
                return False
        return True
    return False


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and _NUMERIC.fullmatch(value) is not None


def check_event(event: Any, now: float, rejects: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Return ``[(field, reason), ...]`` for every rule ``event`` breaks (empty when valid)."""
    if type(event) is not dict:
        return [("event", R_NOT_OBJECT)]
    errors: list[tuple[str, str]] = []
    get = event.get
    name = get("event_name")
    if type(name) is not str or name not in EVENT_NAMES:
        errors.append(("event_name", R_BAD_NAME))
    ts = get("event_time")
    if type(ts) is not int:
        errors.append(("event_time", R_BAD_TIME))
    elif ts > MS_TIMESTAMP_THRESHOLD:
        errors.append(("event_time", R_MS_TIME))
    elif ts < now - MAX_EVENT_AGE_S or ts > now + MAX_EVENT_FUTURE_S:
        errors.append(("event_time", R_BAD_TIME))
    source = get("action_source")
    if type(source) is not str or source not in ACTION_SOURCES:
        errors.append(("action_source", R_BAD_SOURCE))
    elif source == "WEB":
        url = get("event_source_url")
        if type(url) is not str or not url:
            errors.append(("event_source_url", R_NO_URL))
    elif source == "MOBILE_APP":
        app = get("app_data")
        if type(app) is not dict or not app.get("extinfo"):
            errors.append(("app_data.extinfo", R_NO_EXTINFO))
    url = get("event_source_url")
    if type(url) is str and url and _URL_SCHEME.match(url) is None:
        errors.append(("event_source_url", R_URL_SCHEME))
    ud = get("user_data")
    if type(ud) is not dict:
        ud = {}
    for key, value in ud.items():
        if key in HASHED_FIELDS and not _hashed_ok(value):
            errors.append((f"user_data.{key}", f"Unhashed PII in user_data.{key}"))
    ud_get = ud.get
    ip = ud_get("client_ip_address")
    if type(ip) is str and len(ip) >= 64 and _HEX64_ANY_CASE.fullmatch(ip.strip()):
        errors.append(("user_data.client_ip_address", R_HASHED_IP))
    if not (
        ud_get("em")
        or ud_get("ph")
        or (source == "MOBILE_APP" and ud_get("madid"))
        or (ip and ud_get("client_user_agent"))
    ):
        errors.append(("user_data", R_NO_PII))
    cd = get("custom_data")
    if type(cd) is not dict:
        cd = {}
    currency = cd.get("currency")
    if name != "PURCHASE" and currency is not None and (type(currency) is not str or not _CURRENCY.fullmatch(currency)):
        errors.append(("custom_data.currency", R_BAD_CURRENCY))
    if name == "PURCHASE":
        if type(currency) is not str or _CURRENCY.fullmatch(currency) is None:
            errors.append(("custom_data.currency", R_CURRENCY))
        if not _is_number(cd.get("value")):
            errors.append(("custom_data.value", R_VALUE))
    if rejects:
        reason = rejects.get(str(get("event_id")))
        if reason is not None:
            errors.append(("event_id", reason))
    return errors


def error_code(field: str) -> str:
    """The code the fake gives a broken rule, in the style of Snap's `errors.codes` (Snap's own list is unpublished)."""
    return "INVALID_" + re.sub(r"[^A-Z0-9]+", "_", field.upper()).strip("_")


def error_details(errs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Snap's `ErrorDetails` (Java v3 SDK `api/openapi.yaml`): `{"codes": [...], "error_msgs": [...]}`."""
    return {"codes": [error_code(field) for field, _ in errs], "error_msgs": [reason for _, reason in errs]}


def make_quality_scores(pixel_id: str) -> dict[str, Any]:
    """A Signal Readiness answer for ``pixel_id`` (see docs/snap-fidelity.md for where its shape comes from)."""
    return {
        "request_status": "SUCCESS",
        "request_id": uuid.uuid4().hex,
        "pixel_id": pixel_id,
        "event_quality_scores": [
            {
                "event_type": "PURCHASE",
                "action_source": "WEB",
                "event_source": "API",
                "score": "GOOD",
                "recommendations": [
                    {"priority": "P1", "parameter": "sc_click_id",
                     "description": "Send the click ID (ScCid) with more of your events."},
                    {"priority": "P2", "parameter": "ph",
                     "description": "Send a hashed phone number when you have one."},
                ],
            },
            {
                "event_type": "SIGN_UP",
                "action_source": "WEB",
                "event_source": "API",
                "score": "POOR",
                "recommendations": [
                    {"priority": "P0", "parameter": "em",
                     "description": "Send a hashed email address with every event."},
                ],
            },
        ],
    }  # fmt: skip


def _reject_only(event: Any, rejects: Mapping[str, str]) -> list[tuple[str, str]]:
    if not isinstance(event, dict):
        return [("event", R_NOT_OBJECT)]
    if rejects:
        reason = rejects.get(str(event.get("event_id")))
        if reason is not None:
            return [("event_id", reason)]
    return []


def _route(method: str, path: str) -> tuple[str | None, list[str]]:
    """Map method + path to (path kind, path params); kind None means 404."""
    parts = [unquote(p) for p in path.split("/")[1:]]
    n = len(parts)
    if n >= 3 and parts[0] == "v3" and parts[2] == "events" and parts[1]:
        tail = parts[3:]
        if method == "POST" and not tail:
            return "events", [parts[1]]
        if method == "POST" and tail == ["validate"]:
            return "validate", [parts[1]]
        if method == "GET" and tail == ["validate", "logs"]:
            return "logs", [parts[1]]
        if method == "GET" and tail == ["validate", "stats"]:
            return "stats", [parts[1]]
    elif method == "GET" and n == 4 and parts[:2] == ["v1", "adaccounts"] and parts[3] == "pixels" and parts[2]:
        return "pixels", [parts[2]]
    elif method == "GET" and n == 3 and parts[:2] == ["v1", "pixels"] and parts[2]:
        return "pixel", [parts[2]]
    elif method == "GET" and n == 4 and parts[:2] == ["v1", "pixels"] and parts[3] == "event_quality_scores":
        return "eqs", [parts[2]]
    elif method == "POST" and parts == ["login", "oauth2", "access_token"]:
        return "token", []
    return None, []


class _Server(FakeServer):
    fake: FakeSnap


class _Handler(FakeHandler):
    server: _Server

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad Content-Length or chunk size")
            return
        resp = self.server.fake._dispatch(self.command, self.path, dict(self.headers.items()), body)
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

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class FakeSnap:
    """Threaded loopback server that behaves like Snap's CAPI v3, Ads API pixel reads and OAuth refresh."""

    def __init__(
        self,
        *,
        capi_token: str = "capi-token-secret",
        oauth_token: str = "oauth-token-secret",
        refresh_token: str = "refresh-secret",
        client_id: str = "cid",
        client_secret: str = "csecret",
        pixels: dict[str, list[dict[str, Any]]] | None = None,
        now: Callable[[], float] = time.time,
        validate_rules: bool = True,
        record_bodies: bool = True,
        answer_with_index: bool = True,
    ) -> None:
        """Configure credentials, pixels per ad account, clock, and recording.

        ``record_bodies=False`` keeps counters and event ids but not event dicts or request bodies
        (``accepted``/``validated`` stay empty); the CLI uses it so 1M-event benchmarks stay small.

        ``answer_with_index`` picks how a batch with a bad event is refused: True names the first bad
        event (``{"status", "reason", "event": i, "errors": {"codes", "error_msgs"}}``, the Java v3
        SDK's ``EventResponse``); False answers as real Snap often does, with no index and a top-level
        ``error_msgs`` list (``{"status": "INVALID", "reason", "error_msgs": [...]}``).
        ``quality_scores`` maps a pixel id to its Signal Readiness answer (default: ``make_quality_scores``).
        """
        self.capi_token = capi_token
        self.oauth_token = oauth_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.pixels: dict[str, list[dict[str, Any]]] = {
            acct: [{"ad_account_id": acct, **p} for p in plist] for acct, plist in (pixels or {}).items()
        }
        self.now = now
        self.validate_rules = validate_rules
        self.record_bodies = record_bodies
        self.answer_with_index = answer_with_index
        self.quality_scores: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.accepted: list[dict[str, Any]] = []
        self.validated: list[dict[str, Any]] = []
        self.accepted_count = 0
        self._lock = threading.Lock()
        self._faults: dict[str, collections.deque[Fault]] = {k: collections.deque() for k in PATH_KINDS}
        self._rejects: dict[str, str] = {}
        self._accepted_ids: list[str] = []
        self._id_counts: dict[str, int] = {}
        self._dups: list[str] = []
        self._test_logs: dict[str, list[dict[str, Any]]] = {}
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----
    def start(self) -> FakeSnap:
        """Bind 127.0.0.1 on an ephemeral port and serve in a daemon thread."""
        return self.start_on(0)

    def start_on(self, port: int) -> FakeSnap:
        """Like ``start`` but on a given port (0 = ephemeral)."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-snap", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open (keep-alive) connection."""
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

    def __enter__(self) -> FakeSnap:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._server is None:
            raise RuntimeError("FakeSnap is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; serves CAPI, Ads API and auth paths."""
        return f"http://127.0.0.1:{self.port}"

    # ----- test controls -----
    def add_faults(self, path_kind: str, *faults: Fault) -> None:
        """Queue faults for ``path_kind``; each incoming request of that kind consumes one, in order."""
        if path_kind not in PATH_KINDS:
            raise ValueError(f"unknown path kind {path_kind!r}; expected one of {sorted(PATH_KINDS)}")
        with self._lock:
            self._faults[path_kind].extend(faults)

    def pending_faults(self, path_kind: str) -> int:
        """How many queued faults of ``path_kind`` are still unconsumed."""
        with self._lock:
            return len(self._faults[path_kind])

    def reject_event_ids(self, mapping: dict[str, str]) -> None:
        """Make events with these event_ids fail server-side validation with the given reason."""
        with self._lock:
            self._rejects = {**self._rejects, **mapping}

    def accepted_event_ids(self) -> list[str]:
        """event_id (as str) of every accepted event that has one, in acceptance order."""
        with self._lock:
            return list(self._accepted_ids)

    def duplicates(self) -> list[str]:
        """Distinct event_ids accepted more than once, in order of their second acceptance."""
        with self._lock:
            return list(self._dups)

    def stats(self) -> dict[str, int]:
        """``{"accepted": events accepted, "requests": requests seen, "duplicates": len(duplicates())}``."""
        with self._lock:
            return {
                "accepted": self.accepted_count,
                "requests": len(self.requests),
                "duplicates": len(self._dups),
            }

    # ----- internals -----
    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Response | None:
        """Record, apply a fault if queued, and handle one request; None means drop the connection."""
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        kind, params = _route(method, split.path)
        lower_headers = {k.lower(): v for k, v in headers.items()}
        payload: Any = None
        form: dict[str, str] | None = None
        bad_json = False
        if kind in ("events", "validate"):
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                bad_json = True
        elif kind == "token":
            text = body.decode("utf-8", "replace")
            form = {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}
        events = payload.get("data") if isinstance(payload, dict) else None
        rec = RecordedRequest(
            method=method,
            path=split.path,
            query=query,
            headers=lower_headers,
            json=payload if self.record_bodies else None,
            form=form,
            kind=kind,
            event_count=len(events) if isinstance(events, list) else 0,
        )
        with self._lock:
            self.requests.append(rec)
            queue = self._faults.get(kind or "")
            fault = queue.popleft() if queue else None
        rec.fault = fault
        if fault is not None:
            if fault.kind == "status":
                resp = self._fault_response(kind or "", fault)
                rec.status = resp.code
                return resp
            if fault.kind == "drop":
                return None
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            if fault.kind in ("hold", "hold_then_drop") and fault.gate is not None:
                fault.gate.wait(fault.seconds)
            if fault.kind == "hold_then_drop":
                return None
        resp = self._handle(kind, params, query, lower_headers, payload, bad_json, form)
        if fault is not None and fault.kind == "drop_after_accept":
            return None
        rec.status = resp.code
        return resp

    def _fault_response(self, kind: str, fault: Fault) -> _Response:
        headers = dict(fault.headers or {})
        body = fault.body
        if body is None:
            try:
                phrase = HTTPStatus(fault.code).phrase
            except ValueError:
                phrase = "Error"
            if kind in _ADS_KINDS:
                body = self._ads_error_payload(phrase, f"E{fault.code}")
            elif kind == "token":
                body = {"error": "server_error", "error_description": phrase}
            else:
                body = {"status": "INVALID", "reason": phrase}
        if isinstance(body, bytes | str):
            raw = body.encode() if isinstance(body, str) else body
            return _Response(fault.code, raw, content_type="text/plain; charset=utf-8", headers=headers)
        return _json_response(fault.code, body, headers)

    def _handle(
        self,
        kind: str | None,
        params: list[str],
        query: dict[str, str],
        headers: dict[str, str],
        payload: Any,
        bad_json: bool,
        form: dict[str, str] | None,
    ) -> _Response:
        if kind in _CAPI_KINDS:
            if query.get("access_token") != self.capi_token:
                return _json_response(401, {"status": "INVALID", "reason": "Unauthorized: invalid access token"})
            if kind == "logs":
                return self._logs(params[0])
            if kind == "stats":
                return self._stats(params[0])
            events = payload.get("data") if isinstance(payload, dict) else None
            if bad_json or not isinstance(events, list):
                return _json_response(
                    400,
                    {
                        "status": "INVALID",
                        "reason": "Invalid request body: expected a JSON object with a 'data' array",
                    },
                )
            n_events = len(events)
            if not 1 <= n_events <= MAX_EVENTS_PER_REQUEST:
                return _json_response(
                    400,
                    {
                        "status": "INVALID",
                        "reason": f"Request needs 1 to {MAX_EVENTS_PER_REQUEST} events, got {n_events}",
                    },
                )
            if kind == "events":
                return self._events(events)
            return self._validate(params[0], events)
        if kind in _ADS_KINDS:
            accepted_tokens = {f"Bearer {self.oauth_token}"}
            if kind == "eqs":  # Signal Readiness takes the long-lived Conversions API token too
                accepted_tokens.add(f"Bearer {self.capi_token}")
            if headers.get("authorization") not in accepted_tokens:
                return _json_response(401, self._ads_error_payload("Unauthorized", "E1002"))
            if kind == "eqs":
                return _json_response(200, self.quality_scores.get(params[0]) or make_quality_scores(params[0]))
            if kind == "pixels":
                return self._list_pixels(params[0], query)
            return self._get_pixel(params[0])
        if kind == "token":
            return self._token(form or {})
        return _json_response(404, {"error": "not_found", "reason": "No such endpoint"})

    # CAPI
    def _events(self, events: list[Any]) -> _Response:
        now = self.now()
        rejects = self._rejects
        if self.validate_rules or rejects or not all(type(ev) is dict for ev in events):
            for index, ev in enumerate(events):
                errs = check_event(ev, now, rejects) if self.validate_rules else _reject_only(ev, rejects)
                if errs:
                    if self.answer_with_index:
                        body = {
                            "status": "INVALID",
                            "reason": errs[0][1],
                            "event": index,
                            "errors": error_details(errs),
                        }
                    else:
                        body = {"status": "INVALID", "reason": errs[0][1], "error_msgs": [r for _, r in errs]}
                    return _json_response(400, body)
        with self._lock:
            if self.record_bodies:
                self.accepted.extend(events)
            self.accepted_count += len(events)
            ids, counts, dups = self._accepted_ids, self._id_counts, self._dups
            for ev in events:
                eid = ev.get("event_id")
                if eid is None:
                    continue
                eid = eid if isinstance(eid, str) else str(eid)
                ids.append(eid)
                seen = counts.get(eid, 0)
                counts[eid] = seen + 1
                if seen == 1:
                    dups.append(eid)
        return _json_response(200, {"status": "VALID", "reason": R_OK})

    def _validate(self, asset_id: str, events: list[Any]) -> _Response:
        now = self.now()
        ts_ms = str(int(now * 1000))
        rejects = self._rejects
        event_logs: list[dict[str, Any]] = []
        test_logs: list[dict[str, Any]] = []
        for index, ev in enumerate(events):
            errs = check_event(ev, now, rejects) if self.validate_rules else _reject_only(ev, rejects)
            status = "INVALID" if errs else "VALID"
            records = [reason for _, reason in errs]
            log: dict[str, Any] = {"event": index, "status": status, "warnings": []}
            if errs:
                log["errors"] = error_details(errs)
            event_logs.append(log)
            entry: dict[str, Any] = {
                "timestamp": ts_ms,
                "status": status,
                "integration": (ev.get("integration") if isinstance(ev, dict) else None) or "DIRECT",
                "warning_records": [],
                "error_records": list(records),
            }
            if not errs:
                entry["event_metadata"] = dict(ev)
            test_logs.append(entry)
        with self._lock:
            if self.record_bodies:
                self.validated.extend(ev for ev in events if isinstance(ev, dict))
            self._test_logs.setdefault(asset_id, []).extend(test_logs)
        invalid = any(log["status"] == "INVALID" for log in event_logs)
        return _json_response(
            200,
            {
                "status": "INVALID" if invalid else "VALID",
                "test_event": True,
                "reason": "One or more events are invalid." if invalid else "All events are valid.",
                "event_logs": event_logs,
            },
        )

    def _recent_logs(self, asset_id: str) -> tuple[list[dict[str, Any]], float]:
        now_ms = self.now() * 1000
        cutoff = now_ms - TEST_LOG_RETENTION_S * 1000
        with self._lock:
            logs = [e for e in self._test_logs.get(asset_id, []) if int(e["timestamp"]) >= cutoff]
            self._test_logs[asset_id] = logs
            return list(reversed(logs)), now_ms

    def _logs(self, asset_id: str) -> _Response:
        logs, _ = self._recent_logs(asset_id)
        if not logs:
            return _json_response(200, {"status": "SUCCESS", "reason": "No logs found.", "logs": []})
        return _json_response(200, {"status": "SUCCESS", "reason": "Logs for asset id processed.", "logs": logs})

    def _stats(self, asset_id: str) -> _Response:
        logs, now_ms = self._recent_logs(asset_id)
        latest = int(logs[0]["timestamp"]) if logs else 0
        past_hour = sum(1 for e in logs if int(e["timestamp"]) >= now_ms - 3_600_000)
        return _json_response(
            200,
            {
                "status": "SUCCESS",
                "reason": "Stats for asset id processed.",
                "stats": {"test": {"latest_event_ts": latest, "event_count_past_hour": past_hour}},
            },
        )

    # Marketing API
    @staticmethod
    def _ads_error_payload(debug: str, error_code: str, display: str | None = None) -> dict[str, Any]:
        return {
            "request_status": "ERROR",
            "request_id": uuid.uuid4().hex,
            "debug_message": debug,
            "display_message": display or "We're sorry, but the requested resource could not be served.",
            "error_code": error_code,
        }

    def _list_pixels(self, ad_account_id: str, query: dict[str, str]) -> _Response:
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            limit = -1
        if not 50 <= limit <= 1000:
            return _json_response(400, self._ads_error_payload("limit must be between 50 and 1000", "E1001"))
        offset = 0
        cursor = query.get("cursor")
        if cursor is not None:
            try:
                offset = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("offset:"))
            except (ValueError, binascii.Error):
                return _json_response(400, self._ads_error_payload("Invalid cursor", "E1001"))
        with self._lock:
            pixels = self.pixels.get(ad_account_id)
            page = [dict(p) for p in pixels[offset : offset + limit]] if pixels is not None else []
            total = len(pixels) if pixels is not None else 0
        if pixels is None:
            return _json_response(404, self._ads_error_payload(f"Ad account {ad_account_id} was not found", "E3003"))
        body: dict[str, Any] = {"request_status": "SUCCESS", "request_id": uuid.uuid4().hex}
        if offset + limit < total:
            next_cursor = base64.urlsafe_b64encode(f"offset:{offset + limit}".encode()).decode()
            body["paging"] = {
                "next_link": f"{self.base_url}/v1/adaccounts/{quote(ad_account_id, safe='')}/pixels"
                f"?limit={limit}&cursor={quote(next_cursor, safe='')}"
            }
        body["pixels"] = [{"sub_request_status": "SUCCESS", "pixel": p} for p in page]
        return _json_response(200, body)

    def _get_pixel(self, pixel_id: str) -> _Response:
        with self._lock:
            found = next((dict(p) for ps in self.pixels.values() for p in ps if p.get("id") == pixel_id), None)
        if found is None:
            return _json_response(404, self._ads_error_payload(f"Pixel {pixel_id} was not found", "E3003"))
        return _json_response(
            200,
            {
                "request_status": "SUCCESS",
                "request_id": uuid.uuid4().hex,
                "pixels": [{"sub_request_status": "SUCCESS", "pixel": found}],
            },
        )

    # Auth
    def _token(self, form: dict[str, str]) -> _Response:
        expected = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }
        if any(form.get(k) != v for k, v in expected.items()):
            return _json_response(400, {"error": "invalid_grant"})
        return _json_response(
            200,
            {
                "access_token": self.oauth_token,
                "token_type": "Bearer",
                "expires_in": 1800,
                "refresh_token": self.refresh_token,
            },
        )


def main(argv: list[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT, print LISTENING first and a JSON stats line last."""
    parser = argparse.ArgumentParser(description="Fake Snap CAPI v3 / Ads API server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="capi-token-secret", help="CAPI access_token")
    parser.add_argument("--oauth-token", default="oauth-token-secret")
    parser.add_argument("--refresh-token", default="refresh-secret")
    parser.add_argument("--client-id", default="cid")
    parser.add_argument("--client-secret", default="csecret")
    parser.add_argument("--pixels", help="JSON file: {ad_account_id: [pixel, ...]}")
    parser.add_argument("--no-validate", action="store_true", help="skip per-event rule checks")
    parser.add_argument("--record-bodies", action="store_true", help="keep event dicts in memory")
    parser.add_argument("--no-index", action="store_true", help="refuse bad batches without an event index")
    args = parser.parse_args(argv)
    pixels = None
    if args.pixels:
        with open(args.pixels, encoding="utf-8") as fh:
            pixels = json.load(fh)
    snap = FakeSnap(
        capi_token=args.token,
        oauth_token=args.oauth_token,
        refresh_token=args.refresh_token,
        client_id=args.client_id,
        client_secret=args.client_secret,
        pixels=pixels,
        validate_rules=not args.no_validate,
        record_bodies=args.record_bodies,
        answer_with_index=not args.no_index,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    snap.start_on(args.port)
    print(f"LISTENING {snap.base_url}", flush=True)
    while not stop.wait(0.2):
        pass
    snap.stop()
    print(json.dumps(snap.stats()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
