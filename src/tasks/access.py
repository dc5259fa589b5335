"""How tasks reach Snap, chosen once per run (`RunContext.snap`): live, or a demo that answers offline.

A demo answers from the samples of `sources/demo.py`, sends nothing and charges nothing (`Billing.free`), so
the tasks themselves have no demo branches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..billing import CONVERSION_EVENT, Billing
from ..delivery.checkpoint import STATE_KEY, Checkpoint
from ..delivery.send import Delivery, DemoDelivery, SnapDelivery
from ..events.build import Destinations
from ..ledger import Lease, Ledger
from ..net.transport import RetryPolicy, Transport
from ..snap.conversions import ConversionsApi
from ..snap.marketing import MarketingApi, OAuthCredentials
from ..snap.quality_scores import SnapQuality, fetch_snap_quality, parse_quality_scores
from ..sources import SampleEvents
from ..sources.demo import DEMO_AD_ACCOUNT_ID, DEMO_PIXEL_ID, sample_events, sample_pixels, sample_quality_scores

if TYPE_CHECKING:
    from .context import RunContext

_log = logging.getLogger(__name__)

#: The ids a demo stands in when the input leaves them out.
_DEMO_IDS = {"pixelId": DEMO_PIXEL_ID, "snapAppId": DEMO_PIXEL_ID, "adAccountId": DEMO_AD_ACCOUNT_ID}
#: Snap's score is for the report only: one retry after at most 2 s (whatever Retry-After says), and 15 s in
#: all from the first event, so a slow or absent answer holds up the end of a run by seconds at most (it is
#: read while the events are sent).
QUALITY_RETRY = RetryPolicy(max_retries=1, backoff_max=2.0, retry_after_max=2.0)
QUALITY_TIMEOUT_S = 10.0
QUALITY_DEADLINE_S = 15.0
#: What a demo's test-event tools answer.
_DEMO_TEST_EVENTS: dict[str, dict[str, Any]] = {
    "logs": {"logs": [{"timestamp": "1767225600000", "status": "VALID", "integration": "DIRECT"}]},
    "stats": {"status": "SUCCESS"},
}


class Snap(Protocol):
    """What the tasks ask of Snap and of the run's delivery state."""

    #: Whether rows are samples (their `demo` field), and how lookup rows are counted.
    demo: bool
    counted_as: Literal["demo", "found"]
    #: The events a run reads when the input gives none (a demo's samples), or None.
    samples: SampleEvents | None

    def required(self, field: str) -> str: ...
    def destinations(self) -> Destinations: ...
    def iter_pixels(self, ad_account_id: str) -> AsyncIterator[dict[str, Any]]: ...
    async def get_pixel(self, pixel_id: str) -> dict[str, Any]: ...
    async def event_quality_scores(self, pixel_id: str) -> dict[str, Any]: ...
    async def test_events(self, asset_id: str, kind: str) -> dict[str, Any]: ...
    async def checkpoint(self) -> Checkpoint | None: ...
    def delivery(self, *, validate: bool) -> Delivery: ...
    def billing(self, *, validate: bool, checkpoint: Checkpoint | None) -> Billing: ...
    async def ledger(self, *, validate: bool) -> Ledger | None: ...
    async def snap_quality(self, pixel_id: str | None) -> SnapQuality | None: ...


@asynccontextmanager
async def open_snap(ctx: RunContext) -> AsyncIterator[Snap]:
    """The run's way to Snap: a demo when the input asks for one, else Snap's APIs over one transport."""
    if ctx.input.is_demo:
        yield DemoSnap(ctx)
        return
    async with ctx.transport() as transport:
        yield LiveSnap(ctx, transport)


class DemoSnap:
    """Answers from the samples, offline: nothing is sent, nothing charged, no checkpoint or ledger kept."""

    demo = True
    counted_as: Literal["demo", "found"] = "demo"
    samples: SampleEvents | None = staticmethod(sample_events)

    def __init__(self, ctx: RunContext) -> None:
        self._input = ctx.input

    def required(self, field: str) -> str:
        return str(self._input.event_field(field) or _DEMO_IDS[field])

    def destinations(self) -> Destinations:
        return Destinations(self.required("pixelId"), self.required("snapAppId"))

    async def iter_pixels(self, ad_account_id: str) -> AsyncIterator[dict[str, Any]]:
        for pixel in sample_pixels(ad_account_id):
            yield pixel

    async def get_pixel(self, pixel_id: str) -> dict[str, Any]:
        return sample_pixels(self.required("adAccountId"))[0] | {"id": pixel_id}

    async def event_quality_scores(self, pixel_id: str) -> dict[str, Any]:
        return sample_quality_scores(pixel_id)

    async def test_events(self, asset_id: str, kind: str) -> dict[str, Any]:
        return _DEMO_TEST_EVENTS[kind]

    async def checkpoint(self) -> Checkpoint | None:
        return None

    def delivery(self, *, validate: bool) -> Delivery:
        return DemoDelivery()

    def billing(self, *, validate: bool, checkpoint: Checkpoint | None) -> Billing:
        return Billing.free()

    async def ledger(self, *, validate: bool) -> Ledger | None:
        return None

    async def snap_quality(self, pixel_id: str | None) -> SnapQuality | None:
        scores = parse_quality_scores(sample_quality_scores(pixel_id or DEMO_PIXEL_ID))
        return SnapQuality(tuple(scores), demo=True)


class LiveSnap:
    """Snap's Conversions and Marketing APIs; accepted events charged, progress checkpointed."""

    demo = False
    counted_as: Literal["demo", "found"] = "found"
    samples: SampleEvents | None = None

    def __init__(self, ctx: RunContext, transport: Transport) -> None:
        self._ctx = ctx
        self._input = ctx.input
        self._transport = transport

    def required(self, field: str) -> str:
        return self._input.required(field)

    def destinations(self) -> Destinations:
        return Destinations(self._input.pixel_id, self._input.snap_app_id)

    def _marketing(self) -> MarketingApi:
        return MarketingApi(self._transport, credentials(self._ctx), self._ctx.endpoints)

    def _conversions(self) -> ConversionsApi:
        return ConversionsApi(self._transport, self._input.token(), self._ctx.endpoints.capi)

    def iter_pixels(self, ad_account_id: str) -> AsyncIterator[dict[str, Any]]:
        return self._marketing().iter_pixels(ad_account_id)

    async def get_pixel(self, pixel_id: str) -> dict[str, Any]:
        return await self._marketing().get_pixel(pixel_id)

    async def event_quality_scores(self, pixel_id: str) -> dict[str, Any]:
        return await self._marketing().event_quality_scores(pixel_id)

    async def test_events(self, asset_id: str, kind: str) -> dict[str, Any]:
        return await self._conversions().test_events(asset_id, kind)

    async def checkpoint(self) -> Checkpoint | None:
        """Progress an earlier attempt of this run saved (migration, resurrection, crash), if the input is the same."""
        fingerprint = Checkpoint.fingerprint(self._ctx.run_id, self._input.fingerprint())
        store = self._ctx.platform.store
        checkpoint = Checkpoint(store.set, fingerprint, await store.get(STATE_KEY))
        if checkpoint.resumed:
            _log.info(f"Resuming: events before #{checkpoint.watermark:,} and others already finished are skipped.")
        return checkpoint

    def delivery(self, *, validate: bool) -> Delivery:
        return SnapDelivery(self._conversions(), validate=validate, stats=self._ctx.sink.summary.delivery)

    def billing(self, *, validate: bool, checkpoint: Checkpoint | None) -> Billing:
        if validate:
            return Billing.free()
        charging = self._ctx.platform.charging
        # No checkpoint: nothing recorded, so all the platform counted for this run is an earlier attempt's credit.
        recorded = int(checkpoint.restored.get("charged", 0)) if checkpoint and checkpoint.restored else 0

        async def charge(count: int, key: str) -> int:
            return await charging.charge(CONVERSION_EVENT, count, key)

        return Billing.for_actor(
            charging.manager, charge, run_id=self._ctx.run_id, recorded_charges=recorded, log=_log.info
        )

    async def ledger(self, *, validate: bool) -> Ledger | None:
        store = self._ctx.platform.ledger_store
        if validate or store is None:
            return None
        source = self._input.events_url or self._input.events_dataset_id  # an export: one run of it at a time
        lease = Lease(source, self._ctx.run_id) if source else None
        return Ledger(await store(), skip=self._input.skip_already_sent, lease=lease)

    async def snap_quality(self, pixel_id: str | None) -> SnapQuality | None:
        """Snap's own score for the report, beside our per-event grades; a refusal is shown, never fatal."""
        if not pixel_id:
            return None
        async with Transport(retry=QUALITY_RETRY, timeout=QUALITY_TIMEOUT_S, max_connections=1) as transport:
            marketing = MarketingApi(transport, OAuthCredentials(self._input.token()), self._ctx.endpoints)
            try:
                return await asyncio.wait_for(fetch_snap_quality(marketing, pixel_id), QUALITY_DEADLINE_S)
            except TimeoutError:
                return SnapQuality(unavailable=f"Snap's scores did not come within {QUALITY_DEADLINE_S:.0f} s.")


def credentials(ctx: RunContext) -> OAuthCredentials:
    actor_input = ctx.input
    return OAuthCredentials(
        access_token=actor_input.access_token.get_secret_value() if actor_input.access_token else None,
        refresh_token=actor_input.refresh_token.get_secret_value() if actor_input.refresh_token else None,
        client_id=actor_input.client_id,
        client_secret=actor_input.client_secret.get_secret_value() if actor_input.client_secret else None,
    )
