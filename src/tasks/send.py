"""send_event, send_batch_events and validate_events: the same pipeline, three ways to deliver."""

from __future__ import annotations

import json
import logging

from ..billing import CONVERSION_EVENT, Billing
from ..delivery.checkpoint import STATE_KEY, Checkpoint
from ..delivery.pipeline import Pipeline, PipelineSettings
from ..delivery.send import Delivery, DemoDelivery, SnapDelivery
from ..errors import ActorInputError
from ..events.build import ConversionBuilder, Destinations
from ..events.names import EventNameResolver
from ..events.user_data import UserDataNormalizer
from ..ledger import Ledger
from ..platform import Charging
from ..snap.conversions import ConversionsApi
from ..snap.marketing import MarketingApi, OAuthCredentials
from ..snap.quality_scores import SnapQuality, fetch_snap_quality, parse_quality_scores
from ..sources import event_source
from ..sources.demo import DEMO_PIXEL_ID, sample_quality_scores
from .context import RunContext

_log = logging.getLogger(__name__)


async def send_events(ctx: RunContext) -> None:
    """Live sends; each event Snap accepts is charged once."""
    await _run(ctx, validate=False)


async def validate_events(ctx: RunContext) -> None:
    """Snap's test endpoint: a verdict per event, nothing counted, nothing charged."""
    await _run(ctx, validate=True)


async def _run(ctx: RunContext, *, validate: bool) -> None:
    actor_input = ctx.input
    destinations = _destinations(ctx)
    try:
        names = EventNameResolver(actor_input.event_name_mapping)
    except ValueError as error:
        raise ActorInputError("eventNameMapping", str(error)) from None
    checkpoint = None if actor_input.is_demo else await _checkpoint(ctx)
    platform = ctx.platform
    start = checkpoint.watermark if checkpoint else 0
    source = event_source(actor_input, ctx.url_guard, platform.open_dataset, start)
    builder = ConversionBuilder(
        destinations=destinations,
        normalizer=UserDataNormalizer(
            default_phone_country=actor_input.default_phone_country,
            already_hashed=actor_input.is_already_hashed,
        ),
        names=names,
        defaults=source.defaults,
        limited_data_use=bool(actor_input.event_field("limitedDataUse")),
        send_opted_out=actor_input.send_opted_out_events,
    )
    settings = PipelineSettings(
        task=actor_input.task,
        max_concurrency=actor_input.max_concurrency,
        charge_key_prefix=ctx.run_id,
    )
    await ctx.progress.set(f"{actor_input.task}: starting on {source.description}")
    summary = ctx.sink.summary
    if actor_input.is_demo:
        await _pipeline(ctx, settings, builder, DemoDelivery(), Billing.free()).run(source.events)
        pixel_id = destinations.pixel_id or DEMO_PIXEL_ID
        summary.snap_quality = SnapQuality(tuple(parse_quality_scores(sample_quality_scores(pixel_id))), demo=True)
        return
    async with ctx.transport() as transport:
        api = ConversionsApi(transport, actor_input.token(), ctx.endpoints.capi)
        recorded = int(checkpoint.restored.get("charged", 0)) if checkpoint and checkpoint.restored else None
        billing = Billing.free() if validate else _billing(platform.charging, recorded)
        delivery = SnapDelivery(api, validate=validate, stats=ctx.sink.summary.delivery)
        ledger = None
        if not validate and platform.ledger_store is not None:
            ledger = Ledger(await platform.ledger_store(), skip=actor_input.skip_already_sent)
        pipeline = _pipeline(ctx, settings, builder, delivery, billing, checkpoint, ledger)
        ctx.stoppers.append(pipeline.stop)
        removers = (
            platform.events.on_abort(lambda: pipeline.stop("the run was aborted; events not reached were not sent")),
            platform.events.on_migrate(pipeline.pause),
        )
        try:
            await pipeline.run(source.events)
        finally:
            for remove in removers:
                remove()
        if actor_input.pixel_id:
            # Snap's own score for the report, beside our per-event grades; a refusal is shown, never fatal.
            marketing = MarketingApi(transport, OAuthCredentials(actor_input.token()), ctx.endpoints)
            summary.snap_quality = await fetch_snap_quality(marketing, actor_input.pixel_id)


def _billing(charging: Charging, recorded: int | None) -> Billing:
    async def charge(count: int, key: str) -> int:
        return await charging.charge(CONVERSION_EVENT, count, key)

    return Billing.for_actor(charging.manager, charge, recorded_charges=recorded, log=_log.info)


async def _checkpoint(ctx: RunContext) -> Checkpoint:
    """Progress an earlier attempt of this run saved (migration, resurrection, crash), if the input is the same."""
    # `json` with ASCII escapes: the input's events may hold lone surrogates, which model_dump_json refuses.
    given = json.dumps(ctx.input.model_dump(mode="python"), sort_keys=True, default=str)
    fingerprint = Checkpoint.fingerprint(ctx.run_id, given)
    store = ctx.platform.store
    checkpoint = Checkpoint(store.set, fingerprint, await store.get(STATE_KEY))
    if checkpoint.resumed:
        _log.info(f"Resuming: events before #{checkpoint.watermark:,} and others already finished are skipped.")
    return checkpoint


def _pipeline(
    ctx: RunContext,
    settings: PipelineSettings,
    builder: ConversionBuilder,
    delivery: Delivery,
    billing: Billing,
    checkpoint: Checkpoint | None = None,
    ledger: Ledger | None = None,
) -> Pipeline:
    return Pipeline(
        settings,
        builder=builder,
        delivery=delivery,
        billing=billing,
        sink=ctx.sink,
        progress=ctx.progress,
        checkpoint=checkpoint,
        ledger=ledger,
    )


def _destinations(ctx: RunContext) -> Destinations:
    actor_input = ctx.input
    if actor_input.is_demo:
        return Destinations(actor_input.pixel_id or DEMO_PIXEL_ID, actor_input.snap_app_id or DEMO_PIXEL_ID)
    return Destinations(actor_input.pixel_id, actor_input.snap_app_id)
