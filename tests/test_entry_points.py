"""Every task as users start it: the Console form (prefills and defaults of the input schema under
the user's own values) and an API call (schema defaults only). Snap must receive exactly the
user's events, and the charges must match what Snap accepted; a prefill never reaches Snap."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CAPI_TOKEN, OAUTH_TOKEN, ROOT, ActorRun, run_actor
from fake_snap import FakeSnap, make_pixel
from in_process import InProcessRun, run_in_process

SCHEMA = json.loads((ROOT / "INPUT_SCHEMA.json").read_text())["properties"]
PIXEL = "pixel-entry-1"
ACCOUNT = "acct-entry-1"
URL = "https://shop.example.com/thanks"


def console_form(**user: Any) -> dict[str, Any]:
    """What the Console sends: each field's prefill (or default) as the form shows it, then the user's edits."""
    form = {name: spec["default"] for name, spec in SCHEMA.items() if "default" in spec}
    form |= {name: spec["prefill"] for name, spec in SCHEMA.items() if "prefill" in spec}
    return form | user


def api_call(**user: Any) -> dict[str, Any]:
    """What an API caller's run gets: the schema defaults for every field left out."""
    return {name: spec["default"] for name, spec in SCHEMA.items() if "default" in spec} | user


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def user_events() -> list[dict[str, Any]]:
    now = int(time.time()) - 60
    return [
        {"eventType": "PURCHASE", "email": "first@shop.example", "price": 12.5, "currency": "EUR",
         "transactionId": "entry-order-1", "eventTime": now},
        {"eventType": "SIGN_UP", "phone": "+44 844 412 4653", "eventId": "entry-signup-2", "eventTime": now},
    ]  # fmt: skip


SINGLE = {"eventType": "PURCHASE", "eventSourceUrl": URL, "email": "Me@Shop.Example", "price": 30,
          "currency": "USD", "transactionId": "entry-single-1"}  # fmt: skip
REAL = {"demoMode": False, "accessToken": CAPI_TOKEN, "pixelId": PIXEL}

FORMS = {"console": console_form, "api": api_call}


@pytest.fixture
def snap_with_pixels() -> Any:
    pixels = {ACCOUNT: [make_pixel(PIXEL, ACCOUNT, name="Shop"), make_pixel("pixel-entry-2", ACCOUNT)]}
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN, pixels=pixels) as server:
        yield server


def assert_no_sample_data(run: ActorRun | InProcessRun, snap: FakeSnap) -> None:
    """Nothing the schema prefills (or the demo's samples) reached Snap or the results."""
    received = json.dumps([r.json for r in snap.requests], default=str)
    for spec in SCHEMA.values():
        prefill = spec.get("prefill")
        if isinstance(prefill, str) and "@" in prefill:
            assert sha(prefill.strip().lower()) not in received
    assert "demo-order" not in received
    assert all(not row.get("demo") for row in run.rows)


@pytest.mark.parametrize("form", FORMS)
def test_send_event_sends_only_the_users_event(snap: FakeSnap, form: str) -> None:
    run = run_in_process(FORMS[form](task="send_event", **REAL, **SINGLE), snap=snap, ppe=True)
    assert run.returncode == 0, run.stdout + run.stderr
    [event] = snap.accepted
    assert event["user_data"]["em"] in (sha("me@shop.example"), [sha("me@shop.example")])
    assert event["custom_data"]["order_id"] == "entry-single-1"
    assert run.charged_conversions == 1
    assert [row["status"] for row in run.rows] == ["sent"]
    assert_no_sample_data(run, snap)


@pytest.mark.parametrize("form", FORMS)
def test_send_event_ignores_a_batch_left_in_the_form(snap: FakeSnap, form: str) -> None:
    """A form once filled for a batch still holds `events`: send_event sends its one event, and says so."""
    user = {"task": "send_event", **REAL, **SINGLE, "events": user_events()}
    run = run_in_process(FORMS[form](**user), snap=snap, ppe=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [e["custom_data"]["order_id"] for e in snap.accepted] == ["entry-single-1"]
    assert run.charged_conversions == 1
    assert "ignored: events" in run.stdout + run.stderr


@pytest.mark.parametrize("form", FORMS)
def test_send_batch_sends_exactly_the_users_events(snap: FakeSnap, form: str) -> None:
    user = {"task": "send_batch_events", **REAL, "eventSourceUrl": URL, "events": user_events()}
    run = run_in_process(FORMS[form](**user), snap=snap, ppe=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(e["event_id"] for e in snap.accepted) == ["entry-order-1", "entry-signup-2"]
    assert run.charged_conversions == 2
    assert sorted(row["status"] for row in run.rows) == ["sent", "sent"]
    assert_no_sample_data(run, snap)


@pytest.mark.parametrize("form", FORMS)
def test_validate_checks_exactly_the_users_events_for_free(snap: FakeSnap, form: str) -> None:
    user = {"task": "validate_events", **REAL, "eventSourceUrl": URL, "events": user_events()}
    run = run_in_process(FORMS[form](**user), snap=snap, ppe=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert snap.accepted == []
    assert sorted(e["event_id"] for e in snap.validated) == ["entry-order-1", "entry-signup-2"]
    assert run.charged_conversions == 0
    assert_no_sample_data(run, snap)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("task", "fields", "rows"),
    [
        ("list_pixels", {"adAccountId": ACCOUNT}, 2),
        ("get_pixel_info", {"pixelId": PIXEL}, 1),
        ("get_test_event_stats", {"pixelId": PIXEL}, 1),
        ("get_test_event_logs", {"pixelId": PIXEL}, 0),
        ("get_event_quality", {"pixelId": PIXEL}, None),
    ],
)
def test_lookup_tasks_send_no_event_and_charge_nothing(
    snap_with_pixels: FakeSnap, form: str, task: str, fields: dict[str, Any], rows: int | None
) -> None:
    token = OAUTH_TOKEN if task in ("list_pixels", "get_pixel_info") else CAPI_TOKEN
    run = run_in_process(
        FORMS[form](task=task, demoMode=False, accessToken=token, **fields), snap=snap_with_pixels, ppe=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert snap_with_pixels.accepted == [] and snap_with_pixels.validated == []
    assert all(not r.path.endswith("/events") for r in snap_with_pixels.requests)
    assert len(run.rows) == rows if rows is not None else run.rows
    assert run.charged_conversions == 0
    assert run.output["succeeded"] is True


@pytest.mark.parametrize(
    "task",
    ["send_event", "send_batch_events", "validate_events", "list_pixels", "get_pixel_info",
     "get_test_event_logs", "get_test_event_stats", "get_event_quality"],
)  # fmt: skip
def test_demo_of_every_task_needs_no_other_input(snap: FakeSnap, task: str) -> None:
    run = run_in_process({"demoMode": True, "task": task}, snap=snap, ppe=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert snap.requests == []
    assert run.rows and all(row.get("demo") is True or row["status"] == "demo" for row in run.rows)
    assert run.charged_conversions == 0
    assert run.output["statusMessage"].startswith("Demo:")


def test_demo_rows_have_the_shape_of_a_real_run(snap: FakeSnap) -> None:
    """A demo is a dress rehearsal: same columns as a real run, so an integration can be built on it."""
    demo = run_in_process({"demoMode": True, "task": "send_event", **SINGLE}, snap=snap)
    live = run_in_process({"task": "send_event", **REAL, **SINGLE}, snap=snap)
    assert demo.rows[0].keys() == live.rows[0].keys()
    assert (demo.rows[0]["status"], live.rows[0]["status"]) == ("demo", "sent")
    assert demo.rows[0]["matchKeys"] == live.rows[0]["matchKeys"]


def test_several_emails_typed_in_the_form_are_each_hashed(snap: FakeSnap) -> None:
    user = {"task": "send_event", **REAL, **SINGLE, "email": "Me@Shop.Example, other@shop.example "}
    run = run_in_process(console_form(**user), snap=snap)
    assert run.returncode == 0, run.stdout + run.stderr
    [event] = snap.accepted
    assert event["user_data"]["em"] == [sha("me@shop.example"), sha("other@shop.example")]


def test_send_event_from_the_console_end_to_end(tmp_path: Path, snap: FakeSnap) -> None:
    """The one `python -m src` run here: entry point, real storage on disk, SDK charging, terminal status message."""
    run = run_actor(tmp_path, console_form(task="send_event", **REAL, **SINGLE), snap=snap, ppe=True)
    assert run.returncode == 0, run.stdout + run.stderr
    [event] = snap.accepted
    assert event["user_data"]["em"] in (sha("me@shop.example"), [sha("me@shop.example")])
    assert event["custom_data"]["order_id"] == "entry-single-1"
    assert run.charged_conversions == 1
    assert [row["status"] for row in run.rows] == ["sent"]
    assert run.output["succeeded"] is True
    assert isinstance(run.output["statusMessage"], str) and run.output["statusMessage"]
    assert_no_sample_data(run, snap)


def test_demo_end_to_end(tmp_path: Path, snap: FakeSnap) -> None:
    """A demo started as a process: nothing reaches Snap, nothing is charged, the status message says Demo."""
    run = run_actor(tmp_path, {"demoMode": True, "task": "send_batch_events"}, snap=snap, ppe=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert snap.requests == []
    assert run.rows and all(row.get("demo") is True or row["status"] == "demo" for row in run.rows)
    assert run.charged_conversions == 0
    assert run.output["statusMessage"].startswith("Demo:")
