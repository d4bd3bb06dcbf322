"""An order as the engine holds it, and the funds it must keep on hold."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from cambio.model.commands import BUY
from cambio.model.config import PPM

OPEN = "open"
PENDING = "pending"  # a trigger order waiting for its trigger

# Trigger directions: fire when the last price rises to the trigger, or falls to it
TRIGGER_NONE = 0
TRIGGER_UP = 1
TRIGGER_DOWN = 2


class Order(msgspec.Struct, gc=False):
    """A live order. Quantities in lots, prices in price units, hold in asset units.

    The hot path builds orders positionally (much cheaper than keywords): keep the field
    order of the first block stable."""

    order_id: int
    account: int
    pair: int
    side: int
    ordertype: str
    price: int  # limit price while in the book (for market orders: the protection limit)
    qty: int  # remaining
    orig_qty: int
    tif: str
    stp: str
    opened_ts: int
    fee_in_base: bool
    post_only: bool
    userref: int | None
    cl_ord_id: str | None
    expire_ts: int = 0
    filled: int = 0
    display: int = 0  # iceberg display size; 0: not an iceberg
    shown: int = 0  # iceberg: visible part still in the book
    hold: int = 0  # funds still held for this order
    status: str = OPEN
    budget: bool = False  # market buy by quote budget: `hold` is the budget left
    # trigger orders (stop-loss, take-profit, trailing)
    trigger: int = 0  # trigger price
    trigger_dir: int = TRIGGER_NONE
    limit: int = 0  # limit price after triggering (*-limit types), 0: market
    trail: int = 0  # trailing offset (price units, or ppm when trail_pct)
    trail_pct: bool = False
    limit_offset: int = 0  # trailing-stop-limit: signed offset of the limit from trigger
    limit_offset_pct: bool = False
    extreme: int = 0  # trailing: best price seen since placement (peak/trough)
    amends: int = 0


def hold_needed(
    side: int,
    fee_in_base: bool,
    price: int,
    qty: int,
    base_per_lot: int,
    quote_per_pq: int,
    max_fee_ppm: int,
) -> int:
    """Funds to hold so that `qty` lots at up to `price` can be paid, fee included.

    Fees are rounded down, which makes this superadditive in qty: what a partial fill
    releases plus what the remainder needs never exceeds what was held.
    """
    if side == BUY:
        cost = price * qty * quote_per_pq
        return cost if fee_in_base else cost + cost * max_fee_ppm // PPM
    base = qty * base_per_lot
    return base + base * max_fee_ppm // PPM if fee_in_base else base


class OrderIndex:
    """Open and pending orders by id, sharded by id range.

    A plain dict of a million live orders stalls the engine for ~300 ms each time it
    resizes; ids are assigned in sequence, so shards of 16,384 consecutive ids keep every
    resize small, and shards of old ids disappear once their orders are gone."""

    __slots__ = ("_n", "_shards")

    def __init__(self) -> None:
        self._shards: dict[int, dict[int, Order]] = {}
        self._n = 0

    def get(self, order_id: int) -> Order | None:
        shard = self._shards.get(order_id >> 14)
        return shard.get(order_id) if shard is not None else None

    def __getitem__(self, order_id: int) -> Order:
        o = self.get(order_id)
        if o is None:
            raise KeyError(order_id)
        return o

    def __setitem__(self, order_id: int, o: Order) -> None:
        key = order_id >> 14
        shard = self._shards.get(key)
        if shard is None:
            shard = self._shards[key] = {}
        if order_id not in shard:
            self._n += 1
        shard[order_id] = o

    def pop(self, order_id: int) -> Order | None:
        """Remove and return the order (None if absent)."""
        key = order_id >> 14
        shard = self._shards.get(key)
        if shard is None:
            return None
        o = shard.pop(order_id, None)
        if o is not None:
            self._n -= 1
            if not shard:
                del self._shards[key]
        return o

    def __contains__(self, order_id: int) -> bool:
        return self.get(order_id) is not None

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[int]:
        """Order ids in ascending order."""
        for key in sorted(self._shards):
            yield from sorted(self._shards[key])
