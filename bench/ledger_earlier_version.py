"""Runs of this version and of the earlier one (10c88ac: an index `asset-<h>` and chunks `asset-<h>-<n>`) on one
in-memory store: which schedules leave a later run not knowing an entry. Prints figures only. From the repository
root (needs git: the earlier module is taken from the history into a temporary copy of `src`):

    python bench/ledger_earlier_version.py 1000          # earlier-version runs at the same time as new ones
    python bench/ledger_earlier_version.py 1000 later    # earlier-version runs after the new ones

Earlier-version runs go one at a time (that version loses entries of runs at once by itself); a later new run
must know every entry, a later earlier-version run every entry an earlier-version run saved.
"""

import asyncio
import importlib
import logging
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EARLIER = "10c88ac"
P = "pixel"
logging.disable(logging.WARNING)


def modules(where: Path):
    shutil.copytree(ROOT / "src", where / "src")
    shutil.copy(ROOT / "tests" / "memory_platform.py", where / "memory_platform.py")
    old = subprocess.run(["git", "show", f"{EARLIER}:src/ledger.py"], cwd=ROOT, check=True, capture_output=True)
    (where / "src" / "ledger_old.py").write_bytes(old.stdout)
    sys.path[:0] = [str(where)]
    store = importlib.import_module("memory_platform").MemoryStore
    return store, importlib.import_module("src.ledger"), importlib.import_module("src.ledger_old")


async def trial(rng, later, MemoryStore, NEW, OLD):
    class Store(MemoryStore):
        async def _turns(self):
            for _ in range(rng.randrange(0, 4)):
                await asyncio.sleep(0)

        async def get(self, k):
            await self._turns()
            return await super().get(k)

        async def set(self, k, v):
            await self._turns()
            await super().set(k, v)

        async def delete(self, k):
            await self._turns()
            await super().delete(k)

        async def keys(self, p):
            await self._turns()
            return await super().keys(p)

    NEW.CHUNK_ENTRIES = OLD.CHUNK_ENTRIES = rng.choice([3, 4, 6])
    store, d, saved, ctr = Store(), 20_000, [], [0]

    async def one(mod, name, ops):
        led = mod.Ledger(store, today=d)
        for op in range(ops + 1):
            n = rng.randrange(0, 2 * mod.CHUNK_ENTRIES + 1)
            names = [f"{name}-{ctr[0] + i}" for i in range(n)]
            ctr[0] += n
            led.accept([(await led.look_up(P, e))[1] for e in names])
            await (led.save(last=op == ops) if mod is NEW else led.save(merge=op == ops))
            saved.extend(names)

    for i in range(rng.randrange(1, 3)):  # the ledger the earlier version left
        await one(OLD, f"o{i}", rng.randrange(1, 3))

    async def olds():
        for i in range(rng.randrange(1, 3)):
            for _ in range(rng.randrange(0, 30)):
                await asyncio.sleep(0)
            await one(OLD, f"O{i}", rng.randrange(1, 4))

    async def news():
        await asyncio.gather(*(one(NEW, f"n{i}", rng.randrange(1, 4)) for i in range(rng.randrange(1, 3))))

    if later:
        await news()
        await olds()
    else:
        await asyncio.gather(olds(), news())
    new_run, old_run = NEW.Ledger(store, today=d), OLD.Ledger(store, today=d)
    lost_new = [e for e in saved if (await new_run.look_up(P, e))[0] != "accepted"]
    lost_old = [e for e in saved if e[0] in "oO" and (await old_run.look_up(P, e))[0] != "accepted"]
    return lost_new, lost_old


def main(trials: int, later: bool) -> None:
    with tempfile.TemporaryDirectory() as where:
        mods = modules(Path(where))
        new_lost = old_lost = 0
        for t in range(trials):
            a, b = asyncio.run(trial(random.Random(t), later, *mods))
            new_lost += bool(a)
            old_lost += bool(b)
    what = "after the new ones" if later else "at the same time as new ones"
    print(
        f"earlier-version runs {what}: {trials} trials; a later new run misses an entry in {new_lost}, "
        f"a later earlier-version run one of the earlier version's in {old_lost}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), "later" in sys.argv)
