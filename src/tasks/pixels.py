"""list_pixels and get_pixel_info: the ad account's pixels from Snap's Marketing API. Free."""

from __future__ import annotations

from ..results.rows import pixel_row
from .context import RunContext


async def list_pixels(ctx: RunContext) -> None:
    async with ctx.snap() as snap:
        async for pixel in snap.iter_pixels(snap.required("adAccountId")):
            await ctx.sink.add([pixel_row(ctx.input.task, pixel, demo=snap.demo)], count_as=snap.counted_as)


async def get_pixel_info(ctx: RunContext) -> None:
    async with ctx.snap() as snap:
        pixel = await snap.get_pixel(snap.required("pixelId"))
        await ctx.sink.add([pixel_row(ctx.input.task, pixel, demo=snap.demo)], count_as=snap.counted_as)
