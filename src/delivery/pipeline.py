"""The one event pipeline every conversion task runs on.

source (async iterator) -> build (normalize, hash, preflight) -> batches of up to 2,000 per asset
-> deliver, several batches in flight -> bill what Snap accepted -> result rows.

It streams: memory holds the batches in flight, not the run. Reading waits while
`max_concurrency` batches are out, so a fast source cannot outrun Snap.

With a `Checkpoint`, every finished batch is committed (rows pushed, then what Snap accepted written
to the ledger, then the finished indexes saved), events an earlier attempt finished are skipped, and
the run can be stopped (abort: finish what is in flight and end; a batch waiting out Snap's retries is left
unfinished, for a resurrected run) or paused (migration: the same, then wait to be moved) cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from ..billing import Billing, ChargeRefusedError, charged_flags
from ..errors import LedgerError, SnapAuthError, SourceError
from ..events.build import ConversionBuilder, PreparedEvent, RejectedEvent
from ..events.shape import SourceEvent
from ..ledger import Earlier, Ledger, LedgerKey
from ..net.transport import RunStoppingError, error_named
from ..results.rows import DUPLICATE, SENT, EventRow, Outcome, event_row, outcome_rows, rejected_row
from ..results.sink import DatasetUnavailableError, Progress, ResultSink
from ..results.summary import Summary
from .checkpoint import Checkpoint
from .send import Delivery, DeliveryStoppedError

MAX_BATCH = 2000
#: A migration that has not moved the run after this long was a false alarm: reading resumes.
MIGRATION_GRACE_S = 300.0
RETRY_WARNING = "not delivered by an earlier run (failed or over its maximum charge): sent again now"
#: Why an event the ledger knows is not sent again, as its duplicate row says.
_REPEATED: dict[Earlier, str] = {
    "accepted": "already accepted by Snap in an earlier run",
    "accepted in this run": "already accepted by Snap earlier in this run",
}
_log = logging.getLogger(__name__)


def _duplicate_row(task: str, event: PreparedEvent, earlier: Earlier) -> EventRow:
    return event_row(task, event, DUPLICATE, f"{_REPEATED[earlier]} (event_id {event.event_id})")


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    task: str
    batch_size: int = MAX_BATCH
    max_concurrency: int = 4


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
        checkpoint: Checkpoint | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        #: The ledger's key of each batched event (by its index), from its look-up until Snap answered for it (events
        #: never sent, as the run stops, keep theirs: it is ending).
        self._ledger_keys: dict[int, LedgerKey] = {}
        #: Keys of the events Snap accepted since the last commit, for the ledger.
        self._accepted: list[LedgerKey] = []
        #: Repeats read while the ledger said their first copy is being sent, by its key: their rows follow Snap's
        #: answer for it (`_repeat_rows`).
        self._repeats: dict[LedgerKey, list[PreparedEvent]] = {}
        #: Set once the dataset refused rows: no new events are taken, the run fails once in-flight work is recorded.
        self.dataset_down: DatasetUnavailableError | None = None
        self._builder = builder
        self._delivery = delivery
        self._billing = billing
        self._sink = sink
        self._progress = progress
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        #: The first batch that raised (`_fail`): reading stops, the run raises it.
        self._broken: Exception | None = None
        #: Why nothing more is sent (Snap refused the token, the ledger could not be read, or the platform refused a
        #: charge): each event left gets a row that says so, and the run raises it.
        self.stopped_by: SnapAuthError | LedgerError | ChargeRefusedError | None = None
        self._checkpoint = checkpoint
        summary = sink.summary
        #: What the checkpoint saves: the counts of the committed rows, and the requests spent isolating refused events,
        #: which the delivery counts on the run's summary as it makes them: one `DeliveryStats`, shared.
        self._committed = Summary(summary.task, summary.demo, delivery=summary.delivery)
        if checkpoint is not None and checkpoint.restored is not None:
            summary.restore(checkpoint.restored)
            self._committed.restore(checkpoint.restored)
            sink.requeue(checkpoint.unstored)  # rows an earlier attempt could not store: stored first
            progress.resumed()
        self._uncommitted: list[EventRow] = []
        self._interrupted: str | None = None
        self._running = asyncio.Event()
        self._running.set()
        #: Set when the source gives its first event (or the run ends without one): work worth reporting on began.
        self.started = asyncio.Event()
        self._resume: asyncio.TimerHandle | None = None

    def stop(self, reason: str) -> None:
        """Read no more; batches in flight finish and are committed (the platform is aborting the run), but for
        what Snap has not answered while a retry's wait was cut short: left unfinished (no row, not charged)."""
        self._interrupted = reason
        self._running.set()

    def pause(self) -> None:
        """Dispatch no more until the platform moves the run (migration); resume if it has not after a while."""
        self._running.clear()
        if self._resume is not None:
            self._resume.cancel()
        self._resume = asyncio.get_running_loop().call_later(MIGRATION_GRACE_S, self._running.set)

    async def run(self, source: AsyncIterator[SourceEvent]) -> None:
        """Deliver every event of `source` not finished before; each one ends as exactly one result row."""
        pending: dict[str, list[PreparedEvent]] = {}
        source_error: SourceError | None = None
        ticker = asyncio.create_task(self._tick())
        try:
            try:
                await self._read(source, pending)
            except SourceError as error:
                source_error = error  # what was read before the source broke is still delivered
            except RunStoppingError:  # the source's retry wait was cut short: the run is stopping (`_interrupted`)
                if self._interrupted is None:
                    raise
            if self._interrupted is None:
                for batch in pending.values():
                    await self._dispatch(batch)
            await self._drain()
        finally:
            if self._resume is not None:
                self._resume.cancel()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if aclose := getattr(source, "aclose", None):
                await aclose()
            await self._drain()
            await self._commit(last=True)
            await self._progress.update(force=True)
        self._sink.summary.interrupted = self._interrupted
        self.started.set()
        if self._broken is not None:
            raise self._broken
        if self.dataset_down is not None:
            raise self.dataset_down
        if self.stopped_by is not None:
            raise self.stopped_by
        if source_error is not None:
            raise source_error

    async def _read(self, source: AsyncIterator[SourceEvent], pending: dict[str, list[PreparedEvent]]) -> None:
        """Build every event an earlier attempt did not finish; full batches are dispatched, the rest stays in
        `pending`. Reading stops once the run is stopped. One loop straight over the source: an async generator or
        a coroutine between the source and the batch would be one more step for every event; only a row or a
        full batch is awaited."""
        build, checkpoint, ledger = self._builder.build, self._checkpoint, self._ledger
        task, batch_size, summary = self._settings.task, self._settings.batch_size, self._sink.summary
        async for item in source:
            self.started.set()
            if self._interrupted is not None:
                return
            if checkpoint is not None and checkpoint.is_done(item.index):
                continue
            summary.read += 1
            built = build(item)
            if isinstance(built, RejectedEvent):
                await self._add_rows([rejected_row(task, built)])
                continue
            if self.stopped_by is not None:
                await self._not_sent([built])
                continue
            if ledger is not None and built.lasting_id:  # a repeat purchase without id or time is a new one
                try:
                    earlier, key = await ledger.look_up(built.asset_id, built.event_id)
                except LedgerError as error:  # it cannot tell what was sent before: nothing more is
                    self.stopped_by = error
                    await self._not_sent([built])
                    continue
                if earlier is not None:  # (a new event, nearly every one, goes straight on)
                    if earlier == "being sent":  # its row waits for what becomes of the first copy
                        self._repeats.setdefault(key, []).append(built)
                        continue
                    if earlier in _REPEATED:
                        await self._add_rows([_duplicate_row(task, built, earlier)])
                        continue
                    built = built._replace(warnings=(*built.warnings, RETRY_WARNING))  # "not delivered" before
                self._ledger_keys[built.index] = key
            batch = pending.setdefault(built.asset_id, [])
            batch.append(built)
            if len(batch) >= batch_size:
                await self._dispatch(pending.pop(built.asset_id))

    async def _dispatch(self, batch: list[PreparedEvent]) -> None:
        while True:
            if self.stopped_by is not None:
                await self._not_sent(batch)
                return
            if not self._running.is_set():
                await self._drain()
                await self._commit()
                await self._progress.set(f"{self._progress.message()} (paused: the run is being migrated)")
                await self._running.wait()
            if self._interrupted is not None:
                return  # stopped (or aborted while paused): these events stay unfinished, for a resurrected run
            await self._slots.acquire()
            if self.stopped_by is None and self._running.is_set() and self._interrupted is None:
                break
            self._slots.release()  # stopped or paused while it waited for a slot: decided again above
        task = asyncio.create_task(self._deliver(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail(self, error: Exception) -> None:
        """A batch raised: no new events are taken, and once the batches in flight are recorded the run raises the
        first such error (a task done while the run reads on is never awaited: its error would be lost with it)."""
        if self._broken is None:
            self._broken = error
            self.stop(f"a batch failed ({type(error).__name__}); no new events were taken")

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _deliver(self, batch: list[PreparedEvent]) -> None:
        try:
            allowed = await self._billing.reserve(len(batch))
            sending, over_budget = batch[:allowed], batch[allowed:]
            outcomes: list[Outcome] = []
            try:
                if sending:
                    outcomes = await self._delivery(sending[0].asset_id, sending)
            except DeliveryStoppedError as stopped:
                self.stopped_by = self.stopped_by or stopped.cause
                outcomes = stopped.outcomes
            batch_key = f"{batch[0].asset_id}:{batch[0].index}-{batch[-1].index}"
            try:
                charged = await self._billing.settle(allowed, outcomes, batch_key)
            except ChargeRefusedError as refused:  # Snap has them: rows and ledger say so, and nothing more is sent
                self.stopped_by = refused  # over an earlier cause: it counts every refused conversion, and costs most
                charged = refused.paid
            rows = outcome_rows(self._settings.task, outcomes, charged_flags(outcomes, charged))
            reason = "not sent: the run's maximum charge (max total charge USD) is used up"
            rows.extend(event_row(self._settings.task, event, "skipped", reason) for event in over_budget)
            if self._ledger is not None:
                # Only events with a lasting id have a key: the ledger looked those up.
                keys = {e.index: key for e in batch if (key := self._ledger_keys.pop(e.index, None)) is not None}
                if self._repeats:
                    rows.extend(self._repeat_rows(rows, keys))
                sent = [o.event.index for o in outcomes if o.status == SENT]
                failed = [o.event.index for o in outcomes if o.status == "failed"]
                # Recorded once the commit stored their rows; a repeat is a duplicate from now on.
                accepted = [keys.pop(i) for i in sent if i in keys]
                self._ledger.sent(accepted)
                self._accepted.extend(accepted)
                self._ledger.retry_later([keys.pop(i) for i in [*failed, *(e.index for e in over_budget)] if i in keys])
                self._ledger.release(keys.values())  # refused by Snap: a repeat is looked at anew
            await self._add_rows(rows)
            await self._commit()
        except Exception as error:  # a bug, or a store that failed a commit: the run raises it (`_fail`)
            self._fail(error)  # before the slot is freed: a batch waiting for it must see the run stopping
        finally:
            self._slots.release()

    async def _not_sent(self, events: list[PreparedEvent]) -> None:
        reason = f"not sent: {self.stopped_by}"
        rows = [event_row(self._settings.task, event, "failed", reason) for event in events]
        if self._repeats:
            rows.extend(self._repeat_rows(rows, self._ledger_keys))
        await self._add_rows(rows)

    def _repeat_rows(self, rows: Sequence[EventRow], keys: Mapping[int, LedgerKey]) -> list[EventRow]:
        """Rows for the repeats of these rows' events read while Snap had not answered for them: a duplicate if Snap
        accepted the first copy; if not, not sent either, with its status and reason. (A repeat told "being sent"
        at once was counted a duplicate, "already sent earlier", even when the first copy failed: a run that sent
        nothing succeeded.)"""
        task, repeat_rows = self._settings.task, []
        for row in rows:
            if (key := keys.get(row["eventIndex"])) is None or (waiting := self._repeats.pop(key, None)) is None:
                continue
            for event in waiting:
                if row["status"] == SENT:
                    repeat_rows.append(_duplicate_row(task, event, "accepted in this run"))
                else:  # the first copy's reason, word for word: the run's top reasons count them together
                    note = f"repeats event #{row['eventIndex']} (event_id {event.event_id}): not sent, as that one"
                    repeat_rows.append(event_row(task, event, row["status"], row["error"], warnings=(note,)))
        return repeat_rows

    async def _add_rows(self, rows: list[EventRow]) -> None:
        self._uncommitted.extend(rows)
        await self._sink.add(rows)

    async def _commit(self, *, last: bool = False) -> None:
        """Rows, then the ledger, then the checkpoint: an event is marked finished once its row is stored, or,
        when the dataset refuses rows, kept in the checkpoint with them (the record of what was sent and charged
        never depends on the dataset); and once the ledger knows it, if Snap accepted it. The other way round, a
        run that died between the two (or whose ledger write failed) left events its resumed attempt skips and the
        ledger never learns: the next run sent and charged them again. This way such an event is looked up again
        by the resumed attempt, and is a duplicate (an extra row, nothing sent or charged)."""
        rows, self._uncommitted = self._uncommitted, []
        accepted, self._accepted = self._accepted, []
        marked = False
        try:
            try:
                await self._sink.flush()
            except DatasetUnavailableError as error:
                if self.dataset_down is None:
                    self.dataset_down = error
                    self.stop(f"{error}; no new events were taken while rows could not be stored")
            if self._ledger is not None:
                self._ledger.accept(accepted)
                # Writes only what changed; the run's last commit also marks its chunks done (for later runs).
                await self._ledger.save(last=last)
            if self._checkpoint is not None and rows:
                self._checkpoint.mark(row["eventIndex"] for row in rows)
                self._committed.add(rows)
                marked = True
                await self._checkpoint.save(self._committed, self._sink.unstored())
        except BaseException:
            self._accepted = [*accepted, *self._accepted]  # for the next commit (the run's last): written again
            if not marked:  # nor are these rows counted finished yet: the next commit does, once the ledger is written
                self._uncommitted = [*rows, *self._uncommitted]
            raise

    async def _tick(self) -> None:
        """The status line moves every few seconds even while a batch waits on retries; the ledger's leases on the
        export are renewed meanwhile too (only saves renewed them: a batch waiting that long let them lapse)."""
        while True:
            await asyncio.sleep(self._progress.interval)
            await self._progress.update()
            if self._ledger is not None:
                try:
                    await self._ledger.keep_leases()
                except LedgerError as error:  # another run took the export over: it sends the rest
                    self.stopped_by = self.stopped_by or error
                except Exception as error:  # a store briefly unavailable: the next tick tries again
                    _log.warning(f"Could not renew the ledger's hold on the export ({error_named(error)})")
