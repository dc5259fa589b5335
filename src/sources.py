"""Where a run's events come from: a dataset or a file, `events`, the single-event fields, or demo samples."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .actor_input import ActorInput
from .bulk_sources import FieldMapping, dataset_events, url_events
from .demo import sample_events
from .errors import ActorInputError
from .event_input import FLAT_FIELDS, SourceEvent, iter_events
from .transport import RetryPolicy

_IDENTIFIERS = frozenset(name for name, (section, _) in FLAT_FIELDS.items() if section == "user_data")


@dataclass(frozen=True, slots=True)
class EventSource:
    """A stream of events, and the single-event fields its events fall back on."""

    events: AsyncIterator[SourceEvent]
    defaults: dict[str, Any]
    description: str


def event_source(actor_input: ActorInput, start: int = 0) -> EventSource:
    """A bulk source or `events` when given; else the single event; in a demo without identifiers, samples.

    `start` is the first index a resumed run still needs: bulk sources skip what lies below it cheaply.
    """
    given = [name for name, value in (("events", actor_input.events), ("eventsDatasetId",
             actor_input.events_dataset_id), ("eventsUrl", actor_input.events_url)) if value is not None]  # fmt: skip
    if len(given) > 1:
        raise ActorInputError(given[1], f"cannot be combined with {given[0]}: give one source of events")
    mapping = FieldMapping(actor_input.field_mapping)
    if actor_input.events_dataset_id is not None:
        events = dataset_events(actor_input.events_dataset_id, mapping, start)
        return EventSource(events, actor_input.event_defaults(), "events from the dataset in eventsDatasetId")
    if actor_input.events_url is not None:
        retry = RetryPolicy(max_retries=actor_input.max_retries)
        events = url_events(actor_input.events_url, mapping, start, retry=retry)
        return EventSource(events, actor_input.event_defaults(), "events from the file at eventsUrl")
    if actor_input.events is not None:
        if not actor_input.events:
            raise ActorInputError("events", "is an empty array")
        count = len(actor_input.events)
        events = iter_events(mapping.rename(item) if isinstance(item, dict) else item for item in actor_input.events)
        return EventSource(events, actor_input.event_defaults(), f"{count} events from input")
    if actor_input.task == "send_batch_events":
        raise ActorInputError(
            "events", "is required for send_batch_events (a JSON array of event objects; or eventsDatasetId, eventsUrl)"
        )
    single = actor_input.single_event()
    if actor_input.is_demo and _IDENTIFIERS.isdisjoint(single):
        samples = sample_events(actor_input.event_source_url)
        return EventSource(iter_events(samples), {}, f"{len(samples)} demo sample events")
    return EventSource(iter_events([single]), {}, "the single event from input")
