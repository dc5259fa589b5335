"""validate_events, the pixel tasks, input errors and the webhook, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CAPI_TOKEN, OAUTH_TOKEN, WebhookReceiver, run_actor
from fake_snap import FakeSnap, Fault, make_pixel
from in_process import run_in_process

PIXEL = "pixel-123"
ACCOUNT = "acct-9"


def test_validate_events_answers_per_event_and_is_free(tmp_path: Path, snap: FakeSnap) -> None:
    events = [
        {"eventType": "PURCHASE", "email": "a@example.com", "price": 3, "eventId": "ok-1"},
        {"eventType": "PURCHASE", "email": "b@example.com", "price": 4, "eventId": "bad-1"},
        {"eventType": "PAGE_VIEW", "ipAddress": "203.0.113.1", "eventId": "local-bad"},
    ]
    snap.reject_event_ids({"bad-1": "Invalid currency for this pixel"})
    run = run_in_process({"task": "validate_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL, "eventSourceUrl": "https://a.example",
         "events": events},
        snap=snap,
        ppe=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert snap.accepted == []
    assert [e["event_id"] for e in snap.validated] == ["ok-1", "bad-1"]
    paths = sorted(r.path for r in snap.requests)  # Snap's score for the report is read beside the validation
    assert paths == [f"/v1/pixels/{PIXEL}/event_quality_scores", f"/v3/{PIXEL}/events/validate"]
    [scores] = [r for r in snap.requests if r.kind == "eqs"]
    assert scores.headers["authorization"] == f"Bearer {CAPI_TOKEN}"
    status = {row["eventId"]: (row["status"], row["error"]) for row in run.rows}
    assert status["ok-1"] == ("valid", None)
    assert status["bad-1"][0] == "invalid" and "Invalid currency" in status["bad-1"][1]
    assert status["local-bad"][0] == "invalid" and "Insufficient PII" in status["local-bad"][1]
    assert run.charged_conversions == 0
    assert all(row["charged"] is False for row in run.rows)


def test_list_pixels_follows_paging_to_the_end(tmp_path: Path) -> None:
    pixels = {
        ACCOUNT: [make_pixel(f"px-{i:04d}", ACCOUNT) for i in range(2300)],
        "other": [make_pixel("px-x", "other")],
    }
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN, pixels=pixels) as snap:
        run = run_in_process({"task": "list_pixels", "accessToken": OAUTH_TOKEN, "adAccountId": ACCOUNT}, snap=snap)
        pages = [r for r in snap.requests if r.kind == "pixels"]
    assert run.returncode == 0, run.stderr
    assert len(pages) == 3
    assert all(r.headers["authorization"] == f"Bearer {OAUTH_TOKEN}" for r in pages)
    ids = [row["id"] for row in run.rows]
    assert sorted(ids) == [f"px-{i:04d}" for i in range(2300)]
    row = run.rows[0]
    assert row["adAccountId"] == ACCOUNT and row["status"] == "ACTIVE"
    assert {"name", "effectiveStatus", "createdAt", "updatedAt"} <= set(row)
    assert run.output["counts"] == {"found": 2300}
    assert OAUTH_TOKEN not in run.everything_written()


def test_get_pixel_info_and_not_found(tmp_path: Path) -> None:
    pixels = {ACCOUNT: [make_pixel(PIXEL, ACCOUNT, name="Shop pixel")]}
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN, pixels=pixels) as snap:
        found = run_in_process({"task": "get_pixel_info", "accessToken": OAUTH_TOKEN, "pixelId": PIXEL},
                          snap=snap)  # fmt: skip
        missing = run_in_process({"task": "get_pixel_info", "accessToken": OAUTH_TOKEN, "pixelId": "nope"},
                            snap=snap)  # fmt: skip
    assert found.returncode == 0, found.stderr
    [row] = found.rows
    assert (row["id"], row["name"], row["adAccountId"]) == (PIXEL, "Shop pixel", ACCOUNT)
    assert missing.returncode != 0
    assert "not found" in missing.output["error"]
    assert missing.rows == []


def test_expired_oauth_token_is_refreshed_once(tmp_path: Path) -> None:
    pixels = {ACCOUNT: [make_pixel(PIXEL, ACCOUNT)]}
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN, pixels=pixels,
                  refresh_token="rt-1", client_id="cid", client_secret="cs-1") as snap:  # fmt: skip
        run = run_in_process(
            {"task": "list_pixels", "accessToken": "expired", "adAccountId": ACCOUNT, "refreshToken": "rt-1",
             "clientId": "cid", "clientSecret": "cs-1"},
            snap=snap,
        )  # fmt: skip
        kinds = [(r.kind, r.status) for r in snap.requests]
    assert run.returncode == 0, run.stderr
    assert kinds == [("pixels", 401), ("token", 200), ("pixels", 200)]
    assert [row["id"] for row in run.rows] == [PIXEL]
    written = run.everything_written()
    assert "cs-1" not in written and "rt-1" not in written and OAUTH_TOKEN not in written


@pytest.mark.parametrize(
    ("actor_input", "field"),
    [
        ({"demoMode": False, "task": "send_event", "pixelId": PIXEL, "email": "a@example.com"}, "accessToken"),
        ({"task": "send_event", "accessToken": CAPI_TOKEN, "email": "a@example.com"}, "pixelId"),
        ({"task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL, "events": "[{oops"}, "events"),
        ({"task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL}, "events"),
        ({"task": "list_pixels", "accessToken": OAUTH_TOKEN}, "adAccountId"),
        ({"task": "get_pixel_info", "accessToken": OAUTH_TOKEN}, "pixelId"),
        ({"task": "send_event", "accessToken": CAPI_TOKEN, "pixelId": PIXEL, "price": "a@example.com"}, "price"),
        ({"task": "fly_to_moon"}, "task"),
    ],
)
def test_bad_input_fails_naming_the_field_and_sends_nothing(
    snap: FakeSnap, actor_input: dict[str, Any], field: str
) -> None:
    run = run_in_process(actor_input, snap=snap, ppe=True)
    assert run.returncode == 1
    assert field in run.output["error"]
    assert run.final_message == run.output["error"]  # the run's status message
    assert snap.requests == []
    assert run.charged_conversions == 0
    assert CAPI_TOKEN not in run.everything_written()
    assert "a@example.com" not in run.everything_written()


def test_bad_input_end_to_end_fails_with_the_reason_as_terminal_status_message(tmp_path: Path, snap: FakeSnap) -> None:
    """As a user runs it (`python -m src`): exit code 1, the reason in OUTPUT and as the terminal status message,
    nothing sent or charged, no secret anywhere in storage or the log."""
    actor_input = {"task": "send_event", "accessToken": CAPI_TOKEN, "email": "a@example.com"}
    run = run_actor(tmp_path, actor_input, snap=snap, ppe=True)
    assert run.returncode == 1
    assert "pixelId" in run.output["error"]
    assert f"[Terminal status message]: {run.output['error']}" in run.stderr
    assert snap.requests == []
    assert run.charged_conversions == 0
    assert CAPI_TOKEN not in run.everything_written()
    assert "a@example.com" not in run.everything_written()


def test_webhook_gets_summary_and_rows_after_a_retry(
    tmp_path: Path, snap: FakeSnap, webhook: WebhookReceiver, retry_waits: list[float]
) -> None:
    webhook.statuses = [503]
    run = run_in_process({"task": "send_event", "accessToken": CAPI_TOKEN, "pixelId": PIXEL, "eventSourceUrl": "https://a.example",
         "email": "a@example.com", "price": 5, "webhookUrl": webhook.url},
        snap=snap,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(webhook.bodies) == 2  # the 503, then the delivery
    body = webhook.bodies[-1]
    assert body["summary"]["counts"] == {"sent": 1}
    assert body["rowsIncluded"] is True and [r["status"] for r in body["rows"]] == ["sent"]
    assert run.output["webhook"] == {"delivered": True, "statusCode": 200, "error": None}
    assert CAPI_TOKEN not in str(body) and "a@example.com" not in str(body)


def test_failed_webhook_is_recorded_and_does_not_fail_the_run(
    tmp_path: Path, snap: FakeSnap, webhook: WebhookReceiver, retry_waits: list[float]
) -> None:
    webhook.statuses = [500] * 10
    run = run_in_process({"webhookUrl": webhook.url, "maxRetries": 1}, snap=snap)
    assert run.returncode == 0, run.stderr
    assert len(webhook.bodies) == 2
    assert run.output["webhook"]["delivered"] is False
    assert "HTTP 500" in run.output["webhook"]["error"]
    assert "secret=abc" not in run.output["webhook"]["error"]


def test_demo_pixel_tasks_return_sample_rows(tmp_path: Path, snap: FakeSnap) -> None:
    run = run_in_process({"task": "list_pixels"}, snap=snap)
    assert run.returncode == 0, run.stderr
    assert snap.requests == []
    assert len(run.rows) == 2 and all(row["demo"] for row in run.rows)


def test_capi_outage_on_validate_marks_events_failed(tmp_path: Path, snap: FakeSnap, retry_waits: list[float]) -> None:
    snap.add_faults("validate", Fault.status(502), Fault.status(502))
    run = run_in_process({"task": "validate_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL, "eventSourceUrl": "https://a.example",
         "email": "a@example.com", "eventType": "SIGN_UP", "maxRetries": 1},
        snap=snap,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    [row] = run.rows
    assert row["status"] == "failed" and "HTTP 502" in row["error"]
    assert run.output["statusMessage"].startswith("0 of 1 valid: 1 failed (Snap Conversions API validate failed")


# --- Snap's refusals of a lookup name the input field and what to do ------------------------------------------------

NOT_SERVED = "We're sorry, but the requested resource could not be served."
REFRESH = {"refreshToken": "rt-1", "clientId": "cid", "clientSecret": "cs-1"}


@pytest.fixture
def ads() -> Iterator[FakeSnap]:
    pixels = {ACCOUNT: [make_pixel(f"{PIXEL}-{i}", ACCOUNT) for i in range(3)] + [make_pixel(PIXEL, ACCOUNT)]}
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN, pixels=pixels, refresh_token="rt-1",
                  client_id="cid", client_secret="cs-1") as server:  # fmt: skip
        yield server


def test_list_pixels_with_only_refresh_credentials_is_a_real_run(ads: FakeSnap) -> None:
    """An API caller (demoMode left out) on a schedule gives refreshToken, clientId and clientSecret and no
    accessToken, which expires in about 30 minutes: the run refreshes the token and lists the account's pixels. It
    was a demo: sample pixels stamped with the user's ad account id, nothing asked of Snap, a succeeded run."""
    run = run_in_process({"task": "list_pixels", "adAccountId": ACCOUNT, **REFRESH}, snap=ads)
    assert run.returncode == 0, run.final_message
    assert [r.kind for r in ads.requests] == ["token", "pixels"]
    assert sorted(row["id"] for row in run.rows) == sorted(p["id"] for p in ads.pixels[ACCOUNT])
    assert not any(row["demo"] for row in run.rows)
    assert run.output["demo"] is False
    assert "Demo mode" not in run.stderr


@pytest.mark.parametrize(
    ("actor_input", "message"),
    [
        ({"task": "list_pixels", "adAccountId": "no-such-account"},
         f"Snap Marketing API pixels of ad account no-such-account: not found (HTTP 404: {NOT_SERVED}). Check "
         "adAccountId: copy the ad account id from Ads Manager; the token must belong to the organization that owns "
         "it."),
        ({"task": "get_pixel_info", "pixelId": "no-such-pixel"},
         f"Snap Marketing API pixel no-such-pixel: not found (HTTP 404: {NOT_SERVED}). Check pixelId: copy the pixel "
         "id from Events Manager; the token must belong to the organization that owns it."),
    ],
)  # fmt: skip
def test_an_id_snap_does_not_know_fails_naming_the_input_field(
    ads: FakeSnap, actor_input: dict[str, Any], message: str
) -> None:
    """A 404 for an ad account or pixel: the message used to stop at 'not found (HTTP 404: ...)', naming neither
    the field nor what to do."""
    run = run_in_process({"accessToken": OAUTH_TOKEN, **actor_input}, snap=ads)
    assert run.returncode == 1
    assert run.final_message == message
    assert run.output["error"] == message


def test_a_403_on_an_account_of_another_organization_names_the_field_not_an_expired_token(ads: FakeSnap) -> None:
    """A valid OAuth token without access to the ad account: it used to read as a refused (expired) token, with
    advice to refresh a token that was never the problem."""
    ads.add_faults("pixels", Fault.status(403))
    run = run_in_process({"task": "list_pixels", "accessToken": OAUTH_TOKEN, "adAccountId": ACCOUNT}, snap=ads)
    assert run.returncode == 1
    assert run.final_message == (
        f"Snap Marketing API pixels of ad account {ACCOUNT}: the token has no access to this ad account (HTTP 403: "
        f"{NOT_SERVED}). Check adAccountId, or use a token of the organization that owns the ad account."
    )


def test_a_marketing_api_400_says_which_request_and_field_it_is_about(ads: FakeSnap) -> None:
    """A 400 from the Marketing API used to fail the run with Snap's bare reason ('bad')."""
    refusal = {"request_status": "ERROR", "debug_message": "Invalid ad account id", "display_message": "bad"}
    ads.add_faults("pixels", Fault.status(400, refusal))
    run = run_in_process({"task": "list_pixels", "accessToken": OAUTH_TOKEN, "adAccountId": ACCOUNT}, snap=ads)
    assert run.returncode == 1
    assert run.final_message == (
        f"Snap Marketing API pixels of ad account {ACCOUNT}: Snap refused the request (HTTP 400: bad). Check "
        "adAccountId: copy the ad account id from Ads Manager."
    )


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.status(401, {"error": "invalid_client", "error_description": "Client authentication failed"}),
         "Snap OAuth token refresh: Snap refused the OAuth client (HTTP 401: Client authentication failed). Check "
         "clientId and clientSecret: they must be those of the Snap OAuth app the refresh token was issued to."),
        (Fault.status(400, {"error": "invalid_grant"}),
         "Snap OAuth token refresh: Snap refused the refresh token (HTTP 400: invalid_grant). Check refreshToken: it "
         "may have been revoked or issued to another OAuth app (clientId); get a new one through Snap's OAuth flow."),
    ],
)  # fmt: skip
def test_a_refused_refresh_names_the_oauth_fields_not_the_access_token(
    ads: FakeSnap, fault: Fault, message: str
) -> None:
    """Snap's OAuth endpoint refuses the client (invalid_client, a 401 by RFC 6749 5.2) or the refresh token
    (invalid_grant). The 401 used to read 'Snap refused the access token ... give refreshToken, clientId and
    clientSecret', the very fields given; the 400 named no field."""
    ads.add_faults("token", fault)
    run = run_in_process({"task": "list_pixels", "accessToken": "expired", "adAccountId": ACCOUNT, **REFRESH}, snap=ads)
    assert run.returncode == 1
    assert run.final_message == message
    assert "cs-1" not in run.everything_written() and "rt-1" not in run.everything_written()


def test_a_rate_limit_that_outlasts_the_retries_says_so_and_what_to_do(ads: FakeSnap, retry_waits: list[float]) -> None:
    """A 429 through every retry used to end in a bare 'failed after 3 attempts: HTTP 429'."""
    ads.add_faults("pixels", *[Fault.status(429)] * 3)
    actor_input = {"task": "list_pixels", "accessToken": OAUTH_TOKEN, "adAccountId": ACCOUNT, "maxRetries": 2}
    run = run_in_process(actor_input, snap=ads)
    assert run.returncode == 1
    assert run.final_message == (
        f"Snap Marketing API pixels of ad account {ACCOUNT} failed after 3 attempts: HTTP 429. Snap's rate limit held "
        "through every retry: run again later, with fewer requests at once (fewer runs using this token; for the "
        "send and validate tasks a lower maxRequestsPerSecond or maxConcurrency), or raise maxRetries."
    )


@pytest.mark.parametrize(
    ("kind", "actor_input", "what"),
    [
        ("pixels", {"task": "list_pixels", "accessToken": OAUTH_TOKEN, "adAccountId": ACCOUNT},
         f"Snap Marketing API pixels of ad account {ACCOUNT}"),
        ("logs", {"task": "get_test_event_logs", "accessToken": CAPI_TOKEN, "pixelId": PIXEL},
         f"Snap test event logs of {PIXEL}"),
        ("eqs", {"task": "get_event_quality", "accessToken": CAPI_TOKEN, "pixelId": PIXEL},
         f"Snap Signal Readiness API for pixel {PIXEL}"),
    ],
    ids=["list_pixels", "get_test_event_logs", "get_event_quality"],
)  # fmt: skip
def test_an_answer_that_is_not_snaps_json_fails_the_lookup_instead_of_finding_nothing(
    ads: FakeSnap, kind: str, actor_input: dict[str, Any], what: str
) -> None:
    """A 200 with an HTML page (a proxy or maintenance page in front of Snap) was read as nothing found: 'list_pixels:
    0 pixels' for an account that has 4, '0 test event logs', '0 quality scores', each a succeeded run."""
    ads.add_faults(kind, Fault.status(200, "<html><body>Service temporarily unavailable</body></html>"))
    run = run_in_process(actor_input, snap=ads)
    assert run.returncode == 1
    assert run.output["succeeded"] is False
    assert run.final_message == (
        f"{what}: Snap answered with something that is not its API's JSON (HTTP 200, text/plain), so nothing could "
        "be read from it; a proxy, firewall or maintenance page may stand between this run and Snap. Run it again "
        "later."
    )


def test_a_secret_quoted_back_by_snap_never_reaches_output_status_or_log(ads: FakeSnap) -> None:
    """Snap's OAuth endpoint refuses the refresh and its error quotes what it was given ("refresh_token X is invalid
    for client_secret Y"): the run takes its own secrets out of every text it writes, whatever their shape (only
    `name=value` and `Bearer ...` were caught: the refresh token and the client secret reached the status message,
    OUTPUT and the log)."""
    refresh = {"refreshToken": "refresh-secret", "clientId": "cid", "clientSecret": "csecret"}
    quoted = {
        "error": "invalid_grant",
        "error_description": "refresh_token refresh-secret is invalid for client_secret csecret",
    }
    ads.add_faults("token", Fault.status(400, quoted))
    run = run_in_process({"task": "list_pixels", "accessToken": "expired-token", "adAccountId": ACCOUNT, **refresh},
                         snap=ads)  # fmt: skip
    assert run.returncode == 1
    assert "is invalid for client_secret ***" in run.final_message
    written = run.everything_written() + run.final_message
    assert "refresh-secret" not in written and "csecret" not in written
