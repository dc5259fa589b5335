"""Building events in worker processes, when the run has more than one CPU core.

The build (shape, name, normalize, hash, preflight) is most of a run's per-event work, and it is pure:
the same `ConversionBuilder` gives the same answer in any process. So on a run with several cores, chunks
of source events go to worker processes, each holding a copy of the run's builder, and the built events
come back in source order. What travels is cheap to pickle: the raw event dicts one way, and built events
(whose payload is already the request's JSON bytes) the other.

How many cores a run has is the container's CPU quota, not the host's core count: on Apify a run gets CPU
in proportion to its memory (a core per 4,096 MB), on a host with many more cores, so the run's memory caps
the count too. With one core, workers would only add the cost of passing events between processes, so the
build stays in the run's process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .build import ConversionBuilder, PreparedEvent, RejectedEvent
from .shape import SourceEvent

#: Overrides how many worker processes build events (0: build in the run's process).
WORKERS_ENV = "SNAP_ACTOR_BUILD_WORKERS"
#: Apify gives a run one CPU core per 4,096 MB of its memory (`ACTOR_MEMORY_MBYTES`), whatever the host has.
MEMORY_ENV = "ACTOR_MEMORY_MBYTES"
MB_PER_CORE = 4096
#: Events per chunk sent to a worker: large enough that a chunk's round trip costs little per event.
CHUNK = 1000
#: A chunk takes milliseconds; one not back after this long is lost (Python 3.11's pool can drop a chunk
#: submitted just as a worker dies) and is built here instead: the run never hangs on its workers.
CHUNK_TIMEOUT_S = 60.0
Built = PreparedEvent | RejectedEvent
#: One source event as it travels to a worker: (index, data, error).
_Raw = tuple[int, Any, str | None]
_log = logging.getLogger(__name__)


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may keep busy: its CPU affinity, capped by a cgroup CPU quota (v2 `cpu.max`,
    or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded down."""
    cores = len(os.sched_getaffinity(0))  # Linux, where the actor runs
    quota = _cpu_quota(cgroup)
    return max(1, min(cores, int(quota))) if quota is not None else cores


def _cpu_quota(cgroup: Path) -> float | None:
    try:
        limit, period = (cgroup / "cpu.max").read_text().split()
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        pass
    try:
        limit = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
        period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        return None if int(limit) <= 0 else int(limit) / int(period)
    except (OSError, ValueError):
        return None


def worker_count(environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """Worker processes for a bulk run: `SNAP_ACTOR_BUILD_WORKERS` when set, else one per usable core when
    there are at least two (on Apify, at most one per 4,096 MB of the run's memory), else none."""
    given = environ.get(WORKERS_ENV, "").strip()
    if given.isdigit():
        return int(given)
    cores = usable_cores()
    memory = environ.get(MEMORY_ENV, "").strip()
    if memory.isdigit():
        cores = min(cores, int(memory) // MB_PER_CORE)
    return cores if cores >= 2 else 0


_BUILDER: ConversionBuilder | None = None


def _start(builder: ConversionBuilder) -> None:
    global _BUILDER
    _BUILDER = builder


def _ready() -> None:
    """Nothing: done once a worker has started (and taken the builder)."""


def _build_chunk(chunk: list[_Raw]) -> list[Built]:
    """In a worker: build one chunk with the run's builder."""
    assert _BUILDER is not None, "the worker was started without the run's builder"
    return _build_with(_BUILDER, chunk)


def _build_with(builder: ConversionBuilder, chunk: list[_Raw]) -> list[Built]:
    build = builder.build
    return [build(SourceEvent(index, data, error)) for index, data, error in chunk]


class BuildWorkers:
    """A pool of worker processes building with copies of one builder; `build` keeps the source order.

    At most `2 x processes` chunks are out at a time, so memory stays bounded whatever the source's size. If
    the pool breaks (a worker killed, out of memory), the chunk is built here and so is the rest of the run.
    """

    def __init__(
        self, builder: ConversionBuilder, processes: int, *, chunk: int = CHUNK, timeout: float = CHUNK_TIMEOUT_S
    ) -> None:
        self._builder = builder
        self._chunk = chunk
        self._timeout = timeout
        self._ahead = 2 * processes
        # spawn: a fresh interpreter per worker; forking a process that runs threads and an event loop is unsafe.
        context = multiprocessing.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            processes, mp_context=context, initializer=_start, initargs=(builder,)
        )
        # Workers take a second or two to start (a fresh interpreter each): until they all have, chunks are
        # built here, so the first request to Snap does not wait for them.
        self._starting = [self._pool.submit(_ready) for _ in range(processes)]
        #: Chunks built by the workers, and here (while they started, or after the pool broke): for the run log.
        self.chunks_in_workers = 0
        self.chunks_here = 0

    async def build(self, events: AsyncIterator[SourceEvent]) -> AsyncGenerator[Built, None]:
        """The events built, in the order they came."""
        loop = asyncio.get_running_loop()
        out: deque[tuple[list[_Raw], asyncio.Future[list[Built]] | None]] = deque()

        def submit(chunk: list[_Raw]) -> None:
            future = None
            if self._pool is not None and self._started():
                try:
                    future = loop.run_in_executor(self._pool, _build_chunk, chunk)
                except Exception as error:  # the pool broke between two chunks
                    self._give_up(error)
            out.append((chunk, future))

        chunk: list[_Raw] = []
        broken: Exception | None = None
        try:
            try:
                async for event in events:
                    chunk.append((event.index, event.data, event.error))
                    if len(chunk) >= self._chunk:
                        submit(chunk)
                        chunk = []
                        while len(out) > self._ahead:
                            for built in await self._result(*out.popleft()):
                                yield built
            except Exception as error:  # the source broke: what it gave before is still built, then it raises
                broken = error
            if chunk:
                submit(chunk)
            while out:
                for built in await self._result(*out.popleft()):
                    yield built
        finally:
            for _, future in out:
                if future is not None:
                    future.cancel()
        if broken is not None:
            raise broken

    def _started(self) -> bool:
        if self._starting and all(future.done() for future in self._starting):
            self._starting = []
        return not self._starting

    async def _result(self, chunk: list[_Raw], future: asyncio.Future[list[Built]] | None) -> Iterable[Built]:
        if future is not None:
            try:
                built = await asyncio.wait_for(future, self._timeout)
            except asyncio.CancelledError as error:  # the pool cancelled it (shut down as it broke)
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    raise  # no: the run itself is being cancelled
                self._give_up(error)
            except Exception as error:  # the pool broke (a worker died), or lost the chunk (timed out)
                self._give_up(error)
            else:
                self.chunks_in_workers += 1
                return built
        self.chunks_here += 1
        return _build_with(self._builder, chunk)

    def _give_up(self, error: BaseException) -> None:
        """The pool is broken: every chunk from now on is built here."""
        if self._pool is not None:
            _log.warning(f"Building in worker processes stopped ({type(error).__name__}); the run goes on")
            self.close(wait=False)

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers (waiting for them to exit, unless the pool is broken)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


@contextmanager
def build_workers(builder: ConversionBuilder, processes: int) -> Iterator[BuildWorkers | None]:
    """`processes` workers for the length of the block (none when 0), stopped however the block ends."""
    if processes <= 0:
        yield None
        return
    workers = BuildWorkers(builder, processes)
    try:
        yield workers
    finally:
        workers.close()
        _log.info(
            f"Events were built in {processes} worker processes: {workers.chunks_in_workers} chunks of up to "
            f"{CHUNK:,} there, {workers.chunks_here} in the run itself (while they started, or after they stopped)"
        )
