"""Result rows: one per event (or per pixel, test event, score), built here and nowhere else.

Rows carry hashes at most: ids, names, statuses and which identifiers were present, never an
identifier's value. Each kind of row is a TypedDict; `to_json` makes the JSON object the dataset stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final, Literal, NamedTuple, TypedDict

from ..events.build import PreparedEvent, RejectedEvent
from ..events.quality import grade
from ..net.transport import redact
from ..snap.quality_scores import QualityScore

Status = Literal["sent", "valid", "invalid", "failed", "skipped", "demo", "duplicate"]


class EventRow(TypedDict):
    """One event of send_event, send_batch_events or validate_events."""

    task: str
    eventIndex: int
    eventId: str | None
    eventName: str | None
    actionSource: str | None
    status: Status
    error: str | None
    charged: bool
    #: A tuple: the event's own, shared, not copied per row (an array in the dataset, as JSON has no tuples).
    matchKeys: tuple[str, ...]
    matchQuality: str
    warnings: list[str]


class PixelRow(TypedDict):
    """One pixel of list_pixels or get_pixel_info, as Snap's Marketing API describes it."""

    task: str
    id: Any
    name: Any
    adAccountId: Any
    status: Any
    effectiveStatus: Any
    createdAt: Any
    updatedAt: Any
    demo: bool


class TestEventLogRow(TypedDict):
    """One log entry of get_test_event_logs."""

    task: str
    assetId: str
    status: Any
    receivedAt: Any
    eventName: Any
    actionSource: Any
    integration: Any
    errors: list[Any]
    warnings: list[Any]
    demo: bool


class StatsRow(TypedDict):
    """The one row of get_test_event_stats."""

    task: str
    assetId: str
    status: Any
    latestEventTimestamp: Any
    eventCountPastHour: int
    demo: bool


class QualityRow(TypedDict):
    """One event type's score of get_event_quality."""

    task: str
    pixelId: str
    eventName: str | None
    actionSource: str | None
    eventSource: str | None
    score: str | None
    recommendations: list[str]
    demo: bool


Row = EventRow | PixelRow | TestEventLogRow | StatsRow | QualityRow
#: A row as the dataset stores it (and as checkpoints and the webhook carry it).
JsonRow = dict[str, Any]


class Outcome(NamedTuple):
    """What became of one event Snap was asked about (immutable; one per event, so a tuple, cheap to build)."""

    event: PreparedEvent
    status: Status
    error: str | None = None
    warnings: tuple[str, ...] = ()


#: Snap accepted the event (a live send): the status billing charges and the ledger remembers.
SENT: Final = "sent"
#: Statuses whose `error` says why an event was not accepted.
NOT_ACCEPTED = ("invalid", "failed", "skipped")
#: An event Snap accepted in an earlier run, or earlier in this one (see `ledger`): not sent again, not charged,
#: not a failure.
DUPLICATE: Final = "duplicate"
#: The grade of each set of match keys seen: an export has a handful of them, graded once each.
_grade = lru_cache(maxsize=1024)(grade)


def event_row(
    task: str,
    event: PreparedEvent | RejectedEvent,
    status: Status,
    error: str | None = None,
    *,
    charged: bool = False,
    warnings: Sequence[str] = (),
) -> EventRow:
    """Its `error` and `warnings` may quote Snap's answers: they pass `redact`, like every text that leaves."""
    return {
        "task": task,
        "eventIndex": event.index,
        "eventId": event.event_id,
        "eventName": event.event_name,
        "actionSource": event.action_source,
        "status": status,
        "error": redact(error) if error else error,
        "charged": charged,
        "matchKeys": event.match_keys,
        "matchQuality": _grade(event.match_keys),
        "warnings": [redact(text) for text in (*event.warnings, *warnings)] if warnings or event.warnings else [],
    }


def rejected_row(task: str, event: RejectedEvent) -> EventRow:
    return event_row(task, event, event.status, event.error)


def outcome_rows(task: str, outcomes: Sequence[Outcome], charged: Sequence[bool]) -> list[EventRow]:
    """Rows for a delivered batch; `charged` says which events were billed (`billing.charged_flags`)."""
    return [
        event_row(task, outcome.event, outcome.status, outcome.error, charged=billed, warnings=outcome.warnings)
        for outcome, billed in zip(outcomes, charged, strict=True)
    ]


def quality_rows(task: str, pixel_id: str, scores: Iterable[QualityScore], *, demo: bool) -> list[QualityRow]:
    return [
        {
            "task": task,
            "pixelId": pixel_id,
            "eventName": score.event_name,
            "actionSource": score.action_source,
            "eventSource": score.event_source,
            "score": score.score,
            "recommendations": [rec.label() for rec in score.recommendations],
            "demo": demo,
        }
        for score in scores
    ]


def pixel_row(task: str, pixel: Mapping[str, Any], *, demo: bool) -> PixelRow:
    return {
        "task": task,
        "id": pixel.get("id"),
        "name": pixel.get("name"),
        "adAccountId": pixel.get("ad_account_id"),
        "status": pixel.get("status"),
        "effectiveStatus": pixel.get("effective_status"),
        "createdAt": pixel.get("created_at"),
        "updatedAt": pixel.get("updated_at"),
        "demo": demo,
    }


def log_row(task: str, asset_id: str, log: Mapping[str, Any], *, demo: bool) -> TestEventLogRow:
    metadata = log.get("event_metadata") or {}
    return {
        "task": task,
        "assetId": asset_id,
        "status": log.get("status"),
        "receivedAt": log.get("timestamp"),
        "eventName": metadata.get("event_name") or log.get("event_type"),
        "actionSource": metadata.get("action_source") or log.get("event_conversion_type"),
        "integration": log.get("integration"),
        "errors": list(log.get("error_records") or []),
        "warnings": list(log.get("warning_records") or []),
        "demo": demo,
    }


def stats_row(task: str, asset_id: str, body: Mapping[str, Any], *, demo: bool) -> StatsRow:
    test = (body.get("stats") or {}).get("test") or {}
    return {
        "task": task,
        "assetId": asset_id,
        "status": body.get("status"),
        "latestEventTimestamp": test.get("latest_event_ts") or None,
        "eventCountPastHour": int(test.get("event_count_past_hour") or 0),
        "demo": demo,
    }


def to_json(row: Row, row_prefix: str | None) -> JsonRow:
    """The row as the dataset stores it. An event's row gets `rowId` = `{row_prefix}:{eventIndex}`: the same event
    always gets the same id, so rows are easy to dedupe."""
    data: JsonRow = dict(row)
    if row_prefix is not None and "eventIndex" in data:
        data["rowId"] = f"{row_prefix}:{data['eventIndex']}"
    return data
