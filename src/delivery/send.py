"""Delivering one batch of prepared events, and learning each event's fate.

Snap rejects a whole request for one bad event (400), often without saying which one. Delivery
asks Snap's `/events/validate` about the refused batch (not counted; one verdict per event), sends
the valid events again and reports the others with Snap's own codes and messages; an index Snap
names, then halving, are the fallbacks. So one bad record never sinks the other 1,999, every event
ends with its own answer, and the extra requests are bounded and counted. Every event carries an
`event_id`, so a request resent after a dropped connection is deduplicated by Snap. A run that stops while a
batch waits to retry leaves the events Snap has not answered for unfinished (`_Unfinished`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import SnapAuthError, SnapError, SnapRejectedError
from ..events.build import PreparedEvent
from ..net.transport import RunStoppingError
from ..results.rows import SENT, Outcome, Status
from ..results.summary import DeliveryStats
from ..snap.conversions import ConversionsApi, EventVerdict, event_verdicts


class DeliveryStoppedError(Exception):
    """Snap refused the token part-way through a batch. `outcomes` still answers for every event of it:
    what Snap accepted before the refusal stays `sent` (and is billed), the rest is `failed`."""

    def __init__(self, cause: SnapAuthError, outcomes: list[Outcome]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.outcomes = outcomes


class _Unfinished(Exception):
    """The run stopped while the batch waited to retry (`RunStoppingError`); `outcomes` are Snap's answers so far."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("the run stopped before Snap answered for every event")
        self.outcomes = outcomes


class Delivery(Protocol):
    """Sends one batch bound for one asset (pixel or Snap App ID) and answers for every event in it; or, when the
    run stops while the batch waits to retry, only for those Snap answered for: the others stay unfinished (no
    row, not charged, not marked done), so a resumed or resurrected run sends them."""

    async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]: ...


class DemoDelivery:
    """Demo mode: everything is prepared exactly as for real, and nothing leaves the process."""

    async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        return [Outcome(event, "demo") for event in events]


#: Extra requests one batch may spend on finding its bad events, beyond its first send. With Snap's
#: validate answer it takes 2 (one validate, one resend) however many events are bad. The halving
#: fallback takes about 2 x log2(n / k) per bad event: 42 for 2 bad events among 2,000, about 120 for
#: 6. Past the bound, the events not yet answered for are reported `failed` (resendable, not charged).
MAX_ISOLATION_REQUESTS = 128


class _Isolation:
    """The extra requests one batch may still spend."""

    def __init__(self, limit: int, stats: DeliveryStats) -> None:
        self.remaining = limit
        self.stats = stats

    def spend(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        self.stats.isolation_requests += 1
        return True


class SnapDelivery:
    """Live sends (`/events`) or test validation (`/events/validate`), with bad events isolated.

    A live batch Snap refuses (400) is asked again at `/events/validate`: not counted as conversions,
    and its `event_logs` say per event what is wrong, with Snap's codes and messages. The events it
    calls valid are sent again, the others reported `invalid` with Snap's words: two extra requests
    however many events are bad. When validate gives no per-event answer (or calls everything valid),
    the index Snap named is taken out, or else the batch is split in halves, as before.
    """

    def __init__(
        self,
        api: ConversionsApi,
        *,
        validate: bool = False,
        stats: DeliveryStats | None = None,
        max_isolation_requests: int = MAX_ISOLATION_REQUESTS,
    ) -> None:
        self._api = api
        self._validate = validate
        self.stats = stats if stats is not None else DeliveryStats()
        self._max_isolation = max_isolation_requests

    async def __call__(self, asset_id: str, events: Sequence[PreparedEvent]) -> list[Outcome]:
        isolation = _Isolation(self._max_isolation, self.stats)
        try:
            return await self._deliver(asset_id, list(events), isolation, ask_validate=not self._validate, first=True)
        except _Unfinished as unfinished:
            return unfinished.outcomes

    async def _deliver(
        self,
        asset_id: str,
        pending: list[PreparedEvent],
        isolation: _Isolation,
        *,
        ask_validate: bool,
        first: bool,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        try:
            while pending:
                if not first and not isolation.spend():
                    outcomes.extend(_over_budget(pending, self._max_isolation))
                    break
                first = False
                try:
                    body = await self._api.send(asset_id, [event.body for event in pending], validate=self._validate)
                except SnapRejectedError as error:
                    if len(pending) == 1:
                        outcomes.append(
                            Outcome(pending.pop(), "invalid", _rejection(error.messages, error.codes, error))
                        )
                        continue
                    if ask_validate:
                        ask_validate = False  # once per batch: a second refusal falls back on the index or halving
                        try:
                            verdicts = await self._ask_validate(asset_id, pending, isolation)
                        except SnapAuthError as auth:
                            raise DeliveryStoppedError(auth, [*outcomes, *_failed(pending, auth)]) from auth
                        if verdicts is not None and not all(verdict.valid for verdict in verdicts):
                            kept = []
                            for event, verdict in zip(pending, verdicts, strict=True):
                                if verdict.valid:
                                    kept.append(event)
                                else:
                                    message = _rejection(verdict.messages, verdict.codes, error)
                                    outcomes.append(Outcome(event, "invalid", message, verdict.warnings))
                            pending = kept
                            continue
                    index = error.event_index
                    if index is not None and 0 <= index < len(pending):
                        outcomes.append(
                            Outcome(pending.pop(index), "invalid", _rejection(error.messages, error.codes, error))
                        )
                        continue
                    half = len(pending) // 2
                    head, pending = pending[:half], pending[half:]
                    try:
                        outcomes.extend(await self._deliver(asset_id, head, isolation, ask_validate=False, first=False))
                    except DeliveryStoppedError as stopped:
                        learned = [*outcomes, *stopped.outcomes, *_failed(pending, stopped.cause)]
                        raise DeliveryStoppedError(stopped.cause, learned) from stopped.cause
                    except _Unfinished as unfinished:
                        raise _Unfinished([*outcomes, *unfinished.outcomes]) from unfinished
                    continue
                except SnapAuthError as error:
                    raise DeliveryStoppedError(error, [*outcomes, *_failed(pending, error)]) from error
                except SnapError as error:
                    outcomes.extend(_failed(pending, error))
                    break
                outcomes.extend(self._validated(pending, body) if self._validate else _all(pending, SENT))
                break
        except RunStoppingError as error:
            raise _Unfinished(outcomes) from error
        return outcomes

    async def _ask_validate(
        self, asset_id: str, events: Sequence[PreparedEvent], isolation: _Isolation
    ) -> list[EventVerdict] | None:
        """Snap's per-event verdicts on a refused batch, or None when validate cannot give them."""
        if not isolation.spend():
            return None
        self.stats.validate_requests += 1
        try:
            body = await self._api.send(asset_id, [event.body for event in events], validate=True)
        except SnapAuthError:
            raise
        except SnapError:
            return None
        return event_verdicts(body, len(events))

    @staticmethod
    def _validated(events: Sequence[PreparedEvent], body: dict[str, Any]) -> list[Outcome]:
        """Snap's validate answers per event in `event_logs`; without them the request's status speaks for all."""
        verdicts = event_verdicts(body, len(events))
        if verdicts is None:
            if str(body.get("status", "VALID")).upper().startswith("VALID"):
                return _all(events, "valid")
            return [
                Outcome(event, "invalid", str(body.get("reason") or "Snap marked the event invalid"))
                for event in events
            ]
        return [
            Outcome(event, "valid", None, verdict.warnings)
            if verdict.valid
            else Outcome(event, "invalid", "; ".join(verdict.messages) or "Snap marked the event invalid",
                         verdict.warnings)
            for event, verdict in zip(events, verdicts, strict=True)
        ]  # fmt: skip


def _rejection(messages: Sequence[str], codes: Sequence[str], error: SnapRejectedError) -> str:
    """Snap's own words for a rejected event: its messages (else the request's reason) and its codes."""
    text = "; ".join(messages) or error.reason
    return f"Snap rejected the event: {text}" + (f" (codes: {', '.join(codes)})" if codes else "")


def _over_budget(events: Sequence[PreparedEvent], limit: int) -> list[Outcome]:
    reason = (
        f"not accepted: Snap refused the batch and finding its bad events took more than {limit} extra "
        "requests; send these events again (they carry their event_id, so nothing is counted twice)"
    )
    return [Outcome(event, "failed", reason) for event in events]


def _all(events: Sequence[PreparedEvent], status: Status) -> list[Outcome]:
    return [Outcome(event, status) for event in events]


def _failed(events: Sequence[PreparedEvent], error: Exception) -> list[Outcome]:
    return [Outcome(event, "failed", str(error)) for event in events]
