"""Values that used to crash a run (exit 91) or be sent and charged though Snap would drop or mis-measure
them: NaN and infinite times, negative or absurd prices and counts, control characters and broken UTF-8.
Each ends as an `invalid` row naming the field, or a warning that drops the value; never a stack trace."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from bulk_support import FileServer, csv_text
from conftest import CAPI_TOKEN, OAUTH_TOKEN
from fake_snap import FakeSnap, make_pixel
from in_process import run_in_process
from test_conversion import NOW, build, page_view, prepared, rejected

from src.errors import ActorInputError
from src.input import parse_input
from src.results.rows import rejected_row

PIXEL = "pixel-hostile-1"
URL = "https://shop.example.com/thanks"


def purchase(**fields: Any) -> dict[str, Any]:
    return page_view(eventType="PURCHASE", price=10, currency="USD") | fields


# --- eventTime -----------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["NaN", "nan", "Infinity", "-Infinity", "1e400", math.nan, math.inf, 10**400])
def test_a_time_that_is_not_a_number_is_invalid_not_a_crash(when: object) -> None:
    event = rejected(page_view(eventTime=when))
    assert event.status == "invalid"
    assert event.error.startswith("eventTime must be Unix seconds")
    assert "NaN or infinity" in event.error


@pytest.mark.parametrize(("when", "why"), [(1e308, "in the future"), (-5, "older than"), ("-1e308", "older than")])
def test_a_huge_or_negative_time_is_outside_snaps_window(when: object, why: str) -> None:
    assert why in rejected(page_view(eventTime=when)).error


# --- prices and counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("price", [-5, "-0.01", 1_000_000_001, "1e12", "NaN", math.inf])
def test_a_negative_absurd_or_nan_price_is_invalid(price: object) -> None:
    error = rejected(purchase(price=price)).error
    assert error.startswith("price must be"), error


def test_prices_at_the_edges_are_sent() -> None:
    assert prepared(purchase(price=0)).payload["custom_data"]["value"] == 0
    assert prepared(purchase(price="1000000000")).payload["custom_data"]["value"] == 1_000_000_000


@pytest.mark.parametrize("count", [-1, "2.5", "NaN", 10**10])
def test_number_of_items_must_be_a_sane_whole_number(count: object) -> None:
    assert rejected(purchase(numberOfItems=count)).error.startswith("numberOfItems (num_items) must be")


@pytest.mark.parametrize("quantity", [0, -2, "1.5", "NaN", "inf", 10**10])
def test_a_line_item_quantity_must_be_a_positive_whole_number(quantity: object) -> None:
    error = rejected(purchase(contents=[{"id": "sku-1", "quantity": quantity}])).error
    assert error.startswith("contents[0].quantity must be"), error


@pytest.mark.parametrize("item_price", [-1, "NaN", 2e9])
def test_a_line_item_price_must_be_between_0_and_a_billion(item_price: object) -> None:
    error = rejected(purchase(contents=[{"id": "sku-1", "quantity": 1, "item_price": item_price}])).error
    assert error.startswith("contents[0].item_price must be"), error


def test_nan_in_a_field_passed_through_as_given_is_invalid() -> None:
    event = {"event_name": "PAGE_VIEW", "event_source_url": "https://x.example/", "user_data": {"em": "a@b.example"}}
    error = rejected(event | {"custom_data": {"custom_score": math.nan}}).error
    assert error == "custom_data.custom_score must be a finite number (not NaN or infinity)"


# --- control characters and broken UTF-8 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "why"),
    [("\ufffd", "U+FFFD"), ("\ud800", "lone surrogate"), ("\x00", "control characters"), ("\x1b", "control")],
)
def test_a_broken_identifier_is_dropped_with_a_warning_and_never_echoed(bad: str, why: str) -> None:
    email = f"secret.person{bad}@example.com"
    event = prepared(page_view(email=email, phone="+44 844 412 4653"))
    assert "em" not in event.payload["user_data"]
    assert "ph" in event.payload["user_data"]
    assert any(w.startswith("user_data.em contains") and why in w for w in event.warnings), event.warnings
    assert "secret.person" not in json.dumps([event.warnings, event.payload])


def test_a_broken_only_identifier_leaves_the_event_invalid_with_the_reason() -> None:
    event = rejected(page_view(email="secret\ufffd@example.com"))
    assert "Insufficient PII" in event.error
    assert "user_data.em contains U+FFFD" in event.error
    assert "secret" not in event.error


def test_a_broken_user_agent_is_dropped_not_sent() -> None:
    event = prepared(page_view(userAgent="Mozilla/5.0\x00\x07", ipAddress="203.0.113.9"))
    assert "client_user_agent" not in event.payload["user_data"]


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("eventId", "eventId"),
        ("transactionId", "transactionId (order_id)"),
        ("itemIds", "itemIds (content_ids)"),
        ("eventSourceUrl", "eventSourceUrl"),
    ],
)
@pytest.mark.parametrize("bad", ["order\ufffd1", f"order{chr(0xD800)}1", "order\x001"])
def test_an_id_with_broken_text_is_invalid_and_names_the_field(field: str, named: str, bad: str) -> None:
    value = f"https://shop.example.com/{bad}" if field == "eventSourceUrl" else bad
    event = rejected(purchase(**{field: value}))
    assert event.error.startswith(f"{named} contains"), event.error
    row = rejected_row("send_batch_events", event)
    json.dumps(row, ensure_ascii=False).encode("utf-8")  # the row can be stored


def test_a_contents_id_with_broken_text_is_invalid() -> None:
    error = rejected(purchase(contents=[{"id": "sku\ufffd", "quantity": 1}])).error
    assert error.startswith("contents[0].id contains U+FFFD")


def test_a_huge_unknown_event_name_is_cut_short_in_the_row() -> None:
    event = rejected(page_view(eventType="X" * 5_000_000 + "\ud800"))
    assert event.error.startswith("event name 'XXX")
    assert len(event.error) < 2_000
    assert event.event_name is not None and len(event.event_name) <= 2_000
    json.dumps(rejected_row("send_batch_events", event), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("event", "secret"),
    [
        ({"eventType": "jane.doe@example.com"}, "jane.doe@example.com"),
        ({"jane.doe@example.com": "yes"}, "jane.doe@example.com"),
        ({"actionSource": "+1 415 555 0188"}, "555 0188"),
        ({"user_data": {"em": "a@example.com", "+44 844 412 4653": "x"}}, "412 4653"),
        ({"custom_data": {"jane.doe@example.com": "\x00"}}, "jane.doe@example.com"),
    ],
    ids=["email-in-eventType", "email-as-a-key", "phone-in-actionSource", "phone-as-a-user-data-key",
         "email-as-a-custom-data-key"],
)  # fmt: skip
def test_an_email_or_phone_in_the_wrong_field_is_never_echoed(
    snap: FakeSnap, event: dict[str, Any], secret: str
) -> None:
    """A customer's email or phone where another field belongs (a fieldMapping slip such as {"Customer":
    "eventType"}, columns shifted in an export, an export keyed by email): the row, the log, OUTPUT and the
    status say what is wrong without the value (they quoted it: "event name 'jane.doe@example.com' is not one Snap
    accepts", "field 'jane.doe@example.com' is not an event field", the row's actionSource "+1 415 555 0188").
    The other event is sent."""
    events = [{"email": "buyer@example.com", "price": 5, **event}, {"email": "other@example.com", "price": 5}]
    actor_input = {"task": "send_batch_events", "demoMode": False, "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
                   "eventSourceUrl": "https://shop.example.com/thanks", "events": events}  # fmt: skip
    run = run_in_process(actor_input, snap=snap, ppe=True)
    assert secret not in run.everything_written() + run.final_message
    assert run.charged_conversions >= 1
    [first] = [row for row in run.rows if row["eventIndex"] == 0]
    assert "[an email address or phone number]" in json.dumps([first, run.final_message])


def test_an_email_past_the_100th_character_of_an_event_name_is_not_half_quoted(snap: FakeSnap) -> None:
    """An event name of 90 characters and then a customer's address: it is masked before the name is cut short
    for the message (cut first, the address lost its `@` and its local part was quoted in the row, log and
    status)."""
    event = {"eventType": "x" * 90 + "leak.person@example.org", "email": "ok@example.com", "price": 5}
    actor_input = {"task": "validate_events", "demoMode": False, "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
                   "eventSourceUrl": "https://shop.example.com/thanks", "events": [event]}  # fmt: skip
    run = run_in_process(actor_input, snap=snap, ppe=True)
    [row] = run.rows
    assert row["eventName"] == "[an email address or phone number]"
    assert row["error"].startswith("event name '[an email address or phone number]' is not one Snap accepts")
    assert "leak.pers" not in run.everything_written() + run.final_message


def test_an_unknown_name_or_field_that_is_not_personal_is_quoted_as_written() -> None:
    """What helps a user find a typo stays: a name or a column that is not an email or a phone is quoted."""
    event = rejected(page_view(eventType="Purchse", Colour="red"))
    assert event.error.startswith("event name 'Purchse' is not one Snap accepts")
    assert "field 'Colour' is not an event field and was ignored" in event.warnings


def test_an_overlong_text_is_invalid() -> None:
    assert rejected(page_view(eventId="e" * 10_000)).error == "eventId is longer than 8192 characters"


def test_fine_unicode_is_sent_as_is() -> None:
    event = prepared(purchase(transactionId="Bestellung-Müller-中文-😀", itemIds="sku-é"))
    assert event.payload["custom_data"]["order_id"] == "Bestellung-Müller-中文-😀"
    assert build(page_view(eventTime=NOW - 60)).event_name == "PAGE_VIEW"


# --- input fields ---------------------------------------------------------------------------------


def test_a_10_mb_pixel_id_is_refused_by_name_without_echoing_it() -> None:
    with pytest.raises(ActorInputError) as refused:
        parse_input({"pixelId": "p" * 10_000_000})
    assert refused.value.field == "pixelId"
    assert "ppppp" not in str(refused.value)
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize(
    ("field", "value"),
    [("pixelId", "pixel\x00"), ("snapAppId", "app\ufffd"), ("accessToken", "tok\nen"), ("eventsUrl", "https://x\x00")],
)
def test_ids_tokens_and_urls_with_broken_text_are_refused_by_name(field: str, value: str) -> None:
    with pytest.raises(ActorInputError) as refused:
        parse_input({field: value})
    assert refused.value.field == field
    assert value not in str(refused.value)


@pytest.mark.parametrize(
    ("field", "attribute"),
    [("accessToken", "access_token"), ("refreshToken", "refresh_token"), ("clientSecret", "client_secret"),
     ("clientId", "client_id"), ("pixelId", "pixel_id")],
)  # fmt: skip
@pytest.mark.parametrize("pasted", ["{}\n", "{}\r\n", "  {}\t", "\ufeff{}", "{}\u200b "])
def test_a_token_or_id_pasted_with_surrounding_whitespace_is_trimmed(field: str, attribute: str, pasted: str) -> None:
    """A token, OAuth secret or id copied from a file or a terminal keeps its line break: trimmed, rather than sent
    in a header Snap refuses ("Snap refused the access token") or the HTTP client will not send at all."""
    value = getattr(parse_input({field: pasted.format("tok-en_9.x")}), attribute)
    assert (value if isinstance(value, str) else value.get_secret_value()) == "tok-en_9.x"


@pytest.mark.parametrize("field", ["accessToken", "refreshToken", "clientSecret"])
@pytest.mark.parametrize(
    ("inside", "words"),
    [("\n", "a line break"), ("\r\n", "a line break"), (" ", "a space"), ("\u200b", "a space, tab or invisible")],
)
def test_a_token_with_a_break_or_space_inside_is_refused_naming_the_field(field: str, inside: str, words: str) -> None:
    """Two lines pasted as one token (or a token with a space in it) is no token Snap issued: refused by name,
    saying what is wrong, without the token."""
    with pytest.raises(ActorInputError) as refused:
        parse_input({field: f"first-half{inside}second-half"})
    assert refused.value.field == field
    assert f"contains {words}" in str(refused.value)
    assert "half" not in str(refused.value)


def test_a_long_item_in_a_list_field_is_named_with_its_position() -> None:
    with pytest.raises(ActorInputError) as refused:
        parse_input({"email": ["a@example.com", "b" * 5000]})
    assert refused.value.field == "email[1]"
    assert "at most 1000 characters" in str(refused.value)


# --- end to end: one bad event or cell never kills the run ------------------------------------------


def good(i: int, now: int) -> dict[str, Any]:
    return {
        "eventType": "PURCHASE",
        "email": f"buyer{i}@example.com",
        "price": 10 + i,
        "currency": "USD",
        "transactionId": f"order-{i}",
        "eventTime": now - 60,
    }


def test_a_batch_with_nan_time_negative_price_and_broken_text_charges_only_the_good(
    tmp_path: Path, snap: FakeSnap
) -> None:
    now = int(time.time())
    events = [good(0, now), good(1, now) | {"eventTime": "NaN"}, good(2, now), good(3, now) | {"price": -5}]
    events.append(good(4, now) | {"contents": [{"id": "sku", "quantity": "NaN"}], "eventTime": "Infinity"})
    events.append(good(5, now) | {"eventId": f"evt-{chr(0xD800)}", "eventType": f"X{chr(0xDFFF)}" * 100_000})
    run = run_in_process(
        {
            "task": "send_batch_events",
            "accessToken": CAPI_TOKEN,
            "pixelId": PIXEL,
            "eventSourceUrl": "https://shop.example.com/thanks",
            "events": events,
        },
        snap=snap,
        ppe=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(snap.accepted_event_ids()) == ["order-0", "order-2"]
    assert run.charged_conversions == 2
    invalid = {row["eventIndex"]: row["error"] for row in run.rows_by_status("invalid")}
    assert sorted(invalid) == [1, 3, 4, 5]
    assert invalid[1].startswith("eventTime must be")
    assert invalid[3] == "price must be 0 or more (a refund is not a conversion)"
    assert invalid[5].startswith("event name 'X")
    assert run.output["counts"] == {"sent": 2, "invalid": 4}
    assert "Traceback" not in run.stderr + run.stdout


def _nested(depth: int) -> Any:
    deep: Any = "x"
    for _ in range(depth):
        deep = [deep]
    return deep


@pytest.mark.parametrize(
    "bad", [{"contents": _nested(3000)}, {"eventTime": 10**5000}], ids=["contents-3000-deep", "eventTime-5001-digits"]
)
def test_a_hostile_value_in_one_event_of_an_array_costs_that_event_only(snap: FakeSnap, bad: dict[str, Any]) -> None:
    """`events` as a real array (as the platform hands it over) whose second event has `contents` nested 3,000 deep
    or an `eventTime` of 5,001 digits: the first event is sent and charged, the second is an `invalid` row. (The
    run's checkpoint fingerprint of the input crashed on either, before anything was sent.)"""
    now = int(time.time())
    events = [good(0, now), good(1, now) | bad]
    run = run_in_process(
        {"task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL,
         "eventSourceUrl": "https://shop.example.com/thanks", "events": events},
        snap=snap,
        ppe=True,
    )  # fmt: skip
    assert run.returncode == 0, run.final_message
    assert snap.accepted_event_ids() == ["order-0"]
    assert run.charged_conversions == 1
    assert [row["status"] for row in sorted(run.rows, key=lambda row: row["eventIndex"])] == ["sent", "invalid"]


def test_send_event_with_a_token_pasted_with_a_trailing_newline_sends(snap: FakeSnap) -> None:
    """The access token pasted with a trailing newline (an API call, a secret copied from a file): the event is
    sent and charged. The run used to fail with "Snap refused the access token (HTTP 401) ... Use a Conversions
    API token from Business Manager": the token was right, the newline was not named."""
    raw = {
        "accessToken": CAPI_TOKEN + "\n",
        "pixelId": PIXEL,
        "email": "a@example.com",
        "price": 5,
        "eventSourceUrl": URL,
    }
    run = run_in_process(raw, snap=snap, ppe=True)
    assert run.returncode == 0, run.final_message
    assert run.charged_conversions == 1


def test_list_pixels_with_a_token_pasted_with_a_trailing_newline_lists_them() -> None:
    """The same for list_pixels, which used to retry 6 times and fail with "LocalProtocolError (Illegal header
    value ...)", naming neither the field nor the fix."""
    pixels = {"acc-1": [make_pixel("px-1", "acc-1")]}
    with FakeSnap(capi_token=CAPI_TOKEN, oauth_token=OAUTH_TOKEN, pixels=pixels) as snap:
        raw = {"task": "list_pixels", "accessToken": OAUTH_TOKEN + "\r\n", "adAccountId": "acc-1"}
        run = run_in_process(raw, snap=snap)
    assert run.returncode == 0, run.final_message
    assert [row["id"] for row in run.rows] == ["px-1"]


def test_a_deeply_nested_events_json_string_fails_the_run_naming_events() -> None:
    """`events` as JSON text holding a value nested 5,000 deep: the run fails with an input error naming `events`,
    stored in OUTPUT; it used to end in a bare traceback, without status message or OUTPUT."""
    events = '[{"email": "a@example.com", "price": 5}, ' + "[" * 5000 + "]" * 5000 + "]"
    run = run_in_process({"task": "send_batch_events", "accessToken": CAPI_TOKEN, "pixelId": PIXEL, "events": events})
    assert run.returncode != 0
    assert run.final_message.startswith("Input field 'events' holds a value nested too deeply"), run.final_message
    assert run.output == {"error": run.final_message}
    assert "Traceback" not in run.stderr + run.stdout


def test_a_csv_with_nan_and_broken_cells_from_a_url_does_not_kill_the_run(tmp_path: Path, snap: FakeSnap) -> None:
    now = int(time.time())
    rows: list[list[Any]] = [["eventType", "email", "price", "currency", "transactionId", "eventTime"]]
    rows += [["PURCHASE", f"buyer{i}@example.com", "12.5", "USD", f"order-{i}", str(now - 60)] for i in range(6)]
    rows[2][5] = "NaN"  # order-1
    rows[3][2] = "-3"  # order-2
    rows[4][4] = "order-\ufffd3"  # order-3: a mis-decoded id
    rows[5][1] = "secret.buyer\x07@example.com"  # order-4: its only identifier is broken
    with FileServer() as files:
        url = files.add("/export.csv", csv_text(rows), "text/csv")
        run = run_in_process(
            {
                "task": "send_batch_events",
                "accessToken": CAPI_TOKEN,
                "pixelId": PIXEL,
                "eventSourceUrl": "https://shop.example.com/thanks",
                "eventsUrl": url,
            },
            snap=snap,
            ppe=True,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(snap.accepted_event_ids()) == ["order-0", "order-5"]
    assert run.charged_conversions == 2
    errors = {row["eventIndex"]: row["error"] for row in run.rows_by_status("invalid")}
    assert sorted(errors) == [1, 2, 3, 4]
    assert errors[1].startswith("eventTime must be")
    assert errors[2] == "price must be 0 or more (a refund is not a conversion)"
    assert errors[3].startswith("transactionId (order_id) contains U+FFFD")
    assert "user_data.em contains control characters" in errors[4]
    assert "secret.buyer" not in run.everything_written()
