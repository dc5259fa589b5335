"""The actor run in-process: `main.execute` on in-memory platform interfaces, no subprocess, no SDK.

`run_in_process` answers like `conftest.run_actor` (rows, OUTPUT, charges, logs), in a fraction of the
time. Tests of the process boundary itself (entry point, storage on disk, signals, SDK charging) keep
`run_actor`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from conftest import PRICE_USD
from fake_snap import FakeSnap
from memory_platform import MemoryCharging, MemoryEvents, MemoryStore, memory_platform

from src.main import execute
from src.platform import RunEdge


@dataclass
class InProcessRun:
    returncode: int
    stderr: str
    rows: list[dict[str, Any]]
    records: dict[str, Any]
    charging: MemoryCharging
    status_messages: list[str] = field(default_factory=list)
    stdout: str = ""
    #: The run's final status message (what `main.main` hands `Actor.exit` / `Actor.fail`).
    final_message: str = ""

    @property
    def output(self) -> dict[str, Any]:
        return dict(self.records.get("OUTPUT") or {})

    @property
    def charges(self) -> list[dict[str, Any]]:
        return [{"event_name": name, "charged_count": count, "key": key} for name, count, key in self.charging.charges]

    @property
    def charged_conversions(self) -> int:
        return sum(c["charged_count"] for c in self.charges if c["event_name"] == "conversion-sent")

    def rows_by_status(self, status: str) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("status") == status]

    def everything_written(self) -> str:
        """Logs, rows, records and status messages: where a leaked secret would show."""
        records = {key: value if isinstance(value, str) else json.dumps(value) for key, value in self.records.items()}
        return "\n".join([self.stderr, json.dumps(self.rows), *records.values(), *self.status_messages])


@contextmanager
def _environment(snap: FakeSnap | None) -> Iterator[None]:
    keys = ("SNAP_CAPI_BASE_URL", "SNAP_ADS_API_BASE_URL", "SNAP_AUTH_BASE_URL")
    saved = {key: os.environ.get(key) for key in keys}
    for key in keys:
        os.environ.pop(key, None)
        if snap is not None:
            os.environ[key] = snap.base_url
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _captured_logs() -> Iterator[io.StringIO]:
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    core = logging.getLogger("src")
    level = core.level
    core.addHandler(handler)
    core.setLevel(logging.DEBUG)
    try:
        yield text
    finally:
        core.removeHandler(handler)
        core.setLevel(level)


def run_in_process(
    actor_input: dict[str, Any] | None,
    *,
    snap: FakeSnap | None = None,
    ppe: bool = False,
    max_charge_usd: float | None = None,
    datasets: dict[str, list[Any]] | None = None,
    events: MemoryEvents | None = None,
    ledger: MemoryStore | None = None,
    store: MemoryStore | None = None,
    charging: MemoryCharging | None = None,
) -> InProcessRun:
    """`ledger`: the named store of events Snap accepted; pass the same `MemoryStore` to two runs to have the
    later one see what the earlier one sent (a fresh, empty one otherwise). `store` (the run's key-value store,
    where the checkpoint lives) and `charging`: pass the same ones to two runs to have the later one be another
    attempt of the same run (a migration, a resurrection); a `charging` given overrides `max_charge_usd`."""
    rows: list[dict[str, Any]] = []
    records: dict[str, Any] = {}
    statuses: list[str] = []
    limit = int(max_charge_usd / PRICE_USD + 1e-9) if ppe and max_charge_usd is not None else None
    charging = charging if charging is not None else MemoryCharging(limit=limit)

    async def push(batch: list[dict[str, Any]]) -> None:
        rows.extend(json.loads(json.dumps(batch)))

    async def count(fallback: int) -> int:
        return fallback

    async def status(message: str) -> None:
        statuses.append(message)

    async def save(key: str, value: Any, content_type: str | None) -> None:
        records[key] = value

    edge = RunEdge(
        platform=memory_platform(
            datasets,
            store=store,
            ledger=ledger if ledger is not None else MemoryStore(),
            charging=charging,
            events=events,
        ),
        run_id="local",
        push_rows=push,
        count_rows=count,
        set_status=status,
        save=save,
        record_url=lambda key: None,
        dataset_id=None,
        dataset_items_url=None,
        allow_private_urls=True,
    )
    with _environment(snap), _captured_logs() as logs:
        verdict = asyncio.run(execute(actor_input, edge))
    return InProcessRun(
        0 if verdict.succeeded else 1, logs.getvalue(), rows, records, charging, statuses, final_message=verdict.message
    )
