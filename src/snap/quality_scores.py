"""Snap's own match score for a pixel: the Signal Readiness API's event quality scores and recommendations.

`GET {ads}/v1/pixels/{pixel_id}/event_quality_scores` (Bearer: the Conversions API token or an OAuth
token) returns, per event type and source (SDK or API), the score Events Manager shows and Snap's
recommendations, each with a priority (P0 first). Snap's public page gives the endpoint, the tokens
and what the scores mean, not a field-by-field schema, so the reader below takes the documented
names (`event_quality_scores`, `event_type`, `action_source`, `event_source`, `score`,
`recommendations` with `priority`) and the obvious variants of each, and ignores what it does not
know: a renamed field costs a blank cell, never a failed run. See docs/snap-fidelity.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SnapAuthError, SnapError
from ..net.transport import RunStoppingError
from .marketing import MarketingApi

_LIST_KEYS = ("event_quality_scores", "event_quality_score", "scores", "event_quality", "data")
_EVENT_KEYS = ("event_type", "event_name", "event")
_SCORE_KEYS = ("score", "event_quality_score", "signal_readiness_score", "quality_score", "level", "rating")
_TEXT_KEYS = ("description", "recommendation", "message", "title", "text", "display_message")
_PRIORITY_ORDER = {"P0": 0, "P1": 1, "P2": 2}


@dataclass(frozen=True, slots=True)
class Recommendation:
    priority: str | None
    text: str
    parameter: str | None = None

    def label(self) -> str:
        return f"{self.priority}: {self.text}" if self.priority else self.text


@dataclass(frozen=True, slots=True)
class QualityScore:
    """Snap's score for one event type from one source, and what Snap recommends to raise it."""

    event_name: str | None
    action_source: str | None
    event_source: str | None
    score: str | None
    recommendations: tuple[Recommendation, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapQuality:
    """What the run report shows beside our own grades: Snap's scores, or why there are none."""

    scores: tuple[QualityScore, ...] = ()
    unavailable: str | None = None
    demo: bool = False


def _text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value).strip()
        return text or None
    return None


def _first(entry: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if entry.get(key) not in (None, ""):
            return entry[key]
    return None


def _score(value: object) -> str | None:
    if isinstance(value, Mapping):
        return _text(_first(value, ("score", "value", "level", "label", "rating")))
    return _text(value)


def _recommendations(value: object) -> tuple[Recommendation, ...]:
    items = value if isinstance(value, list) else [value] if value else []
    found = []
    for item in items:
        if isinstance(item, Mapping):
            text = _text(_first(item, _TEXT_KEYS))
            if text is None:
                continue
            priority = _text(item.get("priority"))
            parameter = _text(_first(item, ("parameter", "param", "field", "signal")))
            found.append(Recommendation(priority.upper() if priority else None, text, parameter))
        elif (text := _text(item)) is not None:
            found.append(Recommendation(None, text))
    return tuple(sorted(found, key=lambda rec: _PRIORITY_ORDER.get(rec.priority or "", 9)))


def _entries(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    listed = _first(body, _LIST_KEYS)
    if isinstance(listed, Mapping):
        listed = [listed]
    entries = []
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, Mapping):
            continue
        # Snap's Marketing API wraps items as {"sub_request_status": ..., "<name>": {...}}: unwrap one level.
        inner = [value for key, value in item.items() if isinstance(value, Mapping) and key != "errors"]
        if "sub_request_status" in item and len(inner) == 1:
            item = inner[0]
        entries.append(item)
    return entries


def parse_quality_scores(body: Mapping[str, Any]) -> list[QualityScore]:
    scores = []
    for entry in _entries(body):
        scores.append(
            QualityScore(
                event_name=_text(_first(entry, _EVENT_KEYS)),
                action_source=_text(entry.get("action_source")),
                event_source=_text(_first(entry, ("event_source", "source", "integration_source"))),
                score=_score(_first(entry, _SCORE_KEYS)),
                recommendations=_recommendations(_first(entry, ("recommendations", "recommendation"))),
            )
        )
    return scores


async def fetch_snap_quality(api: MarketingApi, pixel_id: str) -> SnapQuality:
    """For the run report: Snap's scores, or why they could not be had. Never raises a Snap error:
    a token that may send conversions but not read scores must not fail the run."""
    try:
        body = await api.event_quality_scores(pixel_id)
    except SnapAuthError as error:
        return SnapQuality(unavailable=f"Snap did not share its scores for this pixel: {error}")
    except SnapError as error:
        return SnapQuality(unavailable=f"Snap's scores could not be read: {error}")
    except RunStoppingError:  # aborted while the read waited to retry: the report goes without them
        return SnapQuality(unavailable="Snap's scores were not read: the run stopped first.")
    scores = parse_quality_scores(body)
    if not scores:
        return SnapQuality(unavailable="Snap has no event quality scores for this pixel yet.")
    return SnapQuality(tuple(scores))
