"""list_pixels and get_pixel_info: the ad account's pixels from Snap's Marketing API. Free."""

from __future__ import annotations

from typing import Any

from ..results.rows import Row
from ..snap.marketing import MarketingApi, OAuthCredentials
from ..sources.demo import DEMO_PIXEL_ID, sample_pixels
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
    actor_input = ctx.input
    if actor_input.is_demo:
        rows = [pixel_row(actor_input.task, pixel, demo=True) for pixel in sample_pixels(actor_input.ad_account_id)]
        await ctx.sink.add(rows, count_as="demo")
        return
    async with ctx.transport() as transport:
        api = MarketingApi(transport, credentials(ctx), ctx.endpoints)
        async for pixel in api.iter_pixels(actor_input.required("adAccountId")):
            await ctx.sink.add([pixel_row(actor_input.task, pixel, demo=False)], count_as="found")


async def get_pixel_info(ctx: RunContext) -> None:
    actor_input = ctx.input
    if actor_input.is_demo:
        pixel = sample_pixels(actor_input.ad_account_id)[0] | {"id": actor_input.pixel_id or DEMO_PIXEL_ID}
        await ctx.sink.add([pixel_row(actor_input.task, pixel, demo=True)], count_as="demo")
        return
    async with ctx.transport() as transport:
        api = MarketingApi(transport, credentials(ctx), ctx.endpoints)
        pixel = await api.get_pixel(actor_input.required("pixelId"))
        await ctx.sink.add([pixel_row(actor_input.task, pixel, demo=False)], count_as="found")


def credentials(ctx: RunContext) -> OAuthCredentials:
    actor_input = ctx.input
    return OAuthCredentials(
        access_token=actor_input.access_token.get_secret_value() if actor_input.access_token else None,
        refresh_token=actor_input.refresh_token.get_secret_value() if actor_input.refresh_token else None,
        client_id=actor_input.client_id,
        client_secret=actor_input.client_secret.get_secret_value() if actor_input.client_secret else None,
    )
