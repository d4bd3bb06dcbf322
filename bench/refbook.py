"""A small, bare price-time-priority order book: the bench's independent referee.

It exists so that the benchmark's workload generator (``bench/workload.py``) and its fill
check do not depend on the cambio engine they measure: the expected fills of a stream come
from this book, written separately and kept deliberately plain (no accounts, no fees, no
events, no cleverness).  Correctness over speed.

Design
------
* An order is an :class:`Order` (``oid``, ``side``, ``price``, ``qty`` = remaining lots).
* Each side maps ``price -> level``; a level is an ``OrderedDict`` ``oid -> Order`` in time
  priority, so the head is ``next(iter(level))`` and cancel is an O(1) ``del``.
* Each side also keeps a sorted list of *keys* with the best price last (bids: the price,
  asks: the negated price), maintained with ``bisect``; an emptied best level is a ``pop()``.

Command rows are 5 ints ``(op, oid, side, price, qty)``::

    op 0  GTC limit       rests what does not match
    op 1  cancel oid      (side, price, qty ignored)
    op 2  IOC limit       the unmatched remainder is dropped
    op 3  market          IOC without a price limit (price ignored)
    op 4  amend oid to (price, qty = new remaining lots): same price and qty <= remaining
          reduces in place and keeps priority; anything else is cancel + re-enter as a
          GTC limit with the same oid (loses priority, may match)

side 0 = buy, 1 = sell.  Fills are ``(maker_oid, taker_oid, price, qty)`` tuples.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict

BUY = 0
SELL = 1

Row = tuple[int, int, int, int, int]
Fill = tuple[int, int, int, int]


class Order:
    __slots__ = ("oid", "price", "qty", "side")

    def __init__(self, oid: int, side: int, price: int, qty: int) -> None:
        self.oid = oid
        self.side = side
        self.price = price
        self.qty = qty


class RefBook:
    """One market's book. ``fills`` accumulates every fill in order (clear it at will)."""

    def __init__(self) -> None:
        self.levels: tuple[dict[int, OrderedDict[int, Order]], ...] = ({}, {})
        self.keys: tuple[list[int], ...] = ([], [])  # best last; asks negated
        self.orders: dict[int, Order] = {}
        self.fills: list[Fill] = []

    # ------------------------------------------------------------------ queries
    def best_bid(self) -> int:
        k = self.keys[BUY]
        return k[-1] if k else -1

    def best_ask(self) -> int:
        k = self.keys[SELL]
        return -k[-1] if k else -1

    def summary(self) -> dict[str, int]:
        """Final-book figures, as the workload's expected results name them."""
        bids, asks = self.levels
        return {
            "resting_orders": len(self.orders),
            "bid_levels": len(bids),
            "ask_levels": len(asks),
            "bid_qty": sum(o.qty for lv in bids.values() for o in lv.values()),
            "ask_qty": sum(o.qty for lv in asks.values() for o in lv.values()),
            "best_bid": self.best_bid(),
            "best_ask": self.best_ask(),
        }

    # ------------------------------------------------------------------ internals
    def _match(self, taker: int, side: int, limit: int | None, qty: int) -> int:
        """Take liquidity for an incoming order; return the unmatched quantity."""
        opp = 1 - side
        keys = self.keys[opp]
        levels = self.levels[opp]
        orders = self.orders
        fills = self.fills
        while qty and keys:
            price = keys[-1] if opp == BUY else -keys[-1]
            if limit is not None and (price > limit if side == BUY else price < limit):
                break
            level = levels[price]
            while qty and level:
                maker = next(iter(level.values()))
                n = min(qty, maker.qty)
                fills.append((maker.oid, taker, price, n))
                maker.qty -= n
                qty -= n
                if maker.qty == 0:
                    del level[maker.oid]
                    del orders[maker.oid]
            if not level:
                del levels[price]
                keys.pop()
        return qty

    def _rest(self, oid: int, side: int, price: int, qty: int) -> None:
        levels = self.levels[side]
        level = levels.get(price)
        if level is None:
            level = levels[price] = OrderedDict()
            insort(self.keys[side], price if side == BUY else -price)
        order = Order(oid, side, price, qty)
        level[oid] = order
        self.orders[oid] = order

    # ------------------------------------------------------------------ commands
    def limit(self, oid: int, side: int, price: int, qty: int) -> None:
        qty = self._match(oid, side, price, qty)
        if qty:
            self._rest(oid, side, price, qty)

    def ioc(self, oid: int, side: int, price: int, qty: int) -> None:
        self._match(oid, side, price, qty)

    def market(self, oid: int, side: int, qty: int) -> None:
        self._match(oid, side, None, qty)

    def cancel(self, oid: int) -> bool:
        order = self.orders.pop(oid, None)
        if order is None:
            return False
        levels = self.levels[order.side]
        level = levels[order.price]
        del level[oid]
        if not level:
            del levels[order.price]
            keys = self.keys[order.side]
            del keys[bisect_left(keys, order.price if order.side == BUY else -order.price)]
        return True

    def amend(self, oid: int, price: int, qty: int) -> bool:
        order = self.orders.get(oid)
        if order is None:
            return False
        if price == order.price and qty <= order.qty:
            order.qty = qty
            return True
        side = order.side
        self.cancel(oid)
        self.limit(oid, side, price, qty)
        return True

    def apply(self, row: Row) -> None:
        op, oid, side, price, qty = row
        if op == 0:
            self.limit(oid, side, price, qty)
        elif op == 1:
            self.cancel(oid)
        elif op == 2:
            self.ioc(oid, side, price, qty)
        elif op == 3:
            self.market(oid, side, qty)
        elif op == 4:
            self.amend(oid, price, qty)
        else:
            raise ValueError(f"unknown op {op} in row {row}")
