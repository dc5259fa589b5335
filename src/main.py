"""The actor's entry point: input -> task -> dataset rows -> OUTPUT -> webhook.

The only module that talks to the Apify SDK: it reads the input, opens the storages, wires the platform's
events (abort, migration, SIGTERM), charging, status messages and logging, and hands the core the small
interfaces of `platform.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import orjson
from apify import Actor, Event
from apify.storages import KeyValueStore
from apify_client import ApifyClientAsync
from apify_client.http_compressors import GzipHttpCompressor

from .errors import ActorInputError, LedgerError, ServiceUnavailableError, SnapError, SourceError
from .input import ActorInput, parse_input
from .ledger import LEDGER_STORE
from .net.transport import RunStoppingError, error_named, keeping_secrets, stopping_ends_waits
from .net.url_guard import ALLOW_PRIVATE_ENV, UrlGuard
from .platform import ChargingManager, Dataset, Platform, RunEdge
from .results.report import CONTENT_TYPE, REPORT_KEY, render_report
from .results.rows import NOT_ACCEPTED
from .results.sink import DatasetUnavailableError, Progress, ResultSink
from .results.summary import Summary
from .results.verdict import Verdict, conversion_verdict, lookup_verdict
from .results.webhook import post_results
from .snap.endpoints import Endpoints
from .tasks import CONVERSION_TASKS, LOOKUP_NOUNS, TASKS
from .tasks.context import RunContext

#: Up to this many rows travel in the webhook body; beyond it, a link to the dataset does.
WEBHOOK_ROWS = 1000
#: A push to the platform dataset: attempts, the wait for each answer, and the pause before the next attempt
#: (about a minute in all before the run stops taking events and fails when the API answers with errors, about
#: three when it does not answer at all; the SDK alone would retry ~4 minutes). The pauses can be set in the
#: environment as comma-separated seconds (docs/architecture.md, "Platform faults").
PUSH_ATTEMPTS = 4
PUSH_TIMEOUT_S = 20.0
#: A push the API did not answer (time-out, dropped connection, a gateway's 502 / 504) may still be stored: it is
#: believed not stored, and pushed again, only if its rows are still missing this long after it was sent.
PUSH_SETTLE_S = 2 * PUSH_TIMEOUT_S
#: Statuses a gateway answers while the API may still be storing the push.
_GATEWAY_STATUSES = frozenset({502, 504})
PUSH_BACKOFF_ENV = "SNAP_ACTOR_DATASET_PUSH_BACKOFF_S"
DEFAULT_PUSH_BACKOFF_S = (2.0, 5.0, 10.0)
#: Push bodies are gzipped at level 1: rows repeat themselves, so it still shrinks them ~20x, and zlib lets the
#: other threads run while it works (the SDK's default, brotli, holds the interpreter lock).
PUSH_GZIP_LEVEL = 1
#: The cyclic collector's thresholds once start-up is over (Python's defaults: 700, 10, 10); see `tune_gc`.
GC_THRESHOLDS = (10_000, 10, 10)
_log = logging.getLogger(__name__)


def push_backoff(setting: str | None) -> tuple[float, ...]:
    """The pauses between push attempts: comma-separated seconds from the environment, or the defaults when
    it is unset or not a list of numbers of zero or more (a bad setting never stops a run)."""
    try:
        pauses = tuple(float(text) for text in (setting or "").split(","))
    except ValueError:
        return DEFAULT_PUSH_BACKOFF_S
    return pauses if all(0 <= pause < 3600 for pause in pauses) else DEFAULT_PUSH_BACKOFF_S


PUSH_BACKOFF_S = push_backoff(os.environ.get(PUSH_BACKOFF_ENV))


def _push_pause(attempt: int) -> float:
    """The writer's pause after its `attempt`-th failed push or check (the last one repeats)."""
    return PUSH_BACKOFF_S[min(attempt, len(PUSH_BACKOFF_S) - 1)]


async def main() -> None:
    async with Actor:
        signals = _RunSignals()
        signals.listen()  # first: an abort during start-up is remembered, not lost
        _route_logs()
        edge = await _apify_edge(signals)
        tune_gc()
        verdict = await execute(await Actor.get_input(), edge)
        if verdict.succeeded:
            await Actor.exit(status_message=verdict.message)
        else:
            await Actor.fail(status_message=verdict.message)


def tune_gc() -> None:
    """A big export allocates a dozen small containers per event, next to none in a cycle. With Python's defaults
    the collector runs every 700 allocations and walks every object start-up made (the SDK's and pydantic's, alive
    until the run ends) about every 70,000: about 15 % of a million-event run's time. Start-up's objects are frozen
    (never walked again) and the youngest generation is collected every 10,000 allocations. What start-up left for
    the collector is collected first: frozen, it would never be freed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def execute(raw_input: dict[str, Any] | None, edge: RunEdge) -> Verdict:
    """The whole run on the given platform: input checked, task run, results stored. Its secrets are known to
    `redact` from the moment the input is read (`keeping_secrets`)."""
    with keeping_secrets():
        try:
            actor_input = parse_input(raw_input)
            actor_input.check_ready()
        except ActorInputError as error:
            _log.error(str(error))
            await edge.save("OUTPUT", {"error": str(error)}, None)
            return Verdict(False, str(error))
        return await run(actor_input, edge)


async def run(actor_input: ActorInput, edge: RunEdge) -> Verdict:
    """Run the task, store what it found, and say whether the run did its job."""
    task = actor_input.task
    summary = Summary(task=task, demo=actor_input.is_demo)
    only = NOT_ACCEPTED if actor_input.result_rows == "problems" and task in CONVERSION_TASKS else None
    sink = ResultSink(edge.push_rows, summary, keep=WEBHOOK_ROWS, only=only, warn=_log.warning, row_prefix=edge.run_id)
    progress = Progress(edge.set_status, summary)
    url_guard = UrlGuard(allow_private=edge.allow_private_urls)
    stopping = _Stopping()
    ctx = RunContext(
        actor_input, Endpoints.from_env(), sink, progress, edge.run_id, url_guard, edge.platform, stoppers=stopping
    )
    if actor_input.is_demo:
        _log.info("Demo mode: sample data, nothing is sent to Snap and nothing is charged.")
    if ignored := actor_input.ignored_fields():
        _log.info(f"{task} does not read these input fields, so they were ignored: {', '.join(ignored)}")

    failure: str | None = None
    events = edge.platform.events
    removers = (events.on_abort(stopping.waits.set), events.on_terminate(stopping.terminate))
    try:
        with stopping_ends_waits(stopping.waits):
            await TASKS[task](ctx)
    except (ActorInputError, LedgerError, SnapError, SourceError, ServiceUnavailableError, RunStoppingError) as error:
        failure = str(error)
        _log.error(failure)
    except DatasetUnavailableError as error:
        failure = f"Stopped: {error}. What was sent and charged is recorded in OUTPUT and the checkpoint"
        _log.error(failure)
    except Exception as error:  # unforeseen (a bug, a store failing for good): the run fails, OUTPUT says what was done
        failure = f"Stopped by an unexpected error ({error_named(error, 300)})"
        _log.error(f"{failure} at {_where(error)}. What was sent and charged is recorded in OUTPUT")
    finally:
        for remove in removers:
            remove()
        with contextlib.suppress(DatasetUnavailableError):
            await sink.flush()
    if sink.failed is not None and failure is None:
        failure = f"Stopped: {sink.failed}"

    if task in CONVERSION_TASKS:
        verdict = conversion_verdict(summary, validate=task == "validate_events", failure=failure)
    else:
        verdict = lookup_verdict(summary, noun=LOOKUP_NOUNS[task], failure=failure)
    output: dict[str, Any] = summary.to_output() | {
        "datasetRows": await edge.count_rows(sink.stored - len(sink.unstored())),
        "rowsNotStored": len(sink.unstored()),
        "error": failure,
        "succeeded": verdict.succeeded,
        "statusMessage": verdict.message,
    }
    if task in CONVERSION_TASKS:
        await edge.save(REPORT_KEY, render_report(summary, error=failure), CONTENT_TYPE)
        output |= {"reportKey": REPORT_KEY, "reportUrl": edge.record_url(REPORT_KEY)}
    if actor_input.webhook_url:
        output["webhook"] = await post_results(
            actor_input.webhook_url,
            _webhook_body(output, sink, edge),
            max_retries=actor_input.max_retries,
            url_guard=url_guard,
        )
        if not output["webhook"]["delivered"]:
            _log.warning(f"Webhook delivery failed: {output['webhook']['error']}")
    await edge.save("OUTPUT", output, None)
    return verdict


async def _apify_edge(signals: _RunSignals) -> RunEdge:
    """The run's platform through the Apify SDK; `signals` are already listened to."""
    writer = await DatasetWriter.open()
    store = await Actor.open_key_value_store()
    config = Actor.configuration
    at_home = Actor.is_at_home()

    async def save(key: str, value: Any, content_type: str | None) -> None:
        await store.set_value(key, value, content_type=content_type)

    def record_url(key: str) -> str | None:
        base, store_id = config.api_public_base_url, config.default_key_value_store_id
        return f"{base}/v2/key-value-stores/{store_id}/records/{key}" if at_home else None

    dataset_id, public = config.default_dataset_id, config.api_public_base_url
    return RunEdge(
        platform=Platform(
            store=_Store(store),
            open_dataset=_open_dataset,
            charging=_Charging(Actor.get_charging_manager()),
            events=signals,
            ledger_store=_ledger_store,
        ),
        run_id=config.actor_run_id or "local",
        push_rows=writer.push,
        count_rows=writer.count,
        set_status=Actor.set_status_message,
        save=save,
        record_url=record_url,
        dataset_id=dataset_id,
        dataset_items_url=f"{public}/v2/datasets/{dataset_id}/items?format=json" if at_home else None,
        # On the platform users' URLs may reach public addresses only, unless the environment allows more.
        allow_private_urls=not at_home or os.environ.get(ALLOW_PRIVATE_ENV) == "1",
    )


class DatasetWriter:
    """Pushes rows to the run's default dataset, never under the SDK's charge lock (charges do not wait on
    pushes), and on the platform with a bounded number of attempts of its own: a push that failed is checked
    (is its first row at the expected offset?) before it is pushed again (`_landed`), so rows are duplicated only
    by a push the API stores more than `PUSH_SETTLE_S` after it was sent. Pushes are serialized by `ResultSink`,
    so the offset is known.

    On the platform the body is encoded once with `orjson` (about 14x faster than the client's `json.dumps`
    for a chunk of rows) and gzipped at `PUSH_GZIP_LEVEL`."""

    def __init__(self, client: Any, count: int) -> None:
        self._client = client
        self._count = count

    @classmethod
    async def open(cls) -> DatasetWriter:
        if not Actor.is_at_home():
            return cls(None, 0)
        config = Actor.configuration
        timeout = timedelta(seconds=PUSH_TIMEOUT_S)
        api = ApifyClientAsync(
            token=config.token,
            api_url=config.api_base_url,
            max_retries=0,
            timeout_short=timeout / 6,  # the tiers `Actor.new_client(timeout=...)` would give
            timeout_medium=timeout,
            timeout_long=timeout * 12,
            timeout_max=timeout * 12,
            compression=GzipHttpCompressor(quality=PUSH_GZIP_LEVEL),
        )
        client = api.dataset(config.default_dataset_id or "")
        info = await Actor.open_dataset()
        meta = await info.get_metadata()
        return cls(client, int(meta.item_count or 0))

    async def push(self, rows: list[dict[str, Any]]) -> None:
        if self._client is None:
            await (await Actor.open_dataset()).push_data(rows)
            return
        body = orjson.dumps(rows).decode()
        for attempt in range(PUSH_ATTEMPTS):
            sent_at = time.monotonic()
            try:
                await asyncio.wait_for(self._client.push_items(body), PUSH_TIMEOUT_S * 2)
            except Exception as error:
                status = getattr(error, "status_code", None)
                refused = isinstance(status, int) and 400 <= status < 500 and status != 429
                answered = isinstance(status, int) and status not in _GATEWAY_STATUSES
                if not refused and await self._landed(rows, sent_at, answered=answered):
                    break
                Actor.log.warning(f"Dataset push failed ({type(error).__name__}), attempt {attempt + 1}")
                if attempt + 1 == PUSH_ATTEMPTS or refused:
                    raise  # a refusal (a dataset schema rejecting a row) does not change when repeated
                await asyncio.sleep(_push_pause(attempt))
            else:
                break
        self._count += len(rows)

    async def _landed(self, rows: list[dict[str, Any]], sent_at: float, *, answered: bool) -> bool:
        """Did the failed push store the rows after all? A check that fails is no answer: it is asked again (taken
        for "no", the rows were pushed twice). "Not there" is believed at once for a push the API answered; one it
        did not answer may still be in the API's hands, so it is asked again until `PUSH_SETTLE_S` after the push
        was sent (checked at once, a push the API stored a second after the client gave up was pushed twice). The
        pauses are the writer's; no answer by then counts as "no"."""
        deadline, checks = sent_at + PUSH_SETTLE_S, 0
        while (found := await self._found(rows)) is not True:
            left = deadline - time.monotonic()
            if (found is False and answered) or left <= 0:
                return False
            await asyncio.sleep(min(_push_pause(checks), left))
            checks += 1
        return True

    async def _found(self, rows: list[dict[str, Any]]) -> bool | None:
        """Is the push's first row at the offset it was pushed to? None: the check failed."""
        try:
            page = await self._client.list_items(offset=self._count, limit=1)
        except Exception:
            return None
        items = list(page.items)
        return bool(items) and items[0].get("rowId") == rows[0].get("rowId")

    async def count(self, fallback: int) -> int:
        """Rows in the dataset now, every attempt of the run included (OUTPUT.datasetRows); locally, `fallback`."""
        if self._client is None:
            return fallback
        try:
            meta = await (await Actor.open_dataset()).get_metadata()
        except Exception:
            return fallback
        return int(meta.item_count or 0)


def _where(error: BaseException, depth: int = 4) -> str:
    """The innermost frames an error came through, as `file:line in function`, for whoever reads the log to find the
    code (no values: a message or a local could hold a token or an email)."""

    def file(path: str) -> str:  # the project's files from its root; a library's by its last two parts
        relative = os.path.relpath(path)
        return relative if not relative.startswith("..") else os.path.join(*path.split(os.sep)[-2:])

    frames = reversed(traceback.extract_tb(error.__traceback__)[-depth:])
    return " <- ".join(f"{file(frame.filename)}:{frame.lineno} in {frame.name}" for frame in frames)


class _Store:
    """`platform.KeyValueStore` over an SDK key-value store."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    async def get(self, key: str) -> Any:
        return await self._store.get_value(key)

    async def set(self, key: str, value: Any) -> None:
        await self._store.set_value(key, value)

    async def delete(self, key: str) -> None:
        await self._store.delete_value(key)  # SDK 4: `set_value(key, None)` would store an empty record instead

    async def keys(self, prefix: str) -> list[str]:
        # The SDK lists a store's keys in order, a page of 1,000 a call, with no prefix: from just before it to past it.
        found: list[str] = []
        async for meta in self._store.iterate_keys(exclusive_start_key=prefix[:-1]):
            if meta.key.startswith(prefix):
                found.append(meta.key)
            elif meta.key > prefix:
                break
        return found


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


class _RunSignals:
    """`platform.PlatformEvents` over the SDK's abort and migration events and SIGTERM, listened to from the run's
    first moment (`main`). A signal that arrives during start-up, before a task registers its handler, is remembered
    and handed to the handler as it registers: an abort while the run opened its stores was lost, and the run sent
    and charged everything. The SDK listeners are coroutines: the SDK runs a plain function in a worker thread,
    where the pipeline's asyncio state must not be touched."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[[], object]]] = {"abort": [], "migrate": [], "terminate": []}
        self._seen: set[str] = set()

    def listen(self) -> None:
        Actor.on(Event.ABORTING, self._listener("abort"))
        Actor.on(Event.MIGRATING, self._listener("migrate"))
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._fire, "terminate")

    def _listener(self, kind: str) -> Callable[[object], Coroutine[Any, Any, None]]:
        async def listener(_: object) -> None:
            self._fire(kind)

        return listener

    def _fire(self, kind: str) -> None:
        self._seen.add(kind)
        for handler in list(self._handlers[kind]):
            handler()

    def on_abort(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on("abort", handler)

    def on_migrate(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on("migrate", handler)

    def on_terminate(self, handler: Callable[[], object]) -> Callable[[], None]:
        return self._on("terminate", handler)

    def _on(self, kind: str, handler: Callable[[], object]) -> Callable[[], None]:
        self._handlers[kind].append(handler)
        if kind in self._seen:
            handler()
        return lambda: self._handlers[kind].remove(handler)


class _Stopping(list[Callable[[str], object]]):
    """`RunContext.stoppers` of one run, remembering a stop: a stopper a task adds after SIGTERM came is called at
    once. `waits` is set by any stop, an abort too: it ends the transport's retry waits (`stopping_ends_waits`), so
    a batch waiting out Snap's Retry-After is left unfinished (no row, not charged) and the run saves OUTPUT within
    the platform's graceful abort."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None
        self.waits = asyncio.Event()

    def append(self, stopper: Callable[[str], object]) -> None:
        super().append(stopper)
        if self.reason is not None:
            stopper(self.reason)

    def terminate(self) -> None:
        """SIGTERM stops like an abort: read no more, record what Snap answered, leave the rest, save OUTPUT."""
        _log.warning("SIGTERM: recording the batches Snap answered, then stopping.")
        self.reason = "the run was stopped (SIGTERM); events not reached were not sent"
        self.waits.set()
        for stopper in list(self):
            stopper(self.reason)


def _as_sdk_line(record: logging.LogRecord) -> bool:
    """The run log names the actor's lines as it names the SDK's, whichever module wrote them."""
    record.name = "apify"
    return True


def _route_logs() -> None:
    """The core logs through the `src` loggers: into the run log like the SDK's own lines. httpx logs every
    request URL at INFO, and the Conversions API token rides in that URL: it logs warnings only."""
    sdk = logging.getLogger("apify")
    core = logging.getLogger(__package__ or "src")
    core.handlers = []
    for sdk_handler in sdk.handlers:
        handler = logging.StreamHandler(getattr(sdk_handler, "stream", None))
        handler.setFormatter(sdk_handler.formatter)
        handler.addFilter(_as_sdk_line)
        core.addHandler(handler)
    core.setLevel(sdk.getEffectiveLevel())
    core.propagate = False
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _webhook_body(output: dict[str, Any], sink: ResultSink, edge: RunEdge) -> dict[str, Any]:
    complete = sink.stored <= len(sink.kept)
    return {
        "summary": output,
        "rows": sink.kept if complete else [],
        "rowsIncluded": complete,
        "datasetId": edge.dataset_id,
        "datasetItemsUrl": edge.dataset_items_url,
    }
