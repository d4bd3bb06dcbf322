"""The WebSocket ``ohlc`` channel: candles built from the trades as they are sequenced.

A subscription starts from the read models' newest candles (the snapshot); each batch's
trades then update the current candle of every subscribed (pair, interval) in memory,
timed by their commands' sequenced time, as the read models time them. Only subscribed
(pair, interval) pairs are kept.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cambio.api.kraken.wsformat import number, timestamp
from cambio.model.config import PairSpec
from cambio.model.events import Trade

INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)  # minutes
SNAPSHOT = 100  # candles
_S = 1_000_000_000


class Candle:
    __slots__ = ("begin", "close", "count", "high", "low", "open", "pv", "volume")

    def __init__(self, begin: int, o: int, h: int, lo: int, c: int, v: int, pv: int, n: int):
        self.begin, self.open, self.high, self.low, self.close = begin, o, h, lo, c
        self.volume, self.pv, self.count = v, pv, n

    def add(self, price: int, qty: int) -> None:
        self.high, self.low, self.close = max(self.high, price), min(self.low, price), price
        self.volume += qty
        self.pv += price * qty
        self.count += 1


def entry(p: PairSpec, interval: int, c: Candle, now: int) -> dict[str, Any]:
    """Kraken's v2 candle: prices with the pair's decimals, volume in lots, vwap."""
    vwap = c.pv // c.volume if c.volume else c.close
    return {
        "symbol": p.symbol,
        "open": number(c.open, p.pair_decimals),
        "high": number(c.high, p.pair_decimals),
        "low": number(c.low, p.pair_decimals),
        "close": number(c.close, p.pair_decimals),
        "trades": c.count,
        "volume": number(c.volume, p.lot_decimals),
        "vwap": number(vwap, p.pair_decimals),
        "interval_begin": timestamp(c.begin * _S),
        "interval": interval,
        "timestamp": timestamp(now),
    }


class Candles:
    """Per (pair index, interval): the subscribers and the current candle."""

    def __init__(self) -> None:
        self.subscribers: dict[tuple[int, int], set[Any]] = defaultdict(set)
        self.current: dict[tuple[int, int], Candle | None] = {}

    def subscribe(self, sub: Any, pair: int, interval: int, last: Candle | None) -> None:
        """Add `sub`; `last` (the read models' newest candle) starts the current candle
        unless others are subscribed, whose candle has followed every trade since."""
        key = (pair, interval)
        if not self.subscribers[key]:  # nobody followed the trades: the stored one is stale
            self.current[key] = last
        self.subscribers[key].add(sub)

    def unsubscribe(self, sub: Any, pair: int, interval: int) -> None:
        self.subscribers[(pair, interval)].discard(sub)

    def forget(self, sub: Any) -> None:
        for subs in self.subscribers.values():
            subs.discard(sub)

    def on_trades(self, p: PairSpec, trades: list[tuple[int, Trade]], now: int) -> None:
        """Fold `trades` ((ts, trade), in order) into each subscribed interval and send
        every subscriber the updated candles."""
        for interval in INTERVALS:
            key = (p.index, interval)
            subs = self.subscribers.get(key)
            if not subs:
                continue
            span = interval * 60
            touched: list[Candle] = []
            c = self.current.get(key)
            for ts, t in trades:
                begin = ts // _S - ts // _S % span
                if c is None or c.begin != begin:
                    c = Candle(begin, t.price, t.price, t.price, t.price, 0, 0, 0)
                    touched.append(c)
                elif not touched:
                    touched.append(c)
                c.add(t.price, t.qty)
            self.current[key] = c
            msg = {"channel": "ohlc", "type": "update", "timestamp": timestamp(now),
                   "data": [entry(p, interval, k, now) for k in touched]}  # fmt: skip
            for sub in list(subs):
                sub.send(msg)
