"""Runs of one pixel at once on one in-memory store, with faults: which schedules leave a run not knowing an entry
an earlier save stored. Prints figures only. From the repository root:

    python bench/ledger_faults.py 3000             # 2-4 runs at once, any of them across midnight
    python bench/ledger_faults.py 3000 --faults    # writes and deletes that fail (before the store, or after it:
                                                   # the answer lost), runs that crash and resume (a new Ledger)
    python bench/ledger_faults.py 3000 --faults --trim  # MAX_ENTRIES 4 to 12 while the runs go: the oldest chunks
                                                   # not read, by design; at the end all read: none may be gone

Every run, and a few runs that only read (starting at random moments), checks once its asset loaded that it
knows every entry whose save returned before its load began (a run loading then would otherwise send and charge it
again); a fresh run at the end checks them all. Listings, reads, writes and deletes of the runs are interleaved at
random.
"""

import asyncio
import contextlib
import logging
import random
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from memory_platform import MemoryStore  # noqa: E402

from src import ledger as L  # noqa: E402
from src.ledger import Ledger  # noqa: E402

P = "pixel"
logging.getLogger("src.ledger").setLevel(logging.ERROR)  # "Could not delete ...": expected here


class Crash(BaseException):
    """The run's process ends here (no further call of its)."""


class FaultyStore(MemoryStore):
    def __init__(self, rng: random.Random, faults: bool) -> None:
        super().__init__()
        self.rng, self.faults = rng, faults
        self.lost_answers = self.failed = 0

    async def _turns(self) -> None:
        for _ in range(self.rng.randrange(0, 4)):
            await asyncio.sleep(0)

    async def get(self, key):
        await self._turns()
        return await super().get(key)

    async def keys(self, prefix):
        await self._turns()
        return await super().keys(prefix)

    async def set(self, key, value):
        await self._turns()
        if self.faults and self.rng.random() < 0.08:
            self.failed += 1
            raise OSError("write failed")
        await super().set(key, value)
        if self.faults and self.rng.random() < 0.08:
            self.lost_answers += 1
            raise OSError("written, answer lost")

    async def delete(self, key):
        await self._turns()
        if self.faults and self.rng.random() < 0.08:
            raise OSError("delete failed")
        await super().delete(key)
        if self.faults and self.rng.random() < 0.05:
            raise OSError("deleted, answer lost")


async def trial(rng: random.Random, faults: bool, trim: bool = False) -> tuple[list[str], dict]:
    L.CHUNK_ENTRIES = rng.choice([2, 3, 4, 6])
    L.MAX_ENTRIES = rng.choice([4, 8, 12]) if trim else 1_000_000
    store = FaultyStore(rng, faults)
    d = 20_000
    saved: list[str] = []  # entries whose save returned, in order
    problems: list[str] = []
    counter = [0]

    async def check(led: Ledger, known: list[str], who: str) -> None:
        if L.MAX_ENTRIES < 1_000_000:  # trimmed: the oldest entries are not read, by design
            await led.look_up(P, "probe")
            return
        for e in known:
            got, key = await led.look_up(P, e)
            if got != "accepted":
                problems.append(f"{who} does not know {e} ({got})")
            led.release([key])

    async def attempt(name: str, today: int, ops: int, crash_at: int | None) -> bool:
        """One attempt of a run; True if it ended (its last save returned or failed), False if it crashed."""
        led = Ledger(store, today=today)
        before = list(saved)
        try:
            await check(led, before, f"{name}(day {today}) at load")
        except OSError:
            return True  # the load failed: the run fails having accepted nothing
        pending: list[str] = []
        for op in range(ops + 1):
            last = op == ops
            if crash_at is not None and op == crash_at:
                return False
            n = rng.randrange(0, 2 * L.CHUNK_ENTRIES + 1)
            names = [f"{name}-{counter[0] + i}" for i in range(n)]
            counter[0] += n
            keys = [(await led.look_up(P, e))[1] for e in names]
            led.accept(keys)
            pending += names
            try:
                await led.save(last=last)
            except OSError:
                if last:
                    return True  # the run fails; what it accepted since its last good save is not counted
                continue  # the next commit saves again
            saved.extend(pending)
            pending = []
        return True

    async def run(name: str, today: int) -> None:
        for _ in range(rng.randrange(0, 40)):
            await asyncio.sleep(0)
        ops = rng.randrange(1, 5)
        crash_at = rng.randrange(0, ops + 1) if faults and rng.random() < 0.3 else None
        if not await attempt(name, today, ops, crash_at) and rng.random() < 0.7:
            await attempt(name + "'", today, rng.randrange(1, 4), None)  # resumed (migrated): a new Ledger

    nruns = rng.choice([2, 3, 4])
    days = [rng.choice([d, d, d + 1]) for _ in range(nruns)]
    # some runs of a pixel already done today and yesterday
    for day in (d - 1, d):
        for _ in range(rng.randrange(0, 3)):
            await run(f"p{day}", day)

    async def reader(name: str, today: int) -> None:
        """A run starting at some point while the others go on: it must know what they saved before it loads."""
        for _ in range(rng.randrange(0, 120)):
            await asyncio.sleep(0)
        led = Ledger(store, today=today)
        with contextlib.suppress(OSError):
            await check(led, list(saved), f"{name}(day {today}) at load")

    readers = [reader(f"q{i}", rng.choice(days)) for i in range(rng.randrange(0, 4))]
    await asyncio.gather(*(run(f"r{i}", days[i]) for i in range(nruns)), *readers)
    store.faults = False
    L.MAX_ENTRIES = 1_000_000  # every record read: none of them may have been lost (deleted unread, say)
    final = Ledger(store, today=max(days))
    await check(final, list(saved), "a later run")
    return problems, {"records": len(store.records), "failed": store.failed, "lost": store.lost_answers}


def main(trials: int, faults: bool, trim: bool, seed: int = 1) -> None:
    lossy = crashes = 0
    shown = 0
    records = 0
    for t in range(trials):
        rng = random.Random(seed * 1_000_003 + t)
        try:
            problems, info = asyncio.run(trial(rng, faults, trim))
        except Exception:
            crashes += 1
            if crashes <= 3:
                traceback.print_exc(limit=4)
            continue
        records += info["records"]
        if problems:
            lossy += 1
            if shown < 3:
                shown += 1
                print(f"trial {t}: {problems[:4]} {info}")
    print(
        f"faults={faults} trim={trim}: {trials} trials, {lossy} with an entry a run did not know, {crashes} crashes; "
        f"{records / max(1, trials - crashes):.1f} records at the end on average"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), "--faults" in sys.argv, "--trim" in sys.argv)
