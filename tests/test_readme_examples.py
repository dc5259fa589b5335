"""Every input example and documented input shape in README.md, checked the way a user meets it: first the
platform's schema check (JSON Schema plus Apify's `nullable`, as in test_schema.py), then a run in-process against
the loopback Snap. The examples are read from README.md itself, so these tests follow the README when it changes.

The last group pins the places where the README and the actor disagreed (stale event times in examples, an
eventsUrl example whose rows were all invalid, a status list without `duplicate`, example rows and OUTPUT without
some of their fields, a value too long said to stop the run from starting); each failed before the README was
mended.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import time
from decimal import Decimal
from typing import Any

import pytest
import test_schema as schema_tests
from bulk_support import FileServer
from conftest import CAPI_TOKEN, ROOT, WebhookReceiver
from fake_snap import FakeSnap
from in_process import InProcessRun, run_in_process
from memory_platform import MemoryStore

README = (ROOT / "README.md").read_text(encoding="utf-8")
SCHEMA = schema_tests.SCHEMA
PROPS = schema_tests.PROPS
PRICES = json.loads((ROOT / ".actor" / "pay_per_event.json").read_text(encoding="utf-8"))
PIXEL_ID = "pixel-readme-1"
SEND_TASKS = {"send_event", "send_batch_events"}


def platform_errors(data: object) -> list[str]:
    """What the Apify platform says before the run starts (unknown fields refused too: a misspelt name)."""
    return schema_tests.errors(schema_tests.STRICT, data)


def blocks(lang: str) -> list[tuple[int, str]]:
    found = []
    for match in schema_tests.FENCE.finditer(README):
        if match.group(1) == lang:
            found.append((README.count("\n", 0, match.start()) + 1, match.group(2)))
    return found


def block_with(lang: str, marker: str) -> tuple[int, str]:
    hits = [(line, text) for line, text in blocks(lang) if marker in text]
    assert len(hits) == 1, f"README.md: expected one {lang} block with {marker!r}, found {len(hits)}"
    return hits[0]


def json_block_with(key: str) -> tuple[int, dict[str, Any]]:
    """The README's JSON block (not an input) that has `key` at its top level."""
    for line, text in blocks("json"):
        data = json.loads(text)
        if isinstance(data, dict) and key in data:
            return line, data
    raise AssertionError(f"README.md has no json block with {key!r}")


README_INPUTS = schema_tests.readme_inputs()
INPUT_IDS = [where for where, _ in README_INPUTS]


def real(example: dict[str, Any]) -> dict[str, Any]:
    """The example with its placeholders replaced by the loopback Snap's token and a pixel id."""
    text = json.dumps(example).replace("YOUR_CAPI_TOKEN", CAPI_TOKEN).replace("YOUR_PIXEL_ID", PIXEL_ID)
    return dict(json.loads(text))


#: What a file behind a README `eventsUrl` holds: a header of the `fieldMapping` names, as the README says.
def csv_for(example: dict[str, Any]) -> str:
    mapping = example.get("fieldMapping") or {}
    values = {"email": "buyer@example.com", "price": "19.90", "transactionId": "o-100"}
    header = list(mapping)
    return ",".join(header) + "\n" + ",".join(values.get(mapping[c], "x") for c in header) + "\n"


DATASET_ITEM = {
    "eventType": "PURCHASE",
    "email": "a@example.com",
    "price": 19.9,
    "transactionId": "ds-1",
    "eventSourceUrl": "https://shop.example.com/thanks",
}


def run_example(example: dict[str, Any], snap: FakeSnap, **options: Any) -> InProcessRun:
    actor_input = real(example)
    datasets = None
    if "eventsDatasetId" in actor_input:
        datasets = {actor_input["eventsDatasetId"]: [DATASET_ITEM]}
    if "eventsUrl" in actor_input:
        with FileServer() as files:
            actor_input["eventsUrl"] = files.add("/orders.csv", csv_for(actor_input), "text/csv")
            return run_in_process(actor_input, snap=snap, datasets=datasets, ppe=True, **options)
    return run_in_process(actor_input, snap=snap, datasets=datasets, ppe=True, **options)


_, README_ROW = json_block_with("eventIndex")
_, README_OUTPUT = json_block_with("counts")
_, README_WEBHOOK = json_block_with("summary")
#: `status is sent (...), valid (...), invalid (...), failed (...), skipped (...) or demo`
STATUS_SENTENCE = README[README.index("`status` is `sent`") : README.index("OUTPUT sums it up")]
README_STATUSES = set(re.findall(r"`(\w+)`", STATUS_SENTENCE)) - {"status", "error"}


def expected_events(example: dict[str, Any]) -> int:
    if "events" in example:
        events = example["events"]
        return len(json.loads(events) if isinstance(events, str) else events)
    return 1  # one event: the form's, or the one row of the served file / dataset


# ----- (a) + (b): every README input example passes the platform and runs as documented -----


@pytest.mark.parametrize(("where", "example"), README_INPUTS, ids=INPUT_IDS)
def test_readme_example_passes_the_platform_and_runs(where: str, example: dict[str, Any], snap: FakeSnap) -> None:
    """The platform lets it through; the actor takes it (no input error), writes one row per event with the
    README's row fields, and charges exactly one `conversion-sent` per `sent` row (the only billed status)."""
    assert platform_errors(example) == [], f"README.md {where}"
    run = run_example(example, snap)
    count = expected_events(example)
    output = run.output
    assert output.get("error") is None, f"README.md {where}: {run.final_message}"
    assert output["task"] == example["task"] and output["demo"] is False
    assert output["rows"] == count
    sent = output["counts"].get("sent", 0)
    assert run.final_message.startswith(f"{sent} of {count} sent")
    assert run.final_message.endswith(f"; {sent} charged")
    assert output["charged"] == sent == run.charged_conversions
    assert {c["event_name"] for c in run.charges} <= {"conversion-sent"}
    assert run.returncode == (0 if sent else 1)  # "a run fails when nothing was accepted"
    if example.get("resultRows") == "problems":
        assert all(row["status"] != "sent" for row in run.rows)
    else:
        assert len(run.rows) == count
    for row in run.rows:
        assert set(README_ROW) <= set(row)
        assert row["status"] in README_STATUSES | {"duplicate"}
        assert row["charged"] is (row["status"] == "sent")
    assert set(README_OUTPUT) <= set(output)


SENDING_EXAMPLES = [(w, e) for w, e in README_INPUTS if e.get("task") in SEND_TASKS]


def _sends_all(where: str, example: dict[str, Any], snap: FakeSnap) -> None:
    run = run_example(example, snap)
    count = expected_events(example)
    assert run.final_message == f"{count} of {count} sent; {count} charged", f"README.md {where}"
    assert run.charged_conversions == count


WORKING = ["curl", "Zapier", "eventsDatasetId"]


@pytest.mark.parametrize("marker", WORKING)
def test_readme_single_and_dataset_examples_send_and_charge(marker: str, snap: FakeSnap) -> None:
    """The curl body, the Zapier step and the after-another-actor integration each send every event, at $0.01."""
    where, example = {
        "curl": next((w, e) for w, e in README_INPUTS if e.get("transactionId") == "order-1001"),
        "Zapier": next((w, e) for w, e in README_INPUTS if e.get("currency") == "GBP"),
        "eventsDatasetId": next((w, e) for w, e in README_INPUTS if "eventsDatasetId" in e),
    }[marker]
    _sends_all(where, example, snap)


def test_the_curl_row_is_the_webhook_rows_example(snap: FakeSnap, webhook: WebhookReceiver) -> None:
    """The webhook example (README) is what the curl event (email only, order-1001) posts: its row exactly, plus
    `rowId`; the summary's fields and the body's keys."""
    _, example = next((w, e) for w, e in README_INPUTS if e.get("transactionId") == "order-1001")
    run = run_example(example | {"webhookUrl": webhook.url}, snap)
    assert len(webhook.bodies) == 1
    body = webhook.bodies[0]
    assert set(README_WEBHOOK) <= set(body)
    assert set(README_WEBHOOK["summary"]) <= set(body["summary"])
    assert body["summary"]["counts"] == README_WEBHOOK["summary"]["counts"]
    assert body["summary"]["charged"] == README_WEBHOOK["summary"]["charged"]
    assert body["rowsIncluded"] is True
    readme_row = README_WEBHOOK["rows"][0]
    assert body["rows"][0] == readme_row | {"rowId": readme_row["rowId"].replace("RUN_ID", "local")}
    assert run.rows[0]["rowId"] == "local:0"


def test_the_readme_row_example_is_what_an_event_with_email_phone_ip_and_ua_writes(snap: FakeSnap) -> None:
    """README's row: order-1001, PURCHASE, WEB, sent, charged, em+ph+IP+UA graded `good`."""
    event = {
        "task": "send_event", "accessToken": "YOUR_CAPI_TOKEN", "pixelId": "YOUR_PIXEL_ID",
        "eventType": "PURCHASE", "eventSourceUrl": "https://shop.example.com/thanks", "price": 42.5,
        "email": "person@example.com", "phone": "+14155550100", "ipAddress": "198.51.100.7",
        "userAgent": "Mozilla/5.0", "transactionId": README_ROW["eventId"],
    }  # fmt: skip
    assert platform_errors(event) == []
    run = run_example(event, snap)
    assert run.rows[0] == README_ROW | {"rowId": README_ROW["rowId"].replace("RUN_ID", "local")}


def test_readme_python_client_snippet(snap: FakeSnap) -> None:
    """Valid Python; `call` takes its keyword arguments; its `run_input` passes the platform and sends its event."""
    line, code = block_with("python", "ApifyClient")
    tree = ast.parse(code)  # a SyntaxError names the README line
    assigned = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    events = ast.literal_eval(assigned["events"])
    literal = assigned["run_input"]
    assert isinstance(literal, ast.Dict), f"README.md line {line}: run_input is not a dict literal"
    run_input: dict[str, Any] = {
        str(key.value): (events if isinstance(value, ast.Name) else ast.literal_eval(value))
        for key, value in zip(literal.keys, literal.values, strict=True)
        if isinstance(key, ast.Constant)
    }
    assert platform_errors(run_input) == [], f"README.md line {line}"
    apify_client = pytest.importorskip("apify_client")
    call = apify_client.ApifyClient("token").actor("user/actor").call
    inspect.signature(call).bind(run_input=run_input, max_total_charge_usd=Decimal("10"))
    run = run_example(run_input, snap)
    assert run.final_message == "1 of 1 sent; 1 charged"
    assert {"status", "error"} <= set(run.rows[0])  # what the snippet prints


def test_readme_javascript_client_snippet(snap: FakeSnap) -> None:
    """The input object of the JS snippet (keys quoted) passes the platform and sends its SIGN_UP."""
    line, code = block_with("javascript", "ApifyClient")
    literal = re.search(r"\.call\(\s*(\{.*?\}),\s*\{ maxTotalChargeUsd", code, re.DOTALL)
    assert literal, f"README.md line {line}"
    text = re.sub(r"(\w+):", r'"\1":', literal.group(1).replace("'", '"')).replace('"https":', "https:")
    run_input = json.loads(text)
    assert platform_errors(run_input) == []
    run = run_example(run_input, snap)
    assert run.final_message == "1 of 1 sent; 1 charged"
    assert run.rows[0]["eventName"] == "SIGN_UP"


def test_readme_curl_is_a_valid_command() -> None:
    line, code = block_with("bash", "curl")
    assert "run-sync-get-dataset-items" in code and "maxTotalChargeUsd=" in code
    body = schema_tests.CURL_BODY.search(code)
    assert body, f"README.md line {line}"
    json.loads(body.group(1))


# ----- documented shapes (Input essentials, Zapier/Make notes) -----

NOW = int(time.time()) - 3600
BASE = {
    "task": "send_event", "accessToken": "YOUR_CAPI_TOKEN", "pixelId": "YOUR_PIXEL_ID", "eventType": "PURCHASE",
    "eventSourceUrl": "https://shop.example.com/thanks", "email": "a@example.com", "price": 1,
}  # fmt: skip
SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("several emails", {"email": "a@example.com, b@example.com"}),
    ("several phones", {"phone": "+1 415 555 0100, +44 20 7946 0958"}),
    ("externalId string", {"externalId": "cust-42"}),
    ("externalId list", {"externalId": ["cust-1", "loyalty-9"]}),
    ("eventTime Unix ms number", {"eventTime": NOW * 1000}),
    ("eventTime Unix s number", {"eventTime": NOW}),
    ("eventTime Unix s string", {"eventTime": str(NOW)}),
    ("eventTime ISO 8601", {"eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW))}),
    ("eventType any case", {"eventType": "purchase"}),
    ("eventType GA4", {"eventType": "add_to_cart", "price": None}),
    ("eventType Segment", {"eventType": "Order Completed"}),
    ("eventType mapped", {"eventType": "newsletter_signup", "eventNameMapping": {"newsletter_signup": "SIGN_UP"}}),
    ("brands string", {"brands": "Acme"}),
    ("brands list", {"brands": ["Acme", "Globex"]}),
    ("itemIds numbers", {"itemIds": [123, 456]}),
    ("OFFLINE without URL", {"actionSource": "OFFLINE", "eventSourceUrl": None}),
    ("empty mapped value", {"phone": "", "defaultPhoneCountry": "", "webhookUrl": ""}),
    # a batch event takes the top-level eventType, eventSourceUrl and currency, never identifiers (or price)
    ("events as string", {"task": "send_batch_events", "events": json.dumps([{"email": "s@example.com", "price": 3}])}),
]


@pytest.mark.parametrize(("label", "extra"), SHAPES, ids=[label for label, _ in SHAPES])
def test_documented_shape_passes_and_sends(label: str, extra: dict[str, Any], snap: FakeSnap) -> None:
    example = {k: v for k, v in (BASE | extra).items() if v is not None}
    assert platform_errors(example) == [], label
    run = run_example(example, snap)
    assert run.final_message == "1 of 1 sent; 1 charged", label


def test_brands_list_is_sent_as_one_comma_joined_string(snap: FakeSnap) -> None:
    """README: Snap takes brands as one string, so a list is joined with commas."""
    snap.record_bodies = True
    run_example(BASE | {"brands": ["Acme", "Globex"]}, snap)
    sent = [e for r in snap.requests if r.kind == "events" for e in r.json["data"]]
    assert sent[0]["custom_data"]["brands"] == "Acme,Globex"


# ----- outcomes, statuses and messages the README quotes -----


def events_of(n: int, prefix: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"eventType": "PURCHASE", "email": f"{prefix}{i}@example.com", "price": 1, "transactionId": f"{prefix}-{i}",
         "eventSourceUrl": "https://shop.example.com/thanks", **extra}
        for i in range(n)
    ]  # fmt: skip


def batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"task": "send_batch_events", "accessToken": "YOUR_CAPI_TOKEN", "pixelId": "YOUR_PIXEL_ID", "events": events}


def test_failed_run_message_is_the_readmes(snap: FakeSnap) -> None:
    quoted = re.search(r"`(0 of 3 sent: 3 invalid \(eventTime[^`]*)`", README)
    assert quoted
    run = run_example(batch(events_of(3, "old", eventTime=int(time.time()) - 40 * 86400)), snap)
    assert (run.returncode, run.final_message) == (1, quoted.group(1))
    assert run.output["succeeded"] is False and run.output["statusMessage"] == quoted.group(1)


def test_duplicates_message_status_and_price(snap: FakeSnap) -> None:
    """README: every event a duplicate succeeds with `0 of 5 sent: 5 already sent earlier; 0 charged`; rows say
    `duplicate`, "already accepted by Snap in an earlier run (event_id ...)", free."""
    quoted = re.search(r"`(0 of 5 sent: 5 already sent earlier; 0 charged)`", README)
    assert quoted
    ledger = MemoryStore()
    example = batch(events_of(5, "dup"))
    assert run_example(example, snap, ledger=ledger).charged_conversions == 5
    again = run_example(example, snap, ledger=ledger)
    assert (again.returncode, again.final_message) == (0, quoted.group(1))
    assert {r["status"] for r in again.rows} == {"duplicate"} and again.charged_conversions == 0
    assert again.rows[0]["error"] == "already accepted by Snap in an earlier run (event_id dup-0)"
    repeated = run_example(batch(events_of(1, "rep") * 2), snap)
    assert repeated.rows[1]["error"] == "already accepted by Snap earlier in this run (event_id rep-0)"


def test_input_error_names_every_field(snap: FakeSnap) -> None:
    quoted = re.search(
        r"`(send_event needs pixelId \(\.\.\.\) and a customer identifier: email, phone, )\.\.\.`", README
    )
    assert quoted
    run = run_example({"task": "send_event", "accessToken": "YOUR_CAPI_TOKEN", "demoMode": False}, snap)
    assert run.returncode == 1
    head, tail = quoted.group(1).split("(...)")
    assert run.final_message.startswith(head) and tail in run.final_message


def test_pricing_and_maximum_charge(snap: FakeSnap) -> None:
    """README: $0.01 per accepted conversion (`conversion-sent`); a $50 cap on 10,000 sends 5,000, the rest
    `skipped` and free. Scaled down: a $0.05 cap on 10 events."""
    assert "**$0.01 per conversion Snap accepts** (`conversion-sent`)" in README
    assert PRICES["conversion-sent"]["eventPriceUsd"] == 0.01
    assert "10,000 x $0.01 = **$100**" in README and "sends 5,000" in README
    run = run_example(batch(events_of(10, "cap")), snap, max_charge_usd=0.05)
    assert run.output["counts"] == {"sent": 5, "skipped": 5}
    assert run.charged_conversions == 5
    assert [r["charged"] for r in run.rows_by_status("skipped")] == [False] * 5


@pytest.mark.parametrize("task", ["validate_events"])
def test_validation_is_free(task: str, snap: FakeSnap) -> None:
    run = run_example(batch(events_of(2, "val")) | {"task": task}, snap)
    assert {r["status"] for r in run.rows} == {"valid"} and run.charges == []


def test_console_form_as_is_is_a_free_demo_of_three() -> None:
    """README: click Start as is: three sample conversions, sends nothing, charges nothing; rows say `demo`."""
    form = schema_tests.console_form_input()
    assert platform_errors(form) == []
    run = run_in_process(form, ppe=True)
    assert run.returncode == 0 and [r["status"] for r in run.rows] == ["demo"] * 3 and run.charges == []


# ----- defaults and field names -----


def test_defaults_the_readme_states_are_the_schemas() -> None:
    assert "`send_event` (default)" in README and PROPS["task"]["default"] == "send_event"
    assert "Default `PURCHASE`" in README and PROPS["eventType"]["default"] == "PURCHASE"
    assert "(default `USD`)" in README and PROPS["currency"]["default"] == "USD"
    assert "`WEB` (default)" in README and PROPS["actionSource"]["default"] == "WEB"
    assert "`skipAlreadySent` | default on" in README and PROPS["skipAlreadySent"]["default"] is True
    assert "starts in **demo mode**" in README and PROPS["demoMode"]["prefill"] is True
    assert "default" not in PROPS["demoMode"]  # "left out ... a run without a token is a demo"


OTHER_FIELDS = """isAlreadyHashed defaultPhoneCountry eventNameMapping snapAppId adAccountId refreshToken clientId
clientSecret extinfo webhookUrl demoMode accessToken"""


def readme_field_names() -> set[str]:
    table = README[README.index("## Input essentials") : README.index("A batch event uses the same")]
    names = set(re.findall(r"`([a-z][A-Za-z0-9]*)`", table))
    # named elsewhere in the README
    names |= set(OTHER_FIELDS.split())
    return names - {"http", "https", "duplicate"}  # a status, not a field


def test_every_field_the_readme_names_is_in_the_schema() -> None:
    assert sorted(readme_field_names() - set(PROPS)) == []


# ----- where the README and the actor disagreed (mended in the README) -----


@pytest.mark.parametrize(
    ("where", "example"),
    [(w, e) for w, e in SENDING_EXAMPLES if "events" in e],
    ids=[w for w, e in SENDING_EXAMPLES if "events" in e],
)
def test_readme_batch_examples_send_their_events(where: str, example: dict[str, Any], snap: FakeSnap) -> None:
    """The README's batches send every event. (They had `"eventTime": 1763800000`, 2025-11-22: a fixed time in an
    example goes stale 37 days after it is written, and every such event was `invalid`.)"""
    _sends_all(where, example, snap)


def test_readme_events_url_example_sends_the_file(snap: FakeSnap) -> None:
    """The README's `eventsUrl` example, with its `fieldMapping` of Email Address, Order Total and Order ID, sends
    the file. (It gave no `eventSourceUrl`: every row was `invalid`, "WEB events need eventSourceUrl".)"""
    where, example = next((w, e) for w, e in SENDING_EXAMPLES if "eventsUrl" in e)
    _sends_all(where, example, snap)


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("id over 200 characters", {"pixelId": "p" * 201}),
        ("text over 1,000 characters", {"city": "c" * 1001}),
        ("token over 8,192 characters", {"accessToken": "t" * 8193}),
        ("control characters", {"pixelId": "pixel\u0007id"}),
    ],
)
def test_too_long_values_fail_the_run_at_once_naming_the_field(
    label: str, data: dict[str, Any], snap: FakeSnap
) -> None:
    """README (Troubleshooting): "the run fails at once: a field 'should have at most N characters' or 'contains
    control characters' ... ids have at most 200 characters, other text 1,000, URLs and tokens 8,192". The
    platform starts the run (the schema has no lengths); the actor fails it before sending, naming the field.
    (The README said the run would not start.)"""
    field = next(iter(data))
    run = run_example(BASE | data, snap)
    assert run.returncode == 1 and snap.requests == []
    assert run.final_message.startswith(f"Input field '{field}' "), label
    assert any(words in run.final_message for words in ("at most", "longer than", "control characters"))


def test_the_status_list_names_every_status(snap: FakeSnap) -> None:
    """The README's list of statuses has every status a row may have (it lacked `duplicate`)."""
    run = run_example(batch(events_of(1, "twice") * 2), snap)
    assert {r["status"] for r in run.rows} <= README_STATUSES


def test_the_readme_row_example_has_every_row_field(snap: FakeSnap) -> None:
    """The README's row example has every field a row has (it lacked `rowId`)."""
    run = run_example(BASE, snap)
    assert set(run.rows[0]) == set(README_ROW)


def test_the_readme_output_example_has_every_output_field(snap: FakeSnap) -> None:
    """The README's OUTPUT example has every field OUTPUT has (it lacked `succeeded`, `statusMessage`,
    `isolationRequests` and `rowsNotStored`)."""
    run = run_example(BASE, snap)
    assert set(run.output) == set(README_OUTPUT)
