"""The sink that writes rows to the dataset in chunks (buffered until a push succeeds), and the status line.

Rows carry hashes at most: ids, names, statuses and which identifiers were present, never an
identifier's value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence

from ..net.transport import error_named
from .rows import NOT_ACCEPTED, JsonRow, Row, to_json
from .summary import Summary

PushFn = Callable[[list[JsonRow]], Awaitable[None]]
StatusFn = Callable[[str], Awaitable[object]]
#: How many events not accepted are logged one by one.
WARN_ROWS = 5
_log = logging.getLogger(__name__)


class DatasetUnavailableError(Exception):
    """Rows could not be stored in the dataset; they stay buffered (and go to the checkpoint)."""


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
        self._buffer: list[JsonRow] = []
        self._lock = asyncio.Lock()
        self.kept: list[JsonRow] = []
        self.stored = 0
        self._warn = warn
        self._warned = 0
        #: Events' rows get `rowId` = `{row_prefix}:{eventIndex}` (see `rows.to_json`).
        self._row_prefix = row_prefix
        self.failed: DatasetUnavailableError | None = None

    async def add(self, typed: Sequence[Row], *, count_as: str | None = None) -> None:
        """`count_as` counts rows whose `status` is not a result status (a pixel's own status)."""
        rows = [to_json(row, self._row_prefix) for row in typed]
        self.summary.add(rows, count_as)
        if self._warn is not None and self._warned <= WARN_ROWS:
            self._warn_problems(self._warn, rows)
        if self._only is not None:
            rows = [row for row in rows if row["status"] in self._only]
        self.stored += len(rows)
        if len(self.kept) < self._keep:
            self.kept.extend(rows[: self._keep - len(self.kept)])
        self._buffer.extend(rows)
        if len(self._buffer) >= self._chunk_size:
            # On failure the rows stay buffered; the pipeline's next commit learns of it (`failed`) and stops.
            with contextlib.suppress(DatasetUnavailableError):
                await self.flush()

    def _warn_problems(self, warn: Callable[[str], object], rows: Sequence[JsonRow]) -> None:
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

    def unstored(self) -> list[JsonRow]:
        """Rows added but not (yet) stored in the dataset."""
        return list(self._buffer)

    def requeue(self, rows: Sequence[JsonRow]) -> None:
        """Rows an earlier attempt counted but could not store: stored with the next flush, not counted again."""
        self._buffer[:0] = rows
        self.stored += len(rows)


def _push_failure(error: Exception) -> str:
    return f"the dataset did not store rows ({error_named(error)})"


class Progress:
    """The run's one-line status in the Console, at most every `interval` seconds."""

    def __init__(self, set_status: StatusFn, summary: Summary, *, interval: float = 5.0) -> None:
        self._set_status = set_status
        self._summary = summary
        self.interval = interval
        self._last = 0.0
        self._done_before = 0

    async def set(self, message: str) -> None:
        """A status line is cosmetic: one the platform refuses is logged and the run goes on (it failed a run
        that had sent and charged every event: "Stopped by an unexpected error")."""
        try:
            await self._set_status(message)
        except Exception as error:
            _log.warning(f"Could not update the run's status message ({error_named(error)})")

    async def update(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            await self.set(self.message())

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
