"""`fieldMapping`: a source's own column names -> event fields, applied to every record of every source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ActorInputError
from ..events.shape import SourceEvent
from ..fields import EVENT_FIELDS


class FieldMapping:
    """A file's own column names -> the single-event input names (`{"Email Address": "email"}`)."""

    def __init__(self, mapping: Mapping[str, str] | None) -> None:
        self._map = dict(mapping or {})
        for column, target in self._map.items():
            if target not in EVENT_FIELDS:
                raise ActorInputError("fieldMapping", f"maps '{column}' to '{target}', which is not an event field")

    def rename(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self._map:
            return data
        renamed = {key: value for key, value in data.items() if key not in self._map}
        renamed.update((self._map[key], value) for key, value in data.items() if key in self._map)
        return renamed

    def column(self, name: str) -> str:
        return self._map.get(name, name.strip())


def mapped_record(index: int, data: object, where: str, mapping: FieldMapping) -> SourceEvent:
    if isinstance(data, Mapping):
        return SourceEvent(index, mapping.rename(data))
    return SourceEvent(index, None, error=f"{where} is not a JSON object")
