"""Two or three runs of one pixel at once, on one in-memory store: which schedules lose a ledger entry.

Each run loads the ledger, accepts events, saves after each batch and ends with its last save (`last=True`);
a fresh `Ledger` must then know every event any run accepted. Prints figures only. From the repository root:

    python bench/ledger_concurrency.py tail 3000     # every periodic save before every last save
    python bench/ledger_concurrency.py any 2000      # each save whole, in any order
    python bench/ledger_concurrency.py overlap 2000  # the runs at once, their listings, reads, writes and
                                                     # deletes interleaved

Random schedules: 2 or 3 runs, chunks of 2 to 4 entries, one day or across midnight, `MAX_ENTRIES` sometimes 8
(its trimming drops entries by design, so those trials are not counted as losses).
"""

import asyncio
import random
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from memory_platform import MemoryStore  # noqa: E402
from test_ledger import _accept, add, earlier  # noqa: E402

from src import ledger as L  # noqa: E402
from src.ledger import Ledger  # noqa: E402

P = "pixel"


class InterleavingStore(MemoryStore):
    """Each read and write yields to the other runs a random number of times before it happens."""

    def __init__(self, rng):
        super().__init__()
        self.rng = rng

    async def _turns(self):
        for _ in range(self.rng.randrange(0, 3)):
            await asyncio.sleep(0)

    async def get(self, key):
        await self._turns()
        return await super().get(key)

    async def set(self, key, value):
        await self._turns()
        await super().set(key, value)

    async def delete(self, key):
        await self._turns()
        await super().delete(key)

    async def keys(self, prefix):
        await self._turns()
        return await super().keys(prefix)


async def overlapping(rng, nruns, days, chunk, maxe):
    """Each run loads, then works (accepts events, saves) and ends with its last save, all runs at once."""
    L.CHUNK_ENTRIES = chunk
    L.MAX_ENTRIES = maxe
    store = InterleavingStore(rng)
    pre = [f"old-{i}" for i in range(rng.randrange(0, 6))]
    if pre:
        await _accept(store, [(P, e) for e in pre], today=days[0])
    accepted = []

    async def run(name, today, ops):
        led = Ledger(store, today=today)
        await led.look_up(P, "probe-" + name)
        for op in range(ops + 1):
            names = [f"{name}-{op}-{i}" for i in range(rng.randrange(0, 2 * chunk + 1))]
            await add(led, [(P, e) for e in names])
            accepted.extend(names)
            await led.save(last=op == ops)

    # across midnight, the last run is of the next day: it starts once the others are done (a later day's run
    # loads after every earlier day's run loaded, and a run of the day before must not write after it)
    first_day = nruns - 1 if len(days) > 1 else nruns
    await asyncio.gather(*(run(f"r{i}", days[0], rng.randrange(1, 5)) for i in range(first_day)))
    if len(days) > 1:
        await run(f"r{nruns - 1}", days[-1], rng.randrange(1, 5))
    later = Ledger(store, today=max(days))
    missing = [e for e in pre + accepted if await earlier(later, P, e) != "accepted"]
    return missing, []


async def scenario(rng, mode, nruns, days, chunk, maxe):
    if mode == "overlap":
        return await overlapping(rng, nruns, days, chunk, maxe)
    L.CHUNK_ENTRIES = chunk
    L.MAX_ENTRIES = maxe
    store = MemoryStore()
    pre = [f"old-{i}" for i in range(rng.randrange(0, 6))]
    if pre:
        await _accept(store, [(P, e) for e in pre], today=days[0])
    runs = [dict(name=f"r{i}", led=None, today=rng.choice(days), acc=[], ops=rng.randrange(1, 5)) for i in range(nruns)]
    log = []
    ctr = 0
    # phase: list of (run, 'work') steps then each run's 'last'
    steps = []
    for r in runs:
        steps += [(r, "work")] * r["ops"]
    rng.shuffle(steps)
    lasts = [(r, "last") for r in runs]
    rng.shuffle(lasts)
    if mode == "tail":
        seq = steps + lasts
    else:
        seq = []
        # insert each run's last after its last work step
        order = steps[:]
        for r, _ in lasts:
            idx = max([i for i, (x, k) in enumerate(order) if x is r] + [-1])
            pos = rng.randrange(idx + 1, len(order) + 1)
            order.insert(pos, (r, "last"))
        seq = order
    for r, kind in seq:
        for o in sorted(runs, key=lambda o: o["today"]):  # a later day's run loads after every earlier day's run
            if o["today"] < r["today"] and o["led"] is None:
                o["led"] = Ledger(store, today=o["today"])
                log.append(f"{o['name']} = Ledger(today={o['today']})")
                await o["led"].look_up(P, "probe-" + o["name"])
        if r["led"] is None:
            r["led"] = Ledger(store, today=r["today"])
            log.append(f"{r['name']} = Ledger(today={r['today']})")
        n = rng.randrange(0, 2 * chunk + 1) if kind == "work" else rng.randrange(0, 3)
        names = [f"{r['name']}-{ctr + i}" for i in range(n)]
        ctr += n
        await add(r["led"], [(P, e) for e in names])
        r["acc"] += names
        if names:
            log.append(f"add({r['name']}, {len(names)} entries)")
        if n == 0:
            await r["led"].look_up(P, "probe-" + r["name"])  # make sure it loaded
        if kind == "work":
            await r["led"].save()
            log.append(f"{r['name']}.save()")
        else:
            await r["led"].save(last=True)
            log.append(f"{r['name']}.save(last=True)")
    later = Ledger(store, today=max(days))
    want = pre + [e for r in runs for e in r["acc"]]
    missing = [e for e in want if await earlier(later, P, e) != "accepted"]
    return missing, log


def main(mode, trials, seed=0):
    rng = random.Random(seed)
    fails = crashes = 0
    shown = 0
    for t in range(trials):
        args = dict(
            nruns=rng.choice([2, 2, 3]),
            days=rng.choice([[20_000], [20_000, 20_001]]),
            chunk=rng.choice([2, 3, 4]),
            maxe=rng.choice([1_000_000, 1_000_000, 8]),
        )
        try:
            missing, log = asyncio.run(scenario(random.Random(seed * 100000 + t), mode, **args))
        except Exception as e:
            crashes += 1
            if crashes <= 3:
                print("CRASH", args, repr(e))
                traceback.print_exc(limit=3)
            continue
        if missing and args["maxe"] == 1_000_000:  # MAX_ENTRIES trimming drops entries by design
            fails += 1
            if shown < 2:
                shown += 1
                print(f"--- {mode} FAIL {args} missing={missing}")
                print("  " + "\n  ".join(log))
    print(f"mode={mode}: {trials} trials, {fails} lost entries (MAX_ENTRIES untrimmed), {crashes} crashes")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
