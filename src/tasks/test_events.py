"""get_test_event_logs and get_test_event_stats: what Snap's test-event tools saw. Free."""

from __future__ import annotations

from typing import Any

from ..results.rows import Row
from .context import RunContext


def log_row(task: str, asset_id: str, log: dict[str, Any], *, demo: bool) -> Row:
    metadata = log.get("event_metadata") or {}
    return {
        "task": task,
        "assetId": asset_id,
        "status": log.get("status"),
        "receivedAt": log.get("timestamp"),
        "eventName": metadata.get("event_name") or log.get("event_type"),
        "actionSource": metadata.get("action_source") or log.get("event_conversion_type"),
        "integration": log.get("integration"),
        "errors": list(log.get("error_records") or []),
        "warnings": list(log.get("warning_records") or []),
        "demo": demo,
    }


def stats_row(task: str, asset_id: str, body: dict[str, Any], *, demo: bool) -> Row:
    test = (body.get("stats") or {}).get("test") or {}
    return {
        "task": task,
        "assetId": asset_id,
        "status": body.get("status"),
        "latestEventTimestamp": test.get("latest_event_ts") or None,
        "eventCountPastHour": int(test.get("event_count_past_hour") or 0),
        "demo": demo,
    }


async def get_test_event_logs(ctx: RunContext) -> None:
    await _read(ctx, "logs")


async def get_test_event_stats(ctx: RunContext) -> None:
    await _read(ctx, "stats")


async def _read(ctx: RunContext, kind: str) -> None:
    task = ctx.input.task
    async with ctx.snap() as snap:
        asset_id = ctx.input.pixel_id or snap.required("snapAppId")
        body = await snap.test_events(asset_id, kind)
    if kind == "stats":
        await ctx.sink.add([stats_row(task, asset_id, body, demo=snap.demo)], count_as=snap.counted_as)
        return
    logs = [log for log in body.get("logs") or [] if isinstance(log, dict)]
    await ctx.sink.add([log_row(task, asset_id, log, demo=snap.demo) for log in logs], count_as=snap.counted_as)
