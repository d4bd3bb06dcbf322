"""One market's order book: price levels in time priority, best prices by lazy heaps.

Each side is a dict price -> Level (a deque of orders in time priority with a count of
live ones) and a binary heap of its prices (bids negated). Cancel is O(1): the order is
marked dead (qty 0) and skipped later; a level with too many dead entries is compacted.
The heap top is always a live level, restored eagerly when the top level empties.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush
from typing import Any

from cambio.engine.order import Order
from cambio.model.commands import BUY


class Level(deque[Order]):
    """Orders resting at one price, oldest first; dead ones (qty 0) are skipped lazily."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        super().__init__()
        self.n = 0


class Book:
    """Resting orders of one market."""

    __slots__ = ("ask_heap", "ask_inheap", "asks", "bid_heap", "bid_inheap", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.bid_heap: list[int] = []  # negated prices
        self.ask_heap: list[int] = []
        self.bid_inheap: set[int] = set()
        self.ask_inheap: set[int] = set()

    def best_bid(self) -> int:
        """Highest bid price, or 0 when there are no bids."""
        h = self.bid_heap
        return -h[0] if h else 0

    def best_ask(self) -> int:
        """Lowest ask price, or 0 when there are no asks."""
        h = self.ask_heap
        return h[0] if h else 0

    def rest(self, o: Order) -> None:
        """Append `o` at the back of its price level."""
        price = o.price
        if o.side == BUY:
            lvl = self.bids.get(price)
            if lvl is None:
                lvl = self.bids[price] = Level()
                if -price not in self.bid_inheap:
                    self.bid_inheap.add(-price)
                    heappush(self.bid_heap, -price)
        else:
            lvl = self.asks.get(price)
            if lvl is None:
                lvl = self.asks[price] = Level()
                if price not in self.ask_inheap:
                    self.ask_inheap.add(price)
                    heappush(self.ask_heap, price)
        lvl.n += 1
        lvl.append(o)

    def remove(self, o: Order) -> None:
        """Take a resting order out (it must be live and its qty not yet zeroed)."""
        o.qty = 0
        price = o.price
        if o.side == BUY:
            lvl = self.bids[price]
            lvl.n -= 1
            if lvl.n == 0:
                del self.bids[price]
                self._clean_bid_top()
            elif len(lvl) > 2 * lvl.n + 16:
                self._compact(lvl)
        else:
            lvl = self.asks[price]
            lvl.n -= 1
            if lvl.n == 0:
                del self.asks[price]
                self._clean_ask_top()
            elif len(lvl) > 2 * lvl.n + 16:
                self._compact(lvl)

    @staticmethod
    def _compact(lvl: Level) -> None:
        live = [x for x in lvl if x.qty]
        lvl.clear()
        lvl.extend(live)

    def _clean_bid_top(self) -> None:
        heap, bids, inh = self.bid_heap, self.bids, self.bid_inheap
        while heap and -heap[0] not in bids:
            inh.discard(heappop(heap))

    def _clean_ask_top(self) -> None:
        heap, asks, inh = self.ask_heap, self.asks, self.ask_inheap
        while heap and heap[0] not in asks:
            inh.discard(heappop(heap))

    def drop_level(self, side: int, price: int) -> None:
        """Forget an emptied level (called by matching when its last order fills)."""
        if side == BUY:
            del self.bids[price]
            self._clean_bid_top()
        else:
            del self.asks[price]
            self._clean_ask_top()

    def levels(self, side: int, count: int | None = None) -> list[tuple[int, list[Order]]]:
        """One side best-first, the best `count` levels (all by default):
        [(price, live orders in time priority)]."""
        side_levels = self.bids if side == BUY else self.asks
        prices = sorted(side_levels, reverse=side == BUY)[:count]
        return [(p, [o for o in side_levels[p] if o.qty]) for p in prices]

    def fillable(self, side: int, limit: int, account: int, stop_at_own: bool, need: int) -> bool:
        """Whether a taker of `account` could fill `need` lots against `side` up to `limit`
        (fill-or-kill). Walks each level exactly as matching would: an iceberg offers its
        visible slice, then its next slice joins the back of the level; an order of the
        taker's own account ends the fill (`stop_at_own`) or is skipped (cancel-oldest)."""
        got = 0
        for price, orders in self.levels(side):
            if (side == BUY and price < limit) or (side != BUY and price > limit):
                break
            queue = deque(
                (o.account, o.shown if o.display else o.qty, o.qty, o.display) for o in orders
            )
            while queue:
                acct, shown, rem, display = queue.popleft()
                if acct == account:
                    if stop_at_own:
                        return False
                    continue
                got += shown
                if got >= need:
                    return True
                if rem > shown:
                    queue.append((acct, min(display, rem - shown), rem - shown, display))
        return False

    def depth(self) -> dict[str, Any]:
        """Public depth: {"bids": [[p, q]], "asks": [[p, q]]}, best first. Only what is
        visible counts: an iceberg shows its current slice, never its hidden size."""
        return {
            "bids": [[p, sum(_visible(o) for o in os)] for p, os in self.levels(BUY)],
            "asks": [[p, sum(_visible(o) for o in os)] for p, os in self.levels(1 - BUY)],
        }


def _visible(o: Order) -> int:
    return o.shown if o.display else o.qty
