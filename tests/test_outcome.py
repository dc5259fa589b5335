"""The run's outcome: a run that delivered nothing fails and says why; partial success succeeds with counts.

Schedules, integrations and run-failure webhooks see only the run's status and its last status
message, so these tests read exactly those: the exit code, the terminal status message and OUTPUT.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CAPI_TOKEN, OAUTH_TOKEN, run_actor
from fake_snap import FakeSnap
from in_process import run_in_process
from memory_platform import MemoryStore

from src.main import _where
from src.results.summary import Summary
from src.results.verdict import Verdict, conversion_verdict, lookup_verdict

PIXEL = "pixel-outcome"
REAL = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "eventSourceUrl": "https://shop.example.com/thanks"}
OLD = int(time.time()) - 60 * 24 * 3600


def summary(demo: bool = False, **counts: int) -> Summary:
    result = Summary(task="send_batch_events", demo=demo)
    result.counts.update(counts)
    return result


# ----- the verdict, in-process -----


def test_duplicates_from_earlier_runs_are_not_failures() -> None:
    assert conversion_verdict(summary(duplicate=5), validate=False) == Verdict(
        True, "0 of 5 sent: 5 already sent earlier; 0 charged"
    )
    mixed = summary(sent=2, duplicate=3, failed=1)
    mixed.charged = 2
    mixed.errors.update({"HTTP 500": 1})
    assert conversion_verdict(mixed, validate=False) == Verdict(
        True, "2 of 6 sent: 1 failed (HTTP 500); 3 already sent earlier; 2 charged"
    )
    only_invalid = summary(invalid=1)
    only_invalid.errors.update({"bad": 1})
    assert conversion_verdict(only_invalid, validate=False).succeeded is False


def test_nothing_accepted_fails_with_counts_and_top_reasons() -> None:
    done = summary(invalid=3, failed=1)
    done.errors.update({"eventTime is older than Snap's 37-day window": 3, "HTTP 500": 1})
    verdict = conversion_verdict(done, validate=False)
    assert verdict == Verdict(
        False, "0 of 4 sent: 3 invalid, 1 failed (eventTime is older than Snap's 37-day window x3; HTTP 500); 0 charged"
    )


def test_partial_success_succeeds_and_still_names_the_problems() -> None:
    done = summary(sent=2, skipped=1)
    done.charged = 2
    done.errors["opted out"] = 1
    assert conversion_verdict(done, validate=False) == Verdict(True, "2 of 3 sent: 1 skipped (opted out); 2 charged")


def test_validate_counts_valid_events_and_charges_nothing() -> None:
    assert conversion_verdict(summary(valid=5), validate=True) == Verdict(True, "5 of 5 valid")
    assert not conversion_verdict(summary(invalid=5), validate=True).succeeded


def test_an_empty_source_fails() -> None:
    verdict = conversion_verdict(summary(), validate=False)
    assert not verdict.succeeded and "held no events" in verdict.message


def test_an_aborted_run_says_so_even_after_some_were_sent() -> None:
    done = summary(sent=10)
    done.interrupted = "the run was aborted; events not reached were not sent"
    verdict = conversion_verdict(done, validate=False)
    assert not verdict.succeeded
    assert verdict.message.endswith("Stopped early: the run was aborted; events not reached were not sent")
    assert verdict.message.startswith("10 of 10 sent")


def test_a_task_error_after_some_events_keeps_their_counts() -> None:
    verdict = conversion_verdict(summary(sent=3, failed=2), validate=False, failure="Snap refused the access token")
    assert verdict == Verdict(False, "Snap refused the access token (3 of 5 sent: 2 failed; 0 charged)")


def one_purchase() -> dict[str, Any]:
    """The input of a run that sends one purchase with an order id (the ledger remembers it), and an email."""
    event = {"eventType": "PURCHASE", "email": "buyer@example.com", "price": 10, "currency": "USD",
             "transactionId": "order-1", "eventTime": int(time.time()) - 600}  # fmt: skip
    return REAL | {"task": "send_batch_events", "pixelId": "pixel-1", "events": [event]}


def test_an_unexpected_error_is_logged_with_where_it_came_from_and_no_secret(snap: FakeSnap) -> None:
    """A bug or a store failing for good: the log names the code it came through (file, line, function) for a
    developer to find it, and neither the error's token nor an event's email."""

    class Broken(MemoryStore):
        async def set(self, key: str, value: Any) -> None:
            raise OSError("PUT https://api.apify.com/v2/key-value-stores/x/records/y?token=apify_api_SECRET refused")

    run = run_in_process(one_purchase(), snap=snap, ppe=True, ledger=Broken())
    assert run.returncode != 0
    [logged] = [line for line in run.stderr.splitlines() if "Stopped by an unexpected error" in line]
    assert " at tests/test_outcome.py:" in logged
    assert " in set <- src/ledger.py:" in logged and " in _write <- src/ledger.py:" in logged
    assert "apify_api_SECRET" not in run.stderr and "buyer@example.com" not in run.stderr


def test_an_order_on_several_lines_that_snap_refuses_fails_the_run_and_every_line_says_why(snap: FakeSnap) -> None:
    """An export with one order on three lines (one transaction id): the lines after the first are not sent while
    Snap has not answered for it. Snap refuses it, so none was sent: the run fails, each line is `invalid` with
    Snap's reason, and nothing is charged. (The two repeats were counted "already sent earlier" and the run
    succeeded.) Accepted, the same export sends the order once and the repeats are duplicates."""
    actor_input = one_purchase()
    actor_input["events"] = actor_input["events"] * 3
    snap.reject_event_ids({"order-1": "Invalid order"})
    refused = run_in_process(actor_input, snap=snap, ppe=True)
    assert refused.returncode != 0
    assert snap.accepted_event_ids() == [] and refused.charged_conversions == 0
    assert [(row["eventIndex"], row["status"], row["charged"]) for row in refused.rows] == [
        (0, "invalid", False), (1, "invalid", False), (2, "invalid", False)
    ]  # fmt: skip
    assert len({row["error"] for row in refused.rows}) == 1 and "Invalid order" in refused.rows[0]["error"]
    assert refused.output["counts"] == {"invalid": 3}
    assert refused.final_message.startswith("0 of 3 sent: 3 invalid (Snap rejected the event: Invalid order")
    assert refused.final_message.endswith(" x3); 0 charged")

    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN) as accepting:
        sent = run_in_process(actor_input, snap=accepting, ppe=True)
    assert sent.returncode == 0, sent.stderr
    assert accepting.accepted_event_ids() == ["order-1"] and sent.charged_conversions == 1
    assert [row["status"] for row in sent.rows] == ["sent", "duplicate", "duplicate"]
    assert sent.final_message == "1 of 3 sent: 2 already sent earlier; 1 charged"


def test_a_ledger_that_keeps_changing_fails_the_run_with_what_to_do_and_sends_nothing(snap: FakeSnap) -> None:
    """The ledger's records keep being taken over while the run reads them (`LedgerError`): the run fails with the
    ledger's own message (not as an unexpected error), nothing is sent or charged, and every event has a row that
    says why it was not sent."""

    class Ghost(MemoryStore):
        listings = 0

        async def keys(self, prefix: str) -> list[str]:  # a new chunk at every listing, gone when read
            self.listings += 1
            return [*await super().keys(prefix), f"{prefix}-d{int(time.time() // 86_400)}-{self.listings:016x}-0"]

    actor_input = one_purchase()
    actor_input["events"] = [actor_input["events"][0] | {"transactionId": f"order-{i}"} for i in range(3)]
    run = run_in_process(actor_input, snap=snap, ppe=True, ledger=Ghost())
    assert run.returncode != 0
    assert run.output["error"].startswith("The record of events sent before (snapchat-capi-ledger) kept changing")
    assert run.output["error"].endswith("Nothing more was sent; run again.")
    assert snap.accepted_event_ids() == [] and run.charged_conversions == 0
    assert [(row["eventIndex"], row["status"]) for row in run.rows] == [(i, "failed") for i in range(3)]
    assert {row["error"] for row in run.rows} == {f"not sent: {run.output['error']}"}
    assert run.output["counts"] == {"failed": 3}
    assert run.final_message.startswith(run.output["error"]) and run.final_message.endswith("; 0 charged)")


def test_where_an_error_came_from_names_a_librarys_file_by_its_last_two_parts() -> None:
    namespace: dict[str, Any] = {}
    exec(compile("def boom():\n    raise ValueError('x')\n", "/elsewhere/site-packages/lib/mod.py", "exec"), namespace)
    try:
        namespace["boom"]()
    except ValueError as error:
        where = _where(error)
    assert where.startswith("lib/mod.py:2 in boom <- tests/test_outcome.py:")


def test_demo_says_nothing_was_sent_and_how_to_send() -> None:
    prepared = summary(demo=True)
    prepared.counts["demo"] = 3
    verdict = conversion_verdict(prepared, validate=False)
    assert verdict.succeeded
    assert verdict.message.startswith("Demo: 3 of 3 prepared; nothing was sent to Snap or charged")
    assert "demoMode to false" in verdict.message


def test_lookups_succeed_with_what_was_found() -> None:
    found = Summary(task="list_pixels", demo=False)
    found.counts["found"] = 3
    assert lookup_verdict(found, noun="pixel") == Verdict(True, "list_pixels: 3 pixels")
    assert lookup_verdict(found, noun="pixel", failure="Snap refused the token") == Verdict(
        False, "Snap refused the token"
    )


def test_long_reasons_are_cut_in_the_status_line() -> None:
    done = summary(invalid=1)
    done.errors["x" * 500] = 1
    message = conversion_verdict(done, validate=False).message
    assert len(message) < 200 and "…" in message


# ----- end to end: what a schedule or integration sees -----


def test_send_event_that_snap_rejects_fails_the_run(tmp_path: Path, snap: FakeSnap) -> None:
    snap.reject_event_ids({"order-x": "Invalid event for this pixel"})
    run = run_actor(
        tmp_path, {"task": "send_event", **REAL, "email": "a@example.com", "price": 5, "transactionId": "order-x"},
        snap=snap, ppe=True,
    )  # fmt: skip
    assert run.returncode == 1
    assert snap.accepted == [] and run.charged_conversions == 0
    message = run.output["statusMessage"]
    assert message.startswith("0 of 1 sent: 1 invalid (") and "Invalid event for this pixel" in message
    assert f"[Terminal status message]: {message}" in run.stderr
    assert "WARN" in run.stderr and "Event #0 (PURCHASE) invalid" in run.stderr


def test_batch_of_only_invalid_events_fails_naming_the_reason(tmp_path: Path, snap: FakeSnap) -> None:
    events: list[dict[str, Any]] = [
        {"eventType": "SIGN_UP", "email": f"u{i}@example.com", "eventTime": OLD} for i in range(3)
    ]
    run = run_in_process({"task": "send_batch_events", **REAL, "events": events}, snap=snap, ppe=True)
    assert run.returncode == 1
    assert [r.path for r in snap.requests if "/events" in r.path] == [] and run.charged_conversions == 0
    assert run.output["succeeded"] is False
    assert run.output["statusMessage"] == (
        "0 of 3 sent: 3 invalid (eventTime is older than Snap's 37-day window x3); 0 charged"
    )


def test_partial_batch_succeeds_and_reports_what_was_not_sent(tmp_path: Path, snap: FakeSnap) -> None:
    now = int(time.time()) - 60
    events = [
        {"eventType": "SIGN_UP", "email": "ok@example.com", "eventTime": now, "eventId": "ok-1"},
        {"eventType": "SIGN_UP", "email": "old@example.com", "eventTime": OLD, "eventId": "old-1"},
    ]
    run = run_in_process({"task": "send_batch_events", **REAL, "events": events}, snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert [e["event_id"] for e in snap.accepted] == ["ok-1"]
    assert run.charged_conversions == 1
    assert run.output["statusMessage"] == (
        "1 of 2 sent: 1 invalid (eventTime is older than Snap's 37-day window); 1 charged"
    )


# ----- the seed actor's Store page examples -----


def test_seed_demo_example_runs_free(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process({"demoMode": True, "eventSourceUrl": "https://example.com"}, snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert len(run.rows) == 3 and {row["status"] for row in run.rows} == {"demo"}
    assert snap.requests == [] and run.charged_conversions == 0


@pytest.mark.parametrize("token", ["YOUR_API_KEY_HERE", CAPI_TOKEN])
def test_seed_real_data_example_says_what_to_add(tmp_path: Path, snap: FakeSnap, token: str) -> None:
    """The seed's "Run with real data" has neither a pixel nor a customer: the error names both."""
    seed = {"demoMode": False, "task": "send_event", "accessToken": token, "eventType": "PURCHASE",
            "eventSourceUrl": "https://example.com", "currency": "USD", "numberOfItems": 1,
            "isAlreadyHashed": False}  # fmt: skip
    run = run_in_process(seed, snap=snap, ppe=True)
    assert run.returncode == 1
    message = run.output["error"]
    assert "pixelId" in message and "email, phone, mobileAdId, or ipAddress together with userAgent" in message
    assert "demoMode" in message  # the way to try it without them
    assert snap.requests == [] and run.charged_conversions == 0
    assert token not in run.everything_written()
