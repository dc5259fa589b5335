"""get_event_quality: Snap's own event quality scores and recommendations for a pixel. Free."""

from __future__ import annotations

from ..results.rows import quality_rows
from ..snap.quality_scores import parse_quality_scores
from .context import RunContext


async def get_event_quality(ctx: RunContext) -> None:
    async with ctx.snap() as snap:
        pixel_id = snap.required("pixelId")
        scores = parse_quality_scores(await snap.event_quality_scores(pixel_id))
    await ctx.sink.add(quality_rows(ctx.input.task, pixel_id, scores, demo=snap.demo), count_as=snap.counted_as)
