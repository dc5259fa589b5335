"""The run summary: counts, reasons, match quality and delivery statistics in bounded memory; OUTPUT and
the report read it, and a resumed run restores it from the checkpoint."""

from __future__ import annotations

import operator
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .rows import NOT_ACCEPTED

_LINE_PREFIX = re.compile(r"^line \d+: (element \d+ )?")
#: Distinct event names and reasons a summary tells apart; the rest are counted under `OTHER`, so
#: that a million events with a million made-up names still take constant memory.
DISTINCT_LIMIT = 200
OTHER = "(other)"
#: What tells one event row's kind from another (`Summary.add`), read in one C call per row.
_EVENT_KIND = operator.itemgetter("status", "charged", "error", "eventName", "matchKeys", "matchQuality")


@dataclass(slots=True)
class DeliveryStats:
    """Requests spent isolating rejected events, for OUTPUT (`isolationRequests`); bounded counters only."""

    isolation_requests: int = 0
    validate_requests: int = 0


def _event_kinds(rows: Sequence[Mapping[str, Any]]) -> Counter[tuple[Any, ...]] | None:
    """The rows grouped by kind when all are event rows as `rows.event_row` makes them, else None: a row of
    another kind (a key missing), or match keys in a list (a row read back from JSON)."""
    try:
        return Counter(map(_EVENT_KIND, rows))
    except (KeyError, TypeError):
        return None


def count_into(counter: Counter[str], key: str, amount: int) -> None:
    """Count `key`, or `OTHER` once the counter already tells `DISTINCT_LIMIT` keys apart."""
    counter[key if key in counter or len(counter) < DISTINCT_LIMIT else OTHER] += amount


@dataclass(slots=True)
class Summary:
    """Counts that grow with the run; the rows themselves go to the dataset and are let go.

    Everything here is a bounded counter (never a row or a value), so the summary is the same size
    for ten events and for a million; the run report is drawn from it.
    """

    task: str
    demo: bool
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    charged: int = 0
    read: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: Event rows (those with match keys): the denominator of identifier coverage.
    events: int = 0
    identifiers: Counter[str] = field(default_factory=Counter)
    quality: Counter[str] = field(default_factory=Counter)
    #: event name -> status -> count.
    by_name: dict[str, Counter[str]] = field(default_factory=dict)
    interrupted: str | None = None
    #: Extra requests spent isolating events Snap refused (see `delivery.SnapDelivery`).
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    #: event name -> our match-quality grade -> count, for the report beside Snap's own score.
    quality_by_name: dict[str, Counter[str]] = field(default_factory=dict)
    #: Snap's Signal Readiness answer for the report (`quality_scores.SnapQuality`); not saved in checkpoints.
    snap_quality: Any = None

    def add(self, rows: Sequence[Mapping[str, Any]], count_as: str | None = None) -> None:
        """Count rows. The rows of a batch mostly look alike (same status, name and match keys), so they are
        grouped first and each kind is counted once, with its number. Event rows as `rows.event_row` makes them
        (every key there, `matchKeys` a tuple) are grouped as they are; any other row, key by key."""
        kinds = _event_kinds(rows) if count_as is None else None
        if kinds is None:
            kinds = Counter(
                (
                    count_as or row["status"],
                    row.get("charged"),
                    row.get("error"),
                    row.get("eventName"),
                    tuple(row["matchKeys"]) if "matchKeys" in row else None,
                    row.get("matchQuality"),
                )
                for row in rows
            )
        for (status, charged, error, name, keys, quality), n in kinds.items():
            name = name or "(no name)"
            self.counts[status] += n
            self.charged += bool(charged) * n
            if error and status in NOT_ACCEPTED:
                # Grouped without the line number, so a file of bad lines makes a few entries, not one each.
                count_into(self.errors, _LINE_PREFIX.sub("", str(error))[:200], n)
            if keys is not None:
                self._add_events(n, status, str(name), keys, str(quality))

    def _add_events(self, n: int, status: str, name: str, keys: tuple[str, ...], quality: str) -> None:
        self.events += n
        for key in keys:
            self.identifiers[key] += n
        self.quality[quality] += n
        if name not in self.by_name and len(self.by_name) >= DISTINCT_LIMIT:
            name = OTHER
        self.by_name.setdefault(name, Counter())[status] += n
        self.quality_by_name.setdefault(name, Counter())[quality] += n

    def to_state(self) -> dict[str, Any]:
        """The counts a resumed attempt starts from (see `checkpoint`); all bounded in size."""
        return {
            "counts": dict(self.counts),
            "charged": self.charged,
            "errors": dict(self.errors),
            "events": self.events,
            "identifiers": dict(self.identifiers),
            "quality": dict(self.quality),
            "byName": {name: dict(statuses) for name, statuses in self.by_name.items()},
            "qualityByName": {name: dict(grades) for name, grades in self.quality_by_name.items()},
            "isolationRequests": self.delivery.isolation_requests,
            "validateRequests": self.delivery.validate_requests,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.counts = Counter(state.get("counts") or {})
        self.charged = int(state.get("charged") or 0)
        self.errors = Counter(state.get("errors") or {})
        self.events = int(state.get("events") or 0)
        self.identifiers = Counter(state.get("identifiers") or {})
        self.quality = Counter(state.get("quality") or {})
        self.by_name = {name: Counter(statuses) for name, statuses in (state.get("byName") or {}).items()}
        self.quality_by_name = {name: Counter(grades) for name, grades in (state.get("qualityByName") or {}).items()}
        self.delivery.isolation_requests = int(state.get("isolationRequests") or 0)
        self.delivery.validate_requests = int(state.get("validateRequests") or 0)
        self.read = self.total

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_output(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "demo": self.demo,
            "rows": self.total,
            "counts": dict(self.counts),
            "charged": self.charged,
            "durationSeconds": round(time.monotonic() - self.started, 3),
            "topErrors": [{"error": error, "count": count} for error, count in self.errors.most_common(5)],
            "isolationRequests": self.delivery.isolation_requests,
        } | ({"interrupted": self.interrupted} if self.interrupted else {})
