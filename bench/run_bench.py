"""Bulk delivery benchmark: N synthetic conversions from a JSON Lines file on a loopback server, through
the actor (`python -m src`, PPE off) to the loopback Snap (`tests/fake_snap.py` in its own process).

Prints events/s, wall time, peak RSS of the actor process, time to the first request at the fake Snap,
and the same figures for a plain in-process loop that only normalizes, hashes and serializes the same
events (the project's own `ConversionBuilder`, then the request body's JSON encoding): the ceiling.
No assertions: figures only. Run from the repository root:

    python bench/run_bench.py --events 200000 --repeat 3

The actor runs once per `--result-rows` mode per repeat: `all` writes a dataset row per event (locally one
JSON file each, the SDK's storage), `problems` writes rows only for events not accepted; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bulk_support import FileServer, write_jsonl  # noqa: E402
from bulk_support import conversions as synthetic  # noqa: E402

from src.conversion import ConversionBuilder, Destinations  # noqa: E402
from src.event_input import SourceEvent  # noqa: E402
from src.event_names import EventNameResolver  # noqa: E402
from src.normalize import UserDataNormalizer  # noqa: E402
from src.snap_api import encode_body  # noqa: E402

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
    batch: list[dict[str, object]] = []
    with path.open("rb") as lines:
        for index, line in enumerate(lines):
            built = builder.build(SourceEvent(index, json.loads(line)))
            batch.append(getattr(built, "payload", {}))
            if len(batch) == 2000:
                encode_body(batch)
                batch = []
    encode_body(batch)
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
    env |= {"APIFY_LOCAL_STORAGE_DIR": str(storage), "PYTHONPATH": str(ROOT), "SNAP_CAPI_BASE_URL": snap_url}
    snap_port = int(snap_url.rsplit(":", 1)[1])
    started = time.perf_counter()
    with (workdir / "actor.log").open("w") as log:
        actor = subprocess.Popen([sys.executable, "-m", "src"], cwd=workdir, env=env, stdout=log, stderr=log)
    process = psutil.Process(actor.pid)
    peak, first_request = 0, float("nan")
    while actor.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
            if first_request != first_request and any(
                c.raddr and c.raddr.port == snap_port for c in process.net_connections("tcp")
            ):
                first_request = time.perf_counter() - started
        except psutil.Error:
            break
        time.sleep(0.01)
    wall = time.perf_counter() - started
    output = json.loads((store / "OUTPUT").read_text())
    return {"wall": wall, "peak_mb": peak / 2**20, "first_request": first_request, "returncode": actor.returncode,
            "sent": output["counts"].get("sent", 0)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; medians are printed")
    parser.add_argument("--result-rows", default="all,problems", help="comma-separated resultRows modes to run")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--push-sample", type=int, default=20_000, help="rows for the local dataset push figure")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    source = write_jsonl(workdir / "events.jsonl", synthetic(args.events))
    n = args.events
    print(f"events: {n:,} ({source.stat().st_size / 2**20:,.1f} MiB of JSON Lines), cores: {os.cpu_count()}")

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
