"""What the core needs from the platform, as small interfaces; `main.py` implements them with the Apify SDK.

Nothing else imports the SDK, so every task runs in-process with in-memory stand-ins (see the tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class KeyValueStore(Protocol):
    """A key-value store: the run's default store (the checkpoint) or the ledger's named store."""

    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: Any) -> None: ...

    async def delete(self, key: str) -> None:
        """Remove the record, if there is one (the ledger's expired chunks)."""
        ...

    async def keys(self, prefix: str) -> list[str]:
        """The keys that begin with `prefix` (the ledger finds an asset's chunks by their names)."""
        ...


class DatasetPage(Protocol):
    @property
    def items(self) -> Sequence[Any]: ...


class Dataset(Protocol):
    """A dataset to read events from, a page at a time."""

    async def get_data(self, *, offset: int, limit: int) -> DatasetPage: ...


#: Opens a dataset by id or name (`eventsDatasetId`).
OpenDataset = Callable[[str], Awaitable[Dataset]]


class ChargingManager(Protocol):
    """What billing reads from the platform's charging manager."""

    def get_charged_event_count(self, event_name: str) -> int: ...

    def calculate_max_event_charge_count_within_limit(self, event_name: str) -> int | None: ...


class Charging(Protocol):
    """Pay-per-event charging: the manager's counts, and a charge that returns how many were charged."""

    manager: ChargingManager

    async def charge(self, event_name: str, count: int, key: str) -> int: ...


class PlatformEvents(Protocol):
    """The platform's signals to a running actor. Each `on_*` returns a function that removes the handler. A signal
    that came before a handler registered (during start-up) is handed to it as it registers: it is not lost."""

    def on_abort(self, handler: Callable[[], object]) -> Callable[[], None]: ...

    def on_migrate(self, handler: Callable[[], object]) -> Callable[[], None]: ...

    def on_terminate(self, handler: Callable[[], object]) -> Callable[[], None]:
        """SIGTERM: the process is asked to end."""
        ...


@dataclass(frozen=True, slots=True)
class Platform:
    """Everything a task may ask of the platform, passed in by `main.py`."""

    #: The run's default key-value store (the checkpoint lives there).
    store: KeyValueStore
    open_dataset: OpenDataset
    charging: Charging
    events: PlatformEvents
    #: Opens the named store of the ledger of accepted events (`ledger.LEDGER_STORE`); None: no ledger.
    ledger_store: Callable[[], Awaitable[KeyValueStore]] | None = None


@dataclass(frozen=True, slots=True)
class RunEdge:
    """What one run writes besides its tasks' work: rows, status messages, OUTPUT and the report, and the
    run's identity. `main.py` builds it from the Apify SDK; the in-process tests build it in memory."""

    platform: Platform
    run_id: str
    #: Appends rows to the run's dataset; `count_rows(fallback)` says how many it holds (every attempt).
    push_rows: Callable[[list[dict[str, Any]]], Awaitable[None]]
    count_rows: Callable[[int], Awaitable[int]]
    set_status: Callable[[str], Awaitable[object]]
    #: Saves a record (OUTPUT, the report) in the run's default key-value store, with a content type or None.
    save: Callable[[str, Any, str | None], Awaitable[None]]
    #: The public URL of a record of the default store, on the platform; None locally.
    record_url: Callable[[str], str | None]
    dataset_id: str | None
    #: A link to the run's rows, on the platform; None locally.
    dataset_items_url: str | None
    #: Users' URLs (eventsUrl, webhookUrl) may reach private addresses (locally, or when allowed).
    allow_private_urls: bool
