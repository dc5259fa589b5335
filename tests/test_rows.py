"""Result rows: what each says about its event, and nothing it must not say."""

from __future__ import annotations

import json

from src.billing import charged_flags
from src.events.build import PreparedEvent
from src.results.rows import Outcome, event_row, outcome_rows, to_json

TASK = "send_batch_events"


def prepared(index: int, *, keys: tuple[str, ...] = ("em",), warnings: tuple[str, ...] = ()) -> PreparedEvent:
    return PreparedEvent(index, "px", b'{"event_id":"o-%d"}' % index, f"o-{index}", "PURCHASE", "WEB", keys, warnings)


def test_snaps_words_in_a_row_never_carry_a_token() -> None:
    """Snap's messages and warnings are quoted in rows (and so in OUTPUT, the report, the webhook, the log)."""
    event = prepared(0, warnings=("our own warning",))
    row = event_row(TASK, event, "invalid", "Snap: bad request to /v3/px/events?access_token=SECRET1",
                    warnings=["Authorization: Bearer SECRET2 was used", "token=SECRET3&x=1"])  # fmt: skip
    text = repr(to_json(row, "run"))
    assert "SECRET" not in text
    assert row["error"] == "Snap: bad request to /v3/px/events?access_token=***"
    assert row["warnings"] == ["our own warning", "Authorization: Bearer *** was used", "token=***&x=1"]


def test_a_row_says_which_identifiers_matched_and_how_well() -> None:
    strong = event_row(TASK, prepared(1, keys=("em", "sc_click_id")), "sent", charged=True)
    weak = event_row(TASK, prepared(2, keys=("client_ip_address", "client_user_agent")), "sent")
    stored = json.loads(json.dumps(to_json(strong, "run")))  # as the dataset keeps it
    assert (stored["matchKeys"], stored["matchQuality"], stored["charged"]) == (
        ["em", "sc_click_id"], "excellent", True
    )  # fmt: skip
    assert (weak["matchQuality"], weak["charged"], weak["warnings"], weak["error"]) == ("poor", False, [], None)
    assert to_json(weak, "run-7")["rowId"] == "run-7:2" and "rowId" not in to_json(weak, None)


def test_the_rows_of_a_batch_carry_what_billing_charged() -> None:
    outcomes = [Outcome(prepared(i), status) for i, status in enumerate(["sent", "invalid", "sent", "sent"])]
    rows = outcome_rows(TASK, outcomes, charged_flags(outcomes, 2))
    assert [(row["eventIndex"], row["status"], row["charged"]) for row in rows] == [
        (0, "sent", True), (1, "invalid", False), (2, "sent", True), (3, "sent", False)
    ]  # fmt: skip
    assert all(row["error"] is None and row["warnings"] == [] for row in rows)  # no reason given: none stored


def test_snaps_test_event_logs_and_stats_become_rows_whatever_fields_snap_left_out() -> None:
    from src.results.rows import log_row, stats_row

    full = log_row(
        "get_test_event_logs",
        "px",
        {
            "status": "VALID",
            "event_metadata": {"event_name": "PURCHASE", "action_source": "WEB"},
            "event_type": "X",
            "event_conversion_type": "Y",
        },
        demo=False,
    )
    bare = log_row("get_test_event_logs", "px", {"event_type": "SIGN_UP", "event_conversion_type": "OFFLINE"},
                   demo=False)  # fmt: skip
    assert (full["eventName"], full["actionSource"]) == ("PURCHASE", "WEB")  # the event's own metadata first
    assert (bare["eventName"], bare["actionSource"], bare["errors"], bare["warnings"]) == ("SIGN_UP", "OFFLINE", [], [])
    empty = stats_row("get_test_event_stats", "px", {"status": "SUCCESS", "stats": {"test": {"latest_event_ts": ""}}},
                      demo=False)  # fmt: skip
    assert (empty["latestEventTimestamp"], empty["eventCountPastHour"]) == (None, 0)
    counted = stats_row("get_test_event_stats", "px", {"stats": {"test": {"event_count_past_hour": "7"}}}, demo=True)
    assert (counted["eventCountPastHour"], counted["status"], counted["demo"]) == (7, None, True)
