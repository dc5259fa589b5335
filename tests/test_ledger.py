"""Across runs: the ledger of events Snap accepted (a named key-value store) keeps a scheduled export from
resending or re-billing. In process for the ledger itself; end to end (`python -m src`, local storage) for
what a user sees: what Snap received, what was charged, the rows and the status message."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bulk_support import FileServer, conversion
from conftest import CAPI_TOKEN, run_actor
from fake_snap import FakeSnap
from in_process import run_in_process
from memory_platform import MemoryStore

from src import ledger as ledger_module
from src.errors import LedgerError
from src.ledger import LEDGER_STORE, Earlier, Lease, Ledger, entry

PIXEL = "pixel-ledger-1"


async def earlier(ledger: Ledger, asset_id: str, event_id: str) -> Earlier:
    """What the ledger knows of one event: `look_up` without the key."""
    return (await ledger.look_up(asset_id, event_id))[0]


async def add(ledger: Ledger, pairs: list[tuple[str, str]]) -> None:
    """Snap accepted these `(asset id, event id)`: looked up, then their keys accepted, as the pipeline does."""
    ledger.accept([(await ledger.look_up(asset_id, event_id))[1] for asset_id, event_id in pairs])


async def not_delivered(ledger: Ledger, pairs: list[tuple[str, str]]) -> None:
    """These `(asset id, event id)` were not delivered for a transient reason: their keys kept for a retry."""
    ledger.retry_later([(await ledger.look_up(asset_id, event_id))[1] for asset_id, event_id in pairs])


class FailsOnce(MemoryStore):
    """The next write of a record whose key holds `failing` fails, as a store that is briefly unavailable would."""

    def __init__(self, failing: str | None = None) -> None:
        super().__init__()
        self.failing = failing

    async def set(self, key: str, value: Any) -> None:
        if self.failing is not None and self.failing in key:
            self.failing = None
            raise OSError("the store is unavailable")
        await super().set(key, value)


async def _accept(store: MemoryStore, pairs: list[tuple[str, str]], **options: Any) -> Ledger:
    """A run that accepted these `(asset id, event id)` and ended (its last save)."""
    ledger = Ledger(store, **options)
    await add(ledger, pairs)
    await ledger.save(last=True)
    return ledger


def test_a_later_run_sees_what_an_earlier_run_saved_per_asset() -> None:
    async def scenario() -> list[bool]:
        store = MemoryStore()
        await _accept(store, [("px-1", "order-1"), ("px-1", "order-2"), ("app-9", "install-1")])
        later = Ledger(store)
        return [
            await earlier(later, "px-1", "order-1") == "accepted",
            await earlier(later, "px-1", "order-2") == "accepted",
            await earlier(later, "app-9", "install-1") == "accepted",
            await earlier(later, "px-1", "order-3") == "accepted",  # never accepted
            await earlier(later, "px-2", "order-1") == "accepted",  # same event id, another pixel
        ]

    assert asyncio.run(scenario()) == [True, True, True, False, False]


def test_the_ledger_stores_hashes_of_event_ids_only_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 100)
    ids = [f"order-{i}" for i in range(250)]

    async def scenario() -> tuple[MemoryStore, bool]:
        store = MemoryStore()
        await _accept(store, [(PIXEL, event_id) for event_id in ids])
        return store, all([await earlier(Ledger(store), PIXEL, event_id) == "accepted" for event_id in ids])

    store, all_seen = asyncio.run(scenario())
    assert all_seen
    written = "\n".join(store.records.values())
    assert "order-" not in written and PIXEL not in written
    assert _sizes(store) == [100, 100, 50]
    assert f"{entry(PIXEL, 'order-7'):016x}" in written


def test_entries_older_than_snaps_window_expire_and_the_size_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> list[bool]:
        store = MemoryStore()
        day = 20_000
        await _accept(store, [(PIXEL, "old")], today=day)
        await _accept(store, [(PIXEL, "recent")], today=day + 30)
        later = Ledger(store, today=day + 40)  # "old" is 40 days old: past the 38 days kept
        return [await earlier(later, PIXEL, "old") == "accepted", await earlier(later, PIXEL, "recent") == "accepted"]

    assert asyncio.run(scenario()) == [False, True]

    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 10)
    monkeypatch.setattr(ledger_module, "MAX_ENTRIES", 20)

    async def capped() -> list[bool]:
        store = MemoryStore()
        for run in range(3):  # three days' runs of 10: the oldest day's chunk goes beyond 20 entries
            await _accept(store, [(PIXEL, f"r{run}-{i}") for i in range(10)], today=20_000 + run)
        later = Ledger(store, today=20_002)
        return [await earlier(later, PIXEL, f"r{run}-0") == "accepted" for run in range(3)]

    assert asyncio.run(capped()) == [False, True, True]


def test_with_skipping_off_nothing_is_seen_but_accepted_events_are_still_recorded() -> None:
    async def scenario() -> tuple[bool, bool]:
        store = MemoryStore()
        await _accept(store, [(PIXEL, "order-1")])
        off = await _accept(store, [(PIXEL, "order-2")], skip=False)
        skipping_off = await earlier(off, PIXEL, "order-1")
        return skipping_off == "accepted", await earlier(Ledger(store), PIXEL, "order-2") == "accepted"

    assert asyncio.run(scenario()) == (False, True)


def test_concurrent_commits_never_overwrite_an_earlier_runs_entries() -> None:
    """Batches commit concurrently: the asset is loaded once, and each chunk's newest version lands last."""

    class SlowStore(MemoryStore):
        async def get(self, key: str) -> Any:
            await asyncio.sleep(0)
            return await super().get(key)

    async def scenario() -> list[bool]:
        store = SlowStore()
        await _accept(store, [(PIXEL, "yesterday")])
        today = Ledger(store, skip=False)

        async def commit(event_id: str) -> None:
            await add(today, [(PIXEL, event_id)])
            await today.save()

        await asyncio.gather(commit("a"), commit("b"), commit("c"))
        later = Ledger(store)
        return [await earlier(later, PIXEL, event_id) == "accepted" for event_id in ("yesterday", "a", "b", "c")]

    assert asyncio.run(scenario()) == [True, True, True, True]


# ----- across runs: one end to end (`python -m src`, local storage: the named store outlives the purge of
# default storages), the others in process with one MemoryStore as the named store shared by both runs -----


def export(n: int, **fields: Any) -> dict[str, Any]:
    now = int(time.time())
    events = [
        {"eventType": "PURCHASE", "email": f"buyer{i}@example.com", "price": 10, "currency": "USD",
         "transactionId": f"order-{i}", "eventTime": now - 600}
        for i in range(n)
    ]  # fmt: skip
    return {
        "task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
        "eventSourceUrl": "https://shop.example.com/thanks", "events": events,
    } | fields  # fmt: skip


def test_a_rerun_of_the_same_export_sends_and_charges_nothing(tmp_path: Path, snap: FakeSnap) -> None:
    first = run_actor(tmp_path, export(5), snap=snap, ppe=True)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.charged_conversions == 5 and len(snap.accepted_event_ids()) == 5

    again = run_actor(tmp_path, export(5), snap=snap, ppe=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(snap.accepted_event_ids()) == 5  # Snap got nothing new
    assert again.charged_conversions == 0  # the second run's charging log (default storages are purged)
    rows = again.rows
    assert [row["status"] for row in rows] == ["duplicate"] * 5 and not any(row["charged"] for row in rows)
    assert rows[0]["error"] == "already accepted by Snap in an earlier run (event_id order-0)"
    assert again.output["counts"] == {"duplicate": 5} and again.output["charged"] == 0
    assert again.output["statusMessage"] == "0 of 5 sent: 5 already sent earlier; 0 charged"
    assert again.output["succeeded"] is True

    ledger_files = list((tmp_path / "storage" / "key_value_stores" / LEDGER_STORE).glob("*"))
    assert ledger_files
    stored = "\n".join(p.read_text() for p in ledger_files)
    for secret in ("order-", "buyer", CAPI_TOKEN):
        assert secret not in stored


def test_a_grown_export_sends_only_the_new_events(snap: FakeSnap) -> None:
    ledger = MemoryStore()  # the named store, shared by both runs
    first = run_in_process(export(3000), snap=snap, ppe=True, ledger=ledger)
    assert first.returncode == 0, first.stderr[-3000:]
    grown = run_in_process(export(3500), snap=snap, ppe=True, ledger=ledger)
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert snap.duplicates() == []
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(3500))
    assert grown.charged_conversions == 500
    assert grown.output["counts"] == {"duplicate": 3000, "sent": 500} and grown.output["charged"] == 500
    assert grown.output["statusMessage"] == "500 of 3,500 sent: 3,000 already sent earlier; 500 charged"
    sent = {row["eventId"] for row in grown.rows_by_status("sent")}
    assert sent == {f"order-{i}" for i in range(3000, 3500)}


def test_skip_already_sent_off_sends_and_charges_again(snap: FakeSnap) -> None:
    ledger = MemoryStore()  # the named store, shared by both runs
    assert run_in_process(export(4), snap=snap, ppe=True, ledger=ledger).returncode == 0
    again = run_in_process(export(4, skipAlreadySent=False), snap=snap, ppe=True, ledger=ledger)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.charged_conversions == 4 and len(snap.accepted_event_ids()) == 8
    assert again.output["counts"] == {"sent": 4}


def test_events_over_the_maximum_charge_are_sent_by_the_next_run_and_say_so(snap: FakeSnap) -> None:
    ledger = MemoryStore()  # the named store, shared by both runs
    capped = run_in_process(export(5), snap=snap, ppe=True, ledger=ledger, max_charge_usd=0.03)
    assert capped.returncode == 0, capped.stderr[-3000:]
    assert capped.output["counts"] == {"sent": 3, "skipped": 2} and capped.charged_conversions == 3

    nightly = run_in_process(export(5), snap=snap, ppe=True, ledger=ledger)
    assert nightly.returncode == 0, nightly.stderr[-3000:]
    assert snap.duplicates() == [] and sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(5))
    assert nightly.charged_conversions == 2
    assert nightly.output["counts"] == {"duplicate": 3, "sent": 2}
    retried = nightly.rows_by_status("sent")
    assert {row["eventId"] for row in retried} == {"order-3", "order-4"}
    assert all(any("not delivered by an earlier run" in w for w in row["warnings"]) for row in retried)


def test_entries_keep_the_stored_format_of_earlier_versions() -> None:
    """Ledgers in users' stores hold the first 16 hex characters of SHA-256("asset\\nevent"): still read the same."""
    for asset_id, event_id in [(PIXEL, "order-1"), ("app-9", "ü-ß-🙂"), ("", "")]:
        digest = hashlib.sha256(f"{asset_id}\n{event_id}".encode()).hexdigest()[:16]
        assert f"{entry(asset_id, event_id):016x}" == digest


def test_the_list_of_events_to_resend_is_written_only_when_it_changes() -> None:
    async def scenario() -> list[list[str]]:
        store = MemoryStore()
        ledger = Ledger(store)
        written: list[list[str]] = []

        async def save() -> None:
            before = dict(store.records)
            await ledger.save()
            written.append(sorted(k.rsplit("-", 1)[-1] for k, v in store.records.items() if before.get(k) != v))

        await add(ledger, [(PIXEL, "a")])
        await save()  # accepted only: its chunk
        await not_delivered(ledger, [(PIXEL, "b")])
        await save()  # a failure to resend next time
        await add(ledger, [(PIXEL, "c")])
        await save()  # the list of events to resend is unchanged
        await add(ledger, [(PIXEL, "b")])
        await save()  # b went through after all: off the list
        later = Ledger(store)
        written.append([str(await earlier(later, PIXEL, e)) for e in ("a", "b", "c", "d")])
        return written

    # records changed by each save, by the end of their key: chunk 0 (the run's first), the retry list
    assert asyncio.run(scenario()) == [["0"], ["retry"], ["0"], ["0", "retry"], ["accepted"] * 3 + ["None"]]


# ----- the stored records, as a later run reads them: sizes, dates, bounds and how many writes a save makes -----


def _prefix(asset_id: str) -> str:
    """The start of the keys of an asset's records: `asset-` and 16 hex characters of SHA-256 (earlier versions:
    the key of its index)."""
    return "asset-" + hashlib.sha256(asset_id.encode()).hexdigest()[:16]


def _hexes(asset_id: str, event_ids: list[str]) -> str:
    return "".join(f"{entry(asset_id, event_id):016x}" for event_id in event_ids)


def _put(store: MemoryStore, key: str, value: Any) -> None:
    """A record left by an earlier run (not counted as a write of this one)."""
    store.records[key] = json.dumps(value)


def _record(store: MemoryStore, key: str) -> Any:
    return json.loads(store.records[key])


def _chunks(store: MemoryStore, asset_id: str = PIXEL) -> list[tuple[str, dict[str, Any]]]:
    """The asset's chunk records `(key, record)`, by day, the writing run's mark, and number."""
    prefix = _prefix(asset_id)
    found = []
    for key, raw in store.records.items():
        name = re.fullmatch(r"-d(\d+)-([0-9a-f]{16})-(\d+)", key[len(prefix) :]) if key.startswith(prefix) else None
        if name:
            found.append(((int(name[1]), name[2], int(name[3])), key, json.loads(raw)))
    return [(key, record) for _, key, record in sorted(found)]


def _key(store: MemoryStore, index: int = 0, asset_id: str = PIXEL) -> str:
    return _chunks(store, asset_id)[index][0]


def _sizes(store: MemoryStore, asset_id: str = PIXEL) -> list[int]:
    """Entries in each stored chunk record of the asset, in `_chunks`' order."""
    return [len(record["ids"]) // 16 for _, record in _chunks(store, asset_id)]


def test_the_records_of_earlier_versions_are_read() -> None:
    async def scenario() -> tuple[MemoryStore, list[Any]]:
        kept = MemoryStore()  # a ledger an earlier version left in a user's store
        _put(kept, _prefix(PIXEL), {"chunks": [{"n": 4, "day": 20_000, "count": 1}]})
        _put(kept, f"{_prefix(PIXEL)}-4", {"day": 20_000, "ids": _hexes(PIXEL, ["order-1"])})
        _put(kept, f"{_prefix(PIXEL)}-retry", {"day": 20_000, "ids": _hexes(PIXEL, ["order-2"])})
        later = Ledger(kept, today=20_001)
        return kept, [await earlier(later, PIXEL, e) for e in ("order-1", "order-2", "order-3")]

    kept, known = asyncio.run(scenario())
    assert known == ["accepted", "not delivered", None]
    assert kept.writes == 0  # read, nothing changed: nothing rewritten


def test_a_run_that_writes_leaves_an_earlier_versions_records_as_they_are() -> None:
    """A run of the earlier version may still be going, or start later: its index and chunks stay until they
    expire, read by this version and never taken over."""

    async def scenario() -> tuple[MemoryStore, list[Any]]:
        store = MemoryStore()
        old = [{"n": 3, "day": 20_000, "count": 1}, {"n": 4, "day": 20_001, "count": 1, "since": 20_001}]
        _put(store, _prefix(PIXEL), {"chunks": old})
        _put(store, f"{_prefix(PIXEL)}-3", {"day": 20_000, "ids": _hexes(PIXEL, ["yesterday"])})
        _put(store, f"{_prefix(PIXEL)}-4", {"day": 20_001, "ids": _hexes(PIXEL, ["today"])})
        await _accept(store, [(PIXEL, "new")], today=20_001)
        later = Ledger(store, today=20_001)
        return store, [await earlier(later, PIXEL, e) for e in ("yesterday", "today", "new")]

    store, known = asyncio.run(scenario())
    assert known == ["accepted"] * 3
    prefix = _prefix(PIXEL)
    assert set(store.records) == {prefix, f"{prefix}-3", f"{prefix}-4", _key(store)}
    assert _record(store, f"{prefix}-4") == {"day": 20_001, "ids": _hexes(PIXEL, ["today"])}  # as it was
    assert _chunks(store)[0][1] == {"day": 20_001, "ids": _hexes(PIXEL, ["new"]), "done": True}


def test_a_chunk_holds_10_000_entries_and_the_next_starts_after() -> None:
    events = [(PIXEL, f"order-{i}") for i in range(10_001)]

    async def scenario() -> MemoryStore:
        store = MemoryStore()
        await _accept(store, events, today=20_000)
        return store

    store = asyncio.run(scenario())
    assert _sizes(store) == [10_000, 1]
    assert [key.rsplit("-", 1)[1] for key, _ in _chunks(store)] == ["0", "1"]
    assert [(record["day"], record["done"]) for _, record in _chunks(store)] == [(20_000, True)] * 2
    assert store.writes == 2


def test_a_runs_saves_fill_its_open_chunk_and_never_past_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 100)

    async def scenario() -> tuple[MemoryStore, list[list[int]], list[int]]:
        store = MemoryStore()
        ledger = Ledger(store, today=20_000)
        sizes: list[list[int]] = []
        writes: list[int] = []
        for n, batch in enumerate([3, 3, 60, 60]):
            before = store.writes
            await add(ledger, [(PIXEL, f"b{n}-{i}") for i in range(batch)])
            await ledger.save()
            sizes.append(_sizes(store))
            writes.append(store.writes - before)
        before = store.writes
        await ledger.save(last=True)
        writes.append(store.writes - before)
        return store, sizes, writes

    store, sizes, writes = asyncio.run(scenario())
    assert sizes == [[3], [6], [66], [100, 26]]  # one chunk rewritten as it fills; the 101st entry starts the next
    assert writes == [1, 1, 1, 2, 1]  # the open chunk (and the one it filled); the last save marks it done
    assert [record["done"] for _, record in _chunks(store)] == [True, True]


def test_an_event_accepted_twice_is_stored_once() -> None:
    async def scenario() -> tuple[MemoryStore, int, dict[str, str]]:
        store = MemoryStore()
        ledger = Ledger(store, today=20_000)
        await add(ledger, [(PIXEL, "a"), (PIXEL, "a"), (PIXEL, "b")])
        await add(ledger, [(PIXEL, "a")])
        await ledger.save()
        first = dict(store.records)
        again = Ledger(store, skip=False, today=20_001)  # skipping off: Snap accepts it again
        await add(again, [(PIXEL, "a"), (PIXEL, "b")])
        before = store.writes
        await again.save()
        return store, store.writes - before, first

    store, writes, first = asyncio.run(scenario())
    assert first[_key(store)] == json.dumps({"day": 20_000, "ids": _hexes(PIXEL, ["a", "b"]), "done": False})
    assert writes == 0 and store.records == first  # already in the ledger: nothing to write


def test_a_save_writes_only_what_changed_since_the_last_one() -> None:
    async def scenario() -> list[int]:
        store = MemoryStore()
        ledger = Ledger(store, today=20_000)
        writes: list[int] = []

        async def save() -> None:
            before = store.writes
            await ledger.save()
            writes.append(store.writes - before)

        await save()  # nothing used yet
        await earlier(ledger, PIXEL, "a")  # loaded (empty), unchanged
        await save()
        await not_delivered(ledger, [(PIXEL, "a")])
        await save()  # the list of events to resend
        await save()  # nothing new
        await add(ledger, [(PIXEL, "b")])
        await save()  # the chunk; the list to resend is as saved
        await save()
        later = Ledger(store, today=20_000)
        await earlier(later, PIXEL, "b")
        before = store.writes
        await later.save(last=True)  # a later run that only read
        writes.append(store.writes - before)
        return writes

    assert asyncio.run(scenario()) == [0, 0, 1, 0, 1, 0, 0]


def test_events_are_kept_38_days_then_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 1)  # a chunk a run: each expires on its own

    async def scenario() -> list[Earlier]:
        store = MemoryStore()
        day = 20_000
        first = await _accept(store, [(PIXEL, "day-0")], today=day)
        await not_delivered(first, [(PIXEL, "retry-day-0")])
        await first.save()
        await _accept(store, [(PIXEL, "day-1")], today=day + 1)
        return [
            await earlier(Ledger(store, today=day + 38), PIXEL, "day-0"),  # 38 days old: kept
            await earlier(Ledger(store, today=day + 38), PIXEL, "retry-day-0"),
            await earlier(Ledger(store, today=day + 39), PIXEL, "day-0"),  # 39: dropped
            await earlier(Ledger(store, today=day + 39), PIXEL, "retry-day-0"),
            await earlier(Ledger(store, today=day + 39), PIXEL, "day-1"),
        ]

    assert asyncio.run(scenario()) == ["accepted", "not delivered", None, None, "accepted"]


def test_a_record_without_a_day_counts_as_dated_the_epoch() -> None:
    async def scenario(today: int) -> list[Earlier]:
        store = MemoryStore()
        _put(store, _prefix(PIXEL), {"chunks": [{"n": 0, "count": 1}]})
        _put(store, f"{_prefix(PIXEL)}-0", {"ids": _hexes(PIXEL, ["a"])})
        _put(store, f"{_prefix(PIXEL)}-retry", {"ids": _hexes(PIXEL, ["b"])})
        later = Ledger(store, today=today)
        return [await earlier(later, PIXEL, "a"), await earlier(later, PIXEL, "b")]

    assert asyncio.run(scenario(38)) == ["accepted", "not delivered"]
    assert asyncio.run(scenario(39)) == [None, None]


def test_expired_chunks_are_deleted_on_the_next_save_without_being_read() -> None:
    async def scenario() -> tuple[ReadCountingStore, int, Earlier]:
        store = ReadCountingStore()
        await _accept(store, [(PIXEL, "old")], today=20_000)
        await _accept(store, [(PIXEL, "recent")], today=20_010)
        store.read_keys.clear()
        later = Ledger(store, today=20_040)
        seen = await earlier(later, PIXEL, "recent")
        before = store.writes
        await later.save()
        return store, store.writes - before, seen

    store, writes, seen = asyncio.run(scenario())
    assert seen == "accepted"
    assert writes == 0 and store.deletes == 1  # a run that only read still deletes what expired
    assert [record["day"] for _, record in _chunks(store)] == [20_010] and len(store.records) == 1
    assert store.read_keys == [_key(store), f"{_prefix(PIXEL)}-retry"]


def test_records_are_dated_by_the_clock_in_days_since_the_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "time", SimpleNamespace(time=lambda: 20_000 * 86_400 + 60.0))

    async def scenario() -> MemoryStore:
        store = MemoryStore()
        await _accept(store, [(PIXEL, "a")])
        return store

    store = asyncio.run(scenario())
    [(key, record)] = _chunks(store)
    assert key.startswith(f"{_prefix(PIXEL)}-d20000-") and record["day"] == 20_000


def test_the_oldest_chunks_beyond_a_million_entries_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Newest day first, chunk by chunk, up to `MAX_ENTRIES` (a million; three here): older chunks are not read."""
    monkeypatch.setattr(ledger_module, "MAX_ENTRIES", 3)

    async def scenario(counts: list[int]) -> tuple[list[Earlier], int]:
        store = ReadCountingStore()
        for day, count in enumerate(counts):
            ids = _hexes(PIXEL, [f"day-{day}-{i}" for i in range(count)])
            record = {"day": 20_000 + day, "ids": ids, "done": False}
            _put(store, f"{_prefix(PIXEL)}-d{20_000 + day}-{day:016x}-0", record)
        later = Ledger(store, today=20_010)
        return [await earlier(later, PIXEL, f"day-{day}-0") for day in range(len(counts))], store.reads

    assert asyncio.run(scenario([1, 2])) == (["accepted", "accepted"], 3)  # exactly three; the retry list
    assert asyncio.run(scenario([2, 2])) == ([None, "accepted"], 3)
    assert asyncio.run(scenario([1, 1, 2, 1])) == ([None, None, "accepted", "accepted"], 5)  # one wave of 16 reads
    monkeypatch.setattr(ledger_module, "READS_AT_ONCE", 1)
    assert asyncio.run(scenario([1, 1, 2, 1])) == ([None, None, "accepted", "accepted"], 4)  # the third read ends it


def test_an_event_to_resend_that_is_accepted_leaves_the_list() -> None:
    async def scenario() -> tuple[Earlier, Earlier, Any]:
        store = MemoryStore()
        first = Ledger(store, today=20_000)
        await not_delivered(first, [(PIXEL, "a"), (PIXEL, "b")])
        await first.save()
        second = Ledger(store, today=20_001)
        told = await earlier(second, PIXEL, "a")
        await add(second, [(PIXEL, "a")])
        await second.save()
        third = Ledger(store, skip=False, today=20_002)
        return told, await earlier(third, PIXEL, "a"), _record(store, f"{_prefix(PIXEL)}-retry")

    told, after, retry = asyncio.run(scenario())
    assert told == "not delivered" and after is None
    assert retry == {"day": 20_001, "ids": _hexes(PIXEL, ["b"])}


def test_the_list_of_events_to_resend_holds_at_most_100_000() -> None:
    async def scenario() -> tuple[int, Earlier]:
        store = MemoryStore()  # a full list from an earlier run
        _put(store, f"{_prefix(PIXEL)}-retry", {"day": 20_000, "ids": "".join(f"{i:016x}" for i in range(100_000))})
        ledger = Ledger(store, today=20_001)
        await not_delivered(ledger, [(PIXEL, "one-more")])
        await ledger.save()
        return len(_record(store, f"{_prefix(PIXEL)}-retry")["ids"]) // 16, await earlier(ledger, PIXEL, "one-more")

    assert asyncio.run(scenario()) == (100_000, None)


def test_a_cut_short_entry_in_a_stored_record_is_ignored() -> None:
    async def scenario() -> Any:
        store = MemoryStore()
        whole = _hexes(PIXEL, ["a"])
        _put(store, f"{_prefix(PIXEL)}-retry", {"day": 20_000, "ids": whole + _hexes(PIXEL, ["b"])[:15]})
        ledger = Ledger(store, today=20_000)
        await not_delivered(ledger, [(PIXEL, "c")])
        await ledger.save()
        return _record(store, f"{_prefix(PIXEL)}-retry")["ids"]

    assert asyncio.run(scenario()) == "".join(sorted([_hexes(PIXEL, ["a"]), _hexes(PIXEL, ["c"])]))


def test_after_a_failed_chunk_write_the_next_save_writes_its_entries() -> None:
    async def scenario() -> FailsOnce:
        store = FailsOnce("-d20000-")
        ledger = Ledger(store, today=20_000)
        await add(ledger, [(PIXEL, "a")])
        with pytest.raises(OSError, match="unavailable"):
            await ledger.save()
        assert not _chunks(store)
        await ledger.save()  # nothing new since: the entries the failed write held are written now
        return store

    store = asyncio.run(scenario())
    assert _sizes(store) == [1]
    assert asyncio.run(earlier(Ledger(store, today=20_000), PIXEL, "a")) == "accepted"  # never sent twice


@pytest.mark.parametrize("during", ["chunk", "retry"])
def test_what_another_commit_adds_while_a_save_is_writing_is_saved_too(during: str) -> None:
    """Batches commit concurrently: an event accepted (or failed) while a save's write is in flight is written
    by that save, not dropped (the next run would send it again, and charge it again)."""

    class BusyStore(MemoryStore):
        ledger: Ledger | None = None
        done = False

        async def set(self, key: str, value: Any) -> None:
            writing = "retry" if key.endswith("-retry") else "chunk"
            if writing == during and not self.done and self.ledger is not None:
                self.done = True  # another batch's commit, while this write is in flight
                await add(self.ledger, [(PIXEL, "late")])
                await not_delivered(self.ledger, [(PIXEL, "late-failed")])
            await super().set(key, value)

    async def scenario() -> tuple[str | None, str | None]:
        store = BusyStore()
        store.ledger = ledger = Ledger(store, today=20_000)
        await add(ledger, [(PIXEL, "first")])
        await not_delivered(ledger, [(PIXEL, "failed")])
        await ledger.save()
        later = Ledger(store, today=20_000)
        return await earlier(later, PIXEL, "late"), await earlier(later, PIXEL, "late-failed")

    assert asyncio.run(scenario()) == ("accepted", "not delivered")


# ----- one look-up per event: the key it gives is what the pipeline hands back; this run's entries kept compact -----


def test_an_event_accepted_earlier_in_this_run_is_told_apart_from_one_of_an_earlier_run() -> None:
    async def scenario() -> list[Earlier]:
        store = MemoryStore()
        await _accept(store, [(PIXEL, "yesterday")])
        today = Ledger(store)
        _, key = await today.look_up(PIXEL, "today")
        today.accept([key])
        off = Ledger(store, skip=False)
        await add(off, [(PIXEL, "today-off")])
        return [
            await earlier(today, PIXEL, "yesterday"),
            await earlier(today, PIXEL, "today"),  # before it is saved too
            await earlier(today, PIXEL, "tomorrow"),
            await earlier(off, PIXEL, "today-off"),  # skipping off: nothing is seen, from any run
            await earlier(Ledger(store), PIXEL, "today"),  # not saved: a later run does not know it
        ]

    assert asyncio.run(scenario()) == ["accepted", "accepted in this run", None, None, None]


def test_the_key_of_a_look_up_records_the_same_as_the_ids() -> None:
    """The pipeline hands back `look_up`'s keys (no second hash): stored exactly as `add` / `not_delivered` store."""

    async def scenario(by_key: bool) -> list[Any]:
        store = MemoryStore()
        ledger = Ledger(store, today=20_000)
        if by_key:
            keys = [(await ledger.look_up(PIXEL, e))[1] for e in ("a", "b", "c")]
            ledger.accept(keys[:2])
            ledger.retry_later(keys[2:])
        else:
            await add(ledger, [(PIXEL, "a"), (PIXEL, "b")])
            await not_delivered(ledger, [(PIXEL, "c")])
        await ledger.save()
        return [record for _, record in _chunks(store)] + [_record(store, f"{_prefix(PIXEL)}-retry")]

    assert asyncio.run(scenario(by_key=True)) == asyncio.run(scenario(by_key=False))


def test_concurrent_look_ups_wait_for_one_load_of_the_asset() -> None:
    class CountingStore(MemoryStore):
        reads = 0

        async def get(self, key: str) -> Any:
            self.reads += 1
            await asyncio.sleep(0)
            return await super().get(key)

        async def keys(self, prefix: str) -> list[str]:
            self.reads += 1
            await asyncio.sleep(0)
            return await super().keys(prefix)

    async def scenario() -> tuple[list[Earlier], int]:
        store = CountingStore()
        await _accept(store, [(PIXEL, "a")])
        store.reads = 0
        later = Ledger(store)
        found = await asyncio.gather(*(earlier(later, PIXEL, e) for e in ("a", "b", "a")))
        found.append(await earlier(later, PIXEL, "a"))  # loaded: answered without reading again
        return list(found), store.reads

    assert asyncio.run(scenario()) == (["accepted", None, "accepted", "accepted"], 3)  # keys, chunk, retry list


def test_this_runs_entry_set_holds_every_entry_through_its_growth() -> None:
    """A lost entry is an event sent and charged twice by the next run: every entry is found after the table grows,
    including those that share a slot (same low bits) and the entry 0, which marks no empty slot."""
    entries = ledger_module._EntrySet()
    crowded = [n << 40 | 7 for n in range(1, 60)]  # the same low bits: one slot, then the next ones
    spread = [int.from_bytes(hashlib.sha256(str(n).encode()).digest()[:8], "big") for n in range(5_000)]
    added = [entries.add(key) for key in [0, *crowded, *spread]]
    assert all(added)
    assert not any(entries.add(key) for key in [0, *crowded, *spread])  # already there
    assert all(key in entries for key in [0, *crowded, *spread])
    assert not any(key in entries for key in [7, 1 << 40, 60 << 40 | 7, *range(1, 100)])
    assert 0 not in ledger_module._EntrySet()


def test_this_runs_entries_take_at_most_32_bytes_each() -> None:
    """The module's figure (8-byte slots, at most half full: 16 to 32 bytes an entry; about 17 MB a million)."""
    entries = ledger_module._EntrySet()
    for n in range(100_000):
        entries.add(int.from_bytes(hashlib.sha256(str(n).encode()).digest()[:8], "big"))
    assert sys.getsizeof(entries._slots) <= 32 * 100_000


def test_the_events_this_run_accepted_take_at_most_32_bytes_each_once_saved() -> None:
    """The ledger's memory for this run's accepted events (the store's own copy aside): the compact table, no
    Python object an event (a key left in the set of events being sent would take some 70 bytes)."""

    class Discards(MemoryStore):
        async def set(self, key: str, value: Any) -> None:
            pass

    async def scenario() -> int:
        ledger = Ledger(Discards(), today=20_000)
        await ledger.look_up(PIXEL, "warm-up")  # the asset loaded
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(50_000):
            _, key = await ledger.look_up(PIXEL, f"order-{n}")
            ledger.accept([key])
        await ledger.save()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return held

    assert asyncio.run(scenario()) <= 32 * 50_000


def test_an_event_is_being_sent_from_its_look_up_until_snap_answered_for_it() -> None:
    """A repeat of an event still out is not sent again; once Snap answered (refused it, or it could not be
    delivered) a repeat is looked at anew. With skipping off, nothing is ever seen."""

    async def scenario() -> list[Earlier]:
        ledger = Ledger(MemoryStore(), today=20_000)
        seen: list[Earlier] = []
        for answer in (ledger.release, ledger.retry_later):
            first, key = await ledger.look_up(PIXEL, "a")
            seen += [first, await earlier(ledger, PIXEL, "a")]
            answer([key])
        seen.append(await earlier(ledger, PIXEL, "a"))
        off = Ledger(MemoryStore(), skip=False)
        seen += [await earlier(off, PIXEL, "a"), await earlier(off, PIXEL, "a")]
        return seen

    assert asyncio.run(scenario()) == [None, "being sent", None, "being sent", None, None, None]


def test_events_to_resend_are_still_written_after_a_failed_save() -> None:
    async def scenario() -> Earlier:
        store = FailsOnce(_prefix(PIXEL))
        ledger = Ledger(store, today=20_000)
        await not_delivered(ledger, [(PIXEL, "failed")])
        with pytest.raises(OSError, match="unavailable"):
            await ledger.save()
        await ledger.save()
        return await earlier(Ledger(store, today=20_000), PIXEL, "failed")

    assert asyncio.run(scenario()) == "not delivered"


# ----- a schedule of small runs: they append to the newest chunk, an asset's records are read together at load, and
# the records of chunks the index dropped are deleted -----


class ReadCountingStore(MemoryStore):
    """Counts reads, and the most in flight at once (each read yields to the others)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = self.in_flight = self.most_in_flight = 0
        self.read_keys: list[str] = []

    async def get(self, key: str) -> Any:
        self.reads += 1
        self.read_keys.append(key)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return await super().get(key)


def test_an_hourly_schedule_of_small_runs_keeps_a_chunk_a_day() -> None:
    """38 days of hourly runs that accept 3 events each: each run takes the day's chunk over into its own (a chunk a
    run made 912 records, all read before the first look-up), and every entry expires with its day."""

    async def scenario() -> tuple[ReadCountingStore, list[Earlier]]:
        store = ReadCountingStore()
        for run in range(38 * 24):
            await _accept(store, [(PIXEL, f"r{run}-{i}") for i in range(3)], today=20_000 + run // 24)
        store.reads = store.most_in_flight = 0
        later = Ledger(store, today=20_038)
        return store, [await earlier(later, PIXEL, e) for e in ("r0-0", "r500-1", "r911-2", "r912-0")]

    store, found = asyncio.run(scenario())
    assert found == ["accepted", "accepted", "accepted", None]
    assert len(store.records) == 38  # a chunk a day
    assert [(record["day"], len(record["ids"]) // 16) for _, record in _chunks(store)] == [
        (20_000 + d, 24 * 3) for d in range(38)
    ]
    assert store.reads == 38 + 1  # the chunks, the list of events to resend
    assert store.most_in_flight == ledger_module.READS_AT_ONCE


def test_the_runs_of_a_day_fill_a_chunk_then_start_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 10)

    async def scenario() -> tuple[MemoryStore, list[Earlier]]:
        store = MemoryStore()
        for run in range(6):  # five runs on one day, the sixth the next day
            await _accept(store, [(PIXEL, f"r{run}-{i}") for i in range(3)], today=20_000 + run // 5)
        later = Ledger(store, today=20_001)
        return store, [await earlier(later, PIXEL, f"r{run}-{i}") for run in range(6) for i in range(3)]

    store, found = asyncio.run(scenario())
    assert found == ["accepted"] * 18
    # the fourth run filled a chunk and began the next; the fifth took that one over; the next day began its own
    assert sorted((record["day"], len(record["ids"]) // 16) for _, record in _chunks(store)) == [
        (20_000, 5), (20_000, 10), (20_001, 3)
    ]  # fmt: skip


def test_an_asset_loads_its_chunks_16_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 1)

    async def scenario() -> tuple[ReadCountingStore, list[Earlier]]:
        store = ReadCountingStore()
        await _accept(store, [(PIXEL, f"e{i}") for i in range(40)], today=20_000)  # 40 chunks of one
        store.reads = store.most_in_flight = 0
        later = Ledger(store, today=20_000)
        return store, [await earlier(later, PIXEL, f"e{i}") for i in range(41)]

    store, found = asyncio.run(scenario())
    assert found == ["accepted"] * 40 + [None]
    assert store.reads == 41  # 40 chunks, the list of events to resend
    assert store.most_in_flight == ledger_module.READS_AT_ONCE == 16


def test_a_chunk_taken_over_is_deleted_only_once_the_run_stored_its_entries() -> None:
    """A failed write of the run's own chunk leaves the earlier run's chunk as it was (its entries are still in the
    queue); once the run's chunk is stored, the earlier one is deleted, never before."""

    async def scenario() -> tuple[FailsOnce, list[Any]]:
        store = FailsOnce()
        await _accept(store, [(PIXEL, "first")], today=20_000)
        first_key = _key(store)
        seen: list[Any] = [first_key]
        second = Ledger(store, today=20_000)
        await add(second, [(PIXEL, "second")])
        store.failing = "-d20000-"
        with pytest.raises(OSError, match="unavailable"):
            await second.save()
        seen.append((sorted(store.records), store.deletes))  # the first run's chunk only, as it wrote it
        await second.save(last=True)
        seen.append(first_key in store.records)
        later = Ledger(store, today=20_030)
        seen.append([await earlier(later, PIXEL, e) for e in ("first", "second")])
        return store, seen

    store, (first_key, *seen) = asyncio.run(scenario())
    assert seen[0] == ([first_key], 0)
    assert seen[1] is False
    assert seen[2] == ["accepted"] * 2
    assert [record for _, record in _chunks(store)] == [
        {"day": 20_000, "ids": _hexes(PIXEL, ["first", "second"]), "done": True}
    ]
    assert store.deletes == 1


def test_a_run_takes_over_the_whole_entries_of_a_cut_short_chunk() -> None:
    async def scenario() -> tuple[MemoryStore, list[Earlier]]:
        store = MemoryStore()
        key = f"{_prefix(PIXEL)}-d20000-{0:016x}-0"
        _put(store, key, {"day": 20_000, "ids": _hexes(PIXEL, ["a", "b"])[:-1], "done": True})
        await _accept(store, [(PIXEL, "c")], today=20_000)
        later = Ledger(store, today=20_001)
        return store, [await earlier(later, PIXEL, e) for e in "abc"]

    store, found = asyncio.run(scenario())
    assert [record["ids"] for _, record in _chunks(store)] == [_hexes(PIXEL, ["a", "c"])]
    assert found == ["accepted", None, "accepted"]


async def _two_runs_of_one_day(day: int) -> MemoryStore:
    """A store where two runs of `day` ran at once: a done chunk each, with the entries "one" and "two"."""
    store = MemoryStore()
    one, two = Ledger(store, today=day), Ledger(store, today=day)
    await add(one, [(PIXEL, "one")])
    await add(two, [(PIXEL, "two")])
    await one.save(last=True)
    await two.save(last=True)
    return store


def test_the_done_chunks_of_an_earlier_day_are_merged_into_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs of a day that ran at once leave two chunks of it: the next run that writes merges them into one of
    its own, of that day (so they expire with it), and deletes them once it is stored."""
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 10)

    async def scenario() -> tuple[MemoryStore, list[Earlier]]:
        store = await _two_runs_of_one_day(20_000)
        await _accept(store, [(PIXEL, "a")], today=20_001)
        assert len(_chunks(store)) == 2
        await _accept(store, [(PIXEL, "b")], today=20_002)  # a day of one chunk: left as it is
        later = Ledger(store, today=20_000 + 38)
        return store, [await earlier(later, PIXEL, e) for e in ("one", "two", "a", "b")]

    store, found = asyncio.run(scenario())
    assert [(record["day"], record["ids"], record["done"]) for _, record in _chunks(store)] == [
        (20_000, "".join(sorted(_hexes(PIXEL, [e]) for e in ("one", "two"))), True),
        (20_001, _hexes(PIXEL, ["a"]), True),
        (20_002, _hexes(PIXEL, ["b"]), True),
    ]
    assert found == ["accepted"] * 4  # the merged chunk is dated its day: it expires with it


def test_a_record_that_cannot_be_deleted_is_left_and_the_save_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """The store's error is logged, its token (an API URL's query) redacted."""

    class Undeletable(MemoryStore):
        async def delete(self, key: str) -> None:
            raise OSError("DELETE https://api.apify.com/v2/key-value-stores/x/records/y?token=apify_api_SECRET refused")

    async def scenario() -> tuple[Undeletable, Earlier]:
        store = Undeletable()
        await _accept(store, [(PIXEL, "old")], today=20_000)
        await _accept(store, [(PIXEL, "new")], today=20_060)
        return store, await earlier(Ledger(store, today=20_060), PIXEL, "new")

    store, found = asyncio.run(scenario())
    assert found == "accepted"
    assert [record["day"] for _, record in _chunks(store)] == [20_000, 20_060]
    assert "Could not delete the ledger record" in caplog.text and "records/y?token=*** refused" in caplog.text
    assert "apify_api_SECRET" not in caplog.text


def test_records_that_are_not_what_the_ledger_writes_are_left_out_and_never_fail_the_run() -> None:
    """Edited by hand or damaged: a chunk or list of events to resend holding anything but hex digits (a negative
    number, `0x`), a `done` or day that is not one, and keys the ledger does not write are left out, since nothing in
    them can be trusted; the run looks events up and saves as usual."""
    store = MemoryStore()
    prefix = _prefix(PIXEL)
    _put(store, f"{prefix}-d20000-{1:016x}-0", {"day": 20_000, "ids": "-" + _hexes(PIXEL, ["a"])[1:], "done": True})
    _put(store, f"{prefix}-d20000-{2:016x}-0", {"day": 20_000, "ids": _hexes(PIXEL, ["b"]), "done": True})
    _put(store, f"{prefix}-d20000-{3:016x}-0", {"day": 20_000, "ids": _hexes(PIXEL, ["f"]), "done": "yes"})
    _put(store, f"{prefix}-d20000-{4:016x}-0", {"day": "soon", "ids": _hexes(PIXEL, ["g"])})
    _put(store, f"{prefix}-d20000-junk", {"day": 20_000, "ids": _hexes(PIXEL, ["h"])})
    _put(store, f"{prefix}-retry", {"day": 20_000, "ids": "-" + _hexes(PIXEL, ["c"])[1:] + "0x" + "f" * 14})

    async def scenario() -> list[Earlier]:
        ledger = Ledger(store, today=20_000)
        found = [await earlier(ledger, PIXEL, e) for e in "abcfgh"]
        await add(ledger, [(PIXEL, "d")])
        await not_delivered(ledger, [(PIXEL, "e")])
        await ledger.save()
        later = Ledger(store, today=20_000)
        return found + [await earlier(later, PIXEL, e) for e in "bde"]

    assert asyncio.run(scenario()) == [None, "accepted", *[None] * 4, "accepted", "accepted", "not delivered"]
    assert _record(store, f"{prefix}-retry")["ids"] == _hexes(PIXEL, ["e"])
    assert f"{prefix}-d20000-{1:016x}-0" in store.records and f"{prefix}-d20000-junk" in store.records  # left
    assert f"{prefix}-d20000-{2:016x}-0" not in store.records  # taken over: its entry is in the run's chunk


def test_a_failed_read_of_todays_chunk_never_has_the_run_delete_it() -> None:
    """Today's chunk of an earlier run reads empty (a failed or damaged read): the run neither takes it over nor
    deletes it, so the earlier run's entries are still there once the record reads again."""

    class MissesOnce(MemoryStore):
        missing: str | None = None

        async def get(self, key: str) -> Any:
            if key == self.missing:
                self.missing = None
                return None
            return await super().get(key)

    async def scenario() -> tuple[MissesOnce, list[Earlier]]:
        store = MissesOnce()
        await _accept(store, [(PIXEL, "a"), (PIXEL, "b")], today=20_000)
        store.missing = _key(store)
        await _accept(store, [(PIXEL, "c")], today=20_000)
        later = Ledger(store, today=20_000)
        return store, [await earlier(later, PIXEL, e) for e in "abc"]

    store, found = asyncio.run(scenario())
    assert found == ["accepted"] * 3
    assert sorted(_sizes(store)) == [1, 2]


def test_a_ledger_store_that_fails_for_good_fails_the_run_with_output_saying_what_was_sent(snap: FakeSnap) -> None:
    """An error nothing foresaw (here the named store refusing every write, its message carrying a token) stops
    the run: it fails with a status message that says so, and OUTPUT still counts what Snap accepted and what was
    charged; the token is written nowhere."""

    class Broken(MemoryStore):
        async def set(self, key: str, value: Any) -> None:
            raise OSError("PUT https://api.apify.com/v2/key-value-stores/x/records/y?token=apify_api_SECRET refused")

    run = run_in_process(export(3), snap=snap, ppe=True, ledger=Broken())
    assert run.returncode == 1 and run.output["succeeded"] is False
    assert run.output["counts"] == {"sent": 3} and run.output["charged"] == 3 == run.charged_conversions
    assert run.output["error"].startswith("Stopped by an unexpected error (OSError: PUT https://api.apify.com/")
    assert run.final_message.startswith("Stopped by an unexpected error (OSError: ")
    assert run.final_message.endswith("(3 of 3 sent; 3 charged)")
    assert "apify_api_SECRET" not in run.everything_written()


@pytest.mark.parametrize("order", ["one first", "two first", "interleaved"])
def test_two_runs_at_once_never_write_the_same_record(monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    """Two runs of one pixel at the same time (a schedule whose run outlasts its interval) load the same ledger and
    save as they go, in any order: each writes only chunks named with its own mark, so whichever saves last,
    every event either accepted is known to the next run, each stored once."""
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 4)

    async def scenario() -> tuple[MemoryStore, list[Earlier]]:
        store = MemoryStore()
        await _accept(store, [(PIXEL, "old")], today=20_000)
        one, two = Ledger(store, today=20_000), Ledger(store, today=20_000)
        await earlier(one, PIXEL, "load")
        await earlier(two, PIXEL, "load")  # both took over the first run's chunk
        steps = [(one, [f"one-{i}" for i in range(3)]), (two, [f"two-{i}" for i in range(9)]), (one, ["one-late"])]
        if order == "two first":
            steps = [steps[1], steps[0], steps[2]]
        for ledger, names in steps:
            await add(ledger, [(PIXEL, name) for name in names])
            await ledger.save()
            if order == "interleaved" and ledger is two:
                await one.save(last=True)  # finished while the other goes on
        await one.save(last=True)
        await add(two, [(PIXEL, "two-late")])
        await two.save(last=True)
        later = Ledger(store, today=20_000)
        names = ["old", *(f"one-{i}" for i in range(3)), "one-late", *(f"two-{i}" for i in range(9)), "two-late"]
        return store, [await earlier(later, PIXEL, name) for name in [*names, "never"]]

    store, found = asyncio.run(scenario())
    assert found == ["accepted"] * 15 + [None]
    stored = [record["ids"][i : i + 16] for _, record in _chunks(store) for i in range(0, len(record["ids"]), 16)]
    assert len(set(stored)) == 15 and len(stored) == 15 + 1  # "old": both runs took it over (a later run merges)


def test_a_chunk_another_run_takes_over_while_this_one_loads_is_found_in_that_runs_chunk() -> None:
    """The other run stores the chunk's entries in one of its own, then deletes it, between this run's listing of
    the store and its read of that chunk: the chunk reads as gone, so the store is listed again."""

    class TakenOverWhileRead(MemoryStore):
        taker: Ledger | None = None

        async def get(self, key: str) -> Any:
            if self.taker is not None and key.startswith(f"{_prefix(PIXEL)}-d"):
                taker, self.taker = self.taker, None
                await add(taker, [(PIXEL, "taker")])
                await taker.save()  # its chunk: "first" and "taker"; the first run's deleted
            return await super().get(key)

    async def scenario() -> tuple[list[Earlier], int]:
        store = TakenOverWhileRead()
        await _accept(store, [(PIXEL, "first")], today=20_000)
        taker = Ledger(store, today=20_000)
        await earlier(taker, PIXEL, "load")
        store.taker = taker
        reading = Ledger(store, today=20_000)
        return [await earlier(reading, PIXEL, e) for e in ("first", "taker")], store.deletes

    assert asyncio.run(scenario()) == (["accepted", "accepted"], 1)


def test_a_run_reads_nothing_when_it_saves() -> None:
    async def scenario() -> list[str]:
        store = ReadCountingStore()
        ledger = Ledger(store, today=20_000)
        await add(ledger, [(PIXEL, "a")])
        store.read_keys.clear()
        await ledger.save()
        await add(ledger, [(PIXEL, "b")])
        await ledger.save()
        await ledger.save(last=True)
        return store.read_keys

    assert asyncio.run(scenario()) == []


def test_a_run_still_going_keeps_the_entries_of_a_run_that_finished_while_it_went_on() -> None:
    """Two runs of one pixel at once: the short one makes its last save, then the long one saves again; neither
    ever rewrites a record of the other's, so the short one's entry is kept."""

    async def scenario() -> list[Earlier]:
        store = MemoryStore()
        await _accept(store, [(PIXEL, "old")], today=20_000)
        long, short = Ledger(store, today=20_000), Ledger(store, today=20_000)
        await add(long, [(PIXEL, "long-0")])
        await long.save()
        await add(short, [(PIXEL, "short")])
        await short.save(last=True)  # finished
        await add(long, [(PIXEL, "long-1")])
        await long.save()
        await add(long, [(PIXEL, "long-2")])
        await long.save(last=True)
        later = Ledger(store, today=20_000)
        return [await earlier(later, PIXEL, name) for name in ("old", "long-0", "short", "long-1", "long-2", "never")]

    assert asyncio.run(scenario()) == ["accepted"] * 5 + [None]


def test_a_run_on_the_next_day_keeps_its_chunk_while_a_run_of_the_day_before_goes_on() -> None:
    async def scenario() -> list[Earlier]:
        store = MemoryStore()
        a, b = Ledger(store, today=20_000), Ledger(store, today=20_001)
        await add(a, [(PIXEL, "a-0")])
        await a.save()
        await add(b, [(PIXEL, "b-0"), (PIXEL, "b-1")])
        await b.save()
        await add(a, [(PIXEL, "a-1")])
        await a.save()
        await b.save(last=True)
        await add(a, [(PIXEL, "a-2")])
        await a.save(last=True)
        later = Ledger(store, today=20_001)
        return [await earlier(later, PIXEL, name) for name in ("a-0", "a-1", "a-2", "b-0", "b-1")]

    assert asyncio.run(scenario()) == ["accepted"] * 5


# ----- from the mutation run of the rewritten module (docs/mutation/kill-f.md) -----


def test_a_million_entries_are_read_and_no_more() -> None:
    """The documented bound itself (the other tests lower it): chunks newest day first up to 1,000,000 entries; a
    chunk that would take the count past it, and those older, are left out (read in the same wave of 16 or not)."""

    async def scenario() -> list[Earlier]:
        store = MemoryStore()
        prefix = _prefix(PIXEL)
        _put(store, f"{prefix}-d20009-{1:016x}-0", {"day": 20_009, "ids": "0" * 16 * 999_999, "done": False})
        _put(store, f"{prefix}-d20008-{2:016x}-0", {"day": 20_008, "ids": _hexes(PIXEL, ["b"]), "done": False})
        _put(store, f"{prefix}-d20007-{3:016x}-0", {"day": 20_007, "ids": _hexes(PIXEL, ["c"]), "done": False})
        later = Ledger(store, today=20_010)
        return [await earlier(later, PIXEL, e) for e in "bc"]

    # 999,999 + 1 entries: all kept; the next chunk's would be the 1,000,001st
    assert asyncio.run(scenario()) == ["accepted", None]


def test_a_run_that_accepts_nothing_writes_and_deletes_nothing() -> None:
    """Today's done chunks of earlier runs are taken over only by a run that writes: one that only looks events up
    leaves them as they are, whichever saves it makes."""

    async def scenario() -> tuple[MemoryStore, dict[str, str], Earlier]:
        store = MemoryStore()
        await _accept(store, [(PIXEL, "one")], today=20_000)
        await _accept(store, [(PIXEL, "two")], today=20_000)  # took the first over: one chunk
        _put(store, f"{_prefix(PIXEL)}-d20000-{0:016x}-0", {"day": 20_000, "ids": _hexes(PIXEL, ["x"]), "done": True})
        stored, writes = dict(store.records), store.writes
        reading = Ledger(store, today=20_000)
        found = await earlier(reading, PIXEL, "one")
        await reading.save()
        await reading.save(last=True)
        assert store.writes == writes and store.deletes == 1  # the first run's chunk, by the second run
        return store, stored, found

    store, stored, found = asyncio.run(scenario())
    assert found == "accepted" and store.records == stored


def test_the_merged_chunks_of_an_earlier_day_are_written_once_whatever_the_saves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run that merges an earlier day's chunks writes the merged chunk on its first save only; its later saves
    write only its open chunk (no copy of the merged one a save)."""
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 10)

    async def scenario() -> tuple[MemoryStore, list[int], list[Earlier]]:
        store = await _two_runs_of_one_day(20_000)
        ledger = Ledger(store, today=20_001)
        writes = []
        for name in ("a", "b", "c"):
            await add(ledger, [(PIXEL, name)])
            before = store.writes
            await ledger.save(last=name == "c")
            writes.append(store.writes - before)
        later = Ledger(store, today=20_001)
        return store, writes, [await earlier(later, PIXEL, e) for e in ("one", "two", "a", "b", "c")]

    store, writes, found = asyncio.run(scenario())
    assert found == ["accepted"] * 5
    assert writes == [2, 1, 1]  # the merged chunk and the open one; then the open one
    assert [(record["day"], record["ids"]) for _, record in _chunks(store)] == [
        (20_000, "".join(sorted(_hexes(PIXEL, [e]) for e in ("one", "two")))),
        (20_001, _hexes(PIXEL, ["a", "b", "c"])),
    ]


def test_an_earlier_days_chunks_merged_beyond_a_chunks_size_fill_several_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three runs of a day at once leave three chunks of 3 (chunks of 4 here): merged, their 9 entries fill chunks
    of 4, 4 and 1 of that day, each under its own name (none overwrites another)."""
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 4)
    names = [f"r{run}-{i}" for run in range(3) for i in range(3)]

    async def scenario() -> tuple[MemoryStore, list[Earlier]]:
        store = MemoryStore()
        runs = [Ledger(store, today=20_000) for _ in range(3)]
        for run, ledger in enumerate(runs):
            await add(ledger, [(PIXEL, f"r{run}-{i}") for i in range(3)])
        for ledger in runs:
            await ledger.save(last=True)
        await _accept(store, [(PIXEL, "next-day")], today=20_001)
        later = Ledger(store, today=20_001)
        return store, [await earlier(later, PIXEL, e) for e in [*names, "next-day"]]

    store, found = asyncio.run(scenario())
    assert found == ["accepted"] * 10
    assert sorted((record["day"], len(record["ids"]) // 16) for _, record in _chunks(store)) == [
        (20_000, 1), (20_000, 4), (20_000, 4), (20_001, 1)
    ]  # fmt: skip
    assert len(store.records) == 4
    # the merging run's chunks are numbered in order: the merged ones first, then its open chunk
    assert [(record["day"], int(key.rsplit("-", 1)[1])) for key, record in _chunks(store)] == [
        (20_000, 0), (20_000, 1), (20_000, 2), (20_001, 3)
    ]  # fmt: skip


def test_a_run_takes_over_neither_a_chunk_its_run_still_writes_nor_a_full_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a done chunk with room is taken over: one whose run is still going (not done) is its run's to write,
    and a full one stays as it is (taking it would only copy it)."""
    monkeypatch.setattr(ledger_module, "CHUNK_ENTRIES", 2)

    async def scenario() -> tuple[MemoryStore, dict[str, str], list[Earlier]]:
        store = MemoryStore()
        going = Ledger(store, today=20_000)
        await add(going, [(PIXEL, "going")])
        await going.save()  # not its last: not done
        await _accept(store, [(PIXEL, "full-0"), (PIXEL, "full-1")], today=20_000)
        others = dict(store.records)
        await _accept(store, [(PIXEL, "new")], today=20_000)
        later = Ledger(store, today=20_000)
        return store, others, [await earlier(later, PIXEL, e) for e in ("going", "full-0", "full-1", "new")]

    store, others, found = asyncio.run(scenario())
    assert found == ["accepted"] * 4
    assert store.deletes == 0 and all(store.records[key] == record for key, record in others.items())
    assert sorted(len(record["ids"]) // 16 for _, record in _chunks(store)) == [1, 1, 2]  # "new" alone in its own


def test_an_earlier_versions_expired_chunk_is_deleted_by_the_next_save() -> None:
    """An earlier version's chunk (its day inside, not in its name) older than 38 days is read once, left out and
    deleted on the next save; the one still in the window is kept, and so is the index (an earlier version's run may
    still read it)."""

    async def scenario() -> tuple[MemoryStore, list[Earlier]]:
        store = MemoryStore()
        prefix = _prefix(PIXEL)
        _put(store, prefix, {"chunks": [{"n": 3, "day": 20_000, "count": 1}, {"n": 4, "day": 20_030, "count": 1}]})
        _put(store, f"{prefix}-3", {"day": 20_000, "ids": _hexes(PIXEL, ["old"])})
        _put(store, f"{prefix}-4", {"day": 20_030, "ids": _hexes(PIXEL, ["recent"])})
        reading = Ledger(store, today=20_040)
        found = [await earlier(reading, PIXEL, e) for e in ("old", "recent")]
        await reading.save(last=True)  # a run that only read
        return store, found

    store, found = asyncio.run(scenario())
    assert found == [None, "accepted"]
    assert set(store.records) == {_prefix(PIXEL), f"{_prefix(PIXEL)}-4"} and store.writes == 0


def test_a_load_that_finds_chunks_gone_at_every_listing_gives_up_with_a_clear_error() -> None:
    """A store whose every listing shows a chunk that is gone once read (other runs taking chunks over as fast as
    this one lists them, or a listing that lags): after `MAX_LISTINGS` listings the load fails, rather than answer
    without that chunk's entries (their events would be sent and charged again); the save goes on without it."""

    class Lagging(MemoryStore):
        listings: int | None = None  # counted once the test begins

        async def keys(self, prefix: str) -> list[str]:
            if self.listings is None:
                return await super().keys(prefix)
            self.listings += 1
            return [*await super().keys(prefix), f"{prefix}-d20000-{self.listings:016x}-0"]  # never there

    async def scenario() -> tuple[str, int | None, int]:
        store = Lagging()
        await _accept(store, [(PIXEL, "a")], today=20_000)
        store.listings = 0
        later = Ledger(store, today=20_000)
        with pytest.raises(LedgerError) as failed:
            await earlier(later, PIXEL, "a")
        writes = store.writes
        await later.save(last=True)
        return str(failed.value), store.listings, store.writes - writes

    message, listings, writes = asyncio.run(scenario())
    assert listings == ledger_module.MAX_LISTINGS == 10 and writes == 0
    assert message.startswith(f"The record of events sent before ({LEDGER_STORE}) kept changing while this run read")
    assert message.endswith("Nothing more was sent; run again.")


def test_a_chunk_write_that_failed_after_it_landed_is_retried_under_the_same_name() -> None:
    """A write can fail on the way back (a timeout) though the store kept it: the next save writes the chunk again
    under the same name, so the store holds one copy of its entries, not two."""

    class LandsThenFails(MemoryStore):
        failing = True

        async def set(self, key: str, value: Any) -> None:
            await super().set(key, value)
            if self.failing:
                self.failing = False
                raise OSError("the store did not answer")

    async def scenario() -> LandsThenFails:
        store = LandsThenFails()
        ledger = Ledger(store, today=20_000)
        await add(ledger, [(PIXEL, "a")])
        with pytest.raises(OSError, match="did not answer"):
            await ledger.save()
        await add(ledger, [(PIXEL, "b")])
        await ledger.save(last=True)
        return store

    store = asyncio.run(scenario())
    assert [record for _, record in _chunks(store)] == [{"day": 20_000, "ids": _hexes(PIXEL, ["a", "b"]), "done": True}]


# ----- one run of an export at a time: a lease per asset and export -----

EXPORT = "https://shop.example.com/export.jsonl?token=secret-in-url"


def _lease_key(source: str = EXPORT, asset_id: str = PIXEL) -> str:
    return f"{_prefix(asset_id)}-lease-{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def test_a_second_run_of_an_export_sends_nothing_while_the_first_holds_its_lease() -> None:
    """The later run stops at the asset's load, before any event is sent; a run of another export, or of events
    given in the input, goes on beside it."""

    async def scenario() -> tuple[MemoryStore, str, list[Earlier]]:
        store = MemoryStore()
        first = Ledger(store, today=20_000, lease=Lease(EXPORT, "run-1"), clock=lambda: 1_000.0)
        await earlier(first, PIXEL, "a")
        second = Ledger(store, today=20_000, lease=Lease(EXPORT, "run-2"), clock=lambda: 1_000.0 + 60)
        with pytest.raises(LedgerError) as refused:
            await earlier(second, PIXEL, "a")
        other_export = Ledger(store, today=20_000, lease=Lease("dataset-7", "run-3"), clock=lambda: 1_060.0)
        inline = Ledger(store, today=20_000)
        return store, str(refused.value), [await earlier(other_export, PIXEL, "a"), await earlier(inline, PIXEL, "a")]

    store, message, others = asyncio.run(scenario())
    assert message.startswith(f"Another run (run-1) is sending the same export to {PIXEL}: this run sent")
    assert others == [None, None]
    assert _record(store, _lease_key()) == {"run": "run-1", "until": 1_000.0 + ledger_module.LEASE_S}
    assert "secret-in-url" not in "".join(store.records) + "".join(store.records.values())


def test_a_lease_left_by_a_run_that_died_expires_and_a_resumed_attempt_takes_its_own_back() -> None:
    async def scenario(holder: str, now: float) -> Earlier:
        store = MemoryStore()
        _put(store, _lease_key(), {"run": holder, "until": 1_000.0})
        later = Ledger(store, today=20_000, lease=Lease(EXPORT, "run-2"), clock=lambda: now)
        return await earlier(later, PIXEL, "a")

    assert asyncio.run(scenario("run-1", 1_000.5)) is None  # expired: the run goes on
    assert asyncio.run(scenario("run-2", 10.0)) is None  # its own run's lease: a resumed attempt
    with pytest.raises(LedgerError):
        asyncio.run(scenario("run-1", 999.5))


def test_a_lease_is_renewed_by_saves_and_dropped_by_the_last_while_it_holds() -> None:
    """Renewed once a third of `LEASE_S` (15 minutes) has passed; the last save deletes it, unless it had expired
    (another run may hold it by then)."""
    clock = [0.0]

    async def scenario(last_at: float) -> list[Any]:
        store = MemoryStore()
        clock[0] = 0.0
        ledger = Ledger(store, today=20_000, lease=Lease(EXPORT, "run-1"), clock=lambda: clock[0])
        await earlier(ledger, PIXEL, "load")  # taken at 0: until 900
        seen = []
        for now in (100.0, 301.0):
            clock[0] = now
            await add(ledger, [(PIXEL, f"at-{now}")])
            await ledger.save()
            seen.append(_record(store, _lease_key())["until"])
        clock[0] = last_at
        await ledger.save(last=True)
        seen.append(store.records.get(_lease_key()) is not None)
        store.records.pop(_lease_key(), None)
        clock[0] = last_at + 1_000  # a save after the last one (accepted late) does not take the lease again
        await add(ledger, [(PIXEL, "late")])
        await ledger.save()
        seen.append([key for key in store.records if "-lease-" in key or not key.startswith(_prefix(PIXEL))])
        return seen

    assert asyncio.run(scenario(400.0)) == [900.0, 1_201.0, False, []]
    assert asyncio.run(scenario(1_300.0)) == [900.0, 1_201.0, True, []]  # expired: left for whoever holds it


def test_two_runs_of_one_export_at_once_never_send_or_charge_an_event_twice(snap: FakeSnap) -> None:
    """A schedule whose run outlasts its interval: while the first run holds the export's lease, the next one
    sends and charges nothing, and each of its events has a row that says why; once the first is done, the next
    run goes on and its lease is gone when it ends."""
    ledger = MemoryStore()
    with FileServer() as files:
        url = files.add("/export.jsonl", write_jsonl_text(3), "application/x-ndjson")
        _put(ledger, _lease_key(url), {"run": "run-still-going", "until": time.time() + 600})
        actor_input = {"task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
                       "eventSourceUrl": "https://shop.example.com/thanks", "eventsUrl": url}  # fmt: skip
        second = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger)
        assert second.returncode != 0 and snap.accepted_event_ids() == [] and second.charged_conversions == 0
        assert second.output["error"].startswith("Another run (run-still-going) is sending the same export")
        assert [row["status"] for row in second.rows] == ["failed"] * 3
        assert {row["error"] for row in second.rows} == {f"not sent: {second.output['error']}"}
        del ledger.records[_lease_key(url)]  # the first run ended
        third = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger)
    assert third.returncode == 0, third.stderr
    assert third.charged_conversions == 3 and sorted(snap.accepted_event_ids()) == [f"order-{i}" for i in range(3)]
    assert not [key for key in ledger.records if "-lease-" in key]


def write_jsonl_text(n: int) -> str:
    return "".join(json.dumps(conversion(i)) + "\n" for i in range(n))
