"""From an adversarial review of the ledger (`src/ledger.py`, runs writing only chunks of their own): what a user
would see go wrong (an event Snap accepted sent and charged again, a store listed whole), each as a test."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from memory_platform import MemoryStore

from src import ledger as ledger_module
from src.billing import Billing
from src.delivery.pipeline import Pipeline, PipelineSettings
from src.errors import LedgerError
from src.events.build import ConversionBuilder, Destinations, PreparedEvent
from src.events.names import EventNameResolver
from src.events.shape import SourceEvent
from src.events.user_data import UserDataNormalizer
from src.ledger import Earlier, Lease, Ledger, entry
from src.main import _Store
from src.results.rows import Outcome, Row
from src.results.sink import Progress, ResultSink
from src.results.summary import Summary

PIXEL = "pixel-review-1"
DAY = 20_000


def _prefix(asset_id: str) -> str:
    return "asset-" + hashlib.sha256(asset_id.encode()).hexdigest()[:16]


def _hexes(asset_id: str, event_ids: list[str]) -> str:
    return "".join(f"{entry(asset_id, event_id):016x}" for event_id in event_ids)


def _put(store: MemoryStore, key: str, value: Any) -> None:
    """A record left by another run (not counted as a write)."""
    store.records[key] = json.dumps(value)


async def _earlier(ledger: Ledger, asset_id: str, event_id: str) -> Earlier:
    return (await ledger.look_up(asset_id, event_id))[0]


async def _add(ledger: Ledger, asset_id: str, event_ids: list[str]) -> None:
    ledger.accept([(await ledger.look_up(asset_id, event_id))[1] for event_id in event_ids])


def test_an_event_accepted_for_one_pixel_is_remembered_when_another_pixels_ledger_could_not_be_read() -> None:
    """A run sends to two pixels; loading the second pixel's ledger fails (the store briefly unavailable: the run
    will fail). Every save of the run, its last one too, awaited that failed load first and raised before writing
    the first pixel's entries: the next run sent and charged the first pixel's events again."""
    other = "pixel-review-2"

    class ListingFails(MemoryStore):
        async def keys(self, prefix: str) -> list[str]:
            if prefix == _prefix(other):
                raise OSError("the store is unavailable")
            return await super().keys(prefix)

    async def scenario() -> Earlier:
        store = ListingFails()
        run = Ledger(store, today=DAY)
        with pytest.raises(OSError, match="unavailable"):
            await run.look_up(other, "o-1")
        await _add(run, PIXEL, ["order-1"])
        await run.save(last=True)
        return await _earlier(Ledger(store, today=DAY), PIXEL, "order-1")

    assert asyncio.run(scenario()) == "accepted"


def test_an_event_accepted_for_one_pixel_is_remembered_when_the_write_of_another_pixels_chunk_failed() -> None:
    """A run sends to two pixels; the store refuses the writes of the first pixel's records (after the SDK's
    retries). The run's last save raised at that pixel and never wrote the second one's: the next run sent and
    charged the second pixel's events again. Now the save writes every asset it can, then raises the first error."""
    other = "pixel-review-2"

    class RefusesOnePixel(MemoryStore):
        async def set(self, key: str, value: Any) -> None:
            if key.startswith(_prefix(other)):
                raise OSError("the store refused the write")
            await super().set(key, value)

    async def scenario() -> list[Earlier]:
        store = RefusesOnePixel()
        run = Ledger(store, today=DAY)
        await _add(run, other, ["o-1"])  # loaded first: saved first
        await _add(run, PIXEL, ["order-1"])
        with pytest.raises(OSError, match="refused"):
            await run.save(last=True)
        later = Ledger(store, today=DAY)
        return [await _earlier(later, PIXEL, "order-1"), await _earlier(later, other, "o-1")]

    assert asyncio.run(scenario()) == ["accepted", None]


def test_a_chunk_taken_over_again_and_again_while_a_run_loads_is_still_known() -> None:
    """While a run loads (a big ledger is read in waves, each an HTTP call), the chunk holding an entry is taken
    over by another run each time the run comes to read it: it reads as gone, the store is listed again, and the
    taker's chunk is gone too by the time it is read. The store was listed at most 3 times: after a third takeover
    the run went on without the entry and sent and charged it again."""

    class TakenOverOnEachRead(MemoryStore):
        takeovers = 0
        reading = False

        async def get(self, key: str) -> Any:
            chunk = key.startswith(f"{_prefix(PIXEL)}-d") and key in self.records
            if chunk and not self.reading and self.takeovers < 3:
                self.reading, self.takeovers = True, self.takeovers + 1
                try:  # another run takes this chunk over (stores it in one of its own, done), then deletes it
                    taker = Ledger(self, today=DAY)
                    await _add(taker, PIXEL, [f"taker-{self.takeovers}"])
                    await taker.save(last=True)
                finally:
                    self.reading = False
            return await super().get(key)

    async def scenario() -> tuple[int, Earlier]:
        store = TakenOverOnEachRead()
        first = Ledger(store, today=DAY)
        await _add(first, PIXEL, ["order-1"])
        store.reading = True  # not while the first run saves
        await first.save(last=True)
        store.reading = False
        known = await _earlier(Ledger(store, today=DAY), PIXEL, "order-1")
        return store.takeovers, known

    assert asyncio.run(scenario()) == (3, "accepted")


def test_what_a_run_of_the_earlier_version_still_going_adds_to_its_chunk_is_not_sent_again() -> None:
    """A run of the earlier version (a build still running while the new one rolls out, or a task pinned to it) has
    today's chunk `asset-<h>-4`; a new run loads it (to take it over), the earlier run then rewrites it with one more
    event, and the new run's save deletes it: the event is in no record, and the next run sends and charges it."""

    async def scenario() -> list[Earlier]:
        store = MemoryStore()
        prefix = _prefix(PIXEL)
        _put(store, prefix, {"chunks": [{"n": 4, "day": DAY, "count": 1, "since": DAY}]})
        _put(store, f"{prefix}-4", {"day": DAY, "ids": _hexes(PIXEL, ["old-1"])})
        new = Ledger(store, today=DAY)
        await _earlier(new, PIXEL, "probe")  # loaded: today's chunk of the earlier version is to be taken over
        # the earlier version's run saves: its open chunk rewritten whole, then its index
        _put(store, f"{prefix}-4", {"day": DAY, "ids": _hexes(PIXEL, ["old-1", "old-2"])})
        _put(store, prefix, {"chunks": [{"n": 4, "day": DAY, "count": 2, "since": DAY}]})
        await _add(new, PIXEL, ["new-1"])
        await new.save(last=True)
        later = Ledger(store, today=DAY)
        return [await _earlier(later, PIXEL, e) for e in ("old-1", "old-2", "new-1")]

    assert asyncio.run(scenario()) == ["accepted"] * 3


def _the_earlier_version_knows(store: MemoryStore, asset_id: str, event_id: str) -> bool:
    """What a run of the earlier version (an index `asset-<h>` naming chunks `asset-<h>-<n>`) loads."""
    prefix = _prefix(asset_id)
    index = json.loads(store.records.get(prefix, "null")) or {"chunks": []}
    held = ""
    for chunk in index["chunks"]:
        raw = store.records.get(f"{prefix}-{chunk['n']}")
        held += json.loads(raw)["ids"] if raw else ""
    wanted = f"{entry(asset_id, event_id):016x}"
    return any(held[i : i + 16] == wanted for i in range(0, len(held), 16))


def test_a_run_of_the_earlier_version_that_starts_after_a_new_one_does_not_send_everything_again() -> None:
    """A task pinned to the earlier build, or a run of it still starting while the new build rolls out, loads the
    ledger through its index: once a run of this version saved, the index is gone and every event of the last 38 days
    is sent and charged again."""

    async def scenario() -> MemoryStore:
        store = MemoryStore()
        prefix = _prefix(PIXEL)
        _put(store, prefix, {"chunks": [{"n": 3, "day": DAY - 1, "count": 1}, {"n": 4, "day": DAY, "count": 1}]})
        _put(store, f"{prefix}-3", {"day": DAY - 1, "ids": _hexes(PIXEL, ["yesterday"])})
        _put(store, f"{prefix}-4", {"day": DAY, "ids": _hexes(PIXEL, ["today"])})
        new = Ledger(store, today=DAY)
        await _add(new, PIXEL, ["new-1"])
        await new.save(last=True)
        return store

    store = asyncio.run(scenario())
    assert _the_earlier_version_knows(store, PIXEL, "yesterday")
    assert _the_earlier_version_knows(store, PIXEL, "today")


def _the_earlier_version_saves(store: MemoryStore, asset_id: str, event_ids: list[str]) -> None:
    """What a run of the earlier version (10c88ac) that accepted these writes: a new chunk numbered past those its
    index names (0 without an index), named in the index, then its record."""
    prefix = _prefix(asset_id)
    index = json.loads(store.records.get(prefix, "null")) or {"chunks": []}
    n = max((chunk["n"] for chunk in index["chunks"]), default=-1) + 1
    index["chunks"].append({"n": n, "day": DAY, "count": len(event_ids), "since": DAY})
    _put(store, prefix, index)
    _put(store, f"{prefix}-{n}", {"day": DAY, "ids": _hexes(asset_id, event_ids)})


def test_a_run_of_the_earlier_version_after_a_new_one_never_overwrites_what_the_new_runs_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The earlier version's full chunk `asset-<h>-0` (not taken over: full) is read by new runs; a new run's save
    deletes the index; a run of the earlier version then finds no index, writes its chunk as `asset-<h>-0`, and the
    entries of the full chunk are gone for every later run, new ones too: sent and charged again."""
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 2)

    async def scenario() -> list[Earlier]:
        store = MemoryStore()
        prefix = _prefix(PIXEL)
        _put(store, prefix, {"chunks": [{"n": 0, "day": DAY, "count": 2, "since": DAY}]})
        _put(store, f"{prefix}-0", {"day": DAY, "ids": _hexes(PIXEL, ["old-1", "old-2"])})
        new = Ledger(store, today=DAY)
        await _add(new, PIXEL, ["new-1"])
        await new.save(last=True)
        _the_earlier_version_saves(store, PIXEL, ["old-3"])
        later = Ledger(store, today=DAY)
        return [await _earlier(later, PIXEL, e) for e in ("old-1", "old-2", "new-1", "old-3")]

    assert asyncio.run(scenario()) == ["accepted"] * 4


def test_loading_one_pixels_ledger_lists_only_that_pixels_records() -> None:
    """A user's ledger store holds the records of every pixel and app it ever sent to (an abandoned one's for good:
    only loading an asset deletes its expired records). With 200 assets of 40 records each, loading one pixel listed
    all 8,000 keys (8 calls); a run sending to all 200 listed 1.6 million (1,600 calls), more with each new pixel."""
    keys = sorted(
        [f"{_prefix(f'pixel-{i}')}-d{DAY - d}-{i:016x}-0" for i in range(200) for d in range(39)]
        + [f"{_prefix(f'pixel-{i}')}-retry" for i in range(200)]
    )

    class SdkStore:
        """The SDK's `KeyValueStore.iterate_keys`: every key, in order, from past `exclusive_start_key`."""

        listed = 0

        async def iterate_keys(self, exclusive_start_key: str | None = None, limit: int | None = None) -> Any:
            for key in keys:
                if exclusive_start_key is None or key > exclusive_start_key:
                    self.listed += 1
                    yield SimpleNamespace(key=key, size=100)

    sdk = SdkStore()
    prefix = _prefix("pixel-7")
    found = asyncio.run(_Store(sdk).keys(prefix))  # type: ignore[arg-type]
    assert sorted(found) == [k for k in keys if k.startswith(prefix)]
    assert sdk.listed <= 2 * len(found)


def test_a_save_while_another_pixels_ledger_is_still_loading_waits_for_it_and_writes_both() -> None:
    """Batches of two pixels commit concurrently: one's save can come while the other's ledger is still being read.
    The save waits for that load, then writes what was accepted for either."""

    class SlowForOnePixel(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def keys(self, prefix: str) -> list[str]:
            if prefix == _prefix("pixel-slow"):
                await self.release.wait()
            return await super().keys(prefix)

    async def scenario() -> list[Earlier]:
        store = SlowForOnePixel()
        ledger = Ledger(store, today=DAY)
        await _add(ledger, PIXEL, ["fast-1"])
        slow = asyncio.ensure_future(_add(ledger, "pixel-slow", ["slow-1"]))
        await asyncio.sleep(0)  # its load has begun, and waits
        saving = asyncio.ensure_future(ledger.save())
        await asyncio.sleep(0)
        store.release.set()
        await slow
        await saving
        await ledger.save()
        later = Ledger(store, today=DAY)
        return [await _earlier(later, PIXEL, "fast-1"), await _earlier(later, "pixel-slow", "slow-1")]

    assert asyncio.run(scenario()) == ["accepted", "accepted"]


def test_a_save_cancelled_while_writing_one_pixels_chunk_writes_no_other() -> None:
    """A cancelled save (the run stopping) stops at once: it does not go on to the next pixel's writes."""

    class Hangs(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.writing = asyncio.Event()
            self.keys_written: list[str] = []

        async def set(self, key: str, value: Any) -> None:
            if key.startswith(_prefix(PIXEL)):
                self.writing.set()
                await asyncio.Event().wait()  # never answers
            self.keys_written.append(key)
            await super().set(key, value)

    async def scenario() -> list[str]:
        store = Hangs()
        ledger = Ledger(store, today=DAY)
        await _add(ledger, PIXEL, ["a"])
        await _add(ledger, "pixel-other", ["b"])
        saving = asyncio.ensure_future(ledger.save())
        await store.writing.wait()
        saving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await saving
        return store.keys_written

    assert asyncio.run(scenario()) == []


# ----- one run of an export at a time: the lease (review of 40c2229) -----

EXPORT = "https://shop.example.com/export.jsonl?token=secret-in-url"


def _lease_key(asset_id: str = PIXEL, source: str = EXPORT) -> str:
    return f"{_prefix(asset_id)}-lease-{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def test_a_run_whose_ledger_could_not_be_read_leaves_no_lease_that_blocks_the_next_run() -> None:
    """The run took the export's lease, then listing the pixel's records failed (the run fails: it cannot tell
    what was sent). Its last save skipped the pixel (never loaded), so the lease stayed: the user's next run of the
    export, started at once, sent nothing and failed with 'Another run (run-1) is sending the same export'."""

    class ListingFails(MemoryStore):
        async def keys(self, prefix: str) -> list[str]:
            raise OSError("the store is unavailable")

    async def scenario() -> Earlier:
        store = ListingFails()
        first = Ledger(store, today=DAY, lease=Lease(EXPORT, "run-1"), clock=lambda: 1_000.0)
        with pytest.raises(OSError, match="unavailable"):
            await first.look_up(PIXEL, "a")
        await first.save(last=True)
        healthy = MemoryStore()
        healthy.records = store.records
        second = Ledger(healthy, today=DAY, lease=Lease(EXPORT, "run-2"), clock=lambda: 1_010.0)
        return await _earlier(second, PIXEL, "a")

    assert asyncio.run(scenario()) is None


def test_a_run_whose_lease_lapsed_and_was_taken_by_another_stops_rather_than_sending_beside_it() -> None:
    """No save renewed run-1's lease for 15 minutes (its batches waited on Snap's Retry-After), so run-2 took it.
    Run-1's next save renewed it over run-2's, and both went on sending (and charging) what neither had recorded;
    run-1's last save then deleted the lease run-2 still held. Now run-1's save finds the lease gone and stops."""
    clock = [0.0]

    async def scenario() -> tuple[str, Any]:
        store = MemoryStore()
        first = Ledger(store, today=DAY, lease=Lease(EXPORT, "run-1"), clock=lambda: clock[0])
        await _earlier(first, PIXEL, "a")  # taken at 0: until 900
        clock[0] = 950.0
        second = Ledger(store, today=DAY, lease=Lease(EXPORT, "run-2"), clock=lambda: clock[0])
        await _earlier(second, PIXEL, "a")  # lapsed: run-2 takes it, until 1850
        clock[0] = 1_000.0
        await _add(first, PIXEL, ["b"])
        with pytest.raises(LedgerError) as stopped:
            await first.save()
        await first.save(last=True)
        return str(stopped.value), json.loads(store.records[_lease_key()])

    message, lease = asyncio.run(scenario())
    assert message.startswith(f"Another run (run-2) took over the same export to {PIXEL}: ")
    assert lease == {"run": "run-2", "until": 1_850.0}


class RefusesPixelsLease(MemoryStore):
    """Refuses every write of PIXEL's lease once `refuse` is set (a store briefly unavailable)."""

    refuse = False

    async def set(self, key: str, value: Any) -> None:
        if self.refuse and key == _lease_key(PIXEL):
            raise OSError("the store refused the write")
        await super().set(key, value)


OTHER_PIXEL = "pixel-review-2"


async def _two_pixels_leases_due() -> tuple[RefusesPixelsLease, Ledger]:
    """A run holding one export's leases on PIXEL and OTHER_PIXEL (taken at 0), both due for renewal (at 400), with
    a store that now refuses PIXEL's."""
    clock = [0.0]
    store = RefusesPixelsLease()
    run = Ledger(store, today=DAY, lease=Lease(EXPORT, "run-1"), clock=lambda: clock[0])
    await _earlier(run, PIXEL, "p-0")
    await _earlier(run, OTHER_PIXEL, "o-0")
    clock[0], store.refuse = 400.0, True
    return store, run


def test_a_lease_renewal_the_store_refused_does_not_keep_another_pixels_entries_from_being_saved() -> None:
    """A run sends one export to two pixels; the store refuses the renewal of the first pixel's lease. The save
    raised there and never wrote the second pixel's chunk: the next run sent and charged its events again."""

    async def scenario() -> Earlier:
        store, run = await _two_pixels_leases_due()
        await _add(run, OTHER_PIXEL, ["o-1"])
        with pytest.raises(OSError, match="refused"):
            await run.save()
        return await _earlier(Ledger(store, today=DAY), OTHER_PIXEL, "o-1")

    assert asyncio.run(scenario()) == "accepted"


Delivery = Callable[[str, Sequence[PreparedEvent]], Awaitable[list[Outcome]]]


async def _run_export(
    store: MemoryStore, clock: list[float], delivery: Delivery, events: int, rows: list[Row] | None = None
) -> None:
    """A pipeline over `events` purchases of one export to pixel-1, one batch at a time, its ticker every 10 ms, its
    ledger's clock `clock[0]`; the rows it stores go to `rows` (the run's error is raised)."""
    rows = [] if rows is None else rows

    async def source() -> AsyncIterator[SourceEvent]:
        for index in range(events):
            yield SourceEvent(index, {"eventType": "PURCHASE", "email": f"buyer{index}@example.com", "price": 5,
                                      "currency": "USD", "transactionId": f"order-{index}",
                                      "eventTime": 1_700_000_000 - 60,
                                      "eventSourceUrl": "https://shop.example.com/thanks"})  # fmt: skip

    async def push(batch: list[Row]) -> None:
        rows.extend(batch)

    async def status(message: str) -> None:
        pass

    async def charge(count: int, key: str) -> int:
        return count

    summary = Summary(task="send_batch_events", demo=False)
    pipeline = Pipeline(
        PipelineSettings(task="send_batch_events", batch_size=1, max_concurrency=1),
        builder=ConversionBuilder(destinations=Destinations("pixel-1", None), normalizer=UserDataNormalizer(),
                                  names=EventNameResolver(None), now=lambda: 1_700_000_000.0),
        delivery=delivery,
        billing=Billing(limit=lambda: None, charge=charge, run_id="run-1"),
        sink=ResultSink(push, summary),
        progress=Progress(status, summary, interval=0.01),
        ledger=Ledger(store, lease=Lease(EXPORT, "run-1"), clock=lambda: clock[0]),
    )  # fmt: skip
    await pipeline.run(source())


def test_a_run_whose_batch_snap_keeps_waiting_for_15_minutes_keeps_its_lease() -> None:
    """Only saves renewed the lease, and a save comes when a batch is done: a batch Snap keeps waiting (Retry-After up
    to 120 s, up to 10 retries: 20 minutes) or a slow export renewed nothing, the lease lapsed while the run still
    sent, and the next run of the export sent and charged the same events beside it. Now the pipeline's ticker
    renews what is due between saves."""
    clock = [0.0]
    store = MemoryStore()
    seen: list[Any] = []

    async def waited(asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        clock[0] = 400.0  # a third of the lease has passed; Snap keeps the batch waiting
        await asyncio.sleep(0.2)  # many ticks of the status line
        seen.append(json.loads(store.records[_lease_key("pixel-1")])["until"])
        return [Outcome(event, "sent") for event in events]

    asyncio.run(_run_export(store, clock, waited, 1))
    assert seen == [400.0 + ledger_module.LEASE_S]


def test_a_run_whose_lapsed_lease_the_ticker_finds_taken_sends_nothing_more() -> None:
    """Snap kept the first batch waiting past the lease's 15 minutes and another run of the export took it: the
    ticker finds it taken, and the events read after get a failed row instead of being sent beside the other run;
    the run fails with the message."""
    clock = [0.0]
    store = MemoryStore()
    sent: list[int] = []

    async def waited(asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        sent.extend(event.index for event in events)
        if clock[0] == 0.0:
            clock[0] = 950.0  # lapsed while Snap kept the batch waiting, and another run took it
            _put(store, _lease_key("pixel-1"), {"run": "run-2", "until": 1_850.0})
            await asyncio.sleep(0.1)  # ticks of the status line
        return [Outcome(event, "sent") for event in events]

    async def scenario() -> tuple[list[Row], str]:
        rows: list[Row] = []
        with pytest.raises(LedgerError) as stopped:
            await _run_export(store, clock, waited, 3, rows)
        return rows, str(stopped.value)

    rows, message = asyncio.run(scenario())
    assert sent == [0]
    assert message.startswith("Another run (run-2) took over the same export to pixel-1: ")
    assert sorted((row["eventIndex"], row["status"]) for row in rows) == [(0, "sent"), (1, "failed"), (2, "failed")]
    assert {row["error"] for row in rows if row["status"] == "failed"} == {f"not sent: {message}"}


def test_the_message_of_a_run_held_back_names_the_pixel_or_app_another_run_is_sending_the_export_to() -> None:
    """An export sent to a pixel and an app; another run holds only the app's lease. Every event from then on, the
    pixel's too, got the row 'not sent: Another run (run-1) is sending the same export to this pixel or app': on a
    pixel's row, the pixel, which no run held. The message names the one held."""
    app = "app-review-1"

    async def scenario() -> str:
        store = MemoryStore()
        _put(store, _lease_key(app), {"run": "run-1", "until": 2_000.0})
        run = Ledger(store, today=DAY, lease=Lease(EXPORT, "run-2"), clock=lambda: 1_000.0)
        await _earlier(run, PIXEL, "p-1")
        with pytest.raises(LedgerError) as refused:
            await _earlier(run, app, "a-1")
        return str(refused.value)

    assert asyncio.run(scenario()).startswith(f"Another run (run-1) is sending the same export to {app}: ")


def test_the_tickers_renewal_stops_a_run_whose_lapsed_lease_another_run_took_and_renews_the_others_first() -> None:
    """Between saves the pipeline's ticker renews the leases that are due (`keep_leases`). One pixel's lease
    lapsed and another run (with a long id) took it: the ticker still renews the other pixel's lease, then raises,
    naming that run; once the run's last save is done, no later tick writes a lease again."""
    other = "pixel-review-2"
    holder = "run-" + "x" * 60
    clock = [0.0]

    async def scenario() -> tuple[str, float, list[str]]:
        store = MemoryStore()
        run = Ledger(store, today=DAY, lease=Lease(EXPORT, "run-1"), clock=lambda: clock[0])
        await _earlier(run, PIXEL, "p-0")  # both taken at 0: until 900
        await _earlier(run, other, "o-0")
        clock[0] = 950.0
        _put(store, _lease_key(PIXEL), {"run": holder, "until": 1_850.0})  # the other run took the lapsed one
        with pytest.raises(LedgerError) as stopped:
            await run.keep_leases()
        renewed = json.loads(store.records[_lease_key(other)])["until"]
        await run.save(last=True)
        clock[0] = 1_200.0
        await run.keep_leases()  # released: nothing to renew
        return str(stopped.value), renewed, sorted(k for k in store.records if "-lease-" in k or not k)

    message, renewed, leases = asyncio.run(scenario())
    assert message.startswith(f"Another run ({holder[:40]}) took over the same export to {PIXEL}: ")
    assert renewed == 950.0 + ledger_module.LEASE_S
    assert leases == [_lease_key(PIXEL)]  # the other run's, as it wrote it; this run's other lease deleted


def test_a_tick_whose_renewal_the_store_refused_still_renews_the_other_pixels_lease_then_raises() -> None:
    async def scenario() -> float:
        store, run = await _two_pixels_leases_due()
        with pytest.raises(OSError, match="refused"):
            await run.keep_leases()
        return float(json.loads(store.records[_lease_key(OTHER_PIXEL)])["until"])

    assert asyncio.run(scenario()) == 400.0 + ledger_module.LEASE_S


def test_a_refused_renewal_between_saves_is_logged_without_its_token(caplog: pytest.LogCaptureFixture) -> None:
    """The ticker's renewal fails (the store briefly unavailable, its error naming an API URL with a token): the run
    goes on, and the log says so with the token redacted."""
    clock = [0.0]

    class RefusesTheLeaseOnce(MemoryStore):
        async def set(self, key: str, value: Any) -> None:
            if key == _lease_key("pixel-1") and clock[0] == 400.0:
                clock[0] = 401.0
                raise OSError("PUT https://api.apify.com/v2/key-value-stores/x/records/y?token=apify_api_SECRET failed")
            await super().set(key, value)

    async def waited(asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        clock[0] = 400.0  # a third of the lease has passed: the ticker renews it
        await asyncio.sleep(0.1)
        return [Outcome(event, "sent") for event in events]

    asyncio.run(_run_export(RefusesTheLeaseOnce(), clock, waited, 1))
    assert "Could not renew the ledger's hold on the export (OSError: PUT " in caplog.text
    assert "records/y?token=*** failed" in caplog.text and "apify_api_SECRET" not in caplog.text


def test_a_run_that_stopped_for_a_taken_over_lease_never_takes_it_again_once_the_other_run_is_done() -> None:
    """The run stopped sending when it found its lapsed lease taken; once the other run is done (its lease
    deleted), a later tick must not take it back: this run sends nothing more, and a lease would only hold back
    the export's next run."""
    clock = [0.0]

    async def scenario() -> list[str]:
        store = MemoryStore()
        run = Ledger(store, today=DAY, lease=Lease(EXPORT, "run-1"), clock=lambda: clock[0])
        await _earlier(run, PIXEL, "p-0")
        clock[0] = 950.0
        _put(store, _lease_key(PIXEL), {"run": "run-2", "until": 1_850.0})
        with pytest.raises(LedgerError):
            await run.keep_leases()
        del store.records[_lease_key(PIXEL)]  # run-2 is done
        clock[0] = 1_000.0
        await run.keep_leases()
        return [key for key in store.records if "-lease-" in key]

    assert asyncio.run(scenario()) == []
