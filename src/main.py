"""The actor's entry point: input -> task -> dataset rows -> OUTPUT -> webhook.

The only module that talks to the Apify SDK: it reads the input, opens the storages, wires the platform's
events (abort, migration, SIGTERM), charging, status messages and logging, and hands the core the small
interfaces of `platform.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apify import Actor, Event
from apify.storages import KeyValueStore

from .errors import ActorInputError, ServiceUnavailableError, SnapError, SourceError
from .input import ActorInput, parse_input
from .ledger import LEDGER_STORE
from .net.url_guard import ALLOW_PRIVATE_ENV, UrlGuard
from .platform import ChargingManager, Dataset, Platform
from .results.report import CONTENT_TYPE, REPORT_KEY, render_report
from .results.rows import NOT_ACCEPTED
from .results.sink import DatasetUnavailableError, Progress, ResultSink, Summary
from .results.verdict import Verdict, conversion_verdict, lookup_verdict
from .results.webhook import post_results
from .snap.endpoints import Endpoints
from .tasks import CONVERSION_TASKS, LOOKUP_NOUNS, TASKS
from .tasks.context import RunContext

#: Up to this many rows travel in the webhook body; beyond it, a link to the dataset does.
WEBHOOK_ROWS = 1000
#: A push to the platform dataset: attempts, the wait for each answer, and the pause before the next attempt
#: (about a minute in all before the run stops taking events and fails; the SDK alone would retry ~4 minutes).
PUSH_ATTEMPTS = 4
PUSH_TIMEOUT_S = 20.0
PUSH_BACKOFF_S = (2.0, 5.0, 10.0)


async def main() -> None:
    async with Actor:
        _route_logs()
        try:
            actor_input = parse_input(await Actor.get_input())
            actor_input.check_ready()
        except ActorInputError as error:
            Actor.log.error(str(error))
            await Actor.set_value("OUTPUT", {"error": str(error)})
            await Actor.fail(status_message=str(error))
            return
        verdict = await run(actor_input)
        if verdict.succeeded:
            await Actor.exit(status_message=verdict.message)
        else:
            await Actor.fail(status_message=verdict.message)


async def run(actor_input: ActorInput) -> Verdict:
    """Run the task, store what it found, and say whether the run did its job."""
    task = actor_input.task
    summary = Summary(task=task, demo=actor_input.is_demo)
    only = NOT_ACCEPTED if actor_input.result_rows == "problems" and task in CONVERSION_TASKS else None
    run_id = Actor.configuration.actor_run_id or "local"
    writer = await DatasetWriter.open()
    sink = ResultSink(writer.push, summary, keep=WEBHOOK_ROWS, only=only, warn=Actor.log.warning, row_prefix=run_id)
    progress = Progress(Actor.set_status_message, summary)
    platform = Platform(
        store=_Store(await Actor.open_key_value_store()),
        open_dataset=_open_dataset,
        charging=_Charging(Actor.get_charging_manager()),
        events=_Events(),
        ledger_store=_ledger_store,
    )
    ctx = RunContext(actor_input, Endpoints.from_env(), sink, progress, run_id, _url_guard(), platform)
    _stop_on_sigterm(ctx)
    if actor_input.is_demo:
        Actor.log.info("Demo mode: sample data, nothing is sent to Snap and nothing is charged.")
    if ignored := actor_input.ignored_fields():
        Actor.log.info(f"{task} does not read these input fields, so they were ignored: {', '.join(ignored)}")

    failure: str | None = None
    try:
        await TASKS[task](ctx)
    except (ActorInputError, SnapError, SourceError, ServiceUnavailableError) as error:
        failure = str(error)
        Actor.log.error(failure)
    except DatasetUnavailableError as error:
        failure = f"Stopped: {error}. What was sent and charged is recorded in OUTPUT and the checkpoint"
        Actor.log.error(failure)
    finally:
        with contextlib.suppress(DatasetUnavailableError):
            await sink.flush()
    if sink.failed is not None and failure is None:
        failure = f"Stopped: {sink.failed}"

    if task in CONVERSION_TASKS:
        verdict = conversion_verdict(summary, validate=task == "validate_events", failure=failure)
    else:
        verdict = lookup_verdict(summary, noun=LOOKUP_NOUNS[task], failure=failure)
    output: dict[str, Any] = summary.to_output() | {
        "datasetRows": await writer.count(sink.stored - len(sink.unstored())),
        "rowsNotStored": len(sink.unstored()),
        "error": failure,
        "succeeded": verdict.succeeded,
        "statusMessage": verdict.message,
    }
    if task in CONVERSION_TASKS:
        output |= await _save_report(summary, failure)
    if actor_input.webhook_url:
        output["webhook"] = await post_results(
            actor_input.webhook_url, _webhook_body(output, sink), max_retries=actor_input.max_retries,
            url_guard=ctx.url_guard,
        )
        if not output["webhook"]["delivered"]:
            Actor.log.warning(f"Webhook delivery failed: {output['webhook']['error']}")
    await Actor.set_value("OUTPUT", output)
    return verdict


async def _save_report(summary: Summary, failure: str | None) -> dict[str, Any]:
    """Store the HTML run report; OUTPUT links it (by URL too when on the platform)."""
    await Actor.set_value(REPORT_KEY, render_report(summary, error=failure), content_type=CONTENT_TYPE)
    store_id = Actor.configuration.default_key_value_store_id
    base = Actor.configuration.api_public_base_url
    url = f"{base}/v2/key-value-stores/{store_id}/records/{REPORT_KEY}" if Actor.is_at_home() else None
    return {"reportKey": REPORT_KEY, "reportUrl": url}


def _url_guard() -> UrlGuard:
    """On the platform users' URLs may reach public addresses only, unless the environment allows more."""
    return UrlGuard(allow_private=not Actor.is_at_home() or os.environ.get(ALLOW_PRIVATE_ENV) == "1")


class DatasetWriter:
    """Pushes rows to the run's default dataset, never under the SDK's charge lock (charges do not wait on
    pushes), and on the platform with a bounded number of attempts of its own: a push whose answer was
    lost is checked (is its first row at the expected offset?) before it is pushed again, so rows are not
    duplicated. Pushes are serialized by `ResultSink`, so the offset is known."""

    def __init__(self, client: Any, count: int) -> None:
        self._client = client
        self._count = count

    @classmethod
    async def open(cls) -> DatasetWriter:
        if not Actor.is_at_home():
            return cls(None, 0)
        api = Actor.new_client(max_retries=0, timeout=timedelta(seconds=PUSH_TIMEOUT_S))
        client = api.dataset(Actor.configuration.default_dataset_id or "")
        info = await Actor.open_dataset()
        meta = await info.get_metadata()
        return cls(client, int(meta.item_count or 0))

    async def push(self, rows: list[dict[str, Any]]) -> None:
        if self._client is None:
            await (await Actor.open_dataset()).push_data(rows)
            return
        for attempt in range(PUSH_ATTEMPTS):
            try:
                await asyncio.wait_for(self._client.push_items(rows), PUSH_TIMEOUT_S * 2)
            except Exception as error:
                if await self._landed(rows):
                    break
                Actor.log.warning(f"Dataset push failed ({type(error).__name__}), attempt {attempt + 1}")
                status = getattr(error, "status_code", None)
                if attempt + 1 == PUSH_ATTEMPTS or (isinstance(status, int) and 400 <= status < 500 and status != 429):
                    raise  # a refusal (a dataset schema rejecting a row) does not change when repeated
                await asyncio.sleep(PUSH_BACKOFF_S[min(attempt, len(PUSH_BACKOFF_S) - 1)])
            else:
                break
        self._count += len(rows)

    async def _landed(self, rows: list[dict[str, Any]]) -> bool:
        """Did the push store the rows although its answer never came?"""
        try:
            page = await self._client.list_items(offset=self._count, limit=1)
        except Exception:
            return False
        items = list(page.items)
        return bool(items) and items[0].get("rowId") == rows[0].get("rowId")

    async def count(self, fallback: int) -> int:
        """Rows in the dataset now, every attempt of the run included (OUTPUT.datasetRows)."""
        try:
            meta = await (await Actor.open_dataset()).get_metadata()
        except Exception:
            return fallback
        return int(meta.item_count or 0) if self._client is not None else fallback


class _Store:
    """`platform.KeyValueStore` over an SDK key-value store."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    async def get(self, key: str) -> Any:
        return await self._store.get_value(key)

    async def set(self, key: str, value: Any) -> None:
        await self._store.set_value(key, value)


async def _ledger_store() -> _Store:
    """The ledger lives in a named store of the user's account: it outlives runs (and local purges)."""
    return _Store(await Actor.open_key_value_store(name=LEDGER_STORE))


async def _open_dataset(dataset: str) -> Dataset:
    """`eventsDatasetId` holds a dataset's id or its name."""
    try:
        return await Actor.open_dataset(id=dataset)
    except ValueError:
        return await Actor.open_dataset(name=dataset)


class _Charging:
    """`platform.Charging` through `Actor.charge`."""

    def __init__(self, manager: ChargingManager) -> None:
        self.manager = manager

    async def charge(self, event_name: str, count: int, key: str) -> int:
        result = await Actor.charge(event_name, count=count, idempotency_key=key)
        return result.charged_count


class _Events:
    """`platform.PlatformEvents` through `Actor.on`; each handler is removed again with `Actor.off`."""

    def on_abort(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on(Event.ABORTING, handler)

    def on_migrate(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on(Event.MIGRATING, handler)

    @staticmethod
    def _on(event: Event, handler: Callable[[], object]) -> Callable[[], None]:
        def listener(_: object) -> None:
            handler()

        Actor.on(event, listener)
        return lambda: Actor.off(event, listener)


def _route_logs() -> None:
    """The core logs through the `src` loggers: into the run log like the SDK's own lines. httpx logs every
    request URL at INFO, and the Conversions API token rides in that URL: it logs warnings only."""
    sdk = logging.getLogger("apify")
    core = logging.getLogger(__package__ or "src")
    core.handlers = list(sdk.handlers)
    core.setLevel(sdk.getEffectiveLevel())
    core.propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _stop_on_sigterm(ctx: RunContext) -> None:
    """SIGTERM stops like an abort: read no more, finish and record the batches in flight, save OUTPUT."""

    def stop() -> None:
        Actor.log.warning("SIGTERM: finishing the batches in flight, then stopping.")
        for stopper in ctx.stoppers:
            stopper("the run was stopped (SIGTERM); events not reached were not sent")

    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)


def _webhook_body(output: dict[str, Any], sink: ResultSink) -> dict[str, Any]:
    dataset_id = Actor.configuration.default_dataset_id
    complete = sink.stored <= len(sink.kept)
    return {
        "summary": output,
        "rows": sink.kept if complete else [],
        "rowsIncluded": complete,
        "datasetId": dataset_id,
        "datasetItemsUrl": f"https://api.apify.com/v2/datasets/{dataset_id}/items?format=json"
        if Actor.is_at_home()
        else None,
    }
