"""`fieldMapping`: a source's own column names -> event fields, applied to every record of every source.

Two columns may give one field (a CSV header naming it twice, a mapped column beside the field itself):
a field taking several values of one person gathers them all; any other field keeps the later one,
and the log says (once) which column lost, never its value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import ActorInputError
from ..events.shape import SourceEvent
from ..fields import EVENT_FIELDS, FIELDS, event_field

_log = logging.getLogger(__name__)

#: Fields that take several values of one person (`email`, `phone`, `externalId`): two columns send both.
SEVERAL_VALUES = frozenset(f.input for f in FIELDS if f.section == "user_data" and f.form and f.form.takes_a_list)


def put(data: dict[str, Any], field: str, value: Any) -> bool:
    """Give `field` a column's value; True when it replaced another value of the field, which is then lost.

    An empty value is no value: it never replaces one.
    """
    if value is None or value == "":
        return False
    earlier = data.get(field)
    if earlier is None or earlier == "" or earlier == value:
        data[field] = value
        return False
    if field in SEVERAL_VALUES:
        data[field] = [*_values(earlier), *_values(value)]
        return False
    data[field] = value
    return True


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class FieldMapping:
    """A file's own column names -> the single-event input names (`{"Email Address": "email"}`)."""

    def __init__(self, mapping: Mapping[str, str] | None) -> None:
        self._map = dict(mapping or {})
        for column, target in self._map.items():
            if target not in EVENT_FIELDS:
                raise ActorInputError("fieldMapping", f"maps '{column}' to '{target}', which is not an event field")
        #: Mapped columns already said to overwrite a field: the log says so once, not once per event.
        self._told: set[str] = set()

    def rename(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """The record under event field names; a mapped column wins over the field the record has itself."""
        if not self._map:
            return data
        renamed = {key: value for key, value in data.items() if key not in self._map}
        for key, value in data.items():
            field = self._map.get(key)
            if field is not None and put(renamed, field, value) and key not in self._told:
                self._told.add(key)
                _log.warning(
                    f"fieldMapping maps '{key}' to {field}, which some events also have from another field: "
                    f"where both have a value, '{key}''s is sent and the other dropped"
                )
        return renamed

    def column(self, name: str) -> str:
        """The field a header's column gives: its mapping, else its name, matched whatever its case."""
        if name in self._map:
            return self._map[name]
        return event_field(name) or name.strip()

    def is_mapped(self, name: str) -> bool:
        return name in self._map


def mapped_record(index: int, data: object, where: str, mapping: FieldMapping) -> SourceEvent:
    if isinstance(data, Mapping):
        return SourceEvent(index, mapping.rename(data))
    return SourceEvent(index, None, error=f"{where} is not a JSON object")
