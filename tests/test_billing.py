"""The budget and the charges, in process: reservations under concurrency, and resumed runs' credit."""

from __future__ import annotations

import asyncio

from src.billing import Billing
from src.conversion import PreparedEvent
from src.delivery import Outcome


def sent(n: int) -> list[Outcome]:
    event = PreparedEvent(0, "px", {}, "id", "PURCHASE", "WEB", ())
    return [Outcome(event, "sent")] * n


class Budget:
    """A stand-in for the SDK's charging manager: `left` conversions can still be paid for."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.calls: list[tuple[int, str]] = []

    def limit(self) -> int:
        return self.left

    async def charge(self, count: int, key: str) -> int:
        await asyncio.sleep(0)  # the SDK awaits while it records the charge
        paid = min(count, self.left)
        self.left -= paid
        await asyncio.sleep(0)
        self.calls.append((paid, key))
        return paid


def test_concurrent_batches_never_reserve_more_than_the_budget_nor_less() -> None:
    async def scenario() -> tuple[list[int], int]:
        budget = Budget(5)
        billing = Billing(limit=budget.limit, charge=budget.charge)
        first = await billing.reserve(3)
        settling = asyncio.create_task(billing.settle(first, sent(3), "a"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the SDK has counted the charge but not returned yet
        second = await billing.reserve(3)  # waits for the charge in progress, then sees 2 left
        await settling
        paid = await billing.settle(second, sent(second), "b")
        return [first, second], paid

    reserved, paid = asyncio.run(scenario())
    assert reserved == [3, 2]
    assert paid == 2


def test_conversions_paid_by_an_earlier_attempt_are_not_charged_again() -> None:
    async def scenario() -> tuple[int, int, list[tuple[int, str]]]:
        budget = Budget(100)
        billing = Billing(limit=budget.limit, charge=budget.charge, prepaid=3)
        reserved = await billing.reserve(5)
        paid = await billing.settle(reserved, sent(5), "resent-batch")
        return reserved, paid, budget.calls

    reserved, paid, calls = asyncio.run(scenario())
    assert reserved == 5
    assert paid == 5  # all five are paid for ...
    assert calls == [(2, "resent-batch")]  # ... but only two are charged now


def test_free_billing_never_charges() -> None:
    async def scenario() -> tuple[int, int]:
        billing = Billing.free()
        reserved = await billing.reserve(7)
        return reserved, await billing.settle(reserved, sent(7), "k")

    assert asyncio.run(scenario()) == (7, 0)
