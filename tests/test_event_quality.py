"""Snap's own match score: the get_event_quality task, and Snap's score in the run report.

The task and the report's fetch run in-process against the loopback Snap; one end-to-end run
checks that a token Snap refuses for its scores leaves the send run successful, the report
saying why.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from conftest import CAPI_TOKEN
from fake_snap import FakeSnap, Fault, make_quality_scores
from in_process import run_in_process
from memory_platform import memory_platform

from src.errors import SnapAuthError
from src.input import parse_input
from src.net.transport import RetryPolicy, Transport
from src.net.url_guard import UrlGuard
from src.results.report import render_report
from src.results.rows import Row
from src.results.sink import Progress, ResultSink
from src.results.summary import Summary
from src.snap.endpoints import Endpoints
from src.snap.marketing import MarketingApi, OAuthCredentials
from src.snap.quality_scores import (
    QualityScore,
    Recommendation,
    SnapQuality,
    fetch_snap_quality,
    parse_quality_scores,
)
from src.tasks import TASKS
from src.tasks.context import RunContext

PIXEL = "pixel-eqs"


def run_task(snap: FakeSnap | None, actor_input: dict[str, Any]) -> tuple[list[Row], Summary]:
    rows: list[Row] = []
    parsed = parse_input(actor_input)
    summary = Summary(task=parsed.task, demo=parsed.is_demo)

    async def push(batch: list[Row]) -> None:
        rows.extend(batch)

    async def status(_: str) -> None:
        return None

    base = snap.base_url if snap is not None else "http://127.0.0.1:9"  # nothing listens: demo must not call
    sink, progress = ResultSink(push, summary), Progress(status, summary)
    ctx = RunContext(
        parsed, Endpoints(base, base, base), sink, progress, "t", UrlGuard(allow_private=True), memory_platform()
    )

    async def scenario() -> None:
        await TASKS[parsed.task](ctx)
        await ctx.sink.flush()

    asyncio.run(scenario())
    return rows, summary


def test_the_task_reads_snaps_scores_with_the_capi_token() -> None:
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        rows, summary = run_task(snap, {"task": "get_event_quality", "accessToken": CAPI_TOKEN, "pixelId": PIXEL})
        [request] = snap.requests
    assert request.path == f"/v1/pixels/{PIXEL}/event_quality_scores"
    assert request.headers["authorization"] == f"Bearer {CAPI_TOKEN}"
    assert "access_token" not in request.query
    assert rows == [
        {"task": "get_event_quality", "pixelId": PIXEL, "eventName": "PURCHASE", "actionSource": "WEB",
         "eventSource": "API", "score": "GOOD", "demo": False,
         "recommendations": ["P1: Send the click ID (ScCid) with more of your events.",
                             "P2: Send a hashed phone number when you have one."]},
        {"task": "get_event_quality", "pixelId": PIXEL, "eventName": "SIGN_UP", "actionSource": "WEB",
         "eventSource": "API", "score": "POOR", "demo": False,
         "recommendations": ["P0: Send a hashed email address with every event."]},
    ]  # fmt: skip
    assert summary.counts == {"found": 2}
    assert CAPI_TOKEN not in str(rows)


def test_the_task_with_a_refused_token_fails_without_the_token_in_the_message() -> None:
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.add_faults("eqs", Fault.status(403))
        with pytest.raises(SnapAuthError) as refused:
            run_task(snap, {"task": "get_event_quality", "accessToken": CAPI_TOKEN, "pixelId": PIXEL})
    assert "HTTP 403" in str(refused.value)
    assert "Signal Readiness" in str(refused.value)
    assert CAPI_TOKEN not in str(refused.value)


def test_the_demo_is_offline_and_free() -> None:
    rows, summary = run_task(None, {"task": "get_event_quality"})
    assert summary.counts == {"demo": 3}
    assert {row["eventName"] for row in rows} == {"PURCHASE", "SIGN_UP", "ADD_CART"}
    assert all(row["demo"] for row in rows)
    [add_cart] = [row for row in rows if row["eventName"] == "ADD_CART"]
    assert add_cart["recommendations"] == ["P0: Send a hashed email address.", "P2: Send a hashed phone number."]


def test_the_task_needs_a_pixel() -> None:
    with FakeSnap(capi_token=CAPI_TOKEN) as snap, pytest.raises(Exception, match="pixelId"):
        run_task(snap, {"task": "get_event_quality", "accessToken": CAPI_TOKEN})


@pytest.mark.parametrize(
    "body",
    [
        make_quality_scores(PIXEL),
        # the same facts in the variants the reader accepts: wrapped items, a score object, text recommendations
        {"request_status": "SUCCESS", "scores": [
            {"sub_request_status": "SUCCESS", "event_quality": {
                "event_name": "PURCHASE", "action_source": "WEB", "source": "API", "score": {"value": "GOOD"},
                "recommendations": [{"priority": "p2", "message": "Send a hashed phone number when you have one."},
                                    {"priority": "P1",
                                     "title": "Send the click ID (ScCid) with more of your events."}]}},
            {"event_type": "SIGN_UP", "action_source": "WEB", "event_source": "API", "signal_readiness_score": "POOR",
             "recommendation": "P0: Send a hashed email address with every event."}]},
    ],
)  # fmt: skip
def test_the_reader_takes_snaps_documented_names_and_their_variants(body: dict[str, Any]) -> None:
    purchase, sign_up = parse_quality_scores(body)
    assert (purchase.event_name, purchase.action_source, purchase.event_source, purchase.score) == (
        "PURCHASE", "WEB", "API", "GOOD",
    )  # fmt: skip
    assert [rec.priority for rec in purchase.recommendations] == ["P1", "P2"]  # highest priority first
    assert "click ID" in purchase.recommendations[0].text
    assert (sign_up.event_name, sign_up.score) == ("SIGN_UP", "POOR")
    assert "hashed email" in sign_up.recommendations[0].text


@pytest.mark.parametrize("body", [{}, {"request_status": "SUCCESS"}, {"event_quality_scores": "n/a"}])
def test_an_answer_without_scores_gives_none(body: dict[str, Any]) -> None:
    assert parse_quality_scores(body) == []


def fetch(snap: FakeSnap, token: str) -> SnapQuality:
    async def scenario() -> SnapQuality:
        async with Transport(retry=RetryPolicy(max_retries=0)) as transport:
            api = MarketingApi(transport, OAuthCredentials(token), Endpoints(snap.base_url, snap.base_url))
            return await fetch_snap_quality(api, PIXEL)

    return asyncio.run(scenario())


@pytest.mark.parametrize("code", [401, 403])
def test_a_refusal_for_the_report_is_explained_not_raised(code: int) -> None:
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.add_faults("eqs", Fault.status(code))
        quality = fetch(snap, CAPI_TOKEN)
    assert quality.scores == ()
    assert quality.unavailable is not None
    assert f"HTTP {code}" in quality.unavailable
    assert CAPI_TOKEN not in quality.unavailable
    summary = Summary(task="send_batch_events", demo=False)
    summary.snap_quality = quality
    page = render_report(summary)
    assert "Snap's event quality score (Signal Readiness)" in page
    assert f"HTTP {code}" in page
    assert "The run itself is not affected" in page


def test_the_report_puts_snaps_score_beside_our_grades() -> None:
    summary = Summary(task="send_batch_events", demo=False)
    rows = [{"status": "sent", "eventName": "PURCHASE", "matchKeys": ["em", "sc_click_id"],
             "matchQuality": "excellent"},
            {"status": "sent", "eventName": "PURCHASE", "matchKeys": ["em"], "matchQuality": "fair"},
            {"status": "sent", "eventName": "PAGE_VIEW", "matchKeys": ["em"], "matchQuality": "fair"}]  # fmt: skip
    summary.add(rows)
    summary.snap_quality = SnapQuality(
        (
            QualityScore("PURCHASE", "WEB", "API", "GOOD", (Recommendation("P0", "Send hashed emails"),)),
            QualityScore("SIGN_UP", "WEB", "API", "POOR"),
        )
    )
    page = render_report(summary)
    section = page[page.index("Signal Readiness") :]
    assert '<td class="">PURCHASE</td><td class="n">WEB / API</td><td class="n">GOOD</td>' in section
    assert "P0: Send hashed emails" in section
    assert "excellent 1, fair 1" in section
    assert "not in this run" in section  # SIGN_UP: Snap scored it, this run had none


def test_a_send_run_with_a_token_refused_for_scores_succeeds_and_its_report_says_why() -> None:
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.add_faults("eqs", Fault.status(403))
        event = {"eventType": "SIGN_UP", "email": "a@example.com", "eventTime": int(time.time()) - 60}
        actor_input = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "task": "send_batch_events",
                       "eventSourceUrl": "https://shop.example.com/", "events": [event]}  # fmt: skip
        run = run_in_process(actor_input, snap=snap, ppe=True)
        kinds = [(r.kind, r.status) for r in snap.requests]
    assert run.returncode == 0, run.stderr
    assert sorted(kinds) == [("eqs", 403), ("events", 200)]  # the score is read beside the sends
    assert run.output["error"] is None
    assert run.output["counts"] == {"sent": 1}
    assert run.charged_conversions == 1
    page = run.records["REPORT"]
    assert "Not shown: Snap did not share its scores for this pixel" in page
    assert "HTTP 403" in page
    assert CAPI_TOKEN not in run.everything_written()


def test_a_score_api_that_keeps_failing_costs_one_retry_and_never_the_run() -> None:
    """The report's score is read with its own small budget (one retry), not the sends' `maxRetries`."""
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.add_faults("eqs", *[Fault.status(503)] * 4)
        now = int(time.time()) - 60
        events = [{"eventType": "PURCHASE", "email": f"b{i}@example.com", "price": 5, "currency": "USD",
                   "eventTime": now} for i in range(3)]  # fmt: skip
        actor_input = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "task": "send_batch_events", "maxRetries": 5,
                       "eventSourceUrl": "https://shop.example.com/", "events": events}  # fmt: skip
        rows, summary = run_task(snap, actor_input)
        asked = [r.status for r in snap.requests if r.kind == "eqs"]
        left = snap.pending_faults("eqs")
    assert asked == [503, 503] and left == 2
    assert [row["status"] for row in rows] == ["sent"] * 3
    assert summary.snap_quality is not None and summary.snap_quality.unavailable is not None
    assert "HTTP 503" in summary.snap_quality.unavailable


def test_a_score_api_asking_to_wait_long_is_waited_on_two_seconds_at_most(retry_waits: list[float]) -> None:
    """A 503 with `Retry-After: 120` on the report's score must not keep a finished run waiting two minutes."""
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.add_faults("eqs", *[Fault.status(503, headers={"Retry-After": "120"})] * 2)
        event = {"eventType": "SIGN_UP", "email": "a@example.com", "eventTime": int(time.time()) - 60}
        actor_input = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "task": "send_batch_events",
                       "eventSourceUrl": "https://shop.example.com/", "events": [event]}  # fmt: skip
        rows, summary = run_task(snap, actor_input)
    assert retry_waits == [2.0]  # the one retry, after 2 s instead of the 120 asked for
    assert [row["status"] for row in rows] == ["sent"]
    assert summary.snap_quality is not None and "HTTP 503" in str(summary.snap_quality.unavailable)


def test_a_score_that_never_comes_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from src.tasks import access

    monkeypatch.setattr(access, "QUALITY_DEADLINE_S", 0.2)
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.add_faults("eqs", Fault.delay(1.0))
        event = {"eventType": "SIGN_UP", "email": "a@example.com", "eventTime": int(time.time()) - 60}
        actor_input = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "task": "send_batch_events",
                       "eventSourceUrl": "https://shop.example.com/", "events": [event]}  # fmt: skip
        rows, summary = run_task(snap, actor_input)
    assert [row["status"] for row in rows] == ["sent"]
    assert summary.snap_quality is not None and "did not come within" in str(summary.snap_quality.unavailable)


def test_a_403_names_the_pixel_field_and_snaps_limits_not_the_token() -> None:
    """A token Snap accepts but that may not read this pixel's scores: the message names pixelId, no longer
    'Snap refused the access token'."""
    with FakeSnap(capi_token=CAPI_TOKEN) as snap:
        snap.add_faults("eqs", Fault.status(403, {"request_status": "ERROR", "display_message": "Forbidden"}))
        with pytest.raises(SnapAuthError) as refused:
            run_task(snap, {"task": "get_event_quality", "accessToken": CAPI_TOKEN, "pixelId": PIXEL})
    assert str(refused.value) == (
        f"Snap Signal Readiness API for pixel {PIXEL}: the token has no access to this pixel (HTTP 403: Forbidden). "
        "Check pixelId, or use a token of the organization that owns the pixel. Snap may also limit its Signal "
        "Readiness API to approved partners and advertisers."
    )


def test_the_refresh_fields_it_uses_are_not_called_ignored() -> None:
    """get_event_quality with an expired OAuth token and the refresh fields refreshes the token with them; the log
    used to say 'get_event_quality does not read these input fields, so they were ignored: clientId, clientSecret,
    refreshToken' first."""
    refresh = {"refreshToken": "rt-1", "clientId": "cid", "clientSecret": "cs-1"}
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token="oauth-1", refresh_token="rt-1", client_id="cid",
                  client_secret="cs-1") as snap:  # fmt: skip
        run = run_in_process({"task": "get_event_quality", "accessToken": "expired", "pixelId": PIXEL, **refresh},
                             snap=snap)  # fmt: skip
        kinds = [(r.kind, r.status) for r in snap.requests]
    assert run.returncode == 0, run.final_message
    assert kinds == [("eqs", 401), ("token", 200), ("eqs", 200)]
    assert "ignored" not in run.stderr
    assert "cs-1" not in run.everything_written() and "rt-1" not in run.everything_written()
