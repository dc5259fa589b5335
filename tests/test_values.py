"""The `custom_data` and `app_data` rules of src/rules/values.py, one by one: what each accepts, what it
makes of it, and the error (naming the field, never the value) for what it refuses."""

from __future__ import annotations

import re

import pytest

from src.events.build import tidy_custom_data
from src.rules.values import (
    EXTINFO_LENGTH,
    MAX_TEXT,
    FieldError,
    app_id,
    brands,
    content_category,
    content_ids,
    contents,
    extinfo,
    order_id,
    search_string,
    sign_up_method,
    tracking_enabled,
)


def test_brands_given_as_text_are_one_string_as_written() -> None:
    assert brands(" Acme, Globex ") == "Acme, Globex"
    assert brands(["Acme", " Globex ", ""]) == "Acme,Globex"


def test_item_ids_given_as_text_are_split_on_commas_and_semicolons() -> None:
    assert content_ids("a, b;c,,") == ["a", "b", "c"]
    assert content_ids(["a, b", 7]) == ["a, b", "7"]


def test_one_item_id_or_brand_given_as_a_number_is_one_item() -> None:
    assert content_ids(12345) == ["12345"]
    assert brands(7) == "7"
    assert tidy_custom_data({"content_ids": 12345})["content_ids"] == ["12345"]


def test_text_fields_are_trimmed_and_at_most_max_text_long() -> None:
    assert app_id(" 123 ") == "123"
    assert (search_string(" red shoes "), sign_up_method(" email "), content_category(" Shoes ")) == (
        "red shoes",
        "email",
        "Shoes",
    )
    assert order_id(42) == "42"
    assert order_id(" " + "x" * MAX_TEXT + " ") == "x" * MAX_TEXT
    with pytest.raises(FieldError, match=r"^transactionId \(order_id\) is longer than 1000 characters$"):
        order_id("x" * (MAX_TEXT + 1))


def test_contents_are_line_items_with_their_fields_tidied() -> None:
    given = [{"id": " sku-1 ", "quantity": "2", "item_price": "9.50", "brand": " Acme ", "other": [1]}, {"id": 7}]
    assert contents(given) == [
        {"id": "sku-1", "quantity": 2, "item_price": 9.5, "brand": "Acme", "other": [1]},
        {"id": "7"},
    ]
    assert given[0]["id"] == " sku-1 "  # the event's own objects are left as they were
    assert contents([]) == []


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ("sku-1", "contents must be an array of objects with id, quantity and item_price"),
        ({"id": "sku-1"}, "contents must be an array of objects with id, quantity and item_price"),
        ([{"id": "a"}, "sku-1"], "contents[1] must be an object with id, quantity and item_price"),
        ([{"quantity": 1}], "contents[0].id is missing"),
        ([{"id": " "}], "contents[0].id is missing"),
        ([{"id": "a", "quantity": 0}], "contents[0].quantity must be a whole number from 1 to 1,000,000,000"),
    ],
)
def test_contents_that_are_not_line_items_are_refused_by_position(items: object, error: str) -> None:
    with pytest.raises(FieldError) as refused:
        contents(items)
    assert str(refused.value) == error


@pytest.mark.parametrize(
    ("status", "enabled"),
    [
        (True, True), (False, False), (1, True), (0, False), ("yes", True), ("n", False),
        ("authorized", True), (" Authorized ", True), ("denied", False), ("restricted", False),
        ("not_determined", False), ("NotDetermined", False),
    ],
)  # fmt: skip
def test_tracking_enabled_reads_yes_no_and_att_statuses(status: object, enabled: bool) -> None:
    assert tracking_enabled(status) is enabled


@pytest.mark.parametrize("status", ["maybe", "", 2, None, ["authorized"], 1.0])
def test_tracking_enabled_refuses_anything_else(status: object) -> None:
    with pytest.raises(FieldError, match=r"^advertiserTrackingEnabled must be true/false"):
        tracking_enabled(status)


def test_extinfo_is_padded_to_16_strings() -> None:
    assert extinfo(["i2", "com.example.app", None, 5]) == ["i2", "com.example.app", "", "5"] + [""] * 12
    assert len(extinfo(["a2"] * EXTINFO_LENGTH)) == EXTINFO_LENGTH


@pytest.mark.parametrize(
    ("items", "error"),
    [
        (["x2", "com.example.app"], "extinfo[0] must be 'a2' (Android) or 'i2' (iOS)"),
        ([None], "extinfo[0] must be 'a2' (Android) or 'i2' (iOS)"),
        ([], "extinfo must be an array of up to 16 device strings, starting with 'a2' or 'i2'"),
        (["i2"] * 17, "extinfo must be an array of up to 16 device strings, starting with 'a2' or 'i2'"),
        ("i2", "extinfo must be an array of up to 16 device strings, starting with 'a2' or 'i2'"),
        (["i2", "a\x00"], "extinfo[1] contains control characters"),
    ],
)
def test_extinfo_that_snap_would_refuse_is_refused(items: object, error: str) -> None:
    with pytest.raises(FieldError) as refused:
        extinfo(items)
    assert str(refused.value) == error


@pytest.mark.parametrize(
    ("custom", "error"),
    [
        ({"value": 2_000_000_000, "currency": "USD"}, "price must be between 0 and 1,000,000,000 in USD"),
        ({"value": 2_000_000_000}, "price must be between 0 and 1,000,000,000 without a currency"),
        ({"value": 2_000_000_000, "currency": "IDR"}, None),  # about 120,000 US dollars: a car
        ({"currency": "vnd", "value": 999_000_000_000}, None),  # the code is tidied first
        ({"value": 2e12, "currency": "IDR"}, "price must be between 0 and 1,000,000,000,000 in IDR"),
        ({"value": 1e300, "currency": "USD"}, "price must be between 0 and 1,000,000,000 in USD"),
        ({"value": -5, "currency": "USD"}, "price must be 0 or more (a refund is not a conversion)"),
        (
            {"contents": [{"id": "car", "item_price": 5e9}], "currency": "EUR"},
            "contents[0].item_price must be between 0 and 1,000,000,000 in EUR",
        ),
        ({"contents": [{"id": "flat", "item_price": 5e9}], "currency": "KRW"}, None),
    ],
)
def test_the_largest_price_depends_on_the_currency(custom: dict[str, object], error: str | None) -> None:
    """Above a billion is a unit mix-up in dollars or euros, but a car in rupiah, dong or won."""
    if error is None:
        assert tidy_custom_data(custom)["currency"] == str(custom["currency"]).upper()
    else:
        with pytest.raises(FieldError, match=re.escape(error)):
            tidy_custom_data(custom)
