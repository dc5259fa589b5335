"""list_pixels and get_pixel_info: the ad account's pixels from Snap's Marketing API. Free."""

from __future__ import annotations

from typing import Any

from ..results.rows import Row
from .context import RunContext


def pixel_row(task: str, pixel: dict[str, Any], *, demo: bool) -> Row:
    return {
        "task": task,
        "id": pixel.get("id"),
        "name": pixel.get("name"),
        "adAccountId": pixel.get("ad_account_id"),
        "status": pixel.get("status"),
        "effectiveStatus": pixel.get("effective_status"),
        "createdAt": pixel.get("created_at"),
        "updatedAt": pixel.get("updated_at"),
        "demo": demo,
    }


async def list_pixels(ctx: RunContext) -> None:
    async with ctx.snap() as snap:
        async for pixel in snap.iter_pixels(snap.required("adAccountId")):
            await ctx.sink.add([pixel_row(ctx.input.task, pixel, demo=snap.demo)], count_as=snap.counted_as)


async def get_pixel_info(ctx: RunContext) -> None:
    async with ctx.snap() as snap:
        pixel = await snap.get_pixel(snap.required("pixelId"))
        await ctx.sink.add([pixel_row(ctx.input.task, pixel, demo=snap.demo)], count_as=snap.counted_as)
