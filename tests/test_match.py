"""Every field Snap takes, end to end: what the loopback Snap received for each input, and the rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from conftest import CAPI_TOKEN, ROOT, ActorRun
from fake_snap import FakeSnap
from in_process import run_in_process

from src.events.build import INTEGRATION
from src.input import ActorInput

PIXEL = "pixel-123"
APP = "snap-app-9"
URL = "https://shop.example.com/thanks"
EXTINFO = ["i2", "com.example.app", "771", "Version 7.7.1", "17.4", "iPhone15,2", "en_US", "GMT-1", "TMobile",
           "1179", "2556", "3.00", "6", "128", "64", "America/New_York"]  # fmt: skip


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def send(tmp_path: Path, snap: FakeSnap, events: list[dict[str, Any]], **fields: Any) -> ActorRun:
    actor_input = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "snapAppId": APP, "eventSourceUrl": URL,
                   "task": "send_batch_events", "events": events} | fields  # fmt: skip
    run = run_in_process(actor_input, snap=snap, ppe=True)
    assert run.returncode == 0, run.stderr
    return run


def by_id(snap: FakeSnap) -> dict[str, dict[str, Any]]:
    return {event["event_id"]: event for event in snap.accepted}


def test_names_from_snap_ga4_segment_and_a_custom_mapping(tmp_path: Path, snap: FakeSnap) -> None:
    names = {"a": "page_view", "b": "add_to_cart", "c": "begin_checkout", "d": "Order Completed",
             "e": "Products Searched", "f": "newsletter signup", "g": "Signed Up", "h": "spend_credits"}  # fmt: skip
    events = [{"eventId": key, "eventType": name, "email": "a@example.com", "price": 1} for key, name in names.items()]
    events.append({"eventId": "z", "eventType": "Coupon Applied", "email": "a@example.com"})
    run = send(tmp_path, snap, events, eventNameMapping={"Newsletter-Signup": "custom_event_1"})
    sent = {key: event["event_name"] for key, event in by_id(snap).items()}
    assert sent == {"a": "PAGE_VIEW", "b": "ADD_CART", "c": "START_CHECKOUT", "d": "PURCHASE", "e": "SEARCH",
                    "f": "CUSTOM_EVENT_1", "g": "SIGN_UP", "h": "SPENT_CREDITS"}  # fmt: skip
    [invalid] = run.rows_by_status("invalid")
    assert invalid["eventId"] == "z"
    assert "'Coupon Applied'" in invalid["error"]
    assert "PURCHASE" in invalid["error"]
    assert "eventNameMapping" in invalid["error"]
    assert not invalid["charged"]
    assert {event["integration"] for event in snap.accepted} == {INTEGRATION}


def test_a_mapping_to_a_name_snap_does_not_take_fails_the_run(tmp_path: Path, snap: FakeSnap) -> None:
    actor_input = {"accessToken": CAPI_TOKEN, "pixelId": PIXEL, "task": "send_event", "email": "a@example.com",
                   "eventType": "x", "eventNameMapping": {"x": "BOUGHT"}}  # fmt: skip
    run = run_in_process(actor_input, snap=snap)
    assert run.returncode != 0
    assert "eventNameMapping" in run.output["error"]
    assert "BOUGHT" in run.output["error"]
    assert snap.requests == []


def test_limited_data_use_per_run_and_per_event(tmp_path: Path, snap: FakeSnap) -> None:
    events = [{"eventId": "plain", "eventType": "SIGN_UP", "email": "a@example.com"},
              {"eventId": "ldu", "eventType": "SIGN_UP", "email": "b@example.com", "limitedDataUse": True},
              {"eventId": "ldu-text", "eventType": "SIGN_UP", "email": "c@example.com", "limitedDataUse": "true"},
              {"eventId": "native", "event_name": "SIGN_UP", "user_data": {"em": "d@example.com"},
               "data_processing_options": ["LDU"]}]  # fmt: skip
    send(tmp_path / "per-event", snap, events)
    sent = by_id(snap)
    assert "data_processing_options" not in sent["plain"]
    for key in ("ldu", "ldu-text", "native"):
        assert sent[key]["data_processing_options"] == ["LDU"]

    snap.accepted.clear()
    send(tmp_path / "per-run", snap, events[:1], limitedDataUse=True)
    assert by_id(snap)["plain"]["data_processing_options"] == ["LDU"]


def test_opted_out_events_stay_unsent_by_default(tmp_path: Path, snap: FakeSnap) -> None:
    events = [{"eventId": "in", "eventType": "PURCHASE", "email": "a@example.com", "price": 3},
              {"eventId": "out", "eventType": "PURCHASE", "email": "b@example.com", "price": 3,
               "optOut": True}]  # fmt: skip
    run = send(tmp_path, snap, events)
    assert list(by_id(snap)) == ["in"]
    [skipped] = run.rows_by_status("skipped")
    assert skipped["eventId"] == "out"
    assert "opted out" in skipped["error"]
    assert "sendOptedOutEvents" in skipped["error"]
    assert skipped["charged"] is False
    assert skipped["matchKeys"] == []
    assert run.charged_conversions == 1
    assert run.output["counts"] == {"sent": 1, "skipped": 1}


def test_opted_out_events_go_with_ldu_when_the_user_says_so(tmp_path: Path, snap: FakeSnap) -> None:
    events = [{"eventId": "web", "eventType": "PURCHASE", "email": "b@example.com", "price": 3, "optOut": True},
              {"eventId": "app", "eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "ABC-1",
               "extinfo": EXTINFO, "optOut": True}]  # fmt: skip
    run = send(tmp_path, snap, events, sendOptedOutEvents=True)
    sent = by_id(snap)
    assert sent["web"]["data_processing_options"] == ["LDU"]
    assert sent["app"]["data_processing_options"] == ["LDU"]
    assert sent["app"]["app_data"]["advertiser_tracking_enabled"] is False
    assert "app_data" not in sent["web"]
    assert run.output["counts"] == {"sent": 2}


def test_app_events_carry_app_data_to_the_snap_app_id(tmp_path: Path, snap: FakeSnap) -> None:
    events = [
        {"eventId": "flat", "eventType": "purchase", "actionSource": "MOBILE_APP", "mobileAdId": "402DA762-201E",
         "idfv": "C305F2DB-56FC", "price": "9.5", "currency": "usd", "advertiserTrackingEnabled": "authorized",
         "extinfo": [*EXTINFO[:-1], 7], "appId": 1234567},
        {"eventId": "native", "event_name": "APP_INSTALL", "action_source": "MOBILE_APP",
         "user_data": {"madid": "AA-BB"}, "app_data": {"advertiser_tracking_enabled": 0, "extinfo": EXTINFO}},
        {"eventId": "short", "eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "x",
         "extinfo": EXTINFO[:15]},
        {"eventId": "android-tag", "eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "x",
         "extinfo": ["x2", *EXTINFO[1:]]},
        {"eventId": "web", "eventType": "SIGN_UP", "email": "a@example.com", "extinfo": EXTINFO},
        {"eventId": "no-extinfo", "eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "x"},
        {"eventId": "ios-ids", "event_name": "APP_OPEN", "action_source": "MOBILE_APP", "app_data": {"extinfo": ["i2"]},
         "user_data": {"madid": "6D92078A-8246", "idfa": "6D92078A-8246", "idfv": "C305F2DB-56FC"}},
    ]  # fmt: skip
    run = send(tmp_path, snap, events)
    sent = by_id(snap)
    flat = sent["flat"]
    assert flat["user_data"]["madid"] == "402da762-201e"
    assert flat["user_data"]["idfv"] == "c305f2db-56fc"
    assert flat["custom_data"] == {"value": 9.5, "currency": "USD"}
    assert flat["app_data"] == {
        "advertiser_tracking_enabled": True,
        "extinfo": [*EXTINFO[:-1], "7"],
        "app_id": "1234567",
    }
    assert sent["native"]["app_data"] == {"advertiser_tracking_enabled": False, "extinfo": EXTINFO}
    app_paths = {r.path for r in snap.requests if r.kind == "events"}
    assert app_paths == {f"/v3/{APP}/events", f"/v3/{PIXEL}/events"}
    assert "app_data" not in sent["web"]
    [web_row] = [row for row in run.rows if row["eventId"] == "web"]
    assert any("app_data is for MOBILE_APP" in warning for warning in web_row["warnings"])
    assert sent["short"]["app_data"]["extinfo"] == [*EXTINFO[:15], ""]  # padded to Snap's 16 positions
    assert sent["ios-ids"]["user_data"] == {"madid": "6d92078a-8246", "idfa": "6d92078a-8246", "idfv": "c305f2db-56fc"}
    assert sent["ios-ids"]["app_data"]["extinfo"] == ["i2", *[""] * 15]
    invalid = {row["eventId"]: row["error"] for row in run.rows_by_status("invalid")}
    assert set(invalid) == {"android-tag", "no-extinfo"}
    assert "extinfo[0]" in invalid["android-tag"]
    assert "MOBILE_APP events need app_data.extinfo" in invalid["no-extinfo"]


def test_several_values_per_identifier_and_every_user_data_field(tmp_path: Path, snap: FakeSnap) -> None:
    events = [
        {"eventId": "flat", "eventType": "SIGN_UP", "email": ["One@Example.com", " one@example.com", "two@example.com"],
         "phone": ["+44 844 412 4653", "555-ZZZ-9"], "externalId": ["c-1", "c-2"], "firstName": "Zoë",
         "lastName": "O'Brien", "gender": "Female", "dateOfBirth": "17 May 1990", "city": "New York",
         "state": "California", "zip": "94107-1234", "country": "United Kingdom", "ipAddress": "203.0.113.9",
         "userAgent": "UA/1", "scClickId": "Ck-1", "uuid1": "cookie-1"},
        {"eventId": "native", "event_name": "SIGN_UP",
         "user_data": {"em": ["a@example.com", sha("b@example.com")], "fn": ["Ann", "Anna"]}},
    ]  # fmt: skip
    run = send(tmp_path, snap, events)
    sent = by_id(snap)
    user = sent["flat"]["user_data"]
    assert user["em"] == [sha("one@example.com"), sha("two@example.com")]
    assert user["ph"] == [sha("448444124653")]
    assert user["external_id"] == [sha("c-1"), sha("c-2")]
    assert user["fn"] == sha("zoë")
    assert user["ln"] == sha("obrien")
    assert user["ge"] == sha("f")
    assert user["db"] == sha("19900517")
    assert user["ct"] == sha("newyork")
    assert user["st"] == sha("ca")
    assert user["zp"] == sha("94107")
    assert user["country"] == sha("gb")
    assert (user["client_ip_address"], user["client_user_agent"]) == ("203.0.113.9", "UA/1")
    assert (user["sc_click_id"], user["sc_cookie1"]) == ("Ck-1", "cookie-1")
    assert sent["native"]["user_data"] == {"em": [sha("a@example.com"), sha("b@example.com")],
                                           "fn": [sha("ann"), sha("anna")]}  # fmt: skip
    [flat_row] = [row for row in run.rows if row["eventId"] == "flat"]
    assert flat_row["matchQuality"] == "excellent"
    assert any("user_data.ph" in warning for warning in flat_row["warnings"])
    assert "555-ZZZ-9" not in run.everything_written()


def test_custom_data_fields_from_both_shapes(tmp_path: Path, snap: FakeSnap) -> None:
    contents = [{"id": "sku-1", "quantity": "2", "item_price": "9.99", "brand": "Acme"}, {"id": 7, "quantity": 1}]
    events = [
        {"eventId": "flat", "eventType": "PURCHASE", "email": "a@example.com", "price": "19.98", "currency": "eur",
         "transactionId": 1001, "itemIds": "sku-1; sku-2", "itemCategory": "shoes", "numberOfItems": "3",
         "contents": contents, "brands": "Acme, Inc.", "searchString": "red shoes", "signUpMethod": "google"},
        {"eventId": "native", "event_name": "SEARCH", "user_data": {"em": "a@example.com"},
         "custom_data": {"search_string": "boots", "brands": ["A", "B"], "content_ids": ["1", 2],
                         "contents": [{"id": "x", "quantity": 1.0, "item_price": 3}]}},
        {"eventId": "bad-qty", "eventType": "ADD_CART", "email": "a@example.com",
         "contents": [{"id": "a", "quantity": 0}]},
        {"eventId": "bad-price", "eventType": "ADD_CART", "email": "a@example.com",
         "contents": [{"id": "a", "item_price": "cheap"}]},
        {"eventId": "no-id", "eventType": "ADD_CART", "email": "a@example.com", "contents": [{"quantity": 1}]},
    ]  # fmt: skip
    run = send(tmp_path, snap, events)
    sent = by_id(snap)
    assert sent["flat"]["custom_data"] == {
        "value": 19.98, "currency": "EUR", "order_id": "1001", "content_ids": ["sku-1", "sku-2"],
        "content_category": "shoes", "num_items": 3, "brands": "Acme, Inc.", "search_string": "red shoes",
        "sign_up_method": "google",
        "contents": [{"id": "sku-1", "quantity": 2, "item_price": 9.99, "brand": "Acme"}, {"id": "7", "quantity": 1}],
    }  # fmt: skip
    assert sent["native"]["custom_data"] == {"search_string": "boots", "brands": "A,B", "content_ids": ["1", "2"],
                                             "contents": [{"id": "x", "quantity": 1, "item_price": 3}],
                                             "currency": "USD"}  # fmt: skip
    invalid = {row["eventId"]: row["error"] for row in run.rows_by_status("invalid")}
    assert invalid == {
        "bad-qty": "contents[0].quantity must be a whole number from 1 to 1,000,000,000",
        "bad-price": "contents[0].item_price must be a number",
        "no-id": "contents[0].id is missing",
    }


def test_single_event_input_names_reach_snap(tmp_path: Path, snap: FakeSnap) -> None:
    actor_input = {"accessToken": CAPI_TOKEN, "snapAppId": APP, "task": "send_event", "eventType": "SIGN_UP",
                   "actionSource": "MOBILE_APP", "mobileAdId": "m-1", "signUpMethod": "email", "brands": ["A"],
                   "searchString": "q", "contents": [{"id": "s", "quantity": 1}], "advertiserTrackingEnabled": False,
                   "extinfo": EXTINFO, "appId": "com.example.app", "gender": "m", "dateOfBirth": "1990-05-17",
                   "idfv": "V-1"}  # fmt: skip
    run = run_in_process(actor_input, snap=snap)
    assert run.returncode == 0, run.stderr
    [event] = snap.accepted
    assert event["custom_data"] == {"sign_up_method": "email", "brands": "A", "search_string": "q",
                                         "contents": [{"id": "s", "quantity": 1}], "num_items": 1,
                                         "currency": "USD"}  # fmt: skip
    assert event["app_data"] == {"advertiser_tracking_enabled": False, "extinfo": EXTINFO, "app_id": "com.example.app"}
    assert event["user_data"]["ge"] == sha("m")
    assert event["user_data"]["db"] == sha("19900517")
    assert event["user_data"]["idfv"] == "v-1"


def test_the_input_schema_lists_every_input_field() -> None:
    schema = json.loads((ROOT / "INPUT_SCHEMA.json").read_text())["properties"]
    fields = {info.alias for info in ActorInput.model_fields.values()}
    assert set(schema) == fields
    assert {"get_test_event_logs", "get_test_event_stats"} <= set(schema["task"]["enum"])
    assert all(schema[name].get("isSecret") for name in ("accessToken", "refreshToken", "clientSecret"))
