"""Which events Snap accepted in earlier runs, per pixel / app: so a scheduled export never pays twice.

Kept in a named key-value store of the user's account (`LEDGER_STORE`), which outlives runs (locally
too: the SDK purges only default storages). Compact: an entry is the first 8 bytes of
SHA-256(asset id, event id) as 16 hex characters, never the event id itself; entries are written in
chunked records of at most `CHUNK_ENTRIES`, each holding the entries of one day (UTC): the runs of a day
append to its chunk while it has room, so a schedule of small runs (hourly) keeps a record a day, not one a
run, and every entry expires with its own day. Bounded: chunks older than `RETENTION_DAYS` (Snap rejects
events older than 37 days, so an event that old can no longer be sent twice) are dropped, and so are the
oldest chunks beyond `MAX_ENTRIES` per asset; their records are deleted once the index no longer names them.

Records: `asset-<h>` (the index: its chunks, oldest first, `{"n", "day", "count", "since"}`: `since`, the day it was
begun, tells whether today's runs may append to it) and `asset-<h>-<n>` (a chunk:
`{"day": d, "ids": "<hex><hex>..."}`), read `READS_AT_ONCE` at a time when an asset loads. The core sees
only `KeyValueStore` (get/set/delete).

Only events whose id names them in any run are kept (`PreparedEvent.lasting_id`): an id made from an event's
content without its time would match the same customer's next identical purchase.

In memory: the entries loaded from earlier runs are a set (at most `MAX_ENTRIES` an asset); those this run
accepts are kept apart, in a table of 8-byte slots (`_EntrySet`: about 17 MB a million, where a set of ints
takes about 70), so a look-up says whether Snap accepted an event in an earlier run or earlier in this one. The
pipeline hashes each event once: `look_up` gives it a key, which it hands back to `accept`, `retry_later` or
`release` once Snap answered; until then a repeat of the event in the same run is told it is being sent (with
batches of 2,000 and four in flight, a repeat within some 8,000 events would otherwise be sent and charged
again). Figures: `python bench/ledger_bench.py` (docs/performance.md, "Ledger memory and look-ups").

Events a run could not deliver for a transient reason (failed after the retries, or skipped at the
run's maximum charge) are remembered in `asset-<h>-retry` (same hashes, at most `MAX_RETRY`): they are
not in the ledger, so the next run sends them, and their rows say they are a retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import sys
import time
from array import array
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from .platform import KeyValueStore

LEDGER_STORE = "snapchat-capi-ledger"
CHUNK_ENTRIES = 10_000
MAX_ENTRIES = 1_000_000
RETENTION_DAYS = 38
MAX_RETRY = 100_000
#: Records read at once while an asset loads: on the platform each read is an HTTP call, and every one of them
#: comes before the asset's first look-up is answered.
READS_AT_ONCE = 16
_HEX = 16
_HEX_TEXT = re.compile("[0-9a-f]*")
_MIN_SLOTS = 1024
_log = logging.getLogger(__name__)


#: What the ledger knows of an event (`Ledger.look_up`): Snap accepted it in an earlier run, or earlier in this
#: one, or this run is sending it (looked up, not answered yet), or an earlier run could not deliver it.
Earlier = Literal["accepted", "accepted in this run", "being sent", "not delivered"] | None


def entry(asset_id: str, event_id: str) -> int:
    """The event's entry: the first 8 bytes of SHA-256(asset id, event id), stored as 16 hex characters."""
    return int.from_bytes(hashlib.sha256(f"{asset_id}\n{event_id}".encode()).digest()[:8], "big")


def _entries(ids: str) -> Iterable[int]:
    return (int(ids[i : i + _HEX], 16) for i in range(0, len(ids) - _HEX + 1, _HEX))


def _whole(record: Any) -> tuple[int, str]:
    """A stored record's day and its entries in hex, without a cut-short last one (an entry appended after it
    would be misread); day 0 and no entries if it is missing, or is not what this ledger writes (edited by hand,
    or damaged): nothing in it can be trusted, and one bad value must not fail the run."""
    if not isinstance(record, dict):
        return 0, ""
    day, ids = record.get("day", 0), record.get("ids", "")
    if type(day) is not int or not isinstance(ids, str) or _HEX_TEXT.fullmatch(ids) is None:
        return 0, ""
    return day, ids[: len(ids) - len(ids) % _HEX]


def _listed(index: Any) -> list[dict[str, Any]]:
    """The chunks an index names, leaving out any entry that is not what this ledger writes."""
    chunks = index.get("chunks") if isinstance(index, dict) else None
    if not isinstance(chunks, list):
        return []
    return [
        chunk
        for chunk in chunks
        if isinstance(chunk, dict) and "n" in chunk and all(type(chunk.get(f, 0)) is int for f in ("n", "day", "count"))
    ]


def _hex(entries: Iterable[int]) -> str:
    """Entries as stored: 16 hex characters each, in order (their big-endian bytes, in hex)."""
    packed = array("Q", entries)
    if sys.byteorder == "little":
        packed.byteswap()
    return packed.tobytes().hex()


def _digest(record: Any) -> bytes:
    """A stored record's fingerprint, whatever it holds (`Ledger._merge` compares the index with the last one seen)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).digest()


def _today() -> int:
    return int(time.time() // 86_400)


class _EntrySet:
    """A set of entries in one array of 8-byte slots, at most half full: 16 to 32 bytes an entry, where a set of
    ints takes about 70 (an int object and a slot each). This run's accepted events, a million in a big export.

    Open addressing on the entry's low bits (an entry is a hash already), probing the next slot; 0 marks an empty
    slot, so the entry 0 is kept aside."""

    __slots__ = ("_count", "_mask", "_slots", "_zero")

    def __init__(self) -> None:
        self._slots = array("Q", [0]) * _MIN_SLOTS
        self._mask = _MIN_SLOTS - 1
        self._count = 0
        self._zero = False

    def __contains__(self, key: int) -> bool:
        if key == 0:
            return self._zero
        slots, mask = self._slots, self._mask
        slot = key & mask
        while held := slots[slot]:  # `_slot`, inlined: asked once per event the pipeline reads
            if held == key:
                return True
            slot = (slot + 1) & mask
        return False

    def add(self, key: int) -> bool:
        """Add the entry; False if it was there already."""
        if key == 0:
            added, self._zero = not self._zero, True
            return added
        slot = self._slot(key)
        if self._slots[slot]:
            return False
        self._slots[slot] = key
        self._count += 1
        if 2 * self._count > len(self._slots):
            old, self._slots = self._slots, array("Q", [0]) * (2 * len(self._slots))
            self._mask = len(self._slots) - 1
            for moved in filter(None, old):
                self._slots[self._slot(moved)] = moved
        return True

    def _slot(self, key: int) -> int:
        """The slot holding `key` (not 0), or the empty one it goes in."""
        slots, mask = self._slots, self._mask
        slot = key & mask
        while (held := slots[slot]) and held != key:
            slot = (slot + 1) & mask
        return slot

    def __iter__(self) -> Iterator[int]:
        if self._zero:
            yield 0
        yield from filter(None, self._slots)


class _Asset:
    def __init__(self, asset_id: str) -> None:
        self.prefix = "asset-" + hashlib.sha256(asset_id.encode()).hexdigest()[:16]
        self.chunks: list[dict[str, Any]] = []  # {"n": int, "day": int, "count": int}
        #: Accepted in earlier runs (as loaded: at most `MAX_ENTRIES`), and in this one (compact: a run may add
        #: millions).
        self.before: set[int] = set()
        self.now = _EntrySet()
        self.open = array("Q")  # entries not written yet: they go into the newest chunk, rewritten as it fills
        self.open_n: int | None = None  # the chunk they go into, once it is known to have room
        self.open_ids = ""  # what its record holds
        #: The number of the next chunk: past every chunk the index named, so a chunk deleted after it was dropped
        #: is never one a run wrote anew.
        self.next_n = 0
        self.dropped: list[int] = []  # chunks the index dropped, to delete once it is written without them
        #: Chunks whose record this run wrote, with the SHA-256 of what it wrote last (`Ledger._merge` compares).
        self.written: dict[int, bytes] = {}
        #: The index as this run last read or wrote it (`_digest`): another run's write changes it, as each run
        #: signs the index it writes.
        self.index_seen = b""
        self.dirty = False
        self.retry_dirty = False
        #: Not delivered by earlier runs (transient), and not delivered by this one so far.
        self.retry_before: set[int] = set()
        self.retry_now: set[int] = set()
        #: Looked up and not known, so being sent, until Snap answered for it (`accept`, `retry_later`, `release`).
        self.sending: set[int] = set()


#: An event's place in the ledger: made once, when it is looked up, and handed back once Snap answered.
LedgerKey = tuple[_Asset, int]


class Ledger:
    """Load an asset's entries on first use; `accept` what Snap accepted; `save` writes the changed chunk.

    The pipeline looks each event up once (`look_up`, which hashes its id) and hands the key it got back to
    `accept` or `retry_later`."""

    def __init__(self, store: KeyValueStore, *, skip: bool = True, today: int | None = None) -> None:
        """`skip` False (input `skipAlreadySent`): nothing is reported as seen, accepted events are still added."""
        self._store = store
        self._skip = skip
        self._today = _today() if today is None else today
        self._assets: dict[str, asyncio.Future[_Asset]] = {}
        self._loaded: dict[str, _Asset] = {}  # those whose load is done: looked up without a wait, once per event
        self._saving = asyncio.Lock()  # concurrent commits: the newest version of a chunk must land last
        #: Signs the index this run writes, so that another run's write is seen even when it names the same counts.
        self._signature = secrets.token_hex(8)

    async def look_up(self, asset_id: str, event_id: str) -> tuple[Earlier, LedgerKey]:
        """Did Snap accept this event, in an earlier run (one whose ledger was saved) or earlier in this one, or is
        this run sending it (never with `skip` off), or did an earlier run fail to deliver it for a transient reason?
        With the event's key. An event it does not know is being sent from now on: hand its key back once Snap
        answered for it."""
        asset = self._loaded.get(asset_id) or await self._asset(asset_id)
        key = entry(asset_id, event_id)
        earlier: Earlier = None
        if self._skip and key in asset.before:
            earlier = "accepted"
        elif self._skip and key in asset.now:
            earlier = "accepted in this run"
        elif self._skip and key in asset.sending:
            earlier = "being sent"
        else:
            earlier = "not delivered" if key in asset.retry_before else None
            asset.sending.add(key)
        return earlier, (asset, key)

    async def _asset(self, asset_id: str) -> _Asset:
        """The asset's entries, loaded once; concurrent callers wait for the same load."""
        if (loading := self._assets.get(asset_id)) is None:
            loading = self._assets[asset_id] = asyncio.ensure_future(self._load(asset_id))
        return await loading

    async def _load(self, asset_id: str) -> _Asset:
        asset = _Asset(asset_id)
        index = await self._store.get(asset.prefix)
        asset.index_seen = _digest(index)
        listed = _listed(index)
        fresh = [c for c in listed if self._today - c.get("day", 0) <= RETENTION_DAYS]
        while sum(c.get("count", 0) for c in fresh) > MAX_ENTRIES:
            fresh.pop(0)
        *records, retry = await self._read([*(f"{asset.prefix}-{c['n']}" for c in fresh), f"{asset.prefix}-retry"])
        asset.chunks = fresh
        asset.dirty = fresh != listed
        kept = {c["n"] for c in fresh}
        asset.dropped = [c["n"] for c in listed if c["n"] not in kept]
        asset.next_n = max((c["n"] for c in listed), default=-1) + 1
        held = [_whole(record)[1] for record in records]
        for ids in held:
            asset.before.update(_entries(ids))
        # Today's chunk, with room, read whole (at least what the index counts: a failed or damaged read must not
        # have this run rewrite it with its own entries alone): this run appends to it; else it starts the next.
        today = fresh[-1] if fresh and fresh[-1].get("since") == self._today else None
        if today is not None and today.get("count", 0) <= len(held[-1]) // _HEX < CHUNK_ENTRIES:
            asset.open_n, asset.open_ids = today["n"], held[-1]
            asset.written[asset.open_n] = hashlib.sha256(asset.open_ids.encode()).digest()  # as read: `_merge` checks
        day, ids = _whole(retry)
        if self._today - day <= RETENTION_DAYS:
            asset.retry_before = set(_entries(ids))
        self._loaded[asset_id] = asset
        return asset

    async def _read(self, keys: list[str]) -> list[Any]:
        """The records under `keys`, in order, `READS_AT_ONCE` at a time."""
        gate = asyncio.Semaphore(READS_AT_ONCE)

        async def read(key: str) -> Any:
            async with gate:
                return await self._store.get(key)

        return await asyncio.gather(*map(read, keys))

    def retry_later(self, keys: Iterable[LedgerKey]) -> None:
        """Remember events this run could not deliver for a transient reason, for the next run."""
        for asset, key in keys:
            asset.sending.discard(key)
            if len(asset.retry_now) < MAX_RETRY:
                asset.retry_now.add(key)
                asset.dirty = asset.retry_dirty = True

    def accept(self, keys: Iterable[LedgerKey]) -> None:
        """Remember events Snap accepted (written on the next `save`)."""
        for asset, key in keys:
            asset.sending.discard(key)
            if key in asset.before or not asset.now.add(key):
                continue
            if key in asset.retry_before or key in asset.retry_now:
                asset.retry_before.discard(key)
                asset.retry_now.discard(key)
                asset.retry_dirty = True
            asset.open.append(key)
            asset.dirty = True

    def release(self, keys: Iterable[LedgerKey]) -> None:
        """Events Snap answered for otherwise (refused them): no longer being sent, so a repeat is looked at anew."""
        for asset, key in keys:
            asset.sending.discard(key)

    async def save(self, *, merge: bool = False) -> None:
        """Write each changed asset's open chunk (its newest, while it has room) and its index, then delete the
        records of chunks the index dropped. Before it writes, it takes in what another run sending to the same
        asset at the same time wrote (`_merge`): when the index changed since this run last saw it, or, with `merge`
        (a run's last save), always."""
        async with self._saving:
            await self._save(merge)

    async def _save(self, merge: bool) -> None:
        for loading in list(self._assets.values()):
            asset = await loading
            if merge or asset.dirty:
                await self._merge(asset, last=merge)
            # Commits run concurrently: `accept` or `retry_later` may come while a write is in flight. The flags
            # are cleared before the writes, so what comes during them sets them again and is written on the
            # next turn of this loop, not forgotten.
            while asset.dirty:
                asset.dirty = False
                retry_dirty, asset.retry_dirty = asset.retry_dirty, False
                try:
                    await self._write(asset, retry_dirty)
                except BaseException:
                    asset.dirty = True
                    asset.retry_dirty = asset.retry_dirty or retry_dirty
                    raise

    async def _merge(self, asset: _Asset, *, last: bool) -> None:
        """The store has no locking: two runs sending to one asset at once rewrite the same index and today's
        chunk, the last writer's version standing. So before each write a run reads the index: alone, as nearly
        always, it is the one this run last read or wrote, and nothing more is read. Otherwise (and at the run's
        last save, which also catches a record written after the index was read) it reads its own records again
        and keeps both: the chunks another run named join the index, the open chunk is rewritten from what its
        record holds now, and every entry this run accepted that no record it wrote still holds is queued again.
        What is left: a write of the other run between this read and this run's write (one round trip) is
        overwritten, and repaired only if that run saves again."""
        index = await self._store.get(asset.prefix)
        if not last and _digest(index) == asset.index_seen:
            return
        asset.index_seen = _digest(index)
        known = {chunk["n"] for chunk in asset.chunks} | set(asset.dropped)
        listed = _listed(index)
        added = [chunk for chunk in listed if chunk["n"] not in known]
        unnamed = asset.written.keys() - {chunk["n"] for chunk in listed}  # this run's chunks the index lost
        written = sorted(asset.written)
        held = [_whole(record)[1] for record in await self._read([f"{asset.prefix}-{n}" for n in written])]
        digests = (hashlib.sha256(ids.encode()).digest() for ids in held)
        as_written = all(digest == asset.written[n] for n, digest in zip(written, digests, strict=True))
        if not added and not unnamed and as_written:
            return
        if added:
            asset.chunks = sorted([*asset.chunks, *added], key=lambda chunk: int(chunk["n"]))
            asset.next_n = max(asset.next_n, *(int(chunk["n"]) + 1 for chunk in added))
        if asset.open_n is not None and asset.open_n in asset.written:
            asset.open_ids = held[written.index(asset.open_n)]
        present = _EntrySet()
        for key in (key for ids in held for key in _entries(ids)):
            present.add(key)
        queued = set(asset.open)
        asset.open.extend(key for key in asset.now if key not in present and key not in queued)
        asset.dirty = True

    async def _write(self, asset: _Asset, retry_dirty: bool) -> None:
        while asset.open:
            if asset.open_n is None:
                asset.open_n, asset.next_n = asset.next_n, asset.next_n + 1
                asset.chunks.append({"n": asset.open_n, "day": self._today, "count": 0, "since": self._today})
                asset.open_ids = ""
                # The index names a new chunk before its record is written: were the index write after the record
                # to fail, the next run would still read it (a chunk it names without a record reads as empty).
                await self._write_index(asset)
            taken = asset.open[: CHUNK_ENTRIES - len(asset.open_ids) // _HEX]
            ids = asset.open_ids + _hex(taken)
            await self._store.set(f"{asset.prefix}-{asset.open_n}", {"day": self._today, "ids": ids})
            asset.written[asset.open_n] = hashlib.sha256(ids.encode()).digest()
            # Only once the chunk is stored: a failed write leaves its entries to the next save, and what the record
            # held before (an earlier run's entries, when it appends to their chunk) is written again with them.
            # Only those it holds: `accept` may have queued more while it was written.
            asset.open_ids = ids
            del asset.open[: len(taken)]
            opened = next(chunk for chunk in reversed(asset.chunks) if chunk["n"] == asset.open_n)
            opened |= {"day": self._today, "count": len(asset.open_ids) // _HEX}
            if len(asset.open_ids) // _HEX >= CHUNK_ENTRIES:
                asset.open_n = None
        await self._write_index(asset)
        if retry_dirty:  # the list of events to resend changed: rewritten, dated today
            ids = _hex(sorted(asset.retry_before | asset.retry_now)[:MAX_RETRY])
            await self._store.set(f"{asset.prefix}-retry", {"day": self._today, "ids": ids})
        while asset.dropped:  # only now that the index no longer names them
            key = f"{asset.prefix}-{asset.dropped.pop()}"
            try:
                await self._store.delete(key)
            except Exception as error:  # left in the store, never read again: it costs storage, not an entry
                _log.warning(f"Could not delete the expired ledger record {key} ({type(error).__name__}: {error})")

    async def _write_index(self, asset: _Asset) -> None:
        index = {"chunks": asset.chunks, "by": self._signature}
        await self._store.set(asset.prefix, index)
        asset.index_seen = _digest(index)
