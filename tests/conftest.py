"""Run the actor the way a user does: `python -m src` on an INPUT in local Apify storage."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import httpx._transports.default as httpx_transports
import pytest
from fake_snap import FakeSnap

from src.net.transport import RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
CAPI_TOKEN = "capi-token-secret-4f9a"
OAUTH_TOKEN = "oauth-token-secret-77b1"
PRICE_USD = 0.01


@dataclass
class ActorRun:
    returncode: int
    stdout: str
    stderr: str
    storage: Path

    @property
    def rows(self) -> list[dict[str, Any]]:
        return _read_items(self.storage / "datasets" / "default")

    @property
    def output(self) -> dict[str, Any]:
        path = self.storage / "key_value_stores" / "default" / "OUTPUT.json"
        if not path.exists():
            path = self.storage / "key_value_stores" / "default" / "OUTPUT"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def charges(self) -> list[dict[str, Any]]:
        return _read_items(self.storage / "datasets" / "charging-log")

    @property
    def charged_conversions(self) -> int:
        return sum(c["charged_count"] for c in self.charges if c["event_name"] == "conversion-sent")

    def rows_by_status(self, status: str) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("status") == status]

    def everything_written(self) -> str:
        """Logs plus every file in storage except INPUT: where a leaked secret would show."""
        parts = [self.stdout, self.stderr]
        for path in sorted(self.storage.rglob("*")):
            if path.is_file() and not path.name.startswith("INPUT"):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def _read_items(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists():
        return []
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("__"))
    return [json.loads(p.read_text()) for p in files]


def actor_env(
    storage: Path,
    *,
    snap: FakeSnap | None = None,
    ppe: bool = False,
    max_charge_usd: float | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment `python -m src` runs in: local storage, the loopback Snap, optional PPE pricing."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("APIFY_", "ACTOR_", "SNAP_", "CRAWLEE_"))}
    run_env |= {"APIFY_LOCAL_STORAGE_DIR": str(storage), "PYTHONPATH": str(ROOT), "APIFY_LOG_LEVEL": "DEBUG"}
    if snap is not None:
        run_env |= {
            "SNAP_CAPI_BASE_URL": snap.base_url,
            "SNAP_ADS_API_BASE_URL": snap.base_url,
            "SNAP_AUTH_BASE_URL": snap.base_url,
        }
    if ppe:
        pricing = {
            "pricingModel": "PAY_PER_EVENT",
            "pricingPerEvent": {
                "actorChargeEvents": {
                    "conversion-sent": {"eventTitle": "Conversion sent", "eventPriceUsd": PRICE_USD},
                    "apify-default-dataset-item": {"eventTitle": "n/a", "eventPriceUsd": 0},
                }
            },
        }
        run_env |= {
            "ACTOR_TEST_PAY_PER_EVENT": "true",
            "APIFY_ACTOR_PRICING_INFO": json.dumps(pricing),
            "APIFY_CHARGED_ACTOR_EVENT_COUNTS": json.dumps({"conversion-sent": 0}),
        }
        if max_charge_usd is not None:
            run_env["ACTOR_MAX_TOTAL_CHARGE_USD"] = str(max_charge_usd)
    return run_env | (env or {})


def write_input(storage: Path, actor_input: dict[str, Any] | None) -> None:
    store = storage / "key_value_stores" / "default"
    store.mkdir(parents=True, exist_ok=True)
    if actor_input is not None:
        (store / "INPUT.json").write_text(json.dumps(actor_input))


def run_actor(
    workdir: Path,
    actor_input: dict[str, Any] | None,
    *,
    snap: FakeSnap | None = None,
    ppe: bool = False,
    max_charge_usd: float | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    storage: Path | None = None,
) -> ActorRun:
    storage = storage or workdir / "storage"
    write_input(storage, actor_input)
    run_env = actor_env(storage, snap=snap, ppe=ppe, max_charge_usd=max_charge_usd, env=env)
    done = subprocess.run(
        [sys.executable, "-m", "src"],
        cwd=workdir,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return ActorRun(done.returncode, done.stdout, done.stderr, storage)


def start_actor(
    workdir: Path, actor_input: dict[str, Any] | None, *, storage: Path | None = None, **env_options: Any
) -> subprocess.Popen[str]:
    """`python -m src` started, not awaited: for tests that kill or signal the run. Logs go to `actor.log`."""
    storage = storage or workdir / "storage"
    write_input(storage, actor_input)
    with (workdir / "actor.log").open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "src"],
            cwd=workdir,
            env=actor_env(storage, **env_options),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def snap() -> Iterator[FakeSnap]:
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN) as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def one_tls_context_per_configuration() -> Iterator[None]:
    """Every run makes its own httpx client, and each client builds a TLS context, loading the CA bundle (about
    30 ms, some 165 times a session). The tests build each configuration once and share it; what is verified and
    how is unchanged (the loopback fakes speak plain HTTP anyway)."""
    build = httpx_transports.create_ssl_context
    httpx_transports.create_ssl_context = functools.cache(build)
    try:
        yield
    finally:
        httpx_transports.create_ssl_context = build


@pytest.fixture
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry pauses of an in-process run (Snap, `eventsUrl`, the webhook: every `RetryPolicy`) recorded in
    order instead of slept: the test sees the waits the policy chose (Retry-After, backoff) without waiting
    them out. The policy's arithmetic itself is pinned in test_transport.py."""
    waits: list[float] = []
    chosen = RetryPolicy.delay

    def delay(self: RetryPolicy, attempt: int, response: httpx.Response | None) -> float:
        waits.append(chosen(self, attempt, response))
        return 0.0

    monkeypatch.setattr(RetryPolicy, "delay", delay)
    return waits


@dataclass
class WebhookReceiver:
    """A loopback endpoint for the actor's webhook POST; answers with `statuses` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            receiver.bodies.append(json.loads(self.rfile.read(length)))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook?secret=abc"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
