"""The run report as a person sees it: stored by a real run, rendered in headless Chromium.

The Chromium tests need Debian's `chromium` package; without it they are skipped (and say so).
`UPDATE_REPORT_SCREENSHOT=1 pytest tests/test_report.py` also writes the screenshot to
docs/report.png for the README.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter
from itertools import accumulate
from pathlib import Path

import pytest
from conftest import CAPI_TOKEN, ROOT, ActorRun, run_actor
from fake_snap import FakeSnap
from in_process import run_in_process

from src.results.report import render_report
from src.results.summary import DISTINCT_LIMIT, OTHER, Summary

PIXEL = "pixel-123"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)
PERSONAL = ("buyer0@example.com", "Buyer0@Example.com", "+44 844 412 4653", "448444124653", "Zoë", "203.0.113.9")


def _events() -> list[dict[str, object]]:
    now = int(time.time())
    events: list[dict[str, object]] = [
        {"eventType": "purchase", "email": f"Buyer{i}@Example.com", "price": 10 + i, "transactionId": f"o-{i}",
         "scClickId": f"click-{i}", "eventTime": now - 60}
        for i in range(12)
    ]  # fmt: skip
    events += [
        {"eventType": "Product Added", "phone": "+44 844 412 4653", "eventId": f"c-{i}", "firstName": "Zoë"}
        for i in range(6)
    ]
    events += [
        {"eventType": "page_view", "ipAddress": "203.0.113.9", "userAgent": "UA/1", "eventId": f"v-{i}"}
        for i in range(9)
    ]
    events += [
        {"eventType": "PURCHASE", "email": "late@example.com", "price": 5, "eventTime": "2001-01-01T00:00:00Z"},
        {"eventType": "Coupon Applied", "email": "c@example.com"},
        {"eventType": "SIGN_UP", "email": "out@example.com", "optOut": True},
        {"eventType": "SIGN_UP"},
    ]
    return events


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> ActorRun:
    workdir = tmp_path_factory.mktemp("report-run")
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.reject_event_ids({"c-2": "Invalid content_ids"})
        actor_input = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "task": "send_batch_events",
                       "eventSourceUrl": "https://shop.example.com/thanks", "events": _events()}  # fmt: skip
        run = run_actor(workdir, actor_input, snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    return run


def report_of(run: ActorRun) -> Path:
    return run.storage / "key_value_stores" / "default" / "REPORT"


@pytest.mark.xdist_group("live_run")
def test_every_conversion_run_stores_a_linked_report(live_run: ActorRun) -> None:
    assert live_run.output["reportKey"] == "REPORT"
    assert live_run.output["reportUrl"] is None  # a platform URL only on the platform
    metadata = json.loads((report_of(live_run).parent / "REPORT.__metadata__.json").read_text())
    assert metadata["content_type"].startswith("text/html")
    page = report_of(live_run).read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page
    for outside in ("<script", "src=", "href=", "@import", "url("):
        assert outside not in page
    for name in ("PURCHASE", "ADD_CART", "PAGE_VIEW", "SIGN_UP", "Invalid content_ids", "37-day", "opted out"):
        assert name in page
    assert "31" in page  # events in all
    for value in (*PERSONAL, CAPI_TOKEN):
        assert value not in page


@pytest.mark.xdist_group("live_run")
def test_the_live_report_shows_snaps_own_score_beside_our_grades(live_run: ActorRun) -> None:
    page = report_of(live_run).read_text()
    section = page[page.index("Snap's event quality score (Signal Readiness)") :]
    assert "GOOD" in section and "POOR" in section  # the loopback Snap's answer for the pixel
    assert "P0: Send a hashed email address with every event." in section
    assert "excellent 12" in section  # our grade of the 12 purchases with email and click id
    assert "not in this run" not in section.split("SIGN_UP")[0]


def test_demo_runs_have_a_report_and_lookups_do_not() -> None:
    demo = run_in_process({"task": "send_event"})
    assert demo.returncode == 0, demo.stderr
    assert demo.output["reportKey"] == "REPORT"
    assert "demo run" in demo.records["REPORT"]
    assert "these are sample scores, not your pixel" in demo.records["REPORT"]
    pixels = run_in_process({"task": "list_pixels"})
    assert pixels.returncode == 0, pixels.stderr
    assert "reportKey" not in pixels.output
    assert "REPORT" not in pixels.records


def test_a_run_stopped_by_snap_says_so_in_its_report(snap: FakeSnap) -> None:
    actor_input = {"accessToken": "wrong-token-77", "pixelId": PIXEL, "task": "send_event", "eventType": "SIGN_UP",
                   "email": "a@example.com", "eventSourceUrl": "https://a.example"}  # fmt: skip
    run = run_in_process(actor_input, snap=snap)
    assert run.returncode != 0
    page = run.records["REPORT"]
    assert "The run stopped early" in page
    assert "wrong-token-77" not in page


def test_the_summary_stays_small_for_many_distinct_names_and_reasons() -> None:
    summary = Summary(task="send_batch_events", demo=True)
    for i in range(5000):
        row = {"status": "invalid", "error": f"event name 'n{i}' is unknown", "eventName": f"n{i}",
               "matchKeys": ["em"], "matchQuality": "fair"}  # fmt: skip
        summary.add([row])
    assert len(summary.by_name) == DISTINCT_LIMIT + 1
    assert len(summary.errors) == DISTINCT_LIMIT + 1
    assert len(summary.quality_by_name) == DISTINCT_LIMIT + 1
    assert summary.by_name[OTHER]["invalid"] == 5000 - DISTINCT_LIMIT
    assert summary.identifiers["em"] == summary.events == 5000
    assert "n4999" not in render_report(summary)


# --- in Chromium ---------------------------------------------------------------------------------


def chromium(page: Path, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={work / 'profile'}", "--enable-logging=stderr", "--v=0", *extra, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=work)


def console_messages(page: Path, work: Path) -> list[str]:
    """What the page wrote to the console: script errors and CSP violations are logged as CONSOLE."""
    done = chromium(page, work, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "</html>" in done.stdout
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def screenshot(page: Path, work: Path, size: str = "1200,1600") -> Path:
    png = work / "report.png"
    done = chromium(page, work, f"--screenshot={png}", f"--window-size={size}", "--hide-scrollbars")
    assert done.returncode == 0, done.stderr[-2000:]
    return png


def png_colors(png: bytes) -> tuple[int, int, dict[bytes, int]]:
    """Width, height and pixel counts per colour of an 8-bit RGB/RGBA PNG (enough for Chromium's)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind, data = png[position + 4 : position + 8], png[position + 8 : position + 8 + length]
        header = data if kind == b"IHDR" else header
        idat += data if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, color_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    assert color_type in (2, 6)
    size = 3 if color_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * size
    low, high = int.from_bytes(b"\x7f" * stride, "big"), int.from_bytes(b"\x80" * stride, "big")

    def plus(line: bytes, other: bytes) -> bytes:
        """Every byte of `line` plus the byte below it in `other`, mod 256, in one big-integer sum."""
        a, b = int.from_bytes(line, "big"), int.from_bytes(other, "big")
        return (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(stride, "big")

    previous, colors = bytes(stride), Counter[tuple[int, ...]]()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        if kind == 1:  # Sub: a running sum per channel
            summed = bytearray(stride)
            for channel in range(size):
                summed[channel::size] = bytes(accumulate(line[channel::size], lambda a, b: (a + b) & 0xFF))
            line = bytes(summed)
        elif kind == 2:  # Up
            line = plus(line, previous)
        elif kind in (3, 4):  # Average, Paeth: byte by byte
            out = bytearray(line)
            for x in range(stride):
                left = out[x - size] if x >= size else 0
                up, corner = previous[x], previous[x - size] if x >= size else 0
                if kind == 3:
                    out[x] = (out[x] + (left + up) // 2) & 0xFF
                    continue
                guess = left + up - corner
                to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
                near = left if to_left <= to_up and to_left <= to_corner else up if to_up <= to_corner else corner
                out[x] = (out[x] + near) & 0xFF
            line = bytes(out)
        colors.update(zip(line[0::size], line[1::size], line[2::size], strict=True))
        previous = line
    return width, height, {bytes(color): count for color, count in colors.items()}


@pytest.mark.xdist_group("live_run")
@needs_chromium
def test_the_report_renders_with_charts_and_no_console_messages(live_run: ActorRun, tmp_path: Path) -> None:
    page = tmp_path / "REPORT.html"
    shutil.copy(report_of(live_run), page)
    assert console_messages(page, tmp_path) == []
    png = screenshot(page, tmp_path)
    width, height, colors = png_colors(png.read_bytes())
    assert (width, height) == (1200, 1600)
    assert len(colors) > 50, "the screenshot is nearly blank"
    assert max(colors.values()) < 0.8 * width * height, "one colour fills the screenshot"
    for chart_color in (b"\x2e\x7d\x32", b"\x5c\x6b\xc0", b"\x11\x11\x11"):  # sent bars, coverage bars, header
        assert colors.get(chart_color, 0) > 500
    if os.environ.get("UPDATE_REPORT_SCREENSHOT") == "1":
        shutil.copy(screenshot(page, tmp_path, "1200,2500"), ROOT / "docs" / "report.png")


@pytest.mark.xdist_group("live_run")
@needs_chromium
def test_the_console_check_catches_a_script_error(live_run: ActorRun, tmp_path: Path) -> None:
    """The check above is only worth something if it fails on a broken page: break one on purpose."""
    page = report_of(live_run).read_text()
    broken = page.replace("</main>", '<script>throw new Error("injected-fault")</script></main>')
    blocked = tmp_path / "blocked.html"
    blocked.write_text(broken)
    [violation] = console_messages(blocked, tmp_path)
    assert "Content Security Policy" in violation
    without_csp = tmp_path / "thrown.html"
    without_csp.write_text(broken.replace("Content-Security-Policy", "X-Nothing"))
    [thrown] = console_messages(without_csp, tmp_path)
    assert "Uncaught Error: injected-fault" in thrown
