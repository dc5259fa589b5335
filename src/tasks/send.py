"""send_event, send_batch_events and validate_events: the same pipeline, three ways to deliver."""

from __future__ import annotations

import asyncio

from ..delivery.pipeline import Pipeline, PipelineSettings
from ..errors import ActorInputError
from ..events.build import ConversionBuilder
from ..events.names import EventNameResolver
from ..events.user_data import UserDataNormalizer
from ..snap.quality_scores import SnapQuality
from ..sources import event_source
from .context import RunContext


async def send_events(ctx: RunContext) -> None:
    """Live sends; each event Snap accepts is charged once."""
    await _run(ctx, validate=False)


async def validate_events(ctx: RunContext) -> None:
    """Snap's test endpoint: a verdict per event, nothing counted, nothing charged."""
    await _run(ctx, validate=True)


async def _run(ctx: RunContext, *, validate: bool) -> None:
    actor_input = ctx.input
    try:
        names = EventNameResolver(actor_input.event_name_mapping)
    except ValueError as error:
        raise ActorInputError("eventNameMapping", str(error)) from None
    async with ctx.snap() as snap:
        destinations = snap.destinations()
        checkpoint = await snap.checkpoint()
        platform = ctx.platform
        start = checkpoint.watermark if checkpoint else 0
        source = event_source(actor_input, ctx.url_guard, platform.open_dataset, start, samples=snap.samples)
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
        )
        ledger = await snap.ledger(validate=validate)
        await ctx.progress.set(f"{actor_input.task}: starting on {source.description}")
        pipeline = Pipeline(
            settings,
            builder=builder,
            delivery=snap.delivery(validate=validate),
            billing=snap.billing(validate=validate, checkpoint=checkpoint),
            sink=ctx.sink,
            progress=ctx.progress,
            checkpoint=checkpoint,
            ledger=ledger,
        )
        ctx.stoppers.append(pipeline.stop)

        # Snap's score is only for the report: read beside the sends (once events arrive), so it never adds to the
        # run's time, and a run whose source fails at once does not ask for it.
        async def snap_quality() -> SnapQuality | None:
            await pipeline.started.wait()
            return await snap.snap_quality(destinations.pixel_id)

        quality = asyncio.create_task(snap_quality())
        aborted = "the run was aborted; events not reached were not sent"
        removers = (
            platform.events.on_abort(lambda: pipeline.stop(aborted)),
            platform.events.on_migrate(pipeline.pause),
        )
        try:
            await pipeline.run(source.events)
        except BaseException:
            quality.cancel()
            await asyncio.gather(quality, return_exceptions=True)  # closed before the run's transport is
            raise
        finally:
            for remove in removers:
                remove()
        ctx.sink.summary.snap_quality = await quality
