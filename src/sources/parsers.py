"""Incremental parsers of a file's text: CSV, JSON Lines, a JSON array; and which one a file needs.

Text comes in chunks of any size; memory holds one chunk whatever the file's size. Every record gets the
same 0-based index on every read, so a resumed run skips what an earlier attempt finished (`start`:
records below it are counted, not parsed). A record that cannot be read becomes a `SourceEvent` without
data whose error names its line: one bad line never stops the run.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from ..errors import SourceError
from ..events.shape import SourceEvent
from ..fields import EVENT_FIELDS
from .mapping import SEVERAL_VALUES, FieldMapping, mapped_record, put

_log = logging.getLogger(__name__)


#: A JSON element still open after this many characters stops the run: the file is not JSON.
MAX_RECORD_CHARS = 1 << 20
#: A line (CSV or JSON Lines) longer than this is reported and skipped, never held: no event is this long.
MAX_LINE_CHARS = 1 << 20
#: A CSV quoted field still open after this many lines is a stray quote: its line is reported.
MAX_RECORD_LINES = 100


def _csv_state(text: str, delimiter: str) -> str:
    """`open` when a CSV record ends inside a quoted field (the next line continues it), else `ok` or `bad`."""
    try:
        next(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as error:
        return "open" if "unexpected end of data" in str(error) else "bad"
    return "ok"


class RecordParser(Protocol):
    """Turns decoded text, fed in chunks of any size, into events; `end` flushes what is left."""

    def feed(self, text: str) -> Iterator[SourceEvent]: ...

    def end(self) -> Iterator[SourceEvent]: ...


class LineSplitter:
    """Text fed in chunks of any size -> whole lines, in time linear in the text.

    A line longer than `limit` comes out as None and is dropped as it arrives, so a file that never
    ends a line costs `limit` characters of memory, not the file's size.
    """

    def __init__(self, limit: int = MAX_LINE_CHARS) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._overlong = False

    def feed(self, text: str) -> list[str | None]:
        pieces = text.split("\n")
        rest = pieces.pop()
        if pieces:
            # The first piece ends what earlier chunks began; every other one is a whole line in this chunk.
            first = self._finish(pieces[0])
            limit = self._limit
            lines: list[str | None] = [piece if len(piece) <= limit else None for piece in pieces]
            lines[0] = first
        else:
            lines = []
        self._add(rest)
        return lines

    def end(self) -> list[str | None]:
        return [self._finish("")] if self._parts or self._overlong else []

    def _add(self, piece: str) -> None:
        if self._overlong or not piece:
            return
        self._size += len(piece)
        if self._size > self._limit:
            self._overlong, self._parts = True, []
        else:
            self._parts.append(piece)

    def _finish(self, piece: str) -> str | None:
        self._add(piece)
        line = None if self._overlong else "".join(self._parts)
        self._parts, self._size, self._overlong = [], 0, False
        return line


class LineEnds:
    """Text fed in chunks -> the same text with every line ending in LF: a bare CR (classic Mac, Excel's
    "CSV (Macintosh)") ends a line as CRLF does. A CR at a chunk's end waits: the next chunk may bring its LF.
    """

    def __init__(self) -> None:
        self._cr = False

    def feed(self, text: str) -> str:
        if self._cr:
            text, self._cr = "\r" + text, False
        if text.endswith("\r"):
            text, self._cr = text[:-1], True
        return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text

    def end(self) -> str:
        cr, self._cr = self._cr, False
        return "\n" if cr else ""


def too_long(line: int) -> str:
    return f"line {line}: longer than {MAX_LINE_CHARS:,} characters"


class JsonLinesParser:
    """One JSON object per line; blank lines are not events."""

    def __init__(self, mapping: FieldMapping, start: int = 0) -> None:
        self._mapping = mapping
        self._start = start
        self._lines_of = LineSplitter()
        self._line = 0
        self._index = 0

    def feed(self, text: str) -> Iterator[SourceEvent]:
        return self._lines(self._lines_of.feed(text))

    def end(self) -> Iterator[SourceEvent]:
        return self._lines(self._lines_of.end())

    def _lines(self, lines: list[str | None]) -> Iterator[SourceEvent]:
        rename = self._mapping.rename
        loads = orjson.loads
        for line in lines:
            self._line += 1
            if line is not None and not line.strip():
                continue
            index = self._index
            self._index += 1
            if index < self._start:
                continue
            if line is None:
                yield SourceEvent(index, None, error=too_long(self._line))
                continue
            try:
                data = loads(line)
            except orjson.JSONDecodeError:
                yield SourceEvent(index, None, error=f"line {self._line}: not valid JSON")
                continue
            if type(data) is dict:  # `_record`, inlined for the common case
                yield SourceEvent(index, rename(data))
            else:
                yield mapped_record(index, data, f"line {self._line}", self._mapping)


class CsvParser:
    """A header row naming the fields (or `fieldMapping` keys), then one event per record.

    Quoted fields may span lines: a record is complete when its quotes balance. Lines may end in LF, CRLF
    or a bare CR. Fields are separated by the header's `,`, `;` or tab, whichever names the most fields.
    """

    def __init__(self, mapping: FieldMapping, start: int = 0) -> None:
        self._mapping = mapping
        self._start = start
        self._line_ends = LineEnds()
        self._lines_of = LineSplitter()
        self._pending: list[str] = []
        self._pending_line = 0
        self._line = 0
        self._index = 0
        self._delimiter: str | None = None
        self._columns: list[str | None] | None = None
        #: (position, field) of each column in the order their values are put, when two give one field.
        self._order: list[tuple[int, str]] | None = None

    def feed(self, text: str) -> Iterator[SourceEvent]:
        return self._records(self._complete(self._lines_of.feed(self._line_ends.feed(text))))

    def end(self) -> Iterator[SourceEvent]:
        records = self._complete(self._lines_of.feed(self._line_ends.end()) + self._lines_of.end())
        while self._pending:  # a quote still open at the end: report its line, read the rest afresh
            stray, rest = self._pending[0], self._pending[1:]
            records.append((self._pending_line, stray))
            self._line, self._pending = self._pending_line, []
            records.extend(self._complete(rest))
        return self._records(records)

    def _complete(self, lines: Sequence[str | None]) -> list[tuple[int, str | None]]:
        """Physical lines grouped into whole records, each with the line it starts on (None: too long)."""
        records: list[tuple[int, str | None]] = []
        queue: deque[str | None] = deque(lines)
        while queue:
            line = queue.popleft()
            self._line += 1
            if line is None:
                if self._pending:  # a quoted field running into an over-long line: the record is too long
                    self._line, line = self._pending_line, None
                    self._pending = []
                records.append((self._line, None))
                continue
            if self._delimiter is None and line.strip():
                self._delimiter = self._separator(line)
            delimiter = self._delimiter or ","
            if not self._pending:
                if line.count('"') % 2 == 0 or _csv_state(line, delimiter) != "open":
                    records.append((self._line, line))
                else:
                    self._pending_line, self._pending = self._line, [line]
                continue
            self._pending.append(line)
            state = _csv_state("\n".join(self._pending), delimiter)
            if state == "ok":
                records.append((self._pending_line, "\n".join(self._pending)))
                self._pending = []
            elif state == "bad" or len(self._pending) > MAX_RECORD_LINES or self._pending_size() > MAX_LINE_CHARS:
                # A stray quote, not a field spanning lines: report its line, read the lines after it afresh.
                records.append((self._pending_line, self._pending[0]))
                queue.extendleft(reversed(self._pending[1:]))
                self._line, self._pending = self._pending_line, []
        return records

    def _separator(self, header: str) -> str:
        """The delimiter that splits the header line into the most event fields: `,` unless `;` (Excel in
        many European locales) or a tab names more."""
        best, most = ",", 0
        for delimiter in ",;\t":
            try:
                names = next(csv.reader([header], delimiter=delimiter))
            except csv.Error:
                continue
            known = sum(self._mapping.column(name) in EVENT_FIELDS for name in names)
            if known > most:
                best, most = delimiter, known
        return best

    def _pending_size(self) -> int:
        return sum(len(line) for line in self._pending)

    def _records(self, records: list[tuple[int, str | None]]) -> Iterator[SourceEvent]:
        for line, text in records:
            if text is not None and not text.strip():
                continue
            if self._columns is None:
                if text is None:
                    raise SourceError(f"eventsUrl: the CSV's header line is longer than {MAX_LINE_CHARS:,} characters")
                self._columns = self._header(text)
                continue
            index = self._index
            self._index += 1
            if index < self._start:
                continue
            yield self._event(index, line, text) if text is not None else SourceEvent(index, None, error=too_long(line))

    def _header(self, text: str) -> list[str | None]:
        try:
            names = next(csv.reader([text], delimiter=self._delimiter or ","))
        except csv.Error:
            raise SourceError("eventsUrl: the CSV's header line is not a valid CSV record") from None
        columns = [self._mapping.column(name) for name in names]
        known = [column if column in EVENT_FIELDS else None for column in columns]
        if not any(known):
            # Names are not echoed: without a header, this line is a person's data.
            raise SourceError(
                "eventsUrl: the CSV's first line names no event field (eventType, email, phone, price, ...): "
                "name the columns so, map your own names with fieldMapping, or add the header row if it is missing"
            )
        if ignored := sum(column is None for column in known):
            _log.warning(f"{ignored} CSV column(s) are not event fields and are ignored (see fieldMapping)")
        if recased := [
            f"{name.strip()} -> {column}"
            for name, column in zip(names, known, strict=True)
            if column is not None and column != name.strip() and not self._mapping.is_mapped(name)
        ]:
            _log.info(f"CSV columns read as event fields whatever their case: {', '.join(recased)}")
        self._order = self._merge_order(names, known)
        return known

    def _merge_order(self, names: list[str], columns: list[str | None]) -> list[tuple[int, str]] | None:
        """When two columns give one field: the positions in the order their values are put (a column named
        as the field, then a mapped one, each in file order; the later wins), and the log says which loses."""
        given: dict[str, list[int]] = {}
        for position, column in enumerate(columns):
            if column is not None:
                given.setdefault(column, []).append(position)
        if all(len(positions) == 1 for positions in given.values()):
            return None
        order = sorted(
            ((position, column) for position, column in enumerate(columns) if column is not None),
            key=lambda put_at: self._mapping.is_mapped(names[put_at[0]]),
        )
        for field, positions in given.items():
            if len(positions) > 1 and field not in SEVERAL_VALUES:
                ranked = [position for position, _ in order if position in positions]
                said = ", ".join(f"{position + 1} ({names[position].strip()})" for position in ranked)
                _log.warning(
                    f"CSV columns {said} all give {field}: where several have a value, "
                    f"column {ranked[-1] + 1}'s is sent and the others dropped"
                )
        return order

    def _event(self, index: int, line: int, text: str) -> SourceEvent:
        columns = self._columns or []
        try:
            values = next(csv.reader([text], delimiter=self._delimiter or ",", strict=True))
        except csv.Error:
            return SourceEvent(index, None, error=f"line {line}: not a valid CSV record")
        if len(values) != len(columns):
            return SourceEvent(
                index, None, error=f"line {line}: has {len(values)} fields, the header has {len(columns)}"
            )
        data: dict[str, Any] = {}
        if self._order is None:
            for column, value in zip(columns, values, strict=True):
                if column is not None and value != "":
                    data[column] = value  # a yes/no cell is read by `rules.yes_no`, as in JSON
        else:
            for position, field in self._order:
                put(data, field, values[position])
        return SourceEvent(index, data)


class JsonParser:
    """JSON text of events: a top-level array of event objects (or several arrays one after another, as
    `cat a.json b.json` makes), a top-level event object (pretty-printed), or several; one element at a time.

    The standard decoder parses each element where it starts; an element it cannot parse (not JSON, nested
    too deeply, a number too long) is skipped up to the next top-level comma by a bracket-and-string scanner
    and reported. Text between the values that is not a value stops the source: it is never ignored.
    """

    _TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|"|[\[\]{},]', re.DOTALL)
    _SPACE = re.compile(r"\s*")

    def __init__(self, mapping: FieldMapping, start: int = 0) -> None:
        self._mapping = mapping
        self._start = start
        self._decoder = json.JSONDecoder()
        self._buffer = ""
        self._line = 1
        self._index = 0
        self._in_array = False
        self._begun = False  # a top-level value (an array or an object) has begun

    def feed(self, text: str) -> Iterator[SourceEvent]:
        self._buffer += text
        return self._elements(final=False)

    def end(self) -> Iterator[SourceEvent]:
        return self._elements(final=True)

    def _elements(self, *, final: bool) -> Iterator[SourceEvent]:
        buffer, pos = self._buffer, 0
        while True:
            pos = self._skip(buffer, pos)
            if pos >= len(buffer):
                break
            char = buffer[pos]
            if not self._in_array:
                if char == "[":
                    self._in_array, self._begun, pos = True, True, pos + 1
                    continue
                if char != "{":
                    if not self._begun:
                        raise SourceError(f"eventsUrl: line {self._line}: the file holds no JSON array or object")
                    raise SourceError(
                        f"eventsUrl: line {self._line}: after its JSON the file goes on with text that is not "
                        "a JSON array or object"
                    )
            elif char == ",":
                pos += 1
                continue
            elif char == "]":
                self._in_array, pos = False, pos + 1
                continue
            end, event = self._element(buffer, pos, final=final)
            if end is None:
                if len(buffer) - pos > MAX_RECORD_CHARS:
                    raise SourceError(f"line {self._line}: an element is over {MAX_RECORD_CHARS:,} characters")
                break
            if not self._in_array:
                self._begun = True
            if event is not None:
                yield event
            self._line += buffer.count("\n", pos, end)
            pos = end
        self._buffer = buffer[pos:]
        if final and self._in_array:
            raise SourceError(f"line {self._line}: the JSON array is not closed")

    def _skip(self, buffer: str, pos: int) -> int:
        match = self._SPACE.match(buffer, pos)
        end = match.end() if match else pos
        self._line += buffer.count("\n", pos, end)
        return end

    def _element(self, buffer: str, pos: int, *, final: bool) -> tuple[int | None, SourceEvent | None]:
        """Where the element at `pos` ends (None: not all here yet) and its event (None: skipped)."""
        index = self._index
        try:
            data, end = self._decoder.raw_decode(buffer, pos)
        except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
            scanned = self._scan_end(buffer, pos, final=final)
            if scanned is None:
                return None, None
            self._index += 1
            why = f"line {self._line}: element {index} {_unreadable(error)}"
            return scanned, (SourceEvent(index, None, error=why) if index >= self._start else None)
        if end >= len(buffer) and not final:
            return None, None  # a number or literal cut at the chunk's end may go on
        self._index += 1
        if index < self._start:
            return end, None
        return end, mapped_record(index, data, f"line {self._line}: element {index}", self._mapping)

    def _scan_end(self, buffer: str, pos: int, *, final: bool) -> int | None:
        """Where a bad element ends: at the next comma or `]` of its array, or past its own last bracket
        when it stands at the top level."""
        depth = 0
        for match in self._TOKEN.finditer(buffer, pos):
            char = match.group()
            if char == '"':
                break  # an unterminated string: the rest has not arrived
            if char in "[{":
                depth += 1
            elif char in "]}":
                if depth == 0:  # the enclosing array's end; or a stray closer the element is: it is consumed
                    return match.start() if match.start() > pos else match.end()
                depth -= 1
                if depth == 0 and not self._in_array:
                    return match.end()
            elif char == "," and depth == 0:
                return match.start()
        return len(buffer) if final else None


def _unreadable(error: Exception) -> str:
    """Why the decoder refused an element, in a user's words (its text is never quoted: it may be personal)."""
    if isinstance(error, RecursionError):
        return "is nested too deeply to read"
    if isinstance(error, json.JSONDecodeError):
        return "is not valid JSON"
    return "holds a number too long to read"


class JsonFile:
    """A `.json` file, or one served as JSON: JSON text (`JsonParser`), unless it starts with an object on a
    line of its own, which makes it JSON Lines, read exactly as a `.jsonl` file (`JsonLinesParser`).

    A JSON Lines file's first line is a whole object, a pretty-printed object's is not (`_an_object`): the first
    line is held until it ends (at most `MAX_LINE_CHARS`), then everything goes to the parser it chose.
    """

    def __init__(self, mapping: FieldMapping, start: int = 0) -> None:
        self._mapping = mapping
        self._start = start
        self._head: list[str] = []
        self._size = 0
        self._parser: JsonParser | JsonLinesParser | None = None

    def feed(self, text: str) -> Iterator[SourceEvent]:
        if self._parser is not None:
            return self._parser.feed(text)
        self._head.append(text)
        self._size += len(text)
        if "\n" not in text and self._size <= MAX_LINE_CHARS:
            return iter(())
        return self._choose(final=False)

    def end(self) -> Iterator[SourceEvent]:
        if self._parser is None:
            yield from self._choose(final=True)
        if self._parser is not None:
            yield from self._parser.end()

    def _choose(self, *, final: bool) -> Iterator[SourceEvent]:
        head = "".join(self._head)
        text = head.lstrip()
        array = text.startswith("[")
        line_end = text.find("\n")
        if not array and line_end < 0 and not final and self._size <= MAX_LINE_CHARS:
            self._head = [head]  # the first line has not ended yet
            return iter(())
        first_line = text if line_end < 0 else text[:line_end]
        self._parser = (JsonLinesParser if not array and _an_object(first_line) else JsonParser)(
            self._mapping, self._start
        )
        self._head = []
        return self._parser.feed(head)


def _an_object(line: str) -> bool:
    """Whether a line is a whole JSON object: the first line of JSON Lines. A pretty-printed object's first line is
    not (a lone `{`, or its first key with the object left open), nor are objects split by bare CRs."""
    try:
        return isinstance(orjson.loads(line), dict)
    except ValueError:  # orjson's JSONDecodeError, also for nesting or numbers past its limits: read as JSON text
        return False


PARSERS: Mapping[str, type[JsonLinesParser] | type[CsvParser] | type[JsonFile]] = {
    "jsonl": JsonLinesParser,
    "csv": CsvParser,
    "json": JsonFile,
}


def file_format(url: str, content_type: str, first_char: str) -> str:
    """`csv`, `jsonl` or `json` (JSON text or JSON Lines, told apart by `JsonFile`): by extension, then
    content type, then the first character."""
    path = urlsplit(url).path.lower().removesuffix(".gz")
    kind = content_type.split(";")[0].strip().lower()
    if path.endswith(".csv") or kind in ("text/csv", "application/csv"):
        return "csv"
    if path.endswith((".jsonl", ".ndjson")) or "ndjson" in kind or "jsonl" in kind or "jsonlines" in kind:
        return "jsonl"
    if path.endswith(".json") or "json" in kind or first_char in "[{":
        return "json"
    return "csv"
