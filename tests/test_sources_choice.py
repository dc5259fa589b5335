"""Which source a task reads, in process: `event_source` for each task and input, and what comes out of it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from bulk_support import FileServer
from memory_platform import MemoryDataset

from src.errors import ActorInputError
from src.events.shape import SourceEvent
from src.input import parse_input
from src.net.url_guard import UrlGuard
from src.sources import EventSource, event_source
from src.sources.demo import sample_events

OPEN = UrlGuard(allow_private=True)
LIVE = {"demoMode": False, "accessToken": "t", "pixelId": "p"}
DEFAULTS = {"eventType": "PURCHASE", "actionSource": "WEB", "currency": "USD"}


class Datasets:
    def __init__(self, **datasets: list[Any]) -> None:
        self.datasets = datasets
        self.opened: list[str] = []

    async def __call__(self, name: str) -> MemoryDataset:
        self.opened.append(name)
        return MemoryDataset(self.datasets[name])


def choose(raw: dict[str, Any], start: int = 0, datasets: Datasets | None = None) -> EventSource:
    actor_input = parse_input(raw)
    samples = sample_events if actor_input.is_demo else None  # what the run's demo seam passes
    if not start:  # a first attempt: from the beginning
        return event_source(actor_input, OPEN, datasets or Datasets(), samples=samples)
    return event_source(actor_input, OPEN, datasets or Datasets(), start, samples=samples)


def read(source: EventSource) -> list[SourceEvent]:
    async def collect() -> list[SourceEvent]:
        return [event async for event in source.events]

    return asyncio.run(collect())


def test_send_event_reads_only_the_single_event_whatever_else_the_form_holds() -> None:
    source = choose({**LIVE, "task": "send_event", "email": "a@example.com", "events": [{"email": "b@example.com"}]})
    assert source.description == "the single event from input"
    assert source.defaults == {}
    [event] = read(source)
    assert event.index == 0 and event.data is not None and event.data["email"] == "a@example.com"


def test_the_events_array_is_read_in_order_renamed_by_the_field_mapping() -> None:
    source = choose(
        {
            **LIVE,
            "task": "send_batch_events",
            "events": [{"mail": "a@example.com"}, "not an object", {"email": "c@example.com"}],
            "fieldMapping": {"mail": "email"},
            "eventSourceUrl": "https://shop.example.com/thanks",
        }
    )
    assert source.description == "3 events from input"
    assert source.defaults == {**DEFAULTS, "eventSourceUrl": "https://shop.example.com/thanks"}
    events = read(source)
    assert [event.data for event in events] == [{"email": "a@example.com"}, None, {"email": "c@example.com"}]
    assert events[1].error == "events[1] is not a JSON object"


def test_an_empty_events_array_is_an_input_error() -> None:
    with pytest.raises(ActorInputError, match="is an empty array"):
        choose({**LIVE, "task": "send_batch_events", "events": []})


def test_a_dataset_is_read_from_the_resume_point_with_the_field_mapping() -> None:
    datasets = Datasets(orders=[{"mail": "a@example.com"}, {"mail": "b@example.com"}, {"mail": "c@example.com"}])
    raw = {**LIVE, "task": "send_batch_events", "eventsDatasetId": "orders", "fieldMapping": {"mail": "email"}}
    source = choose(raw, start=1, datasets=datasets)
    assert source.description == "events from the dataset in eventsDatasetId"
    assert source.defaults == DEFAULTS
    events = read(source)
    assert [(event.index, event.data) for event in events] == [
        (1, {"email": "b@example.com"}),
        (2, {"email": "c@example.com"}),
    ]
    assert datasets.opened == ["orders"]
    assert [event.index for event in read(choose(raw, datasets=datasets))] == [0, 1, 2]  # a first attempt: all


def test_a_file_at_a_url_is_downloaded_and_read_from_the_resume_point() -> None:
    lines = "\n".join(json.dumps({"mail": f"{n}@example.com"}) for n in range(3)) + "\n"
    with FileServer() as server:
        url = server.add("/events.jsonl", lines, "application/x-ndjson")
        raw = {**LIVE, "task": "validate_events", "eventsUrl": url, "fieldMapping": {"mail": "email"}, "maxRetries": 0}
        source = choose(raw, start=1)
        assert source.description == "events from the file at eventsUrl"
        assert source.defaults == DEFAULTS
        events = read(source)
    assert [(event.index, event.data) for event in events] == [
        (1, {"email": "1@example.com"}),
        (2, {"email": "2@example.com"}),
    ]


def test_a_demo_batch_without_a_source_sends_samples_even_with_single_event_fields() -> None:
    source = choose(
        {"task": "send_batch_events", "email": "a@example.com", "eventSourceUrl": "https://shop.example.com/x"}
    )
    assert source.description.endswith("demo sample events") and source.defaults == {}
    events = read(source)
    assert len(events) > 1 and source.description == f"{len(events)} demo sample events"
    urls = [event.data["eventSourceUrl"] for event in events if event.data is not None]
    assert len(urls) == len(events) and all(url.startswith("https://shop.example.com/x") for url in urls)


def test_a_demo_single_event_uses_samples_only_when_it_names_nobody() -> None:
    assert choose({"task": "send_event"}).description.endswith("demo sample events")
    named = choose({"task": "send_event", "email": "a@example.com"})
    assert named.description == "the single event from input"
    assert choose({"task": "validate_events", "phone": "+14155550100"}).description == "the single event from input"


def test_a_live_single_event_is_never_replaced_by_samples() -> None:
    source = choose({**LIVE, "task": "send_event"})
    assert source.description == "the single event from input"
    assert [event.data for event in read(source)] == [{**DEFAULTS, "numberOfItems": 1}]
