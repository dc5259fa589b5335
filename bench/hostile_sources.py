"""Peak memory of the actor reading hostile `eventsUrl` files: a gzip bomb, a line that never ends, a
multi-member gzip. Each case runs `python -m src` against the loopback Snap and file server and prints
events read / delivered / charged, peak RSS and the run's final status.

Run: `python bench/hostile_sources.py` (about a minute; the bomb inflates to 5 GB).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import psutil  # noqa: E402
from bulk_support import FileServer, conversion  # noqa: E402
from conftest import CAPI_TOKEN, actor_env, write_input  # noqa: E402
from fake_snap import FakeSnap  # noqa: E402


def lines(start: int, count: int) -> bytes:
    return b"".join(json.dumps(conversion(i)).encode() + b"\n" for i in range(start, start + count))


def gzip_bomb(gigabytes: int) -> bytes:
    """Three good events, one line of `gigabytes` GB of `x`, three more: about 5 MB compressed for 5 GB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = packer.compress(lines(0, 3))
    block = b"x" * (1 << 24)
    for _ in range(gigabytes * 64):
        body += packer.compress(block)
    return body + packer.compress(b"\n" + lines(3, 3)) + packer.flush()


def endless_line(megabytes: int) -> bytes:
    return lines(0, 3) + b"y" * (megabytes << 20)


def multi_member() -> bytes:
    return b"".join(gzip.compress(lines(k * 1000, 1000)) for k in range(5))


CASES = {
    "gzip bomb (5 GB inflated)": (gzip_bomb(5), "/bomb.jsonl.gz"),
    "one 500 MB line, no newline": (endless_line(500), "/endless.jsonl"),
    "multi-member gzip, 5 x 1,000 events": (multi_member(), "/multi.jsonl.gz"),
}


def run(url: str, snap: FakeSnap) -> tuple[int, int, dict[str, Any]]:
    """Exit code, peak RSS in bytes, and OUTPUT of one run on `url`."""
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    storage = work / "storage"
    actor_input = {"task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": "pixel-1", "eventsUrl": url,
                   "eventSourceUrl": "https://shop.example.com/", "resultRows": "problems"}  # fmt: skip
    write_input(storage, actor_input)
    peak = 0
    with (work / "actor.log").open("w") as log:
        actor = subprocess.Popen(
            [sys.executable, "-m", "src"], cwd=work, env=actor_env(storage, snap=snap, ppe=True),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        process = psutil.Process(actor.pid)
        while actor.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, process.memory_info().rss)
            time.sleep(0.05)
    store = storage / "key_value_stores" / "default"
    output = json.loads(next(p for p in (store / "OUTPUT.json", store / "OUTPUT") if p.exists()).read_text())
    shutil.rmtree(work)
    return actor.returncode, peak, output


def main() -> None:
    with FakeSnap(capi_token=CAPI_TOKEN) as snap, FileServer() as files:
        for name, (body, path) in CASES.items():
            before, started = snap.accepted_count, time.monotonic()
            code, peak, output = run(files.add(path, body), snap)
            print(
                f"{name}: file {len(body) / 2**20:.1f} MB; exit {code}, {time.monotonic() - started:.1f} s, "
                f"peak RSS {peak / 2**20:.0f} MB; read {sum(output['counts'].values()):,}, "
                f"delivered {snap.accepted_count - before:,}, charged {output['charged']:,}; "
                f"status {output.get('statusMessage')!r}"
            )


if __name__ == "__main__":
    main()
