"""`LineSplitter` gives the same lines however the text is cut into chunks (its fast path for lines
that start and end inside one chunk must not change what comes out)."""

from __future__ import annotations

import random

from src.sources.parsers import LineSplitter


def _whole(text: str, limit: int) -> list[str | None]:
    *complete, rest = text.split("\n")
    lines: list[str | None] = [line if len(line) <= limit else None for line in complete]
    if rest:
        lines.append(rest if len(rest) <= limit else None)
    return lines


def test_chunks_of_any_size_give_the_lines_of_the_whole_text() -> None:
    rng = random.Random(9)
    for _ in range(3000):
        pieces = ["a", "bb", "\n", "\n\n", "é", "x" * rng.randint(0, 30)]
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        cuts = sorted(rng.randint(0, len(text)) for _ in range(rng.randint(0, 5)))
        chunks = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        limit = rng.randint(1, 20)
        splitter = LineSplitter(limit)
        lines = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.end()
        assert lines == _whole(text, limit), (chunks, limit)
