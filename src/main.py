"""The actor's entry point: input -> task -> dataset rows -> OUTPUT -> webhook."""

from __future__ import annotations

import os
from typing import Any

from apify import Actor

from .actor_input import ActorInput, parse_input
from .context import RunContext
from .errors import ActorInputError, SnapError, SourceError
from .outcome import Verdict, conversion_verdict, lookup_verdict
from .report import CONTENT_TYPE, REPORT_KEY, render_report
from .results import NOT_ACCEPTED, Progress, ResultSink, Summary
from .snap_api import Endpoints
from .tasks import CONVERSION_TASKS, LOOKUP_NOUNS, TASKS
from .url_guard import ALLOW_PRIVATE_ENV, UrlGuard
from .webhook import post_results

#: Up to this many rows travel in the webhook body; beyond it, a link to the dataset does.
WEBHOOK_ROWS = 1000


async def main() -> None:
    async with Actor:
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
    sink = ResultSink(_push, summary, keep=WEBHOOK_ROWS, only=only, warn=Actor.log.warning)
    progress = Progress(Actor.set_status_message, summary)
    run_id = Actor.configuration.actor_run_id or "local"
    ctx = RunContext(actor_input, Endpoints.from_env(), sink, progress, run_id, _url_guard())
    if actor_input.is_demo:
        Actor.log.info("Demo mode: sample data, nothing is sent to Snap and nothing is charged.")
    if ignored := actor_input.ignored_fields():
        Actor.log.info(f"{task} does not read these input fields, so they were ignored: {', '.join(ignored)}")

    failure: str | None = None
    try:
        await TASKS[task](ctx)
    except (ActorInputError, SnapError, SourceError) as error:
        failure = str(error)
        Actor.log.error(failure)
    finally:
        await sink.flush()

    if task in CONVERSION_TASKS:
        verdict = conversion_verdict(summary, validate=task == "validate_events", failure=failure)
    else:
        verdict = lookup_verdict(summary, noun=LOOKUP_NOUNS[task], failure=failure)
    output: dict[str, Any] = summary.to_output() | {
        "datasetRows": sink.stored,
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


async def _push(rows: list[dict[str, Any]]) -> None:
    await Actor.push_data(rows)


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
