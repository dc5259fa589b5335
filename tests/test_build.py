"""One raw event to one Snap payload or one row's reason: the cases the mutation baseline found untested (issue 11)."""

from __future__ import annotations

import json
import time
import types
from typing import Any

import pytest

from src.events.build import (
    OPTED_OUT,
    UNPREPARABLE,
    ConversionBuilder,
    Destinations,
    PreparedEvent,
    RejectedEvent,
    content_event_id,
    parse_event_time,
    shown,
)
from src.events.names import EventNameResolver
from src.events.shape import SourceEvent
from src.events.user_data import UserDataNormalizer

NOW = 1_700_000_000.0
PIXEL = "pixel-123"
APP = "snap-app-456"
URL = "https://shop.example.com/checkout"
NOT_OBJECTS = "user_data, custom_data and app_data must be JSON objects"


def build(data: Any, **options: Any) -> PreparedEvent | RejectedEvent:
    builder = ConversionBuilder(
        destinations=Destinations(PIXEL, APP),
        normalizer=UserDataNormalizer(),
        names=EventNameResolver(None),
        now=lambda: NOW,
        **options,
    )
    return builder.build(SourceEvent(7, data))


def prepared(data: Any, **options: Any) -> PreparedEvent:
    result = build(data, **options)
    assert isinstance(result, PreparedEvent), result
    return result


def rejected(data: Any, **options: Any) -> RejectedEvent:
    result = build(data, **options)
    assert isinstance(result, RejectedEvent), result
    return result


def native(**sections: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_name": "PAGE_VIEW", "event_source_url": URL, "user_data": {"em": "a@example.com"}}
    event.update(sections)
    return event


def app_open(**fields: Any) -> dict[str, Any]:
    return {"eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "aa-bb", "extinfo": ["a2"], **fields}


@pytest.mark.parametrize(
    "sections",
    [
        {"user_data": "x"},
        {"custom_data": [1]},
        {"app_data": "y"},
        {"user_data": ["a@example.com"]},
        {"user_data": "x", "custom_data": "y"},  # two of one kind (not dicts), the third a dict
        {"user_data": "x", "custom_data": "y", "app_data": "z"},  # all three of one kind, not dicts
    ],
    ids=["user_data", "custom_data", "app_data", "user_data-list", "two-texts", "three-texts"],
)
def test_sections_that_are_not_objects_are_one_invalid_row_with_a_clear_reason(sections: dict[str, Any]) -> None:
    result = rejected(native(**sections))
    assert result.error == NOT_OBJECTS
    assert result.status == "invalid"
    assert result.event_name == "PAGE_VIEW"


def test_a_read_only_mapping_is_an_object() -> None:
    event = native(user_data=types.MappingProxyType({"em": "a@example.com"}))
    assert prepared(event).payload["user_data"]["em"] == prepared(native()).payload["user_data"]["em"]


def test_an_event_that_breaks_a_rule_unforeseen_is_one_row_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, user: object) -> object:
        raise KeyError("boom")

    monkeypatch.setattr(UserDataNormalizer, "normalize", broken)
    result = rejected(native())
    assert result.error == f"{UNPREPARABLE} (KeyError)"


def test_opted_out_events_are_skipped_unless_sending_them_is_asked_for() -> None:
    skipped = rejected({**native(), "optOut": "yes", "event_id": "e-1"})
    assert (skipped.status, skipped.error, skipped.event_id) == ("skipped", OPTED_OUT, "e-1")
    sent = prepared({**native(), "optOut": "yes"}, send_opted_out=True)
    assert sent.payload["data_processing_options"] == ["LDU"]
    assert "app_data" not in sent.payload
    app = prepared(app_open(optOut=True), send_opted_out=True)
    assert app.payload["app_data"]["advertiser_tracking_enabled"] is False
    assert app.payload["data_processing_options"] == ["LDU"]
    assert "advertiser_tracking_enabled" not in prepared(app_open()).payload["app_data"]
    assert "data_processing_options" not in prepared(app_open()).payload


def test_opted_out_app_event_keeps_a_tracking_flag_it_gave() -> None:
    app = prepared(app_open(optOut=True, advertiserTrackingEnabled=True), send_opted_out=True)
    assert app.payload["app_data"]["advertiser_tracking_enabled"] in (True, 1)


def test_app_data_on_a_web_event_is_left_out_with_a_warning() -> None:
    event = prepared(native(app_data={"extinfo": ["a2"]}))
    assert "app_data" not in event.payload
    assert "app_data is for MOBILE_APP events and was left out" in event.warnings
    assert not any("app_data" in warning for warning in prepared(app_open()).warnings)


def test_data_processing_options_pass_through_unless_ldu_is_set() -> None:
    assert prepared(native(data_processing_options=["XYZ"])).payload["data_processing_options"] == ["XYZ"]
    assert prepared(native(data_processing_options=["XYZ"]), limited_data_use=True).payload[
        "data_processing_options"
    ] == ["LDU"]
    assert "data_processing_options" not in prepared({**native(), "limitedDataUse": False}).payload


def test_event_time_parsing() -> None:
    assert parse_event_time("2023-11-14T22:00:00", NOW) == 1_699_999_200  # no zone: UTC
    assert parse_event_time("2023-11-14T22:00:00Z", NOW) == 1_699_999_200
    assert parse_event_time("2023-11-14T23:00:00+01:00", NOW) == 1_699_999_200
    assert parse_event_time(1_699_999_200_000, NOW) == 1_699_999_200
    assert parse_event_time(99_999_999_999, NOW) == 99_999_999_999
    assert parse_event_time(100_000_000_000, NOW) == 100_000_000
    assert parse_event_time(None, NOW) == int(NOW)
    assert parse_event_time("", NOW) == int(NOW)
    plain = r"^eventTime must be Unix seconds, Unix milliseconds or an ISO 8601 date$"
    for wrong in ("yesterday", True, "2023-13-45"):
        with pytest.raises(ValueError, match=plain):
            parse_event_time(wrong, NOW)
    assert rejected(native(event_time="yesterday")).error.startswith("eventTime must be")
    for bad in ("nan", "inf", float("nan"), 10**400):
        with pytest.raises(ValueError, match="NaN or infinity"):
            parse_event_time(bad, NOW)


def test_the_dedup_id_is_stable_and_leaves_out_a_defaulted_time() -> None:
    first = prepared(native())
    later = ConversionBuilder(
        destinations=Destinations(PIXEL, APP), normalizer=UserDataNormalizer(), names=EventNameResolver(None),
        now=lambda: NOW + 1000,
    ).build(SourceEvent(7, native()))  # fmt: skip
    assert isinstance(later, PreparedEvent)
    assert first.event_id == later.event_id
    assert len(first.event_id) == 32
    timed = prepared(native(event_time=int(NOW) - 10))
    assert timed.event_id != first.event_id
    assert len(content_event_id({"a": 1})) == 32


def test_rejected_rows_name_the_event_and_its_order_id() -> None:
    result = rejected(native(user_data={}, custom_data={"order_id": "o-9"}))
    assert (result.event_name, result.event_id) == ("PAGE_VIEW", "o-9")
    unknown = rejected({"eventType": "NOT_A_SNAP_EVENT", "eventId": "e-2"})
    assert unknown.event_name == "NOT_A_SNAP_EVENT"
    assert unknown.event_id == "e-2"
    nameless = rejected({"eventId": "e-3", "email": "a@example.com"})
    assert nameless.event_name is None
    assert nameless.error == "eventType is missing"


def test_long_text_in_a_row_is_cut_short() -> None:
    assert shown("x" * 2000) == "x" * 2000
    assert shown("x" * 2001) == "x" * 1999 + "…"
    assert shown("ab", 1) == "…"
    assert shown("a\ud800b") == "a?b"
    result = rejected({"eventType": "X" * 3000})
    assert result.event_name == "X" * 1999 + "…"


def test_warnings_are_cut_at_500_characters() -> None:
    result = prepared(native(app_data={"extinfo": ["a2"]}, event_id="e" * 10))
    assert all(len(warning) <= 500 for warning in result.warnings)
    assert shown("w" * 600, 500) == "w" * 499 + "…"


def test_a_record_that_is_not_an_event_is_one_invalid_row() -> None:
    builder = ConversionBuilder(
        destinations=Destinations(PIXEL, APP), normalizer=UserDataNormalizer(), names=EventNameResolver(None)
    )
    result = builder.build(SourceEvent(3, None, "line 4 is not JSON"))
    assert result == RejectedEvent(3, "line 4 is not JSON")
    assert (result.event_name, result.event_id, result.action_source, result.status) == (None, None, None, "invalid")
    assert builder.build(SourceEvent(4, None)) == RejectedEvent(4, "not an event object")


def test_a_landing_url_that_cannot_be_parsed_just_has_no_click_id() -> None:
    event = prepared(native(event_source_url="https://[broken/?ScCid=abc"))
    assert "sc_click_id" not in event.payload["user_data"]
    assert prepared(native(event_source_url=URL + "?x=1&ScCid=Abc")).payload["user_data"]["sc_click_id"] == "Abc"
    assert prepared(native(event_source_url=URL + "?sscid=")).payload["user_data"].get("sc_click_id") is None


def test_the_dedup_id_ignores_key_order_and_counts_a_given_time() -> None:
    assert content_event_id({"a": 1, "b": 2}) == content_event_id({"b": 2, "a": 1})
    assert content_event_id({"event_time": 1}) != content_event_id({"event_time": 2})
    assert content_event_id({"event_time": 1}, time_given=False) == content_event_id({}, time_given=False)


def test_warnings_of_events_sent_and_refused_are_cut_at_500() -> None:
    sent = prepared(native(user_data={"em": "a@example.com", "k" * 700: "x"}))
    assert [len(warning) for warning in sent.warnings] == [500]
    refused = rejected({**native(action_source="SHOP"), "f" * 700: 1})
    assert [len(warning) for warning in refused.warnings] == [500]
    assert refused.event_id is None


def test_a_long_action_source_is_cut_at_100_in_the_row() -> None:
    result = rejected(native(action_source="W" * 300))
    assert result.error == "actionSource must be WEB, MOBILE_APP or OFFLINE"
    assert result.action_source == "W" * 99 + "…"


def test_the_integration_is_named_unless_given() -> None:
    assert prepared(native()).payload["integration"] == "apify-snapchat-conversions-actor"
    assert prepared(native(integration="segment")).payload["integration"] == "segment"


def test_a_time_without_a_zone_is_utc_whatever_the_machine_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_event_time("2023-11-14T22:00:00", NOW) == 1_699_999_200
    finally:
        monkeypatch.undo()
        time.tzset()


def test_what_orjson_cannot_encode_is_still_sent_or_refused_by_name() -> None:
    """The payload's JSON is encoded once, with orjson; an integer beyond 64 bits (in a field passed through as
    given) goes out through `json` instead, and a lone surrogate is refused naming its field."""
    big = 10**30
    base = {"eventType": "SIGN_UP", "email": "a@example.com", "eventTime": int(NOW) - 60, "eventSourceUrl": URL}
    event = prepared({**base, "custom_data": {"order_ref_number": big}})
    assert json.loads(event.body)["custom_data"]["order_ref_number"] == big
    assert event.payload["custom_data"]["order_ref_number"] == big
    refused = rejected({**base, "eventId": "order-\ud800"})
    assert "eventId" in refused.error and "broken UTF-8" in refused.error


def test_a_payload_that_goes_out_through_json_is_compact_utf_8_as_orjson_writes_it() -> None:
    """What Snap receives for an event with an integer beyond 64 bits: the same compact UTF-8 bytes orjson writes
    for any other event (non-ASCII text as it is, not escaped)."""
    base = {"eventType": "SIGN_UP", "email": "a@example.com", "eventTime": int(NOW) - 60, "eventSourceUrl": URL}
    event = prepared({**base, "eventId": "e-1", "custom_data": {"order_ref_number": 10**30, "brands": "Zoë"}})
    small = prepared({**base, "eventId": "e-1", "custom_data": {"order_ref_number": 10**15, "brands": "Zoë"}})
    assert event.body == small.body.replace(b"1000000000000000", b"1000000000000000000000000000000")
    assert "Zoë".encode() in event.body and b"\\u" not in event.body


@pytest.mark.parametrize(
    ("given", "lasting"),
    [({"eventId": "e-1"}, True), ({"transactionId": "o-1"}, True), ({"eventTime": int(NOW) - 60}, True), ({}, False)],
)
def test_an_id_from_content_without_a_time_is_not_one_for_later_runs(given: dict[str, Any], lasting: bool) -> None:
    event = prepared({"eventType": "SIGN_UP", "email": "a@example.com", "eventSourceUrl": URL, **given})
    assert event.lasting_id is lasting
