"""Where a run's events come from: the `events` input, the single-event fields, or demo samples."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .actor_input import ActorInput
from .demo import sample_events
from .errors import ActorInputError
from .event_input import FLAT_FIELDS, SourceEvent, iter_events

_IDENTIFIERS = frozenset(name for name, (section, _) in FLAT_FIELDS.items() if section == "user_data")


@dataclass(frozen=True, slots=True)
class EventSource:
    """A stream of events, and the single-event fields its events fall back on."""

    events: AsyncIterator[SourceEvent]
    defaults: dict[str, Any]
    description: str


def event_source(actor_input: ActorInput) -> EventSource:
    """`events` when given; else the single event; in a demo without identifiers, sample events."""
    if actor_input.events is not None:
        if not actor_input.events:
            raise ActorInputError("events", "is an empty array")
        count = len(actor_input.events)
        return EventSource(iter_events(actor_input.events), actor_input.event_defaults(), f"{count} events from input")
    if actor_input.task == "send_batch_events":
        raise ActorInputError("events", "is required for send_batch_events (a JSON array of event objects)")
    single = actor_input.single_event()
    if actor_input.is_demo and _IDENTIFIERS.isdisjoint(single):
        samples = sample_events(actor_input.event_source_url)
        return EventSource(iter_events(samples), {}, f"{len(samples)} demo sample events")
    return EventSource(iter_events([single]), {}, "the single event from input")
