"""The file parsers, in process: CSV, JSON Lines and a JSON array read the same events however the text
is cut into chunks, report a bad record by its line and go on, skip what a resumed run finished, and
which parser a file gets."""

from __future__ import annotations

from typing import Any

import pytest

from src.errors import SourceError
from src.events.shape import SourceEvent
from src.sources.mapping import FieldMapping
from src.sources.parsers import (
    MAX_LINE_CHARS,
    MAX_RECORD_CHARS,
    PARSERS,
    CsvParser,
    JsonFile,
    JsonLinesParser,
    JsonParser,
    file_format,
)

NO_MAPPING = FieldMapping(None)
Row = tuple[int, Any, str | None]


def parse(
    kind: str, text: str, chunk: int | None = None, start: int = 0, mapping: FieldMapping = NO_MAPPING
) -> list[Row]:
    parser = PARSERS[kind](mapping, start)
    size = chunk or max(1, len(text))
    events: list[SourceEvent] = []
    for at in range(0, len(text), size):
        events.extend(parser.feed(text[at : at + size]))
    events.extend(parser.end())
    return [(event.index, None if event.data is None else dict(event.data), event.error) for event in events]


def every_chunking(kind: str, text: str, start: int = 0, mapping: FieldMapping = NO_MAPPING) -> list[Row]:
    """The events, after checking that every chunk size gives the same ones."""
    whole = parse(kind, text, start=start, mapping=mapping)
    for chunk in (1, 2, 3, 5, 8, 13):
        assert parse(kind, text, chunk, start, mapping) == whole, chunk
    return whole


# --- JSON Lines ------------------------------------------------------------------------------------


def test_json_lines_skip_blank_lines_and_report_bad_ones_by_line() -> None:
    text = '{"email": "a@x.com"}\n\n  \n{bad\n[1, 2]\n{"email": "b@x.com"}\n{"phone": "1"}'
    assert every_chunking("jsonl", text) == [
        (0, {"email": "a@x.com"}, None),
        (1, None, "line 4: not valid JSON"),
        (2, None, "line 5 is not a JSON object"),
        (3, {"email": "b@x.com"}, None),
        (4, {"phone": "1"}, None),
    ]


def test_json_lines_resume_from_start_and_keep_the_indices() -> None:
    text = '{"n": 0}\n\n{"n": 1}\nnot json\n{"n": 3}\n'
    assert every_chunking("jsonl", text, start=2) == [(2, None, "line 4: not valid JSON"), (3, {"n": 3}, None)]
    assert every_chunking("jsonl", text, start=3) == [(3, {"n": 3}, None)]


def test_json_lines_rename_by_the_field_mapping() -> None:
    mapping = FieldMapping({"Mail": "email"})
    assert every_chunking("jsonl", '{"Mail": "a@x.com", "phone": "1"}\n', mapping=mapping) == [
        (0, {"phone": "1", "email": "a@x.com"}, None)
    ]


def test_an_overlong_json_line_is_reported_and_skipped_by_its_index() -> None:
    text = '{"n": 0}\n' + "x" * (MAX_LINE_CHARS + 1) + '\n{"n": 2}\n'
    assert parse("jsonl", text, chunk=1 << 16) == [
        (0, {"n": 0}, None),
        (1, None, "line 2: longer than 1,048,576 characters"),
        (2, {"n": 2}, None),
    ]
    assert parse("jsonl", text, chunk=1 << 16, start=2) == [(2, {"n": 2}, None)]


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_records_by_the_header_with_empty_cells_left_out() -> None:
    text = "email,phone,notAField\r\na@x.com,,zzz\r\n\r\nb@x.com,+1 415,\r\n"
    assert every_chunking("csv", text) == [
        (0, {"email": "a@x.com"}, None),
        (1, {"email": "b@x.com", "phone": "+1 415"}, None),
    ]


def test_a_quoted_csv_field_may_span_lines() -> None:
    text = 'email,firstName\na@x.com,"Ann\nMarie"\nb@x.com,"say ""hi"""\n'
    assert every_chunking("csv", text) == [
        (0, {"email": "a@x.com", "firstName": "Ann\nMarie"}, None),
        (1, {"email": "b@x.com", "firstName": 'say "hi"'}, None),
    ]


def test_csv_records_with_the_wrong_number_of_fields_or_a_bad_quote_are_reported_by_line() -> None:
    text = 'email,phone\na@x.com\nb@x.com,1,2\nc@x.com,"1"x\nd@x.com,4\n'
    assert every_chunking("csv", text) == [
        (0, None, "line 2: has 1 fields, the header has 2"),
        (1, None, "line 3: has 3 fields, the header has 2"),
        (2, None, "line 4: not a valid CSV record"),
        (3, {"email": "d@x.com", "phone": "4"}, None),
    ]


def test_a_stray_quote_is_reported_and_the_lines_after_it_read_afresh() -> None:
    text = 'email,firstName\na@x.com,"Ann\nb@x.com,Bob\nc@x.com,"x"y\nd@x.com,Dee\n'
    assert every_chunking("csv", text) == [
        (0, None, "line 2: not a valid CSV record"),
        (1, {"email": "b@x.com", "firstName": "Bob"}, None),
        (2, None, "line 4: not a valid CSV record"),
        (3, {"email": "d@x.com", "firstName": "Dee"}, None),
    ]


def test_a_quote_left_open_at_the_end_is_reported_and_the_rest_read() -> None:
    text = 'email,firstName\na@x.com,"Ann\nb@x.com,Bob\n'
    assert every_chunking("csv", text) == [
        (0, None, "line 2: not a valid CSV record"),
        (1, {"email": "b@x.com", "firstName": "Bob"}, None),
    ]


def test_a_quote_open_over_too_many_lines_is_a_stray_quote() -> None:
    # a quoted field may span up to 100 lines (MAX_RECORD_LINES); over that it is a stray quote
    lines = ["email,firstName", 'a@x.com,"open'] + ["more"] * 100 + ['end"', "z@x.com,Zed"]
    events = parse("csv", "\n".join(lines) + "\n", chunk=64)
    assert events[0] == (0, None, "line 2: not a valid CSV record")
    assert events[-1][1] == {"email": "z@x.com", "firstName": "Zed"}

    within = ["email,firstName", 'a@x.com,"open'] + ["more"] * 98 + ['end"', "z@x.com,Zed"]
    assert parse("csv", "\n".join(within) + "\n", chunk=64) == [
        (0, {"email": "a@x.com", "firstName": "open\n" + "more\n" * 98 + "end"}, None),
        (1, {"email": "z@x.com", "firstName": "Zed"}, None),
    ]


def test_csv_resumes_from_start_and_maps_header_names() -> None:
    text = "Mail , phone\na@x.com,1\nb@x.com,2\nc@x.com,3\n"
    # "Mail " is no event field: ignored; " phone" is read as "phone"
    assert every_chunking("csv", text, start=1) == [(1, {"phone": "2"}, None), (2, {"phone": "3"}, None)]
    mapped = every_chunking("csv", text, mapping=FieldMapping({"Mail ": "email"}))
    assert mapped[0] == (0, {"email": "a@x.com", "phone": "1"}, None)


def test_a_csv_without_an_event_field_in_its_first_line_stops_the_source() -> None:
    with pytest.raises(SourceError, match="names no event field"):
        parse("csv", "a@x.com,+14155550100\nb@x.com,1\n")
    assert parse("csv", "") == []
    assert parse("csv", "\n\nemail\n") == []  # blank lines before the header are skipped


def test_an_overlong_csv_header_stops_the_source_and_an_overlong_record_is_reported() -> None:
    with pytest.raises(SourceError, match="header line is longer than 1,048,576 characters"):
        parse("csv", "x" * (MAX_LINE_CHARS + 1) + "\nemail\n", chunk=1 << 16)
    text = "email\n" + "y" * (MAX_LINE_CHARS + 1) + "\nb@x.com\n"
    assert parse("csv", text, chunk=1 << 16) == [
        (0, None, "line 2: longer than 1,048,576 characters"),
        (1, {"email": "b@x.com"}, None),
    ]
    quoted = 'email\n"a\n' + "y" * (MAX_LINE_CHARS + 1) + '"\nb@x.com\n'
    events = parse("csv", quoted, chunk=1 << 16)
    assert events[0] == (0, None, "line 2: longer than 1,048,576 characters")


# --- a JSON array ----------------------------------------------------------------------------------


def test_a_json_array_gives_its_objects_and_reports_bad_elements_by_line() -> None:
    text = '[\n  {"email": "a@x.com"},\n  {bad, [1]},\n  7,\n  {"n": [1, {"x": "]}"}]}\n]\n'
    assert every_chunking("json", text) == [
        (0, {"email": "a@x.com"}, None),
        (1, None, "line 3: element 1 is not valid JSON"),
        (2, None, "line 4: element 2 is not a JSON object"),
        (3, {"n": [1, {"x": "]}"}]}, None),
    ]


def test_a_json_array_resumes_from_start() -> None:
    text = '[{"n": 0}, {bad}, {"n": 2}, {"n": 3}]'
    assert every_chunking("json", text, start=1) == [
        (1, None, "line 1: element 1 is not valid JSON"),
        (2, {"n": 2}, None),
        (3, {"n": 3}, None),
    ]
    assert every_chunking("json", text, start=2) == [(2, {"n": 2}, None), (3, {"n": 3}, None)]


def test_numbers_cut_at_a_chunk_boundary_are_read_whole() -> None:
    assert parse("json", "[12345, 6]", chunk=3) == [
        (0, None, "line 1: element 0 is not a JSON object"),
        (1, None, "line 1: element 1 is not a JSON object"),
    ]
    parser = JsonParser(NO_MAPPING)
    assert list(parser.feed('[{"n": 1}, 12')) == [SourceEvent(0, {"n": 1})]
    assert list(parser.feed("34]")) == [SourceEvent(1, None, error="line 1: element 1 is not a JSON object")]
    assert list(parser.end()) == []


def test_an_empty_array_and_what_follows_it() -> None:
    assert every_chunking("json", " [ ] \n") == []
    assert every_chunking("json", "[]\n[{}]") == [(0, {}, None)]  # the next array is read too


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('\n\n"x"', "eventsUrl: line 3: the file holds no JSON array or object"),
        ('[{"n": 1},\n', "line 2: the JSON array is not closed"),
        ('[{"n": 1}, {"s": "never closed', "the JSON array is not closed"),
        ("[1, [2", "the JSON array is not closed"),
    ],
)
def test_what_is_not_a_whole_json_array_stops_the_source(text: str, message: str) -> None:
    parser = JsonParser(NO_MAPPING)
    with pytest.raises(SourceError, match=message):
        [*parser.feed(text), *parser.end()]


def test_a_json_element_that_never_ends_stops_the_source() -> None:
    parser = JsonParser(NO_MAPPING)
    assert list(parser.feed('[{"n": 1}, {"s": "' + "x" * (MAX_RECORD_CHARS - 8))) == [SourceEvent(0, {"n": 1})]
    assert list(parser.feed("x")) == []  # exactly the limit: still waiting for the rest
    with pytest.raises(SourceError, match="line 1: an element is over 1,048,576 characters"):
        list(parser.feed("x"))


def test_a_bad_element_at_the_end_of_the_file_is_reported() -> None:
    with pytest.raises(SourceError, match="not closed"):
        parse("json", '[{"n": 1}, {bad')
    parser = JsonParser(NO_MAPPING)
    assert list(parser.feed('[{"n": 1}, {bad')) == [SourceEvent(0, {"n": 1})]
    reported: list[SourceEvent] = []
    with pytest.raises(SourceError, match="line 1: the JSON array is not closed"):
        reported.extend(parser.end())
    assert reported == [SourceEvent(1, None, error="line 1: element 1 is not valid JSON")]


# --- which parser ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "content_type", "first", "kind"),
    [
        ("https://x.com/a.csv", "application/octet-stream", "e", "csv"),
        ("https://x.com/A.CSV.gz", "", "e", "csv"),
        ("https://x.com/a", "text/csv; charset=utf-8", "{", "csv"),
        ("https://x.com/a", "application/csv", "{", "csv"),
        ("https://x.com/a.jsonl", "text/plain", "[", "jsonl"),
        ("https://x.com/a.ndjson?x=.csv", "", "{", "jsonl"),
        ("https://x.com/a", "application/x-ndjson", "[", "jsonl"),
        ("https://x.com/a", "application/jsonl", "[", "jsonl"),
        ("https://x.com/a", "application/jsonlines", "[", "jsonl"),
        ("https://x.com/a.json", "", "[", "json"),
        ("https://x.com/a.json", "", "{", "json"),
        ("https://x.com/a", "application/json", "[", "json"),
        ("https://x.com/a", "application/json", "{", "json"),
        ("https://x.com/a", "text/plain", "[", "json"),
        ("https://x.com/a", "text/plain", "{", "json"),
        ("https://x.com/a", "text/plain", "e", "csv"),
        ("https://x.com/a.txt", "", "x", "csv"),
    ],
)
def test_the_file_format_by_extension_then_content_type_then_first_character(
    url: str, content_type: str, first: str, kind: str
) -> None:
    assert file_format(url, content_type, first) == kind
    assert isinstance(PARSERS[kind](NO_MAPPING), (CsvParser, JsonLinesParser, JsonFile))


def test_an_escaped_quote_at_a_line_end_keeps_the_field_open() -> None:
    text = 'email,firstName\na@x.com,"x""\ny"\nb@x.com,"a""b""c"\n'
    assert every_chunking("csv", text) == [
        (0, {"email": "a@x.com", "firstName": 'x"\ny'}, None),
        (1, {"email": "b@x.com", "firstName": 'a"b"c'}, None),
    ]


def test_a_stray_quote_does_not_hold_back_the_records_after_it() -> None:
    parser = CsvParser(NO_MAPPING)
    events = list(parser.feed('email,firstName\na@x.com,"Ann\nb"x,Bob\nc@x.com,Cee\n'))
    assert [(event.index, event.error) for event in events] == [
        (0, "line 2: not a valid CSV record"),
        (1, None),  # read afresh: a quote inside an unquoted cell is plain text
        (2, None),
    ]
    assert list(parser.end()) == []


def test_csv_columns_that_are_not_event_fields_are_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    assert parse("csv", "email,shoeSize,notes\na@x.com,42,hi\n") == [(0, {"email": "a@x.com"}, None)]
    assert "2 CSV column(s) are not event fields and are ignored" in caplog.text
    caplog.clear()
    parse("csv", "email\na@x.com\n")
    assert "not event fields" not in caplog.text


def test_a_bad_element_holding_a_string_with_commas_is_skipped_whole() -> None:
    text = '[bad "x, y", {"n": 1}, nope "]", {"n": 3}]'
    assert every_chunking("json", text) == [
        (0, None, "line 1: element 0 is not valid JSON"),
        (1, {"n": 1}, None),
        (2, None, "line 1: element 2 is not valid JSON"),
        (3, {"n": 3}, None),
    ]


def test_a_bad_last_element_before_the_closing_bracket_is_reported() -> None:
    assert every_chunking("json", '[{"n": 1}, bad]\n') == [
        (0, {"n": 1}, None),
        (1, None, "line 1: element 1 is not valid JSON"),
    ]


# --- line endings, separators, header names, two columns for one field ------------------------------


def test_a_bare_cr_ends_a_csv_line_as_crlf_does_even_cut_between_chunks() -> None:
    """A classic-Mac export ends its lines in a bare CR, a Windows one in CRLF: both read like LF, a CR cut
    from its LF by a chunk boundary included, and a quoted field spanning such lines keeps its line break."""
    mac = 'eventType,email,firstName\rPURCHASE,a@x.com,"Ann\rMarie"\r\rPURCHASE,b@x.com,Bob\r'
    expected = [
        (0, {"eventType": "PURCHASE", "email": "a@x.com", "firstName": "Ann\nMarie"}, None),
        (1, {"eventType": "PURCHASE", "email": "b@x.com", "firstName": "Bob"}, None),
    ]
    assert every_chunking("csv", mac) == expected
    assert every_chunking("csv", mac.replace("\r", "\r\n")) == expected
    assert every_chunking("csv", "email\ra@x.com\r\nb@x.com\nc@x.com") == [
        (0, {"email": "a@x.com"}, None),
        (1, {"email": "b@x.com"}, None),
        (2, {"email": "c@x.com"}, None),
    ]


def test_a_csv_header_the_csv_module_refuses_stops_the_source_with_a_message() -> None:
    """A header cell over the csv module's field limit (131,072 characters) is a clear source error."""
    with pytest.raises(SourceError, match="eventsUrl: the CSV's header line is not a valid CSV record"):
        parse("csv", "email," + "x" * 200_000 + "\na@x.com,1\n", chunk=1 << 16)


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_csv_separated_by_semicolons_or_tabs_is_read_by_its_header(separator: str) -> None:
    """Excel in many European locales separates fields with `;`; some exports use tabs: the header tells."""
    text = 'eventType,email,firstName\nPURCHASE,a@x.com,"Ann\nMarie, Jr"\n'.replace(",", separator).replace(
        "Marie" + separator + " Jr", "Marie, Jr"
    )
    assert every_chunking("csv", text) == [
        (0, {"eventType": "PURCHASE", "email": "a@x.com", "firstName": "Ann\nMarie, Jr"}, None)
    ]


def test_csv_column_names_match_the_fields_whatever_their_case(caplog: pytest.LogCaptureFixture) -> None:
    """A header written `EventType, Email ,PRICE` (as most exports do) names eventType, email and price."""
    caplog.set_level("INFO")
    assert every_chunking("csv", "EventType, Email ,PRICE\nPURCHASE,a@x.com,5\n") == [
        (0, {"eventType": "PURCHASE", "email": "a@x.com", "price": "5"}, None)
    ]
    assert "EventType -> eventType, Email -> email, PRICE -> price" in caplog.text


def test_a_csv_without_an_event_field_says_how_to_name_the_columns() -> None:
    with pytest.raises(SourceError) as raised:
        parse("csv", "Mail,Amount\na@x.com,5\n")
    assert str(raised.value) == (
        "eventsUrl: the CSV's first line names no event field (eventType, email, phone, price, ...): name the "
        "columns so, map your own names with fieldMapping, or add the header row if it is missing"
    )


def test_two_csv_columns_for_an_identifier_send_both_and_for_another_field_the_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two `email` columns are two addresses of one person: both are kept. Two `price` columns cannot both
    be sent: the later is, and the log names the columns (never a value)."""
    text = "email,price,email,price\na@x.com,5,b@x.com,6\nc@x.com,7,,\n"
    assert every_chunking("csv", text) == [
        (0, {"email": ["a@x.com", "b@x.com"], "price": "6"}, None),
        (1, {"email": "c@x.com", "price": "7"}, None),
    ]
    assert "CSV columns 2 (price), 4 (price) all give price: where several have a value, column 4's is sent" in (
        caplog.text
    )
    assert "email" not in caplog.text and "a@x.com" not in caplog.text


@pytest.mark.parametrize("header", ["total,price", "price,total"])
def test_a_mapped_csv_column_wins_over_the_column_named_as_its_field(header: str) -> None:
    """fieldMapping `total -> price` says which column is the price, wherever it stands."""
    values = {"total": "9", "price": "1"}
    text = header + "\n" + ",".join(values[name] for name in header.split(",")) + "\n"
    assert every_chunking("csv", text, mapping=FieldMapping({"total": "price"})) == [(0, {"price": "9"}, None)]


def test_a_mapped_field_the_record_has_keeps_both_identifiers_and_says_what_it_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mapping = FieldMapping({"mail": "email", "total": "price"})
    record = {"email": "a@x.com", "mail": "b@x.com", "price": 1, "total": 2}
    assert mapping.rename(record) == {"email": ["a@x.com", "b@x.com"], "price": 2}
    assert mapping.rename({"price": 1, "total": ""}) == {"price": 1}  # an empty column loses nothing
    mapping.rename(record)
    said = [record.getMessage() for record in caplog.records]
    assert said == [
        "fieldMapping maps 'total' to price, which some events also have from another field: "
        "where both have a value, 'total''s is sent and the other dropped"
    ]


# --- JSON text: hostile elements, pretty-printed objects, arrays one after another -------------------


@pytest.mark.parametrize(
    ("element", "why"),
    [
        ("[" * 2000 + "]" * 2000, "is nested too deeply to read"),
        ('{"n": 1' + "0" * 5000 + "}", "holds a number too long to read"),
    ],
)
def test_an_element_the_decoder_cannot_hold_is_one_bad_row(element: str, why: str) -> None:
    text = '[{"n": 0},\n' + element + ', {"n": 2}]'
    for chunk in (None, 1000):
        assert parse("json", text, chunk) == [
            (0, {"n": 0}, None),
            (1, None, f"line 2: element 1 {why}"),
            (2, {"n": 2}, None),
        ]


def test_pretty_printed_objects_in_a_json_file_are_one_event_each() -> None:
    text = '{\n  "email": "a@x.com",\n  "price": 5\n}\n{\n  "bad": \n}\n\n{\n  "n": 2\n}\n'
    assert every_chunking("json", text) == [
        (0, {"email": "a@x.com", "price": 5}, None),
        (1, None, "line 5: element 1 is not valid JSON"),
        (2, {"n": 2}, None),
    ]


def test_an_object_pretty_printed_from_its_first_line_or_split_by_bare_crs_is_json_text() -> None:
    """A `.json` file is JSON Lines only when its first line is a whole object: an object whose first key is on
    its opening line, or objects each ended by a bare CR (classic Mac), are JSON text, one event an object (they
    were read as JSON Lines: invalid rows for lines that are no object, and nothing sent)."""
    assert every_chunking("json", '{"email": "a@x.com",\n "price": 5}\n') == [
        (0, {"email": "a@x.com", "price": 5}, None)
    ]
    assert every_chunking("json", '{"n": 0}\r{"n": 1}\r') == [(0, {"n": 0}, None), (1, {"n": 1}, None)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"n": 0}, }, {"n": 2}]', [(0, {"n": 0}, None), (1, None, "line 1: element 1 is not valid JSON"),
                                     (2, {"n": 2}, None)]),
        ("[{'n': 'a]b'}, {\"n\": 1}]", [(0, None, "line 1: element 0 is not valid JSON"),
                                       (1, None, "line 1: element 1 is not valid JSON"), (2, {"n": 1}, None)]),
    ],
    ids=["stray-brace", "single-quoted-value-with-bracket"],
)  # fmt: skip
def test_a_stray_closing_brace_in_a_json_array_is_one_bad_row_and_reading_goes_on(
    text: str, expected: list[Row]
) -> None:
    """A stray `}` where an element begins (a hand edit), or Python's repr of events with a `]` in a quoted value:
    the stray brace is one invalid element, and the rest is read (the parser read the same `}` again forever: a
    run without end, filling its dataset with "not valid JSON" rows)."""
    assert every_chunking("json", text) == expected


def test_a_json_file_of_one_object_a_line_is_read_as_json_lines() -> None:
    text = '\n{"n": 0}\n{bad\n[1]\n{"n": 3}'
    assert every_chunking("json", text) == every_chunking("jsonl", text)
    assert every_chunking("json", '{"n": 0}') == [(0, {"n": 0}, None)]


def test_json_arrays_one_after_another_are_all_read() -> None:
    text = '[{"n": 0}]\n[{"n": 1},\n {"n": 2}] {"n": 3}'
    assert every_chunking("json", text) == [(index, {"n": index}, None) for index in range(4)]
    assert every_chunking("json", text, start=2) == [(2, {"n": 2}, None), (3, {"n": 3}, None)]


def test_text_after_a_json_array_stops_the_source_after_its_events() -> None:
    parser = JsonParser(NO_MAPPING)
    assert list(parser.feed('[{"n": 0}]\n\n')) == [SourceEvent(0, {"n": 0})]
    with pytest.raises(SourceError) as raised:
        list(parser.feed("oops"))
    assert str(raised.value) == (
        "eventsUrl: line 3: after its JSON the file goes on with text that is not a JSON array or object"
    )
    parser = JsonParser(NO_MAPPING)  # after a top-level object as after an array
    assert list(parser.feed('{"n": 0}\n')) == [SourceEvent(0, {"n": 0})]
    with pytest.raises(SourceError, match=r"^eventsUrl: line 2: after its JSON the file goes on with text"):
        list(parser.feed("oops"))
