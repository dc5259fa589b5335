"""Where a run's events come from: a dataset or a file, `events`, the single-event fields, or demo samples."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ActorInputError
from ..events.shape import SourceEvent, iter_events
from ..fields import IDENTIFIER_INPUTS
from ..input import ActorInput
from ..net.transport import RetryPolicy
from ..net.url_guard import UrlGuard
from ..platform import OpenDataset
from .dataset import dataset_events
from .files import url_events
from .mapping import FieldMapping

#: Sample events (given the `eventSourceUrl` they should carry): a demo's, when nothing else is given.
SampleEvents = Callable[[str | None], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class EventSource:
    """A stream of events, and the single-event fields its events fall back on."""

    events: AsyncIterator[SourceEvent]
    defaults: dict[str, Any]
    description: str


def event_source(
    actor_input: ActorInput,
    url_guard: UrlGuard,
    open_dataset: OpenDataset,
    start: int = 0,
    *,
    samples: SampleEvents | None = None,
) -> EventSource:
    """Where this task reads its events: `send_event` the single-event fields only (never `events` or a
    bulk source, which a form filled for another task may still hold); the batch tasks a bulk source or
    `events`, and `validate_events` without one the single event. With `samples` (a demo's) and nothing given,
    samples.

    `start` is the first index a resumed run still needs: bulk sources skip what lies below it cheaply.
    """
    source = None if actor_input.task == "send_event" else actor_input.batch_source
    mapping = FieldMapping(actor_input.field_mapping)
    if source == "eventsDatasetId":
        events = dataset_events(open_dataset, str(actor_input.events_dataset_id), mapping, start)
        return EventSource(events, actor_input.event_defaults(), "events from the dataset in eventsDatasetId")
    if source == "eventsUrl":
        retry = RetryPolicy(max_retries=actor_input.max_retries)
        events = url_events(str(actor_input.events_url), mapping, start, retry=retry, url_guard=url_guard)
        return EventSource(events, actor_input.event_defaults(), "events from the file at eventsUrl")
    if source == "events" and actor_input.events is not None:
        if not actor_input.events:
            raise ActorInputError("events", "is an empty array: give at least one event object")
        count = len(actor_input.events)
        events = iter_events(mapping.rename(item) if isinstance(item, dict) else item for item in actor_input.events)
        return EventSource(events, actor_input.event_defaults(), f"{count} events from input")
    single = actor_input.single_event()
    if samples is not None and (actor_input.task == "send_batch_events" or IDENTIFIER_INPUTS.isdisjoint(single)):
        sample = samples(actor_input.event_field("eventSourceUrl"))
        return EventSource(iter_events(sample), {}, f"{len(sample)} demo sample events")
    return EventSource(iter_events([single]), {}, "the single event from input")
