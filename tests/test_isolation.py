"""Isolating the events Snap refuses, against the loopback Snap in both of its answering modes.

In-process: the real pipeline (builder, SnapDelivery, Billing, ResultSink) talks over HTTP to
`FakeSnap`. With an index (the Java SDK's `EventResponse`) and without one (what partners see from
real Snap: `{"status": "INVALID", "reason", "error_msgs"}`), the good events of a poisoned batch
must be accepted once and charged once, the bad ones reported with Snap's own message, and the
extra requests bounded and counted in OUTPUT.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from fake_snap import FakeSnap, Fault

from src.billing import Billing
from src.delivery.pipeline import Pipeline, PipelineSettings
from src.delivery.send import MAX_ISOLATION_REQUESTS, SnapDelivery
from src.errors import SnapError, SnapRejectedError
from src.events.build import ConversionBuilder, Destinations, PreparedEvent
from src.events.names import EventNameResolver
from src.events.shape import SourceEvent
from src.events.user_data import UserDataNormalizer
from src.net.transport import RetryPolicy, RunStoppingError, Transport
from src.results.rows import Row
from src.results.sink import Progress, ResultSink
from src.results.summary import Summary
from src.snap.conversions import ConversionsApi

TOKEN = "capi-token-isolation"
PIXEL = "pixel-iso"
MODES = pytest.mark.parametrize("with_index", [True, False], ids=["with-index", "real-snap-no-index"])


@dataclass
class Run:
    rows: list[Row]
    summary: Summary
    charges: list[int] = field(default_factory=list)

    @property
    def charged(self) -> int:
        return sum(self.charges)

    def by_status(self, status: str) -> dict[str, Row]:
        return {row["eventId"]: row for row in self.rows if row["status"] == status}


def purchases(n: int) -> list[dict[str, Any]]:
    now = int(time.time()) - 60
    return [
        {"eventType": "PURCHASE", "email": f"buyer{i}@example.com", "price": 5, "currency": "USD",
         "transactionId": f"order-{i}", "eventTime": now, "eventSourceUrl": "https://shop.example.com/thanks"}
        for i in range(n)
    ]  # fmt: skip


def run_pipeline(snap: FakeSnap, events: list[dict[str, Any]], *, validate: bool = False, **delivery: Any) -> Run:
    rows: list[Row] = []
    charges: list[int] = []
    summary = Summary(task="validate_events" if validate else "send_batch_events", demo=False)

    async def push(batch: list[Row]) -> None:
        rows.extend(batch)

    async def status(_: str) -> None:
        return None

    async def charge(count: int, key: str) -> int:
        charges.append(count)
        return count

    async def scenario() -> None:
        async with Transport(retry=RetryPolicy(max_retries=1, backoff_base=0.01)) as transport:
            api = ConversionsApi(transport, TOKEN, snap.base_url)
            sink = ResultSink(push, summary)
            builder = ConversionBuilder(
                destinations=Destinations(PIXEL, None),
                normalizer=UserDataNormalizer(),
                names=EventNameResolver(None),
            )
            pipeline = Pipeline(
                PipelineSettings(task=summary.task),
                builder=builder,
                delivery=SnapDelivery(api, validate=validate, stats=summary.delivery, **delivery),
                billing=Billing.free() if validate else Billing(limit=lambda: None, charge=charge),
                sink=sink,
                progress=Progress(status, summary),
            )

            async def source() -> Any:
                for index, data in enumerate(events):
                    yield SourceEvent(index, data)

            await pipeline.run(source())

    asyncio.run(scenario())
    return Run(rows, summary, charges)


def snap_server(*, with_index: bool) -> FakeSnap:
    return FakeSnap(capi_token=TOKEN, answer_with_index=with_index)


def requests_of(snap: FakeSnap, kind: str) -> int:
    return sum(1 for request in snap.requests if request.kind == kind)


@MODES
def test_two_bad_of_twelve_cost_two_extra_requests_and_carry_snaps_message(with_index: bool) -> None:
    with snap_server(with_index=with_index) as snap:
        snap.reject_event_ids({"order-3": "Invalid content_ids", "order-9": "Pixel is not active"})
        run = run_pipeline(snap, purchases(12))
        assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(12) if i not in (3, 9))
        assert snap.duplicates() == []
        assert run.charged == 10
        assert set(run.by_status("sent")) == {f"order-{i}" for i in range(12) if i not in (3, 9)}
        assert all(row["charged"] for row in run.by_status("sent").values())
        invalid = run.by_status("invalid")
        assert set(invalid) == {"order-3", "order-9"}
        assert invalid["order-3"]["error"] == "Snap rejected the event: Invalid content_ids (codes: INVALID_EVENT_ID)"
        assert "Pixel is not active" in invalid["order-9"]["error"]
        assert not any(row["charged"] for row in invalid.values())
        # one refused send, one validate, one resend of the 10 good events
        assert [(r.kind, r.event_count, r.status) for r in snap.requests] == [
            ("events", 12, 400), ("validate", 12, 200), ("events", 10, 200),
        ]  # fmt: skip
        assert run.summary.to_output()["isolationRequests"] == 2
        assert run.summary.delivery.validate_requests == 1


@MODES
def test_two_bad_of_two_thousand_still_cost_two_extra_requests(with_index: bool) -> None:
    with snap_server(with_index=with_index) as snap:
        snap.record_bodies = False
        snap.reject_event_ids({"order-17": "Invalid order", "order-1999": "Invalid order"})
        run = run_pipeline(snap, purchases(2000))
        assert len(snap.accepted_event_ids()) == 1998
        assert snap.duplicates() == []
        assert run.charged == 1998
        assert set(run.by_status("invalid")) == {"order-17", "order-1999"}
        assert len(snap.requests) == 3
        assert run.summary.to_output()["isolationRequests"] == 2


def test_real_snap_mode_without_validate_answers_falls_back_to_halving_within_the_bound() -> None:
    """Validate gives no per-event answer (a 500 after retries): halving finds the bad events."""
    with snap_server(with_index=False) as snap:
        snap.reject_event_ids({"order-3": "Invalid content_ids", "order-9": "Pixel is not active"})
        snap.add_faults("validate", Fault.status(500), Fault.status(500))
        run = run_pipeline(snap, purchases(12))
        assert sorted(snap.accepted_event_ids()) == sorted(f"order-{i}" for i in range(12) if i not in (3, 9))
        assert snap.duplicates() == []
        assert run.charged == 10
        invalid = run.by_status("invalid")
        assert "Invalid content_ids" in invalid["order-3"]["error"]
        assert "Pixel is not active" in invalid["order-9"]["error"]
        extra = run.summary.delivery.isolation_requests
        assert extra == requests_of(snap, "events") - 1 + requests_of(snap, "validate") - 1  # retries not counted
        assert extra <= MAX_ISOLATION_REQUESTS


def test_halving_two_bad_of_two_thousand_without_index_or_validate_stays_within_the_bound() -> None:
    with snap_server(with_index=False) as snap:
        snap.record_bodies = False
        snap.reject_event_ids({"order-3": "Invalid order", "order-1998": "Invalid order"})
        snap.add_faults("validate", Fault.status(400, {"status": "INVALID", "reason": "no per-event answer"}))
        run = run_pipeline(snap, purchases(2000))
        assert len(snap.accepted_event_ids()) == 1998
        assert snap.duplicates() == []
        assert run.charged == 1998
        assert set(run.by_status("invalid")) == {"order-3", "order-1998"}
        assert run.by_status("failed") == {}
        assert run.summary.delivery.isolation_requests == len(snap.requests) - 1 == 43  # 1 validate + 42 halving
        assert run.summary.delivery.isolation_requests <= MAX_ISOLATION_REQUESTS


def test_with_index_and_no_validate_answer_the_named_events_are_taken_out_one_by_one() -> None:
    with snap_server(with_index=True) as snap:
        snap.reject_event_ids({"order-3": "Invalid content_ids", "order-9": "Pixel is not active"})
        snap.add_faults("validate", Fault.status(400, {"status": "INVALID", "reason": "validate unavailable"}))
        run = run_pipeline(snap, purchases(12))
        assert run.charged == 10
        assert [r.event_count for r in snap.requests if r.kind == "events"] == [12, 11, 10]
        assert run.summary.delivery.isolation_requests == 3  # the validate ask and two resends


def test_the_extra_requests_are_bounded_and_the_rest_is_reported_failed_not_charged() -> None:
    with snap_server(with_index=False) as snap:
        bad = {f"order-{i}": "Invalid order" for i in range(0, 64, 4)}
        snap.reject_event_ids(bad)
        snap.add_faults("validate", *[Fault.status(400, {"status": "INVALID", "reason": "no"})])
        run = run_pipeline(snap, purchases(64), max_isolation_requests=6)
        assert run.summary.delivery.isolation_requests == 6
        assert len(snap.requests) == 7
        failed = run.by_status("failed")
        assert failed
        assert all("more than 6 extra requests" in row["error"] for row in failed.values())
        assert run.charged == len(snap.accepted_event_ids()) == len(run.by_status("sent"))
        assert len(run.rows) == 64
        assert not any(row["charged"] for row in failed.values())


@MODES
def test_a_field_snap_refuses_is_reported_with_snaps_own_message(with_index: bool) -> None:
    """The actor's own preflight lets a future-proof field through; Snap's answer is what the row says."""
    with snap_server(with_index=with_index) as snap:
        events = purchases(4)
        events[2]["eventTime"] = int(time.time() - 36 * 86400)  # inside our window...
        snap.now = lambda: time.time() + 2 * 86400  # ...but Snap's clock says 38 days
        run = run_pipeline(snap, events)
        [row] = run.by_status("invalid").values()
        assert row["eventId"] == "order-2"
        assert "Snap rejected the event: Timestamp invalid or out of range" in row["error"]
        assert "INVALID_EVENT_TIME" in row["error"]
        assert run.charged == 3


def test_validate_task_reads_snaps_event_logs_shape() -> None:
    with snap_server(with_index=False) as snap:
        snap.reject_event_ids({"order-1": "Invalid order"})
        run = run_pipeline(snap, purchases(3), validate=True)
        assert set(run.by_status("valid")) == {"order-0", "order-2"}
        assert run.by_status("invalid")["order-1"]["error"] == "Invalid order"
        assert run.charges == []
        assert snap.accepted == []


def test_a_run_stopped_while_a_half_waits_to_retry_keeps_snaps_answers_and_leaves_the_rest_unfinished() -> None:
    """Snap refuses 4 events naming none (validate gives no verdicts), accepts the first half, and the run stops
    while the second half waits to retry: the delivery answers for the 2 accepted events only; the other 2 get no
    outcome, so no row and no charge, and a resurrected run sends them."""

    class Api:
        def __init__(self) -> None:
            self.sends: list[int] = []

        async def send(self, asset_id: str, events: Sequence[bytes], *, validate: bool = False) -> dict[str, Any]:
            self.sends.append(len(events))
            if validate:
                raise SnapError("validate unavailable")
            if len(events) == 4:
                raise SnapRejectedError("one event is bad")
            if len(self.sends) == 4:  # the second half: Snap asked to retry later, and the run stopped meanwhile
                raise RunStoppingError("the run is stopping: not retried")
            return {"status": "SUCCESS"}

    events = [PreparedEvent(i, PIXEL, b"{}", f"id-{i}", "PURCHASE", "WEB", ("em",)) for i in range(4)]
    api = Api()
    outcomes = asyncio.run(SnapDelivery(cast(ConversionsApi, api))(PIXEL, events))
    assert api.sends == [4, 4, 2, 2]
    assert [(outcome.event.index, outcome.status) for outcome in outcomes] == [(0, "sent"), (1, "sent")]
