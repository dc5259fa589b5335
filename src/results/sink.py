"""Result rows, the run summary, and the sink that writes rows to the dataset in chunks.

Rows carry hashes at most: ids, names, statuses and which identifiers were present, never an
identifier's value.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .rows import NOT_ACCEPTED, Row

PushFn = Callable[[list[Row]], Awaitable[None]]
StatusFn = Callable[[str], Awaitable[object]]
_LINE_PREFIX = re.compile(r"^line \d+: (element \d+ )?")


#: Distinct event names and reasons a summary tells apart; the rest are counted under `OTHER`, so
#: that a million events with a million made-up names still take constant memory.
DISTINCT_LIMIT = 200
OTHER = "(other)"
#: How many events not accepted are logged one by one.
WARN_ROWS = 5


@dataclass(slots=True)
class DeliveryStats:
    """Requests spent isolating rejected events, for OUTPUT (`isolationRequests`); bounded counters only."""

    isolation_requests: int = 0
    validate_requests: int = 0
    over_budget_batches: int = 0


class DatasetUnavailableError(Exception):
    """Rows could not be stored in the dataset; they stay buffered (and go to the checkpoint)."""


def count_into(counter: Counter[str], key: str, amount: int = 1) -> None:
    """Count `key`, or `OTHER` once the counter already tells `DISTINCT_LIMIT` keys apart."""
    counter[key if key in counter or len(counter) < DISTINCT_LIMIT else OTHER] += amount


@dataclass(slots=True)
class Summary:
    """Counts that grow with the run; the rows themselves go to the dataset and are let go.

    Everything here is a bounded counter (never a row or a value), so the summary is the same size
    for ten events and for a million; the run report is drawn from it.
    """

    task: str
    demo: bool
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    charged: int = 0
    read: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: Event rows (those with match keys): the denominator of identifier coverage.
    events: int = 0
    identifiers: Counter[str] = field(default_factory=Counter)
    quality: Counter[str] = field(default_factory=Counter)
    #: event name -> status -> count.
    by_name: dict[str, Counter[str]] = field(default_factory=dict)
    interrupted: str | None = None
    #: Extra requests spent isolating events Snap refused (see `delivery.SnapDelivery`).
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    #: event name -> our match-quality grade -> count, for the report beside Snap's own score.
    quality_by_name: dict[str, Counter[str]] = field(default_factory=dict)
    #: Snap's Signal Readiness answer for the report (`quality_scores.SnapQuality`); not saved in checkpoints.
    snap_quality: Any = None

    def add(self, rows: Sequence[Row], count_as: str | None = None) -> None:
        for row in rows:
            status = count_as or row["status"]
            self.counts[status] += 1
            self.charged += bool(row.get("charged"))
            if row.get("error") and status in NOT_ACCEPTED:
                # Grouped without the line number, so a file of bad lines makes a few entries, not one each.
                count_into(self.errors, _LINE_PREFIX.sub("", str(row["error"]))[:200])
            if "matchKeys" in row:
                self._add_event(row, status)

    def _add_event(self, row: Row, status: str) -> None:
        self.events += 1
        self.identifiers.update(row["matchKeys"])
        self.quality[row["matchQuality"]] += 1
        name = str(row.get("eventName") or "(no name)")
        if name not in self.by_name and len(self.by_name) >= DISTINCT_LIMIT:
            name = OTHER
        self.by_name.setdefault(name, Counter())[status] += 1
        self.quality_by_name.setdefault(name, Counter())[row["matchQuality"]] += 1

    def to_state(self) -> dict[str, Any]:
        """The counts a resumed attempt starts from (see `checkpoint`); all bounded in size."""
        return {
            "counts": dict(self.counts),
            "charged": self.charged,
            "errors": dict(self.errors),
            "events": self.events,
            "identifiers": dict(self.identifiers),
            "quality": dict(self.quality),
            "byName": {name: dict(statuses) for name, statuses in self.by_name.items()},
            "qualityByName": {name: dict(grades) for name, grades in self.quality_by_name.items()},
            "isolationRequests": self.delivery.isolation_requests,
            "validateRequests": self.delivery.validate_requests,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.counts = Counter(state.get("counts") or {})
        self.charged = int(state.get("charged") or 0)
        self.errors = Counter(state.get("errors") or {})
        self.events = int(state.get("events") or 0)
        self.identifiers = Counter(state.get("identifiers") or {})
        self.quality = Counter(state.get("quality") or {})
        self.by_name = {name: Counter(statuses) for name, statuses in (state.get("byName") or {}).items()}
        self.quality_by_name = {name: Counter(grades) for name, grades in (state.get("qualityByName") or {}).items()}
        self.delivery.isolation_requests = int(state.get("isolationRequests") or 0)
        self.delivery.validate_requests = int(state.get("validateRequests") or 0)
        self.read = self.total

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_output(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "demo": self.demo,
            "rows": self.total,
            "counts": dict(self.counts),
            "charged": self.charged,
            "durationSeconds": round(time.monotonic() - self.started, 3),
            "topErrors": [{"error": error, "count": count} for error, count in self.errors.most_common(5)],
            "isolationRequests": self.delivery.isolation_requests,
        } | ({"interrupted": self.interrupted} if self.interrupted else {})


class ResultSink:
    """Buffers rows and pushes them in chunks; keeps the first few for the webhook.

    Every row is counted in the summary; with `only`, just the rows of those statuses are stored,
    so a big export can keep the dataset to the events that need attention.
    """

    def __init__(
        self,
        push: PushFn,
        summary: Summary,
        *,
        chunk_size: int = 1000,
        keep: int = 1000,
        only: Collection[str] | None = None,
        warn: Callable[[str], object] | None = None,
        row_prefix: str | None = None,
    ) -> None:
        self._push = push
        self.summary = summary
        self._chunk_size = chunk_size
        self._keep = keep
        self._only = only
        self._buffer: list[Row] = []
        self._lock = asyncio.Lock()
        self.kept: list[Row] = []
        self.stored = 0
        self._warn = warn
        self._warned = 0
        #: `rowId` = `{row_prefix}:{eventIndex}`: the same event always gets the same id, so rows are easy to dedupe.
        self._row_prefix = row_prefix
        self.failed: DatasetUnavailableError | None = None

    async def add(self, rows: Sequence[Row], *, count_as: str | None = None) -> None:
        """`count_as` counts rows whose `status` is not a result status (a pixel's own status)."""
        self.summary.add(rows, count_as)
        if self._warn is not None and self._warned <= WARN_ROWS:
            self._warn_problems(self._warn, rows)
        if self._only is not None:
            rows = [row for row in rows if row["status"] in self._only]
        if self._row_prefix is not None:
            for row in rows:
                if "eventIndex" in row:
                    row["rowId"] = f"{self._row_prefix}:{row['eventIndex']}"
        self.stored += len(rows)
        if len(self.kept) < self._keep:
            self.kept.extend(rows[: self._keep - len(self.kept)])
        self._buffer.extend(rows)
        if len(self._buffer) >= self._chunk_size:
            # On failure the rows stay buffered; the pipeline's next commit learns of it (`failed`) and stops.
            with contextlib.suppress(DatasetUnavailableError):
                await self.flush()

    def _warn_problems(self, warn: Callable[[str], object], rows: Sequence[Row]) -> None:
        """The first events not accepted are logged as they happen; the rest are only counted."""
        for row in rows:
            if row.get("status") not in NOT_ACCEPTED:
                continue
            self._warned += 1
            if self._warned > WARN_ROWS:
                warn("More events were not accepted: OUTPUT's topErrors and the report count every reason.")
                return
            name = row.get("eventName") or "no name"
            warn(f"Event #{row['eventIndex']} ({name}) {row['status']}: {row.get('error')}")

    async def flush(self) -> None:
        """Push what is buffered. Pushes never overlap: once `flush` returns, every row added before it is stored.

        A push that fails keeps its rows buffered (see `unstored`) and raises `DatasetUnavailableError`.
        """
        async with self._lock:
            if self.failed is not None:
                raise self.failed  # the writer already spent its retries: fail fast, keep the rows
            while self._buffer:
                rows = self._buffer[: self._chunk_size]
                try:
                    await self._push(rows)
                except Exception as error:
                    self.failed = DatasetUnavailableError(_push_failure(error))
                    raise self.failed from None
                del self._buffer[: len(rows)]

    def unstored(self) -> list[Row]:
        """Rows added but not (yet) stored in the dataset."""
        return list(self._buffer)

    def requeue(self, rows: Sequence[Row]) -> None:
        """Rows an earlier attempt counted but could not store: stored with the next flush, not counted again."""
        self._buffer[:0] = rows
        self.stored += len(rows)


def _push_failure(error: Exception) -> str:
    detail = str(error).split("\n", 1)[0][:200]
    return f"the dataset did not store rows ({type(error).__name__}: {detail})" if detail else (
        f"the dataset did not store rows ({type(error).__name__})"
    )


class Progress:
    """The run's one-line status in the Console, at most every `interval` seconds."""

    def __init__(self, set_status: StatusFn, summary: Summary, *, interval: float = 5.0) -> None:
        self._set_status = set_status
        self._summary = summary
        self.interval = interval
        self._last = 0.0
        self._done_before = 0

    async def set(self, message: str) -> None:
        await self._set_status(message)

    async def update(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            await self._set_status(self.message())

    def resumed(self) -> None:
        """Events an earlier attempt finished do not count towards this attempt's rate."""
        self._done_before = self._summary.total

    def message(self) -> str:
        """Read, then each status (sent, invalid, failed, ...), then this attempt's rate."""
        summary = self._summary
        elapsed = max(time.monotonic() - summary.started, 1e-6)
        parts = [f"{status} {count:,}" for status, count in sorted(summary.counts.items())]
        rate = (summary.total - self._done_before) / elapsed
        return f"{summary.task}: read {summary.read:,}, {', '.join(parts) or 'none done yet'}; {rate:,.0f} events/s"
