"""Building events in worker processes: the same answers as building in the run, on as many cores as the run
has (its container's CPU quota), and a run that survives losing its workers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bulk_support import FileServer, conversions, write_jsonl
from conftest import CAPI_TOKEN, run_actor
from fake_snap import FakeSnap
from in_process import run_in_process

from src.errors import SourceError
from src.events.build import ConversionBuilder, Destinations, PreparedEvent, RejectedEvent
from src.events.names import EventNameResolver
from src.events.shape import SourceEvent
from src.events.user_data import UserDataNormalizer
from src.events.workers import WORKERS_ENV, BuildWorkers, usable_cores, worker_count

PIXEL = "pixel-workers"


def export(url: str) -> dict[str, Any]:
    return {"task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
            "eventSourceUrl": "https://shop.example.com/thanks", "eventsUrl": url}  # fmt: skip


def mixed(n: int) -> list[dict[str, Any]]:
    """Conversions with some the build refuses (an unknown name, no identifier, a broken price)."""
    events = list(conversions(n))
    for i in range(0, n, 97):
        events[i] = {**events[i], "eventType": "NOT_A_SNAP_EVENT"}
    for i in range(5, n, 131):
        events[i] = {"eventType": "PURCHASE", "price": 3, "currency": "USD"}
    for i in range(7, n, 211):
        events[i] = {**events[i], "price": "ten"}
    return events


def test_an_export_built_in_worker_processes_is_sent_and_recorded_as_one_built_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = mixed(5_000)
    source = write_jsonl(tmp_path / "mixed.jsonl", iter(events))
    seen: dict[str, Any] = {}
    for workers in ("0", "2"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        with FakeSnap(capi_token=CAPI_TOKEN) as snap, FileServer() as files:
            run = run_in_process(export(files.add("/e.jsonl", source, "application/x-ndjson")), snap=snap, ppe=True)
            sent = sorted((r.event_count, r.status) for r in snap.requests if r.kind == "events")  # concurrent
            rows = sorted(run.rows, key=lambda row: int(row["eventIndex"]))  # rows land as batches finish
            charges = sorted(run.charges, key=lambda charge: str(charge["key"]))
            seen[workers] = (run.returncode, sorted(snap.accepted_event_ids()), sent, rows, charges)
    bad = {i for i in range(5_000) if i % 97 == 0 or i % 131 == 5 or i % 211 == 7}
    good = 5_000 - len(bad)
    inline, spread = seen["0"], seen["2"]
    assert inline[0] == spread[0] == 0
    assert len(inline[1]) == good and inline[1] == spread[1]  # Snap got the same events
    assert inline[2] == spread[2] == [(good - 4_000, 200), (2_000, 200), (2_000, 200)]  # in the same batches
    assert inline[3] == spread[3]  # every row the same
    assert {row["eventIndex"] for row in spread[3] if row["status"] == "invalid"} == bad
    assert inline[4] == spread[4]  # charged alike: the same counts under the same batch keys


def test_python_m_src_with_workers_runs_once(tmp_path: Path, snap: FakeSnap) -> None:
    """Worker processes import the entry module again: they must build, never start a run of their own."""
    source = write_jsonl(tmp_path / "e.jsonl", conversions(3_000))
    with FileServer() as files:
        url = files.add("/e.jsonl", source, "application/x-ndjson")
        run = run_actor(tmp_path, export(url), snap=snap, ppe=True, env={WORKERS_ENV: "2"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(snap.accepted_event_ids()) == 3_000 and snap.duplicates() == []
    assert [r.kind for r in snap.requests].count("events") == 2
    assert run.output["counts"] == {"sent": 3_000} and run.charged_conversions == 3_000


async def _source(n: int, pulled: list[int] | None = None, fail_after: int | None = None) -> AsyncIterator[SourceEvent]:
    for index, data in enumerate(conversions(n)):
        if index == fail_after:
            raise SourceError("the file broke off")
        if pulled is not None:
            pulled.append(index)
        yield SourceEvent(index, data)
        await asyncio.sleep(0)


def started(processes: int, chunk: int) -> BuildWorkers:
    """Workers that have all started: every chunk goes to them."""
    workers = BuildWorkers(_builder(), processes, chunk=chunk)
    concurrent.futures.wait(workers._starting)
    return workers


def test_workers_build_every_event_in_order_reading_a_bounded_way_ahead() -> None:
    """At most twice as many chunks as workers are out: a source of any size takes bounded memory."""

    async def scenario() -> tuple[list[int], int, BuildWorkers]:
        workers = started(1, 10)
        pulled: list[int] = []
        order, lead = [], 0
        try:
            async for event in workers.build(_source(200, pulled)):
                order.append(event.index)
                lead = max(lead, len(pulled) - len(order))
        finally:
            workers.close()
        return order, lead, workers

    order, lead, workers = asyncio.run(scenario())
    assert order == list(range(200))
    assert lead == 3 * 10 - 1  # (2 x 1 worker + the chunk being handed out) chunks of 10, less the one handed out
    assert (workers.chunks_in_workers, workers.chunks_here) == (20, 0)


def test_chunks_are_built_in_the_run_while_the_workers_start(caplog: pytest.LogCaptureFixture) -> None:
    """A fresh interpreter takes far longer to start than building a few small chunks: the first requests to
    Snap do not wait for the workers."""

    async def scenario() -> BuildWorkers:
        workers = BuildWorkers(_builder(), 2, chunk=5)
        try:
            assert [event.index async for event in workers.build(_source(20))] == list(range(20))
        finally:
            workers.close()
        return workers

    workers = asyncio.run(scenario())
    assert workers.chunks_here >= 1 and workers.chunks_here + workers.chunks_in_workers == 4
    assert "stopped" not in caplog.text


def test_a_source_that_breaks_off_still_has_what_it_gave_built_then_its_error() -> None:
    async def scenario() -> tuple[list[int], BaseException | None]:
        workers = started(1, 10)
        seen: list[int] = []
        try:
            async for event in workers.build(_source(100, fail_after=25)):
                seen.append(event.index)
        except SourceError as error:
            return seen, error
        finally:
            workers.close()
        return seen, None

    seen, error = asyncio.run(scenario())
    assert seen == list(range(25))
    assert isinstance(error, SourceError) and "broke off" in str(error)


def _builder() -> ConversionBuilder:
    return ConversionBuilder(
        destinations=Destinations(PIXEL, None),
        normalizer=UserDataNormalizer(),
        names=EventNameResolver(None),
        defaults={"eventSourceUrl": "https://shop.example.com/thanks"},
        now=time.time,
    )


def test_a_run_whose_workers_die_builds_the_rest_itself(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[list[PreparedEvent | RejectedEvent], BuildWorkers]:
        workers = started(2, 100)
        built = []
        try:
            async for event in workers.build(_source(1_000)):
                built.append(event)
                if len(built) == 150:  # the pool is running: kill its processes
                    for process in list(workers._pool._processes.values()):  # type: ignore[union-attr]
                        process.kill()
        finally:
            workers.close()
        return built, workers

    built, workers = asyncio.run(scenario())
    assert [event.index for event in built] == list(range(1_000))
    assert all(isinstance(event, PreparedEvent) for event in built)
    assert caplog.text.count("Building in worker processes stopped") == 1
    assert workers.chunks_in_workers >= 1 and workers.chunks_here >= 1
    assert workers.chunks_in_workers + workers.chunks_here == 10


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: two cores' worth
        ({"cpu.max": "150000 100000\n"}, 1),  # one and a half: one kept busy
        ({"cpu.max": "25000 100000\n"}, 1),  # a quarter of a core (Apify, 1 GB)
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # a sliver: still one
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, no quota
        ({"cpu.max": "max 100000\n"}, None),  # no quota: the affinity decides
        ({"cpu.max": "garbage\n"}, None),
        ({"cpu.max": "100000 100000 extra\n"}, None),  # not the kernel's format: not trusted
        ({}, None),
    ],
)
def test_usable_cores_follow_the_containers_cpu_quota(
    tmp_path: Path, files: dict[str, str], cores: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path) == (affinity if cores is None else min(affinity, cores))


def test_the_environment_sets_the_number_of_workers() -> None:
    assert worker_count({WORKERS_ENV: "3"}) == 3
    assert worker_count({WORKERS_ENV: "0"}) == 0
    cores = usable_cores()
    assert worker_count({}) == (cores if cores >= 2 else 0)
    assert worker_count({WORKERS_ENV: "many"}) == worker_count({})


@pytest.mark.parametrize(("memory", "most"), [("1024", 0), ("4096", 1), ("8192", 2), ("32768", 8)])
def test_on_apify_a_run_gets_a_core_per_4096_mb_of_memory(memory: str, most: int) -> None:
    """The host may show many more cores than the run is given: the run's memory caps the workers."""
    cores = min(usable_cores(), most)
    assert worker_count({"ACTOR_MEMORY_MBYTES": memory}) == (cores if cores >= 2 else 0)


def test_rows_of_both_builds_serialize_alike() -> None:
    """What the workers send back is what the run would have built (payload bytes included)."""

    async def scenario() -> list[bytes]:
        workers = started(1, 64)
        try:
            return [json.dumps(_facts(event)).encode() async for event in workers.build(_source(300))]
        finally:
            workers.close()
            assert (workers.chunks_in_workers, workers.chunks_here) == (5, 0)  # all built over there

    here = [json.dumps(_facts(_builder().build(SourceEvent(i, data)))).encode() for i, data in
            enumerate(conversions(300))]  # fmt: skip
    assert asyncio.run(scenario()) == here


def _facts(event: PreparedEvent | RejectedEvent) -> dict[str, Any]:
    if isinstance(event, RejectedEvent):
        return {"rejected": event.error}
    payload = event.payload
    payload.pop("event_time")  # the clock moves between the two builds
    return {"payload": payload, "id": event.event_id, "keys": event.match_keys, "index": event.index}


def slow_clock() -> float:
    """A builder's clock that makes every event slow to build (picklable: workers import it by name)."""
    time.sleep(0.05)
    return time.time()


def test_a_chunk_that_does_not_come_back_is_built_here(caplog: pytest.LogCaptureFixture) -> None:
    """The run never hangs on its workers: a chunk lost or stuck past the timeout is built in the run."""

    async def scenario() -> tuple[list[int], BuildWorkers]:
        builder = ConversionBuilder(destinations=Destinations(PIXEL, None), normalizer=UserDataNormalizer(),
                                    names=EventNameResolver(None), now=slow_clock)  # fmt: skip
        workers = BuildWorkers(builder, 1, chunk=10, timeout=0.1)  # ten events take 0.5 s over there
        concurrent.futures.wait(workers._starting)
        try:
            return [event.index async for event in workers.build(_source(20))], workers
        finally:
            workers.close()

    order, workers = asyncio.run(scenario())
    assert order == list(range(20))
    assert workers.chunks_in_workers == 0 and workers.chunks_here == 2
    assert "Building in worker processes stopped (TimeoutError)" in caplog.text


def fixed_clock() -> float:
    return 1_790_000_000.0


@pytest.mark.parametrize(("country", "hashed"), [(None, False), ("DE", True)])
def test_a_builder_copied_to_a_worker_builds_as_the_original(country: str | None, hashed: bool) -> None:
    """Workers get the run's builder pickled: its settings (phone country, already hashed) travel with it."""
    import pickle

    builder = ConversionBuilder(
        destinations=Destinations(PIXEL, None),
        normalizer=UserDataNormalizer(default_phone_country=country, already_hashed=hashed),
        names=EventNameResolver({"Kauf": "PURCHASE"}),
        defaults={"eventSourceUrl": "https://shop.example.com/thanks"},
        now=fixed_clock,
    )
    copy = pickle.loads(pickle.dumps(builder))
    when = 1_789_999_000
    events = [{"eventType": "Kauf", "email": "A@b.example", "phone": "030 1234567", "eventTime": when},
              {"eventType": "Kauf", "email": "a" * 64, "phone": "+1 415 555 0100", "eventTime": when}]  # fmt: skip
    for index, data in enumerate(events):
        assert copy.build(SourceEvent(index, data)) == builder.build(SourceEvent(index, data))
