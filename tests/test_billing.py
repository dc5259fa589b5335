"""The budget and the charges, in process: reservations under concurrency, and resumed runs' credit."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from src.billing import Billing, ChargeRefusedError, charged_flags
from src.events.build import PreparedEvent
from src.results.rows import Outcome


def sent(n: int) -> list[Outcome]:
    event = PreparedEvent(0, "px", b"{}", "id", "PURCHASE", "WEB", ())
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
    assert calls == [(2, "local:resent-batch")]  # ... but only two are charged now


def test_free_billing_never_charges() -> None:
    async def scenario() -> tuple[int, int]:
        billing = Billing.free()
        reserved = await billing.reserve(7)
        return reserved, await billing.settle(reserved, sent(7), "k")

    assert asyncio.run(scenario()) == (7, 0)


class Platform:
    """The platform's side of charging: a charge with an idempotency key it has seen is not counted again.
    Also the SDK's charging manager (`get_charged_event_count`, the budget), as `Billing.for_actor` reads it."""

    def __init__(self, charged: int = 0, budget: int | None = None) -> None:
        self.charged = charged
        self.budget = budget
        self.keys: set[str] = set()

    def get_charged_event_count(self, event_name: str) -> int:
        assert event_name == "conversion-sent"
        return self.charged

    def calculate_max_event_charge_count_within_limit(self, event_name: str) -> int | None:
        return None if self.budget is None else self.budget - self.charged

    async def charge(self, count: int, key: str) -> int:
        await asyncio.sleep(0)
        if key not in self.keys:
            self.keys.add(key)
            self.charged += count
        await asyncio.sleep(0)
        return count  # the SDK reports the count whether or not the platform deduplicated the key


def test_for_actor_reads_the_charging_manager_and_credits_what_an_earlier_attempt_charged() -> None:
    logged: list[str] = []

    async def scenario() -> tuple[int, int, list[str]]:
        platform = Platform(charged=130, budget=200)
        billing = Billing.for_actor(platform, platform.charge, run_id="run", recorded_charges=100, log=logged.append)
        reserved = await billing.reserve(500)  # 70 left in the budget, plus the 30 already paid for
        paid = await billing.settle(reserved, sent(reserved), "px:0-99")
        return reserved, paid, sorted(platform.keys)

    reserved, paid, keys = asyncio.run(scenario())
    assert reserved == 100 and paid == 100
    assert logged == ["30 conversions were charged by an earlier attempt and are not charged again."]
    assert keys == ["run:px:0-99:c130"]  # this attempt's key: never one an earlier attempt used

    fresh = Billing.for_actor(Platform(), Platform().charge, run_id="run", log=logged.append)
    assert asyncio.run(fresh.reserve(7)) == 7 and len(logged) == 1  # nothing counted before: no credit


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("same_boundaries", [True, False])
def test_no_interleaving_leaves_a_resumed_batch_unbilled(order: tuple[int, ...], same_boundaries: bool) -> None:
    """Attempt 1 charged batches 0-99 (checkpointed) and 100-199 (not: it died before its checkpoint). Attempt 2
    resends 100-199 (Snap deduplicates it by event_id) and sends 200-299 and 300-349. Whatever order the three
    settle in, the platform ends up charging each of the 350 conversions exactly once, and every row is paid."""

    async def scenario() -> tuple[int, list[int]]:
        platform = Platform()
        await platform.charge(100, "run:px:0-99")
        await platform.charge(100, "run:px:100-199")
        billing = Billing.for_actor(platform, platform.charge, run_id="run", recorded_charges=100, log=lambda _: None)
        resent = "px:100-199" if same_boundaries else "px:100-150"
        batches = [(resent, 100), ("px:200-299", 100), ("px:300-349", 50)]
        reserved = [await billing.reserve(n) for _, n in batches]
        paid = [0, 0, 0]

        async def settle(i: int, delay: int) -> None:
            for _ in range(delay):
                await asyncio.sleep(0)
            paid[i] = await billing.settle(reserved[i], sent(batches[i][1]), batches[i][0])

        await asyncio.gather(*(settle(i, 3 * position) for position, i in enumerate(order)))
        return platform.charged, paid

    charged, paid = asyncio.run(scenario())
    assert charged == 350
    assert paid == [100, 100, 50]


def test_reservations_in_flight_count_against_the_budget() -> None:
    async def scenario() -> list[int]:
        budget = Budget(10)
        billing = Billing(limit=budget.limit, charge=budget.charge)
        first = await billing.reserve(6)  # sending, not yet charged
        second = await billing.reserve(6)  # only 4 are left once the first batch is paid for
        third = await billing.reserve(1)  # nothing left while both are in flight
        await billing.settle(first, sent(first), "a")
        fourth = await billing.reserve(5)  # the first batch is charged: 10 - 6 - 4 in flight = 0
        await billing.settle(second, sent(1), "b")  # three of the second batch were not accepted: free again
        fifth = await billing.reserve(5)
        return [first, second, third, fourth, fifth]

    assert asyncio.run(scenario()) == [6, 4, 0, 0, 3]


def test_an_exhausted_budget_allows_nothing() -> None:
    async def scenario() -> tuple[int, int, list[tuple[int, str]]]:
        budget = Budget(0)
        billing = Billing(limit=budget.limit, charge=budget.charge)
        reserved = await billing.reserve(5)
        return reserved, await billing.settle(reserved, sent(reserved), "k"), budget.calls

    assert asyncio.run(scenario()) == (0, 0, [])


def test_without_a_charge_function_nothing_is_charged_nor_limited() -> None:
    billing = Billing(limit=lambda: 2, charge=None)  # a budget, but a run that charges nothing
    assert asyncio.run(billing.reserve(5)) == 5
    assert asyncio.run(billing.reserve(5)) == 5


def test_without_a_checkpoint_what_the_platform_counted_is_an_earlier_attempts_credit() -> None:
    """A run's count at its start can only come from its own earlier attempts: one killed before its first checkpoint
    was charged all the same, so its resent events are paid out of the credit (the platform may have forgotten that
    attempt's idempotency keys by a resurrection days later). Every attempt's keys carry the count it started from."""

    async def scenario(recorded: int | None) -> tuple[int, int, list[str], list[str]]:
        platform = Platform(charged=4, budget=100)
        logged: list[str] = []
        if recorded is None:  # no checkpoint: nothing to pass
            billing = Billing.for_actor(platform, platform.charge, run_id="run", log=logged.append)
        else:
            billing = Billing.for_actor(
                platform, platform.charge, run_id="run", recorded_charges=recorded, log=logged.append
            )
        reserved = await billing.reserve(7)
        paid = await billing.settle(reserved, sent(reserved), "px:0-6")
        return paid, platform.charged, sorted(platform.keys), logged

    credit = ["4 conversions were charged by an earlier attempt and are not charged again."]
    # no checkpoint: the 4 the platform counted are paid for; 3 charged now, under this attempt's key
    assert asyncio.run(scenario(None)) == (7, 7, ["run:px:0-6:c4"], credit)
    # a checkpoint that recorded every charge: no credit, and this attempt's key
    assert asyncio.run(scenario(4)) == (7, 11, ["run:px:0-6:c4"], [])

    async def first_attempt() -> tuple[int, Platform]:
        platform = Platform(budget=100)
        billing = Billing.for_actor(platform, platform.charge, run_id="run", log=credit.append)
        return await billing.settle(await billing.reserve(7), sent(7), "px:0-6"), platform

    paid, platform = asyncio.run(first_attempt())  # nothing counted: no credit; its keys carry the count too
    assert paid == 7 and platform.keys == {"run:px:0-6:c0"} and platform.charged == 7 and len(credit) == 1


def test_the_first_accepted_events_of_a_batch_are_the_ones_billed() -> None:
    statuses = ["invalid", "sent", "failed", "sent", "sent", "skipped", "sent"]
    outcomes = [sent(1)[0]._replace(status=status) for status in statuses]  # type: ignore[arg-type]
    assert charged_flags(outcomes, 4) == [False, True, False, True, True, False, True]
    assert charged_flags(outcomes, 2) == [False, True, False, True, False, False, False]  # the budget ran out
    assert charged_flags(outcomes, 0) == [False] * 7


def test_a_charge_the_platform_refuses_raises_naming_every_refused_conversion_and_what_was_paid() -> None:
    """The platform refuses two batches' charges (an error whose text carries a token): each raise counts every
    conversion refused so far, and says how many of its batch the credit paid for; the token is never quoted."""

    async def refuse(count: int, key: str) -> int:
        raise RuntimeError(f"400 from https://api.example.com/v2/actor-runs/r/charge?token=apify-secret-1 ({key})")

    async def scenario() -> list[ChargeRefusedError]:
        billing = Billing(limit=lambda: None, charge=refuse, prepaid=2)
        refusals = []
        for batch, n in (("a", 5), ("b", 4)):
            with pytest.raises(ChargeRefusedError) as raised:
                await billing.settle(await billing.reserve(n), sent(n), batch)
            refusals.append(raised.value)
        assert await billing.reserve(3) == 3  # both reservations were let go
        return refusals

    first, second = asyncio.run(scenario())
    assert (first.refused, first.paid, second.refused, second.paid) == (3, 2, 7, 0)
    assert str(second).startswith("The platform refused the charge for 7 conversions Snap accepted (RuntimeError: 400")
    assert str(second).endswith("; they are not charged; nothing more was sent")
    assert "apify-secret-1" not in str(first) + str(second) and "token=***" in str(second)
    assert first.status is None  # no HTTP status to tell (the error carries none)
