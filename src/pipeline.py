"""The one event pipeline every conversion task runs on.

source (async iterator) -> build (normalize, hash, preflight) -> batches of up to 2,000 per asset
-> deliver, several batches in flight -> bill what Snap accepted -> result rows.

It streams: memory holds the batches in flight, not the run. Reading waits while
`max_concurrency` batches are out, so a fast source cannot outrun Snap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass

from .billing import Billing
from .conversion import ConversionBuilder, PreparedEvent, RejectedEvent
from .delivery import Delivery, Outcome
from .errors import SnapAuthError
from .event_input import SourceEvent
from .results import Progress, ResultSink, event_row, outcome_rows, rejected_row

MAX_BATCH = 2000


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    task: str
    batch_size: int = MAX_BATCH
    max_concurrency: int = 4
    charge_key_prefix: str = "local"


class Pipeline:
    def __init__(
        self,
        settings: PipelineSettings,
        *,
        builder: ConversionBuilder,
        delivery: Delivery,
        billing: Billing,
        sink: ResultSink,
        progress: Progress,
    ) -> None:
        self._settings = settings
        self._builder = builder
        self._delivery = delivery
        self._billing = billing
        self._sink = sink
        self._progress = progress
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped_by: SnapAuthError | None = None

    async def run(self, source: AsyncIterable[SourceEvent]) -> None:
        """Deliver every event of `source`; each one ends as exactly one result row."""
        pending: dict[str, list[PreparedEvent]] = {}
        try:
            async for item in source:
                self._sink.summary.read += 1
                built = self._builder.build(item)
                if isinstance(built, RejectedEvent):
                    await self._sink.add([rejected_row(self._settings.task, built)])
                    continue
                if self.stopped_by is not None:
                    await self._not_sent([built])
                    continue
                batch = pending.setdefault(built.asset_id, [])
                batch.append(built)
                if len(batch) >= self._settings.batch_size:
                    await self._dispatch(pending.pop(built.asset_id))
            for batch in pending.values():
                await self._dispatch(batch)
            await self._drain()
        finally:
            await self._drain()
            await self._sink.flush()
            await self._progress.update(force=True)
        if self.stopped_by is not None:
            raise self.stopped_by

    async def _dispatch(self, batch: list[PreparedEvent]) -> None:
        if self.stopped_by is not None:
            await self._not_sent(batch)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._deliver(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _deliver(self, batch: list[PreparedEvent]) -> None:
        try:
            allowed = self._billing.reserve(len(batch))
            sending, over_budget = batch[:allowed], batch[allowed:]
            outcomes: list[Outcome] = []
            try:
                if sending:
                    outcomes = await self._delivery(sending[0].asset_id, sending)
            except SnapAuthError as error:
                self.stopped_by = self.stopped_by or error
                outcomes = [Outcome(event, "failed", str(error)) for event in sending]
            key = f"{self._settings.charge_key_prefix}:{batch[0].asset_id}:{batch[0].index}-{batch[-1].index}"
            charged = await self._billing.settle(allowed, outcomes, key)
            rows = outcome_rows(self._settings.task, outcomes, charged)
            reason = "not sent: the run's maximum charge (max total charge USD) is used up"
            rows.extend(event_row(self._settings.task, event, "skipped", reason) for event in over_budget)
            await self._sink.add(rows)
            await self._progress.update()
        finally:
            self._slots.release()

    async def _not_sent(self, events: list[PreparedEvent]) -> None:
        reason = f"not sent: {self.stopped_by}"
        await self._sink.add([event_row(self._settings.task, event, "failed", reason) for event in events])
