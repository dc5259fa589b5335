"""Tests for the fake Snap server itself (tests/fake_snap.py)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_snap import FakeSnap, Fault, error_code, make_pixel

NOW = 1_700_000_000.0
TOKEN = "capi-token-secret"
OAUTH = "oauth-token-secret"
PIXEL = "pix-1"
EM = hashlib.sha256(b"person@example.com").hexdigest()


def event(**overrides: Any) -> dict[str, Any]:
    """A valid WEB PAGE_VIEW event, with top-level overrides (None removes a key)."""
    ev: dict[str, Any] = {
        "event_name": "PAGE_VIEW",
        "event_time": int(NOW) - 60,
        "action_source": "WEB",
        "event_source_url": "https://shop.example.com/",
        "event_id": "e-1",
        "user_data": {"em": [EM]},
    }
    ev.update(overrides)
    return {k: v for k, v in ev.items() if v is not None}


@pytest.fixture
def snap() -> Iterator[FakeSnap]:
    pixels = {"acct-1": [make_pixel(f"px-{i:03d}", "acct-1") for i in range(120)], "acct-empty": []}
    with FakeSnap(now=lambda: NOW, pixels=pixels) as fake:
        yield fake


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def send(client: httpx.Client, snap: FakeSnap, events: list[Any], *, path: str = "events") -> httpx.Response:
    return client.post(f"{snap.base_url}/v3/{PIXEL}/{path}", params={"access_token": TOKEN}, json={"data": events})


def test_accepts_and_records(snap: FakeSnap, client: httpx.Client) -> None:
    resp = send(client, snap, [event(event_id="a"), event(event_id="b")])
    assert resp.status_code == 200
    assert resp.json() == {"status": "VALID", "reason": "Events have been processed successfully."}
    assert snap.accepted_event_ids() == ["a", "b"]
    assert [e["event_id"] for e in snap.accepted] == ["a", "b"]
    rec = snap.requests[0]
    assert (rec.method, rec.path, rec.kind, rec.status) == ("POST", f"/v3/{PIXEL}/events", "events", 200)
    assert rec.query["access_token"] == TOKEN
    assert rec.json["data"][1]["event_id"] == "b"
    assert rec.event_count == 2
    assert TOKEN not in resp.text
    assert snap.duplicates() == []
    send(client, snap, [event(event_id="a")])
    assert snap.duplicates() == ["a"]


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        ({"event_name": "ADD_TO_CART"}, "event_name", "Unrecognized event name"),
        ({"event_time": int(NOW) * 1000}, "event_time", "invalid Unix timestamp"),
        ({"event_time": int(NOW) - 38 * 86400}, "event_time", "Timestamp invalid or out of range"),
        ({"event_time": int(NOW) + 7200}, "event_time", "Timestamp invalid or out of range"),
        ({"event_time": "1700000000"}, "event_time", "Timestamp invalid or out of range"),
        ({"event_source_url": None}, "event_source_url", "event_source_url is required for WEB events"),
        ({"action_source": "EMAIL"}, "action_source", "Unrecognized action source"),
        ({"user_data": {"em": "person@example.com"}}, "user_data.em", "Unhashed PII in user_data.em"),
        ({"user_data": {"em": EM, "fn": ["john"]}}, "user_data.fn", "Unhashed PII in user_data.fn"),
        ({"user_data": {"em": EM, "client_ip_address": EM}}, "user_data.client_ip_address", None),
        ({"user_data": {"client_ip_address": "1.2.3.4"}}, "user_data", "Insufficient PII"),
        ({"event_name": "PURCHASE", "custom_data": {"value": 1}}, "custom_data.currency", None),
        (
            {"event_name": "PURCHASE", "custom_data": {"currency": "USD", "value": "x"}},
            "custom_data.value",
            None,
        ),
        ({"custom_data": {"currency": "DOLLARS"}}, "custom_data.currency", "Invalid custom_data.currency"),
        ({"event_source_url": "www.example.com/x"}, "event_source_url", "event_source_url must include the protocol"),
        (
            {"action_source": "MOBILE_APP", "event_source_url": None},
            "app_data.extinfo",
            "app_data.extinfo is required for MOBILE_APP events",
        ),
    ],
)
def test_bad_event_rejects_whole_request(
    snap: FakeSnap, client: httpx.Client, bad: dict[str, Any], field: str, reason: str | None
) -> None:
    resp = send(client, snap, [event(event_id="ok-0"), event(event_id="bad", **bad), event(event_id="ok-2")])
    assert resp.status_code == 400
    body = resp.json()
    assert body["status"] == "INVALID"
    assert body["event"] == 1
    assert error_code(field) in body["errors"]["codes"]
    if reason is not None:
        assert reason in body["errors"]["error_msgs"]
        assert body["reason"] == reason
    assert snap.accepted == []
    assert snap.accepted_event_ids() == []


def test_valid_variants_accepted(snap: FakeSnap, client: httpx.Client) -> None:
    events = [
        event(event_name="PURCHASE", custom_data={"currency": "USD", "value": "12.50"}),
        event(action_source="OFFLINE", event_source_url=None, user_data={"ph": EM}),
        event(
            action_source="MOBILE_APP",
            event_source_url=None,
            user_data={"madid": "402da762-201e"},
            app_data={"extinfo": ["a2", *[""] * 15]},
        ),
        event(user_data={"client_ip_address": "1.2.3.4", "client_user_agent": "Mozilla/5.0"}),
    ]
    assert send(client, snap, events).status_code == 200
    assert len(snap.accepted) == 4


def test_without_index_mode_answers_like_real_snap(snap: FakeSnap, client: httpx.Client) -> None:
    snap.answer_with_index = False
    snap.reject_event_ids({"nope": "Pixel is not active"})
    resp = send(client, snap, [event(event_id="fine"), event(event_id="nope")])
    assert resp.status_code == 400
    assert resp.json() == {"status": "INVALID", "reason": "Pixel is not active", "error_msgs": ["Pixel is not active"]}
    assert snap.accepted == []


def test_event_quality_scores_take_the_capi_or_oauth_token(snap: FakeSnap, client: httpx.Client) -> None:
    url = f"{snap.base_url}/v1/pixels/{PIXEL}/event_quality_scores"
    for token in (TOKEN, OAUTH):
        body = client.get(url, headers={"Authorization": f"Bearer {token}"}).json()
        assert body["request_status"] == "SUCCESS"
        assert body["pixel_id"] == PIXEL
        assert {entry["event_type"] for entry in body["event_quality_scores"]} == {"PURCHASE", "SIGN_UP"}
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    snap.add_faults("eqs", Fault.status(403))
    assert client.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403


def test_reject_event_ids(snap: FakeSnap, client: httpx.Client) -> None:
    snap.reject_event_ids({"nope": "Pixel is not active"})
    resp = send(client, snap, [event(event_id="fine"), event(event_id="nope")])
    assert resp.status_code == 400
    assert resp.json()["event"] == 1
    assert resp.json()["reason"] == "Pixel is not active"
    assert snap.accepted == []


@pytest.mark.parametrize("count", [0, 2001])
def test_batch_size_limits(snap: FakeSnap, client: httpx.Client, count: int) -> None:
    resp = send(client, snap, [event(event_id=str(i)) for i in range(count)])
    assert resp.status_code == 400
    assert resp.json()["status"] == "INVALID"
    assert "event" not in resp.json()


def test_validate_rules_off_skips_checks() -> None:
    with FakeSnap(validate_rules=False) as fake, httpx.Client() as c:
        resp = c.post(
            f"{fake.base_url}/v3/x/events", params={"access_token": TOKEN}, json={"data": [{"event_id": "z"}]}
        )
        assert resp.status_code == 200
        assert fake.accepted_event_ids() == ["z"]


def test_unauthorized(snap: FakeSnap, client: httpx.Client) -> None:
    bad = client.post(f"{snap.base_url}/v3/{PIXEL}/events", params={"access_token": "wrong"}, json={"data": []})
    assert bad.status_code == 401
    assert bad.json() == {"status": "INVALID", "reason": "Unauthorized: invalid access token"}
    assert "wrong" not in bad.text
    ads = client.get(f"{snap.base_url}/v1/pixels/px-001", headers={"Authorization": "Bearer nope"})
    assert ads.status_code == 401
    assert ads.json()["request_status"] == "ERROR"
    assert ads.json()["error_code"] == "E1002"


def test_429_fault_then_success(snap: FakeSnap, client: httpx.Client) -> None:
    snap.add_faults("events", Fault.status(429, headers={"Retry-After": "1"}))
    first = send(client, snap, [event()])
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert snap.accepted == []
    second = send(client, snap, [event()])
    assert second.status_code == 200
    assert snap.accepted_event_ids() == ["e-1"]
    assert [r.fault for r in snap.requests] == [Fault.status(429, headers={"Retry-After": "1"}), None]
    assert snap.pending_faults("events") == 0


def test_drop_fault_raises_and_accepts_nothing(snap: FakeSnap, client: httpx.Client) -> None:
    snap.add_faults("events", Fault.drop())
    with pytest.raises(httpx.TransportError):
        send(client, snap, [event()])
    assert snap.accepted == []
    assert snap.requests[0].status is None
    assert send(client, snap, [event()]).status_code == 200


def test_drop_after_accept_lands_silently(snap: FakeSnap, client: httpx.Client) -> None:
    snap.add_faults("events", Fault.drop_after_accept())
    with pytest.raises(httpx.TransportError):
        send(client, snap, [event(event_id="ghost")])
    assert snap.accepted_event_ids() == ["ghost"]


def _held(snap: FakeSnap, fault: Fault, gate: threading.Event) -> tuple[threading.Thread, list[Any]]:
    """Send one event on a thread; return once the fake holds the request (it has recorded it)."""
    snap.add_faults("events", fault)
    outcome: list[Any] = []

    def post() -> None:
        with httpx.Client() as own:
            try:
                outcome.append(send(own, snap, [event(event_id="held")]).status_code)
            except httpx.TransportError as error:
                outcome.append(error)

    sender = threading.Thread(target=post)
    sender.start()
    deadline = time.monotonic() + 10
    while not snap.requests and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(snap.requests) == 1
    sender.join(timeout=0.1)
    assert sender.is_alive()  # still waiting for its answer
    return sender, outcome


def test_hold_fault_answers_once_the_gate_opens(snap: FakeSnap) -> None:
    gate = threading.Event()
    sender, outcome = _held(snap, Fault.hold(gate), gate)
    assert outcome == [] and snap.accepted == []  # held: no answer, nothing accepted yet
    gate.set()
    sender.join(timeout=10)
    assert outcome == [200]
    assert snap.accepted_event_ids() == ["held"]


def test_hold_then_drop_fault_accepts_nothing_and_never_answers(snap: FakeSnap) -> None:
    gate = threading.Event()
    sender, outcome = _held(snap, Fault.hold_then_drop(gate), gate)
    assert outcome == []
    gate.set()
    sender.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)
    assert snap.accepted == [] and snap.requests[0].status is None


def test_delay_fault(snap: FakeSnap, client: httpx.Client) -> None:
    snap.add_faults("token", Fault.delay(0.3))
    started = time.monotonic()
    resp = client.post(f"{snap.base_url}/login/oauth2/access_token", data={"grant_type": "refresh_token"})
    assert time.monotonic() - started >= 0.3
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_grant"}


def test_token_refresh(snap: FakeSnap, client: httpx.Client) -> None:
    form = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret"}
    resp = client.post(f"{snap.base_url}/login/oauth2/access_token", data={**form, "refresh_token": "refresh-secret"})
    assert resp.status_code == 200
    assert resp.json()["access_token"] == OAUTH
    assert resp.json()["expires_in"] == 1800
    assert snap.requests[0].form == {**form, "refresh_token": "refresh-secret"}


def test_pixel_paging(snap: FakeSnap, client: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {OAUTH}"}
    url: str | None = f"{snap.base_url}/v1/adaccounts/acct-1/pixels"
    ids: list[str] = []
    pages = 0
    while url:
        resp = client.get(url, headers=auth)
        assert resp.status_code == 200
        body = resp.json()
        assert body["request_status"] == "SUCCESS"
        ids += [p["pixel"]["id"] for p in body["pixels"]]
        url = body.get("paging", {}).get("next_link")
        assert url is None or url.startswith(snap.base_url)
        pages += 1
    assert pages == 3
    assert ids == [f"px-{i:03d}" for i in range(120)]
    one = client.get(f"{snap.base_url}/v1/adaccounts/acct-1/pixels", params={"limit": 1000}, headers=auth)
    assert len(one.json()["pixels"]) == 120
    assert "paging" not in one.json()
    bad_limit = client.get(f"{snap.base_url}/v1/adaccounts/acct-1/pixels", params={"limit": 10}, headers=auth)
    assert bad_limit.status_code == 400
    missing = client.get(f"{snap.base_url}/v1/adaccounts/nope/pixels", headers=auth)
    assert missing.status_code == 404
    assert "not found" in missing.json()["debug_message"]
    assert client.get(f"{snap.base_url}/v1/adaccounts/acct-empty/pixels", headers=auth).json()["pixels"] == []
    got = client.get(f"{snap.base_url}/v1/pixels/px-042", headers=auth)
    assert got.json()["pixels"][0]["pixel"]["ad_account_id"] == "acct-1"
    assert client.get(f"{snap.base_url}/v1/pixels/zzz", headers=auth).status_code == 404


def test_validate_and_test_logs(snap: FakeSnap, client: httpx.Client) -> None:
    base = f"{snap.base_url}/v3/{PIXEL}/events/validate"
    params = {"access_token": TOKEN}
    assert client.get(f"{base}/logs", params=params).json() == {
        "status": "SUCCESS",
        "reason": "No logs found.",
        "logs": [],
    }
    assert client.get(f"{base}/stats", params=params).json()["stats"]["test"] == {
        "latest_event_ts": 0,
        "event_count_past_hour": 0,
    }
    resp = send(
        client,
        snap,
        [event(event_id="v1", integration="apify"), event(event_name="NOPE")],
        path="events/validate",
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "INVALID"
    assert [log["status"] for log in body["event_logs"]] == ["VALID", "INVALID"]
    assert body["event_logs"][1]["errors"] == {
        "codes": ["INVALID_EVENT_NAME"],
        "error_msgs": ["Unrecognized event name"],
    }
    assert [log["event"] for log in body["event_logs"]] == [0, 1]
    assert snap.accepted == []
    assert len(snap.validated) == 2

    logs = client.get(f"{base}/logs", params=params).json()
    assert logs["reason"] == "Logs for asset id processed."
    assert [log["status"] for log in logs["logs"]] == ["INVALID", "VALID"]  # newest first
    assert logs["logs"][1]["integration"] == "apify"
    assert logs["logs"][1]["event_metadata"]["event_name"] == "PAGE_VIEW"
    assert logs["logs"][0]["integration"] == "DIRECT"
    stats = client.get(f"{base}/stats", params=params).json()
    assert stats["reason"] == "Stats for asset id processed."
    assert stats["stats"]["test"] == {"latest_event_ts": int(NOW * 1000), "event_count_past_hour": 2}
    assert client.get(f"{base}/logs", params={"access_token": "x"}).status_code == 401


def test_unknown_path_404(snap: FakeSnap, client: httpx.Client) -> None:
    assert client.get(f"{snap.base_url}/v3/{PIXEL}/events", params={"access_token": TOKEN}).status_code == 404
    assert client.post(f"{snap.base_url}/v2/conversion").status_code == 404


def test_cli_listens_and_exits_on_sigterm() -> None:
    script = Path(__file__).with_name("fake_snap.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--token", "T", "--oauth-token", "O"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("LISTENING http://127.0.0.1:")
        url = line.split(" ", 1)[1]
        live = event(event_time=int(time.time()))  # the CLI validates against the real clock
        with httpx.Client() as c:
            resp = c.post(f"{url}/v3/p/events", params={"access_token": "T"}, json={"data": [live]})
            assert resp.status_code == 200
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert json.loads(out.strip().splitlines()[-1]) == {"accepted": 1, "requests": 1, "duplicates": 0}
