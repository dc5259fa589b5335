"""Result rows: what each says about its event, and nothing it must not say."""

from __future__ import annotations

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
    assert (strong["matchKeys"], strong["matchQuality"], strong["charged"]) == (
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

