"""Which events a run has finished, persisted so that a migrated, resurrected or killed run resumes.

An event is finished when its result row is in the dataset (and, if Snap accepted it, it was
charged). Batches finish out of order under concurrency, so the state is a watermark (every index
below it is finished) plus the finished ranges above it; ranges merge into the watermark as the
gaps fill, so the state stays a few numbers long whatever the run's size. It is saved explicitly
after every batch (not only on the SDK's 60 s PERSIST_STATE), together with the counts of the
finished rows, so the final OUTPUT covers every attempt of the run.

Remaining windows, by design: a crash after Snap accepted a batch and before its checkpoint makes the
next attempt send it again (same event_ids, which Snap deduplicates); its charge is covered by the
credit for what the platform counted beyond this checkpoint, or beyond 0 without one
(`billing.Billing.for_actor`). Rows the dataset refused are kept here (`unstored`) and stored first by the
next attempt; a push whose answer was lost is checked before it is repeated (`main.DatasetWriter`), and rows
carry a stable `rowId`.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..results.summary import Summary

STATE_KEY = "BULK_PROGRESS"
SaveFn = Callable[[str, dict[str, Any]], Awaitable[None]]


class Checkpoint:
    def __init__(self, save: SaveFn, fingerprint: str, state: dict[str, Any] | None = None) -> None:
        """`state` is what an earlier attempt saved; it counts only if the input is the same (`fingerprint`)."""
        self._save = save
        self._fingerprint = fingerprint
        self._lock = asyncio.Lock()
        if state and state.get("fingerprint") == fingerprint:
            self.watermark: int = int(state["watermark"])
            self._ranges: list[list[int]] = [[int(a), int(b)] for a, b in state["ranges"]]
            self.restored: dict[str, Any] | None = state.get("summary")
            self.unstored: list[dict[str, Any]] = list(state.get("unstored") or [])
        else:
            self.watermark, self._ranges, self.restored, self.unstored = 0, [], None, []

    @staticmethod
    def fingerprint(*parts: str) -> str:
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    @property
    def resumed(self) -> bool:
        return self.restored is not None

    def is_done(self, index: int) -> bool:
        if index < self.watermark:
            return True
        ranges = self._ranges
        if not ranges or index >= ranges[-1][1]:  # past everything finished: every new event of a run as it reads
            return False
        at = bisect.bisect_right(ranges, [index, float("inf")]) - 1
        return at >= 0 and self._ranges[at][0] <= index < self._ranges[at][1]

    def mark(self, indices: Iterable[int]) -> None:
        for start, end in _runs(sorted(indices)):
            self._add(start, end)
        while self._ranges and self._ranges[0][0] <= self.watermark:
            self.watermark = max(self.watermark, self._ranges.pop(0)[1])

    def _add(self, start: int, end: int) -> None:
        ranges = self._ranges
        at = bisect.bisect_left(ranges, [start, start])
        if at > 0 and ranges[at - 1][1] >= start:
            at -= 1
            start = ranges[at][0]
        stop = at
        while stop < len(ranges) and ranges[stop][0] <= end:
            end = max(end, ranges[stop][1])
            stop += 1
        ranges[at:stop] = [[start, end]]

    async def save(self, summary: Summary, unstored: list[dict[str, Any]] | None = None) -> None:
        """Write the state now; saves are serialized so the newest always lands last.

        `unstored` are result rows of finished events the dataset has not stored (an outage): kept here,
        so the record of what was sent and charged does not depend on the dataset; a resumed attempt
        stores them first. Their number is bounded: the pipeline takes no new events while rows cannot
        be stored.
        """
        async with self._lock:
            state = {
                "fingerprint": self._fingerprint,
                "watermark": self.watermark,
                "ranges": [list(r) for r in self._ranges],
                "summary": summary.to_state(),
                "unstored": unstored or [],
            }
            await self._save(STATE_KEY, state)


def _runs(indices: list[int]) -> Iterable[tuple[int, int]]:
    """Sorted indices as half-open runs of consecutive numbers."""
    start = previous = None
    for index in indices:
        if start is None or previous is None:
            start = previous = index
        elif index == previous + 1:
            previous = index
        elif index != previous:
            yield start, previous + 1
            start = previous = index
    if start is not None and previous is not None:
        yield start, previous + 1
