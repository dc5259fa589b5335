"""The platform path: `python -m src` with APIFY_IS_AT_HOME=1 against the loopback Apify API (fake_apify.py)
and the loopback Snap. Rows, charges, records and status messages are what the platform received."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from apify_client import ApifyClientAsync
from apify_client.errors import ApifyApiError
from bulk_support import FileServer, conversions, write_jsonl
from conftest import CAPI_TOKEN, OAUTH_TOKEN, WebhookReceiver
from fake_apify import FakeApify, Fault
from fake_snap import FakeSnap
from fake_snap import Fault as SnapFault
from platform_support import (
    CONVERSION_EVENT,
    EVENT_PRICES,
    PRICE_USD,
    PlatformRun,
    finish,
    run_on_platform,
    start_on_platform,
)

import src.main
from src.delivery.checkpoint import STATE_KEY
from src.ledger import LEDGER_STORE
from src.main import GC_THRESHOLDS, PUSH_BACKOFF_ENV, PUSH_TIMEOUT_S, push_backoff, tune_gc
from src.net.url_guard import ALLOW_PRIVATE_ENV

PIXEL = "pixel-123"
#: The dataset writer's pauses between push attempts (2, 5 and 10 s by default) made short: the attempts and
#: what follows them are the point, not the pauses.
SHORT_PUSH_BACKOFF = {PUSH_BACKOFF_ENV: "0.05,0.05,0.05"}


def real(**fields: Any) -> dict[str, Any]:
    return {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "eventSourceUrl": "https://shop.example.com/thanks"} | fields


def batch(n: int) -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {"eventType": "PURCHASE", "email": f"buyer{i}@example.com", "price": 10 + i, "currency": "USD",
         "transactionId": f"order-{i}", "eventTime": now - 60}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def apify() -> Iterator[FakeApify]:
    with FakeApify(event_prices=EVENT_PRICES) as server:
        yield server


def test_fake_answers_are_accepted_by_the_sdk_client_models() -> None:
    """Every answer the actor's SDK relies on, read back through apify_client's own models."""

    async def calls(fake: FakeApify) -> None:
        client = ApifyClientAsync(token=fake.token, api_url=fake.base_url, api_public_url=fake.base_url)
        run_client = client.run(fake.run_id)
        run = await run_client.get()
        assert run is not None
        assert run.pricing_info is not None and run.pricing_info.pricing_model == "PAY_PER_EVENT"
        assert run.options.max_total_charge_usd == 0.5
        await run_client.charge(CONVERSION_EVENT, count=3, idempotency_key="k-1")
        await run_client.charge(CONVERSION_EVENT, count=3, idempotency_key="k-1")  # a retry: not counted again
        updated = await run_client.update(status_message="Done.", is_status_message_terminal=True)
        assert updated.status_message == "Done." and updated.is_status_message_terminal is True
        assert updated.charged_event_counts == {CONVERSION_EVENT: 3}

        dataset = client.dataset(fake.dataset_id)
        await dataset.push_items([{"n": i, "pad": "x" * 50} for i in range(40)])  # big enough to be compressed
        await dataset.push_items({"n": 40})
        meta = await dataset.get()
        assert meta is not None and meta.item_count == 41
        page = await dataset.list_items(offset=39, limit=5)
        assert [item["n"] for item in page.items] == [39, 40] and page.total == 41

        store = client.key_value_store(fake.store_id)
        assert await store.get() is not None
        await store.set_record("OUTPUT", {"ok": True})
        await store.set_record("REPORT", "<html></html>", content_type="text/html; charset=utf-8")
        record = await store.get_record("OUTPUT")
        assert record is not None and record["value"] == {"ok": True}
        assert await store.record_exists("REPORT") and not await store.record_exists("MISSING")
        assert await store.get_record("MISSING") is None
        keys = await store.list_keys()
        assert [k.key for k in keys.items] == ["OUTPUT", "REPORT"]
        named = await client.key_value_stores().get_or_create(name="ledger")
        again = await client.key_value_stores().get_or_create(name="ledger")
        assert named.id == again.id != fake.store_id
        assert await client.dataset("no-such-dataset").get() is None

    with FakeApify(event_prices=EVENT_PRICES, max_total_charge_usd=0.5) as fake:
        asyncio.run(calls(fake))
        charges = [(c.count, c.idempotency_key, c.duplicate) for c in fake.charges]
        assert charges == [(3, "k-1", False), (3, "k-1", True)]
        assert fake.charged_count(CONVERSION_EVENT) == 3
        assert fake.status_messages[-1].terminal is True
        report = fake.record("REPORT")
        assert report is not None and report.content_type.startswith("text/html")
        assert fake.unhandled == [] and fake.auth_failures == 0


def test_fake_faults_reach_the_sdk_client_as_the_platform_would_send_them() -> None:
    """The fault switches the platform tests rely on: a 500 is retried, a lost answer was stored (the retry
    stores again), an outage fails every attempt, a delay still answers."""

    async def calls(fake: FakeApify) -> None:
        client = ApifyClientAsync(
            token=fake.token, api_url=fake.base_url, max_retries=2, min_delay_between_retries=timedelta(milliseconds=10)
        )  # apify_client's own backoff (500 ms doubling) made short: the retries are the point, not their pauses
        dataset = client.dataset(fake.dataset_id)
        fake.add_faults("dataset.push", Fault.status(500))
        await dataset.push_items([{"n": 1}])
        fake.add_faults("dataset.push", Fault.lose_answer())
        await dataset.push_items([{"n": 2}])
        fake.add_faults("dataset.push", Fault.delay(0.2))
        await dataset.push_items([{"n": 3}])
        fake.set_outage("record.put")
        with pytest.raises(ApifyApiError):
            await client.key_value_store(fake.store_id).set_record("OUTPUT", {"ok": True})
        fake.clear_outage("record.put")
        await client.key_value_store(fake.store_id).set_record("OUTPUT", {"ok": True})

    with FakeApify(event_prices=EVENT_PRICES) as fake:
        asyncio.run(calls(fake))
        assert [r.status for r in fake.calls("dataset.push")] == [500, 201, None, 201, 201]
        assert [item["n"] for item in fake.items()] == [1, 2, 2, 3]
        assert [r.status for r in fake.calls("record.put")] == [500, 500, 500, 201]
        assert fake.record_json("OUTPUT") == {"ok": True}


def test_send_batch_on_the_platform_pushes_rows_charges_and_stores_output(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    run = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(4500)), apify=apify, snap=snap)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(4500))

    rows = run.rows
    assert sorted(row["eventIndex"] for row in rows) == list(range(4500))
    assert {row["status"] for row in rows} == {"sent"}
    assert sum(row["charged"] for row in rows) == 4500
    assert sum(push.count for push in apify.pushes) == 4500

    charges = run.charges
    assert {c.event_name for c in charges} == {CONVERSION_EVENT}
    assert sum(c.count for c in charges) == 4500 == run.charged_conversions
    keys = [c.idempotency_key for c in apify.charges]
    assert None not in keys and len(set(keys)) == len(keys) == 3  # one per Snap request of <= 2,000
    assert apify.charged_usd() == pytest.approx(4500 * PRICE_USD)

    output_record = apify.record("OUTPUT")
    assert output_record is not None and output_record.content_type.startswith("application/json")
    assert run.output["counts"] == {"sent": 4500} and run.output["charged"] == 4500
    assert run.output["datasetRows"] == 4500
    assert run.output["reportUrl"] == f"{apify.base_url}/v2/key-value-stores/{apify.store_id}/records/REPORT"
    report = apify.record("REPORT")
    assert report is not None and report.content_type.startswith("text/html")

    final = run.final_status
    assert final is not None and final.message == "4,500 of 4,500 sent; 4,500 charged" and final.terminal is True
    assert apify.ws_connections == 1
    assert apify.unhandled == [] and apify.auth_failures == 0
    written = run.everything_written()
    for secret in (CAPI_TOKEN, apify.token, "buyer7@example.com"):
        assert secret not in written


def test_a_private_events_url_is_refused_on_the_platform(tmp_path: Path, snap: FakeSnap, apify: FakeApify) -> None:
    """Without the explicit setting, a platform run may not fetch loopback, private or metadata addresses."""
    with FileServer() as files:
        url = files.add("/events.jsonl", "{}\n", "application/x-ndjson")
        run = run_on_platform(
            tmp_path, real(task="send_batch_events", eventsUrl=url), apify=apify, snap=snap,
            env={ALLOW_PRIVATE_ENV: "0"},
        )  # fmt: skip
        assert files.gets == []
    assert run.returncode == 1
    assert "eventsUrl" in run.output["error"] and "private, loopback or link-local" in run.output["error"]
    assert snap.accepted_event_ids() == [] and run.charges == []


@pytest.mark.parametrize("pricing_via", ["api", "env"])
def test_max_total_charge_caps_what_is_sent(tmp_path: Path, snap: FakeSnap, pricing_via: str) -> None:
    """$0.05 at $0.01 a conversion: 5 are sent and billed, the other 7 are never sent (pricing from the run
    object, or from the environment variables the platform also sets)."""
    with FakeApify(event_prices=EVENT_PRICES, max_total_charge_usd=0.05, pricing_via=pricing_via) as apify:
        run = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(12)), apify=apify, snap=snap)
        assert run.returncode == 0, run.stderr[-3000:]
        assert len(snap.accepted_event_ids()) == 5
        assert run.charged_conversions == 5
        assert apify.charged_usd() == pytest.approx(0.05)
        assert len(run.rows_by_status("sent")) == 5 and all(row["charged"] for row in run.rows_by_status("sent"))
        skipped = run.rows_by_status("skipped")
        assert len(skipped) == 7 and all("maximum charge" in row["error"] for row in skipped)
        sent_ids = {row["eventId"] for row in run.rows_by_status("sent")}
        assert sent_ids == set(snap.accepted_event_ids())
        assert run.output["counts"] == {"sent": 5, "skipped": 7} and run.output["charged"] == 5


def test_events_from_a_platform_dataset(tmp_path: Path, snap: FakeSnap, apify: FakeApify) -> None:
    """`eventsDatasetId` on the platform: items paged from the API, each delivered and charged once."""
    source = apify.add_dataset(batch(30), name="my-conversions")
    run = run_on_platform(tmp_path, real(task="send_batch_events", eventsDatasetId=source), apify=apify, snap=snap)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(30))
    assert sorted(row["eventIndex"] for row in run.rows) == list(range(30))
    assert run.charged_conversions == 30
    assert apify.calls("dataset.items")


def test_a_dataset_push_answered_500_once_is_retried_without_duplicate_rows(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    apify.add_faults("dataset.push", Fault.status(500))
    run = run_on_platform(
        tmp_path, real(task="send_batch_events", events=batch(2500)), apify=apify, snap=snap, env=SHORT_PUSH_BACKOFF
    )
    assert run.returncode == 0, run.stderr[-3000:]
    statuses = [r.status for r in apify.calls("dataset.push")]
    assert statuses[0] == 500 and statuses[1:] == [201] * (len(statuses) - 1)
    assert sorted(row["eventIndex"] for row in run.rows) == list(range(2500))
    assert run.charged_conversions == 2500 == len(snap.accepted_event_ids())
    assert run.output["datasetRows"] == 2500


def test_a_dataset_push_whose_answer_is_lost_does_not_duplicate_rows(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    apify.add_faults("dataset.push", Fault.lose_answer())
    run = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(2500)), apify=apify, snap=snap)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.output["datasetRows"] == 2500
    assert len(run.rows) == run.output["datasetRows"]


# ----- platform events and signals: a run held by Snap so that they land mid-run -----

#: Conversions in a held export: five batches, so that even a batch already waiting for its turn when the
#: event lands leaves some never sent.
HELD_EVENTS = 10_000
#: How long Snap keeps holding the batch in flight after the test sent the platform event or signal: time for
#: the run to take it in before the batch comes back.
LANDING_S = 0.3


def held_export(tmp_path: Path, files: FileServer, snap: FakeSnap, gate: threading.Event) -> dict[str, Any]:
    """`HELD_EVENTS` conversions from a JSON Lines URL, one batch in flight; Snap answers the first request at
    once and holds every later one until the test sets `gate` (see `land`)."""
    snap.add_faults("events", SnapFault.delay(0), *[SnapFault.hold(gate)] * 4)
    url = files.add(
        "/events.jsonl", write_jsonl(tmp_path / "events.jsonl", conversions(HELD_EVENTS)), "application/x-ndjson"
    )
    return real(task="send_batch_events", eventsUrl=url, maxConcurrency=1)


def land(gate: threading.Event) -> None:
    """The event or signal was sent while Snap held the second batch: give the run a moment to take it in,
    then let Snap answer."""
    time.sleep(LANDING_S)
    gate.set()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformRun, FakeSnap]]:
    """A run that gets the platform's MIGRATING event after its first charge, pauses, is killed (the old
    container is gone) and starts again on the same run and storages."""
    tmp_path = tmp_path_factory.mktemp("migrated")
    gate = threading.Event()
    with (
        FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN) as snap,
        FakeApify(event_prices=EVENT_PRICES) as apify,
        FileServer() as files,
    ):
        process = start_on_platform(tmp_path, held_export(tmp_path, files, snap, gate), apify=apify, snap=snap)
        try:
            assert apify.wait_for(lambda fake: fake.charges), (tmp_path / "actor.log").read_text()[-3000:]
            assert apify.send_event("migrating", {"timeRemainingSecs": 30}) == 1
            land(gate)
            assert apify.wait_for(lambda fake: "paused" in str(fake.final_status))
        finally:
            gate.set()
            process.kill()
            process.wait()
        assert 0 < len(snap.accepted_event_ids()) < HELD_EVENTS
        yield finish(start_on_platform(tmp_path, None, apify=apify, snap=snap), tmp_path, apify), snap


@pytest.mark.xdist_group("migrated")
def test_migration_resumes_without_resending_or_charging_twice(migrated: tuple[PlatformRun, FakeSnap]) -> None:
    run, snap = migrated
    n = HELD_EVENTS
    assert run.returncode == 0, run.stdout[-3000:]
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(n))
    assert snap.duplicates() == []
    assert sorted(row["eventIndex"] for row in run.rows) == list(range(n))
    keys = [c.idempotency_key for c in run.apify.charges]
    assert len(set(keys)) == len(keys) and run.charged_conversions == n
    assert run.output["counts"] == {"sent": n} and run.output["charged"] == n


@pytest.mark.xdist_group("migrated")
def test_migrated_run_output_counts_every_dataset_row(migrated: tuple[PlatformRun, FakeSnap]) -> None:
    run, _ = migrated
    assert run.output["datasetRows"] == len(run.rows) == HELD_EVENTS


@pytest.fixture(scope="module")
def aborted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformRun, FakeSnap, int]]:
    """A run that gets the platform's ABORTING event after its first charge; also how many Snap had then."""
    tmp_path = tmp_path_factory.mktemp("aborted")
    gate = threading.Event()
    with (
        FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN) as snap,
        FakeApify(event_prices=EVENT_PRICES) as apify,
        FileServer() as files,
    ):
        process = start_on_platform(tmp_path, held_export(tmp_path, files, snap, gate), apify=apify, snap=snap)
        try:
            assert apify.wait_for(lambda fake: fake.charges), (tmp_path / "actor.log").read_text()[-3000:]
            assert apify.send_event("aborting") == 1
            land(gate)
        finally:
            gate.set()
        yield finish(process, tmp_path, apify, timeout=60), snap, HELD_EVENTS


@pytest.mark.xdist_group("aborted")
def test_abort_finishes_the_batches_in_flight_and_reads_no_more(aborted: tuple[PlatformRun, FakeSnap, int]) -> None:
    run, snap, total = aborted
    assert run.returncode == 1, run.stdout[-3000:]
    accepted = len(snap.accepted_event_ids())
    assert 0 < accepted < total
    assert len(run.rows) == len(run.rows_by_status("sent")) == accepted == run.charged_conversions
    assert run.output["interrupted"] and run.output["counts"] == {"sent": accepted}


@pytest.mark.xdist_group("aborted")
def test_abort_leaves_a_terminal_status_that_says_so(aborted: tuple[PlatformRun, FakeSnap, int]) -> None:
    final = aborted[0].final_status
    assert final is not None and final.message is not None
    assert not final.message.startswith("Done.") and "abort" in final.message
    assert final.terminal is True


def test_sigterm_stops_gracefully_keeping_the_record_of_what_was_charged(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    gate = threading.Event()
    with FileServer() as files:
        process = start_on_platform(tmp_path, held_export(tmp_path, files, snap, gate), apify=apify, snap=snap)
        try:
            assert apify.wait_for(lambda fake: fake.charges), (tmp_path / "actor.log").read_text()[-3000:]
            process.send_signal(signal.SIGTERM)
            land(gate)
        finally:
            gate.set()
        run = finish(process, tmp_path, apify, timeout=60)
    assert 0 < run.charged_conversions < HELD_EVENTS
    assert len(run.rows_by_status("sent")) == run.charged_conversions == len(snap.accepted_event_ids())
    assert run.output["charged"] == run.charged_conversions


def test_rows_of_a_rejected_push_are_stored_when_the_run_resumes(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """The first push is refused (400, as a dataset schema does with one bad item): the run fails; the platform
    resurrects it with the dataset healthy. Every event sent and charged must end with exactly one row."""
    apify.add_faults("dataset.push", Fault.status(400))
    first = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(3000)), apify=apify, snap=snap)
    assert first.returncode != 0
    resumed = run_on_platform(tmp_path, None, apify=apify, snap=snap)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert snap.duplicates() == [] and resumed.charged_conversions == 3000 == len(snap.accepted_event_ids())
    assert sorted(row["eventIndex"] for row in resumed.rows) == list(range(3000))


def test_a_refused_charge_keeps_the_rows_and_counts_of_events_snap_accepted(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """Snap accepts all 5 events; the platform's charge call for them is refused (a 400, which the SDK's client does
    not retry; a 5xx outage outlasting its retries ends the same way). The run fails, telling the truth: the 5 rows
    say `sent`, not charged, and OUTPUT and the status message count them (the batch used to be dropped: no row,
    "0 of 0 sent")."""
    apify.add_faults("charge", Fault.status(400))
    run = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap)
    assert len(snap.accepted_event_ids()) == 5 and run.charged_conversions == 0
    assert run.returncode != 0
    assert sorted(row["eventIndex"] for row in run.rows) == list(range(5))
    assert {row["status"] for row in run.rows} == {"sent"} and not any(row["charged"] for row in run.rows)
    assert run.output["counts"] == {"sent": 5} and run.output["charged"] == 0
    final = run.final_status
    assert final is not None and final.terminal is True
    assert str(final.message).startswith("The platform refused the charge for 5 conversions Snap accepted (")
    assert str(final.message).endswith("; they are not charged; nothing more was sent (5 of 5 sent; 0 charged)")
    assert apify.token not in run.everything_written()


def test_a_run_killed_before_its_first_checkpoint_is_charged_once_when_resurrected(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """Snap accepts the 5 events and the platform charges them; the process dies while their rows are being pushed,
    before any checkpoint. Resurrected days later (the platform no longer remembers the first attempt's idempotency
    keys), the run's charged count can only be its own: the resent batch is paid out of that credit, not charged
    again. (The push held at the kill lands after it, so the resent rows stand beside it in the dataset: which rows
    an attempt that left no checkpoint stored is the dataset writer's to find out.)"""
    apify.add_faults("dataset.push", Fault.delay(3))
    process = start_on_platform(tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap)
    try:
        assert apify.wait_for(lambda fake: fake.charges, timeout=20), (tmp_path / "actor.log").read_text()[-2000:]
        time.sleep(0.3)
    finally:
        process.kill()
        process.wait()
    assert apify.wait_for(lambda fake: fake.items(), timeout=10)  # the held push lands after the kill
    assert apify.record_json(STATE_KEY) is None
    apify.forget_idempotency_keys()
    run = finish(start_on_platform(tmp_path, None, apify=apify, snap=snap), tmp_path, apify)
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(set(snap.accepted_event_ids())) == 5
    assert run.charged_conversions == 5 == run.output["charged"]
    assert run.output["counts"] == {"sent": 5}
    assert "5 conversions were charged by an earlier attempt" in run.stdout


def test_a_capped_run_killed_before_its_first_checkpoint_resumes_with_its_charged_events_sent(
    tmp_path: Path, snap: FakeSnap
) -> None:
    """Max total charge $0.05, 5 events at $0.01: Snap accepts the 5, the platform charges them (the cap is used up),
    the first row push is answered 500 and the process is killed during the writer's pause, before any checkpoint.
    The restarted attempt counts the platform's 5 as its credit: it sends them again against it (Snap deduplicates),
    5 `sent` rows, charged 5, and the run succeeds (without the credit they were `skipped` at the cap)."""
    with FakeApify(event_prices=EVENT_PRICES, max_total_charge_usd=0.05) as apify:
        apify.add_faults("dataset.push", Fault.status(500))
        process = start_on_platform(
            tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap,
            env={PUSH_BACKOFF_ENV: "20"},
        )  # fmt: skip
        try:
            assert apify.wait_for(lambda fake: fake.calls("dataset.push"), timeout=20)
            time.sleep(0.5)
        finally:
            process.kill()
            process.wait()
        assert apify.record_json(STATE_KEY) is None and apify.charged_count(CONVERSION_EVENT) == 5
        run = finish(start_on_platform(tmp_path, None, apify=apify, snap=snap), tmp_path, apify)
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.charged_conversions == 5
    assert run.rows_by_status("skipped") == []
    assert run.output["charged"] == 5 and run.output["counts"] == {"sent": 5}


# ----- across runs: the ledger in a named key-value store of the user's account -----


def test_a_scheduled_rerun_on_the_platform_sends_and_charges_nothing(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    first = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.charged_conversions == 5
    assert [c.query.get("name") for c in apify.calls("kv.create")] == [LEDGER_STORE]
    ledger_id = apify.store_id_by_name(LEDGER_STORE)
    assert ledger_id is not None and ledger_id != apify.store_id

    apify.run_id = "fake-run-2"  # the next day's scheduled run: a new run of the same account
    second = run_on_platform(tmp_path, None, apify=apify, snap=snap)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(snap.accepted_event_ids()) == 5  # nothing new reached Snap
    assert second.charged_conversions == 5  # the account's total: the rerun charged nothing
    new_rows = apify.items()[5:]
    assert [row["status"] for row in new_rows] == ["duplicate"] * 5
    assert {row["rowId"] for row in new_rows} == {f"fake-run-2:{i}" for i in range(5)}
    final = second.final_status
    assert final is not None and final.terminal is True
    assert final.message == "0 of 5 sent: 5 already sent earlier; 0 charged"
    ledger = "\n".join(r.value.decode() for r in apify.records(ledger_id).values())
    assert "order-" not in ledger and CAPI_TOKEN not in ledger and "buyer" not in ledger


def test_an_expired_ledger_chunk_is_deleted_from_the_platforms_store(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """The ledger finds its chunks by listing the platform's store, and the SDK's delete reaches it: the record of a
    chunk 40 days old is gone after the next run, never read."""
    first = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap)
    assert first.returncode == 0, first.stderr[-3000:]
    ledger_id = apify.store_id_by_name(LEDGER_STORE)
    [key] = apify.records(ledger_id)
    prefix, day, mark, number = key.rsplit("-", 3)
    aged = f"{prefix}-d{int(day[1:]) - 40}-{mark}-{number}"  # as if the first run was 40 days ago
    chunk = apify.record_json(key, ledger_id)
    apify.put_record(aged, json.dumps(chunk | {"day": chunk["day"] - 40}).encode(), "application/json", ledger_id)
    apify.delete_record(key, ledger_id)

    apify.run_id = "fake-run-2"
    second = run_on_platform(tmp_path, None, apify=apify, snap=snap)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.charged_conversions == 10  # the account's total: forgotten, so sent again
    assert [c.path.rsplit("/", 1)[-1] for c in apify.calls("record.delete")] == [aged]
    assert aged not in [c.path.rsplit("/", 1)[-1] for c in apify.calls("record.get")]
    [kept] = apify.records(ledger_id)
    assert kept.startswith(f"{prefix}-{day}-") and apify.record_json(kept, ledger_id)["done"] is True


def test_after_start_up_the_collector_leaves_start_ups_objects_alone() -> None:
    """The SDK's and pydantic's objects are frozen out of collections, and the youngest generation is collected
    less often than Python's default (700 allocations)."""
    saved = gc.get_threshold()
    survivor = [object()]  # made before: frozen with the rest of start-up
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] > saved[0]
        assert gc.get_freeze_count() > len(survivor)
        assert not any(item is survivor for item in gc.get_objects())  # frozen objects are not tracked any more
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)


# ----- the dataset down for the whole run -----


def test_the_dataset_writers_pauses_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """2, 5 and 10 s between push attempts unless `SNAP_ACTOR_DATASET_PUSH_BACKOFF_S` says otherwise."""

    def pauses() -> tuple[float, ...]:
        spec = importlib.util.spec_from_file_location("src._main_settings", src.main.__file__)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # main.py read afresh, under the environment of the moment
        return tuple(module.PUSH_BACKOFF_S)

    monkeypatch.delenv(PUSH_BACKOFF_ENV, raising=False)
    assert pauses() == (2.0, 5.0, 10.0)
    monkeypatch.setenv(PUSH_BACKOFF_ENV, "0.05,0.05,0.05")
    assert pauses() == (0.05, 0.05, 0.05)
    for bad in ("", "soon", "1,,2", "1,-1", "nan", "5,1e9"):  # a bad setting never stops a run: the defaults
        assert push_backoff(bad) == (2.0, 5.0, 10.0), bad
    assert push_backoff("0,1.5") == (0.0, 1.5)


def test_a_dataset_outage_stops_the_run_with_the_record_of_what_was_sent_and_charged(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """Every push fails: the run takes no new events, fails with a clear message within a few minutes, and
    OUTPUT plus the checkpoint say what Snap accepted and what was charged; once the dataset is back, the
    resurrected run stores those rows and sends the rest, nothing twice."""
    n = 8000
    apify.set_outage("dataset.push")
    first = run_on_platform(
        tmp_path, real(task="send_batch_events", events=batch(n), maxConcurrency=2), apify=apify, snap=snap,
        env=SHORT_PUSH_BACKOFF,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr[-3000:]
    assert [r.status for r in apify.calls("dataset.push")] == [500] * 4  # the writer's 4 attempts, then it gave up
    accepted = len(snap.accepted_event_ids())
    assert 0 < accepted < n  # stopped taking events
    assert first.charged_conversions == accepted == first.output["charged"]
    assert first.output["counts"] == {"sent": accepted} and first.output["rowsNotStored"] == accepted
    assert first.output["datasetRows"] == 0 == len(first.rows)
    assert "dataset did not store rows" in first.output["error"]
    final = first.final_status
    assert final is not None and final.terminal is True and "dataset did not store rows" in str(final.message)
    progress = apify.record_json("BULK_PROGRESS")
    assert len(progress["unstored"]) == accepted

    apify.clear_outage("dataset.push")
    resumed = run_on_platform(tmp_path, None, apify=apify, snap=snap, env=SHORT_PUSH_BACKOFF)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert snap.duplicates() == [] and len(snap.accepted_event_ids()) == n
    assert resumed.charged_conversions == n
    assert sorted(row["eventIndex"] for row in resumed.rows) == list(range(n))
    assert resumed.output["datasetRows"] == n and resumed.output["rowsNotStored"] == 0


def test_the_webhook_links_the_runs_dataset_on_the_platforms_own_host(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify, webhook: WebhookReceiver
) -> None:
    run = run_on_platform(tmp_path, real(task="send_batch_events", events=batch(3), webhookUrl=webhook.url),
                          apify=apify, snap=snap)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    [body] = webhook.bodies
    assert body["datasetItemsUrl"] == f"{apify.base_url}/v2/datasets/{apify.dataset_id}/items?format=json"
    assert body["summary"]["counts"] == {"sent": 3} and body["summary"]["datasetRows"] == 3
    assert CAPI_TOKEN not in json.dumps(body)


def test_a_status_message_the_platform_refuses_is_logged_and_the_run_succeeds(tmp_path: Path, snap: FakeSnap) -> None:
    """While Snap takes a few seconds over the batch, one update of the run's status line is refused (a 400, which
    the client does not retry; an outage outlasting its retries ends the same way). A status line is cosmetic: the
    run goes on and, Snap having accepted and the platform charged every event, succeeds. (The refusal killed the
    pipeline's ticker and failed the run: "Stopped by an unexpected error", though all was delivered and billed.)"""
    gate = threading.Event()
    snap.add_faults("events", SnapFault.hold(gate))
    with FakeApify(event_prices=EVENT_PRICES) as apify:
        process = start_on_platform(tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap)
        try:
            assert apify.wait_for(lambda fake: fake.status_messages, timeout=20)
            apify.add_faults("run.update", Fault.status(400))  # the next update of the status line
            assert apify.wait_for(lambda fake: fake.pending_faults("run.update") == 0, timeout=20)
        finally:
            gate.set()
        run = finish(process, tmp_path, apify, timeout=60)
    assert len(snap.accepted_event_ids()) == 5 == run.charged_conversions
    assert run.output["counts"] == {"sent": 5} and run.output["error"] is None
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.final_status is not None and run.final_status.message == "5 of 5 sent; 5 charged"
    assert "Could not update the run's status message (" in run.stdout + run.stderr


def test_a_lost_push_answer_whose_check_fails_once_is_checked_again_not_pushed_twice(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """The push's answer is lost (the rows were stored) and the writer's check of whether they landed is answered
    500 once: a failed check is no "no", it is asked again (it was taken for "not stored": 10 rows for 5 events)."""
    apify.add_faults("dataset.push", Fault.lose_answer())
    apify.add_faults("dataset.items", Fault.status(500))
    run = run_on_platform(
        tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap, env=SHORT_PUSH_BACKOFF
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert [r.status for r in apify.calls("dataset.push")] == [None]  # pushed once
    assert run.charged_conversions == 5 == run.output["charged"]
    assert len(run.rows) == 5 == run.output["datasetRows"]
    assert len({row["rowId"] for row in run.rows}) == 5


def test_a_push_that_times_out_while_the_api_still_stores_it_is_not_pushed_twice(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """The API takes 21 s over a push and stores it; the writer gives up at 20 s. Its rows are looked for until
    `PUSH_SETTLE_S` after the push was sent, so the late rows are found (checked at once, nothing was there yet
    and the rows were pushed again: 10 rows). About 25 s of test."""
    apify.add_faults("dataset.push", Fault.delay(PUSH_TIMEOUT_S + 1))
    run = run_on_platform(
        tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap, env=SHORT_PUSH_BACKOFF
    )
    assert apify.wait_for(lambda fake: len(fake.items()) >= 5, timeout=10)  # the slow push's handler has finished
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(apify.calls("dataset.push")) == 1
    assert len(run.rows) == run.output["datasetRows"] == 5
    assert len({row["rowId"] for row in run.rows}) == 5


def test_an_abort_during_start_up_is_honoured_once_the_run_is_ready(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """The user aborts while the run is still opening the ledger's store, before the pipeline exists: the abort is
    remembered and the run sends and charges nothing (it was lost: all 5 were sent and charged, and the run
    succeeded)."""
    apify.add_faults("kv.create", Fault.delay(3))  # opening the ledger's store `snapchat-capi-ledger`
    process = start_on_platform(tmp_path, real(task="send_batch_events", events=batch(5)), apify=apify, snap=snap)
    assert apify.wait_for(lambda fake: fake.calls("kv.create"), timeout=20), (tmp_path / "actor.log").read_text()
    assert apify.send_event("aborting") == 1
    run = finish(process, tmp_path, apify, timeout=60)
    assert snap.accepted_event_ids() == [] and run.charged_conversions == 0
    assert run.rows == [] and run.output.get("interrupted")
    final = run.final_status
    assert final is not None and final.terminal is True and "abort" in str(final.message)


def test_an_abort_while_snap_asks_to_retry_later_ends_the_run_and_leaves_the_batch_to_a_resurrected_run(
    tmp_path: Path, snap: FakeSnap, apify: FakeApify
) -> None:
    """Snap answers 429 with `Retry-After: 120` and the user aborts (the platform force-stops a graceful abort after
    about 30 s): the wait ends at once, the batch is left unfinished (no row, nothing charged), OUTPUT and a terminal
    status are saved (the run slept out the 120 s and was killed with neither). Resurrected, the run sends and
    charges the 5 once."""
    snap.add_faults("events", SnapFault.status(429, headers={"Retry-After": "120"}))
    actor_input = real(task="send_batch_events", events=batch(5))
    process = start_on_platform(tmp_path, actor_input, apify=apify, snap=snap)
    try:
        assert apify.wait_for(lambda fake: any(r.kind == "events" for r in snap.requests), timeout=20)
        time.sleep(0.5)  # the 429 is in, the Retry-After pause has begun
        assert apify.send_event("aborting") == 1
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    finally:
        if process.poll() is None:  # what the platform does to an aborting run that does not end
            process.kill()
        process.wait()
    run = finish(process, tmp_path, apify)
    assert snap.accepted_event_ids() == [] and run.charged_conversions == 0
    assert run.rows == [] and run.output.get("interrupted")
    final = run.final_status
    assert final is not None and final.terminal is True and "abort" in str(final.message)

    resurrected = run_on_platform(tmp_path, None, apify=apify, snap=snap)
    assert resurrected.returncode == 0, resurrected.stdout[-3000:]
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(5))
    assert resurrected.charged_conversions == 5
    assert sorted(row["eventIndex"] for row in resurrected.rows) == list(range(5))
    assert resurrected.output["counts"] == {"sent": 5}
