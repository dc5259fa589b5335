"""The README shows the code's own tables, so the README cannot drift from the code."""

from __future__ import annotations

from conftest import ROOT

from src.events import quality as match_quality
from src.events.names import GA4_NAMES, SEGMENT_NAMES, SNAP_ALIASES, SNAP_EVENT_NAMES

DOC = ROOT / "README.md"


def mapping_table() -> str:
    """One row per Snap event that other names map to: the GA4, Segment and Snap-alias names for it."""
    columns = (GA4_NAMES, SEGMENT_NAMES, SNAP_ALIASES)
    rows = []
    for snap in SNAP_EVENT_NAMES:
        cells = [", ".join(f"`{name}`" for name, target in names.items() if target == snap) for names in columns]
        if any(cells):
            rows.append(f"| `{snap}` | " + " | ".join(cells) + " |\n")
    header = "| Snap event | GA4 event | Segment / RudderStack event | other spelling |\n|---|---|---|---|\n"
    return header + "".join(rows)


def test_every_mapped_name_is_in_the_table() -> None:
    table = mapping_table()
    for names in (GA4_NAMES, SEGMENT_NAMES, SNAP_ALIASES):
        for name in names:
            assert f"`{name}`" in table


def test_mapping_table_matches_the_code() -> None:
    assert mapping_table() in DOC.read_text()


def test_grading_table_matches_the_code() -> None:
    docstring = match_quality.__doc__ or ""
    table = docstring[docstring.index("| grade") :].strip()
    assert table in DOC.read_text()


def test_the_screenshot_is_there() -> None:
    assert "](docs/report.png)" in DOC.read_text()
    assert (ROOT / "docs" / "report.png").stat().st_size > 10_000
