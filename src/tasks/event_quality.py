"""get_event_quality: Snap's own event quality scores and recommendations for a pixel. Free."""

from __future__ import annotations

from ..results.rows import quality_rows
from ..snap.marketing import MarketingApi
from ..snap.quality_scores import parse_quality_scores
from ..sources.demo import DEMO_PIXEL_ID, sample_quality_scores
from .context import RunContext
from .pixels import credentials


async def get_event_quality(ctx: RunContext) -> None:
    actor_input = ctx.input
    task = actor_input.task
    if actor_input.is_demo:
        pixel_id = actor_input.pixel_id or DEMO_PIXEL_ID
        scores = parse_quality_scores(sample_quality_scores(pixel_id))
        await ctx.sink.add(quality_rows(task, pixel_id, scores, demo=True), count_as="demo")
        return
    pixel_id = actor_input.required("pixelId")
    async with ctx.transport() as transport:
        body = await MarketingApi(transport, credentials(ctx), ctx.endpoints).event_quality_scores(pixel_id)
    scores = parse_quality_scores(body)
    await ctx.sink.add(quality_rows(task, pixel_id, scores, demo=False), count_as="found")
