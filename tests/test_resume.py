"""Surviving the platform: a run killed mid-way resumes on the same storage, with no event sent twice,
none charged twice and none lost; the checkpoint's range bookkeeping; the rate limit."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bulk_support import FileServer, conversions, write_jsonl
from conftest import CAPI_TOKEN, run_actor, start_actor
from fake_snap import FakeSnap, Fault
from in_process import InProcessRun, run_in_process
from memory_platform import MemoryCharging, MemoryEvents, MemoryStore

from src.delivery.checkpoint import STATE_KEY, Checkpoint
from src.delivery.pipeline import PipelineSettings
from src.net import transport
from src.net.transport import RateLimiter
from src.results.summary import Summary
from src.tasks import send as send_task

PIXEL = "pixel-resume-1"


def bulk(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "task": "send_batch_events",
        "accessToken": CAPI_TOKEN,
        "pixelId": PIXEL,
        "eventSourceUrl": "https://shop.example.com/thanks",
        "eventsUrl": url,
    } | fields


def saved_state(storage: Path) -> dict[str, Any]:
    path = storage / "key_value_stores" / "default" / "BULK_PROGRESS"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def finished(state: dict[str, Any]) -> int:
    return int(state.get("watermark", 0)) + sum(b - a for a, b in state.get("ranges", []))


def test_killed_run_resumes_without_duplicates_losses_or_double_charges(tmp_path: Path, snap: FakeSnap) -> None:
    n = 2500  # two requests: 2,000 events accepted before the kill, 500 in flight when it lands
    snap.record_bodies = False
    storage = tmp_path / "storage"
    gate = threading.Event()
    # One batch at a time; Snap answers the first request and holds the second until the run is killed,
    # then drops it unanswered: the run dies with one batch committed and one in flight that Snap never
    # took. (A kill after Snap took a request is covered by Snap's dedup on event_id and the charge's
    # idempotency key; see src/delivery/checkpoint.py.)
    snap.add_faults("events", Fault.delay(0), Fault.hold_then_drop(gate))
    with FileServer() as files:
        url = files.add("/orders.jsonl", write_jsonl(tmp_path / "orders.jsonl", conversions(n)), "application/x-ndjson")
        actor_input = bulk(url, maxConcurrency=1)
        process = start_actor(tmp_path, actor_input, storage=storage, snap=snap, ppe=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len([r for r in snap.requests if r.kind == "events"]) >= 2:  # the first batch committed by then
                    break
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
            gate.set()
        assert finished(saved_state(storage)) == snap.stats()["accepted"]  # the checkpoint has what Snap took
        first_accepted = snap.stats()["accepted"]
        assert 2000 <= first_accepted < n
        assert (
            sum(c["charged_count"] for c in _charges(storage) if c["event_name"] == "conversion-sent") == first_accepted
        )

        resumed = run_actor(
            tmp_path, None, storage=storage, snap=snap, ppe=True, env={"APIFY_PURGE_ON_START": "0"}
        )  # the INPUT from the first attempt is still there, as on the platform

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert snap.duplicates() == []
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(n))
    assert resumed.charged_conversions == n  # both attempts' charging logs add up to exactly n
    keys = [c["idempotency_key"] for c in resumed.charges if c["event_name"] == "conversion-sent"]
    assert len(set(keys)) == len(keys) == 2  # one per Snap request (2,000 events, then 500)
    rows = resumed.rows
    assert len(rows) == n
    assert sorted(row["eventIndex"] for row in rows) == list(range(n))
    assert all(row["status"] == "sent" and row["charged"] for row in rows)
    assert resumed.output["counts"] == {"sent": n}
    assert resumed.output["charged"] == n
    assert "Resuming" in resumed.stderr + resumed.stdout


def _charges(storage: Path) -> list[dict[str, Any]]:
    folder = storage / "datasets" / "charging-log"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("0*.json"))]


def test_checkpoint_merges_out_of_order_ranges_into_the_watermark() -> None:
    checkpoint = Checkpoint(_no_save, "f")
    checkpoint.mark(range(4000, 6000))
    checkpoint.mark([6000, 6002])
    assert checkpoint.watermark == 0
    assert checkpoint.is_done(4500)
    assert not checkpoint.is_done(6001)
    assert not checkpoint.is_done(100)
    assert checkpoint.is_done(6002) and not checkpoint.is_done(6003)  # the newest range's last event, and past it
    checkpoint.mark(range(2000))
    checkpoint.mark(range(2000, 4000))
    assert checkpoint.watermark == 6001
    assert checkpoint.is_done(6002)
    assert not checkpoint.is_done(6003)


def test_checkpoint_state_is_only_resumed_for_the_same_input() -> None:
    asyncio.run(_resumed_for_the_same_input())


async def _resumed_for_the_same_input() -> None:
    saved: dict[str, Any] = {}

    async def save(key: str, value: dict[str, Any]) -> None:
        saved[key] = value

    checkpoint = Checkpoint(save, "input-a")
    checkpoint.mark(range(10))
    summary = Summary("send_batch_events", demo=False)
    summary.add([{"status": "sent", "charged": True}] * 10)
    await checkpoint.save(summary)
    state = saved["BULK_PROGRESS"]
    again = Checkpoint(save, "input-a", state)
    assert again.resumed
    assert again.watermark == 10
    assert again.restored is not None
    assert (again.restored["counts"], again.restored["charged"], again.restored["errors"]) == ({"sent": 10}, 10, {})
    assert not Checkpoint(save, "input-b", state).resumed


async def _no_save(key: str, value: dict[str, Any]) -> None:
    return None


class MigratedAfterFirstCheckpoint(MemoryStore):
    """The run's key-value store; the first checkpoint saved brings the platform's MIGRATING event, and the
    old container is then gone (an abort stands for the kill: nothing more is read or sent)."""

    def __init__(self, events: MemoryEvents) -> None:
        super().__init__()
        self._events = events
        self.migrated = False

    async def set(self, key: str, value: Any) -> None:
        await super().set(key, value)
        if key == STATE_KEY and not self.migrated:
            self.migrated = True
            self._events.migrate()
            asyncio.get_running_loop().call_later(0.05, self._events.abort)


def migrated_run(
    snap: FakeSnap, monkeypatch: pytest.MonkeyPatch, between: Callable[[dict[str, Any]], None] | None = None
) -> tuple[InProcessRun, InProcessRun, MemoryStore, list[tuple[str, int]]]:
    """12 events in batches of 4 with one event Snap refuses in each: every batch spends a validate ask and a
    resend (2 isolation requests). The first attempt finishes one batch and migrates; the second resumes from
    its checkpoint (first given to `between`, as saved). Both attempts, the store and Snap's requests."""
    monkeypatch.setattr(send_task, "PipelineSettings", functools.partial(PipelineSettings, batch_size=4))
    snap.answer_with_index = False  # as real Snap: the bad event is found by asking validate
    snap.reject_event_ids({f"order-{i}": "Bad value" for i in (1, 6, 11)})
    now = int(time.time())
    events = [
        {"eventType": "PURCHASE", "email": f"buyer{i}@example.com", "price": 10 + i, "currency": "USD",
         "transactionId": f"order-{i}", "eventTime": now - 60}
        for i in range(12)
    ]  # fmt: skip
    actor_input = {
        "task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
        "eventSourceUrl": "https://shop.example.com/thanks", "events": events, "maxConcurrency": 1,
    }  # fmt: skip
    signals, ledger, charging = MemoryEvents(), MemoryStore(), MemoryCharging()
    store = MigratedAfterFirstCheckpoint(signals)
    first = run_in_process(actor_input, snap=snap, events=signals, ledger=ledger, store=store, charging=charging)
    assert store.migrated and first.output["counts"] == {"sent": 3, "invalid": 1}  # one batch, then the move
    assert first.output["isolationRequests"] == 2
    if between is not None:
        state = json.loads(store.records[STATE_KEY])
        between(state)
        store.records[STATE_KEY] = json.dumps(state)
    second = run_in_process(actor_input, snap=snap, ledger=ledger, store=store, charging=charging)
    assert second.returncode == 0, second.stderr
    assert "Resuming" in second.stderr
    assert sorted(row["eventIndex"] for row in first.rows + second.rows) == list(range(12))
    assert snap.duplicates() == []
    output = second.output
    assert output["counts"] == {"sent": 9, "invalid": 3}
    assert output["charged"] == charging.get_charged_event_count("conversion-sent") == 9
    assert [error["count"] for error in output["topErrors"]] == [3]
    requests = [(r.kind, r.status) for r in snap.requests if r.kind in ("events", "validate")]
    assert requests == [("events", 400), ("validate", 200), ("events", 200)] * 3
    return first, second, store, requests


def test_a_migrated_run_output_counts_every_attempts_isolation_and_validate_requests(
    snap: FakeSnap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OUTPUT counts the whole run's requests, not only the second attempt's."""
    _, second, store, requests = migrated_run(snap, monkeypatch)
    assert second.output["isolationRequests"] == 6 == len(requests) - 3  # every request beyond each batch's first
    state = json.loads(store.records[STATE_KEY])["summary"]
    assert (state["isolationRequests"], state["validateRequests"]) == (6, 3)  # what a third attempt would start from


def test_a_checkpoint_saved_without_request_counts_resumes_from_none(
    snap: FakeSnap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint an earlier version wrote, without the request counts: they read as 0, the rest as saved."""

    def without_request_counts(state: dict[str, Any]) -> None:
        del state["summary"]["isolationRequests"], state["summary"]["validateRequests"]

    _, second, store, _ = migrated_run(snap, monkeypatch, without_request_counts)
    assert second.output["isolationRequests"] == 4  # the second attempt's own
    state = json.loads(store.records[STATE_KEY])["summary"]
    assert (state["isolationRequests"], state["validateRequests"]) == (4, 2)


def purchases(count: int) -> dict[str, Any]:
    """The input of a run that sends `count` purchases with an order id each (the ledger remembers them)."""
    events = [
        {"eventType": "PURCHASE", "email": f"buyer{i}@example.com", "price": 10, "currency": "USD",
         "transactionId": f"order-{i}", "eventTime": int(time.time()) - 60}
        for i in range(count)
    ]  # fmt: skip
    return {
        "task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
        "eventSourceUrl": "https://shop.example.com/thanks", "events": events,
    }  # fmt: skip


def test_a_run_whose_ledger_write_failed_after_sending_never_has_a_later_run_send_again(snap: FakeSnap) -> None:
    """A commit's ledger write fails (as if the run died there): the checkpoint does not count the batch finished
    yet, so the resumed attempt sends it again (Snap deduplicates by event_id; the charge repeats the first one's key)
    and records it; a later run then sends and charges nothing. The other way round (checkpoint first), the resumed
    attempt skipped the batch, the ledger never learned it, and the later run sent and charged it again."""

    class Unavailable(MemoryStore):
        broken = True  # for the whole first attempt

        async def set(self, key: str, value: Any) -> None:
            if self.broken:
                raise OSError("the store is unavailable")
            await super().set(key, value)

    actor_input = purchases(3)
    ledger, store, charging = Unavailable(), MemoryStore(), MemoryCharging()
    died = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger, store=store, charging=charging)
    assert died.returncode != 0 and died.output["error"].startswith("Stopped by an unexpected error (OSError")
    ledger.broken = False
    resumed = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger, store=store, charging=charging)
    assert resumed.returncode == 0, resumed.stderr
    # No checkpoint: what the platform counted for the run is the first attempt's, so the resent batch is paid out
    # of that credit, not charged again
    assert [(count, key) for _, count, key in charging.charges] == [(3, f"local:{PIXEL}:0-2:c0")]
    assert resumed.output["charged"] == 3 == resumed.charged_conversions
    later = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger)
    assert later.returncode == 0, later.stderr
    assert later.output["counts"] == {"duplicate": 3} and later.charged_conversions == 0
    assert sorted(snap.accepted_event_ids()) == sorted([f"order-{i}" for i in range(3)] * 2)  # the resent batch only


def test_a_refused_charge_keeps_the_rows_and_the_record_of_what_snap_accepted_and_sends_nothing_more(
    snap: FakeSnap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snap accepts the first batch; the platform refuses its charge. Its rows say `sent`, not charged; the ledger
    records it (Snap has it: a later run neither sends nor charges it again); no later batch is sent; the run fails
    naming what happened, and OUTPUT counts the batch as sent, charged 0."""
    monkeypatch.setattr(send_task, "PipelineSettings", functools.partial(PipelineSettings, batch_size=2))

    class Refusing(MemoryCharging):
        async def charge(self, event_name: str, count: int, key: str) -> int:
            raise RuntimeError("400 invalid-input: the run cannot be charged")

    actor_input = purchases(4) | {"maxConcurrency": 1}
    ledger = MemoryStore()
    refused = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger, charging=Refusing())
    assert refused.returncode != 0
    assert sorted(snap.accepted_event_ids()) == ["order-0", "order-1"]  # nothing more was sent
    assert [(row["eventIndex"], row["status"], row["charged"]) for row in refused.rows[:2]] == [
        (0, "sent", False),
        (1, "sent", False),
    ]
    assert {row["status"] for row in refused.rows[2:]} == {"failed"} and len(refused.rows) == 4
    assert refused.output["counts"] == {"sent": 2, "failed": 2} and refused.output["charged"] == 0
    message = (
        "The platform refused the charge for 2 conversions Snap accepted (RuntimeError: 400 invalid-input: the run "
        "cannot be charged); they are not charged; nothing more was sent"
    )
    assert refused.output["error"] == message and refused.final_message.startswith(message + " (2 of 4 sent: 2 failed")
    assert refused.rows[2]["error"] == f"not sent: {message}"
    later = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger)
    assert later.returncode == 0, later.stderr
    assert later.output["counts"] == {"duplicate": 2, "sent": 2} and later.charged_conversions == 2
    assert sorted(snap.accepted_event_ids()) == [f"order-{i}" for i in range(4)]  # the refused batch not sent again


def test_a_batch_whose_ledger_write_failed_once_is_counted_finished_once_a_later_commit_wrote_it(
    snap: FakeSnap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit's ledger write fails once (the store hiccups), the run's last commit writes it: the checkpoint then
    counts that batch finished with it. Resumed (resurrected), the run neither sends its events again nor calls them
    duplicates, and OUTPUT counts them as sent and charged, as they were."""
    monkeypatch.setattr(send_task, "PipelineSettings", functools.partial(PipelineSettings, batch_size=2))

    class FailsOnce(MemoryStore):
        failed = False

        async def set(self, key: str, value: Any) -> None:
            if not self.failed:
                self.failed = True
                raise OSError("the store is unavailable")
            await super().set(key, value)

    actor_input = purchases(4) | {"maxConcurrency": 1}
    ledger, store, charging = FailsOnce(), MemoryStore(), MemoryCharging()
    failed = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger, store=store, charging=charging)
    assert failed.returncode != 0 and failed.output["counts"] == {"sent": 2}
    resumed = run_in_process(actor_input, snap=snap, ppe=True, ledger=ledger, store=store, charging=charging)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(row["eventIndex"] for row in resumed.rows) == [2, 3]
    assert resumed.output["counts"] == {"sent": 4} and resumed.output["charged"] == 4 == resumed.charged_conversions
    assert sorted(snap.accepted_event_ids()) == [f"order-{i}" for i in range(4)]


class RecordingLimiter(RateLimiter):
    """The run's rate limiter on a clock that stands still, its waits recorded instead of slept: the pace it
    sets, without the test waiting it out (the limiter's own timing is pinned in test_transport.py)."""

    made: ClassVar[list[RecordingLimiter]] = []

    def __init__(self, rate: float, **_: Any) -> None:
        self.rate = rate
        self.waits: list[float] = []
        super().__init__(rate, clock=lambda: 0.0, sleep=self._wait)
        RecordingLimiter.made.append(self)

    async def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_requests_respect_max_requests_per_second(
    tmp_path: Path, snap: FakeSnap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maxRequestsPerSecond` paces every request of the run through one limiter, concurrent batches included:
    at 2 a second, each of the six requests starts half a second after the one before."""
    snap.record_bodies = False
    RecordingLimiter.made.clear()
    monkeypatch.setattr(transport, "RateLimiter", RecordingLimiter)
    with FileServer() as files:
        url = files.add("/o.jsonl", write_jsonl(tmp_path / "o.jsonl", conversions(10_000)), "application/x-ndjson")
        run = run_in_process(bulk(url, maxConcurrency=4, maxRequestsPerSecond=2), snap=snap)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(r.kind for r in snap.requests) == ["eqs"] + ["events"] * 5  # and Snap's score, for the report
    [limiter] = RecordingLimiter.made  # the score is read with its own small budget, not through this limiter
    assert limiter.rate == 2
    assert limiter.waits == [0.5, 1.0, 1.5, 2.0]  # the first at once, then one every half second
    assert run.output["counts"] == {"sent": 10_000}
    assert "read 10,000, sent 10,000" in run.status_messages[-1]
