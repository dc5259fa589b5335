"""The run summary: what OUTPUT, the report and a resumed run's counts are drawn from."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from src.results.summary import DISTINCT_LIMIT, OTHER, Summary, _event_kinds

STATUSES = ["sent", "invalid", "failed", "skipped", "duplicate", "valid", "demo"]
KEYS = [[], ["em"], ["em", "ph"], ["client_ip_address", "client_user_agent"], ["em", "sc_click_id"]]
ERRORS = [None, "", "line 3: price must be a number", "line 9: element 2 price must be a number", "Snap said no"]


def rows(n: int, seed: int) -> list[dict[str, Any]]:
    pick = random.Random(seed).choice
    out: list[dict[str, Any]] = []
    for index in range(n):
        row: dict[str, Any] = {"status": pick(STATUSES), "error": pick(ERRORS), "charged": pick([True, False])}
        if pick([True, True, False]):  # an event's row; the others are rows of other kinds (no match keys)
            row |= {"eventName": pick([None, "", "PURCHASE", "SIGN_UP"]), "matchKeys": pick(KEYS),
                    "matchQuality": pick(["good", "fair", "none"]), "eventIndex": index}  # fmt: skip
        out.append(row)
    return out


def one_by_one(rows: list[dict[str, Any]], count_as: str | None = None) -> dict[str, Any]:
    """What the summary must say, counted the plain way: row by row."""
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    identifiers: Counter[str] = Counter()
    quality: Counter[str] = Counter()
    by_name: dict[str, Counter[str]] = {}
    quality_by_name: dict[str, Counter[str]] = {}
    charged = events = 0
    for row in rows:
        status = count_as or row["status"]
        counts[status] += 1
        charged += bool(row.get("charged"))
        if row.get("error") and status in ("invalid", "failed", "skipped"):
            text = str(row["error"]).split(": ", 1)[1] if str(row["error"]).startswith("line ") else row["error"]
            errors[text.removeprefix("element 2 ")] += 1
        if "matchKeys" in row:
            events += 1
            identifiers.update(row["matchKeys"])
            quality[row["matchQuality"]] += 1
            name = str(row.get("eventName") or "(no name)")
            by_name.setdefault(name, Counter())[status] += 1
            quality_by_name.setdefault(name, Counter())[row["matchQuality"]] += 1
    return {"counts": counts, "charged": charged, "errors": errors, "events": events, "identifiers": identifiers,
            "quality": quality, "by_name": by_name, "quality_by_name": quality_by_name}  # fmt: skip


def said(summary: Summary) -> dict[str, Any]:
    return {"counts": summary.counts, "charged": summary.charged, "errors": summary.errors, "events": summary.events,
            "identifiers": summary.identifiers, "quality": summary.quality, "by_name": summary.by_name,
            "quality_by_name": summary.quality_by_name}  # fmt: skip


def test_a_batch_is_counted_as_its_rows_one_by_one() -> None:
    for seed in range(20):
        batch = rows(300, seed)
        summary = Summary("send_batch_events", demo=False)
        summary.add(batch[:100])
        summary.add(batch[100:])
        assert said(summary) == one_by_one(batch), seed
        assert summary.total == 300


def test_event_rows_as_the_pipeline_makes_them_are_counted_as_one_by_one() -> None:
    """Rows with every event key and match keys in a tuple take the grouping fast path; mixed with a row of
    another kind, or one read back from JSON (keys in a list), the batch is counted key by key: the same counts."""
    for seed in range(10):
        batch = [row | {"eventName": row.get("eventName"), "matchKeys": tuple(row.get("matchKeys", ())),
                        "matchQuality": row.get("matchQuality", "none")} for row in rows(300, seed)]  # fmt: skip
        other_kind, from_json = [*batch, {"status": "sent", "charged": False}], [*batch, {**batch[0], "matchKeys": []}]
        assert _event_kinds(batch) is not None and _event_kinds(other_kind) is None and _event_kinds(from_json) is None
        for mixed in (batch, other_kind, from_json):
            summary = Summary("send_batch_events", demo=False)
            summary.add(mixed)
            assert said(summary) == one_by_one(mixed), seed


def test_count_as_counts_every_row_under_one_status() -> None:
    batch = rows(50, 7)
    summary = Summary("list_pixels", demo=False)
    summary.add(batch, count_as="found")
    assert said(summary) == one_by_one(batch, count_as="found")
    assert summary.counts == {"found": 50}


def test_event_names_beyond_the_limit_are_counted_together() -> None:
    summary = Summary("send_batch_events", demo=False)
    names = [f"CUSTOM_{i}" for i in range(DISTINCT_LIMIT + 5)]
    summary.add([{"status": "sent", "eventName": name, "matchKeys": ["em"], "matchQuality": "fair"} for name in names])
    summary.add([{"status": "invalid", "eventName": names[0], "matchKeys": [], "matchQuality": "none"}])
    assert len(summary.by_name) == DISTINCT_LIMIT + 1
    assert summary.by_name[OTHER] == {"sent": 5}
    assert summary.by_name[names[0]] == {"sent": 1, "invalid": 1}  # a name already counted stays apart
    assert summary.quality_by_name[OTHER] == {"fair": 5}


def test_a_resumed_run_starts_from_the_counts_its_checkpoint_saved() -> None:
    earlier = Summary("send_batch_events", demo=False)
    earlier.add(rows(400, 3))
    earlier.delivery.isolation_requests, earlier.delivery.validate_requests = 7, 2
    resumed = Summary("send_batch_events", demo=False)
    resumed.restore(earlier.to_state())
    assert said(resumed) == said(earlier)
    assert (resumed.delivery.isolation_requests, resumed.delivery.validate_requests) == (7, 2)
    assert resumed.read == resumed.total == 400  # what the earlier attempt finished counts as read


def test_a_checkpoint_without_counts_restores_to_nothing() -> None:
    resumed = Summary("send_batch_events", demo=False)
    resumed.add(rows(10, 1))
    resumed.restore({})
    fresh = Summary("send_batch_events", demo=False)
    assert said(resumed) == said(fresh)
    assert (resumed.delivery.isolation_requests, resumed.delivery.validate_requests, resumed.read) == (0, 0, 0)
    assert fresh.snap_quality is None and fresh.interrupted is None
    assert (fresh.delivery.isolation_requests, fresh.delivery.validate_requests) == (0, 0)


def test_output_says_what_the_run_did() -> None:
    summary = Summary("send_batch_events", demo=True)
    errors = [f"reason {i}" for i in range(7) for _ in range(i + 1)]  # reason 6 six times, ... reason 0 once
    summary.add([{"status": "invalid", "error": error} for error in errors])
    summary.add([{"status": "sent", "charged": True}] * 3)
    summary.delivery.isolation_requests = 4
    output = summary.to_output()
    assert {key: output[key] for key in ("task", "demo", "rows", "counts", "charged", "isolationRequests")} == {
        "task": "send_batch_events", "demo": True, "rows": len(errors) + 3,
        "counts": {"invalid": len(errors), "sent": 3}, "charged": 3, "isolationRequests": 4,
    }  # fmt: skip
    assert output["topErrors"] == [{"error": f"reason {i}", "count": i + 1} for i in (6, 5, 4, 3, 2)]
    assert "interrupted" not in output
    assert 0 <= output["durationSeconds"] < 60 and output["durationSeconds"] == round(output["durationSeconds"], 3)
    summary.interrupted = "the run was aborted"
    assert summary.to_output()["interrupted"] == "the run was aborted"


def test_reasons_beyond_the_limit_are_counted_together() -> None:
    summary = Summary("send_batch_events", demo=False)
    summary.add([{"status": "failed", "error": f"reason {i}"} for i in range(DISTINCT_LIMIT)])
    summary.add([{"status": "failed", "error": "one more reason"}, {"status": "failed", "error": "reason 0"}])
    assert len(summary.errors) == DISTINCT_LIMIT + 1 == 201
    assert summary.errors[OTHER] == 1 and summary.errors["reason 0"] == 2


def test_a_reason_is_counted_without_its_line_number_and_cut_to_200_characters() -> None:
    summary = Summary("send_batch_events", demo=False)
    long = "x" * 300
    summary.add([{"status": "invalid", "error": f"line {i}: {long}"} for i in range(3)])
    assert summary.errors == {"x" * 200: 3}
