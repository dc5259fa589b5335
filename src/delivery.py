"""Delivering one batch of prepared events, and learning each event's fate.

Snap rejects a whole request for one bad event (400 with its index). Delivery takes the named
event out and sends the rest again; when Snap names none it splits the batch in halves, so one
bad record never sinks the other 1,999 and every event ends with its own answer. Every event
carries an `event_id`, so a request resent after a dropped connection is deduplicated by Snap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .conversion import PreparedEvent
from .errors import SnapAuthError, SnapError, SnapRejectedError
from .snap_api import ConversionsApi

Status = Literal["sent", "valid", "invalid", "failed", "skipped", "demo"]


@dataclass(frozen=True, slots=True)
class Outcome:
    event: PreparedEvent
    status: Status
    error: str | None = None
    warnings: tuple[str, ...] = ()


class DeliveryStoppedError(Exception):
    """Snap refused the token part-way through a batch. `outcomes` still answers for every event of it:
    what Snap accepted before the refusal stays `sent` (and is billed), the rest is `failed`."""

    def __init__(self, cause: SnapAuthError, outcomes: list[Outcome]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.outcomes = outcomes


class Delivery(Protocol):
    """Sends one batch bound for one asset (pixel or Snap App ID) and answers for every event in it."""

    async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]: ...


class DemoDelivery:
    """Demo mode: everything is prepared exactly as for real, and nothing leaves the process."""

    async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        return [Outcome(event, "demo") for event in events]


class SnapDelivery:
    """Live sends (`/events`) or test validation (`/events/validate`), with bad events isolated."""

    def __init__(self, api: ConversionsApi, *, validate: bool = False) -> None:
        self._api = api
        self._validate = validate

    async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending = list(events)
        while pending:
            try:
                body = await self._api.send(asset_id, [event.payload for event in pending], validate=self._validate)
            except SnapRejectedError as error:
                index = error.event_index
                if index is not None and 0 <= index < len(pending):
                    outcomes.append(Outcome(pending.pop(index), "invalid", f"Snap rejected the event: {error.reason}"))
                elif len(pending) == 1:
                    outcomes.append(Outcome(pending.pop(), "invalid", f"Snap rejected the event: {error.reason}"))
                else:
                    half = len(pending) // 2
                    first, pending = pending[:half], pending[half:]
                    try:
                        outcomes.extend(await self(asset_id, first))
                    except DeliveryStoppedError as stopped:
                        learned = [*outcomes, *stopped.outcomes, *_failed(pending, stopped.cause)]
                        raise DeliveryStoppedError(stopped.cause, learned) from stopped.cause
                continue
            except SnapAuthError as error:
                raise DeliveryStoppedError(error, [*outcomes, *_failed(pending, error)]) from error
            except SnapError as error:
                outcomes.extend(_failed(pending, error))
                break
            outcomes.extend(self._validated(pending, body) if self._validate else _all(pending, "sent"))
            break
        return outcomes

    @staticmethod
    def _validated(events: Sequence[PreparedEvent], body: dict[str, Any]) -> list[Outcome]:
        """Snap's validate answers per event in `event_logs`; without them the request's status speaks for all."""
        logs = body.get("event_logs")
        if not isinstance(logs, list) or len(logs) != len(events):
            if str(body.get("status", "VALID")).upper().startswith("VALID"):
                return _all(events, "valid")
            return [
                Outcome(event, "invalid", str(body.get("reason") or "Snap marked the event invalid"))
                for event in events
            ]
        outcomes = []
        for event, log in zip(events, logs, strict=True):
            log = log if isinstance(log, dict) else {}
            errors = [str(item) for item in log.get("error_records") or []]
            warnings = tuple(str(item) for item in log.get("warning_records") or [])
            if errors or str(log.get("status", "VALID")).upper() == "INVALID":
                outcomes.append(
                    Outcome(event, "invalid", "; ".join(errors) or "Snap marked the event invalid", warnings)
                )
            else:
                outcomes.append(Outcome(event, "valid", None, warnings))
        return outcomes


def _all(events: Sequence[PreparedEvent], status: Status) -> list[Outcome]:
    return [Outcome(event, status) for event in events]


def _failed(events: Sequence[PreparedEvent], error: Exception) -> list[Outcome]:
    return [Outcome(event, "failed", str(error)) for event in events]
