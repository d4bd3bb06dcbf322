"""Kraken's rate limits: the per-key REST call counter and the per-pair trading counter.

Both are leaky buckets that decay continuously (reference §2.4, §2.5). The limits an
account gets come from its tier (``starter``, ``intermediate``, ``pro``, as on Kraken,
or ``unlimited`` for the operator's own market makers and load tests). They live in the
gateway's memory, not in the engine: they shape who may submit, they are not state the
journal must reproduce, and a restart forgets them, as a restart of Kraken's gateway would.

Cancels and amends cost more the younger the order, to discourage quote flicker; the age
is known for orders placed through this gateway since it started (an order it has not
seen counts as old).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cambio.api.kraken.errors import KrakenError

API_LIMITED = "EAPI:Rate limit exceeded"
ORDER_LIMITED = "EOrder:Rate limit exceeded"


@dataclass(frozen=True)
class Tier:
    calls_max: float
    calls_decay: float  # per second
    orders_max: float
    orders_decay: float


TIERS: dict[str, Tier | None] = {
    "starter": Tier(15, 0.33, 60, 1.0),
    "intermediate": Tier(20, 0.5, 125, 2.34),
    "pro": Tier(20, 1.0, 180, 3.75),
    "unlimited": None,
}
DEFAULT_TIER = "pro"

# extra cost by order age: (younger than s, cost); older than the last bound costs nothing
AMEND_AGE = ((5, 3), (10, 2), (15, 1))
EDIT_AGE = ((5, 6), (10, 5), (15, 4), (45, 2), (90, 1))
CANCEL_AGE = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))
OLDEST_CHARGED_S = 300
HISTORY_CALLS = frozenset({"Ledgers", "QueryLedgers", "TradesHistory"})


class _Bucket:
    __slots__ = ("at", "level")

    def __init__(self, now: float) -> None:
        self.level = 0.0
        self.at = now

    def charge(self, cost: float, limit: float, decay: float, now: float) -> bool:
        self.level = max(0.0, self.level - decay * (now - self.at))
        self.at = now
        if self.level + cost > limit:
            return False
        self.level += cost
        return True


def _age_cost(table: tuple[tuple[int, int], ...], age: float) -> int:
    return next((cost for bound, cost in table if age < bound), 0)


class RateLimits:
    def __init__(
        self, tier_of: Callable[[int], str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tier_of = tier_of
        self.clock = clock
        self._calls: dict[str, _Bucket] = {}
        self._orders: dict[tuple[int, int], _Bucket] = {}
        self._placed: OrderedDict[int, tuple[float, int]] = OrderedDict()  # id: (time, pair)

    def _tier(self, account: int) -> Tier | None:
        return TIERS.get(self.tier_of(account), TIERS[DEFAULT_TIER])

    def call(self, api_key: str, account: int, method: str) -> None:
        """Charge one REST call (two for history calls) to the key's counter."""
        tier = self._tier(account)
        if tier is None:
            return
        now = self.clock()
        bucket = self._calls.setdefault(api_key, _Bucket(now))
        if not bucket.charge(
            2 if method in HISTORY_CALLS else 1, tier.calls_max, tier.calls_decay, now
        ):
            raise KrakenError(API_LIMITED)

    def _charge(self, account: int, pair: int, cost: float) -> None:
        tier = self._tier(account)
        if tier is None or cost <= 0:
            return
        now = self.clock()
        bucket = self._orders.setdefault((account, pair), _Bucket(now))
        if not bucket.charge(cost, tier.orders_max, tier.orders_decay, now):
            raise KrakenError(ORDER_LIMITED)

    def add(self, account: int, pair: int, orders: int = 1) -> None:
        """Charge new orders: +1 each, or +n/2 for a batch of n."""
        self._charge(account, pair, orders / 2 if orders > 1 else 1)

    def placed(self, order_id: int, pair: int) -> None:
        """Remember when an order was placed, so cancelling it young costs more."""
        now = self.clock()
        self._placed[order_id] = (now, pair)
        self._placed.move_to_end(order_id)
        while self._placed:
            oldest = next(iter(self._placed.values()))[0]
            if now - oldest < OLDEST_CHARGED_S:
                break
            self._placed.popitem(last=False)

    def cancel(self, account: int, order_ids: list[int]) -> None:
        """Charge cancelling these orders, by their age, to each one's pair."""
        now = self.clock()
        costs: dict[int, int] = {}
        for order_id in order_ids:
            seen = self._placed.get(order_id)
            if seen is not None:
                costs[seen[1]] = costs.get(seen[1], 0) + _age_cost(CANCEL_AGE, now - seen[0])
        for pair, cost in costs.items():
            self._charge(account, pair, cost)

    def amend(self, account: int, order_id: int, pair: int, edit: bool = False) -> None:
        """Charge an amend (or a legacy edit): +1 on the pair, more if the order is young."""
        seen = self._placed.get(order_id)
        age = OLDEST_CHARGED_S if seen is None else self.clock() - seen[0]
        self._charge(account, pair, 1 + _age_cost(EDIT_AGE if edit else AMEND_AGE, age))
        if seen is not None and not edit:  # an amend restarts the age; an edit ends the order
            self.placed(order_id, pair)
