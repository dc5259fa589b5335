"""send_event and send_batch_events, end to end against the loopback Snap."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import CAPI_TOKEN, WebhookReceiver
from fake_snap import FakeSnap, Fault
from in_process import run_in_process

PIXEL = "pixel-123"
EMAIL_SHA = "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"  # Person@Example.com
PHONE_SHA = "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"  # +44 844 412 4653


def real(**fields: Any) -> dict[str, Any]:
    return {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "eventSourceUrl": "https://shop.example.com/thanks"} | fields


def batch(n: int, **extra: Any) -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {"eventType": "PURCHASE", "email": f"buyer{i}@example.com", "price": 10 + i, "currency": "USD",
         "transactionId": f"order-{i}", "eventTime": now - 60} | extra
        for i in range(n)
    ]  # fmt: skip


def test_send_event_delivers_hashed_identifiers_and_charges_once(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process(
        real(
            task="send_event",
            email="  Person@Example.com ",
            phone="+44 844 412 4653",
            firstName="John",
            ipAddress="203.0.113.9",
            userAgent="Mozilla/5.0",
            uuid1="57cf8a96-99ff-4260-a6b0-219820d2860e",
            eventSourceUrl="https://shop.example.com/thanks?utm=x&ScCid=Ab-9Zq",
            price=42.5,
            transactionId="order-77",
            itemIds="sku-1, sku-2",
            eventTime="1700000000000",
        )
        | {"eventTime": str(int(time.time() - 3600) * 1000)},
        snap=snap,
        ppe=True,
    )
    assert run.returncode == 0, run.stderr
    [event] = snap.accepted
    assert event["event_name"] == "PURCHASE"
    assert event["action_source"] == "WEB"
    assert isinstance(event["event_time"], int) and event["event_time"] < 10**11
    user = event["user_data"]
    assert user["em"] == EMAIL_SHA
    assert user["ph"] == PHONE_SHA
    assert user["fn"] == "96d9632f363564cc3032521409cf22a852f2032eec099ed5967c0d000cec607a"
    assert user["client_ip_address"] == "203.0.113.9"
    assert user["client_user_agent"] == "Mozilla/5.0"
    assert user["sc_cookie1"] == "57cf8a96-99ff-4260-a6b0-219820d2860e"
    assert user["sc_click_id"] == "Ab-9Zq"
    assert event["event_id"] == "order-77"
    assert event["custom_data"] == {
        "value": 42.5, "currency": "USD", "order_id": "order-77", "content_ids": ["sku-1", "sku-2"], "num_items": 1,
    }  # fmt: skip
    [send, scores] = sorted(snap.requests, key=lambda r: r.kind != "events")  # the score is read beside the send
    assert send.query["access_token"] == CAPI_TOKEN
    assert send.path == f"/v3/{PIXEL}/events"
    assert scores.path == f"/v1/pixels/{PIXEL}/event_quality_scores"  # Snap's own score, for the report

    [row] = run.rows
    assert row["status"] == "sent" and row["charged"] is True and row["error"] is None
    assert row["eventId"] == "order-77"
    assert set(row["matchKeys"]) >= {"em", "ph", "sc_click_id", "client_ip_address", "client_user_agent"}
    assert run.charged_conversions == 1
    assert run.output["counts"]["sent"] == 1 and run.output["charged"] == 1
    written = run.everything_written()
    for secret in (CAPI_TOKEN, "Person@Example.com", "person@example.com", "844 412 4653", "448444124653"):
        assert secret not in written


def test_batch_of_4500_goes_in_requests_of_at_most_2000(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process(real(task="send_batch_events", events=batch(4500)), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    sizes = sorted(r.event_count for r in snap.requests if r.kind == "events")
    assert sizes == [500, 2000, 2000]
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(4500))
    assert snap.duplicates() == []
    assert len(run.rows) == 4500
    assert {row["status"] for row in run.rows} == {"sent"}
    assert sorted(row["eventIndex"] for row in run.rows) == list(range(4500))
    assert run.charged_conversions == 4500
    assert sum(row["charged"] for row in run.rows) == 4500
    assert run.output["counts"]["sent"] == 4500


def test_events_as_json_string_and_native_shape(tmp_path: Path, snap: FakeSnap) -> None:
    now = int(time.time())
    events = [
        {"event_name": "sign_up", "event_time": now, "action_source": "WEB",
         "event_source_url": "https://a.example", "user_data": {"em": "Person@Example.com"}},
        {"eventType": "ADD_TO_CART", "phone": "+44 844 412 4653"},
    ]  # fmt: skip
    run = run_in_process(real(task="send_batch_events", events=json.dumps(events)), snap=snap)
    assert run.returncode == 0, run.stderr
    by_name = {e["event_name"]: e for e in snap.accepted}
    assert by_name["SIGN_UP"]["user_data"]["em"] == EMAIL_SHA
    assert by_name["ADD_CART"]["user_data"]["ph"] == PHONE_SHA
    assert by_name["ADD_CART"]["event_source_url"] == "https://shop.example.com/thanks"  # inherited
    assert {row["status"] for row in run.rows} == {"sent"}


def test_bad_events_are_reported_and_never_sent(tmp_path: Path, snap: FakeSnap) -> None:
    events = batch(3)
    events[1] = {"eventType": "PURCHASE", "price": 5}  # no identifier, no currency
    events.append({"eventType": "NOT_AN_EVENT", "email": "x@example.com"})
    events.append({"eventType": "PURCHASE", "email": "y@example.com", "price": 1, "eventTime": "2001-01-01T00:00:00Z"})
    events.append("not an object")
    run = run_in_process(real(task="send_batch_events", events=events), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert sorted(snap.accepted_event_ids()) == ["order-0", "order-2"]
    invalid = {row["eventIndex"]: row["error"] for row in run.rows_by_status("invalid")}
    assert set(invalid) == {1, 3, 4, 5}
    assert "Insufficient PII" in invalid[1]
    assert "NOT_AN_EVENT" in invalid[3] and "PURCHASE" in invalid[3]
    assert "37-day" in invalid[4]
    assert "not a JSON object" in invalid[5]
    assert run.charged_conversions == 2
    assert run.output["counts"] == {"sent": 2, "invalid": 4}


def test_snap_rejection_of_one_event_does_not_sink_the_batch(tmp_path: Path, snap: FakeSnap) -> None:
    snap.reject_event_ids({"order-3": "Invalid content_ids", "order-7": "Invalid order"})
    run = run_in_process(real(task="send_batch_events", events=batch(10)), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(10) if i not in (3, 7))
    assert snap.duplicates() == []
    invalid = {row["eventId"]: row["error"] for row in run.rows_by_status("invalid")}
    assert set(invalid) == {"order-3", "order-7"}
    assert "Invalid content_ids" in invalid["order-3"]
    assert run.charged_conversions == 8
    assert all(not row["charged"] for row in run.rows_by_status("invalid"))


def test_400_without_an_event_index_is_isolated_by_asking_validate(tmp_path: Path, snap: FakeSnap) -> None:
    """Real Snap's answer (no index, top-level error_msgs): one validate request finds the bad event."""
    snap.answer_with_index = False
    snap.reject_event_ids({"order-5": "Bad value"})
    run = run_in_process(real(task="send_batch_events", events=batch(8)), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(8) if i != 5)
    assert [(r.kind, r.event_count, r.status) for r in snap.requests if r.kind != "eqs"] == [
        ("events", 8, 400), ("validate", 8, 200), ("events", 7, 200),
    ]  # fmt: skip
    [invalid] = run.rows_by_status("invalid")
    assert invalid["eventId"] == "order-5"
    assert invalid["error"] == "Snap rejected the event: Bad value (codes: INVALID_EVENT_ID)"
    assert run.charged_conversions == 7
    assert run.output["isolationRequests"] == 2
    assert snap.validated and not any(v["event_id"] == "order-5" for v in snap.accepted)


def test_rate_limits_5xx_and_dropped_connections_are_retried(
    tmp_path: Path, snap: FakeSnap, retry_waits: list[float]
) -> None:
    snap.add_faults(
        "events",
        Fault.status(429, headers={"Retry-After": "1"}),
        Fault.status(503),
        Fault.drop(),
    )
    run = run_in_process(real(task="send_batch_events", events=batch(5)), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    assert len(retry_waits) == 3 and retry_waits[0] == 1.0  # Retry-After: 1 was honoured
    assert [r.status for r in snap.requests if r.kind == "events"] == [429, 503, None, 200]
    assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(5))
    assert run.charged_conversions == 5
    assert run.output["counts"] == {"sent": 5}


def test_a_send_that_may_have_landed_is_resent_with_the_same_dedup_ids(
    tmp_path: Path, snap: FakeSnap, retry_waits: list[float]
) -> None:
    """The connection drops after Snap accepted: the retry carries the same event_ids, which Snap
    deduplicates, and the events are charged once."""
    snap.add_faults("events", Fault.drop_after_accept())
    events = [{"eventType": "SIGN_UP", "email": f"u{i}@example.com"} for i in range(3)]
    run = run_in_process(real(task="send_batch_events", events=events), snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    first, second = (r.json["data"] for r in snap.requests if r.kind == "events")
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    assert len(set(snap.accepted_event_ids())) == 3
    assert run.charged_conversions == 3


def test_retries_exhausted_reports_failed_and_charges_nothing(
    tmp_path: Path, snap: FakeSnap, retry_waits: list[float]
) -> None:
    snap.add_faults("events", *[Fault.status(500)] * 3)
    run = run_in_process(real(task="send_batch_events", events=batch(4), maxRetries=2), snap=snap, ppe=True)
    assert run.returncode == 1, run.stderr
    assert len(retry_waits) == 2  # maxRetries
    assert run.output["statusMessage"].startswith("0 of 4 sent: 4 failed (Snap Conversions API send failed")
    assert snap.accepted == []
    failed = run.rows_by_status("failed")
    assert len(failed) == 4 and all("HTTP 500" in row["error"] for row in failed)
    assert run.charged_conversions == 0
    assert run.output["counts"] == {"failed": 4}


def test_rejected_token_fails_the_run_without_leaking_it(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process(real(accessToken="wrong-token-zz91", task="send_event", email="a@example.com",
                                   price=1), snap=snap, ppe=True)  # fmt: skip
    assert run.returncode != 0
    assert "refused the access token" in run.output["error"]
    assert snap.accepted == []
    assert run.charged_conversions == 0
    assert "wrong-token-zz91" not in run.everything_written()


def test_max_charge_caps_what_is_sent(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process(real(task="send_batch_events", events=batch(12), maxConcurrency=1), snap=snap, ppe=True,
        max_charge_usd=0.05,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(snap.accepted) == 5
    assert run.charged_conversions == 5
    skipped = run.rows_by_status("skipped")
    assert len(skipped) == 7 and all("maximum charge" in row["error"] for row in skipped)
    assert sorted(r["eventId"] for r in run.rows_by_status("sent")) == sorted(snap.accepted_event_ids())


def test_demo_sends_nothing_and_charges_nothing(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process(
        {"task": "send_batch_events", "eventSourceUrl": "https://a.example", "events": batch(3)},
        snap=snap,
        ppe=True,
    )
    assert run.returncode == 0, run.stderr
    assert snap.requests == []
    assert {row["status"] for row in run.rows} == {"demo"}
    assert run.charged_conversions == 0 and run.output["demo"] is True


def test_no_input_at_all_runs_a_demo(tmp_path: Path) -> None:
    run = run_in_process(None)
    assert run.returncode == 0, run.stderr
    assert len(run.rows) == 3 and {row["status"] for row in run.rows} == {"demo"}
    assert run.output["counts"] == {"demo": 3}
    assert "person@example.com" not in run.everything_written().lower()


def test_result_rows_problems_stores_only_events_not_accepted(
    tmp_path: Path, snap: FakeSnap, webhook: WebhookReceiver
) -> None:
    events = batch(10)
    events[4] = {"eventType": "PURCHASE", "price": 1}  # no identifier
    snap.reject_event_ids({"order-7": "Invalid order"})
    run = run_in_process(
        real(task="send_batch_events", events=events, resultRows="problems", webhookUrl=webhook.url),
        snap=snap,
        ppe=True,
    )
    assert run.returncode == 0, run.stderr
    assert len(snap.accepted) == 8
    assert run.charged_conversions == 8
    assert sorted(row["eventIndex"] for row in run.rows) == [4, 7]
    assert {row["status"] for row in run.rows} == {"invalid"}
    assert run.output["counts"] == {"sent": 8, "invalid": 2}
    assert run.output["datasetRows"] == 2
    body = webhook.bodies[-1]
    assert body["rowsIncluded"] is True
    assert sorted(row["eventIndex"] for row in body["rows"]) == [4, 7]


def test_token_refused_mid_isolation_keeps_and_charges_what_snap_accepted(tmp_path: Path, snap: FakeSnap) -> None:
    """400 naming no event -> split; Snap accepts the first half; then the token is revoked."""
    snap.add_faults(
        "events",
        Fault.status(400, {"status": "INVALID", "reason": "Bad request"}),
        Fault.delay(0),  # the first half goes through normally
        Fault.status(401),
    )
    run = run_in_process(real(task="send_batch_events", events=batch(4)), snap=snap, ppe=True)
    assert run.returncode != 0
    assert sorted(snap.accepted_event_ids()) == ["order-0", "order-1"]
    status = {row["eventId"]: (row["status"], row["charged"]) for row in run.rows}
    assert status == {
        "order-0": ("sent", True),
        "order-1": ("sent", True),
        "order-2": ("failed", False),
        "order-3": ("failed", False),
    }
    assert run.charged_conversions == 2
    assert "refused the access token" in run.output["error"]


def test_send_event_sends_the_idfa_input_lowercased_and_unhashed(snap: FakeSnap) -> None:
    run = run_in_process(
        real(task="send_event", email="a@example.com", price=5, idfa="6D92078A-8246-4BA4-AE5B-76104861E7DC"), snap=snap
    )
    assert run.returncode == 0, run.stderr
    [event] = snap.accepted
    assert event["user_data"]["idfa"] == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    [row] = run.rows
    assert "idfa" in row["matchKeys"]
    assert "ignored" not in run.stderr


def test_send_event_sends_numeric_item_ids_as_a_batch_event_does(snap: FakeSnap) -> None:
    """An API caller (or an agent reading the schema, where itemIds' items may be anything) sends
    `"itemIds": [123, 456]`: sent as content_ids ["123", "456"], as the same value in a batch event is. The run used
    to fail before sending: "Input field 'itemIds[0]' Input should be a valid string"."""
    run = run_in_process(real(task="send_event", email="a@example.com", price=5, itemIds=[123, 456]), snap=snap)
    assert run.returncode == 0, run.final_message
    [event] = snap.accepted
    assert event["custom_data"]["content_ids"] == ["123", "456"]


@pytest.mark.parametrize("field", ["currency", "eventType", "maxRetries", "isAlreadyHashed"])
def test_send_event_takes_null_for_an_optional_field_as_not_given(snap: FakeSnap, field: str) -> None:
    """An integration (Make, Zapier, n8n) sends null for a field it has no value for: the default applies and the
    event is sent and charged, as with the field left out. It failed the run for every field with a default:
    "Input field 'currency' Input should be a valid string"."""
    run = run_in_process(real(task="send_event", email="a@example.com", price=5, **{field: None}), snap=snap, ppe=True)
    assert run.returncode == 0, run.final_message
    assert run.charged_conversions == 1
    [event] = snap.accepted
    assert event["event_name"] == "PURCHASE"
    assert event["custom_data"]["currency"] == "USD"


@pytest.fixture(params=[301, 302, 303])
def moved_hook(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """An endpoint whose /old answers a redirect to /new?token=... (a moved endpoint, or http -> https); /new takes
    anything with 200. Yields the server's base URL and the requests seen."""
    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            seen.append((self.command, self.path, self.rfile.read(length)))
            if self.path.startswith("/old"):
                self.send_response(request.param)
                self.send_header("Location", "/new?token=hook-secret")
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_webhook_redirected_with_301_302_or_303_is_not_reported_delivered(
    snap: FakeSnap, moved_hook: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    """HTTP turns a POST redirected with 301, 302 or 303 into a GET without a body: the endpoint never got the
    results, yet OUTPUT said {"delivered": true, "statusCode": 200}. Now it says not delivered, naming webhookUrl
    and the new address's host alone (a hook's secret may ride in its path or query)."""
    base, seen = moved_hook
    run = run_in_process({"task": "list_pixels", "demoMode": True, "webhookUrl": f"{base}/old"}, snap=snap)
    assert run.returncode == 0, run.final_message
    assert [(method, path) for method, path, _ in seen] == [("POST", "/old"), ("GET", "/new?token=hook-secret")]
    assert run.output["webhook"] == {
        "delivered": False,
        "statusCode": None,
        "error": f"webhook POST: webhookUrl redirected the POST to an address on {base} (its path is not shown: it may "
        "hold the hook's secret), and a redirect (HTTP 301, 302 or 303) turns it into a GET without the results, so "
        "nothing was delivered. Set webhookUrl to the new address.",
    }
    assert "hook-secret" not in run.everything_written()
