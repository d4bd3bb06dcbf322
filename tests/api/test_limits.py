"""Kraken's rate limits, on a clock the test moves: the REST call counter per key and the
trading counter per account and pair, with the costs of the reference's tables."""

from __future__ import annotations

import pytest

from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.limits import API_LIMITED, ORDER_LIMITED, RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(tier: str = "pro") -> tuple[RateLimits, Clock]:
    clock = Clock()
    return RateLimits(lambda account: tier, clock), clock


def refused(fn: object, *args: object) -> str:
    with pytest.raises(KrakenError) as err:
        fn(*args)  # type: ignore[operator]
    return err.value.errors[0]


@pytest.mark.parametrize(("tier", "most"), [("starter", 15), ("intermediate", 20), ("pro", 20)])
def test_rest_calls_up_to_the_tiers_counter_then_refused(tier: str, most: int) -> None:
    rl, _ = limits(tier)
    for _ in range(most):
        rl.call("k", 1, "Balance")
    assert refused(rl.call, "k", 1, "Balance") == API_LIMITED
    rl.call("other-key", 1, "Balance")  # per key


def test_the_rest_counter_decays_and_history_calls_cost_two() -> None:
    rl, clock = limits("pro")  # 20, -1/s
    for _ in range(10):
        rl.call("k", 1, "Ledgers")
    assert refused(rl.call, "k", 1, "Balance") == API_LIMITED
    clock.now += 1.0
    rl.call("k", 1, "Balance")
    assert refused(rl.call, "k", 1, "TradesHistory") == API_LIMITED  # needs 2
    clock.now += 2.0
    rl.call("k", 1, "TradesHistory")


def test_unlimited_is_never_refused() -> None:
    rl, _ = limits("unlimited")
    for _ in range(10_000):
        rl.call("k", 1, "Ledgers")
        rl.add(1, 0)


def test_orders_count_per_pair_up_to_the_threshold() -> None:
    rl, clock = limits("starter")  # 60, -1/s
    for _ in range(60):
        rl.add(1, 0)
    assert refused(rl.add, 1, 0) == ORDER_LIMITED
    rl.add(1, 1)  # another pair
    rl.add(2, 0)  # another account
    clock.now += 1.0
    rl.add(1, 0)


def test_a_batch_costs_half_an_order_each() -> None:
    rl, _ = limits("starter")
    rl.add(1, 0, orders=15)  # 7.5
    rl.add(1, 0, orders=15)
    for _ in range(45):
        rl.add(1, 0)
    assert refused(rl.add, 1, 0) == ORDER_LIMITED  # 15 + 45 = 60


@pytest.mark.parametrize(("age", "cost"), [(0, 8), (7, 6), (12, 5), (30, 4), (60, 2), (200, 1)])
def test_a_cancel_costs_more_the_younger_the_order(age: float, cost: int) -> None:
    rl, clock = limits("starter")
    rl.placed(99, 0)
    clock.now += age
    rl.cancel(1, [99])
    for _ in range(60 - cost):
        rl.add(1, 0)
    assert refused(rl.add, 1, 0) == ORDER_LIMITED


def test_old_or_unknown_orders_cancel_for_free() -> None:
    rl, clock = limits("starter")
    rl.placed(1, 0)
    clock.now += 301
    rl.placed(2, 0)  # forgets order 1, too old to cost anything
    rl.cancel(1, [1, 12345])
    for _ in range(60):
        rl.add(1, 0)


def test_amends_cost_one_plus_the_young_orders_extra_and_restart_its_age() -> None:
    rl, clock = limits("starter")
    rl.placed(7, 0)
    rl.amend(1, 7, 0)  # 1 + 3
    clock.now += 4.0  # decays 4: back to 0; the amend made the order 4 s old, not 4 s
    rl.amend(1, 7, 0)  # 1 + 3 again
    rl.amend(1, 7, 0, edit=True)  # 1 + 6
    for _ in range(60 - 4 - 7):
        rl.add(1, 0)
    assert refused(rl.add, 1, 0) == ORDER_LIMITED
