"""Result rows: one per event (or per pixel, test event, score), built here and nowhere else.

Rows carry hashes at most: ids, names, statuses and which identifiers were present, never an
identifier's value. A row is the JSON object the dataset stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ..events.build import PreparedEvent, RejectedEvent
from ..events.quality import grade
from ..snap.quality_scores import QualityScore

Row = dict[str, Any]
Status = Literal["sent", "valid", "invalid", "failed", "skipped", "demo", "duplicate"]


@dataclass(frozen=True, slots=True)
class Outcome:
    event: PreparedEvent
    status: Status
    error: str | None = None
    warnings: tuple[str, ...] = ()


#: Statuses whose `error` says why an event was not accepted.
NOT_ACCEPTED = ("invalid", "failed", "skipped")
#: An event Snap accepted in an earlier run (see `ledger`): not sent again, not charged, not a failure.
DUPLICATE: Final = "duplicate"


def event_row(
    task: str,
    event: PreparedEvent | RejectedEvent,
    status: Status,
    error: str | None = None,
    *,
    charged: bool = False,
    warnings: Sequence[str] = (),
) -> Row:
    return {
        "task": task,
        "eventIndex": event.index,
        "eventId": event.event_id,
        "eventName": event.event_name,
        "actionSource": event.action_source,
        "status": status,
        "error": error,
        "charged": charged,
        "matchKeys": list(event.match_keys),
        "matchQuality": grade(event.match_keys),
        "warnings": [*event.warnings, *warnings],
    }


def rejected_row(task: str, event: RejectedEvent) -> Row:
    return event_row(task, event, event.status, event.error)


def outcome_rows(task: str, outcomes: Sequence[Outcome], charged: int) -> list[Row]:
    """Rows for a delivered batch; the first `charged` accepted events are the ones billed."""
    rows = []
    for outcome in outcomes:
        billed = charged > 0 and outcome.status == "sent"
        charged -= billed
        rows.append(
            event_row(task, outcome.event, outcome.status, outcome.error, charged=billed, warnings=outcome.warnings)
        )
    return rows


def quality_rows(task: str, pixel_id: str, scores: Iterable[QualityScore], *, demo: bool) -> list[Row]:
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
