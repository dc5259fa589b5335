"""Bulk delivery benchmark: N synthetic conversions from a JSON Lines file on a loopback server, through
the actor (`python -m src`, PPE off) to the loopback Snap (`tests/fake_snap.py` in its own process).

Prints events/s, wall time, peak RSS of the actor process, time to the first request at the fake Snap,
and the same figures for a plain in-process loop that only normalizes, hashes and serializes the same
events (the project's own `ConversionBuilder`, then the request body's JSON encoding): the ceiling.
No assertions: figures only. Run from the repository root:

    python bench/run_bench.py --events 200000 --repeat 3

The actor runs once per `--result-rows` mode per repeat: `all` writes a dataset row per event (locally one
JSON file each, the SDK's storage), `problems` writes rows only for events not accepted; medians are printed.

`--platform` runs the platform path instead: the actor with APIFY_IS_AT_HOME=1 against the loopback Apify API
(`tests/fake_apify.py` in its own process: INPUT record, dataset pushes, pay-per-event charges, records, events
websocket) and the loopback Snap, default input (`resultRows: all`). Each repeat measures the reference loop
(issue 9's definition, `reference_loop`) and the build alone (on one core, then over `os.cpu_count()` worker
processes: `build_rates`) right before the actor, and prints the ratios to the reference:

    python bench/run_bench.py --platform --events 200000 --repeat 3

`--profile FILE` / `--py-spy FILE` (with `--platform`) run the actor once more under cProfile (main thread) or
py-spy (`pip install py-spy`; every thread, the SDK's worker threads too) and print the top costs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bulk_support import FileServer, write_jsonl  # noqa: E402
from bulk_support import conversions as synthetic  # noqa: E402

from src.events.build import ConversionBuilder, Destinations, PreparedEvent  # noqa: E402
from src.events.names import EventNameResolver  # noqa: E402
from src.events.shape import SourceEvent  # noqa: E402
from src.events.user_data import UserDataNormalizer  # noqa: E402
from src.net.url_guard import ALLOW_PRIVATE_ENV  # noqa: E402
from src.snap.conversions import encode_body  # noqa: E402

TOKEN = "bench-token"
PIXEL = "bench-pixel"
SOURCE_URL = "https://shop.example.com/thanks"


def plain_loop(path: Path) -> float:
    """Normalize, hash and serialize every event the way the actor does, with nothing else around it."""
    builder = ConversionBuilder(
        destinations=Destinations(PIXEL, None),
        normalizer=UserDataNormalizer(),
        names=EventNameResolver(None),
        defaults={"eventSourceUrl": SOURCE_URL},
    )
    started = time.perf_counter()
    batch: list[bytes] = []
    with path.open("rb") as lines:
        for index, line in enumerate(lines):
            built = builder.build(SourceEvent(index, json.loads(line)))
            batch.append(getattr(built, "body", b"{}"))
            if len(batch) == 2000:
                encode_body(batch)
                batch = []
    encode_body(batch)
    return time.perf_counter() - started


_NOT_DIGITS = {c: None for c in range(0x110) if not chr(c).isdigit()}


def _bench_builder() -> ConversionBuilder:
    return ConversionBuilder(
        destinations=Destinations(PIXEL, None),
        normalizer=UserDataNormalizer(),
        names=EventNameResolver(None),
        defaults={"eventSourceUrl": SOURCE_URL},
    )


_WORKER_BUILDER: ConversionBuilder | None = None


def _build_chunk(chunk: tuple[int, list[bytes]]) -> list[Any]:
    """In a worker process: parse and build one chunk of JSON lines. What goes back is compact, as a worker design
    would send it: per event its row facts and the payload already encoded for the request body (bytes pickle
    at memcpy speed; a payload dict costs the main process more to unpickle than to build)."""
    global _WORKER_BUILDER
    if _WORKER_BUILDER is None:
        _WORKER_BUILDER = _bench_builder()
    start, lines = chunk
    build = _WORKER_BUILDER.build
    out: list[Any] = []
    for offset, line in enumerate(lines):
        built = build(SourceEvent(start + offset, orjson.loads(line)))
        if isinstance(built, PreparedEvent):
            out.append((built.index, built.asset_id, built.event_id, built.event_name, built.action_source,
                        built.match_keys, built.warnings, built.body))  # fmt: skip
        else:
            out.append(built)
    return out


def _chunks(path: Path, size: int = 2000) -> Any:
    with path.open("rb") as lines:
        chunk: list[bytes] = []
        start = 0
        for line in lines:
            chunk.append(line)
            if len(chunk) == size:
                yield start, chunk
                start += size
                chunk = []
        if chunk:
            yield start, chunk


def build_rates(path: Path, workers: int) -> tuple[float, float]:
    """The per-event build alone (orjson.loads + `ConversionBuilder.build` + the payload's JSON, results kept in
    order), events/s: on one core in process, then spread over `workers` processes in chunks of 2,000 (the
    measurement for moving normalization to worker processes; compact results come back pickled, in order)."""
    n = 0
    started = time.perf_counter()
    for start, lines in _chunks(path):
        n += len(_build_chunk((start, lines)))
    one = n / (time.perf_counter() - started)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_build_chunk, [(0, [b'{"eventType":"PURCHASE"}'])] * workers))  # start the workers first
        n = 0
        started = time.perf_counter()
        for built in pool.map(_build_chunk, _chunks(path)):
            n += len(built)
        spread = n / (time.perf_counter() - started)
    return one, spread


def reference_loop(path: Path) -> float:
    """Issue 9's reference, exactly: per JSON line, json.loads; email strip + lower; phone digits via str.translate;
    SHA-256 hex of each; the v3 event dict; orjson-encode every 2,000. Returns seconds."""
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    sha256 = hashlib.sha256
    with path.open("rb") as lines:
        for line in lines:
            event = json.loads(line)
            email = event["email"].strip().lower()
            phone = event["phone"].translate(_NOT_DIGITS)
            batch.append(
                {
                    "event_name": event["eventType"],
                    "event_time": int(event["eventTime"]),
                    "action_source": "WEB",
                    "event_source_url": SOURCE_URL,
                    "event_id": event["transactionId"],
                    "user_data": {
                        "em": sha256(email.encode()).hexdigest(),
                        "ph": sha256(phone.encode()).hexdigest(),
                        "client_ip_address": event["ipAddress"],
                        "client_user_agent": event["userAgent"],
                    },
                    "custom_data": {"value": event["price"], "currency": event["currency"],
                                    "order_id": event["transactionId"]},
                }
            )  # fmt: skip
            if len(batch) == 2000:
                orjson.dumps({"data": batch})
                batch = []
    orjson.dumps({"data": batch})
    return time.perf_counter() - started


PUSH_SCRIPT = """
import asyncio, sys, time
from apify import Actor
async def main():
    async with Actor:
        row = {"task": "send_batch_events", "eventId": "order-1", "eventName": "PURCHASE", "actionSource": "WEB",
               "status": "sent", "error": None, "charged": False, "matchQuality": "high", "warnings": [],
               "matchKeys": ["em", "ph", "client_ip_address", "client_user_agent"]}
        n = int(sys.argv[1])
        started = time.perf_counter()
        for start in range(0, n, 1000):
            await Actor.push_data([dict(row, eventIndex=i) for i in range(start, min(n, start + 1000))])
        print(n / (time.perf_counter() - started))
asyncio.run(main())
"""


def local_push_rate(workdir: Path, rows: int) -> float:
    """Rows/s of `Actor.push_data` alone on local storage (one file per row), in chunks of 1,000 as the actor does."""
    storage = workdir / "push-storage"
    shutil.rmtree(storage, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIFY_", "ACTOR_", "CRAWLEE_"))}
    done = subprocess.run([sys.executable, "-c", PUSH_SCRIPT, str(rows)], env=env | {"APIFY_LOCAL_STORAGE_DIR":
                          str(storage)}, capture_output=True, text=True, check=True)  # fmt: skip
    shutil.rmtree(storage, ignore_errors=True)
    return float(done.stdout.strip().splitlines()[-1])


def start_fake_snap() -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_snap.py"), "--port", "0", "--token", TOKEN, "--no-validate"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    line = fake.stdout.readline().strip()
    return fake, line.removeprefix("LISTENING ")


def run_actor(workdir: Path, url: str, snap_url: str, concurrency: int, result_rows: str) -> dict[str, float]:
    storage = workdir / "storage"
    shutil.rmtree(storage, ignore_errors=True)
    store = storage / "key_value_stores" / "default"
    store.mkdir(parents=True)
    actor_input = {"task": "send_batch_events", "accessToken": TOKEN, "pixelId": PIXEL, "eventSourceUrl": SOURCE_URL,
                   "eventsUrl": url, "maxConcurrency": concurrency, "maxRequestsPerSecond": 1000,
                   "resultRows": result_rows}  # fmt: skip
    (store / "INPUT.json").write_text(json.dumps(actor_input))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APIFY_", "ACTOR_", "SNAP_", "CRAWLEE_"))}
    env |= {
        "APIFY_LOCAL_STORAGE_DIR": str(storage),
        "PYTHONPATH": str(ROOT),
        "SNAP_CAPI_BASE_URL": snap_url,
        "SNAP_ADS_API_BASE_URL": snap_url,
    }
    timings = watch_actor(workdir, [sys.executable, "-m", "src"], env, int(snap_url.rsplit(":", 1)[1]), "actor.log")
    output = json.loads((store / "OUTPUT").read_text())
    return timings | {"sent": output["counts"].get("sent", 0)}


CLEARED_ENV = ("APIFY_", "ACTOR_", "SNAP_", "CRAWLEE_")


def start_fake_apify(workdir: Path, url: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The loopback Apify API in its own process, INPUT set to the default input on the JSON Lines URL."""
    actor_input = {"task": "send_batch_events", "accessToken": TOKEN, "pixelId": PIXEL, "eventSourceUrl": SOURCE_URL,
                   "eventsUrl": url}  # fmt: skip
    (workdir / "INPUT.platform.json").write_text(json.dumps(actor_input))
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_apify.py"), "--input", str(workdir / "INPUT.platform.json"),
         "--ppe-price", "0.01"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert fake.stdout is not None
    fake.stdout.readline()  # LISTENING ...
    env = json.loads(fake.stdout.readline().removeprefix("ENV "))
    return fake, env


def stop_fake(fake: subprocess.Popen[str]) -> dict[str, Any]:
    fake.terminate()
    out = fake.communicate(timeout=60)[0] or "{}"
    return dict(json.loads(out.strip().splitlines()[-1]))


def run_platform_actor(
    workdir: Path, source: Path, profiler: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One actor run on the platform path: (timings, fake Apify stats, fake Snap stats). `profiler` is a command
    prefix the actor runs under (cProfile, py-spy)."""
    fake_snap, snap_url = start_fake_snap()
    try:
        with FileServer() as files:
            url = files.add("/events.jsonl", source, "application/x-ndjson")
            fake, apify_env = start_fake_apify(workdir, url)
            try:
                env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_ENV)}
                env |= apify_env | {"PYTHONPATH": str(ROOT), "SNAP_CAPI_BASE_URL": snap_url,
                                    "SNAP_ADS_API_BASE_URL": snap_url, ALLOW_PRIVATE_ENV: "1",
                                    "APIFY_LOCAL_STORAGE_DIR": str(workdir / "platform-local-unused")}  # fmt: skip
                command = [*(profiler or [sys.executable]), "-m", "src"]
                timings = watch_actor(workdir, command, env, int(snap_url.rsplit(":", 1)[1]))
                timings["cpu_fakes"] = sum(_cpu(p) for p in (fake, fake_snap))
            finally:
                apify = stop_fake(fake)
    finally:
        fake_snap.terminate()
        snap = json.loads((fake_snap.communicate(timeout=30)[0] or "{}").strip().splitlines()[-1])
    return timings, apify, snap


def _cpu(process: subprocess.Popen[str]) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def watch_actor(
    workdir: Path, command: list[str], env: dict[str, str], snap_port: int, log_name: str = "actor.platform.log"
) -> dict[str, Any]:
    """Run the actor; wall time, peak RSS and CPU time of its process tree (any child processes included), and
    the time its first connection to the fake Snap appeared."""
    started = time.perf_counter()
    with (workdir / log_name).open("w") as log:
        actor = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
    process = psutil.Process(actor.pid)
    peak, first_request = 0, float("nan")
    cpu: dict[int, float] = {}
    while actor.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            rss = [p.memory_info().rss for p in tree]
            peak = max(peak, sum(rss))
            for member in tree:
                times = member.cpu_times()
                cpu[member.pid] = times.user + times.system
            if first_request != first_request and any(
                c.raddr and c.raddr.port == snap_port for c in process.net_connections("tcp")
            ):
                first_request = time.perf_counter() - started
        except psutil.Error:
            pass
        time.sleep(0.01)
    return {"wall": time.perf_counter() - started, "peak_mb": peak / 2**20, "first_request": first_request,
            "returncode": actor.returncode, "cpu": sum(cpu.values())}  # fmt: skip


def platform_main(args: argparse.Namespace, workdir: Path, source: Path) -> None:
    n = args.events
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        reference = n / reference_loop(source)
        build_one, build_all = build_rates(source, os.cpu_count() or 1)
        timings, apify, snap = run_platform_actor(workdir, source)
        rate = n / timings["wall"]
        output = apify.get("output") or {}
        charged = apify["charged"].get("conversion-sent", 0)
        runs.append(timings | {
            "rate": rate, "reference": reference, "ratio": rate / reference, "build_one": build_one / reference,
            "build_all": build_all / reference, "pushes": apify["pushes"], "charge_calls": apify["charge_calls"],
            "charged_ok": charged == snap["accepted"] == n and snap["duplicates"] == 0,
        })  # fmt: skip
        print(f"  run {repeat + 1}: {timings['wall']:,.1f} s, exit {timings['returncode']}, actor {rate:,.0f} ev/s, "
              f"reference {reference:,.0f} ev/s, ratio {rate / reference:.3f}, CPU {timings['cpu']:,.1f} s "
              f"({timings['cpu'] / timings['wall']:.0%} of the wall time; the fakes' {timings['cpu_fakes']:,.1f} s), "
              f"peak RSS {timings['peak_mb']:,.0f} MB, first Snap request "
              f"{timings['first_request']:.2f} s")  # fmt: skip
        print(f"    build alone: one core {build_one:,.0f} ev/s ({build_one / reference:.3f} x reference), "
              f"{os.cpu_count()} worker processes {build_all:,.0f} ev/s ({build_all / reference:.3f} x)")  # fmt: skip
        print(f"    fake Snap {snap}; fake Apify: {apify['pushes']} pushes / {apify['stored_items']:,} rows, "
              f"{apify['charge_calls']} charge calls ({apify['duplicate_charges']} repeated), charged {charged:,}, "
              f"OUTPUT sent {output.get('counts', {}).get('sent')}, final status {apify['final_status']}, "
              f"unhandled {apify['unhandled']}")  # fmt: skip

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"platform path, {n:,} events, resultRows=all, PPE $0.01, median of {args.repeat}:")
    print(f"  actor: {median('rate'):,.0f} events/s ({median('wall'):,.1f} s wall, from process start to exit)")
    print(f"  reference loop, same runs: {median('reference'):,.0f} events/s")
    print(f"  ratio actor / reference (per run, median): {median('ratio'):.3f}")
    print(f"  build alone / reference (per run, median): one core {median('build_one'):.3f}, "
          f"{os.cpu_count()} worker processes {median('build_all'):.3f}")  # fmt: skip
    peak = max(r["peak_mb"] for r in runs)
    print(f"  peak RSS of the actor process: median {median('peak_mb'):,.0f} MB, max {peak:,.0f} MB")
    print(f"  first request at the fake Snap after {median('first_request'):.2f} s")
    print(f"  dataset pushes {median('pushes'):,.0f}, charge calls {median('charge_calls'):,.0f}, "
          f"charged == accepted == events, no duplicates, in every run: "
          f"{all(r['charged_ok'] for r in runs)}")  # fmt: skip
    if args.profile:
        profile = args.profile.resolve()
        timings, _, _ = run_platform_actor(workdir, source, [sys.executable, "-m", "cProfile", "-o", str(profile)])
        print(f"cProfile run (main thread only; {timings['wall']:,.1f} s wall under the profiler), top own time:")
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
        print("by cumulative time:")
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(40)
    if args.py_spy:
        raw = args.py_spy.resolve()
        spy = ["py-spy", "record", "--threads", "--rate", "250", "--format", "raw", "-o", str(raw), "--"]
        timings, _, _ = run_platform_actor(workdir, source, [*spy, sys.executable])
        print(f"py-spy run (every thread; {timings['wall']:,.1f} s wall):")
        print_py_spy(raw)


def print_py_spy(raw: Path, top: int = 30) -> None:
    """Shares of py-spy's samples (collapsed stacks): per thread, per function with its callees, per own frame."""
    threads: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += count
        thread = next((f for f in frames if f.startswith("thread ")), "?")
        threads[thread] = threads.get(thread, 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    print(f"  {total:,} samples")
    for title, table in (("threads", threads), ("with callees", inclusive), ("own time", own)):
        print(f"  {title}:")
        for frame, count in sorted(table.items(), key=lambda item: -item[1])[:top]:
            print(f"    {100 * count / total:5.1f} %  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; medians are printed")
    parser.add_argument("--result-rows", default="all,problems", help="comma-separated resultRows modes to run")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--push-sample", type=int, default=20_000, help="rows for the local dataset push figure")
    parser.add_argument("--platform", action="store_true", help="platform path: APIFY_IS_AT_HOME=1, fake API")
    parser.add_argument("--profile", type=Path, help="with --platform: one more run under cProfile, stats to FILE")
    parser.add_argument("--py-spy", type=Path, help="with --platform: one more run under py-spy (all threads) to FILE")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    source = write_jsonl(workdir / "events.jsonl", synthetic(args.events))
    n = args.events
    print(f"events: {n:,} ({source.stat().st_size / 2**20:,.1f} MiB of JSON Lines), cores: {os.cpu_count()}")
    if args.platform:
        platform_main(args, workdir, source)
        return

    plain = statistics.median(plain_loop(source) for _ in range(args.repeat))
    print(
        f"plain loop (normalize + hash + serialize), median of {args.repeat}: {plain:,.1f} s, {n / plain:,.0f} events/s"
    )

    for mode in args.result_rows.split(","):
        runs = []
        for _ in range(args.repeat):
            fake, snap_url = start_fake_snap()
            try:
                with FileServer() as files:
                    url = files.add("/events.jsonl", source, "application/x-ndjson")
                    runs.append(run_actor(workdir, url, snap_url, args.concurrency, mode))
            finally:
                fake.terminate()
                stats = json.loads((fake.communicate(timeout=30)[0] or "{}").strip().splitlines()[-1])
            print(f"  [{mode}] {runs[-1]['wall']:,.1f} s, exit code {runs[-1]['returncode']}, fake Snap: {stats}, "
                  f"actor reported sent: {runs[-1]['sent']:,}")  # fmt: skip
        wall = statistics.median(r["wall"] for r in runs)
        rate = n / wall
        print(f"actor end to end, resultRows={mode}, median of {args.repeat}: {wall:,.1f} s, {rate:,.0f} events/s")
        print(f"  peak RSS (max over runs): {max(r['peak_mb'] for r in runs):,.0f} MB")
        print(f"  first request at the fake Snap after {statistics.median(r['first_request'] for r in runs):.2f} s")
        print(f"  ratio actor / plain loop: {rate / (n / plain):.2f}")
    push_rate = local_push_rate(workdir, args.push_sample)
    print(f"local dataset push alone (Actor.push_data, {args.push_sample:,} rows): {push_rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
