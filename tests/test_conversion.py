"""One raw event in, one Snap v3 payload (or the reason there is none) out: src/conversion.py,
src/event_input.py, src/preflight.py and src/match_quality.py."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from src.events.build import (
    ConversionBuilder,
    Destinations,
    EventError,
    PreparedEvent,
    RejectedEvent,
    click_id_from_url,
    content_event_id,
    parse_event_time,
    tidy_custom_data,
)
from src.events.names import EventNameResolver
from src.events.quality import grade
from src.events.shape import SourceEvent, to_native
from src.events.user_data import UserDataNormalizer

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 24 * 3600
PIXEL = "pixel-123"
APP = "snap-app-456"
URL = "https://shop.example.com/checkout"
EM = "542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"  # Person@Example.com
PH = "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"  # +44 844 412 4653
INTEGRATION = "apify-snapchat-conversions-actor"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def builder(
    *,
    pixel: str | None = PIXEL,
    app: str | None = APP,
    defaults: dict[str, Any] | None = None,
    mapping: dict[str, str] | None = None,
    limited_data_use: bool = False,
    phone_country: str | None = None,
) -> ConversionBuilder:
    return ConversionBuilder(
        destinations=Destinations(pixel, app),
        normalizer=UserDataNormalizer(default_phone_country=phone_country),
        names=EventNameResolver(mapping),
        defaults=defaults,
        limited_data_use=limited_data_use,
        now=lambda: NOW,
    )


def build(data: dict[str, Any], **options: Any) -> PreparedEvent | RejectedEvent:
    return builder(**options).build(SourceEvent(0, data))


def prepared(data: dict[str, Any], **options: Any) -> PreparedEvent:
    result = build(data, **options)
    assert isinstance(result, PreparedEvent), getattr(result, "error", result)
    return result


def rejected(data: dict[str, Any], **options: Any) -> RejectedEvent:
    result = build(data, **options)
    assert isinstance(result, RejectedEvent), result
    return result


def page_view(**fields: Any) -> dict[str, Any]:
    """A valid flat WEB PAGE_VIEW; keyword arguments override (None removes)."""
    data: dict[str, Any] = {"eventType": "PAGE_VIEW", "eventSourceUrl": URL, "email": "Person@Example.com"}
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


# --- Both input shapes -------------------------------------------------------------------------

FLAT_PURCHASE = {
    "eventType": "purchase",
    "eventTime": 1_699_999_000_000,
    "actionSource": "web",
    "eventSourceUrl": URL,
    "email": "Person@Example.com",
    "phone": "+44 844 412 4653",
    "firstName": "John",
    "ipAddress": "104.124.214.254",
    "userAgent": "Mozilla/5.0",
    "price": "19.90",
    "currency": "usd",
    "transactionId": "T-1001",
    "itemIds": "a, b;c",
    "numberOfItems": "2",
}

NATIVE_PURCHASE = {
    "event_name": "PURCHASE",
    "event_time": 1_699_999_000,
    "action_source": "WEB",
    "event_source_url": URL,
    "user_data": {
        "em": "Person@Example.com",
        "ph": "+44 844 412 4653",
        "fn": "John",
        "client_ip_address": "104.124.214.254",
        "client_user_agent": "Mozilla/5.0",
    },
    "custom_data": {
        "value": "19.90",
        "currency": "USD",
        "order_id": "T-1001",
        "content_ids": ["a", "b", "c"],
        "num_items": 2,
    },
}

EXPECTED_PURCHASE_PAYLOAD = {
    "event_name": "PURCHASE",
    "event_time": 1_699_999_000,
    "action_source": "WEB",
    "event_source_url": URL,
    "event_id": "T-1001",
    "integration": INTEGRATION,
    "user_data": {
        "em": EM,
        "ph": PH,
        "fn": sha("john"),
        "client_ip_address": "104.124.214.254",
        "client_user_agent": "Mozilla/5.0",
    },
    "custom_data": {
        "value": 19.9,
        "currency": "USD",
        "order_id": "T-1001",
        "content_ids": ["a", "b", "c"],
        "num_items": 2,
    },
}


@pytest.mark.parametrize("shape", [FLAT_PURCHASE, NATIVE_PURCHASE], ids=["flat", "native"])
def test_each_input_shape_gives_the_expected_payload(shape: dict[str, Any]) -> None:
    event = prepared(shape)
    assert event.payload == EXPECTED_PURCHASE_PAYLOAD
    assert event.asset_id == PIXEL
    assert event.event_id == "T-1001"
    assert event.event_name == "PURCHASE"
    assert event.action_source == "WEB"
    assert event.warnings == ()


def test_flat_and_native_shapes_give_the_same_payload() -> None:
    assert prepared(FLAT_PURCHASE).payload == prepared(NATIVE_PURCHASE).payload


def test_native_fields_win_over_flat_ones_in_a_mixed_event() -> None:
    event = prepared({**NATIVE_PURCHASE, "email": "other@example.org", "eventType": "PAGE_VIEW"})
    assert event.payload["user_data"]["em"] == EM
    assert event.payload["event_name"] == "PURCHASE"


def test_unknown_fields_are_reported_as_warnings_without_values() -> None:
    event = prepared(page_view(favouriteColour="person@example.com"))
    assert event.warnings == ("field 'favouriteColour' is not an event field and was ignored",)


def test_field_names_in_another_case_are_the_fields_they_name() -> None:
    """An export (another actor, a CRM) writes `Email`, `EventType`, ` Price `: they are the fields they name, in
    JSON as in a CSV header (they were ignored with a warning each, and the event had no identifier)."""
    event = prepared({"EventType": "PURCHASE", "Email": "Person@Example.com", " Price ": 5, "CURRENCY": "usd",
                      "eventSourceUrl": "https://shop.example.com/thanks"})  # fmt: skip
    assert event.warnings == ()
    assert event.payload["user_data"]["em"] == EM
    assert (event.payload["event_name"], event.payload["custom_data"]["value"]) == ("PURCHASE", 5)
    assert prepared(page_view(**{"Event Time": 1})).warnings == (
        "field 'Event Time' is not an event field and was ignored",
    )


# --- Event time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1_699_999_000, 1_699_999_000),
        (1_699_999_000.75, 1_699_999_000),
        ("1699999000", 1_699_999_000),
        (1_699_999_000_000, 1_699_999_000),
        ("1699999000123", 1_699_999_000),
        (1_699_999_000_999.0, 1_699_999_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000),
        ("2023-11-14T22:13:20z", 1_700_000_000),
        ("2023-11-14T22:13:20+00:00", 1_700_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000),
        ("2023-11-14T22:13:20.500Z", 1_700_000_000),
        ("2023-11-14T22:13:20", 1_700_000_000),  # no offset is read as UTC
        (" 2023-11-14 22:13:20Z ", 1_700_000_000),
    ],
)
def test_parse_event_time_gives_integer_unix_seconds(value: object, seconds: int) -> None:
    result = parse_event_time(value, NOW)
    assert result == seconds
    assert type(result) is int


@pytest.mark.parametrize("missing", [None, ""])
def test_parse_event_time_missing_is_now(missing: object) -> None:
    assert parse_event_time(missing, NOW + 0.9) == int(NOW)


@pytest.mark.parametrize("bad", ["yesterday", "14/11/2023", True, "2023-13-01T00:00:00Z"])
def test_parse_event_time_rejects_other_text(bad: object) -> None:
    with pytest.raises(EventError, match="eventTime"):
        parse_event_time(bad, NOW)


@pytest.mark.parametrize(
    "event_time", [1_699_999_000_000, 1_699_999_000, "2023-11-14T21:56:40Z"], ids=["ms", "s", "iso"]
)
def test_built_event_time_is_seconds(event_time: object) -> None:
    assert prepared(page_view(eventTime=event_time)).payload["event_time"] == 1_699_999_000


def test_missing_event_time_is_the_injected_now() -> None:
    assert prepared(page_view()).payload["event_time"] == int(NOW)


def test_unparseable_event_time_rejects_the_event() -> None:
    result = rejected(page_view(eventTime="last tuesday"))
    assert "eventTime" in result.error


# --- Click id ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/?ScCid=AbC-123_xYz",
        "https://shop.example.com/?sccid=AbC-123_xYz",
        "https://shop.example.com/?SCCID=AbC-123_xYz",
        "https://shop.example.com/p?utm_source=snap&ScCid=AbC-123_xYz#top",
        "https://shop.example.com/?SsCid=AbC-123_xYz",
    ],
)
def test_click_id_from_url_any_param_case_value_case_kept(url: str) -> None:
    assert click_id_from_url(url) == "AbC-123_xYz"


@pytest.mark.parametrize("url", ["https://shop.example.com/", "https://shop.example.com/?ScCid=", "not a url", ""])
def test_click_id_from_url_absent(url: str) -> None:
    assert click_id_from_url(url) is None


def test_click_id_is_taken_from_event_source_url() -> None:
    event = prepared(page_view(eventSourceUrl="https://shop.example.com/?SCCID=AbC-123"))
    assert event.payload["user_data"]["sc_click_id"] == "AbC-123"
    assert "sc_click_id" in event.match_keys


def test_explicit_click_id_is_not_overridden_by_the_url() -> None:
    event = prepared(page_view(eventSourceUrl="https://shop.example.com/?ScCid=FromUrl", scClickId="Explicit-1"))
    assert event.payload["user_data"]["sc_click_id"] == "Explicit-1"


# --- Event id and dedup ------------------------------------------------------------------------


def test_transaction_id_becomes_event_id_and_order_id() -> None:
    event = prepared(page_view(eventType="PURCHASE", price=10, currency="USD", transactionId=98765))
    assert event.event_id == "98765"
    assert event.payload["event_id"] == "98765"
    assert event.payload["custom_data"]["order_id"] == "98765"


def test_event_id_wins_over_transaction_id() -> None:
    event = prepared(page_view(eventType="PURCHASE", price=10, currency="USD", transactionId="T-1", eventId="E-1"))
    assert event.payload["event_id"] == "E-1"
    assert event.payload["custom_data"]["order_id"] == "T-1"


def test_content_event_id_is_stable_for_equal_payloads() -> None:
    a = {"event_name": "PURCHASE", "event_time": 1, "user_data": {"em": EM, "ph": PH}}
    b = {"user_data": {"ph": PH, "em": EM}, "event_time": 1, "event_name": "PURCHASE"}
    assert content_event_id(a) == content_event_id(b)
    assert content_event_id(a) == content_event_id(dict(a))


@pytest.mark.parametrize(
    "change",
    [
        {"event_name": "PAGE_VIEW"},
        {"event_time": 2},
        {"user_data": {"em": EM}},
        {"custom_data": {"value": 1}},
    ],
)
def test_content_event_id_differs_for_different_payloads(change: dict[str, Any]) -> None:
    base = {"event_name": "PURCHASE", "event_time": 1, "user_data": {"em": EM, "ph": PH}}
    assert content_event_id(base) != content_event_id({**base, **change})


def test_content_event_id_ignores_a_defaulted_time() -> None:
    """A resumed run rebuilds an event without a time at a later `now`: the id must not change."""
    base = {"event_name": "SIGN_UP", "event_time": 1, "user_data": {"em": "a" * 64}}
    later = {**base, "event_time": 999}
    assert content_event_id(base, time_given=False) == content_event_id(later, time_given=False)
    assert content_event_id(base) != content_event_id(later)


def test_event_without_ids_gets_a_content_id_stable_across_builds() -> None:
    first = prepared(page_view(eventTime=1_699_999_000))
    again = prepared(page_view(eventTime=1_699_999_000))
    other = prepared(page_view(eventTime=1_699_999_000, email="other@example.org"))
    assert first.event_id == again.event_id
    assert first.event_id != other.event_id
    assert first.payload["event_id"] == first.event_id
    assert len(first.event_id) >= 16


# --- Custom data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom", "expected"),
    [
        ({"content_ids": "a, b;c"}, {"content_ids": ["a", "b", "c"]}),
        ({"content_ids": "sku001"}, {"content_ids": ["sku001"]}),
        ({"content_ids": ["x", 7]}, {"content_ids": ["x", "7"]}),
        ({"content_ids": " a ,, ;b "}, {"content_ids": ["a", "b"]}),
        ({"value": "19.90"}, {"value": 19.9}),
        ({"value": "20"}, {"value": 20}),
        ({"value": 5}, {"value": 5}),
        ({"currency": " eur "}, {"currency": "EUR"}),
        ({"num_items": "3"}, {"num_items": 3}),
        ({"order_id": 123}, {"order_id": "123"}),
        ({"content_category": "shoes"}, {"content_category": "shoes"}),
    ],
)
def test_tidy_custom_data(custom: dict[str, Any], expected: dict[str, Any]) -> None:
    assert tidy_custom_data(custom) == expected


def test_price_text_is_sent_as_a_json_number() -> None:
    custom = prepared(page_view(eventType="PURCHASE", price="19.90", currency="USD")).payload["custom_data"]
    assert custom["value"] == 19.9
    assert isinstance(custom["value"], float)


@pytest.mark.parametrize("bad", ["nineteen", True, "19,90"])
def test_non_numeric_price_rejects_the_event(bad: object) -> None:
    result = rejected(page_view(eventType="PURCHASE", price=bad, currency="USD"))
    assert "price" in result.error


# --- Preflight ---------------------------------------------------------------------------------


def test_unknown_event_name_is_rejected_with_the_accepted_names() -> None:
    result = rejected(page_view(eventType="NEWSLETTER_SIGNUP"))
    assert "NEWSLETTER_SIGNUP" in result.error
    for name in ("PAGE_VIEW", "PURCHASE", "ADD_CART", "SPENT_CREDITS", "CUSTOM_EVENT_5"):
        assert name in result.error
    assert "eventNameMapping" in result.error


def test_missing_event_name_is_rejected() -> None:
    assert "eventType" in rejected(page_view(eventType=None)).error


def test_custom_mapping_is_used_by_the_builder() -> None:
    event = prepared(page_view(eventType="Newsletter Joined"), mapping={"Newsletter Joined": "CUSTOM_EVENT_1"})
    assert event.payload["event_name"] == "CUSTOM_EVENT_1"


@pytest.mark.parametrize("age_days", [37.01, 38, 400])
def test_events_older_than_37_days_are_rejected(age_days: float) -> None:
    result = rejected(page_view(eventTime=int(NOW - age_days * DAY)))
    assert "37-day" in result.error


@pytest.mark.parametrize("age_days", [0, 1, 36.9])
def test_events_within_37_days_are_accepted(age_days: float) -> None:
    prepared(page_view(eventTime=int(NOW - age_days * DAY)))


def test_event_in_the_future_is_rejected() -> None:
    assert "future" in rejected(page_view(eventTime=int(NOW + 2 * DAY))).error


@pytest.mark.parametrize(
    "identifiers",
    [
        {},
        {"firstName": "John", "lastName": "Smith", "city": "London"},
        {"ipAddress": "104.124.214.254"},
        {"userAgent": "Mozilla/5.0"},
        {"mobileAdId": "402DA762-201E-42C1-961B-C1fA6CBCF566"},  # a MAID only counts for app events
        {"scClickId": "AbC"},
    ],
)
def test_no_matchable_identifier_is_insufficient_pii(identifiers: dict[str, Any]) -> None:
    result = rejected({"eventType": "PAGE_VIEW", "eventSourceUrl": URL, **identifiers})
    assert "Insufficient PII" in result.error


@pytest.mark.parametrize(
    "identifiers",
    [
        {"email": "Person@Example.com"},
        {"phone": "+44 844 412 4653"},
        {"ipAddress": "104.124.214.254", "userAgent": "Mozilla/5.0"},
    ],
)
def test_one_matchable_identifier_is_enough(identifiers: dict[str, Any]) -> None:
    prepared({"eventType": "PAGE_VIEW", "eventSourceUrl": URL, **identifiers})


def test_app_event_with_mobile_ad_id_is_enough_and_goes_to_the_snap_app() -> None:
    maid = "402DA762-201E-42C1-961B-C1fA6CBCF566"
    event = prepared({"eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": maid, "extinfo": ["a2"]})
    assert event.asset_id == APP
    assert event.payload["user_data"] == {"madid": "402da762-201e-42c1-961b-c1fa6cbcf566"}
    assert "event_source_url" not in event.payload


def test_insufficient_pii_explains_dropped_identifiers_without_their_values() -> None:
    raw_phone = "(415) 555-2671"
    result = rejected({"eventType": "PAGE_VIEW", "eventSourceUrl": URL, "phone": raw_phone})
    assert "Insufficient PII" in result.error
    assert "user_data.ph" in result.error
    assert raw_phone not in result.error
    assert "4155552671" not in result.error
    assert all(raw_phone not in warning for warning in result.warnings)


def test_national_phone_with_default_country_is_matchable() -> None:
    event = prepared({"eventType": "PAGE_VIEW", "eventSourceUrl": URL, "phone": "020 7946 0958"}, phone_country="GB")
    assert event.payload["user_data"]["ph"] == sha("442079460958")


@pytest.mark.parametrize(
    ("custom", "needle"),
    [
        ({"currency": "USD"}, "price"),
        ({"price": 10}, "currency"),
        ({}, "price"),
    ],
)
def test_purchase_needs_value_and_currency(custom: dict[str, Any], needle: str) -> None:
    result = rejected(page_view(eventType="PURCHASE", **custom))
    assert "PURCHASE" in result.error
    assert needle in result.error


def test_purchase_with_value_and_currency_is_accepted() -> None:
    custom = prepared(page_view(eventType="PURCHASE", price=0, currency="eur")).payload["custom_data"]
    assert custom == {"value": 0, "currency": "EUR"}


def test_web_event_without_url_is_rejected() -> None:
    assert "eventSourceUrl" in rejected(page_view(eventSourceUrl=None)).error


def test_offline_event_needs_no_url() -> None:
    event = prepared(page_view(eventSourceUrl=None, actionSource="OFFLINE"))
    assert event.asset_id == PIXEL
    assert event.action_source == "OFFLINE"


def test_mobile_app_event_without_snap_app_id_is_rejected() -> None:
    result = rejected(page_view(actionSource="MOBILE_APP", mobileAdId="abc"), app=None)
    assert "snapAppId" in result.error
    assert result.action_source == "MOBILE_APP"


def test_web_event_without_pixel_id_is_rejected() -> None:
    assert "pixelId" in rejected(page_view(), pixel=None).error


def test_unknown_action_source_is_rejected() -> None:
    assert "actionSource" in rejected(page_view(actionSource="EMAIL")).error


def test_event_that_is_not_an_object_is_rejected() -> None:
    result = builder().build(SourceEvent(3, None, error="events[3] is not a JSON object"))
    assert isinstance(result, RejectedEvent)
    assert result.index == 3
    assert result.error == "events[3] is not a JSON object"


# --- Defaults for batch events -----------------------------------------------------------------

BATCH_DEFAULTS = {"eventType": "PURCHASE", "actionSource": "WEB", "eventSourceUrl": URL, "currency": "EUR"}


def test_batch_event_inherits_defaults() -> None:
    event = prepared({"email": "Person@Example.com", "price": 5}, defaults=BATCH_DEFAULTS)
    assert event.payload["event_name"] == "PURCHASE"
    assert event.payload["event_source_url"] == URL
    assert event.payload["custom_data"] == {"value": 5, "currency": "EUR"}


@pytest.mark.parametrize(
    "own",
    [
        {"eventType": "PAGE_VIEW", "currency": "GBP", "eventSourceUrl": "https://other.example/"},
        {"event_name": "PAGE_VIEW", "custom_data": {"currency": "GBP"}, "event_source_url": "https://other.example/"},
    ],
    ids=["flat", "native"],
)
def test_batch_event_own_values_win_over_defaults(own: dict[str, Any]) -> None:
    native = to_native({**own, "email": "a@example.com"}, BATCH_DEFAULTS)
    assert native.event["event_name"] == "PAGE_VIEW"
    assert native.event["event_source_url"] == "https://other.example/"
    assert native.event["custom_data"]["currency"] == "GBP"


def test_identifiers_are_never_inherited_from_the_top_level_input() -> None:
    from src.input import parse_input

    settings = parse_input(
        {
            "email": "owner@example.com",
            "phone": "+44 844 412 4653",
            "ipAddress": "10.0.0.1",
            "userAgent": "Mozilla/5.0",
            "scClickId": "click",
            "eventSourceUrl": URL,
            "currency": "EUR",
            "events": [{"price": 5}],
        }
    )
    native = to_native({"price": 5}, settings.event_defaults())
    assert "user_data" not in native.event
    assert native.event["custom_data"] == {"value": 5, "currency": "EUR"}
    result = builder(defaults=settings.event_defaults()).build(SourceEvent(0, {"price": 5}))
    assert isinstance(result, RejectedEvent)
    assert "Insufficient PII" in result.error


def test_to_native_maps_flat_names_to_snap_layout() -> None:
    native = to_native(
        {
            "eventType": "PURCHASE",
            "eventTime": 1,
            "actionSource": "WEB",
            "eventSourceUrl": URL,
            "eventId": "E",
            "email": "e",
            "phone": "p",
            "mobileAdId": "m",
            "uuid1": "u",
            "scClickId": "c",
            "price": 1,
            "transactionId": "T",
            "itemIds": "a",
            "limitedDataUse": True,
        }
    )
    assert native.event == {
        "event_name": "PURCHASE",
        "event_time": 1,
        "action_source": "WEB",
        "event_source_url": URL,
        "event_id": "E",
        "user_data": {"em": "e", "ph": "p", "madid": "m", "sc_cookie1": "u", "sc_click_id": "c"},
        "custom_data": {"value": 1, "order_id": "T", "content_ids": "a"},
    }
    assert native.flags == {"limitedDataUse": True}
    assert native.warnings == []


# --- LDU, integration --------------------------------------------------------------------------


def test_limited_data_use_flag_on_the_event() -> None:
    assert prepared(page_view(limitedDataUse=True)).payload["data_processing_options"] == ["LDU"]


def test_limited_data_use_for_the_whole_run() -> None:
    assert prepared(page_view(), limited_data_use=True).payload["data_processing_options"] == ["LDU"]


def test_no_limited_data_use_by_default() -> None:
    assert "data_processing_options" not in prepared(page_view()).payload


def test_integration_is_set() -> None:
    assert prepared(page_view()).payload["integration"] == INTEGRATION


# --- Match keys and grade ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifiers", "keys", "expected_grade"),
    [
        (
            {"email": "Person@Example.com", "eventSourceUrl": "https://shop.example.com/?ScCid=x"},
            ("em", "sc_click_id"),
            "excellent",
        ),
        ({"phone": "+44 844 412 4653", "uuid1": "cookie"}, ("ph", "sc_cookie1"), "excellent"),
        (
            {"email": "Person@Example.com", "ipAddress": "1.2.3.4", "userAgent": "UA"},
            ("em", "client_ip_address", "client_user_agent"),
            "good",
        ),
        ({"email": "Person@Example.com", "firstName": "John"}, ("em", "fn"), "good"),
        ({"email": "Person@Example.com"}, ("em",), "fair"),
        (
            {"scClickId": "x", "ipAddress": "1.2.3.4", "userAgent": "UA"},
            ("sc_click_id", "client_ip_address", "client_user_agent"),
            "fair",
        ),
        ({"ipAddress": "1.2.3.4", "userAgent": "UA"}, ("client_ip_address", "client_user_agent"), "poor"),
    ],
)
def test_match_keys_and_grade(identifiers: dict[str, Any], keys: tuple[str, ...], expected_grade: str) -> None:
    event = prepared({"eventType": "PAGE_VIEW", "eventSourceUrl": URL, **identifiers})
    assert event.match_keys == keys
    assert grade(event.match_keys) == expected_grade


def test_match_keys_leave_out_dropped_identifiers() -> None:
    event = prepared(page_view(phone="not a phone"))
    assert event.match_keys == ("em",)
    assert len(event.warnings) == 1


@pytest.mark.parametrize(("keys", "expected"), [((), "none"), (("fn", "ln", "country"), "none"), (("madid",), "fair")])
def test_grade_edges(keys: tuple[str, ...], expected: str) -> None:
    assert grade(keys) == expected


# --- Issue 10: fields Snap would refuse or lose ---------------------------------------------------


@pytest.mark.parametrize("currency", ["dollars", "US$", "XYZ", "usdollar", "12"])
def test_currency_is_iso_4217_on_every_event_not_only_purchase(currency: str) -> None:
    for event_type in ("PURCHASE", "ADD_CART", "PAGE_VIEW"):
        result = rejected(page_view(eventType=event_type, price=10, currency=currency))
        assert "ISO 4217" in result.error
        assert currency not in result.error


@pytest.mark.parametrize(("given", "sent"), [("usd", "USD"), (" eur ", "EUR"), ("JPY", "JPY"), ("chf", "CHF")])
def test_iso_currency_is_sent_upper_case(given: str, sent: str) -> None:
    event = prepared(page_view(eventType="ADD_CART", price=10, currency=given))
    assert event.payload["custom_data"]["currency"] == sent


@pytest.mark.parametrize("url", ["www.example.com/thanks", "example.com", "//example.com/x", "shop/thanks"])
def test_event_source_url_without_protocol_is_invalid_and_never_sent(url: str) -> None:
    for source in ("WEB", "OFFLINE"):
        result = rejected(page_view(eventSourceUrl=url, actionSource=source))
        assert "protocol" in result.error
        assert "https://" in result.error


@pytest.mark.parametrize("url", ["https://example.com/thanks", "http://example.com", "android-app://com.example/x"])
def test_event_source_url_with_a_protocol_is_sent_as_given(url: str) -> None:
    assert prepared(page_view(eventSourceUrl=url)).payload["event_source_url"] == url


def test_app_event_without_extinfo_is_invalid_and_says_what_to_add() -> None:
    result = rejected({"eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "aa-bb"})
    assert "app_data.extinfo" in result.error
    assert "'a2'" in result.error and "'i2'" in result.error
    assert result.status == "invalid"


def test_short_extinfo_is_padded_to_snaps_16_positions() -> None:
    event = prepared({"eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "aa-bb",
                      "extinfo": ["i2", "com.example.app", "1.0"]})  # fmt: skip
    assert event.payload["app_data"]["extinfo"] == ["i2", "com.example.app", "1.0", *[""] * 13]


def test_extinfo_longer_than_16_is_invalid() -> None:
    result = rejected({"eventType": "APP_OPEN", "actionSource": "MOBILE_APP", "mobileAdId": "aa-bb",
                       "extinfo": ["a2", *["x"] * 16]})  # fmt: skip
    assert "up to 16" in result.error


def test_native_device_identifiers_are_all_kept() -> None:
    user = {"idfa": "6D92078A-8246", "idfv": "C305F2DB-56FC", "madid": "6D92078A-8246"}
    event = prepared(
        {"event_name": "APP_OPEN", "action_source": "MOBILE_APP", "app_data": {"extinfo": ["i2"]}, "user_data": user}
    )
    assert event.payload["user_data"] == {"idfa": "6d92078a-8246", "idfv": "c305f2db-56fc", "madid": "6d92078a-8246"}
    assert {"madid", "idfa", "idfv"} <= set(event.match_keys)


@pytest.mark.parametrize(
    ("given", "sent"), [("Acme", "Acme"), (["Acme"], "Acme"), (["Acme, Inc.", "Zeta"], "Acme, Inc.,Zeta")]
)
def test_brands_go_out_as_one_string_as_in_snaps_v3_sdk(given: Any, sent: str) -> None:
    event = prepared(page_view(brands=given))
    assert event.payload["custom_data"]["brands"] == sent
