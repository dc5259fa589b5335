"""The one place that decides what is billed: a `conversion-sent` per event Snap accepted.

Sending comes before charging, so the budget is reserved first: a batch is only sent as far as
the user's maximum charge can still pay for it, counting batches already in flight. Demo runs,
validation, pixel tasks, invalid, failed and skipped events are never charged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from .errors import ServiceUnavailableError
from .net.transport import error_named
from .platform import ChargingManager
from .results.rows import SENT, Outcome

CONVERSION_EVENT = "conversion-sent"
BILLABLE_STATUS = SENT

LimitFn = Callable[[], int | None]
ChargeFn = Callable[[int, str], Awaitable[int]]
LogFn = Callable[[str], object]


def billable_count(outcomes: Sequence[Outcome]) -> int:
    return sum(1 for outcome in outcomes if outcome.status == BILLABLE_STATUS)


def charged_flags(outcomes: Sequence[Outcome], charged: int) -> list[bool]:
    """Which events of a settled batch are billed (their rows' `charged`): the first `charged` accepted ones."""
    flags = []
    for outcome in outcomes:
        billed = charged > 0 and outcome.status == BILLABLE_STATUS
        charged -= billed
        flags.append(billed)
    return flags


class ChargeRefusedError(ServiceUnavailableError):
    """The platform did not take a charge (refused it, or its API failed past the client's retries) for conversions
    Snap accepted. Snap has them, so their rows say `sent` and the ledger records them; they are not charged, and
    the run sends nothing more, as nothing more could be billed. A `ServiceUnavailableError` (a host that did not
    answer usefully): the run fails with this message. `refused` counts every refused conversion of the run so far;
    `paid` those of this batch an earlier attempt paid for (the credit)."""

    def __init__(self, refused: int, paid: int, cause: Exception) -> None:
        conversions = f"{refused:,} conversion{'' if refused == 1 else 's'}"
        super().__init__(
            f"The platform refused the charge for {conversions} Snap accepted ({error_named(cause)}); they are not "
            "charged; nothing more was sent",
            status=getattr(cause, "status_code", None),
        )
        self.refused = refused
        self.paid = paid


class Billing:
    """Reservations against the budget, and charges for what Snap accepted.

    `prepaid` covers conversions an earlier attempt of the run charged for but did not get to record (it died
    between the charge and its checkpoint, or before its first checkpoint). Snap deduplicates their resend by
    `event_id`; here they are marked paid instead of being charged a second time.
    """

    def __init__(
        self, *, limit: LimitFn, charge: ChargeFn | None, prepaid: int = 0, attempt: str = "", run_id: str = "local"
    ) -> None:
        """`run_id` and `attempt` make the charges' idempotency keys (see `settle`)."""
        self._limit = limit
        self._attempt = attempt
        self._run_id = run_id
        self._charge = charge
        self._prepaid = prepaid
        self._reserved = 0
        self._refused = 0
        # One charge at a time: while the SDK records a charge, a reservation must not count it twice.
        self._lock = asyncio.Lock()

    @classmethod
    def free(cls) -> Billing:
        """For demo runs and every task that sends nothing live."""
        return cls(limit=lambda: None, charge=None)

    @classmethod
    def for_actor(
        cls,
        manager: ChargingManager,
        charge: ChargeFn,
        *,
        run_id: str,
        recorded_charges: int = 0,
        log: LogFn = print,
    ) -> Billing:
        """Charges through the platform (`main.py` passes its charging manager and charge function).

        `recorded_charges` is how many conversions this run's checkpoint says were charged (0 without one: a run's
        count at its start can only come from its own earlier attempts, and one killed before its first checkpoint
        was charged all the same). The platform's own count beyond that was paid by an earlier attempt and not
        recorded. That credit may go to any batch of this attempt (see `settle`), because this attempt's charge keys
        never repeat an earlier attempt's: the platform's count at the start is part of each key, so no resent batch
        is silently deduplicated by the platform on top of the credit.
        """
        charged_before = manager.get_charged_event_count(CONVERSION_EVENT)
        prepaid = max(0, charged_before - recorded_charges)
        if prepaid:
            log(f"{prepaid} conversions were charged by an earlier attempt and are not charged again.")
        return cls(
            limit=lambda: manager.calculate_max_event_charge_count_within_limit(CONVERSION_EVENT),
            charge=charge,
            prepaid=prepaid,
            attempt=f"c{charged_before}",
            run_id=run_id,
        )

    async def reserve(self, wanted: int) -> int:
        """How many of `wanted` conversions may be sent now without outrunning the budget."""
        if self._charge is None:
            return wanted
        async with self._lock:
            limit = self._limit()
            allowed = wanted if limit is None else max(0, min(wanted, limit + self._prepaid - self._reserved))
            self._reserved += allowed
            return allowed

    async def settle(self, reserved: int, outcomes: Sequence[Outcome], batch: str) -> int:
        """Charge for the accepted events of a reservation; returns how many of them are paid for.

        The charge's idempotency key is `{run id}:{batch}:{attempt}` (on the platform the attempt is the run's charged
        count at its start): a charge the SDK repeats is counted once, and a batch a resumed attempt sends again is
        not silently deduplicated on top of its credit. A charge
        the platform does not take raises `ChargeRefusedError`, saying how many of them are paid for all the same."""
        if self._charge is None:
            return 0
        accepted = billable_count(outcomes)
        async with self._lock:
            try:
                prepaid = min(self._prepaid, accepted)
                self._prepaid -= prepaid
                key = f"{self._run_id}:{batch}" + (f":{self._attempt}" if self._attempt else "")
                try:
                    charged = await self._charge(accepted - prepaid, key) if accepted > prepaid else 0
                except Exception as error:
                    self._refused += accepted - prepaid
                    raise ChargeRefusedError(self._refused, prepaid, error) from error
            finally:
                self._reserved -= reserved
        return prepaid + charged
