"""An Apify dataset as an event source (`eventsDatasetId`), read a page at a time; an item's index is its offset."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import ActorInputError
from ..events.shape import SourceEvent
from ..platform import OpenDataset
from .mapping import FieldMapping, mapped_record

DATASET_PAGE = 1000


async def dataset_events(
    open_dataset: OpenDataset, dataset: str, mapping: FieldMapping, start: int = 0
) -> AsyncIterator[SourceEvent]:
    """Items of a dataset (id or name) a page at a time; an item's index is its offset."""
    opened = await open_dataset(dataset)
    offset = start
    while True:
        page = await opened.get_data(offset=offset, limit=DATASET_PAGE)
        if not page.items:
            if offset == 0:
                raise ActorInputError("eventsDatasetId", "names a dataset with no items")
            return
        for item in page.items:
            yield mapped_record(offset, item, f"dataset item {offset}", mapping)
            offset += 1
