"""get_test_event_logs and get_test_event_stats: what Snap's test-event tools saw. Free."""

from __future__ import annotations

from ..results.rows import log_row, stats_row
from .context import RunContext


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
