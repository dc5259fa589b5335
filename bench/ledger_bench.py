"""Ledger benchmark: memory of a run that accepts a million events, the CPU time of a look-up, and what an hourly
schedule of small runs leaves in the store and costs the next run's load.

Prints figures only (no assertions). Run from the repository root:

    python bench/ledger_bench.py --events 1000000 --repeat 5
    python bench/ledger_bench.py --schedule-only --days 38 --call-ms 20

- memory (tracemalloc): the peak while one `Ledger` takes `--events` accepted events for one pixel, and what it
  still holds once they are saved (the store's records left out): the cost of a million-event run's ledger;
- look-ups (µs each, process time, median of `--repeat` rounds of 100,000) as the pipeline makes them (`look_up`,
  or `earlier` in the versions before it) for events the ledger does not know: after this run accepted
  `--events` (a first run of a big export), and with `--events` loaded from an earlier run (a nightly export);
  and the pipeline's whole path per event, look-up then acceptance (`look_up` + `accept`, or `earlier` + `add`);
- an hourly schedule: `--days` of 24 runs that accept `--per-run` events each, saved to one store; then the
  records it holds, the reads the next run's load makes, and the load's wall time when every store call takes
  `--call-ms` (on the platform each is an HTTP call, about 30 to 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from memory_platform import MemoryStore  # noqa: E402

from src.ledger import Ledger  # noqa: E402

PIXEL = "bench-pixel"
ROUND = 100_000
DAY0 = 20_000


def pairs(prefix: str, n: int) -> Iterator[tuple[str, str]]:
    return ((PIXEL, f"{prefix}-{i}") for i in range(n))


async def accept(ledger: Ledger, accepted: Iterator[tuple[str, str]]) -> None:
    """Snap accepted these: looked up and accepted by key, as the pipeline does (by ids in versions before)."""
    if hasattr(ledger, "look_up"):
        ledger.accept([(await ledger.look_up(asset_id, event_id))[1] for asset_id, event_id in accepted])
    else:
        await ledger.add(accepted)  # type: ignore[attr-defined]


async def memory(n: int) -> tuple[float, float]:
    """MB traced: the peak while `n` accepted events are added (not saved yet), and what the ledger still holds
    once they are saved (the store's records left out)."""
    gc.collect()
    tracemalloc.start()
    store = MemoryStore()
    ledger = Ledger(store)
    await accept(ledger, pairs("accepted", n))
    peak = tracemalloc.get_traced_memory()[1]
    await ledger.save()
    held = tracemalloc.get_traced_memory()[0] - sum(sys.getsizeof(record) for record in store.records.values())
    tracemalloc.stop()
    return peak / 1e6, held / 1e6


async def timed(step: Callable[[int], Coroutine[Any, Any, object]], repeat: int) -> float:
    """Median µs per call of `step(i)` over `repeat` rounds of `ROUND` calls, in process time."""
    rounds = []
    for r in range(repeat):
        start = time.process_time()
        for i in range(r * ROUND, (r + 1) * ROUND):
            await step(i)
        rounds.append((time.process_time() - start) / ROUND * 1e6)
    return statistics.median(rounds)


def look_up(ledger: Ledger) -> Callable[[str, str], Coroutine[Any, Any, object]]:
    """The pipeline's look-up: `look_up` (one hash, and the key for the acceptance), or `earlier` before it."""
    found: Callable[[str, str], Coroutine[Any, Any, object]] = getattr(ledger, "look_up", None) or (
        ledger.earlier  # type: ignore[attr-defined]
    )
    return found


async def look_ups(n: int, repeat: int) -> dict[str, float]:
    this_run = Ledger(MemoryStore())
    await accept(this_run, pairs("accepted", n))
    store = MemoryStore()
    earlier_run = Ledger(store)
    await accept(earlier_run, pairs("accepted", n))
    await earlier_run.save()
    nightly = Ledger(store)
    await look_up(nightly)(PIXEL, "load")
    after_this_run, after_loading = look_up(this_run), look_up(nightly)
    figures = {
        "look-up, new events, after this run accepted": await timed(
            lambda i: after_this_run(PIXEL, f"new-{i}"), repeat
        ),
        "look-up, new events, loaded from an earlier run": await timed(
            lambda i: after_loading(PIXEL, f"new-{i}"), repeat
        ),
    }
    fresh = Ledger(MemoryStore())
    await look_up(fresh)(PIXEL, "load")
    if not hasattr(fresh, "look_up"):  # before `look_up`: a look-up, then the acceptance by ids (hashed again)

        async def per_event(i: int) -> None:
            await fresh.earlier(PIXEL, f"event-{i}")  # type: ignore[attr-defined]
            await fresh.add([(PIXEL, f"event-{i}")])  # type: ignore[attr-defined]

    else:

        async def per_event(i: int) -> None:
            _, key = await fresh.look_up(PIXEL, f"event-{i}")
            fresh.accept([key])

    figures["per event: look-up, then accepted (the pipeline's path)"] = await timed(per_event, repeat)
    return figures


class SlowStore(MemoryStore):
    """Every call takes `seconds` (an HTTP call on the platform); reads are counted."""

    def __init__(self, records: dict[str, str], seconds: float) -> None:
        super().__init__()
        self.records, self.seconds, self.reads = dict(records), seconds, 0

    async def get(self, key: str) -> Any:
        self.reads += 1
        await asyncio.sleep(self.seconds)
        return await super().get(key)

    async def set(self, key: str, value: Any) -> None:
        await asyncio.sleep(self.seconds)
        await super().set(key, value)

    async def delete(self, key: str) -> None:
        await asyncio.sleep(self.seconds)
        await super().delete(key)

    async def keys(self, prefix: str) -> list[str]:
        self.reads += 1
        await asyncio.sleep(self.seconds)
        return await super().keys(prefix)


async def schedule(days: int, per_run: int, call_ms: float) -> dict[str, float]:
    """An hourly schedule's ledger: records held, and the next run's load (calls: the listing and the reads)."""
    store = MemoryStore()
    for run in range(days * 24):
        ledger = Ledger(store, today=DAY0 + run // 24)
        await accept(ledger, pairs(f"run-{run}", per_run))
        await ledger.save(last=True)
    slow = SlowStore(store.records, call_ms / 1000)
    start = time.perf_counter()
    await look_up(Ledger(slow, today=DAY0 + days))(PIXEL, "next-run")
    return {
        "records in the store": len(store.records),
        "store calls at the next run's load": slow.reads,
        f"the load's wall time, {call_ms:g} ms a store call (s)": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--schedule-only", action="store_true", help="only the hourly schedule's figures")
    parser.add_argument("--days", type=int, default=38, help="days of the hourly schedule")
    parser.add_argument("--per-run", type=int, default=3, help="events each scheduled run accepts")
    parser.add_argument("--call-ms", type=float, default=20.0, help="time each store call takes, in the load")
    args = parser.parse_args()
    figures = asyncio.run(schedule(args.days, args.per_run, args.call_ms))
    print(f"hourly schedule, {args.days} days x 24 runs of {args.per_run} events:")
    for name, value in figures.items():
        print(f"  {name}: {value:,.2f}" if isinstance(value, float) else f"  {name}: {value:,}")
    if args.schedule_only:
        return
    peak, held = asyncio.run(memory(args.events))
    print(f"{args.events:,} accepted events: traced peak {peak:.1f} MB, held once saved {held:.1f} MB")
    for name, us in asyncio.run(look_ups(args.events, args.repeat)).items():
        print(f"{name}: {us:.2f} µs (median of {args.repeat} x {ROUND:,})")


if __name__ == "__main__":
    main()
