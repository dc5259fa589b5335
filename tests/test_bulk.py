"""Bulk sources end to end: a file at a URL (CSV, JSON Lines, JSON array, gzip) or a dataset, through the
actor to the loopback Snap; what Snap received, what was charged, and what the rows and OUTPUT say."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bulk_support import FileServer, conversion, conversions, csv_text, write_jsonl
from conftest import CAPI_TOKEN, ActorRun
from fake_snap import FakeSnap, Fault
from in_process import InProcessRun, run_in_process

PIXEL = "pixel-bulk-1"


@pytest.fixture
def files() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


def bulk(**fields: Any) -> dict[str, Any]:
    return {
        "task": "send_batch_events",
        "accessToken": CAPI_TOKEN,
        "pixelId": PIXEL,
        "eventSourceUrl": "https://shop.example.com/thanks",
    } | fields


def order_ids(numbers: Any) -> list[str]:
    return sorted(f"order-{i}" for i in numbers)


def assert_consistent(run: ActorRun | InProcessRun, snap: FakeSnap, sent: int) -> None:
    """Snap, the charging log, the rows and OUTPUT agree: `sent` events, each accepted and charged once."""
    assert run.returncode == 0, run.stderr[-3000:]
    assert snap.duplicates() == []
    assert len(snap.accepted_event_ids()) == sent
    assert run.charged_conversions == sent
    sent_rows = run.rows_by_status("sent")
    assert sorted(row["eventId"] for row in sent_rows) == sorted(snap.accepted_event_ids())
    assert all(row["charged"] for row in sent_rows)
    assert run.output["counts"].get("sent", 0) == sent
    assert run.output["charged"] == sent
    assert len({row["eventIndex"] for row in run.rows}) == len(run.rows) == run.output["rows"]


def test_csv_with_field_mapping_and_malformed_rows(tmp_path: Path, snap: FakeSnap, files: FileServer) -> None:
    now = int(time.time())
    header = ["Email Address", "Order Total", "Order ID", "When", "Phone", "Notes"]
    rows: list[list[Any]] = [header]
    rows += [
        [f"Buyer{i}@Example.com", f"{10 + i}.50", f"order-{i}", now - 60, "+44 844 412 4653", "ok"] for i in range(6)
    ]
    text = csv_text(rows)
    lines = text.splitlines()
    lines.insert(3, "only,three,fields")  # line 4: wrong field count
    lines.insert(5, 'x@example.com,"12,order-x,1,2,3')  # line 6: a quote that never closes
    # lines 8-9: one record (an identifier with a line break in it would be left out as broken text)
    lines.insert(7, f'"multi,line@example.com",5,order-m,{now},,"a ""quoted""\nnote"')
    lines.insert(9, f",5,order-nopii,{now},,")  # no identifier: Snap would refuse it
    url = files.add("/export/orders.csv", "\n".join(lines) + "\n", "text/csv; charset=utf-8")
    mapping = {"Email Address": "email", "Order Total": "price", "Order ID": "transactionId", "When": "eventTime",
               "Phone": "phone"}  # fmt: skip
    run = run_in_process(bulk(eventsUrl=url, fieldMapping=mapping), snap=snap, ppe=True)

    assert_consistent(run, snap, 7)
    assert sorted(snap.accepted_event_ids()) == sorted([*order_ids(range(6)), "order-m"])
    event = next(e for e in snap.accepted if e["event_id"] == "order-0")
    assert event["custom_data"]["value"] == 10.5
    assert event["custom_data"]["currency"] == "USD"
    assert event["user_data"]["ph"] == "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"
    assert "Notes" not in json.dumps(snap.accepted)
    invalid = {row["eventIndex"]: row["error"] for row in run.rows_by_status("invalid")}
    assert invalid[2] == "line 4: has 3 fields, the header has 6"
    assert invalid[4] == "line 6: not a valid CSV record"
    assert "Insufficient PII" in invalid[8]
    assert len(invalid) == 3
    assert run.output["counts"] == {"sent": 7, "invalid": 3}
    assert "buyer0@example.com" not in run.everything_written().lower()


def test_json_lines_gzip_file_by_extension(tmp_path: Path, snap: FakeSnap, files: FileServer) -> None:
    lines = [json.dumps(conversion(i)) for i in range(2500)]
    lines[10] = '{"eventType": "PURCHASE", "email": '  # line 11: cut short
    lines[20] = "[1, 2]"  # line 21: not an object
    lines.insert(30, "")  # blank lines are not events
    url = files.add("/orders.jsonl.gz", gzip.compress("\n".join(lines).encode()), "application/gzip")
    run = run_in_process(bulk(eventsUrl=url), snap=snap, ppe=True)

    assert_consistent(run, snap, 2498)
    assert sorted(snap.accepted_event_ids()) == order_ids(i for i in range(2500) if i not in (10, 20))
    invalid = {row["eventIndex"]: row["error"] for row in run.rows_by_status("invalid")}
    assert invalid == {10: "line 11: not valid JSON", 20: "line 21 is not a JSON object"}
    assert sorted(r.event_count for r in snap.requests if r.kind == "events") == [498, 2000]


def test_json_array_with_content_encoding_gzip(tmp_path: Path, snap: FakeSnap, files: FileServer) -> None:
    events = [json.dumps(conversion(i)) for i in range(300)]
    events[5] = '{"eventType": "PURCHASE", "email": }'
    body = "[\n" + ",\n".join(events) + "\n]\n"
    url = files.add("/api/export", gzip.compress(body.encode()), "application/json", Content_Encoding="gzip")
    mapping = {"transactionId": "eventId"}  # the order id becomes the event's dedup id, not its order_id
    run = run_in_process(bulk(eventsUrl=url, fieldMapping=mapping), snap=snap, ppe=True)

    assert_consistent(run, snap, 299)
    assert "order_id" not in snap.accepted[0].get("custom_data", {})
    [bad] = run.rows_by_status("invalid")
    assert bad["eventIndex"] == 5
    assert bad["error"] == "line 7: element 5 is not valid JSON"


def test_unreachable_file_fails_the_run_with_a_clear_message(tmp_path: Path, snap: FakeSnap, files: FileServer) -> None:
    url = files.add("/exists.csv", "email\n").replace("exists", "missing")
    run = run_in_process(bulk(eventsUrl=url + "?sig=secret-sig-9"), snap=snap, ppe=True)
    assert run.returncode != 0
    assert run.output["error"] == "eventsUrl: the server answered HTTP 404"
    assert "secret-sig-9" not in run.everything_written()
    assert snap.requests == []
    assert run.charged_conversions == 0


def test_dataset_source_by_name_with_field_mapping(snap: FakeSnap) -> None:
    """In process (the dataset opened by name through the platform interface); opening a platform dataset
    through the SDK is `test_platform.test_events_from_a_platform_dataset`."""
    items = [conversion(i) for i in range(2300)]
    for item in items:
        item["Mail"] = item.pop("email")
    items[7]["eventType"] = "NOT_A_NAME"
    mapped = bulk(eventsDatasetId="crm-export", fieldMapping={"Mail": "email"})
    run = run_in_process(mapped, snap=snap, ppe=True, datasets={"crm-export": items})

    assert_consistent(run, snap, 2299)
    assert sorted(snap.accepted_event_ids()) == order_ids(i for i in range(2300) if i != 7)
    assert all("em" in event["user_data"] for event in snap.accepted)
    [bad] = run.rows_by_status("invalid")
    assert bad["eventIndex"] == 7
    assert "NOT_A_NAME" in bad["error"]


def test_bad_field_mapping_is_an_input_error(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process(bulk(eventsUrl="http://127.0.0.1:9/x.csv", fieldMapping={"E-mail": "mail"}), snap=snap)
    assert run.returncode != 0
    assert run.output["error"] == "Input field 'fieldMapping' maps 'E-mail' to 'mail', which is not an event field"
    assert snap.requests == []


def test_concurrent_batches_with_faults_lose_nothing_and_charge_exactly(
    tmp_path: Path, snap: FakeSnap, files: FileServer, retry_waits: list[float]
) -> None:
    n = 12_000  # six batches, four at a time: every fault lands on one of them
    url = files.add("/big.jsonl", write_jsonl(tmp_path / "big.jsonl", conversions(n)), "application/x-ndjson")
    snap.record_bodies = False
    snap.add_faults(
        "events",
        Fault.status(429, headers={"Retry-After": "0"}),
        Fault.status(503),
        Fault.drop(),
        Fault.delay(0.25),
        Fault.status(502),
        Fault.drop_after_accept(),
    )
    run = run_in_process(bulk(eventsUrl=url, maxConcurrency=4), snap=snap, ppe=True)

    assert run.returncode == 0, run.stderr[-3000:]
    accepted = snap.accepted_event_ids()
    assert set(accepted) == set(order_ids(range(n)))  # none lost
    resent = snap.duplicates()  # only the batch whose answer was dropped after Snap took it (Snap dedups it)
    assert len(resent) == 2000
    assert len(accepted) == n + 2000
    assert run.charged_conversions == n  # charged once each
    assert snap.pending_faults("events") == 0
    assert len(retry_waits) == 5 and retry_waits[0] == 0.0  # every fault but the delay retried; Retry-After: 0
    statuses = [r.status for r in snap.requests if r.kind == "events"]
    assert statuses.count(429) == 1
    assert statuses.count(503) == 1
    assert statuses.count(502) == 1
    assert run.output["counts"] == {"sent": n}
    assert run.output["charged"] == n
    rows = run.rows
    assert len(rows) == n
    assert sorted(row["eventIndex"] for row in rows) == list(range(n))
    assert sum(row["charged"] for row in rows) == n


def test_csv_without_a_header_row_stops_without_logging_its_data(
    tmp_path: Path, snap: FakeSnap, files: FileServer
) -> None:
    url = files.add(
        "/no-header.csv", "jane.doe@example.com,+14155550123,Jane\nx@example.com,+14155550124,X\n", "text/csv"
    )
    run = run_in_process(bulk(eventsUrl=url), snap=snap, ppe=True)
    assert run.returncode != 0
    assert "header row" in run.output["error"]
    assert snap.requests == []
    written = run.everything_written()
    assert "jane.doe@example.com" not in written
    assert "4155550123" not in written


def test_a_truncated_json_array_delivers_what_was_read_then_fails(
    tmp_path: Path, snap: FakeSnap, files: FileServer
) -> None:
    body = "[" + ",".join(json.dumps(event) for event in conversions(5))  # the closing ] never comes
    url = files.add("/cut.json", body, "application/json")
    run = run_in_process(bulk(eventsUrl=url), snap=snap, ppe=True)
    assert run.returncode != 0
    assert "not closed" in run.output["error"]
    assert sorted(snap.accepted_event_ids()) == order_ids(range(5))
    assert run.charged_conversions == 5
    assert [row["status"] for row in run.rows] == ["sent"] * 5
