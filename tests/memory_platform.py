"""In-memory stand-ins for the platform interfaces of `src/platform.py`: the core runs in-process with these."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from src.platform import Platform


class MemoryStore:
    """The `KeyValueStore` protocol over a dict; values go through JSON as they would in a real store."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self.writes = 0
        self.deletes = 0

    async def get(self, key: str) -> Any:
        raw = self.records.get(key)
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.records[key] = json.dumps(value)

    async def delete(self, key: str) -> None:
        self.deletes += 1
        self.records.pop(key, None)

    async def keys(self, prefix: str) -> list[str]:
        return [key for key in self.records if key.startswith(prefix)]


@dataclass
class _Page:
    items: Sequence[Any]


class MemoryDataset:
    def __init__(self, items: Sequence[Any]) -> None:
        self.items = list(items)

    async def get_data(self, *, offset: int, limit: int) -> _Page:
        return _Page(self.items[offset : offset + limit])


@dataclass
class MemoryCharging:
    """Pay-per-event charging with an optional cap on the count; `charges` records each (count, key)."""

    limit: int | None = None
    charges: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def manager(self) -> MemoryCharging:
        return self

    def get_charged_event_count(self, event_name: str) -> int:
        return sum(count for name, count, _ in self.charges if name == event_name)

    def calculate_max_event_charge_count_within_limit(self, event_name: str) -> int | None:
        return None if self.limit is None else self.limit - self.get_charged_event_count(event_name)

    async def charge(self, event_name: str, count: int, key: str) -> int:
        allowed = count if self.limit is None else min(count, self.limit - self.get_charged_event_count(event_name))
        self.charges.append((event_name, allowed, key))
        return allowed


class MemoryEvents:
    """The platform's signals, fired by the test: `abort()`, `migrate()`, `terminate()`; `handlers` shows what is
    registered."""

    def __init__(self) -> None:
        self.handlers: dict[str, list[Callable[[], object]]] = {"abort": [], "migrate": [], "terminate": []}

    def _on(self, kind: str, handler: Callable[[], object]) -> Callable[[], None]:
        self.handlers[kind].append(handler)
        return lambda: self.handlers[kind].remove(handler)

    def on_abort(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on("abort", handler)

    def on_migrate(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on("migrate", handler)

    def on_terminate(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on("terminate", handler)

    def abort(self) -> None:
        for handler in list(self.handlers["abort"]):
            handler()

    def migrate(self) -> None:
        for handler in list(self.handlers["migrate"]):
            handler()

    def terminate(self) -> None:
        for handler in list(self.handlers["terminate"]):
            handler()


def memory_platform(
    datasets: dict[str, Sequence[Any]] | None = None,
    *,
    store: MemoryStore | None = None,
    ledger: MemoryStore | None = None,
    charging: MemoryCharging | None = None,
    events: MemoryEvents | None = None,
) -> Platform:
    given = {name: MemoryDataset(items) for name, items in (datasets or {}).items()}

    async def open_dataset(name: str) -> MemoryDataset:
        return given.setdefault(name, MemoryDataset([]))

    async def ledger_store() -> MemoryStore:
        assert ledger is not None
        return ledger

    return Platform(
        store=store or MemoryStore(),
        open_dataset=open_dataset,
        charging=charging or MemoryCharging(),
        events=events or MemoryEvents(),
        ledger_store=ledger_store if ledger is not None else None,
    )
