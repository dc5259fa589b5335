"""Which events Snap accepted in earlier runs, per pixel / app: so a scheduled export never pays twice.

Kept in a named key-value store of the user's account (`LEDGER_STORE`), which outlives runs (locally
too: the SDK purges only default storages). Compact: an entry is the first 8 bytes of
SHA-256(asset id, event id) as 16 hex characters, never the event id itself.

Records: `asset-<h>-d<day>-<run>-<k>`, chunks of at most `CHUNK_ENTRIES` entries of one day (UTC):
`{"day": d, "ids": "<hex><hex>...", "done": bool}`. Each run writes only chunks named with its own mark (`<run>`,
random), so two runs of one pixel at once never write the same record: the store has no locking, and a record two
runs rewrite keeps only the last writer's version. A run finds an asset's chunks by listing the store's keys and
reads them `READS_AT_ONCE` at a time. A chunk is `done` once its run will never write it again (full, or at the
run's last save); a run that writes takes the done chunks of today (and of an earlier day that has several) into
its own and deletes them once its own are stored, so a schedule of small runs (hourly) keeps about a chunk a day,
not one a run. Two runs taking the same chunk at once both keep its entries: nothing is lost, an entry is
stored twice until a later run merges them. Bounded: chunks older than `RETENTION_DAYS` (Snap rejects events
older than 37 days, so an event that old can no longer be sent twice) are deleted (the day is in the name: not
read), and beyond `MAX_ENTRIES` per asset the oldest chunks are not read (counted as read, newest first).
Earlier versions' records (an index `asset-<h>` and chunks `asset-<h>-<n>`) are read the same way and left as
they are until they expire: a run of an earlier version may still be going (a deploy does not stop it) or start
later (a task pinned to an older build), and it keeps writing them. The core sees only `KeyValueStore`
(get/set/delete/keys).

Only events whose id names them in any run are kept (`PreparedEvent.lasting_id`): an id made from an event's
content without its time would match the same customer's next identical purchase.

In memory: the entries loaded from earlier runs are a set (at most `MAX_ENTRIES` an asset); those this run
accepts are kept apart, in a table of 8-byte slots (`_EntrySet`: about 17 MB a million, where a set of ints
takes about 70), so a look-up says whether Snap accepted an event in an earlier run or earlier in this one. The
pipeline hashes each event once: `look_up` gives it a key, which it hands back to `sent` (then `accept`, once the
event's row is stored), `retry_later` or `release` once Snap answered; until then a repeat of the event in the same
run is told it is being sent (with batches of 2,000 and four in flight, a repeat within some 8,000 events would
otherwise be sent and charged again), and after `sent` that Snap accepted it in this run. Figures: `python
bench/ledger_bench.py` (docs/performance.md, "Ledger memory and look-ups").

Two runs of one export at once (a schedule whose run outlasts its interval) would both send, and be charged for,
every event neither had sent when the later one started: the later one loaded the ledger before the earlier one
recorded them. So a run reading an export (`Lease`: its URL or dataset, and the run's id) holds a lease on each
asset it sends to, `asset-<h>-lease-<export's hash>`, `{"run", "until"}`: taken at the asset's load, renewed by
its saves and between them (`keep_leases`, the pipeline's ticker: a batch Snap keeps waiting saves nothing for
minutes), dropped at its last save, left to expire (`LEASE_S`) by a run that died; its ledger failing to load drops
it too. A run finding another run's lease still held stops (`LedgerError`) before sending anything to that asset; a
run whose lease lapsed anyway finds it taken over and stops too, rather than renew it over the other's. A resumed
attempt of the same run takes its lease back. Runs of different exports, or of events given in the input, go on
side by side.

Events a run could not deliver for a transient reason (failed after the retries, or skipped at the
run's maximum charge) are remembered in `asset-<h>-retry` (same hashes, at most `MAX_RETRY`; shared by the runs,
the last writer's version standing: it only adds a warning to a resent event's row): they are not in the ledger,
so the next run sends them, and their rows say they are a retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import sys
import time
from array import array
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Literal, NamedTuple

from .errors import LedgerError
from .net.transport import error_named
from .platform import KeyValueStore

LEDGER_STORE = "snapchat-capi-ledger"
CHUNK_ENTRIES = 10_000
MAX_ENTRIES = 1_000_000
RETENTION_DAYS = 38
MAX_RETRY = 100_000
#: Records read at once while an asset loads: on the platform each read is an HTTP call, and every one of them
#: comes before the asset's first look-up is answered.
READS_AT_ONCE = 16
#: Listings of an asset's chunks while some read as gone (taken over by another run meanwhile), before the load
#: gives up (`Ledger._chunks`).
MAX_LISTINGS = 10
#: How long a run's lease on an asset holds without a save renewing it (a run that died leaves it to expire).
LEASE_S = 15 * 60
_HEX = 16
_HEX_TEXT = re.compile("[0-9a-f]*")
#: After an asset's prefix: a chunk (its day, the mark of the run that wrote it, its number), or an earlier
#: version's chunk (`-<n>`, its day inside).
_CHUNK = re.compile(r"-d(\d{1,9})-[0-9a-f]{16}-\d{1,9}")
_OLD_CHUNK = re.compile(r"-\d{1,9}")
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


class _Chunk(NamedTuple):
    day: int
    ids: str
    done: bool


def _whole(record: Any) -> _Chunk:
    """A stored chunk: its day, its entries in hex without a cut-short last one (an entry appended after it would be
    misread), and whether its run is done with it (never, for an earlier version's chunk: it is not taken over).
    Day 0 and no entries if it is missing, or is not what this ledger writes (edited by hand, or damaged): nothing
    in it can be trusted, and one bad value must not fail the run."""
    if not isinstance(record, dict):
        return _Chunk(0, "", False)
    day, ids, done = record.get("day", 0), record.get("ids", ""), record.get("done", False)
    if type(day) is not int or not isinstance(ids, str) or _HEX_TEXT.fullmatch(ids) is None or type(done) is not bool:
        return _Chunk(0, "", False)
    return _Chunk(day, ids[: len(ids) - len(ids) % _HEX], done)


def _hex(entries: Iterable[int]) -> str:
    """Entries as stored: 16 hex characters each, in order (their big-endian bytes, in hex)."""
    packed = array("Q", entries)
    if sys.byteorder == "little":
        packed.byteswap()
    return packed.tobytes().hex()


def _today() -> int:
    return int(time.time() // 86_400)


class Lease(NamedTuple):
    """What a run holds a lease on an asset for: the export it reads (its URL or dataset id, only hashed into a
    record's name) and the run's id (a resumed attempt of the run takes the lease back)."""

    source: str
    run: str


def _other_holder(record: Any, lease: Lease, now: float) -> str | None:
    """The run holding a stored lease record (its id, cut short for a message), if it is another run's and holds
    at `now`; None if it is this run's (a resumed attempt), expired, missing or not what the ledger writes."""
    holder, until = (record.get("run"), record.get("until")) if isinstance(record, dict) else (None, 0)
    if holder == lease.run or not isinstance(until, (int, float)) or until <= now:
        return None
    return str(holder)[:40]


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


class _Asset:
    def __init__(self, asset_id: str) -> None:
        self.asset_id = asset_id  # named in a message (a pixel or app id: not secret)
        self.prefix = "asset-" + hashlib.sha256(asset_id.encode()).hexdigest()[:16]
        #: Accepted in earlier runs (as loaded: at most `MAX_ENTRIES`), and in this one (compact: a run may add
        #: millions).
        self.before: set[int] = set()
        self.now = _EntrySet()
        #: Entries for this run's open chunk of today, not written yet: first those of the done chunks it takes
        #: over, then those it accepts.
        self.open = array("Q")
        self.open_k: int | None = None  # the number of this run's open chunk, once it has one with room
        self.open_ids = ""  # what its record holds
        self.sealed = False  # written as done (the run's last save): entries after it go to a new chunk
        self.next_k = 0  # the number of this run's next chunk
        #: Older days' done chunks this run merges into one of its own (a day that has several), by day.
        self.merged: dict[int, set[int]] = {}
        #: Records whose entries this run's chunks take over, deleted once those are stored; and records no
        #: longer needed (expired), deleted on the first write.
        self.taken: list[str] = []
        self.expired: list[str] = []
        self.dirty = False
        self.retry_dirty = False
        #: Not delivered by earlier runs (transient), and not delivered by this one so far.
        self.retry_before: set[int] = set()
        self.retry_now: set[int] = set()
        #: Looked up and not known, so being sent (False) until Snap answered for it (`retry_later`, `release`); True
        #: once Snap accepted it (`sent`), until `accept` records it (once its row is stored).
        self.sending: dict[int, bool] = {}
        #: This run's lease on the asset (`Lease`): its record ("": none, or released), and until when it holds.
        self.lease_key = ""
        self.lease_until = 0.0


#: An event's place in the ledger: made once, when it is looked up, and handed back once Snap answered.
LedgerKey = tuple[_Asset, int]


class Ledger:
    """Load an asset's entries on first use; `accept` what Snap accepted; `save` writes this run's open chunk.

    The pipeline looks each event up once (`look_up`, which hashes its id) and hands the key it got back to
    `accept` or `retry_later`."""

    def __init__(
        self,
        store: KeyValueStore,
        *,
        skip: bool = True,
        today: int | None = None,
        lease: Lease | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`skip` False (input `skipAlreadySent`): nothing is reported as seen, accepted events are still added.
        `lease`: the run reads an export, and holds a lease on each asset it sends to for it."""
        self._store = store
        self._skip = skip
        self._today = _today() if today is None else today
        self._lease = lease
        self._clock = clock
        self._mark = secrets.token_hex(8)  # in the name of every chunk this run writes: no other run writes them
        self._assets: dict[str, asyncio.Future[_Asset]] = {}
        self._loaded: dict[str, _Asset] = {}  # those whose load is done: looked up without a wait, once per event
        self._saving = asyncio.Lock()  # concurrent commits: the newest version of a chunk must land last

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
        elif self._skip and (accepted := asset.sending.get(key)) is not None:
            earlier = "accepted in this run" if accepted else "being sent"
        else:
            earlier = "not delivered" if key in asset.retry_before else None
            asset.sending[key] = False
        return earlier, (asset, key)

    async def _asset(self, asset_id: str) -> _Asset:
        """The asset's entries, loaded once; concurrent callers wait for the same load."""
        if (loading := self._assets.get(asset_id)) is None:
            loading = self._assets[asset_id] = asyncio.ensure_future(self._load(asset_id))
        return await loading

    async def _load(self, asset_id: str) -> _Asset:
        asset = _Asset(asset_id)
        if self._lease is not None:
            await self._take_lease(asset, self._lease)
        try:
            await self._read(asset)
        except Exception:  # the run fails; its saves skip an asset never loaded, so they would not drop the lease
            await self._delete([asset.lease_key] if asset.lease_key else [])
            raise
        self._loaded[asset_id] = asset
        return asset

    async def _read(self, asset: _Asset) -> None:
        """The asset's entries from earlier runs, the chunks this run takes over, and its events to resend."""
        chunks = await self._chunks(asset)
        asset.before.update(*(_entries(chunk.ids) for _, chunk in chunks))
        kept: dict[int, list[tuple[str, _Chunk]]] = {}  # done chunks with room, by day: this run may take them over
        for key, chunk in chunks:
            if chunk.done and chunk.ids and len(chunk.ids) // _HEX < CHUNK_ENTRIES:
                kept.setdefault(chunk.day, []).append((key, chunk))
        for day, taken in kept.items():
            if day == self._today:  # into this run's open chunk, first
                asset.open.extend(set().union(*(_entries(chunk.ids) for _, chunk in taken)))
            elif len(taken) > 1:
                asset.merged[day] = set().union(*(_entries(chunk.ids) for _, chunk in taken))
            else:
                continue
            asset.taken.extend(key for key, _ in taken)
        retried = _whole(await self._store.get(f"{asset.prefix}-retry"))
        if self._today - retried.day <= RETENTION_DAYS:
            asset.retry_before = set(_entries(retried.ids))

    async def _take_lease(self, asset: _Asset, lease: Lease) -> None:
        """The asset's lease for this export, unless another run holds it (then `LedgerError`: nothing is sent)."""
        key = f"{asset.prefix}-lease-{hashlib.sha256(lease.source.encode()).hexdigest()[:16]}"
        if (holder := _other_holder(await self._store.get(key), lease, self._clock())) is not None:
            raise LedgerError(
                f"Another run ({holder}) is sending the same export to {asset.asset_id}: this run sent "
                "nothing to it, so that no event is sent and charged twice. Its events are sent by the next run once "
                "that one is done: give the schedule an interval its runs finish within."
            )
        asset.lease_key = key
        await self._renew(asset, lease)

    async def _renew(self, asset: _Asset, lease: Lease) -> None:
        until = self._clock() + LEASE_S
        await self._store.set(asset.lease_key, {"run": lease.run, "until": until})
        asset.lease_until = until

    async def _chunks(self, asset: _Asset) -> list[tuple[str, _Chunk]]:
        """The asset's chunks: an earlier version's (read whatever their day), then this version's, newest first, up
        to `MAX_ENTRIES` (the older ones are not read). A chunk listed but gone when read was taken over by another
        run, which stored its entries in a chunk of its own first: the store is listed again for that one (each
        listing reads only chunks not listed before), at most `MAX_LISTINGS` times: a store still changing then
        fails the load (`LedgerError`) rather than have the run answer without a chunk's entries."""
        chunks: list[tuple[str, _Chunk]] = []
        seen: set[str] = set()
        held = 0
        for _ in range(MAX_LISTINGS):
            gone = False
            async for key, record in self._in_waves(await self._unseen(asset, seen)):
                chunk = _whole(record)
                gone = gone or record is None
                if self._today - chunk.day > RETENTION_DAYS:  # an earlier version's chunk, expired
                    if chunk.ids:  # (one that is not what this ledger writes is left as it is)
                        asset.expired.append(key)
                    continue
                if (held := held + len(chunk.ids) // _HEX) > MAX_ENTRIES and _CHUNK.fullmatch(key, len(asset.prefix)):
                    return chunks
                chunks.append((key, chunk))
            if not gone:
                return chunks
        raise LedgerError(
            f"The record of events sent before ({LEDGER_STORE}) kept changing while this run read it: other runs "
            f"sending to the same pixel or app took its records over {MAX_LISTINGS} times in a row. Nothing more was "
            "sent; run again."
        )

    async def _unseen(self, asset: _Asset, seen: set[str]) -> list[str]:
        """The asset's chunks listed in the store and not in `seen` (added to it), in the order `_chunks` reads them;
        the records it no longer needs (expired) go to `asset.expired`."""
        named: list[tuple[int, str]] = []  # (day, key) of this version's chunks
        old: list[str] = []  # an earlier version's chunks: their day is inside
        for key in await self._store.keys(asset.prefix):
            if key in seen:
                continue
            seen.add(key)
            rest = key[len(asset.prefix) :]
            if name := _CHUNK.fullmatch(rest):
                if self._today - int(name[1]) > RETENTION_DAYS:
                    asset.expired.append(key)
                else:
                    named.append((int(name[1]), key))
            elif _OLD_CHUNK.fullmatch(rest):
                old.append(key)
        return [*old, *(key for _, key in sorted(named, reverse=True))]

    async def _in_waves(self, keys: list[str]) -> AsyncIterator[tuple[str, Any]]:
        """The records under `keys`, in order, read `READS_AT_ONCE` at a time (the caller may stop early)."""
        for start in range(0, len(keys), READS_AT_ONCE):
            wave = keys[start : start + READS_AT_ONCE]
            for key, record in zip(wave, await asyncio.gather(*map(self._store.get, wave)), strict=True):
                yield key, record

    def retry_later(self, keys: Iterable[LedgerKey]) -> None:
        """Remember events this run could not deliver for a transient reason, for the next run."""
        for asset, key in keys:
            asset.sending.pop(key, None)
            if len(asset.retry_now) < MAX_RETRY:
                asset.retry_now.add(key)
                asset.dirty = asset.retry_dirty = True

    def sent(self, keys: Iterable[LedgerKey]) -> None:
        """Snap accepted these: a repeat looked up from now on is told so, before `accept` records them."""
        for asset, key in keys:
            asset.sending[key] = True

    def accept(self, keys: Iterable[LedgerKey]) -> None:
        """Remember events Snap accepted (written on the next `save`)."""
        for asset, key in keys:
            asset.sending.pop(key, None)
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
            asset.sending.pop(key, None)

    async def save(self, *, last: bool = False) -> None:
        """Write each changed asset's open chunk (and the chunks it takes over), then delete the records it no
        longer needs. `last` (the run's last save) also marks its open chunk done, for later runs to take over.
        An asset whose write fails does not keep the others from being written: the first error is raised after."""
        failed: Exception | None = None
        async with self._saving:
            for loading in list(self._assets.values()):
                await asyncio.wait([loading])  # a load in flight, or failed: it must not fail the others' save
                if loading.cancelled() or loading.exception() is not None:
                    continue  # never loaded: nothing of it was looked up, so nothing accepted to write
                asset = loading.result()
                if last and asset.open_k is not None and not asset.sealed:
                    asset.dirty = True
                # Commits run concurrently: `accept` or `retry_later` may come while a write is in flight. The flags
                # are cleared before the writes, so what comes during them sets them again and is written on the
                # next turn of this loop, not forgotten.
                while asset.dirty:
                    asset.dirty = False
                    retry_dirty, asset.retry_dirty = asset.retry_dirty, False
                    try:
                        await self._write(asset, retry_dirty, last)
                    except BaseException as error:
                        asset.dirty = True
                        asset.retry_dirty = asset.retry_dirty or retry_dirty
                        if not isinstance(error, Exception):
                            raise
                        failed = failed or error
                        break
                else:
                    await self._delete(asset.expired)  # by a run that only read, too
                if asset.lease_key and self._lease is not None:
                    try:  # like a write: a lease the store refused does not keep the other assets from being saved
                        await self._keep_lease(asset, self._lease, last)
                    except Exception as error:
                        failed = failed or error
        if failed is not None:
            raise failed

    async def keep_leases(self) -> None:
        """Renew the leases that are due between saves (the pipeline's ticker): a save comes when a batch is done,
        and a batch Snap keeps waiting (Retry-After, retried up to 10 times) or a slow export would let the lease
        lapse while the run still sends. `LedgerError` if another run took one over; the first error is raised after
        the others are renewed."""
        failed: Exception | None = None
        async with self._saving:
            for asset in list(self._loaded.values()):
                if asset.lease_key and self._lease is not None:
                    try:
                        await self._keep_lease(asset, self._lease, last=False)
                    except Exception as error:
                        failed = failed or error
        if failed is not None:
            raise failed

    async def _keep_lease(self, asset: _Asset, lease: Lease, last: bool) -> None:
        """Renewed once a third of it has passed; dropped at the run's last save, while it still holds (past it,
        another run may hold it now)."""
        now = self._clock()
        if last:
            if now < asset.lease_until:
                await self._delete([asset.lease_key])
            asset.lease_key = ""  # released: a save after the last one does not take it again
        elif now > asset.lease_until - LEASE_S * 2 / 3:
            # Lapsed (no save for `LEASE_S`): another run may have taken it meanwhile, and is sending the export.
            lapsed = now >= asset.lease_until
            if lapsed and (holder := _other_holder(await self._store.get(asset.lease_key), lease, now)) is not None:
                asset.lease_key = ""  # the other run's now: never renewed nor deleted by this one
                raise LedgerError(
                    f"Another run ({holder}) took over the same export to {asset.asset_id}: no save of this run "
                    f"renewed its hold on it for {LEASE_S // 60} minutes (Snap kept it waiting), so this run stopped "
                    "sending rather than send and charge an event twice. The events it did not reach are sent by a "
                    "later run."
                )
            await self._renew(asset, lease)

    async def _write(self, asset: _Asset, retry_dirty: bool, last: bool) -> None:
        for day in list(asset.merged):  # an earlier day's done chunks, merged into chunks of this run's
            merged = sorted(asset.merged[day])
            for start in range(0, len(merged), CHUNK_ENTRIES):
                await self._put(asset, day, _hex(merged[start : start + CHUNK_ENTRIES]))
            del asset.merged[day]
        while asset.open or (last and asset.open_k is not None and not asset.sealed):
            if asset.open_k is None or asset.sealed:  # a sealed chunk: accepted after the last save
                asset.open_k, asset.next_k, asset.open_ids, asset.sealed = asset.next_k, asset.next_k + 1, "", False
            taken = asset.open[: CHUNK_ENTRIES - len(asset.open_ids) // _HEX]
            ids = asset.open_ids + _hex(taken)
            full = len(ids) // _HEX >= CHUNK_ENTRIES
            done = full or (last and len(taken) == len(asset.open))
            record = {"day": self._today, "ids": ids, "done": done}
            await self._store.set(self._name(asset, self._today, asset.open_k), record)
            # Only once the chunk is stored: a failed write leaves its entries to the next save. Only those it holds:
            # `accept` may have queued more while it was written.
            asset.open_ids, asset.sealed = ids, done
            del asset.open[: len(taken)]
            if full:
                asset.open_k = None
        if retry_dirty:  # the list of events to resend changed: rewritten, dated today
            ids = _hex(sorted(asset.retry_before | asset.retry_now)[:MAX_RETRY])
            await self._store.set(f"{asset.prefix}-retry", {"day": self._today, "ids": ids})
        await self._delete(asset.taken)  # only now that this run's chunks hold what they held

    async def _delete(self, keys: list[str]) -> None:
        while keys:
            key = keys.pop()
            try:
                await self._store.delete(key)
            except Exception as error:  # left in the store: it costs storage (and a read), never an entry
                _log.warning(f"Could not delete the ledger record {key} ({error_named(error)})")

    async def _put(self, asset: _Asset, day: int, ids: str) -> None:
        """A new chunk of this run's, numbered past its others, done as written (an earlier day's, merged)."""
        await self._store.set(self._name(asset, day, asset.next_k), {"day": day, "ids": ids, "done": True})
        asset.next_k += 1

    def _name(self, asset: _Asset, day: int, k: int) -> str:
        return f"{asset.prefix}-d{day}-{self._mark}-{k}"
