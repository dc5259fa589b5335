"""Snap's acceptance rules on finished payloads: which events are refused before sending, with which reason."""

from __future__ import annotations

from typing import Any

import pytest

from src.events.preflight import MAX_AGE_SECONDS, MAX_CHARS, MAX_FUTURE_SECONDS, preflight

NOW = 1_700_000_000.0
URL = "https://shop.example.com/thanks"


def web(**fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_name": "PAGE_VIEW",
        "action_source": "WEB",
        "event_time": int(NOW) - 60,
        "event_id": "e-1",
        "event_source_url": URL,
        "user_data": {"em": ["a" * 64]},
    }
    payload.update(fields)
    return {key: value for key, value in payload.items() if value is not None}


def app(user_data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    given: dict[str, Any] = {"event_source_url": None, "app_data": {"extinfo": ["a2", "com.example.app", "1.0"]}}
    return web(action_source="MOBILE_APP", user_data=user_data, **{**given, **fields})


def test_a_complete_event_passes() -> None:
    assert preflight(web(), NOW) is None
    assert preflight(app({"madid": "m"}), NOW) is None


@pytest.mark.parametrize("skew", [1, 60, 300, 900, MAX_FUTURE_SECONDS])
def test_a_clock_a_few_minutes_ahead_is_accepted(skew: int) -> None:
    assert MAX_FUTURE_SECONDS == 3600
    assert preflight(web(event_time=NOW + skew), NOW) is None


def test_an_event_more_than_an_hour_ahead_is_refused() -> None:
    assert preflight(web(event_time=NOW + MAX_FUTURE_SECONDS + 1), NOW) == "eventTime is in the future"


def test_the_37_day_window() -> None:
    assert MAX_AGE_SECONDS == 37 * 24 * 3600
    assert preflight(web(event_time=NOW - MAX_AGE_SECONDS), NOW) is None
    assert preflight(web(event_time=NOW - MAX_AGE_SECONDS - 1), NOW) == "eventTime is older than Snap's 37-day window"


@pytest.mark.parametrize(
    "user",
    [{"madid": "m"}, {"idfv": "v"}, {"client_ip_address": "1.2.3.4"}, {"client_user_agent": "ua"}, {}],
    ids=["madid-on-web", "idfv", "ip-only", "ua-only", "none"],
)
def test_web_events_without_a_matchable_identifier_are_refused(user: dict[str, Any]) -> None:
    assert "Insufficient PII" in str(preflight(web(user_data=user), NOW))


def test_an_app_event_with_only_idfv_is_refused() -> None:
    assert "Insufficient PII" in str(preflight(app({"idfv": "v"}), NOW))
    assert "Insufficient PII" in str(preflight(app({"idfv": "v", "client_ip_address": "1.2.3.4"}), NOW))


@pytest.mark.parametrize(
    "user", [{"em": ["h"]}, {"ph": ["h"]}, {"client_ip_address": "1.2.3.4", "client_user_agent": "ua"}]
)
def test_email_phone_or_ip_and_agent_match(user: dict[str, Any]) -> None:
    assert preflight(web(user_data=user), NOW) is None


def test_purchase_needs_a_price_and_an_iso_currency() -> None:
    assert preflight(web(event_name="PURCHASE", custom_data={"value": 5, "currency": "USD"}), NOW) is None
    assert "price" in str(preflight(web(event_name="PURCHASE", custom_data={"currency": "USD"}), NOW))
    assert "currency" in str(preflight(web(event_name="PURCHASE", custom_data={"value": 5, "currency": "usd"}), NOW))
    assert "currency" in str(preflight(web(event_name="PURCHASE", custom_data={"value": 5}), NOW))
    assert preflight(web(event_name="SIGN_UP", custom_data={}), NOW) is None


def test_web_needs_a_url_with_a_protocol() -> None:
    assert preflight(web(event_source_url=None), NOW) == "WEB events need eventSourceUrl"
    assert "protocol" in str(preflight(web(event_source_url="shop.example.com/thanks"), NOW))
    assert "protocol" in str(preflight(app({"madid": "m"}, event_source_url="shop.example.com"), NOW))


def test_app_events_need_extinfo() -> None:
    event = app({"madid": "m"})
    del event["app_data"]
    assert "extinfo" in str(preflight(event, NOW))
    assert "extinfo" in str(preflight({**event, "app_data": {"extinfo": []}}, NOW))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"event_id": "e\x01"}, "eventId contains control characters"),
        ({"event_id": "e\ud800"}, "eventId contains broken UTF-8 (a lone surrogate)"),
        ({"event_id": "e\ufffd"}, "eventId contains U+FFFD replacement characters (broken UTF-8 in the source)"),
        ({"event_source_url": URL + "\x7f"}, "eventSourceUrl contains control characters"),
        ({"event_name": "PAGE\nVIEW"}, "eventType contains control characters"),
        ({"custom_data": {"value": float("nan")}}, "custom_data.value must be a finite number (not NaN or infinity)"),
        ({"custom_data": {"contents": [{"price": float("inf")}]}},
         "custom_data.contents[0].price must be a finite number (not NaN or infinity)"),
        ({"custom_data": {"contents": [{"id": "x\x00"}]}}, "custom_data.contents[0].id contains control characters"),
        ({"custom_data": {"description": "x" * (MAX_CHARS + 1)}},
         f"custom_data.description is longer than {MAX_CHARS} characters"),
    ],
)  # fmt: skip
def test_values_snap_cannot_take_are_refused_with_the_field_named(fields: dict[str, Any], reason: str) -> None:
    assert preflight(web(**fields), NOW) == reason


def test_clean_long_text_and_ordinary_numbers_pass() -> None:
    assert MAX_CHARS == 8192
    assert preflight(web(custom_data={"description": "x" * MAX_CHARS}), NOW) is None
    assert preflight(web(custom_data={"value": 1.5, "contents": [{"id": "sku", "quantity": 2}]}), NOW) is None
    # a long, clean payload is looked at field by field and passes
    assert preflight(web(custom_data={"a": "x" * 5000, "b": "y" * 5000}), NOW) is None
    # the text "null" inside a value is only a hint, not a fault
    assert preflight(web(custom_data={"description": "null and void"}), NOW) is None
    assert preflight(web(custom_data={"flag": None}), NOW) is None


def test_the_first_broken_rule_is_the_reason() -> None:
    event = web(event_time=NOW + 7200, user_data={}, event_source_url=None)
    assert preflight(event, NOW) == "eventTime is in the future"
