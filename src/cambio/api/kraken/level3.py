"""The WebSocket v2 ``level3`` channel: the book order by order, in queue priority.

A subscriber gets a snapshot of the best `depth` levels (10, 100 or 1000) with every
resting order, then after each batch that may have moved the book, per-order events:
``add`` (append to the back of its level), ``modify`` (new visible quantity, same place)
and ``delete``. Each message carries the level3 checksum of the top 10 levels, which
covers queue order as well as quantities.

Kraken's rules for depth: the client truncates its book to its depth after each message,
so levels pushed out by better ones are not deleted; a level that enters the window
(because one above it emptied) is published whole. An order whose place in the queue
changed (an iceberg's refreshed slice goes to the back) is deleted and added again, since
``add`` always appends; the orders that kept their place are left alone.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from cambio.api.kraken.wsformat import number, order_checksum, timestamp
from cambio.model.config import MarketConfig, PairSpec
from cambio.model.ids import format_id
from cambio.runtime.host import EngineHost

DEPTHS = (10, 100, 1000)
# [price, [[order id, visible qty, opened ts], ...]] best first, as the engine's `orders`
# query answers
Level = list[Any]
Change = tuple[str, int, list[int]]  # (event, price, [order id, qty, ts])


class Level3:
    def __init__(self, config: MarketConfig, host: Callable[[], EngineHost]) -> None:
        self.config = config
        self.host = host
        self.subscribers: dict[int, dict[Any, int]] = defaultdict(dict)  # pair -> sub -> depth
        self.last: dict[int, dict[str, list[Level]]] = {}  # pair -> book at the deepest depth

    def subscribe(self, sub: Any, p: PairSpec, depth: int) -> dict[str, Any]:
        """Register `sub` and return its snapshot entry."""
        subs = self.subscribers[p.index]
        subs[sub] = depth
        # re-read at the deepest depth anyone needs: the book is current between batches,
        # so the older subscribers' windows stay exact prefixes of it
        book = self.host().query("orders", p.id, max(subs.values()))
        self.last[p.index] = book
        bids, asks = book["bids"][:depth], book["asks"][:depth]
        return {
            "symbol": p.symbol,
            "bids": [self._order(p, price, o) for price, os in bids for o in os],
            "asks": [self._order(p, price, o) for price, os in asks for o in os],
            "checksum": order_checksum(asks, bids, p.pair_decimals, p.lot_decimals),
        }

    def unsubscribe(self, sub: Any, p: PairSpec) -> None:
        self.subscribers[p.index].pop(sub, None)

    def forget(self, sub: Any) -> None:
        for subs in self.subscribers.values():
            subs.pop(sub, None)

    def publish(self) -> None:
        """After a batch: tell every subscriber what changed in its window."""
        now = None
        for pair, subs in self.subscribers.items():
            if not subs:
                continue
            p = self.config.pairs[pair]
            new = self.host().query("orders", p.id, max(subs.values()))
            old = self.last.get(pair, {"bids": [], "asks": []})
            if new == old:
                continue
            self.last[pair] = new
            now = now or time.time_ns()
            check = order_checksum(new["asks"], new["bids"], p.pair_decimals, p.lot_decimals)
            for sub, depth in list(subs.items()):
                bids = changes(old["bids"], new["bids"], depth, bids=True)
                asks = changes(old["asks"], new["asks"], depth, bids=False)
                if not bids and not asks:
                    continue
                entry = {
                    "symbol": p.symbol,
                    "bids": [self._order(p, price, o, event) for event, price, o in bids],
                    "asks": [self._order(p, price, o, event) for event, price, o in asks],
                    "checksum": check,
                    "timestamp": timestamp(now),
                }
                sub.send({"channel": "level3", "type": "update", "data": [entry]})

    @staticmethod
    def _order(p: PairSpec, price: int, o: list[int], event: str | None = None) -> dict[str, Any]:
        order_id, qty, ts = o
        out: dict[str, Any] = {"event": event} if event else {}
        out |= {
            "order_id": format_id("O", order_id),
            "limit_price": number(price, p.pair_decimals),
            "order_qty": number(qty, p.lot_decimals),
            "timestamp": timestamp(ts),
        }
        return out


def changes(old: list[Level], new: list[Level], depth: int, bids: bool) -> list[Change]:
    """The events that turn a client's window (`old`'s best `depth` levels) into `new`'s,
    given that the client appends adds to the back of their level and truncates to
    `depth` afterwards. Deletes come first, then modifies, then adds, so an order that
    moved to another price (an amended price) is never in two places at once."""
    old_top, new_top = old[:depth], new[:depth]
    old_at = {price: orders for price, orders in old_top}
    new_prices = {price for price, _ in new_top}
    full = len(new_top) == depth
    worst = new_top[-1][0] if new_top else 0
    deletes: list[Change] = []
    modifies: list[Change] = []
    adds: list[Change] = []
    for price, orders in old_top:
        if price in new_prices:
            continue
        truncated = full and (price < worst if bids else price > worst)
        if not truncated:  # gone from the book: the client would otherwise keep it
            deletes += [("delete", price, o) for o in orders]
    for price, after in new_top:
        before = old_at.get(price, [])
        # the longest front of the new queue that the old one holds in the same order
        # stays (modified if its quantity changed); the rest of the old queue is
        # deleted and the rest of the new one added behind it
        kept = 0
        for o in before:
            if kept < len(after) and o[0] == after[kept][0]:
                kept += 1
        stays = {o[0]: o for o in after[:kept]}
        deletes += [("delete", price, o) for o in before if o[0] not in stays]
        modifies += [("modify", price, stays[o[0]]) for o in before
                     if o[0] in stays and stays[o[0]][1] != o[1]]  # fmt: skip
        adds += [("add", price, o) for o in after[kept:]]
    return deletes + modifies + adds
