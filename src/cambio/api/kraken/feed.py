"""The WebSocket v2 feed: what each batch of events means for each subscriber.

`Feed.on_batch` runs as a sequencer hook on the event loop, right after the engine has
applied a batch. It never waits: every message goes into the subscriber's bounded
outbox, and a subscriber whose outbox is full is disconnected (a slow consumer must never
slow the engine). Book updates are diffs of the visible book per subscribed depth, each
with the checksum of the new top 10 levels; trades, executions and balances come from the
batch's events.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from cambio.api.kraken.candles import Candles
from cambio.api.kraken.level3 import Level3
from cambio.api.kraken.tokens import Grant
from cambio.api.kraken.wsformat import checksum, number, timestamp
from cambio.model.commands import BUY, Command
from cambio.model.config import MarketConfig, PairSpec
from cambio.model.events import (
    Deposited,
    Event,
    GlobalModeChanged,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderTriggered,
    Trade,
    Transferred,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
)
from cambio.model.ids import format_id
from cambio.runtime.host import EngineHost

# the events after which the visible book may differ
BOOK_EVENTS = (OrderAccepted, OrderClosed, OrderAmended, OrderTriggered, Trade)
BACKLOG = 10_000  # messages a subscriber may fall behind before it is disconnected
MAX_DEPTH = 1000
_encoder = msgspec.json.Encoder()


class Subscriber:
    """One WebSocket connection's outbox and subscriptions."""

    def __init__(self, connection_id: int, backlog: int = BACKLOG) -> None:
        self.connection_id = connection_id
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue(backlog)
        self.closed = False
        self.token: str | None = None  # the token that first authorized this connection
        self.grant: Grant | None = None
        self.sequence = 0
        self.sender: asyncio.Task[None] | None = None  # writes the outbox to the socket

    def send(self, message: Any) -> None:
        if self.closed:
            return
        try:
            self.outbox.put_nowait(_encoder.encode(message))
        except asyncio.QueueFull:
            self.drop()

    def drop(self) -> None:
        """Disconnect: forget what was queued and stop the sender, which closes the socket.
        The sender is cancelled rather than left to find the end of the queue, because a
        peer that stopped reading keeps it stuck in a write forever."""
        if not self.closed:
            self.closed = True
            while not self.outbox.empty():
                self.outbox.get_nowait()
            self.outbox.put_nowait(None)
            if self.sender is not None and self.sender is not asyncio.current_task():
                self.sender.cancel()


Levels = list[list[int]]


class Feed:
    def __init__(self, config: MarketConfig, host: Callable[[], EngineHost]) -> None:
        self.config = config
        self.host = host
        self.by_symbol = {p.symbol: p for p in config.pairs}
        self.books: dict[int, dict[Subscriber, int]] = defaultdict(dict)  # pair -> depth
        self.trades: dict[int, set[Subscriber]] = defaultdict(set)
        self.tickers: dict[int, set[Subscriber]] = defaultdict(set)
        self.executions: dict[int, set[Subscriber]] = defaultdict(set)  # by account
        self.balances: dict[int, set[Subscriber]] = defaultdict(set)
        self.last_book: dict[int, tuple[Levels, Levels]] = {}
        self.status_subscribers: set[Subscriber] = set()
        self.candles = Candles()
        self.level3 = Level3(config, host)

    # ------------------------------------------------------------------ subscribing
    def forget(self, sub: Subscriber) -> None:
        for table in (self.books, self.trades, self.tickers, self.executions, self.balances):
            for subs in table.values():
                if isinstance(subs, dict):
                    subs.pop(sub, None)
                else:
                    subs.discard(sub)
        self.status_subscribers.discard(sub)
        self.candles.forget(sub)
        self.level3.forget(sub)

    def book_snapshot(self, p: PairSpec, depth: int) -> dict[str, Any]:
        book = self.host().query("depth", p.id, MAX_DEPTH)
        self.last_book[p.index] = (book["bids"], book["asks"])
        bids, asks = book["bids"][:depth], book["asks"][:depth]
        return {
            "symbol": p.symbol,
            "bids": self._levels(p, bids),
            "asks": self._levels(p, asks),
            "checksum": checksum(asks, bids, p.pair_decimals, p.lot_decimals),
        }

    def _levels(self, p: PairSpec, levels: Levels) -> list[dict[str, Any]]:
        return [
            {"price": number(price, p.pair_decimals), "qty": number(qty, p.lot_decimals)}
            for price, qty in levels
        ]

    def status(self) -> dict[str, Any]:
        mode = self.host().query("status")["global"]
        return {"system": "online" if mode == "limit_only" else mode, "api_version": "v2"}

    # ------------------------------------------------------------------ the hook
    def on_batch(self, cmds: list[Command], results: list[list[Event]]) -> None:
        now = time.time_ns()
        trades: dict[int, list[tuple[int, Trade]]] = defaultdict(list)  # (sequenced ts, trade)
        private: dict[int, list[dict[str, Any]]] = defaultdict(list)
        fills: dict[int, list[dict[str, Any]]] = defaultdict(list)
        moved: set[int] = set()
        book_may_change = mode_changed = False
        for cmd, events in zip(cmds, results, strict=True):
            for ev in events:
                kind = type(ev)
                book_may_change = book_may_change or kind in BOOK_EVENTS
                mode_changed = mode_changed or kind is GlobalModeChanged
                self._route(ev, cmd.ts, now, trades, private, fills, moved)
        if book_may_change:  # not for ticks, deposits, ...: no depth queries for nothing
            for pair, subs in self.books.items():
                if subs:
                    self._publish_book(self.config.pairs[pair], subs, now)
            self.level3.publish()
        for pair, timed in trades.items():
            self._publish_trades(self.config.pairs[pair], [t for _, t in timed], now)
            self.candles.on_trades(self.config.pairs[pair], timed, now)
        for account, entries in private.items():
            self._publish_private(self.executions.get(account, set()), "executions", entries)
        for account, entries in fills.items():
            self._publish_private(self.executions.get(account, set()), "executions", entries)
        for account in moved:
            if self.balances.get(account):
                self._publish_balances(account, now)
        if mode_changed and self.status_subscribers:
            msg = {"channel": "status", "type": "update", "data": [self.status()]}
            for sub in list(self.status_subscribers):
                sub.send(msg)

    def _route(
        self,
        ev: Event,
        ts: int,
        now: int,
        trades: dict[int, list[tuple[int, Trade]]],
        private: dict[int, list[dict[str, Any]]],
        fills: dict[int, list[dict[str, Any]]],
        moved: set[int],
    ) -> None:
        kind = type(ev)
        if kind is Trade:
            assert isinstance(ev, Trade)
            trades[ev.pair].append((ts, ev))
            moved.update((ev.maker_account, ev.taker_account))
            for account in (ev.maker_account, ev.taker_account):
                if self.executions.get(account):
                    fills[account].append(self._fill(ev, account, now))
        elif kind is OrderAccepted:
            assert isinstance(ev, OrderAccepted)
            moved.add(ev.account)
            if self.executions.get(ev.account):
                private[ev.account].append(self._accepted(ev, now))
        elif kind is OrderClosed:
            assert isinstance(ev, OrderClosed)
            moved.add(ev.account)
            if self.executions.get(ev.account):
                status = "filled" if ev.status == "closed" else ev.status
                entry = {
                    "exec_type": status,
                    "order_id": format_id("O", ev.order_id),
                    "order_status": status,
                    "timestamp": timestamp(now),
                }
                if status != "filled":
                    entry["cancel_reason"] = ev.reason
                private[ev.account].append(entry)
        elif kind is OrderAmended:
            assert isinstance(ev, OrderAmended)
            moved.add(ev.account)
            if self.executions.get(ev.account):
                private[ev.account].append(
                    {
                        "exec_type": "amended",
                        "order_id": format_id("O", ev.order_id),
                        "amended": True,
                        "timestamp": timestamp(now),
                    }
                )
        elif kind in (Deposited, WithdrawalHeld, WithdrawalCompleted, WithdrawalReturned):
            moved.add(ev.account)  # type: ignore[attr-defined]
        elif kind is Transferred:
            assert isinstance(ev, Transferred)
            moved.update((ev.src, ev.dst))

    def _accepted(self, ev: OrderAccepted, now: int) -> dict[str, Any]:
        p = self.config.pairs[ev.pair]
        entry: dict[str, Any] = {
            "exec_type": "pending_new" if ev.status == "pending" else "new",
            "order_id": format_id("O", ev.order_id),
            "symbol": p.symbol,
            "side": "buy" if ev.side == BUY else "sell",
            "order_type": ev.ordertype,
            "order_qty": number(ev.qty, p.lot_decimals),
            "time_in_force": ev.tif,
            "order_status": "pending_new" if ev.status == "pending" else "new",
            "post_only": ev.post_only,
            "fee_ccy_pref": "fcib" if ev.fee_in_base else "fciq",
            "timestamp": timestamp(now),
        }
        if ev.ordertype not in ("market",):
            entry["limit_price"] = number(ev.price2 or ev.price, p.pair_decimals)
        if ev.userref is not None:
            entry["order_userref"] = ev.userref
        if ev.cl_ord_id is not None:
            entry["cl_ord_id"] = ev.cl_ord_id
        return entry

    def _fill(self, t: Trade, account: int, now: int) -> dict[str, Any]:
        p = self.config.pairs[t.pair]
        maker = account == t.maker_account
        side = (t.taker_side == BUY) != maker
        fee, in_base = (t.maker_fee, t.maker_fee_base) if maker else (t.taker_fee, t.taker_fee_base)
        fee_asset = self.config.assets[p.base if in_base else p.quote]
        quote = self.config.assets[p.quote]
        return {
            "exec_type": "trade",
            "order_id": format_id("O", t.maker_order if maker else t.taker_order),
            "exec_id": format_id("T", t.trade_id),
            "trade_id": t.trade_id,
            "symbol": p.symbol,
            "side": "buy" if side else "sell",
            "last_qty": number(t.qty, p.lot_decimals),
            "last_price": number(t.price, p.pair_decimals),
            "cost": number(t.cost, quote.units),
            "liquidity_ind": "m" if maker else "t",
            "fees": [{"asset": fee_asset.symbol, "qty": number(fee, fee_asset.units)}],
            "timestamp": timestamp(now),
        }

    # ------------------------------------------------------------------ publishing
    def _publish_book(self, p: PairSpec, subs: dict[Subscriber, int], now: int) -> None:
        book = self.host().query("depth", p.id, MAX_DEPTH)
        new_bids, new_asks = book["bids"], book["asks"]
        old_bids, old_asks = self.last_book.get(p.index, ([], []))
        if (new_bids, new_asks) == (old_bids, old_asks):
            return
        self.last_book[p.index] = (new_bids, new_asks)
        for sub, depth in list(subs.items()):
            bids = _changes(old_bids[:depth], new_bids[:depth], new_bids)
            asks = _changes(old_asks[:depth], new_asks[:depth], new_asks)
            if not bids and not asks:
                continue
            top_bids, top_asks = new_bids[:depth], new_asks[:depth]
            sub.send(
                {
                    "channel": "book",
                    "type": "update",
                    "data": [
                        {
                            "symbol": p.symbol,
                            "bids": self._levels(p, bids),
                            "asks": self._levels(p, asks),
                            "checksum": checksum(
                                top_asks, top_bids, p.pair_decimals, p.lot_decimals
                            ),
                            "timestamp": timestamp(now),
                        }
                    ],
                }
            )

    def trade_entry(self, p: PairSpec, t: Trade, now: int) -> dict[str, Any]:
        return {
            "symbol": p.symbol,
            "side": "buy" if t.taker_side == BUY else "sell",
            "price": number(t.price, p.pair_decimals),
            "qty": number(t.qty, p.lot_decimals),
            "ord_type": "limit",
            "trade_id": t.trade_id,
            "timestamp": timestamp(now),
        }

    def _publish_trades(self, p: PairSpec, trades: list[Trade], now: int) -> None:
        subs = self.trades.get(p.index)
        if subs:
            msg = {
                "channel": "trade",
                "type": "update",
                "data": [self.trade_entry(p, t, now) for t in trades],
            }
            for sub in list(subs):
                sub.send(msg)
        tickers = self.tickers.get(p.index)
        if tickers:
            msg = {"channel": "ticker", "type": "update", "data": [self.ticker(p, trades[-1])]}
            for sub in list(tickers):
                sub.send(msg)

    def ticker(self, p: PairSpec, last: Trade | None = None) -> dict[str, Any]:
        book = self.host().query("depth", p.id, 1)
        bid, bid_qty = book["bids"][0] if book["bids"] else (0, 0)
        ask, ask_qty = book["asks"][0] if book["asks"] else (0, 0)
        last_price = last.price if last else 0
        # 24-hour statistics are REST Ticker's; the stream carries the touch and last trade
        return {
            "symbol": p.symbol,
            "bid": number(bid, p.pair_decimals),
            "bid_qty": number(bid_qty, p.lot_decimals),
            "ask": number(ask, p.pair_decimals),
            "ask_qty": number(ask_qty, p.lot_decimals),
            "last": number(last_price, p.pair_decimals),
        }

    def _publish_private(
        self, subs: set[Subscriber], channel: str, entries: Sequence[dict[str, Any]]
    ) -> None:
        for sub in list(subs):
            sub.sequence += 1
            sub.send(
                {
                    "channel": channel,
                    "type": "update",
                    "data": list(entries),
                    "sequence": sub.sequence,
                }
            )

    def balance_snapshot(self, account: int) -> list[dict[str, Any]]:
        held = self.host().query("balances", account)
        out = []
        for asset_id, (avail, trade, _) in held.items():
            spec = self.config.asset(asset_id)
            total = number(avail + trade, spec.units)
            out.append(
                {
                    "asset": spec.symbol,
                    "asset_class": "currency",
                    "balance": total,
                    "wallets": [{"type": "spot", "id": "main", "balance": total}],
                }
            )
        return out

    def _publish_balances(self, account: int, now: int) -> None:
        data = [
            {**b, "timestamp": timestamp(now), "wallet_type": "spot", "wallet_id": "main"}
            for b in self.balance_snapshot(account)
        ]
        self._publish_private(self.balances[account], "balances", data)


def _changes(old_top: Levels, new_top: Levels, new_all: Levels) -> Levels:
    """Levels a depth-limited subscriber must be told about: changed or newly visible
    ones with their quantity, and removed ones with 0 (not those merely pushed out of its
    depth: clients truncate)."""
    old = dict((price, qty) for price, qty in old_top)
    new = dict((price, qty) for price, qty in new_top)
    still = {price for price, _ in new_all}
    out = [[price, qty] for price, qty in new_top if old.get(price) != qty]
    out += [[price, 0] for price in old if price not in new and price not in still]
    return out
