"""get_test_event_logs and get_test_event_stats against the loopback Snap, after a real validate_events run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import CAPI_TOKEN, ActorRun
from fake_snap import FakeSnap, Fault
from in_process import run_in_process

PIXEL = "pixel-123"
URL = "https://shop.example.com/thanks"


def actor_input(task: str, **fields: Any) -> dict[str, Any]:
    return {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "eventSourceUrl": URL, "task": task} | fields


def after_validating_three(tmp_path: Path, snap: FakeSnap, task: str) -> ActorRun:
    """Validate three events (one Snap refuses) in one run, then run `task` in another."""
    events = [
        {"eventType": "PURCHASE", "email": "a@example.com", "price": 5, "transactionId": "o-1"},
        {"eventType": "sign_up", "email": "b@example.com", "eventId": "s-1"},
        {"eventType": "PAGE_VIEW", "email": "c@example.com", "eventId": "p-1"},
    ]
    snap.reject_event_ids({"p-1": "Invalid page"})
    (tmp_path / "validate").mkdir()
    run = run_in_process(actor_input("validate_events", events=events), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert {row["eventId"]: row["status"] for row in run.rows} == {"o-1": "valid", "s-1": "valid", "p-1": "invalid"}
    assert run.charged_conversions == 0
    assert snap.accepted == []
    run = run_in_process(actor_input(task), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert run.charged_conversions == 0
    return run


def test_logs_list_each_validated_event_free(tmp_path: Path, snap: FakeSnap) -> None:
    run = after_validating_three(tmp_path, snap, "get_test_event_logs")
    assert snap.requests[-1].path == f"/v3/{PIXEL}/events/validate/logs"
    rows = run.rows
    assert len(rows) == 3
    assert {row["task"] for row in rows} == {"get_test_event_logs"}
    assert {row["assetId"] for row in rows} == {PIXEL}
    assert sorted(row["status"] for row in rows) == ["INVALID", "VALID", "VALID"]
    [invalid] = [row for row in rows if row["status"] == "INVALID"]
    assert invalid["errors"] == ["Invalid page"]
    valid_names = sorted(row["eventName"] for row in rows if row["status"] == "VALID")
    assert valid_names == ["PURCHASE", "SIGN_UP"]
    assert all(row["receivedAt"] for row in rows)
    assert run.output["counts"] == {"found": 3}
    assert CAPI_TOKEN not in run.everything_written()


def test_stats_give_one_row_free(tmp_path: Path, snap: FakeSnap) -> None:
    run = after_validating_three(tmp_path, snap, "get_test_event_stats")
    assert snap.requests[-1].path == f"/v3/{PIXEL}/events/validate/stats"
    [row] = run.rows
    assert row["task"] == "get_test_event_stats"
    assert row["status"] == "SUCCESS"
    assert row["eventCountPastHour"] == 3
    assert row["latestEventTimestamp"]


def test_logs_for_an_app_use_the_snap_app_id(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process({"accessToken": CAPI_TOKEN, "snapAppId": "app-7", "task": "get_test_event_logs"}, snap=snap)
    assert run.returncode == 0, run.stderr
    assert snap.requests[-1].path == "/v3/app-7/events/validate/logs"
    assert run.rows == []
    assert run.output["rows"] == 0


def test_without_a_pixel_the_run_fails_and_names_the_field(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process({"accessToken": CAPI_TOKEN, "task": "get_test_event_stats"}, snap=snap)
    assert run.returncode != 0
    assert "pixelId" in run.output["error"]
    assert snap.requests == []


def test_demo_runs_return_a_sample_row_and_call_nothing(snap: FakeSnap) -> None:
    for task in ("get_test_event_logs", "get_test_event_stats"):
        run = run_in_process({"task": task}, snap=snap)
        assert run.returncode == 0, run.stderr
        [row] = run.rows
        assert row["demo"] is True
        assert row["task"] == task
    assert snap.requests == []


def test_a_pixel_snap_does_not_know_fails_naming_the_fields_to_check(snap: FakeSnap) -> None:
    """A 404 for the test-event tools used to say 'Snap test event stats: not found', naming neither the id nor the
    field it came from."""
    snap.add_faults("stats", Fault.status(404))
    run = run_in_process(actor_input("get_test_event_stats"), snap=snap)
    assert run.returncode == 1
    assert run.final_message == (
        f"Snap test event stats of {PIXEL}: not found (HTTP 404: Not Found). Check pixelId (or snapAppId): copy the "
        "pixel or app id from Events Manager; the token must belong to the organization that owns it."
    )
