"""The pipeline in-process on in-memory delivery, billing, dataset, checkpoint and ledger.

What a user cares about: which events reach Snap and in which batches, which row each event ends
as, what is charged, and what a resumed, stopped, paused or broken run does (issue 11).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from memory_platform import MemoryStore

from src.billing import Billing
from src.delivery import pipeline as pipeline_module
from src.delivery.checkpoint import STATE_KEY, Checkpoint
from src.delivery.pipeline import RETRY_WARNING, Pipeline, PipelineSettings
from src.delivery.send import DeliveryStoppedError
from src.errors import SnapAuthError, SourceError
from src.events.build import ConversionBuilder, Destinations, PreparedEvent
from src.events.names import EventNameResolver
from src.events.shape import SourceEvent
from src.events.user_data import UserDataNormalizer
from src.ledger import Ledger, LedgerKey
from src.results.rows import Outcome, Row, Status
from src.results.sink import DatasetUnavailableError, Progress, ResultSink
from src.results.summary import Summary
from src.results.verdict import Verdict, conversion_verdict

NOW = 1_700_000_000.0
PIXEL = "pixel-1"
APP = "app-1"
TASK = "send_batch_events"


def purchase(i: int) -> dict[str, Any]:
    return {"eventType": "PURCHASE", "email": f"buyer{i}@example.com", "price": 5, "currency": "USD",
            "transactionId": f"order-{i}", "eventTime": int(NOW) - 60,
            "eventSourceUrl": "https://shop.example.com/thanks"}  # fmt: skip


def app_open(i: int) -> dict[str, Any]:
    return {"eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "eventTime": int(NOW) - 60,
            "mobileAdId": f"402da762-201e-42c1-961b-c1fa6cbcf{i:03d}", "eventId": f"app-{i}",
            "extinfo": ["a2", "com.example.app", "1.0"]}  # fmt: skip


INVALID = {"eventType": "PURCHASE", "transactionId": "no-identifier", "eventTime": int(NOW) - 60}


@dataclass
class FakeDelivery:
    """Records every batch; answers `fates[event_id]` (default sent); may refuse the token on call `stop_on`."""

    fates: dict[str, Status] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    stop_on: int | None = None
    delay: float = 0.0
    on_call: Callable[[int], object] | None = None
    batches: list[tuple[str, list[str]]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    log: list[str] | None = None

    async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        self.batches.append((asset_id, [event.event_id for event in events]))
        call = len(self.batches)
        if self.on_call is not None:
            self.on_call(call)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        outcomes = [Outcome(event, self.fates.get(event.event_id, "sent"), self.reasons.get(event.event_id))
                    for event in events]  # fmt: skip
        if call == self.stop_on:
            half = len(events) // 2
            stopped = outcomes[:half] + [Outcome(e, "failed", "token refused") for e in events[half:]]
            raise DeliveryStoppedError(SnapAuthError("token refused"), stopped)
        if self.log is not None:
            self.log.append(f"delivered {call}")
        return outcomes


class LoggedStore(MemoryStore):
    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log = name, log

    async def set(self, key: str, value: Any) -> None:
        self.log.append(f"{self.name} {key}")
        await super().set(key, value)


@dataclass
class Run:
    rows: list[Row]
    summary: Summary
    delivery: FakeDelivery
    charges: list[tuple[int, str]]
    statuses: list[str]
    error: BaseException | None = None
    pipeline: Pipeline | None = None

    def status_of(self) -> dict[str, str]:
        return {row["eventId"]: row["status"] for row in self.rows}

    def row(self, event_id: str) -> Row:
        (found,) = [row for row in self.rows if row["eventId"] == event_id]
        return found

    @property
    def delivered(self) -> list[str]:
        return [event_id for _, ids in self.delivery.batches for event_id in ids]

    @property
    def charged(self) -> int:
        return sum(count for count, _ in self.charges)


async def events_of(data: Sequence[dict[str, Any]], *, fail_after: int | None = None) -> AsyncIterator[SourceEvent]:
    for index, item in enumerate(data):
        if index == fail_after:
            raise SourceError("the source broke off")
        yield SourceEvent(index, item)
        await asyncio.sleep(0)  # a real source waits on I/O: batches sent meanwhile start


def run(
    data: Sequence[dict[str, Any]],
    *,
    delivery: FakeDelivery | None = None,
    batch_size: int = pipeline_module.MAX_BATCH,
    max_concurrency: int = 4,
    limit: int | None = None,
    store: MemoryStore | None = None,
    ledger_store: MemoryStore | None = None,
    push_fails: bool = False,
    log: list[str] | None = None,
    control: Callable[[Pipeline, FakeDelivery], None] | None = None,
    source: Callable[[], AsyncIterator[SourceEvent]] | None = None,
    interval: float = 5.0,
    fingerprint: str = "input-1",
    after: Callable[[], None] | None = None,
    pushed: list[Row] | None = None,
    push_waits: Callable[[], Awaitable[None]] | None = None,
    ledger_type: type[Ledger] = Ledger,
) -> Run:
    rows: list[Row] = [] if pushed is None else pushed
    charges: list[tuple[int, str]] = []
    statuses: list[str] = []
    summary = Summary(task=TASK, demo=False)
    delivery = delivery or FakeDelivery()
    result = Run(rows, summary, delivery, charges, statuses)

    async def push(batch: list[Row]) -> None:
        if push_fails:
            raise OSError("dataset unreachable")
        if push_waits is not None:
            await push_waits()
        if log is not None:
            log.append(f"push {sorted(row['eventIndex'] for row in batch)}")
        rows.extend(batch)

    async def status(message: str) -> None:
        statuses.append(message)

    async def charge(count: int, key: str) -> int:
        charges.append((count, key))
        return count

    async def scenario() -> None:
        checkpoint = None
        if store is not None:
            checkpoint = Checkpoint(store.set, fingerprint, await store.get(STATE_KEY))
        pipeline = Pipeline(
            PipelineSettings(task=TASK, batch_size=batch_size, max_concurrency=max_concurrency),
            builder=ConversionBuilder(destinations=Destinations(PIXEL, APP), normalizer=UserDataNormalizer(),
                                      names=EventNameResolver(None), now=lambda: NOW),
            delivery=delivery,
            billing=Billing(limit=lambda: None if limit is None else limit - result.charged, charge=charge,
                            run_id="run-1"),
            sink=ResultSink(push, summary),
            progress=Progress(status, summary, interval=interval),
            checkpoint=checkpoint,
            ledger=None if ledger_store is None else ledger_type(ledger_store),
        )  # fmt: skip
        result.pipeline = pipeline
        if control is not None:
            control(pipeline, delivery)
        try:
            await pipeline.run(source() if source is not None else events_of(data))
        except (SnapAuthError, SourceError, DatasetUnavailableError) as error:
            result.error = error
        if after is not None:
            after()

    asyncio.run(scenario())
    return result


def test_every_event_ends_as_one_row_and_only_accepted_ones_are_charged() -> None:
    delivery = FakeDelivery(fates={"order-1": "failed", "order-2": "invalid"})
    result = run([purchase(0), purchase(1), INVALID, purchase(2), purchase(3)], delivery=delivery)
    assert result.error is None
    assert result.delivered == ["order-0", "order-1", "order-2", "order-3"]
    assert result.status_of() == {"order-0": "sent", "order-1": "failed", "no-identifier": "invalid",
                                  "order-2": "invalid", "order-3": "sent"}  # fmt: skip
    assert [row["charged"] for row in result.rows if row["status"] == "sent"] == [True, True]
    assert result.charged == 2
    assert result.charges == [(2, f"run-1:{PIXEL}:0-4")]
    assert result.summary.read == 5
    assert result.summary.counts == {"sent": 2, "failed": 1, "invalid": 2}
    assert result.summary.charged == 2


def test_batches_are_cut_at_the_batch_size_and_per_asset() -> None:
    data = [purchase(0), app_open(0), purchase(1), purchase(2), app_open(1), purchase(3), purchase(4)]
    result = run(data, batch_size=2)
    assert sorted(result.delivery.batches) == sorted([
        (PIXEL, ["order-0", "order-1"]), (PIXEL, ["order-2", "order-3"]), (PIXEL, ["order-4"]),
        (APP, ["app-0", "app-1"]),
    ])  # fmt: skip
    assert len(result.rows) == 7
    assert result.charged == 7


def test_a_full_batch_is_sent_before_the_source_ends() -> None:
    seen_when_sent: list[int] = []
    read = 0

    async def source() -> AsyncIterator[SourceEvent]:
        nonlocal read
        for index in range(5):
            read += 1
            yield SourceEvent(index, purchase(index))
            await asyncio.sleep(0)

    delivery = FakeDelivery(on_call=lambda call: seen_when_sent.append(read))
    run([], delivery=delivery, batch_size=2, source=source)
    assert seen_when_sent[:2] == [2, 4]


def test_the_default_batch_is_2000_events() -> None:
    assert pipeline_module.MAX_BATCH == 2000
    result = run([purchase(i) for i in range(2001)])
    assert [len(ids) for _, ids in result.delivery.batches] == [2000, 1]


def test_at_most_max_concurrency_batches_are_in_flight() -> None:
    delivery = FakeDelivery(delay=0.02)
    result = run([purchase(i) for i in range(12)], delivery=delivery, batch_size=1)
    assert delivery.most_in_flight == 4
    assert len(result.rows) == 12
    assert PipelineSettings(task=TASK).max_concurrency == 4
    delivery = FakeDelivery(delay=0.02)
    run([purchase(i) for i in range(6)], delivery=delivery, batch_size=1, max_concurrency=2)
    assert delivery.most_in_flight == 2


def test_the_maximum_charge_skips_what_it_cannot_pay_for() -> None:
    result = run([purchase(i) for i in range(5)], limit=3)
    assert result.delivered == ["order-0", "order-1", "order-2"]
    assert result.charged == 3
    skipped = [row for row in result.rows if row["status"] == "skipped"]
    assert [row["eventId"] for row in skipped] == ["order-3", "order-4"]
    assert all("maximum charge" in row["error"] and not row["charged"] for row in skipped)


def test_a_batch_the_maximum_charge_cannot_pay_for_at_all_is_skipped_whole() -> None:
    result = run([purchase(i) for i in range(4)], limit=2, batch_size=2, max_concurrency=1)
    assert result.delivered == ["order-0", "order-1"]  # the second batch is never sent: nothing left to pay
    assert result.charged == 2
    skipped = [(row["eventId"], row["status"]) for row in result.rows[2:]]
    assert skipped == [("order-2", "skipped"), ("order-3", "skipped")]


def test_a_refused_token_keeps_what_snap_accepted_and_sends_nothing_more() -> None:
    delivery = FakeDelivery(stop_on=1)
    result = run([purchase(i) for i in range(8)], delivery=delivery, batch_size=4, max_concurrency=1)
    assert isinstance(result.error, SnapAuthError)
    assert delivery.batches == [(PIXEL, ["order-0", "order-1", "order-2", "order-3"])]
    statuses = result.status_of()
    assert [statuses[f"order-{i}"] for i in range(8)] == ["sent"] * 2 + ["failed"] * 6
    assert result.charged == 2
    assert all(result.row(f"order-{i}")["error"] == "not sent: token refused" for i in range(4, 8))


def test_a_refused_token_keeps_the_first_cause() -> None:
    delivery = FakeDelivery(stop_on=1, delay=0.01)

    def second_refusal(pipeline: Pipeline, fake: FakeDelivery) -> None:
        pipeline.stopped_by = SnapAuthError("first refusal")

    result = run([purchase(i) for i in range(2)], delivery=delivery, control=second_refusal)
    assert str(result.error) == "first refusal"


def test_a_broken_source_still_delivers_what_was_read_then_fails() -> None:
    result = run([], source=lambda: events_of([purchase(i) for i in range(5)], fail_after=3))
    assert isinstance(result.error, SourceError)
    assert result.delivered == ["order-0", "order-1", "order-2"]
    assert result.charged == 3


def test_stop_reads_no_more_finishes_what_is_in_flight_and_closes_the_source() -> None:
    closed: list[bool] = []

    async def source() -> AsyncIterator[SourceEvent]:
        try:
            for index in range(10):
                yield SourceEvent(index, purchase(index))
                await asyncio.sleep(0)
        finally:
            closed.append(True)

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        delivery.on_call = lambda call: pipeline.stop("the run was aborted") if call == 1 else None

    closed_when_run_returned: list[bool] = []
    result = run([], batch_size=2, source=source, control=control, delivery=FakeDelivery(delay=0.01),
                 after=lambda: closed_when_run_returned.append(bool(closed)))  # fmt: skip
    assert closed_when_run_returned == [True]  # the source (a file, a connection) is closed by the run itself
    assert result.error is None
    assert result.delivered == ["order-0", "order-1"]
    assert result.status_of() == {"order-0": "sent", "order-1": "sent"}
    assert result.charged == 2
    assert result.summary.interrupted == "the run was aborted"
    assert closed == [True]


def test_stop_leaves_a_partial_batch_unsent() -> None:
    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        delivery.on_call = lambda call: pipeline.stop("aborted")

    result = run([purchase(i) for i in range(5)], batch_size=2, control=control, delivery=FakeDelivery(delay=0.01))
    assert result.delivered == ["order-0", "order-1"]
    assert len(result.rows) == 2


def test_pause_commits_then_waits_and_an_abort_while_paused_sends_nothing_more() -> None:
    store = MemoryStore()

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        def on_call(call: int) -> None:
            if call == 1:
                pipeline.pause()
                asyncio.get_running_loop().call_later(0.1, on_migrated)

        def on_migrated() -> None:
            state = json.loads(store.records[STATE_KEY])
            while_paused.append((state["watermark"], len(rows_while_paused())))
            pipeline.stop("aborted while migrating")

        delivery.on_call = on_call

    while_paused: list[tuple[int, int]] = []
    pushed: list[Row] = []

    def rows_while_paused() -> list[Row]:
        return pushed

    data = [purchase(0), purchase(1), purchase(2), INVALID, purchase(3), purchase(4)]

    async def source() -> AsyncIterator[SourceEvent]:
        for index, item in enumerate(data):
            yield SourceEvent(index, item)
            await asyncio.sleep(0.005)

    result = run([], source=source, batch_size=2, store=store, control=control, pushed=pushed)
    # before waiting to be moved, everything finished is stored and checkpointed: the batch sent, the invalid row
    assert while_paused == [(2, 3)]
    assert result.delivered == ["order-0", "order-1"]
    assert any(message.endswith("(paused: the run is being migrated)") for message in result.statuses)
    assert result.summary.interrupted == "aborted while migrating"
    checkpoint = Checkpoint(store.set, "input-1", asyncio.run(store.get(STATE_KEY)))
    assert checkpoint.watermark == 2  # what was sent before the pause is recorded; the rest is for the next attempt
    assert result.pipeline is not None and result.pipeline._resume is not None
    assert result.pipeline._resume.cancelled()  # the resume timer of the pause does not outlive the run


def test_a_pause_says_paused_only_once_the_batches_in_flight_are_stored_and_checkpointed() -> None:
    store = MemoryStore()
    paused_at: list[int] = []

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        set_status = pipeline._progress.set

        async def set_and_look(message: str) -> None:
            if message.endswith("(paused: the run is being migrated)"):
                paused_at.append(json.loads(store.records.get(STATE_KEY, '{"watermark": 0}'))["watermark"])
                pipeline.stop("aborted while migrating")
            await set_status(message)

        pipeline._progress.set = set_and_look  # type: ignore[method-assign]
        delivery.on_call = lambda call: pipeline.pause() if call == 1 else None

    result = run([purchase(i) for i in range(6)], batch_size=2, store=store, control=control,
                 delivery=FakeDelivery(delay=0.05))  # fmt: skip
    assert paused_at == [2]  # the batch out when the pause came is finished, stored and checkpointed first
    assert result.delivered == ["order-0", "order-1"]
    assert [row["eventId"] for row in result.rows] == ["order-0", "order-1"]


def test_a_migration_that_never_comes_resumes_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "MIGRATION_GRACE_S", 0.05)

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        delivery.on_call = lambda call: pipeline.pause() if call in (1, 2) else None

    result = run([purchase(i) for i in range(6)], batch_size=2, control=control)
    assert result.delivered == [f"order-{i}" for i in range(6)]
    assert result.summary.interrupted is None


def test_a_migration_while_a_batch_waits_for_its_turn_loses_no_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one slot: paused while the next batch waited for it, the run goes on when the pause ends."""
    monkeypatch.setattr(pipeline_module, "MIGRATION_GRACE_S", 0.05)

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        def on_call(call: int) -> None:
            if call == 1:
                asyncio.get_running_loop().call_later(0.02, pipeline.pause)

        delivery.on_call = on_call

    result = run([purchase(i) for i in range(6)], batch_size=2, max_concurrency=1, control=control,
                 delivery=FakeDelivery(delay=0.05))  # fmt: skip
    assert result.delivered == [f"order-{i}" for i in range(6)]
    assert result.summary.interrupted is None


def test_pause_waits_for_the_grace_period() -> None:
    async def scenario() -> float:
        pipeline = Pipeline(
            PipelineSettings(task=TASK),
            builder=ConversionBuilder(destinations=Destinations(PIXEL, APP), normalizer=UserDataNormalizer(),
                                      names=EventNameResolver(None), now=lambda: NOW),
            delivery=FakeDelivery(), billing=Billing.free(), sink=ResultSink(_ignore, Summary(TASK, False)),
            progress=Progress(_ignore, Summary(TASK, False)),
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        pipeline.pause()
        resume = pipeline._resume
        assert resume is not None and not pipeline._running.is_set()
        pipeline.pause()  # a second warning replaces the first timer
        assert resume.cancelled()
        assert pipeline._resume is not None
        return pipeline._resume.when() - loop.time()

    assert asyncio.run(scenario()) == pytest.approx(300.0, abs=0.5)


async def _ignore(_: Any) -> None:
    return None


def test_a_checkpoint_resumes_without_resending_or_recounting() -> None:
    store = MemoryStore()

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        delivery.on_call = lambda call: pipeline.stop("aborted") if call == 2 else None

    first = run([purchase(i) for i in range(6)], batch_size=2, max_concurrency=1, store=store, control=control,
                delivery=FakeDelivery(delay=0.01))  # fmt: skip
    assert first.delivered == ["order-0", "order-1", "order-2", "order-3"]
    second = run([purchase(i) for i in range(6)], batch_size=2, store=store)
    assert second.delivered == ["order-4", "order-5"]
    assert [row["eventId"] for row in second.rows] == ["order-4", "order-5"]
    assert second.summary.read == 2 + first.summary.read
    assert second.summary.counts == {"sent": 6}
    assert second.summary.charged == 6
    assert second.charged == 2
    assert any("6" in message and "sent 6" in message for message in second.statuses[-1:])
    state = asyncio.run(store.get(STATE_KEY))
    assert state["watermark"] == 6
    assert state["summary"]["counts"] == {"sent": 6}


def test_a_resumed_run_s_rate_counts_only_what_it_did_itself() -> None:
    store = MemoryStore()
    run([purchase(i) for i in range(3)], store=store)
    again = run([purchase(i) for i in range(3)], store=store)
    assert again.delivered == []
    assert again.statuses[-1] == "send_batch_events: read 3, sent 3; 0 events/s"


def test_the_last_status_shows_the_final_counts_however_recent_the_one_before() -> None:
    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        # the status line was just updated (as every few seconds) while the first batch was out
        delivery.on_call = lambda call: asyncio.ensure_future(pipeline._progress.update()) if call == 1 else None

    result = run([purchase(i) for i in range(4)], batch_size=2, control=control, delivery=FakeDelivery(delay=0.01))
    assert len(result.statuses) >= 2
    assert result.statuses[-1].startswith("send_batch_events: read 4, sent 4; ")


def test_an_unexpected_error_in_one_batch_fails_the_run_after_the_batches_in_flight_are_recorded() -> None:
    """The first batch breaks once everything is read (the run waits on its batches), while the second is out:
    the second still ends with its rows (sent, charged) before the run fails."""
    read_all, first_broke = asyncio.Event(), asyncio.Event()
    data = [purchase(i) for i in range(4)]

    async def source() -> AsyncIterator[SourceEvent]:
        for index, item in enumerate(data):
            yield SourceEvent(index, item)
            await asyncio.sleep(0)
        read_all.set()

    class BreaksFirst(FakeDelivery):
        async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
            if not self.batches:
                self.batches.append((asset_id, []))
                await read_all.wait()
                first_broke.set()
                raise RuntimeError("a bug in the first batch")
            await first_broke.wait()
            return await super().__call__(asset_id, events)

    pushed: list[Row] = []
    with pytest.raises(RuntimeError, match="a bug in the first batch"):
        run([], source=source, batch_size=2, pushed=pushed, delivery=BreaksFirst(delay=0.02))
    assert [(row["eventId"], row["status"], row["charged"]) for row in pushed] == [
        ("order-2", "sent", True),
        ("order-3", "sent", True),
    ]


def test_a_checkpoint_of_other_input_is_ignored() -> None:
    store = MemoryStore()
    run([purchase(i) for i in range(3)], store=store)
    again = run([purchase(i) for i in range(3)], store=store, fingerprint="input-2")
    assert again.delivered == ["order-0", "order-1", "order-2"]
    assert again.summary.counts == {"sent": 3}


def test_a_checkpoint_saved_for_other_input_of_the_same_run_is_not_resumed() -> None:
    store = MemoryStore()
    saved = Checkpoint(store.set, Checkpoint.fingerprint("run-1", '{"events": 1}'))
    saved.mark(range(5))
    asyncio.run(saved.save(Summary("send_batch_events", False)))
    state = asyncio.run(store.get(STATE_KEY))
    same = Checkpoint(store.set, Checkpoint.fingerprint("run-1", '{"events": 1}'), state)
    other = Checkpoint(store.set, Checkpoint.fingerprint("run-1", '{"events": 2}'), state)
    assert same.resumed and same.is_done(4) and not same.is_done(5)
    assert not other.resumed and not other.is_done(0)


@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled"])
def test_the_checkpoint_stays_a_few_numbers_long_whatever_order_batches_finish_in(order: str) -> None:
    """The first batch still out, the 49 after it finish in any order: one range, not one a batch."""
    store = MemoryStore()
    checkpoint = Checkpoint(store.set, "input-1")
    batches = [range(start, start + 20) for start in range(20, 1000, 20)]
    if order == "descending":
        batches.reverse()
    elif order == "shuffled":
        batches = [batches[i] for i in [*range(1, 49, 2), *range(0, 49, 2)]]
    for batch in batches:
        checkpoint.mark(batch)
        asyncio.run(checkpoint.save(Summary("send_batch_events", False)))
    state = asyncio.run(store.get(STATE_KEY))
    assert (state["watermark"], state["ranges"]) == (0, [[20, 1000]])
    assert [i for i in range(1001) if not checkpoint.is_done(i)] == [*range(20), 1000]
    checkpoint.mark(range(20))
    asyncio.run(checkpoint.save(Summary("send_batch_events", False)))
    state = asyncio.run(store.get(STATE_KEY))
    assert (state["watermark"], state["ranges"]) == (1000, [])


def test_finished_ranges_with_gaps_between_them_are_kept_apart() -> None:
    checkpoint = Checkpoint(MemoryStore().set, "input-1")
    for batch in ([10, 11], [30, 31], [20, 21], [12], [29], [50]):
        checkpoint.mark(batch)
    done = [i for i in range(60) if checkpoint.is_done(i)]
    assert done == [10, 11, 12, 20, 21, 29, 30, 31, 50]
    assert checkpoint.watermark == 0


def test_rows_the_dataset_refused_are_kept_in_the_checkpoint_and_stored_by_the_next_attempt() -> None:
    store = MemoryStore()
    failed = run([purchase(i) for i in range(6)], batch_size=2, max_concurrency=1, store=store, push_fails=True)
    assert isinstance(failed.error, DatasetUnavailableError)
    assert failed.delivered == ["order-0", "order-1"]  # no new events once rows cannot be stored
    state = asyncio.run(store.get(STATE_KEY))
    assert [row["eventId"] for row in state["unstored"]] == ["order-0", "order-1"]
    assert failed.summary.interrupted is not None
    resumed = run([purchase(i) for i in range(6)], batch_size=2, store=store)
    assert resumed.delivered == [f"order-{i}" for i in range(2, 6)]
    assert [row["eventId"] for row in resumed.rows] == [f"order-{i}" for i in range(6)]
    assert resumed.summary.counts == {"sent": 6}


def test_commit_order_is_rows_then_ledger_then_checkpoint() -> None:
    """The checkpoint counts a batch finished only once the ledger knows what Snap accepted of it
    (tests/test_resume.py shows why, with a run that dies between the two)."""
    log: list[str] = []
    store, ledger = LoggedStore("checkpoint", log), LoggedStore("ledger", log)
    run([purchase(0), purchase(1)], batch_size=2, store=store, ledger_store=ledger, log=log)
    assert log[0] == "push [0, 1]"
    assert log[1].startswith("ledger ")
    assert log[2] == f"checkpoint {STATE_KEY}"


def test_the_ledger_skips_what_snap_accepted_before_and_marks_resends() -> None:
    ledger = MemoryStore()
    first = run([purchase(i) for i in range(4)], ledger_store=ledger,
                delivery=FakeDelivery(fates={"order-1": "failed", "order-2": "invalid"}))  # fmt: skip
    assert first.charged == 2
    second = run([purchase(i) for i in range(4)], ledger_store=ledger)
    assert second.delivered == ["order-1", "order-2"]
    assert second.status_of() == {"order-0": "duplicate", "order-1": "sent", "order-2": "sent", "order-3": "duplicate"}
    assert second.row("order-0")["error"] == "already accepted by Snap in an earlier run (event_id order-0)"
    assert second.charged == 2
    assert not second.row("order-0")["charged"]
    assert RETRY_WARNING in second.row("order-1")["warnings"]
    assert RETRY_WARNING not in second.row("order-2")["warnings"]


def test_an_event_repeated_in_a_run_after_snap_accepted_it_is_a_duplicate_of_this_run() -> None:
    """Its row says this run sent it, not an earlier one; a later run says an earlier one did."""
    ledger = MemoryStore()
    data = [purchase(0), purchase(1), purchase(0)]  # one at a time: order-0 is accepted before its repeat is read
    first = run(data, ledger_store=ledger, batch_size=1, max_concurrency=1)
    assert first.delivered == ["order-0", "order-1"] and first.charged == 2
    (repeat,) = [row for row in first.rows if row["eventIndex"] == 2]
    assert (repeat["eventId"], repeat["status"], repeat["charged"]) == ("order-0", "duplicate", False)
    assert repeat["error"] == "already accepted by Snap earlier in this run (event_id order-0)"
    later = run(data, ledger_store=ledger)
    assert later.delivered == [] and later.charged == 0
    assert {row["error"] for row in later.rows} == {
        f"already accepted by Snap in an earlier run (event_id order-{i})" for i in (0, 1)
    }


def test_an_event_repeated_while_its_first_copy_is_being_sent_is_neither_sent_nor_charged_again() -> None:
    """Batches of 2,000, several in flight: a repeat read before Snap answered for the first copy is not sent; once
    Snap accepted the first copy, the repeat's row says it is a duplicate."""
    data = [purchase(0), purchase(1), purchase(0), purchase(2)]
    done = run(data, ledger_store=MemoryStore())
    assert done.delivered == ["order-0", "order-1", "order-2"] and done.charged == 3
    (repeat,) = [row for row in done.rows if row["eventIndex"] == 2]
    assert (repeat["status"], repeat["charged"]) == ("duplicate", False)
    assert repeat["error"] == "already accepted by Snap earlier in this run (event_id order-0)"
    assert done.summary.counts == {"sent": 3, "duplicate": 1}


def test_repeats_of_an_event_snap_did_not_accept_are_not_sent_and_end_as_it_did() -> None:
    """An export with an order on several lines, all read before Snap answered for the first: when Snap refuses it
    or cannot take it, its repeats were not sent either, and say so with its status and reason, so a run that sent
    nothing fails. (They were counted duplicates, "already sent earlier", and such a run succeeded.)"""
    data = [purchase(0), purchase(0), purchase(1), purchase(0), purchase(1)]
    ledger = MemoryStore()
    fates: dict[str, Status] = {"order-0": "failed", "order-1": "invalid"}
    done = run(data, ledger_store=ledger, delivery=FakeDelivery(fates=fates, reasons={"order-0": "HTTP 503"}))
    assert done.delivered == ["order-0", "order-1"] and done.charged == 0
    rows = sorted(done.rows, key=lambda row: row["eventIndex"])
    assert [(row["status"], row["error"], row["charged"]) for row in rows] == [
        ("failed", "HTTP 503", False), ("failed", "HTTP 503", False), ("invalid", None, False),
        ("failed", "HTTP 503", False), ("invalid", None, False),
    ]  # fmt: skip
    assert [row["warnings"] for row in rows] == [
        [], ["repeats event #0 (event_id order-0): not sent, as that one"], [],
        ["repeats event #0 (event_id order-0): not sent, as that one"],
        ["repeats event #2 (event_id order-1): not sent, as that one"],
    ]  # fmt: skip
    verdict = conversion_verdict(done.summary, validate=False)
    assert verdict == Verdict(False, "0 of 5 sent: 2 invalid, 3 failed (HTTP 503 x3); 0 charged")
    later = run(data, ledger_store=ledger)  # the failed order is sent once by the next run, with the retry warning
    assert later.delivered == ["order-0", "order-1"] and later.charged == 2
    assert RETRY_WARNING in next(row for row in later.rows if row["eventIndex"] == 0)["warnings"]


def test_a_repeat_read_after_snap_accepted_its_first_copy_but_before_the_commit_is_a_duplicate_at_once() -> None:
    """Snap accepted the first copy; its rows are being stored (the ledger learns it at the commit after). A repeat
    read meanwhile gets its duplicate row at once, and the run ends with a row for every event."""
    stored, read_on = asyncio.Event(), asyncio.Event()

    async def source() -> AsyncIterator[SourceEvent]:
        yield SourceEvent(0, purchase(0))
        await read_on.wait()  # the first batch's rows are being pushed: Snap answered, the commit is under way
        yield SourceEvent(1, purchase(0))
        stored.set()

    async def push_waits() -> None:
        read_on.set()
        await stored.wait()

    done = run([], source=source, ledger_store=MemoryStore(), batch_size=1, push_waits=push_waits)
    assert done.delivered == ["order-0"] and done.charged == 1
    rows = sorted(done.rows, key=lambda row: row["eventIndex"])
    assert [(row["status"], row["error"]) for row in rows] == [
        ("sent", None), ("duplicate", "already accepted by Snap earlier in this run (event_id order-0)")
    ]  # fmt: skip


def test_the_ledger_is_told_of_each_accepted_event_once_however_many_commits_follow() -> None:
    """A million-event run commits some 500 times: each commit tells the ledger only what Snap accepted since the
    one before (kept after, every commit would tell it every event again, and the run would hold them all)."""
    told: list[int] = []

    class Told(Ledger):
        def accept(self, keys: Iterable[LedgerKey]) -> None:
            keys = list(keys)
            told.extend(key for _, key in keys)
            super().accept(keys)

    done = run([purchase(i) for i in range(6)], ledger_store=MemoryStore(), ledger_type=Told, batch_size=2,
               max_concurrency=1)  # fmt: skip
    assert done.charged == 6
    assert len(told) == 6 and len(set(told)) == 6


def test_repeats_of_events_never_sent_once_snap_refused_the_token_say_so_too() -> None:
    """The token refused on the first batch: the events batched after it are not sent, nor their repeats, each
    with a row that says why."""
    data = [purchase(0), purchase(1), purchase(2), purchase(2), purchase(3)]
    done = run(data, ledger_store=MemoryStore(), batch_size=2, max_concurrency=1,
               delivery=FakeDelivery(stop_on=1, delay=0.01))  # fmt: skip
    assert isinstance(done.error, SnapAuthError)
    assert done.delivered == ["order-0", "order-1"] and done.charged == 1  # order-0 accepted before the refusal
    rows = sorted(done.rows, key=lambda row: row["eventIndex"])
    assert [(row["eventIndex"], row["status"]) for row in rows] == [
        (0, "sent"), (1, "failed"), (2, "failed"), (3, "failed"), (4, "failed")
    ]  # fmt: skip
    assert rows[3]["error"] == rows[2]["error"] == "not sent: token refused"
    assert rows[3]["warnings"] == ["repeats event #2 (event_id order-2): not sent, as that one"]


def test_a_repeat_of_an_event_snap_refused_or_could_not_take_is_sent_again() -> None:
    """Only an accepted (or still unanswered) event makes its repeat a duplicate: after a refusal or a failure the
    repeat is looked at anew, and with skipping off every repeat is sent."""
    data = [purchase(0), purchase(1), purchase(0), purchase(1)]
    refused = run(data, ledger_store=MemoryStore(), batch_size=1, max_concurrency=1,
                  delivery=FakeDelivery(fates={"order-0": "invalid", "order-1": "failed"}))  # fmt: skip
    assert refused.delivered == ["order-0", "order-1", "order-0", "order-1"] and refused.charged == 0
    assert [row["status"] for row in sorted(refused.rows, key=lambda row: row["eventIndex"])] == [
        "invalid", "failed", "invalid", "failed"
    ]  # fmt: skip


def test_events_accepted_before_a_failed_checkpoint_save_still_reach_the_ledger() -> None:
    """A commit whose checkpoint write fails, while the run reads on: no new event is sent, the run fails, and what
    Snap accepted is still recorded by the run's last commit, so the next run neither sends nor charges it again."""
    failed = asyncio.Event()

    class FailsOnce(MemoryStore):
        async def set(self, key: str, value: Any) -> None:
            if key == STATE_KEY and not failed.is_set():
                failed.set()
                raise OSError("the store is unavailable")
            await super().set(key, value)

    data = [purchase(i) for i in range(6)]

    async def source() -> AsyncIterator[SourceEvent]:
        for index, item in enumerate(data):
            if index == 2:
                await failed.wait()  # the first batch's commit has failed (its task is done) before more is read
            yield SourceEvent(index, item)

    ledger, log, delivery = MemoryStore(), [], FakeDelivery()
    with pytest.raises(OSError, match="unavailable"):
        run([], source=source, ledger_store=ledger, store=FailsOnce(), batch_size=2, log=log, delivery=delivery)
    assert log == ["push [0, 1]"]  # the first batch was sent, charged and stored before the failed save
    assert [ids for _, ids in delivery.batches] == [["order-0", "order-1"]]  # and nothing was sent after it
    later = run(data, ledger_store=ledger)
    assert later.delivered == ["order-2", "order-3", "order-4", "order-5"]


def test_when_batches_fail_the_run_raises_the_first_error() -> None:
    class Breaks(FakeDelivery):
        async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
            self.batches.append((asset_id, [event.event_id for event in events]))
            raise RuntimeError(f"a bug in batch {len(self.batches)}")

    with pytest.raises(RuntimeError, match="a bug in batch 1"):
        run([purchase(i) for i in range(4)], batch_size=1, max_concurrency=2, delivery=Breaks())


def test_events_over_the_budget_are_sent_again_next_time_with_a_warning() -> None:
    ledger = MemoryStore()
    run([purchase(i) for i in range(3)], ledger_store=ledger, limit=1)
    second = run([purchase(i) for i in range(3)], ledger_store=ledger)
    assert second.delivered == ["order-1", "order-2"]
    assert all(RETRY_WARNING in second.row(f"order-{i}")["warnings"] for i in (1, 2))


def test_the_status_line_moves_while_a_batch_is_out() -> None:
    result = run([purchase(0)], delivery=FakeDelivery(delay=0.12), interval=0.02)
    assert len(result.statuses) >= 3
    assert "sent 1" in result.statuses[-1]


def test_a_run_where_nothing_was_accepted_still_remembers_what_to_resend() -> None:
    ledger = MemoryStore()
    first = run([purchase(i) for i in range(2)], ledger_store=ledger,
                delivery=FakeDelivery(fates={"order-0": "failed", "order-1": "failed"}))  # fmt: skip
    assert first.charged == 0
    second = run([purchase(i) for i in range(2)], ledger_store=ledger)
    assert second.delivered == ["order-0", "order-1"]
    assert all(RETRY_WARNING in second.row(f"order-{i}")["warnings"] for i in (0, 1))


def test_events_read_after_a_refused_token_are_failed_without_a_resend_warning() -> None:
    ledger = MemoryStore()
    run([purchase(i) for i in range(4)], ledger_store=ledger, delivery=FakeDelivery(fates={"order-3": "failed"}))

    async def source() -> AsyncIterator[SourceEvent]:
        for index in range(4):  # orders 9, 10 (refused), 11, then 3: failed in the first run
            yield SourceEvent(index, purchase(3) if index == 3 else purchase(9 + index))
            await asyncio.sleep(0.01)

    second = run([], source=source, ledger_store=ledger, delivery=FakeDelivery(stop_on=1), batch_size=2)
    assert isinstance(second.error, SnapAuthError)
    row = second.row("order-3")
    assert (row["status"], row["error"]) == ("failed", "not sent: token refused")
    assert RETRY_WARNING not in row["warnings"]  # it was not sent again


def test_a_batch_waiting_for_its_turn_when_the_run_stops_is_not_sent() -> None:
    """Abort and SIGTERM finish the batches in flight: one still waiting for a free slot stays unsent."""

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        def on_call(call: int) -> None:
            if call == 1:  # the abort arrives while the first batch is out and the next one waits for its slot
                asyncio.get_running_loop().call_later(0.02, pipeline.stop, "aborted")

        delivery.on_call = on_call

    result = run([purchase(i) for i in range(6)], batch_size=2, max_concurrency=1, control=control,
                 delivery=FakeDelivery(delay=0.05))  # fmt: skip
    assert result.delivered == ["order-0", "order-1"]
    assert result.status_of() == {"order-0": "sent", "order-1": "sent"}
    assert result.summary.interrupted == "aborted"


def test_a_batch_waiting_for_its_turn_when_snap_refuses_the_token_is_reported_not_sent() -> None:
    result = run([purchase(i) for i in range(6)], batch_size=2, max_concurrency=1,
                 delivery=FakeDelivery(delay=0.01, stop_on=1))  # fmt: skip
    assert result.delivered == ["order-0", "order-1"]
    statuses = result.status_of()
    assert [statuses[f"order-{i}"] for i in range(6)] == ["sent", "failed", "failed", "failed", "failed", "failed"]
    assert isinstance(result.error, SnapAuthError)


def test_started_is_set_by_the_first_event_and_at_the_end_of_a_run_without_any() -> None:
    """What waits for work to begin (Snap's score for the report) starts with the first event, not before."""
    seen: list[tuple[str, bool]] = []

    def control(pipeline: Pipeline, delivery: FakeDelivery) -> None:
        async def source() -> AsyncIterator[SourceEvent]:
            seen.append(("before the first event", pipeline.started.is_set()))
            yield SourceEvent(0, purchase(0))
            seen.append(("after it", pipeline.started.is_set()))

        holder["source"] = source

    holder: dict[str, Any] = {}
    run([], control=control, source=lambda: holder["source"]())
    assert seen == [("before the first event", False), ("after it", True)]

    async def empty() -> AsyncIterator[SourceEvent]:
        for _ in ():
            yield SourceEvent(0, {})

    ended = run([], source=empty)
    assert ended.pipeline is not None and ended.pipeline.started.is_set()


def test_a_repeat_purchase_without_id_or_time_is_sent_and_charged_again_by_a_later_run() -> None:
    """Its event id comes from its content alone (so a resumed run finds the same one), and so is the same for
    the same customer buying the same again next week: the ledger does not remember such ids across runs."""
    ledger = MemoryStore()
    again = {"eventType": "PURCHASE", "email": "regular@example.com", "price": 5, "currency": "USD",
             "eventSourceUrl": "https://shop.example.com/thanks"}  # fmt: skip
    first = run([again, purchase(1)], ledger_store=ledger)
    later = run([again, purchase(1)], ledger_store=ledger)
    assert first.charged == 2 and later.charged == 1
    assert [row["status"] for row in later.rows if row["eventId"] != "order-1"] == ["sent"]
    assert later.status_of()["order-1"] == "duplicate"  # an order id names one purchase: remembered
    assert len(later.delivered) == 1 and later.delivered == first.delivered[:1]  # Snap gets the repeat again
