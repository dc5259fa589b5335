"""The README shows the code's own tables, so the README cannot drift from the code."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from conftest import ROOT

from src import match_quality
from src.event_names import GA4_NAMES, SEGMENT_NAMES, SNAP_ALIASES

DOC = ROOT / "README.md"


def markdown_table(title: str, names: Mapping[str, str]) -> str:
    rows = "".join(f"| `{name}` | `{snap}` |\n" for name, snap in names.items())
    return f"| {title} | Snap event |\n|---|---|\n{rows}"


@pytest.mark.parametrize(
    ("title", "names"),
    [("GA4 event", GA4_NAMES), ("Segment / RudderStack event", SEGMENT_NAMES), ("Snap spelling", SNAP_ALIASES)],
)
def test_mapping_tables_match_the_code(title: str, names: Mapping[str, str]) -> None:
    assert markdown_table(title, names) in DOC.read_text()


def test_grading_table_matches_the_code() -> None:
    docstring = match_quality.__doc__ or ""
    table = docstring[docstring.index("| grade") :].strip()
    assert table in DOC.read_text()


def test_the_screenshot_is_there() -> None:
    assert "](docs/report.png)" in DOC.read_text()
    assert (ROOT / "docs" / "report.png").stat().st_size > 10_000
