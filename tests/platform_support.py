"""Run the actor the way the Apify platform does: `python -m src` with `APIFY_IS_AT_HOME=1`, its input in
the INPUT record of the fake Apify API (`fake_apify.FakeApify`), the loopback Snap for Conversions API calls.

`run_on_platform` returns a `PlatformRun` shaped like conftest's `ActorRun`: rows, output, charges, status
messages, exit code, logs; `start_on_platform` starts the run without waiting (for events and signals).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_apify import Charge, FakeApify, StatusMessage
from fake_snap import FakeSnap

from src.net.url_guard import ALLOW_PRIVATE_ENV

ROOT = Path(__file__).resolve().parent.parent
CONVERSION_EVENT = "conversion-sent"
PRICE_USD = 0.01
#: What the platform bills for this actor: one price per conversion, dataset rows free (as the README asks).
EVENT_PRICES = {CONVERSION_EVENT: PRICE_USD, "apify-default-dataset-item": 0.0}


@dataclass
class PlatformRun:
    returncode: int
    stdout: str
    stderr: str
    apify: FakeApify

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.apify.items()

    @property
    def output(self) -> dict[str, Any]:
        output = self.apify.record_json("OUTPUT")
        return output if isinstance(output, dict) else {}

    @property
    def charges(self) -> list[Charge]:
        """Charge calls the platform counted (a repeated idempotency key is not counted)."""
        return [c for c in self.apify.charges if not c.duplicate]

    @property
    def charged_conversions(self) -> int:
        return self.apify.charged_count(CONVERSION_EVENT)

    @property
    def status_messages(self) -> list[StatusMessage]:
        return list(self.apify.status_messages)

    @property
    def final_status(self) -> StatusMessage | None:
        return self.apify.final_status

    def rows_by_status(self, status: str) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("status") == status]

    def everything_written(self) -> str:
        """Logs, status messages, dataset rows and every record except INPUT: where a leaked secret would show."""
        parts = [self.stdout, self.stderr]
        parts += [str(s.message) for s in self.apify.status_messages]
        parts += [str(row) for row in self.rows]
        parts += [r.value.decode("utf-8", "replace") for k, r in self.apify.records().items() if k != "INPUT"]
        return "\n".join(parts)


def platform_env(
    apify: FakeApify, workdir: Path, *, snap: FakeSnap | None = None, env: dict[str, str] | None = None
) -> dict[str, str]:
    """A clean environment plus what the platform sets; local storage points at an empty folder, so anything
    the actor wrote locally instead of through the API would show up there (and nowhere a test looks)."""
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("APIFY_", "ACTOR_", "SNAP_", "CRAWLEE_"))}
    run_env |= {
        "PYTHONPATH": str(ROOT),
        "APIFY_LOG_LEVEL": "DEBUG",
        "APIFY_LOCAL_STORAGE_DIR": str(workdir / "local-storage-unused"),
        ALLOW_PRIVATE_ENV: "1",  # the tests' file server and webhook listen on loopback
    }
    run_env |= apify.actor_env()
    if snap is not None:
        run_env |= {
            "SNAP_CAPI_BASE_URL": snap.base_url,
            "SNAP_ADS_API_BASE_URL": snap.base_url,
            "SNAP_AUTH_BASE_URL": snap.base_url,
        }
    return run_env | (env or {})


def run_on_platform(
    workdir: Path,
    actor_input: Any,
    *,
    apify: FakeApify,
    snap: FakeSnap | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> PlatformRun:
    """Write INPUT into the fake's default store, run `python -m src` to the end, return what it left."""
    if actor_input is not None:
        apify.set_input(actor_input)
    done = subprocess.run(
        [sys.executable, "-m", "src"],
        cwd=workdir,
        env=platform_env(apify, workdir, snap=snap, env=env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlatformRun(done.returncode, done.stdout, done.stderr, apify)


def start_on_platform(
    workdir: Path,
    actor_input: Any,
    *,
    apify: FakeApify,
    snap: FakeSnap | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """`python -m src` started, not awaited: for tests that send platform events or signals. Logs go to
    `workdir/actor.log`; `finish` waits and wraps the result."""
    if actor_input is not None:
        apify.set_input(actor_input)
    with (workdir / "actor.log").open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "src"],
            cwd=workdir,
            env=platform_env(apify, workdir, snap=snap, env=env),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def finish(process: subprocess.Popen[str], workdir: Path, apify: FakeApify, timeout: float = 180) -> PlatformRun:
    returncode = process.wait(timeout=timeout)
    return PlatformRun(returncode, (workdir / "actor.log").read_text(), "", apify)
