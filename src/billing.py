"""The one place that decides what is billed: a `conversion-sent` per event Snap accepted.

Sending comes before charging, so the budget is reserved first: a batch is only sent as far as
the user's maximum charge can still pay for it, counting batches already in flight. Demo runs,
validation, pixel tasks, invalid, failed and skipped events are never charged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from apify import Actor

from .delivery import Outcome

CONVERSION_EVENT = "conversion-sent"
BILLABLE_STATUS = "sent"

LimitFn = Callable[[], int | None]
ChargeFn = Callable[[int, str], Awaitable[int]]


def billable_count(outcomes: Sequence[Outcome]) -> int:
    return sum(1 for outcome in outcomes if outcome.status == BILLABLE_STATUS)


class Billing:
    def __init__(self, *, limit: LimitFn, charge: ChargeFn | None) -> None:
        self._limit = limit
        self._charge = charge
        self._reserved = 0
        self.charged = 0

    @classmethod
    def free(cls) -> Billing:
        """For demo runs and every task that sends nothing live."""
        return cls(limit=lambda: None, charge=None)

    @classmethod
    def for_actor(cls) -> Billing:
        """Charges through the Apify SDK, which also enforces the run's maximum total charge."""
        manager = Actor.get_charging_manager()

        async def charge(count: int, key: str) -> int:
            result = await Actor.charge(CONVERSION_EVENT, count=count, idempotency_key=key)
            return result.charged_count

        return cls(
            limit=lambda: manager.calculate_max_event_charge_count_within_limit(CONVERSION_EVENT),
            charge=charge,
        )

    def reserve(self, wanted: int) -> int:
        """How many of `wanted` conversions may be sent now without outrunning the budget."""
        if self._charge is None:
            return wanted
        limit = self._limit()
        allowed = wanted if limit is None else max(0, min(wanted, limit - self._reserved))
        self._reserved += allowed
        return allowed

    async def settle(self, reserved: int, outcomes: Sequence[Outcome], key: str) -> int:
        """Charge for the accepted events of a reservation; returns how many were charged."""
        if self._charge is None:
            return 0
        try:
            accepted = billable_count(outcomes)
            charged = await self._charge(accepted, key) if accepted else 0
        finally:
            self._reserved -= reserved
        self.charged += charged
        return charged
