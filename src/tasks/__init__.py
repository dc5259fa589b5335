"""One coroutine per task; each writes its rows to the run's sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from .context import RunContext
from .event_quality import get_event_quality
from .pixels import get_pixel_info, list_pixels
from .send import send_events, validate_events
from .test_events import get_test_event_logs, get_test_event_stats

TaskFn = Callable[[RunContext], Awaitable[None]]

TASKS: Mapping[str, TaskFn] = {
    "send_event": send_events,
    "send_batch_events": send_events,
    "validate_events": validate_events,
    "list_pixels": list_pixels,
    "get_pixel_info": get_pixel_info,
    "get_test_event_logs": get_test_event_logs,
    "get_test_event_stats": get_test_event_stats,
    "get_event_quality": get_event_quality,
}

#: Tasks that run events through the pipeline; each leaves a run report.
CONVERSION_TASKS = frozenset(name for name, task in TASKS.items() if task in (send_events, validate_events))

#: What the other tasks' rows are, for the run's status message ("list_pixels: 3 pixels").
LOOKUP_NOUNS: Mapping[str, str] = {
    "list_pixels": "pixel",
    "get_pixel_info": "pixel",
    "get_test_event_logs": "test event log",
    "get_test_event_stats": "stats row",
    "get_event_quality": "quality score",
}
